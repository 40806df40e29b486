"""OpenTelemetry traces of jobs (cronkit.tracing): a submission span whose traceparent
the job row keeps, a run span per attempt, its child, in whichever process runs it.
Spans go to the SDK's InMemorySpanExporter, or (another process) to its
ConsoleSpanExporter, whose JSON is read back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import cronkit
from cronkit import Status, tracing
from tests.children import child_env
from tests.helpers import ROOT, Boom, FailsOnce, finished, wait_for

SUBMIT, RUN = "cronkit.submit", "cronkit.run"


class Ok(cronkit.Runner):
    def run(self):
        return "done"


@pytest.fixture
def site(kit):
    site = kit.site("plone")
    for name, factory in (("ok", Ok), ("boom", Boom), ("fails-once", FailsOnce)):
        site.register_runner(factory, name=name)
    return site


@pytest.fixture
def provider():
    return TracerProvider()


@pytest.fixture
def spans(provider):
    """Tracing on, the spans kept in memory; off again after the test."""
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    yield exporter
    tracing.reset()


def named(exporter, name):
    return [s for s in exporter.get_finished_spans() if s.name == name]


def traceparent(span):
    ctx = span.context
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


# -- off unless configured --------------------------------------------------------------

def test_nothing_is_traced_when_tracing_is_not_enabled(kit, site, provider):
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))   # a provider, not enabled
    assert tracing.tracer() is None
    job = site.submit("ok")
    kit.run_pending()
    assert site.jobs.get(job.id).status == Status.SUCCESS
    assert kit.store.get_job(job.id)["trace"] is None
    assert exporter.get_finished_spans() == ()


def test_disable_turns_tracing_off_and_reset_forgets_it(kit, site, spans):
    tracing.disable()
    assert tracing.tracer() is None
    site.submit("ok")
    kit.run_pending()
    assert spans.get_finished_spans() == ()
    tracing.reset()
    assert tracing.tracer() is None      # no global provider set, no OTEL_TRACES_EXPORTER


def test_a_global_tracer_provider_turns_tracing_on(kit, site, spans, provider, monkeypatch):
    tracing.reset()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    assert tracing.tracer() is not None
    site.submit("ok")
    kit.run_pending()
    assert {s.name for s in spans.get_finished_spans()} == {SUBMIT, RUN}


# -- the spans ---------------------------------------------------------------------------

def test_a_job_is_a_submit_span_and_its_run_a_child_of_it(kit, site, spans):
    job = site.submit("ok")
    [submit] = named(spans, SUBMIT)
    assert submit.kind == SpanKind.PRODUCER
    assert submit.attributes["cronkit.site"] == "plone"
    assert submit.attributes["cronkit.job.id"] == job.id
    assert kit.store.get_job(job.id)["trace"] == traceparent(submit)
    kit.run_pending()
    [run] = named(spans, RUN)
    assert run.kind == SpanKind.CONSUMER
    assert run.parent.span_id == submit.context.span_id
    assert run.context.trace_id == submit.context.trace_id
    assert {"cronkit.site": "plone", "cronkit.job.id": job.id, "cronkit.job.type": "ok",
            "cronkit.job.attempt": 1, "cronkit.job.status": "success"}.items() \
        <= dict(run.attributes).items()
    assert "cronkit.cron.uid" not in run.attributes
    assert run.status.status_code == StatusCode.UNSET


def test_a_submission_inside_a_span_is_its_child(kit, site, spans, provider):
    with provider.get_tracer("app").start_as_current_span("request") as request:
        site.submit("ok")
    [submit] = named(spans, SUBMIT)
    assert submit.parent.span_id == request.context.span_id


def test_a_failure_is_an_error_span_with_its_exception(kit, site, spans):
    job = site.submit("boom")
    kit.run_pending()
    assert site.jobs.get(job.id).status == Status.FAILED
    [run] = named(spans, RUN)
    assert run.attributes["cronkit.job.status"] == "failed"
    assert run.status.status_code == StatusCode.ERROR
    assert "boom" in run.status.description
    [event] = run.events
    assert event.name == "exception" and event.attributes["exception.type"] == "ValueError"


def test_each_attempt_is_a_run_span_of_the_one_submission(kit, site, spans, clock):
    job = site.submit("fails-once")
    kit.run_pending()
    clock.advance(seconds=2)
    kit.run_pending()
    assert site.jobs.get(job.id).status == Status.SUCCESS
    [submit] = named(spans, SUBMIT)
    first, second = named(spans, RUN)
    assert (first.attributes["cronkit.job.attempt"], second.attributes["cronkit.job.attempt"]) \
        == (1, 2)
    assert first.attributes["cronkit.job.status"] == "retried"
    assert "first attempt fails" in first.attributes["cronkit.job.reason"]
    assert second.attributes["cronkit.job.status"] == "success"
    assert {first.parent.span_id, second.parent.span_id} == {submit.context.span_id}


def test_a_batch_is_one_submit_span_its_traceparent_in_every_row(kit, site, spans):
    jobs = site.submit_many([{"type": "ok"}] * 3)
    [submit] = named(spans, SUBMIT)
    assert submit.attributes["cronkit.jobs"] == 3
    assert {kit.store.get_job(j.id)["trace"] for j in jobs} == {traceparent(submit)}
    kit.run_pending()
    runs = named(spans, RUN)
    assert len(runs) == 3 and {r.parent.span_id for r in runs} == {submit.context.span_id}


def test_a_unique_submission_is_traced_and_a_merge_says_so(kit, site, spans):
    job = site.submit("ok", {"n": 1}, unique=True)
    again = site.submit("ok", {"n": 1}, unique=True)
    assert again.id == job.id
    first, merged = named(spans, SUBMIT)
    assert (first.attributes["cronkit.job.merged"], merged.attributes["cronkit.job.merged"]) \
        == (False, True)
    assert kit.store.get_job(job.id)["trace"] == traceparent(first)


def test_a_cron_firing_run_span_names_its_cron(kit, site, spans, clock):
    cron = cronkit.Cron(name="ok", periodicity="*/5 * * * *")
    site.crontab.add_cron(cron)
    site.crontab.save()
    clock.advance(minutes=5)
    kit.run_pending()
    [run, *_] = named(spans, RUN)
    assert run.attributes["cronkit.cron.uid"] == cron.uid
    assert run.attributes["cronkit.job.status"] == "success"
    assert run.parent is not None     # the sync that queued the firing submitted it


# -- the stores keep the trace ------------------------------------------------------------

def _stores(request):
    if request.param == "postgres":
        return request.getfixturevalue("pg_db")
    if request.param == "memory":
        return "memory://"
    return request.getfixturevalue("db_url")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def any_store(request):
    return _stores(request)


def test_every_store_keeps_the_trace_of_each_way_in(any_store, clock, spans):
    kit = cronkit.Cronkit(store=any_store, clock=clock)
    try:
        site = kit.site("plone")
        site.register_runner(Ok, name="ok")
        one = site.submit("ok")
        unique = site.submit("ok", {"n": 2}, unique=True)
        batch = site.submit_many([{"type": "ok"}, {"type": "ok", "delay": 60}])
        submits = named(spans, SUBMIT)
        assert len(submits) == 3
        expected = [traceparent(submits[0]), traceparent(submits[1]),
                    traceparent(submits[2]), traceparent(submits[2])]
        rows = [kit.store.get_job(j.id) for j in (one, unique, *batch)]
        assert [r["trace"] for r in rows] == expected
        claimed = kit.store.claim(clock.now(), 10, "w:1", 1)
        assert {r["id"]: r["trace"] for r in claimed} == {
            j.id: t for j, t in zip((one, unique, batch[0]), expected, strict=False)}
    finally:
        kit.close()


# -- other processes ----------------------------------------------------------------------

def spans_in(text):
    """The spans ConsoleSpanExporter wrote in ``text`` (among other output)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := text.find("{", at)) >= 0:
        try:
            value, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            at += 1
            continue
        if isinstance(value, dict) and "context" in value and "name" in value:
            found.append(value)
        at = end
    return found


def test_a_forked_child_of_the_processes_executor_continues_the_trace(db_url, tmp_path):
    """A runner defined here cannot be imported by a child: the executor forks, and the
    child, with the parent's tracer provider, exports its run span to the file."""
    path = tmp_path / "spans.json"
    out = open(path, "a", buffering=1)     # noqa: SIM115 - the child writes it too
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(
        out=out, formatter=lambda span: span.to_json(indent=None) + "\n")))
    tracing.enable(provider)

    class Here(cronkit.Runner):
        def run(self):
            return "in a child"

    kit = cronkit.Cronkit(store=db_url, error_timeout=5)
    worker = None
    try:
        site = kit.site("plone")
        site.register_runner(Here, name="here")
        job = site.submit("here")
        worker = kit.worker(concurrency=1, executor="processes", poll_interval=0.05).start()
        done = wait_for(lambda: finished(site, job.id), what="the job's end")
        assert done.status == Status.SUCCESS and done.pid != os.getpid()
    finally:
        if worker is not None:
            worker.stop()
        kit.close()
        tracing.reset()
        out.close()
    [submit] = named(memory, SUBMIT)
    [run] = [s for s in spans_in(path.read_text()) if s["name"] == RUN]
    assert run["parent_id"] == f"0x{submit.context.span_id:016x}"
    assert run["context"]["trace_id"] == f"0x{submit.context.trace_id:032x}"
    assert run["attributes"]["cronkit.job.id"] == job.id
    assert run["attributes"]["cronkit.job.status"] == "success"
    assert named(memory, RUN) == []       # it ran in the child, not here


CHILD = textwrap.dedent("""
    import cronkit
    from tests import jobrunners
    jobrunners.register()
    kit = cronkit.Cronkit(store={url!r}, error_timeout=5)
    site = kit.site("plone")
    job = site.submit("whoami")
    worker = kit.worker(concurrency=1, executor="processes", poll_interval=0.05).start()
    import time
    deadline = time.monotonic() + 60
    while not site.jobs.get(job.id).finished and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.stop()
    print("status", site.jobs.get(job.id).status, flush=True)
""")


def test_the_otel_environment_traces_a_spawned_child_too(db_url):
    """OTEL_TRACES_EXPORTER=console, no code: the worker's process and the spawned
    child that runs the job (a fresh interpreter) both export, to one trace."""
    env = child_env(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="cronkit-test",
                    OTEL_BSP_SCHEDULE_DELAY="50")
    proc = subprocess.run([sys.executable, "-c", CHILD.format(url=db_url)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "status success" in proc.stdout
    found = spans_in(proc.stdout)
    [submit] = [s for s in found if s["name"] == SUBMIT]
    [run] = [s for s in found if s["name"] == RUN]
    assert run["parent_id"] == submit["context"]["span_id"]
    assert run["context"]["trace_id"] == submit["context"]["trace_id"]
    assert run["resource"]["attributes"]["service.name"] == "cronkit-test"
    assert run["attributes"]["cronkit.job.type"] == "whoami"


def test_an_exporter_the_environment_names_that_is_not_installed_is_named(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "nosuchexporter")
    with pytest.raises(cronkit.CronkitError, match="'nosuchexporter'"):
        tracing.from_environment()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracing.from_environment() is None


def test_enable_without_a_provider_builds_one_from_the_environment(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    try:
        tracing.enable()
        assert isinstance(tracing._state.provider, TracerProvider)
        tracing.flush()
    finally:
        tracing._state.provider.shutdown()
        tracing.reset()


def test_flush_without_tracing_does_nothing():
    tracing.flush()
    assert tracing.tracer() is None



@pytest.mark.usefixtures("contract_runners")
def test_a_celery_worker_continues_the_trace_of_the_row(pg_db, redis_url, spans):
    """Submitted here (the span in memory), dispatched by ``cronkit worker --executor
    celery``, run by a real Celery worker configured by the OTEL environment only."""
    import redis

    from tests.test_celery import celery_env, start_dispatchers
    from tests.test_postgres import stop_workers

    redis.Redis.from_url(redis_url).flushall()
    kit = cronkit.Cronkit(store=pg_db)
    env = celery_env(pg_db, redis_url) | {"OTEL_TRACES_EXPORTER": "console",
                                          "OTEL_BSP_SCHEDULE_DELAY": "50"}
    celery = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "cronkit.executors.celery", "worker",
         "-P", "solo", "-c", "1", "-n", "traced@%h", "--loglevel", "warning",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dispatcher = start_dispatchers(pg_db, redis_url, 1, concurrency=2)
    try:
        site = kit.site("plone")
        job = site.submit("noop")
        done = wait_for(lambda: finished(site, job.id), 120, "the Celery worker to run it")
        assert done.status == Status.SUCCESS and done.pid == celery.pid
    finally:
        stop_workers(dispatcher)
        celery.send_signal(signal.SIGTERM)    # a warm shutdown: its spans are flushed
        out, err = celery.communicate(timeout=60)
        kit.close()
    [submit] = named(spans, SUBMIT)
    runs = [s for s in spans_in(out + err) if s["name"] == RUN]   # Celery logs stdout
    assert len(runs) == 1, err
    [run] = runs
    assert run["parent_id"] == f"0x{submit.context.span_id:016x}"
    assert run["context"]["trace_id"] == f"0x{submit.context.trace_id:032x}"
    assert run["attributes"]["cronkit.job.id"] == job.id
    assert run["attributes"]["cronkit.job.status"] == "success"


def test_the_otel_environment_turns_tracing_on_in_this_process(kit, site, monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setattr(tracing._state, "environ_read", False)
    tracing.reset()
    try:
        assert tracing.tracer() is not None
        assert isinstance(tracing._state.provider, TracerProvider)
    finally:
        tracing._state.provider.shutdown()
        tracing.reset()
    monkeypatch.setattr(tracing._state, "environ_read", False)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    assert tracing.tracer() is None and tracing._state.environ_read


def test_opentelemetry_is_imported_only_when_needed(monkeypatch):
    monkeypatch.setattr(tracing, "_trace", None)
    monkeypatch.delitem(sys.modules, "opentelemetry.trace")
    monkeypatch.setattr(tracing._state, "environ_read", False)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    tracing.reset()
    assert tracing.tracer() is None and tracing._trace is None     # a check, no import
    monkeypatch.setattr(tracing._state, "environ_read", False)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    try:
        assert tracing.tracer() is not None and tracing._trace is not None
    finally:
        tracing._state.provider.shutdown()
        tracing.reset()
