"""The OpenAPI 3.0 document of /api/v1, written out by hand next to the routes it describes
(api.py); tests/test_web_schemathesis.py checks the two agree."""

from __future__ import annotations

import copy
from functools import lru_cache

from .. import __version__


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    return _json(_ref("Error"), description)


NULLABLE_STR = {"type": "string", "nullable": True}
NULLABLE_TIME = {"type": "string", "format": "date-time", "nullable": True}

SCHEMAS = {
    "Error": {
        "type": "object", "required": ["error", "field"],
        "properties": {"error": {"type": "string"}, "field": NULLABLE_STR,
                       "errors": {"type": "object", "additionalProperties": {"type": "string"}}},
    },
    "Site": {
        "type": "object", "required": ["name", "activated", "crons", "paused"],
        "properties": {"name": {"type": "string"}, "activated": {"type": "boolean"},
                       "crons": {"type": "integer"}, "paused": _ref("Paused")},
    },
    "Paused": {
        "type": "array", "items": NULLABLE_STR,
        "description": "what of the site is paused (not claimed): null for the whole queue "
                       "(first), then the paused job types; empty when nothing is",
    },
    "Pauses": {
        "type": "object", "required": ["site", "paused"],
        "properties": {"site": {"type": "string"}, "paused": _ref("Paused")},
    },
    "PauseInput": {
        "type": "object",
        "description": "Optional: without a type (or without a body), the whole site.",
        "properties": {"type": {"type": "string", "minLength": 1, "maxLength": 200,
                                "nullable": True, "description": "a job type's name"}},
        "additionalProperties": False,
    },
    "Log": {
        "type": "object", "required": ["index", "date", "status", "messages"],
        "properties": {"index": {"type": "integer"},
                       "date": {"type": "string", "format": "date-time"},
                       "status": {"type": "string", "enum": ["OK", "WARN", "FAILURE", "NOTRUN"]},
                       "messages": {"type": "array", "items": {"type": "string"}}},
    },
    "Cron": {
        "type": "object",
        "required": ["uid", "name", "periodicity", "seconds_first", "expanded", "description",
                     "timezone", "effective_timezone", "activated", "environ", "logs_limit",
                     "user", "misfire", "misfire_grace", "next", "last"],
        "properties": {
            "uid": {"type": "string"}, "name": {"type": "string"},
            "periodicity": {"type": "string", "description": "the expression as written"},
            "seconds_first": {"type": "boolean",
                              "description": "6 or 7 fields read with the seconds first"},
            "expanded": {"type": "string",
                         "description": "what the engine reads: H and R drawn, seconds last"},
            "description": {"type": "string", "description": "expanded, in words"},
            "timezone": NULLABLE_STR, "effective_timezone": {"type": "string"},
            "activated": {"type": "boolean"}, "environ": {"type": "object"},
            "logs_limit": {"type": "integer", "minimum": 1, "maximum": 25},
            "user": NULLABLE_STR,
            "misfire": {"type": "string", "enum": ["once", "all", "skip"]},
            "misfire_grace": {"type": "number", "nullable": True},
            "next": NULLABLE_TIME,
            "last": {"allOf": [_ref("Log")], "nullable": True},
            "logs": {"type": "array", "items": _ref("Log")},
        },
    },
    "CronInput": {
        "type": "object",
        "description": "What an edit changes (only the fields sent).",
        "properties": {
            "uid": {"type": "string", "description": "only when creating"},
            "name": {"type": "string", "description": "the runner's name"},
            "periodicity": {"type": "string", "example": "*/5 * * * *"},
            "seconds_first": {"type": "boolean", "description": (
                "read 6 or 7 fields with the seconds first, as Quartz does (default false: "
                "minute hour day month weekday second)")},
            "timezone": NULLABLE_STR, "activated": {"type": "boolean"},
            "environ": {"type": "object"},
            "logs_limit": {"type": "integer", "minimum": 1, "maximum": 25},
            "user": NULLABLE_STR,
            "misfire": {"type": "string", "enum": ["once", "all", "skip"]},
            "misfire_grace": {"type": "number", "minimum": 0, "nullable": True},
        },
        "additionalProperties": False,
    },
    "CronCreate": {
        "allOf": [_ref("CronInput")], "required": ["name", "periodicity"],
        "description": "A new cron: name and periodicity are required.",
    },
    "Preview": {
        "type": "object",
        "required": ["periodicity", "expanded", "expanded_differs", "seconds_first",
                     "description", "timezone", "next", "end", "note"],
        "properties": {
            "periodicity": {"type": "string"}, "expanded": {"type": "string"},
            "expanded_differs": {"type": "boolean"}, "seconds_first": {"type": "boolean"},
            "description": {"type": "string"}, "timezone": {"type": "string"},
            "next": {"type": "array", "items": {"type": "string", "format": "date-time"},
                     "description": "the next 5 firings, in the cron's time zone"},
            "end": {"type": "string", "nullable": True,
                    "description": "no more firings: its year field has ended"},
            "note": {"type": "string", "nullable": True,
                     "description": "how six fields are read, when the other order differs"},
        },
    },
    "CronPreview": {
        "type": "object", "required": ["cron", "preview"],
        "properties": {"cron": _ref("Cron"), "preview": _ref("Preview")},
    },
    "Crontab": {
        "type": "object", "required": ["site", "activated", "read_only", "paused", "crons"],
        "properties": {"site": {"type": "string"}, "activated": {"type": "boolean"},
                       "read_only": {"type": "boolean"}, "paused": _ref("Paused"),
                       "crons": {"type": "array", "items": _ref("Cron")}},
    },
    "CrontabPatch": {
        "type": "object", "required": ["activated"],
        "properties": {"activated": {"type": "boolean"}}, "additionalProperties": False,
    },
    "HistoryEntry": {
        "type": "object", "required": ["date", "status", "comment"],
        "properties": {"date": {"type": "string", "format": "date-time"},
                       "status": {"type": "string"}, "comment": {"type": "string"}},
    },
    "Job": {
        "type": "object",
        "required": ["id", "site", "type", "name", "status", "priority", "payload", "progress",
                     "status_text", "message", "result", "pid", "worker", "cron_uid", "user",
                     "attempts", "run_after", "created_at", "started_at", "finished_at",
                     "after"],
        "properties": {
            "id": {"type": "integer"}, "site": {"type": "string"}, "type": {"type": "string"},
            "name": {"type": "string"},
            "status": {"type": "string",
                       "enum": ["pending", "running", "success", "failed", "canceled"]},
            "priority": {"type": "integer"}, "payload": {},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "status_text": {"type": "string"}, "message": NULLABLE_STR,
            "result": {"nullable": True, "description": (
                "the JSON value the runner returned; null when it returned nothing")},
            "pid": {"type": "integer", "nullable": True}, "worker": NULLABLE_STR,
            "cron_uid": NULLABLE_STR, "user": NULLABLE_STR, "attempts": {"type": "integer"},
            "run_after": NULLABLE_TIME, "created_at": NULLABLE_TIME,
            "started_at": NULLABLE_TIME, "finished_at": NULLABLE_TIME,
            "after": {"type": "array", "items": {"type": "integer"},
                      "description": "a continuation: the jobs it runs after (else empty)"},
            "history": {"type": "array", "items": _ref("HistoryEntry")},
            "dependents": {"type": "array", "items": {"type": "integer"}, "description": (
                "one job's answers: the continuations that run after it")},
        },
    },
    "JobPage": {
        "type": "object", "required": ["total", "limit", "offset", "jobs"],
        "properties": {"total": {"type": "integer"}, "limit": {"type": "integer"},
                       "offset": {"type": "integer"},
                       "jobs": {"type": "array", "items": _ref("Job")}},
    },
    "JobInput": {
        "type": "object", "required": ["type"],
        "properties": {
            "type": {"type": "string", "description": "a job type's name"},
            "payload": {"type": "object",
                        "description": "checked against the type's parameter format"},
            "name": {"type": "string"},
            "priority": {"type": "integer", "minimum": -2147483647, "maximum": 2147483647},
            "delay": {"type": "number", "minimum": 0, "maximum": 315360000,
                      "description": "earliest start, in seconds from now"},
            "run_after": {"type": "string", "format": "date-time", "description": (
                "earliest start: ISO-8601 with its offset (a naive time is refused); "
                "not with delay"), "example": "2030-01-01T09:00:00+01:00"},
            "unique": {"type": "boolean"},
            "user": {"type": "string", "description": "who the job runs as"},
            "timeout": {"type": "number", "exclusiveMinimum": True, "minimum": 0,
                        "maximum": 315360000,
                        "description": "hard timeout in seconds (processes executor)"},
            "after": {"oneOf": [{"type": "integer", "minimum": 1},
                                {"type": "array", "minItems": 1,
                                 "items": {"type": "integer", "minimum": 1}}],
                      "description": "a continuation: due once these jobs all succeeded"},
        },
        "additionalProperties": False,
    },
    "JobBatch": {
        "type": "object", "required": ["jobs"],
        "description": "Jobs to queue at once: every one is checked first, then all are "
                       "queued in one transaction, or none (unique is refused: submit such "
                       "a job alone).",
        "properties": {"jobs": {"type": "array", "minItems": 1, "maxItems": 10000,
                                "items": _ref("JobInput")}},
        "additionalProperties": False,
    },
    "JobList": {
        "type": "object", "required": ["jobs"],
        "properties": {"jobs": {"type": "array", "items": _ref("Job")}},
    },
    "Param": {
        "type": "object", "required": ["type", "required", "choices", "help", "default"],
        "properties": {"type": {"type": "string", "enum": ["bool", "int", "select", "string"]},
                       "required": {"type": "boolean"},
                       "choices": {"type": "array", "items": {}, "nullable": True},
                       "help": {"type": "string"}, "default": {}},
    },
    "JobType": {
        "type": "object", "required": ["name", "help", "parameters"],
        "properties": {"name": {"type": "string"}, "help": {"type": "string"},
                       "parameters": {"type": "object", "additionalProperties": _ref("Param")}},
    },
    "RunResult": {
        "type": "object", "required": ["queued", "job"],
        "properties": {"queued": {"type": "boolean"},
                       "job": {"allOf": [_ref("Job")], "nullable": True}},
    },
    "Worker": {
        "type": "object",
        "description": "a worker registered in the store (what `cronkit workers --json` "
                       "shows); lost: not stopped, and no heartbeat for the error timeout",
        "required": ["id", "host", "pid", "executor", "concurrency", "state", "status",
                     "lost", "started_at", "heartbeat", "stopped_at", "version", "info",
                     "jobs"],
        "properties": {
            "id": {"type": "string"}, "host": {"type": "string"}, "pid": {"type": "integer"},
            "executor": {"type": "string"}, "concurrency": {"type": "integer"},
            "state": {"type": "string", "enum": ["running", "paused", "draining", "stopped"]},
            "status": {"type": "string",
                       "enum": ["running", "paused", "draining", "stopped", "lost"]},
            "lost": {"type": "boolean"},
            "started_at": {"type": "string", "format": "date-time"},
            "heartbeat": {"type": "string", "format": "date-time"},
            "stopped_at": {"type": "string", "format": "date-time", "nullable": True},
            "version": {"type": "string"}, "info": {"type": "object"},
            "jobs": {"type": "array", "items": {"type": "integer"},
                     "description": "the ids of the jobs it runs"},
        },
    },
}

SEGMENT = ("one path segment, percent-encoded whole: a \"/\" in it is %2F "
           "(the site /app/plone is %2Fapp%2Fplone)")
SITE = {"name": "site", "in": "path", "required": True, "description": "the site's name, " + SEGMENT,
        "schema": {"type": "string"}}
UID = {"name": "uid", "in": "path", "required": True, "description": "the cron's uid, " + SEGMENT,
       "schema": {"type": "string"}}
JOB_ID = {"name": "job_id", "in": "path", "required": True,
          "schema": {"type": "integer", "minimum": 0}}
DRY_RUN = {"name": "dry_run", "in": "query",
           "description": "true: answer 200 with the cron as it would be and its preview "
                          "(words, next times, a note); save nothing",
           "schema": {"type": "boolean", "default": False}}
INDEX = {"name": "index", "in": "path", "required": True,
         "schema": {"type": "integer", "minimum": 0}}

# every operation: auth, and a store that failed (busy, unreachable)
COMMON_ERRORS = {"401": _error("no or wrong token"), "403": _error("cross-site request"),
                 "503": _error("the store failed (busy, unreachable): try again later")}
SITE_ERRORS = {**COMMON_ERRORS, "404": _error("no such site, cron, log or job")}
BODY_ERRORS = {"400": _error("the body is not a JSON object"),
               "413": _error("the body is larger than the server's --max-body"),
               "415": _error("the body is not application/json"),
               "422": _error("a value is refused; field names it")}
# every write: a store opened read-only (``mode=ro``, a read-only file or folder) refuses it
READ_ONLY = "the store is read-only"


def _body(schema: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


def _op(op_id: str, summary: str, responses: dict, params: list | None = None,
        body: str | None = None, tag: str = "crons") -> dict:
    op = {"operationId": op_id, "summary": summary, "tags": [tag], "responses": responses}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = _body(body)
    return op


CRON_OK = {"200": _json(_ref("Cron"), "the cron, with its logs"), **SITE_ERRORS}
DRY_RUN_OK = _json(_ref("CronPreview"), "dry_run=true: the cron as it would be and its "
                   "preview; nothing saved")
DRY_RUN_ERROR = _error("the body is not a JSON object, or dry_run is not true or false")
PAUSE_BODY = {"required": False,
              "content": {"application/json": {"schema": _ref("PauseInput")}}}
JOB_OK = {"200": _json(_ref("Job"), "the job, with its history"), **SITE_ERRORS}

PATHS = {
    "/sites": {"get": _op("listSites", "Sites", {
        "200": _json({"type": "array", "items": _ref("Site")}, "every site"), **COMMON_ERRORS},
        tag="sites")},
    "/sites/{site}/crontab": {
        "get": _op("getCrontab", "A site's crontab", {
            "200": _json(_ref("Crontab"), "the crontab"), **SITE_ERRORS}, [SITE], tag="sites"),
        "patch": _op("patchCrontab", "Switch a site's crontab on or off", {
            "200": _json(_ref("Crontab"), "the crontab"), **SITE_ERRORS, **BODY_ERRORS,
            "409": _error("read-only crontab, or " + READ_ONLY)}, [SITE], "CrontabPatch", tag="sites"),
    },
    "/sites/{site}/pause": {"post": dict(_op(
        "pauseSite", "Pause the claiming of a site's jobs, or of its jobs of one type", {
            "200": _json(_ref("Pauses"), "what of the site is paused now"), **SITE_ERRORS,
            **BODY_ERRORS, "409": _error(READ_ONLY)}, [SITE], tag="sites"),
        requestBody=PAUSE_BODY)},
    "/sites/{site}/resume": {"post": dict(_op(
        "resumeSite", "Resume the claiming of a site's jobs, or of its jobs of one type", {
            "200": _json(_ref("Pauses"), "what of the site is still paused"), **SITE_ERRORS,
            **BODY_ERRORS, "409": _error(READ_ONLY)}, [SITE], tag="sites"),
        requestBody=PAUSE_BODY)},
    "/sites/{site}/crons": {
        "get": _op("listCrons", "A site's crons", {
            "200": _json({"type": "array", "items": _ref("Cron")}, "the crons"),
            **SITE_ERRORS}, [SITE]),
        "post": _op("createCron", "Add a cron (or preview it: dry_run=true)", {
            "201": _json(_ref("Cron"), "the new cron"), "200": DRY_RUN_OK, **SITE_ERRORS,
            **BODY_ERRORS, "400": DRY_RUN_ERROR,
            "409": _error("uid taken, read-only crontab, or " + READ_ONLY)}, [SITE, DRY_RUN],
            "CronCreate"),
    },
    "/sites/{site}/crons/{uid}": {
        "get": _op("getCron", "A cron with its logs", CRON_OK, [SITE, UID]),
        "patch": _op("patchCron", "Edit a cron (or preview the edit: dry_run=true)", {
            **CRON_OK, "200": _json({"oneOf": [_ref("Cron"), _ref("CronPreview")]},
                                    "the cron, with its logs; with dry_run=true the cron as "
                                    "it would be and its preview, nothing saved"),
            **BODY_ERRORS, "400": DRY_RUN_ERROR,
            "409": _error("read-only crontab, or " + READ_ONLY)}, [SITE, UID, DRY_RUN],
            "CronInput"),
        "delete": _op("deleteCron", "Delete a cron", {
            "204": {"description": "deleted"}, **SITE_ERRORS,
            "409": _error("read-only crontab, or " + READ_ONLY)}, [SITE, UID]),
    },
    "/sites/{site}/crons/{uid}/enable": {"post": _op(
        "enableCron", "Activate a cron", {**CRON_OK, "409": _error("read-only crontab, or " + READ_ONLY)},
        [SITE, UID])},
    "/sites/{site}/crons/{uid}/disable": {"post": _op(
        "disableCron", "Deactivate a cron", {**CRON_OK, "409": _error("read-only crontab, or " + READ_ONLY)},
        [SITE, UID])},
    "/sites/{site}/crons/{uid}/run": {"post": _op(
        "runCron", "Run a cron now (a firing of its own)", {
            "202": _json(_ref("RunResult"), "queued"), **SITE_ERRORS,
            "409": _error(READ_ONLY)}, [SITE, UID])},
    "/sites/{site}/crons/{uid}/logs": {"get": _op(
        "listLogs", "A cron's logs, most recent first", {
            "200": _json({"type": "array", "items": _ref("Log")}, "the logs"), **SITE_ERRORS},
        [SITE, UID], tag="logs")},
    "/sites/{site}/crons/{uid}/logs/{index}": {"delete": _op(
        "deleteLog", "Delete one log (0 = most recent)", {
            "204": {"description": "deleted"}, **SITE_ERRORS,
            "409": _error("read-only crontab, or " + READ_ONLY)}, [SITE, UID, INDEX], tag="logs")},
    "/sites/{site}/jobs": {
        "get": _op("listJobs", "Jobs, newest first", {
            "200": _json(_ref("JobPage"), "a page of jobs"), **SITE_ERRORS,
            "400": _error("bad query parameter")}, [
            SITE,
            {"name": "status", "in": "query", "schema": {
                "type": "string", "enum": ["pending", "running", "success", "failed", "canceled"]}},
            {"name": "type", "in": "query", "schema": {"type": "string"}},
            {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 200},
             "description": "text found in the job's name, type, payload or message "
                            "(its error), case-insensitive; no wildcard"},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                        "maximum": 500, "default": 50}},
            {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0,
                                                         "default": 0}}], tag="jobs"),
        "post": _op("submitJob", "Submit a job", {
            "201": _json(_ref("Job"), "the new PENDING job (or the pending one it merged into)"),
            **SITE_ERRORS, **BODY_ERRORS, "409": _error(READ_ONLY)}, [SITE], "JobInput",
            tag="jobs"),
    },
    "/sites/{site}/jobs/batch": {"post": _op(
        "submitJobs", "Submit many jobs, all or none", {
            "201": _json(_ref("JobList"), "the new PENDING jobs, in the order sent"),
            **SITE_ERRORS, **BODY_ERRORS,
            "422": _error("a value is refused, nothing is queued; the message names the "
                          "job (\"job 3: ...\") and field its index and name (\"3.priority\")"),
            "409": _error(READ_ONLY)}, [SITE], "JobBatch", tag="jobs")},
    "/sites/{site}/jobs/{job_id}": {"get": _op(
        "getJob", "A job with its history", JOB_OK, [SITE, JOB_ID], tag="jobs")},
    "/sites/{site}/jobs/{job_id}/cancel": {"post": _op(
        "cancelJob", "Cancel a pending or running job", {
            **JOB_OK, "409": _error("already finished, or " + READ_ONLY)}, [SITE, JOB_ID], tag="jobs")},
    "/sites/{site}/jobs/{job_id}/retry": {"post": _op(
        "retryJob", "Submit a failed or canceled job again", {
            "201": _json(_ref("Job"), "the new job"), **SITE_ERRORS,
            "409": _error("not failed or canceled, or " + READ_ONLY)}, [SITE, JOB_ID], tag="jobs")},
    "/workers": {"get": _op("listWorkers", "The workers of the store, newest first", {
        "200": _json({"type": "array", "items": _ref("Worker")},
                     "the workers not stopped (with all=true, the stopped ones too)"),
        "400": _error("all is not true or false"), **COMMON_ERRORS},
        [{"name": "all", "in": "query", "description": "true: the stopped workers too",
          "schema": {"type": "boolean", "default": False}}], tag="workers")},
    "/sites/{site}/types": {"get": _op(
        "listTypes", "Job types with their help and parameter format", {
            "200": _json({"type": "array", "items": _ref("JobType")}, "the job types"),
            **SITE_ERRORS}, [SITE], tag="jobs")},
}


@lru_cache(maxsize=1)
def _document() -> dict:
    return {
        "openapi": "3.0.3",
        "info": {"title": "cronkit", "version": __version__,
                 "description": "Crontabs, crons, logs, jobs and job types of every site."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}, {}],
        "paths": PATHS,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def openapi_document() -> dict:
    """A fresh copy of the OpenAPI document."""
    return copy.deepcopy(_document())
