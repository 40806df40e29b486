"""The dashboard's charts, workers page and pause controls through Starlette's
TestClient: the charts' numbers (SVG bars and their tables) against the store after a
known sequence of jobs run on a FakeClock, the live fragment, the workers the store
knows (lost and draining ones too), pausing and resuming a site or a type."""

from __future__ import annotations

import re
import warnings
from datetime import timedelta
from html import unescape

import pytest

import cronkit
from cronkit.web import create_app
from cronkit.web.charts import BINS, EDGES, SPANS, Span, seconds

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

XSS = "<script>alert(1)</script>"


class Takes(cronkit.Runner):
    """Runs ``secs`` seconds of the kit's (fake) clock."""

    def run(self):
        self.site.kit.clock.advance(seconds=self.job.payload.get("secs", 0))


class Fails(cronkit.Runner):
    """Runs ``secs`` seconds, then fails."""

    def run(self):
        self.site.kit.clock.advance(seconds=self.job.payload.get("secs", 0))
        raise RuntimeError("fails")


@pytest.fixture
def site(kit):
    site = kit.site("plone")
    site.register_runner(Takes, name="takes")
    site.register_runner(Fails, name="fails")
    site.crontab.save()
    return site


@pytest.fixture
def client(kit, site):
    return TestClient(create_app(kit))


def csrf(client, url="/"):
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get(url).text).group(1)


def post(client, url, data=None):
    data = dict(data or {})
    data.setdefault("csrf_token", csrf(client))
    return client.post(url, data=data, follow_redirects=False)


def table(html, chart):
    """The rows (lists of cell texts) of a chart's table of numbers."""
    found = re.search(rf'<table class="chart-data" data-chart="{chart}">(.*?)</table>', html,
                      re.S)
    assert found, f"no table for chart {chart}"
    body = found.group(1).split("<tbody>", 1)[1]
    return [[unescape(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r)]
            for r in re.findall(r"<tr>(.*?)</tr>", body)]


def bars(html, chart):
    """(label, total) of each bar of a chart's SVG."""
    svg = re.search(rf'<svg [^>]*data-chart="{chart}".*?</svg>', html, re.S).group(0)
    return [(unescape(label), float(value)) for label, value in
            re.findall(r'<g class="bar" data-label="([^"]*)" data-value="([^"]*)">', svg)]


def run_sequence(kit, site, clock):
    """Minute by minute for 5 minutes: i+1 jobs that succeed and i that fail; then 2
    hours later one more success. Returns the ends as (minute, succeeded, failed)."""
    for i in range(5):
        for _ in range(i + 1):
            site.submit("takes", {})
        for _ in range(i):
            site.submit("fails", {})
        kit.run_pending()
        clock.advance(minutes=1)
    clock.advance(hours=2)
    site.submit("takes", {})
    kit.run_pending()


def test_the_dashboard_charts_count_the_jobs_that_ended_per_minute_and_hour(client, kit, site,
                                                                           clock):
    run_sequence(kit, site, clock)
    html = client.get("/").text
    now = clock.now()
    hour = table(html, "ends-hour")
    assert len(hour) == 60
    since, until = SPANS[0].window(now)
    store = kit.store.count_ends(since, until, SPANS[0].step)
    assert [[r[0], *map(int, r[1:])] for r in hour] == [
        [f"{c['start']:%Y-%m-%d %H:%M}", c["success"] + c["failed"] + c["canceled"],
         c["success"], c["failed"], c["canceled"]] for c in store]
    assert hour[-1][1:] == ["1", "1", "0", "0"]     # the last job, this minute
    assert sum(int(r[1]) for r in hour) == 1          # the first five minutes: 2 h ago
    day = {r[0]: [int(x) for x in r[1:]] for r in table(html, "ends-day")}
    assert len(day) == 24
    assert day["2008-01-01 01:00"] == [25, 15, 10, 0]   # 1+..+5 succeeded, 0+..+4 failed
    assert day["2008-01-01 03:00"] == [1, 1, 0, 0]
    assert sum(v[0] for v in day.values()) == 26
    drawn = dict(bars(html, "ends-day"))
    assert drawn["01:00"] == 25 and drawn["03:00"] == 1 and sum(drawn.values()) == 26


def test_a_bar_and_the_chart_say_their_numbers_in_text(client, kit, site, clock):
    run_sequence(kit, site, clock)
    html = client.get("/").text
    assert '<svg class="chart"' in html and 'role="img"' in html
    assert "<title>01:00: 15 succeeded, 10 failed</title>" in html
    assert "<title>02:00: no jobs</title>" in html
    assert re.search(r"<desc [^>]*>26 finished, 10 failed, 0 canceled from", html)
    assert 'url(#ends-day-hatch)' in html          # failed bars are hatched, not only red
    assert ">failed</text>" in html and ">succeeded</text>" in html   # and in the legend


def test_the_site_page_charts_its_own_jobs_and_one_type(client, kit, site, clock):
    other = kit.site("zope")
    other.register_runner(Takes, name="takes")
    other.submit("takes", {})
    site.submit("takes", {})
    site.submit("fails", {})
    kit.run_pending()
    html = client.get("/sites/plone").text
    assert table(html, "ends-hour")[-1][1:] == ["2", "1", "1", "0"]
    assert "Jobs finished per minute, the last hour (site plone)" in html
    assert table(client.get("/").text, "ends-hour")[-1][1:] == ["3", "2", "1", "0"]
    every_site = client.get("/?type=takes").text
    assert table(every_site, "ends-hour")[-1][1:] == ["2", "2", "0", "0"]
    assert "Jobs finished per minute, the last hour (type takes)" in every_site
    assert 'data-charts="/charts?type=takes"' in every_site
    assert table(client.get("/charts?type=takes").text, "ends-hour")[-1][1] == "2"
    typed = client.get("/sites/plone?type=fails").text
    assert table(typed, "ends-hour")[-1][1:] == ["1", "0", "1", "0"]
    assert "(site plone, type fails)" in typed
    assert '<option value="fails" selected>' in typed


def test_lateness_and_duration_distributions_per_type(client, kit, site, clock):
    site.submit("takes", {"secs": 3}, delay=10)
    site.submit("takes", {"secs": 120}, delay=10)
    site.submit("fails", {"secs": 0.5})
    clock.advance(seconds=12)        # the delayed ones start 2 s late or more
    kit.run_pending()
    html = client.get("/sites/plone").text
    stats = kit.store.job_timings(*SPANS[1].window(clock.now()), EDGES, site="plone")
    names = sorted(stats)
    assert names == ["fails", "takes"]
    k = names.index("takes")
    late = dict((r[0], int(r[1])) for r in table(html, f"lateness-{k}"))
    took = dict((r[0], int(r[1])) for r in table(html, f"duration-{k}"))
    assert list(late) == list(BINS)
    assert [late[b] for b in BINS] == stats["takes"]["lateness"]["bins"]
    assert took["1–5 s"] == 1 and took["1–5 min"] == 1 and sum(took.values()) == 2
    # "fails" (due first) runs 0.5 s; then the two, due 10 s earlier, start 2.5 s late,
    # and 2.5 + 3 s late.
    assert late["1–5 s"] == 1 and late["5–15 s"] == 1 and sum(late.values()) == 2
    assert stats["takes"]["lateness"]["max"] == pytest.approx(5.5)
    assert f"max {seconds(stats['takes']['duration']['max'])}" in html
    assert seconds(120) == "2 min" and seconds(0.25) == "0.25 s" and seconds(3725) == "1 h 2 min"
    assert "Run duration of takes jobs" in html and "Lateness (start − due) of fails jobs" in html


def test_the_dashboard_draws_no_distribution_and_a_quiet_site_says_so(client, kit, site):
    assert "lateness-0" not in client.get("/").text
    assert "No job of this scope ran in the last day" in client.get("/sites/plone").text


def test_a_cron_page_charts_the_durations_of_its_last_runs(client, kit, site, clock):
    cron = cronkit.Cron(name="takes", periodicity="*/5 * * * *", uid="c1",
                        environ={"secs": 4})
    site.crontab.add_cron(cron)
    site.crontab.save()
    assert "No run of this cron has ended yet" in client.get("/sites/plone/crons/c1").text
    for _ in range(3):
        clock.advance(minutes=5)
        kit.run_pending()
    html = client.get("/sites/plone/crons/c1").text
    runs = table(html, "cron-durations")
    ended = [j for j in reversed(site.jobs.list(cron=cron)) if j.finished]
    assert [r[0] for r in runs] == [f"#{j.id}" for j in ended] and len(runs) == 3
    assert [(r[2], r[3]) for r in runs] == [("4 s", "success")] * 3
    assert [v for _, v in bars(html, "cron-durations")] == [4.0, 4.0, 4.0]
    assert "Run durations of the last 3 runs" in html


def test_the_charts_fragment_is_the_section_a_page_swaps_in(client, kit, site, clock):
    page = client.get("/sites/plone").text
    url = unescape(re.search(r'data-charts="([^"]+)"', page).group(1))
    assert url == "/charts?site=plone"
    before = table(client.get(url).text, "ends-hour")[-1]
    site.submit("takes", {})
    kit.run_pending()
    response = client.get(url)
    assert response.headers["cache-control"] == "no-store"
    assert response.text.lstrip().startswith('<section class="charts"')
    assert "<html" not in response.text
    assert table(response.text, "ends-hour")[-1][1] == str(int(before[1]) + 1)
    assert client.get("/charts").status_code == 200
    cron = cronkit.Cron(name="takes", periodicity="0 3 * * *", uid="c 1")
    site.crontab.add_cron(cron)
    site.crontab.save()
    cron_page = client.get("/sites/plone/crons/c%201").text
    assert 'data-charts="/charts?site=plone&amp;cron=c+1"' in cron_page
    assert "No run of this cron" in client.get("/charts?site=plone&cron=c+1").text


@pytest.mark.parametrize("url, status", [("/charts?site=nowhere", 404),
                                         ("/charts?site=plone&cron=nope", 404)])
def test_the_charts_of_an_unknown_site_or_cron_are_a_404(client, url, status):
    response = client.get(url)
    assert response.status_code == status
    assert "Traceback" not in response.text


def test_a_type_name_with_markup_is_escaped_in_the_charts(client, kit, site):
    site.register_runner(Takes, name=XSS)
    site.submit(XSS, {})
    kit.run_pending()
    for url in ("/sites/plone", "/sites/plone?type=" + XSS, "/charts?site=plone"):
        html = client.get(url, params=None).text
        assert XSS not in html
    assert "&lt;script&gt;" in client.get("/sites/plone").text


def test_a_span_ends_with_the_interval_that_holds_now(clock):
    hour, day = SPANS
    since, until = hour.window(clock.now())           # 01:03:00
    assert (since.isoformat(), until.isoformat()) == ("2008-01-01T00:04:00+00:00",
                                                      "2008-01-01T01:04:00+00:00")
    clock.advance(seconds=59)
    assert hour.window(clock.now())[1] == until
    since, until = day.window(clock.now())
    assert (until - since, until.hour) == (timedelta(days=1), 2)
    assert Span("x", "x", timedelta(minutes=5), 3, "%H").window(clock.now())[0].minute == 50


# -- the workers page ----------------------------------------------------------------


def worker(worker_id, clock, **fields):
    row = {"id": worker_id, "host": "web-1", "pid": 4242, "executor": "threads",
           "concurrency": 4, "state": "running", "started_at": clock.now(),
           "heartbeat": clock.now(), "version": "1.2", "info": {"sites": ["plone"]}}
    row.update(fields)
    return row


def rows_of(html):
    return {m.group(1): m.group(0) for m in re.finditer(
        r'<tr class="worker [^"]*" data-worker="([^"]+)">.*?</tr>', html, re.S)}


def test_the_workers_page_shows_every_worker_the_store_knows(client, kit, site, clock):
    store = kit.store
    store.register_worker(worker("web-1:11", clock, pid=11))
    store.register_worker(worker("web-1:12", clock, pid=12, state="draining"))
    store.register_worker(worker("web-2:13", clock, host="web-2", pid=13, executor="processes",
                                 concurrency=8))
    store.register_worker(worker("web-2:14", clock, host="web-2", pid=14))
    store.stop_worker("web-2:14", clock.now())
    job = site.submit("takes", {}, name="the busy one")
    [claimed] = store.claim(clock.now(), 1, "web-1:11", 11)
    assert claimed["id"] == job.id
    clock.advance(seconds=kit.error_timeout + 5)
    store.worker_heartbeat("web-1:11", clock.now())
    store.worker_heartbeat("web-1:12", clock.now())
    html = client.get("/workers").text
    rows = rows_of(html)
    assert list(rows) == [w["id"] for w in store.list_workers()]
    assert set(rows) == {"web-1:11", "web-1:12", "web-2:13", "web-2:14"}
    assert ">RUNNING<" in rows["web-1:11"]
    assert f'href="/sites/plone/jobs/{job.id}">#{job.id} the busy one</a>' in rows["web-1:11"]
    assert ">DRAINING<" in rows["web-1:12"] and "none" in rows["web-1:12"]
    assert ">LOST<" in rows["web-2:13"] and "its row says running" in rows["web-2:13"]
    assert "processes" in rows["web-2:13"] and "<td>8</td>" in rows["web-2:13"]
    assert ">STOPPED<" in rows["web-2:14"] and "stopped 2008-01-01" in rows["web-2:14"]
    assert "4 workers known to the store: 2 alive, 1 lost" in html
    assert '<a href="/workers">Workers</a>' in html


def test_the_workers_page_agrees_with_the_cli_states(client, kit, clock):
    from cronkit.workers import list_workers
    kit.store.register_worker(worker("a:1", clock, state="paused"))
    kit.store.register_worker(worker("a:2", clock, heartbeat=clock.now() - timedelta(hours=1)))
    rows = rows_of(client.get("/workers").text)
    for shown in list_workers(kit.store, clock.now(), kit.error_timeout, include_stopped=True):
        assert f">{shown['status'].upper()}<" in rows[shown["id"]]


def test_no_worker_yet_says_how_to_start_one(client):
    assert "cronkit worker" in client.get("/workers").text


def test_a_worker_id_with_markup_is_escaped(client, kit, clock):
    kit.store.register_worker(worker(XSS, clock, host=XSS))
    html = client.get("/workers").text
    assert XSS not in html and "&lt;script&gt;" in html


# -- pause and resume ------------------------------------------------------------------


def test_pause_and_resume_a_type_from_the_types_page(client, kit, site):
    page = client.get("/sites/plone/types").text
    assert 'aria-label="Pause takes"' in page and "PAUSED" not in page
    response = post(client, "/sites/plone/pause", {"type": "takes",
                                                   "next": "/sites/plone/types"})
    assert response.status_code == 303
    assert response.headers["location"] == "/sites/plone/types"
    assert site.pauses() == ["takes"]
    page = client.get("/sites/plone/types").text
    assert "jobs of type takes paused" in page
    cell = re.search(r'<td class="queue" data-type="takes">(.*?)</td>', page, re.S).group(1)
    assert "PAUSED" in cell and 'aria-label="Resume takes"' in cell
    assert 'aria-label="Pause fails"' in page
    for url in ("/", "/sites/plone", "/jobs?site=plone", "/jobs"):
        assert "PAUSED (takes)" in client.get(url).text, url
    post(client, "/sites/plone/resume", {"type": "takes", "next": "/sites/plone/types"})
    assert site.pauses() == []
    assert "PAUSED" not in client.get("/sites/plone/types").text


def test_the_whole_queue_paused_shows_on_the_types_page_with_its_resume(client, kit, site):
    post(client, "/sites/plone/pause")
    assert site.paused()
    page = client.get("/sites/plone/types").text
    assert 'id="site-paused"' in page and "Resume the queue" in page
    assert "(the site is paused)" in page
    for url in ("/", "/sites/plone", "/jobs?site=plone"):
        assert 'class="badge paused"' in client.get(url).text, url
    post(client, "/sites/plone/resume", {"next": "/sites/plone/types"})
    assert not site.paused()
    assert 'id="site-paused"' not in client.get("/sites/plone/types").text


def test_pausing_without_the_csrf_token_is_refused(client, site):
    response = client.post("/sites/plone/pause", data={"type": "takes"},
                           follow_redirects=False)
    assert response.status_code == 403
    assert site.pauses() == []


@pytest.mark.parametrize("url", ["/charts", "/charts?site=plone", "/workers"])
def test_the_charts_and_the_workers_need_the_login_when_auth_is_on(kit, site, url):
    locked = TestClient(create_app(kit, password="s3cret-pw"))
    response = locked.get(url, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")
