"""Prometheus metrics (cronkit.metrics): the values after a known sequence of jobs, read
over HTTP from the web app's /metrics and from a worker's --metrics-port, parsed with
prometheus_client's own parser; missed firings under misfire "once" and "skip"; the
store's gauges and errors; auth off loopback; the Grafana example's metric names."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import cronkit
import cronkit.metrics as metrics
from tests.children import child_env, command
from tests.helpers import ROOT, WebServers, wait_for
from tests.servers import free_port

WAIT = 60


class Fine(cronkit.Runner):
    def run(self):
        return None


class Boom(cronkit.Runner):
    def run(self):
        raise ValueError("boom")


class Flaky(cronkit.Runner):
    retries = 1
    retry_backoff = 0

    def run(self):
        if self.job.attempts < 2:
            raise ValueError("first attempt")


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, ((label, value), ...)): value} of an exposition text."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def site(kit):
    site = kit.site("plone")
    for name, factory in (("fine", Fine), ("boom", Boom), ("flaky", Flaky)):
        site.register_runner(factory, name=name)
    return site


@pytest.fixture
def web(kit):
    """``start(**options)``: the web app of ``kit`` on a free loopback port; its URL."""
    servers = WebServers()
    yield lambda **options: servers.start(kit, **options)
    servers.stop()


def test_web_metrics_count_a_known_sequence_of_jobs(kit, site, clock, web):
    base = web()            # the app enables the kit's metrics: counted from its start
    for _ in range(2):
        site.submit("fine")
    site.submit("boom")
    clock.advance(seconds=5)
    kit.run_pending()
    site.submit("fine", delay=3600)            # still pending at the scrape
    response = httpx.get(f"{base}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    assert value(found, "cronkit_jobs_submitted_total", site="plone", type="fine") == 3
    assert value(found, "cronkit_jobs_submitted_total", site="plone", type="boom") == 1
    assert value(found, "cronkit_jobs_started_total", site="plone", type="fine") == 2
    assert value(found, "cronkit_jobs_finished_total", site="plone", type="fine",
                 status="success") == 2
    assert value(found, "cronkit_jobs_finished_total", site="plone", type="boom",
                 status="failed") == 1
    assert value(found, "cronkit_job_duration_seconds_count", type="fine") == 2
    # FakeClock: each started 5 s after it was due, and ran in no time
    assert value(found, "cronkit_job_lateness_seconds_sum", type="fine") == 10
    assert value(found, "cronkit_job_lateness_seconds_bucket", type="fine", le="2.5") == 0
    assert value(found, "cronkit_job_lateness_seconds_bucket", type="fine", le="5.0") == 2
    assert value(found, "cronkit_job_duration_seconds_sum", type="fine") == 0
    assert value(found, "cronkit_queue_jobs", site="plone", status="pending") == 1
    assert value(found, "cronkit_queue_jobs", site="plone", status="running") == 0
    assert value(found, "cronkit_store_up") == 1


def test_a_retried_job_counts_two_starts_one_retry_one_end(kit, site, clock):
    m = metrics.enable(kit)
    site.submit("flaky")
    kit.run_pending()
    clock.advance(seconds=1)
    kit.run_pending()
    found = samples(generate_latest(m.registry).decode())
    assert value(found, "cronkit_jobs_started_total", site="plone", type="flaky") == 2
    assert value(found, "cronkit_jobs_retried_total", site="plone", type="flaky") == 1
    assert value(found, "cronkit_jobs_finished_total", site="plone", type="flaky",
                 status="success") == 1


def test_running_jobs_are_a_gauge_by_site_and_type(kit, site):
    m = metrics.enable(kit)
    job = site.submit("fine")
    kit.lifecycle.start_now(job.id)
    found = samples(generate_latest(m.registry).decode())
    assert value(found, "cronkit_jobs_running", site="plone", type="fine") == 1
    assert value(found, "cronkit_queue_jobs", site="plone", status="running") == 1


def _cron(site, misfire):
    cron = cronkit.Cron(uid="every-minute", name="fine", periodicity="*/1 * * * *",
                        misfire=misfire)
    site.crontab.add_cron(cron)
    site.crontab.save()
    return cron


@pytest.mark.parametrize("misfire, logged, missed", [
    ("once", "OK", 2),       # runs once now; the firings due at +2 and +3 min do not run
    ("skip", "NOTRUN", 3),   # the firing due at +1 min is skipped, and so are +2, +3
])
def test_missed_firings_are_counted_per_cron(kit, site, clock, misfire, logged, missed):
    m = metrics.enable(kit)
    seen: list = []
    record = seen.append     # one object: each `seen.append` is a new one
    cronkit.subscribe(cronkit.FinishedCronJobEvent)(record)
    try:
        _cron(site, misfire)
        clock.advance(minutes=3, seconds=30)       # the worker was down
        kit.run_pending()
    finally:
        cronkit.unsubscribe(cronkit.FinishedCronJobEvent, record)
    assert not cronkit.FinishedCronJobEvent.signal.receivers
    found = samples(generate_latest(m.registry).decode())
    assert value(found, "cronkit_cron_firings_total", site="plone", cron="every-minute",
                 status=logged) == 1
    assert value(found, "cronkit_cron_missed_firings_total", site="plone",
                 cron="every-minute") == missed
    assert [e.missed for e in seen] == [missed]
    assert value(found, "cronkit_jobs_submitted_total", site="plone", type="fine") == 2


def test_a_firing_on_time_misses_nothing(kit, site, clock):
    m = metrics.enable(kit, per_cron=False)
    _cron(site, "skip")
    clock.advance(minutes=1)
    kit.run_pending()
    found = samples(generate_latest(m.registry).decode())
    assert value(found, "cronkit_cron_firings_total", site="plone", cron="", status="OK") == 1
    assert ("cronkit_cron_missed_firings_total", (("cron", ""), ("site", "plone"))) \
        not in found


def test_store_errors_are_counted_by_operation_once(kit, site):
    from datetime import datetime
    m = metrics.enable(kit)
    with pytest.raises(cronkit.StoreError):
        kit.store.claim(datetime(2030, 1, 1), 1, "w")      # naive: refused
    found = samples(generate_latest(m.registry).decode())
    assert value(found, "cronkit_store_errors_total", operation="claim") == 1
    assert sum(v for (n, _), v in found.items() if n == "cronkit_store_errors_total") == 1


def spoil(db_url: str, how: str) -> None:
    """Make the SQLite store of ``db_url`` unreadable: its file removed, or replaced by
    one that is no database."""
    import os
    path = db_url.removeprefix("sqlite:///")
    if how == "removed":
        os.remove(path)
    else:
        with open(path + ".new", "wb") as f:
            f.write(b"\0garbage" * 4096)
        os.replace(path + ".new", path)


@pytest.mark.parametrize("how", ["removed", "garbage"])
def test_a_store_that_fails_at_scrape_is_reported_down_and_the_scrape_answers(
        kit, site, db_url, web, how):
    base = web()
    spoil(db_url, how)
    response = httpx.get(f"{base}/metrics", timeout=30)
    assert response.status_code == 200
    found = samples(response.text)
    assert value(found, "cronkit_store_up") == 0
    assert value(found, "cronkit_store_errors_total", operation="scrape") == 1
    assert not any(n == "cronkit_queue_jobs" for n, _ in found)


def test_metrics_off_loopback_rule_token_required_health_open(kit, site, web):
    base = web(token="s3cret-token")
    assert httpx.get(f"{base}/metrics").status_code == 401
    response = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert response.status_code == 200 and "cronkit_store_up" in response.text
    wrong = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert httpx.get(f"{base}/healthz").text == "ok\n"


def test_enable_plugs_into_an_application_registry_once(kit, site):
    registry = CollectorRegistry()
    m = metrics.enable(kit, registry=registry)
    assert metrics.enable(kit) is m and metrics.metrics_of(kit) is m
    with pytest.raises(cronkit.CronkitError, match="another registry"):
        metrics.enable(kit, registry=CollectorRegistry())
    site.submit("fine")
    assert registry.get_sample_value("cronkit_jobs_submitted_total",
                                     {"site": "plone", "type": "fine"}) == 1
    metrics.disable(kit)
    assert metrics.metrics_of(kit) is None
    assert registry.get_sample_value("cronkit_store_up") is None
    assert "claim" not in kit.store.__dict__
    site.submit("fine")        # not counted, and nothing fails
    metrics.disable(kit)       # twice: nothing to do


def test_without_prometheus_client_the_error_names_the_extra(kit, monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(cronkit.CronkitError, match=r"pip install 'cronkit\[ops\]'"):
        metrics.enable(kit)


def test_worker_states_count_lost_workers(kit, clock):
    now = clock.now()
    rows = [{"state": "running", "heartbeat": now}, {"state": "paused", "heartbeat": now},
            {"state": "running", "heartbeat": now - timedelta(seconds=61)},
            {"state": "draining", "heartbeat": now - timedelta(seconds=59)},
            {"state": "stopped", "heartbeat": now - timedelta(days=1)}]
    kit.store.list_workers = lambda: rows
    assert metrics.worker_states(kit) == {"running": 1, "paused": 1, "draining": 1,
                                          "lost": 1}


def test_workers_alive_are_read_from_the_store_at_scrape(kit, clock):
    m = metrics.enable(kit)
    worker = kit.worker(concurrency=1)
    worker.start()
    try:
        wait_for(lambda: m.registry.get_sample_value("cronkit_workers_alive") == 1, WAIT,
                 "the worker's registration")
        assert m.registry.get_sample_value("cronkit_workers", {"state": "running"}) == 1
    finally:
        worker.stop()
    assert m.registry.get_sample_value("cronkit_workers_alive") == 0


# -- a real worker process ----------------------------------------------------------

RUNNERS = '''
import cronkit

class Fine(cronkit.Runner):
    def run(self):
        return None

class Boom(cronkit.Runner):
    def run(self):
        raise ValueError("boom")

cronkit.register_runner(Fine, name="fine")
cronkit.register_runner(Boom, name="boom")
'''


@pytest.fixture
def worker_process(tmp_path, db_url):
    """``start(*options)``: ``cronkit worker`` on ``db_url`` as a real process, with the
    runners "fine" and "boom"; stopped (SIGTERM) at the end."""
    (tmp_path / "metrics_runners.py").write_text(RUNNERS)
    procs = []

    def start(*options, **env):
        proc = subprocess.Popen(
            [*command("cronkit"), "worker", "--store", db_url, "--import", "metrics_runners",
             "--concurrency", "2", "--poll", "0.2", *options],
            env=child_env(tmp_path, **env), cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _get(url, **kwargs):
    try:
        return httpx.get(url, timeout=10, **kwargs)
    except httpx.TransportError:
        return None


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_worker_metrics_port_serves_what_it_ran(kit, site, db_url, worker_process, executor,
                                                tmp_path):
    port = free_port()
    env = {}
    if executor == "processes":    # each job counted in its child: multi-process mode
        (tmp_path / "prom").mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "prom")
    proc = worker_process("--metrics-port", str(port), "--executor", executor, **env)
    url = f"http://127.0.0.1:{port}/metrics"
    wait_for(lambda: _get(url) is not None or proc.poll() is not None, WAIT, "the port")
    assert proc.poll() is None, proc.communicate()
    ids = [site.submit("fine").id, site.submit("fine").id, site.submit("boom").id]
    wait_for(lambda: all(site.jobs.get(i).finished for i in ids), WAIT, "the jobs' ends")

    def counted():
        found = samples(_get(url).text)
        done = value(found, "cronkit_jobs_finished_total", site="plone", type="fine",
                     status="success")
        return found if done == 2 else None

    found = wait_for(counted, WAIT, "the worker's counts")
    assert value(found, "cronkit_jobs_finished_total", site="plone", type="boom",
                 status="failed") == 1
    assert value(found, "cronkit_jobs_started_total", site="plone", type="fine") == 2
    assert value(found, "cronkit_job_duration_seconds_count", type="fine") == 2
    assert value(found, "cronkit_store_up") == 1
    health = _get(f"http://127.0.0.1:{port}/healthz")
    assert health.status_code == 404          # only --metrics-port was asked for
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT) == 0
    assert _get(url) is None                  # stopped with the worker


def test_worker_metrics_port_in_use_is_a_one_line_error(db_url, worker_process):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = worker_process("--metrics-port", str(port))
        out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 2, err
    lines = [line for line in err.splitlines() if str(port) in line]
    assert lines and "Traceback" not in err, err


# -- the Grafana example --------------------------------------------------------------


def test_grafana_dashboard_reads_only_metrics_that_exist(kit, site):
    import re
    dashboard = json.loads((ROOT / "examples" / "grafana-dashboard.json").read_text())
    assert any(v.get("type") == "datasource" for v in dashboard["templating"]["list"])
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert exprs
    m = metrics.enable(kit)
    names = set()
    for family in text_string_to_metric_families(generate_latest(m.registry).decode()):
        names |= {s.name for s in family.samples} | {family.name}
        if family.type == "counter":       # no labelled child yet: the family only
            names.add(family.name + "_total")
    names |= {n + suffix for n in list(names) for suffix in ("_bucket", "_sum", "_count")}
    used = {n for e in exprs for n in re.findall(r"\bcronkit_[a-z_]+", e)}
    assert used and used <= names, used - names
    for panel in dashboard["panels"]:
        assert panel.get("datasource", {}).get("uid") in (None, "${datasource}")


def test_counting_a_batch_asks_the_store_nothing_more(kit, site):
    """The hooks count what the lifecycle holds: no store query for a batch's types."""
    m = metrics.enable(kit)
    calls = []
    real = kit.store.get_job
    kit.store.get_job = lambda *a, **k: calls.append(a) or real(*a, **k)
    site.submit_many([{"type": "fine"}, {"type": "fine"}, {"type": "boom"}])
    assert not calls
    assert m.registry.get_sample_value("cronkit_jobs_submitted_total",
                                       {"site": "plone", "type": "fine"}) == 2
    assert m.registry.get_sample_value("cronkit_jobs_submitted_total",
                                       {"site": "plone", "type": "boom"}) == 1


def test_a_job_canceled_before_it_ran_is_counted_with_no_run_time(kit, site):
    m = metrics.enable(kit)
    job = site.submit("fine", delay=60)
    site.jobs.cancel(job.id)
    registry = m.registry
    assert registry.get_sample_value("cronkit_jobs_finished_total", {
        "site": "plone", "type": "fine", "status": "canceled"}) == 1
    assert registry.get_sample_value("cronkit_job_duration_seconds_count",
                                     {"type": "fine"}) is None


def test_a_unique_submission_counts_once_and_its_merge_not_at_all(kit, site):
    m = metrics.enable(kit)
    site.submit("fine", unique=True)
    site.submit("fine", unique=True)
    assert m.registry.get_sample_value("cronkit_jobs_submitted_total",
                                       {"site": "plone", "type": "fine"}) == 1


def test_rows_left_out_as_duplicates_are_not_counted(kit, site):
    m = metrics.enable(kit)
    job = site.submit("boom")
    m.queued("plone", [{"type": "fine"}, {"type": "fine"}], [job.id])   # one inserted
    assert m.registry.get_sample_value("cronkit_jobs_submitted_total",
                                       {"site": "plone", "type": "boom"}) == 2
    assert m.registry.get_sample_value("cronkit_jobs_submitted_total",
                                       {"site": "plone", "type": "fine"}) is None


def test_multiprocess_mode_reads_the_shared_folder(kit, site, tmp_path, monkeypatch):
    (tmp_path / "prom").mkdir()       # a folder of its own: every *.db in it is read
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    m = metrics.enable(kit)
    site.submit("fine")
    kit.run_pending()       # counted through prometheus_client's objects (the files'
    text = generate_latest(m.registry).decode()   # values class is chosen at its import)
    assert "cronkit_store_up 1.0" in text
    metrics.disable(kit)
    assert m.registry.get_sample_value("cronkit_store_up") is None


def test_web_metrics_without_prometheus_client_names_the_extra(kit, monkeypatch, web):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    base = web()                                   # the app starts without metrics
    response = httpx.get(f"{base}/metrics")
    assert response.status_code == 501
    assert response.text == "metrics need prometheus_client: pip install 'cronkit[ops]'\n"
    assert httpx.get(f"{base}/healthz").status_code == 200


def test_cronkit_run_serves_the_worker_counts_at_the_web_metrics(kit, site, db_url, tmp_path):
    (tmp_path / "metrics_runners.py").write_text(RUNNERS)
    port = free_port()
    proc = subprocess.Popen(
        [*command("cronkit"), "run", "--store", db_url, "--import", "metrics_runners",
         "--poll", "0.2", "--port", str(port)],
        env=child_env(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for(lambda: _get(url) is not None or proc.poll() is not None, WAIT, "the web")
        assert proc.poll() is None, proc.communicate()
        job = site.submit("fine")
        wait_for(lambda: site.jobs.get(job.id).finished, WAIT, "the job's end")

        def counted():
            found = samples(_get(url).text)
            return found if value(found, "cronkit_jobs_finished_total", site="plone",
                                  type="fine", status="success") == 1 else None

        found = wait_for(counted, WAIT, "the count")
        assert value(found, "cronkit_workers_alive") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=WAIT)


def test_worker_metrics_off_loopback_without_a_token_is_refused(db_url, worker_process):
    proc = worker_process("--metrics-port", str(free_port()), "--ops-host", "0.0.0.0",
                          CRONKIT_TOKEN="")
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 2
    assert "without authentication" in err and "Traceback" not in err


def test_a_celery_worker_kit_counts_in_multiprocess_mode(tmp_path, monkeypatch):
    from cronkit.executors import celery as celery_executor
    (tmp_path / "prom").mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    monkeypatch.setenv("CRONKIT_STORE", f"sqlite:///{tmp_path / 'celery.db'}")
    monkeypatch.setattr(celery_executor, "_kit", None)
    kit = celery_executor.worker_kit()
    try:
        assert metrics.metrics_of(kit) is not None
    finally:
        metrics.disable(kit)
        kit.close()
