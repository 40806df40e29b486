"""Property-based run of the OpenAPI document against the API: no server error, ever.

Two passes per operation: the published document as served (random sites, mostly 404),
and the same document with the site pinned to a real one, so the generated bodies reach
the crontab and the job queue.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

import cronkit
from cronkit.web import create_app
from cronkit.web.openapi import openapi_document

pytest.importorskip("starlette")

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


class Echo(cronkit.Runner):
    """Echo its parameters."""

    parameters = {"count": cronkit.Param("int", required=True, help="how many"),
                  "mode": cronkit.Param("select", choices=["fast", "slow"]),
                  "loud": cronkit.Param("bool"), "label": cronkit.Param("string")}

    def run(self):
        return None


@pytest.fixture
def app(kit):
    site = kit.site("plone")
    site.register_runner(Echo, name="echo")
    crontab = site.crontab
    cron = cronkit.Cron(name="echo", periodicity="*/5 * * * *", uid="c1", environ={"count": 1})
    crontab.add_cron(cron)
    crontab.save()
    cron.log("FAILURE", ["boom"])
    cron.save()
    job = site.submit("echo", {"count": 1})
    site.jobs.cancel(job.id)
    site.submit("echo", {"count": 2})
    return create_app(kit)


@pytest.fixture
def served_schema(app):
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)


@pytest.fixture
def pinned_schema(app):
    document = openapi_document()
    for item in document["paths"].values():
        for operation in item.values():
            for param in operation.get("parameters", []):
                if param["name"] == "site":
                    param["schema"] = {"type": "string", "enum": ["plone"]}
                elif param["name"] == "uid":
                    param["schema"] = {"type": "string", "enum": ["c1", "nope"]}
                elif param["name"] == "job_id":
                    param["schema"] = {"type": "integer", "minimum": 1, "maximum": 3}
    schemas = document["components"]["schemas"]
    schemas["CronInput"]["properties"]["name"] = {"type": "string", "enum": ["echo", "gone"]}
    schemas["CronInput"]["properties"]["periodicity"] = {
        "type": "string", "enum": ["*/5 * * * *", "@hourly", "0 12 * * 1-5 30", "61 * * * *"]}
    schemas["CronInput"]["properties"]["timezone"] = {
        "type": "string", "enum": ["Europe/Paris", "UTC", "Mars/Base"], "nullable": True}
    schemas["JobInput"]["properties"]["type"] = {"type": "string", "enum": ["echo", "gone"]}
    schemas["JobInput"]["properties"]["payload"] = {
        "type": "object", "properties": {"count": {"type": "integer"},
                                         "mode": {"type": "string", "enum": ["fast", "slow"]},
                                         "loud": {"type": "boolean"}}}
    schema = schemathesis.openapi.from_dict(document)
    schema.app = app
    return schema


# No server error, and every answer is one the document announces, shaped as it says.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
OPERATIONS = [(path, method) for path, item in openapi_document()["paths"].items()
              for method in item]


def run_operation(schema, path: str, method: str) -> None:
    # Hypothesis drives each operation directly: schemathesis's pytest plugin does not
    # load under this pytest.
    operation = schema[path][method.upper()]

    @SETTINGS
    @given(case=operation.as_strategy())
    def check(case):
        case.call_and_validate(checks=CHECKS)

    check()


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_published_document_finds_no_server_error(served_schema, path, method):
    run_operation(served_schema, path, method)


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_real_site_finds_no_server_error(pinned_schema, path, method):
    run_operation(pinned_schema, path, method)
