"""Bulk submit: ``site.submit_many``, ``cronkit jobs submit --from-file`` and
``POST /api/v1/sites/{site}/jobs/batch``. Every spec is checked first, then all are
queued in one transaction, or none."""

from __future__ import annotations

import io
import sys
import uuid
import warnings
from datetime import timedelta

import pytest

import cronkit
from cronkit import cli
from cronkit.components import queue_manager
from tests.conftest import START

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


class Noop(cronkit.Runner):
    def run(self):
        return None


class Export(cronkit.Runner):
    """Export products."""

    parameters = {"limit": cronkit.Param("int", required=True, help="max rows")}

    def run(self):
        return None


@pytest.fixture(params=["sqlite", "memory"])
def store_kit(request, db_url, clock):
    kit = cronkit.Cronkit(store=db_url if request.param == "sqlite" else "memory://",
                          clock=clock)
    yield kit
    kit.close()


@pytest.fixture
def site(store_kit):
    site = store_kit.site("plone")
    site.register_runner(Noop, name="noop")
    site.register_runner(Export, name="export")
    return site


def count(site) -> int:
    return site.jobs.count()


# -- the library ------------------------------------------------------------------


def test_submit_many_returns_pending_jobs_in_input_order(site):
    jobs = site.submit_many([{"type": "noop", "name": "first"},
                             {"type": "export", "payload": {"limit": 3}, "priority": 5},
                             {"type": "noop", "user": "bob", "delay": 60}])
    assert [j.name for j in jobs] == ["first", "export", "noop"]
    assert all(j.status == cronkit.Status.PENDING for j in jobs)
    assert [j.id for j in jobs] == sorted(j.id for j in jobs)
    stored = [site.jobs.get(j.id) for j in jobs]
    assert [(j.type, j.payload, j.priority, j.user) for j in stored] == [
        ("noop", {}, 0, None), ("export", {"limit": 3}, 5, None), ("noop", {}, 0, "bob")]
    assert stored[2].run_after == START + timedelta(seconds=60)
    assert stored[0].run_after == START


def test_submit_many_takes_any_iterable_and_an_empty_one(site):
    assert site.submit_many(iter([])) == []
    jobs = site.submit_many({"type": "noop", "name": str(i)} for i in range(3))
    assert [j.name for j in jobs] == ["0", "1", "2"]
    assert count(site) == 3


def test_a_bad_entry_at_the_end_of_a_big_batch_inserts_nothing(site):
    specs = [{"type": "noop"} for _ in range(5000)] + [{"type": "noop", "priority": "high"}]
    with pytest.raises(cronkit.InvalidParameters) as err:
        site.submit_many(specs)
    assert str(err.value).startswith("job 5000: priority must be an integer")
    assert list(err.value.errors) == ["5000.priority"]
    assert count(site) == 0


def test_an_unknown_type_is_named_with_its_index(site):
    with pytest.raises(cronkit.UnknownRunner, match=r"^job 2: no runner named 'nope'"):
        site.submit_many([{"type": "noop"}, {"type": "noop"}, {"type": "nope"}])
    assert count(site) == 0


def test_payload_is_checked_against_the_parameter_format(site):
    with pytest.raises(cronkit.InvalidParameters) as err:
        site.submit_many([{"type": "export", "payload": {"limit": 1}},
                          {"type": "export", "payload": {"limit": "many"}}])
    assert str(err.value).startswith("job 1: invalid parameters")
    assert list(err.value.errors) == ["1.limit"]
    assert count(site) == 0


@pytest.mark.parametrize("spec, field", [
    ({"type": "noop", "colour": "red"}, "1.colour"),
    ({"payload": {}}, "1.type"),
    ({"type": "noop", "delay": -1}, "1.delay"),
    ({"type": "noop", "timeout": "long"}, "1.timeout"),
    ({"type": "noop", "name": 3}, "1.name"),
    ({"type": "noop", "run_after": "tomorrow"}, "1.run_after"),
    ({"type": "noop", "after": 999}, "1.after"),
    ({"type": "noop", "payload": [1]}, "1.payload"),
])
def test_a_bad_field_is_named_with_its_index(site, spec, field):
    with pytest.raises(cronkit.InvalidParameters) as err:
        site.submit_many([{"type": "noop"}, spec])
    assert list(err.value.errors) == [field]
    assert str(err.value).startswith("job 1: ")
    assert count(site) == 0


def test_a_spec_that_is_not_a_mapping_is_refused(site):
    with pytest.raises(cronkit.InvalidParameters, match="^job 0: expected a mapping") as err:
        site.submit_many(["noop"])
    assert list(err.value.errors) == ["0"]


@pytest.mark.parametrize("options, field", [
    ({"priority": "high"}, "priority"), ({"delay": "soon"}, "delay"),
    ({"timeout": -5}, "timeout"), ({"user": "x" * 201}, "user"),
    ({"payload": {"k": float("nan")}}, "k"), ({"run_after": START.replace(tzinfo=None)},
                                              "run_after"),
])
def test_submit_and_submit_many_refuse_the_same_values(site, options, field):
    with pytest.raises(cronkit.InvalidParameters) as one:
        site.submit("noop", **options)
    with pytest.raises(cronkit.InvalidParameters) as many:
        site.submit_many([{"type": "noop", **options}])
    assert list(one.value.errors) == [field]
    assert list(many.value.errors) == [f"0.{field}"]
    assert str(many.value) == f"job 0: {one.value}"


def test_unique_is_refused_in_a_batch(site):
    with pytest.raises(cronkit.InvalidParameters, match="^job 1: unique") as err:
        site.submit_many([{"type": "noop", "unique": False}, {"type": "noop", "unique": True}])
    assert list(err.value.errors) == ["1.unique"]
    assert count(site) == 0


def test_more_than_the_bound_is_refused(site, monkeypatch):
    monkeypatch.setattr(queue_manager, "MAX_BATCH", 3)
    with pytest.raises(cronkit.InvalidParameters, match="at most 3 jobs"):
        site.submit_many([{"type": "noop"}] * 4)
    assert count(site) == 0
    assert len(site.submit_many([{"type": "noop"}] * 3)) == 3


def test_each_job_sends_its_queued_event_in_order(site):
    seen = []

    def queued(event):
        seen.append(event.job.name)

    cronkit.JobQueuedEvent.signal.connect(queued, weak=False)
    try:
        site.submit_many([{"type": "noop", "name": n} for n in "abc"])
    finally:
        cronkit.JobQueuedEvent.signal.disconnect(queued)
    assert seen == ["a", "b", "c"]


def test_nothing_refused_sends_no_event(site):
    seen = []
    cronkit.JobQueuedEvent.signal.connect(seen.append, weak=False)
    try:
        with pytest.raises(cronkit.InvalidParameters):
            site.submit_many([{"type": "noop"}, {"type": "noop", "priority": None}])
    finally:
        cronkit.JobQueuedEvent.signal.disconnect(seen.append)
    assert seen == []


def test_jobs_run_by_priority_then_in_submission_order(store_kit, site):
    site.submit_many([{"type": "noop", "name": n, "priority": p}
                      for n, p in [("a", 0), ("b", 1), ("c", 0), ("d", 1)]])
    assert [j.name for j in store_kit.run_pending()] == ["b", "d", "a", "c"]


def test_continuations_wait_for_the_jobs_they_name(store_kit, site):
    first = site.submit("noop")
    later, done = site.submit_many([{"type": "noop", "after": first},
                                    {"type": "noop", "after": [first.id]}])
    assert later.after_ids == [first.id] and later.status_text.startswith("waiting for job")
    assert site.jobs.get(later.id).status_text.startswith("waiting for job")
    ran = [j.id for j in store_kit.run_pending()]
    assert ran[0] == first.id and sorted(ran[1:]) == [later.id, done.id]


def test_a_continuation_of_a_job_that_succeeded_is_due_at_once(store_kit, site):
    first = site.submit("noop")
    store_kit.run_pending()
    (then,) = site.submit_many([{"type": "noop", "after": first.id}])
    assert then.run_after == START
    assert [j.id for j in store_kit.run_pending()] == [then.id]


def test_a_continuation_takes_no_delay(site):
    first = site.submit("noop")
    with pytest.raises(cronkit.InvalidParameters, match="^job 0: a continuation") as err:
        site.submit_many([{"type": "noop", "after": first.id, "delay": 5}])
    assert list(err.value.errors) == ["0.after"]


# -- the command line -------------------------------------------------------------

RUNNERS = '''
import cronkit


@cronkit.runner("hello")
def hello(job):
    """Say hello."""
'''


@pytest.fixture
def run(db_url, tmp_path, monkeypatch, capsys):
    """run(*argv, stdin=None) -> (exit code, stdout, stderr), through cli.main."""
    name = f"bulk_runners_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(RUNNERS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("CRONKIT_STORE", raising=False)

    def run(*argv: str, stdin: str | None = None):
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
        code = cli.main(["--store", db_url, "--import", name, *argv])
        out, err = capsys.readouterr()
        return code, out, err

    yield run
    sys.modules.pop(name, None)


@pytest.fixture
def cli_kit(db_url):
    kit = cronkit.Cronkit(store=db_url)
    yield kit
    kit.close()


def test_cli_submits_every_line_of_a_file(run, tmp_path, cli_kit):
    (tmp_path / "jobs.jsonl").write_text(
        '{"type": "hello", "payload": {"n": 1}}\n\n'
        '{"type": "hello", "name": "later", "run_after": "2030-01-01T09:00+01:00"}\n')
    code, out, err = run("jobs", "submit", "--from-file", "jobs.jsonl")
    assert code == 0, err
    ids = [int(line) for line in out.split()]
    jobs = [cli_kit.site("default").jobs.get(i) for i in ids]
    assert [(j.name, j.payload) for j in jobs] == [("hello", {"n": 1}), ("later", {})]
    assert jobs[1].run_after.isoformat() == "2030-01-01T08:00:00+00:00"


def test_cli_reads_stdin(run, cli_kit):
    code, out, err = run("jobs", "submit", "--from-file", "-",
                         stdin='{"type": "hello"}\n{"type": "hello"}\n')
    assert code == 0, err
    assert len(out.split()) == 2
    assert cli_kit.site("default").jobs.count() == 2


@pytest.mark.parametrize("lines, message", [
    (['{"type": "hello"}', '{"type": "hello"}', '', '{"type": "hello", "priority": "x"}'],
     "jobs.jsonl:4: priority must be an integer"),
    (['{"type": "hello"}', '{"type": "nope"}'], "jobs.jsonl:2: no runner named 'nope'"),
    (['{"type": "hello"}', '{"type": "hello",'], "jobs.jsonl:2: invalid JSON"),
    (['[1, 2]'], "jobs.jsonl:1: expected a JSON object"),
    (['{"type": "hello", "run_after": "2030-01-01T09:00"}'], "jobs.jsonl:1: run_after: "),
    (['{"type": "hello", "colour": "red"}'], "jobs.jsonl:1: unknown field 'colour'"),
    (['{"type": "hello", "unique": true}'], "jobs.jsonl:1: unique is not taken"),
])
def test_cli_names_the_file_and_line_and_inserts_nothing(run, tmp_path, cli_kit, lines,
                                                         message):
    (tmp_path / "jobs.jsonl").write_text("\n".join(lines) + "\n")
    code, out, err = run("jobs", "submit", "--from-file", "jobs.jsonl")
    assert code == 2 and out == ""
    assert err.startswith(f"cronkit: error: {message}") and err.count("\n") == 1
    assert cli_kit.site("default").jobs.count() == 0


def test_cli_bounds_the_file(run, tmp_path, monkeypatch):
    from cronkit.cli import jobs
    monkeypatch.setattr(jobs, "MAX_SPEC_FILE_BYTES", 20)
    (tmp_path / "jobs.jsonl").write_text('{"type": "hello"}\n' * 2)
    code, _, err = run("jobs", "submit", "--from-file", "jobs.jsonl")
    assert code == 2 and "over the limit of 20 bytes" in err
    code, _, err = run("jobs", "submit", "--from-file", "-", stdin='{"type": "hello"}\n' * 2)
    assert code == 2 and "<stdin>: over the limit of 20 bytes" in err


def test_cli_file_takes_no_one_job_options(run, tmp_path):
    (tmp_path / "jobs.jsonl").write_text('{"type": "hello"}\n')
    code, _, err = run("jobs", "submit", "hello", "--priority", "3", "--from-file", "jobs.jsonl")
    assert code == 2 and "not with TYPE, --priority" in err
    code, _, err = run("jobs", "submit")
    assert code == 2 and "the job type is required" in err


def test_cli_names_a_missing_file(run):
    code, _, err = run("jobs", "submit", "--from-file", "nothere.jsonl")
    assert code == 2 and "cannot read nothere.jsonl" in err


# -- the REST API -----------------------------------------------------------------

BATCH = "/api/v1/sites/plone/jobs/batch"


@pytest.fixture
def client(site, store_kit):
    from cronkit.web import create_app
    site.crontab.save()
    return TestClient(create_app(store_kit))


def test_rest_batch_returns_201_with_the_jobs_in_order(client, site):
    response = client.post(BATCH, json={"jobs": [
        {"type": "noop", "name": "a"},
        {"type": "export", "payload": {"limit": 2}, "priority": 3,
         "run_after": "2030-01-01T09:00:00+01:00"}]})
    assert response.status_code == 201, response.text
    jobs = response.json()["jobs"]
    assert [(j["name"], j["status"], j["priority"]) for j in jobs] == [
        ("a", "pending", 0), ("export", "pending", 3)]
    assert jobs[1]["run_after"].startswith("2030-01-01T08:00:00")
    assert [site.jobs.get(j["id"]).name for j in jobs] == ["a", "export"]


@pytest.mark.parametrize("bad, field", [
    ({"type": "noop", "priority": "x"}, "2.priority"),
    ({"type": "nope"}, "2.type"),
    ({"type": "export", "payload": {"limit": "x"}}, "2.limit"),
    ({"type": "noop", "colour": 1}, "2.colour"),
    ({"type": "noop", "unique": True}, "2.unique"),
    ({"type": "noop", "run_after": "2030-01-01T09:00"}, "2.run_after"),
    ("noop", "2"),
])
def test_rest_batch_names_index_and_field_and_inserts_nothing(client, site, bad, field):
    response = client.post(BATCH, json={"jobs": [{"type": "noop"}, {"type": "noop"}, bad]})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field and body["error"].startswith("job 2: ")
    assert site.jobs.count() == 0


@pytest.mark.parametrize("body", [{}, {"jobs": []}, {"jobs": {"type": "noop"}},
                                  {"jobs": [{"type": "noop"}], "more": 1}])
def test_rest_batch_wants_a_list_of_jobs(client, site, body):
    response = client.post(BATCH, json=body)
    assert response.status_code == 422
    assert site.jobs.count() == 0


def test_rest_batch_is_bounded(client, site, monkeypatch):
    from cronkit.web import api
    monkeypatch.setattr(api, "MAX_BATCH", 2)
    response = client.post(BATCH, json={"jobs": [{"type": "noop"}] * 3})
    assert response.status_code == 422 and response.json()["field"] == "jobs"
    assert site.jobs.count() == 0


def test_rest_batch_refuses_cross_site_writes(client, site):
    response = client.post(BATCH, json={"jobs": [{"type": "noop"}]},
                           headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    assert site.jobs.count() == 0


def test_rest_batch_is_in_the_openapi_document(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert paths["/sites/{site}/jobs/batch"]["post"]["operationId"] == "submitJobs"
