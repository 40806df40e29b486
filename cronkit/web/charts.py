"""The dashboard's charts, drawn by the server as SVG (no script, no CDN).

The numbers come from the store's aggregates (``count_ends``, ``job_timings``) or, for a
cron's last runs, from its last jobs; time from the kit's clock. Every chart is a
``<figure>``: an SVG with a ``<title>`` and ``<desc>`` (``role="img"``), bars told apart
by pattern as well as colour and named in a legend, each bar with a ``<title>`` of its
numbers, and a table of every number below it (the text alternative). Every text is
escaped here: the result is Markup, safe to put in a page as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from markupsafe import Markup, escape

# -- what is charted -----------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Span:
    """A window of time charted in equal intervals, ending with the current one."""

    name: str
    caption: str
    step: timedelta
    count: int
    label: str   # strftime of an interval's start

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """(since, until): ``count`` whole intervals, the last one holding ``now``."""
        until = EPOCH + ((now - EPOCH) // self.step + 1) * self.step
        return until - self.count * self.step, until


SPANS = (Span("hour", "per minute, the last hour", timedelta(minutes=1), 60, "%H:%M"),
         Span("day", "per hour, the last day", timedelta(hours=1), 24, "%H:00"))

#: The bins of the lateness and duration distributions (seconds), and their names.
EDGES = (1, 5, 15, 60, 300, 900, 3600)
BINS = ("< 1 s", "1–5 s", "5–15 s", "15 s–1 min", "1–5 min", "5–15 min", "15 min–1 h", "≥ 1 h")
#: How many of a cron's last runs its durations chart shows.
CRON_RUNS = 30

# Each series: a name, a fill (a colour, or a pattern of defs), told apart without colour.
_SOLID, _HATCH, _DOTS = "solid", "hatch", "dots"
_FILLS = {_SOLID: "#2456c7", _HATCH: "#b3261e", _DOTS: "#6b7280"}


def ends_chart(store: Any, now: datetime, span: Span, site: str | None = None,
               type: str | None = None) -> Markup:
    """Jobs ended per interval of ``span``: succeeded, failed, canceled, stacked."""
    since, until = span.window(now)
    counts = store.count_ends(since, until, span.step, site=site, type=type)
    labels = [c["start"].strftime(span.label) for c in counts]
    scope = [f"site {site}"] * (site is not None) + [f"type {type}"] * (type is not None)
    title = f"Jobs finished {span.caption}" + (f" ({', '.join(scope)})" if scope else "")
    series = [("succeeded", [c["success"] for c in counts], _SOLID),
              ("failed", [c["failed"] for c in counts], _HATCH),
              ("canceled", [c["canceled"] for c in counts], _DOTS)]
    totals = [sum(v) for v in zip(*(s[1] for s in series), strict=True)]
    desc = (f"{sum(totals)} finished, {sum(series[1][1])} failed, {sum(series[2][1])} "
            f"canceled from {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC")
    table = _table(("Interval from (UTC)", "Finished", "Succeeded", "Failed", "Canceled"),
                   [(f"{c['start']:%Y-%m-%d %H:%M}", total, *(s[1][i] for s in series))
                    for i, (c, total) in enumerate(zip(counts, totals, strict=True))])
    return _figure(f"ends-{span.name}", title, desc, labels, series, table, "jobs")


def timing_charts(store: Any, now: datetime, site: str | None = None,
                  type: str | None = None) -> list[Markup]:
    """Per job type, the lateness and duration distributions of the last day's runs."""
    since, until = SPANS[1].window(now)
    out = []
    found = store.job_timings(since, until, EDGES, site=site, type=type)
    for k, (name, stats) in enumerate(sorted(found.items())):
        for measure, what in (("lateness", "Lateness (start − due)"),
                              ("duration", "Run duration")):
            d = stats[measure]
            desc = (f"{_runs(stats['count'])} of the last day: mean {seconds(d['mean'])}, "
                    f"max {seconds(d['max'])}")
            table = _table(("Range", "Runs"), list(zip(BINS, d["bins"], strict=True)))
            out.append(_figure(f"{measure}-{k}", f"{what} of {name} jobs", desc,
                               list(BINS), [("runs", d["bins"], _SOLID)], table, "runs",
                               values_shown=True, size=(400, 180)))
    return out


def cron_chart(jobs: Sequence[Any]) -> Markup | None:
    """The run durations of a cron's last runs (its jobs, newest first), oldest left;
    None when none has run."""
    runs = [j for j in reversed(jobs) if j.started_at is not None and j.finished_at is not None]
    if not runs:
        return None
    durations = [(j.finished_at - j.started_at).total_seconds() for j in runs]
    failed = [j.status.value != "success" for j in runs]
    labels = [f"#{j.id}" for j in runs]
    series = [("succeeded", [0.0 if f else d for d, f in zip(durations, failed, strict=True)],
               _SOLID),
              ("failed", [d if f else 0.0 for d, f in zip(durations, failed, strict=True)],
               _HATCH)]
    desc = (f"{_runs(len(runs))}: mean {seconds(sum(durations) / len(runs))}, "
            f"max {seconds(max(durations))}")
    table = _table(("Job", "Started (UTC)", "Duration", "Status"),
                   [(f"#{j.id}", f"{j.started_at:%Y-%m-%d %H:%M:%S}", seconds(d),
                     j.status.value) for j, d in zip(runs, durations, strict=True)])
    return _figure("cron-durations", f"Run durations of the last {_runs(len(runs))}", desc,
                   labels, series, table, "seconds", unit=seconds)


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def seconds(value: float) -> str:
    """A duration in words short enough for an axis: 0.25 s, 12 s, 3 min 4 s, 2 h 5 min."""
    if value < 10:
        return f"{value:.2f}".rstrip("0").rstrip(".") + " s"
    if value < 60:
        return f"{value:.0f} s"
    if value < 3600:
        minutes, rest = divmod(round(value), 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(round(value) // 60, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


# -- drawing -------------------------------------------------------------------------------

LEFT, RIGHT, TOP, BOTTOM = 56, 8, 30, 36


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> Markup:
    cells = "".join(f"<th scope=\"col\">{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(
        (f"<th scope=\"row\">{escape(v)}</th>" if i == 0 else f"<td>{escape(v)}</td>")
        for i, v in enumerate(r)) + "</tr>" for r in rows)
    return Markup(f"<thead><tr>{cells}</tr></thead><tbody>{body}</tbody>")


def _defs(chart: str) -> str:
    return (f'<defs><pattern id="{chart}-hatch" width="6" height="6" '
            'patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
            f'<rect width="6" height="6" fill="#fff"/><rect width="3" height="6" '
            f'fill="{_FILLS[_HATCH]}"/></pattern>'
            f'<pattern id="{chart}-dots" width="5" height="5" patternUnits="userSpaceOnUse">'
            f'<rect width="5" height="5" fill="#e5e7eb"/><circle cx="2.5" cy="2.5" r="1.3" '
            f'fill="{_FILLS[_DOTS]}"/></pattern></defs>')


def _fill(chart: str, style: str) -> str:
    return _FILLS[_SOLID] if style == _SOLID else f"url(#{chart}-{style})"


def _nice_top(value: float) -> float:
    """The y axis' top: ``value`` rounded up to 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def _figure(chart: str, title: str, desc: str, labels: Sequence[str],
            series: Sequence[tuple[str, Sequence[float], str]], table: Markup, what: str,
            values_shown: bool = False, unit: Any = None,
            size: tuple[int, int] = (720, 220)) -> Markup:
    """One stacked bar chart (a bar per label, the series stacked) with its legend, its
    axis, a ``<title>`` per bar, and ``table`` as the numbers under it."""
    show = unit or (lambda v: f"{v:g}")
    W, H = size  # noqa: N806 - the drawing's width and height
    totals = [sum(s[1][i] for s in series) for i in range(len(labels))]
    top = _nice_top(max(totals, default=0))
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    slot = plot_w / max(len(labels), 1)
    bar = max(slot * 0.8, 1.0)
    parts = [f'<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" role="img" '
             f'aria-labelledby="{chart}-title {chart}-desc" data-chart="{chart}" '
             'xmlns="http://www.w3.org/2000/svg">',
             f'<title id="{chart}-title">{escape(title)}</title>',
             f'<desc id="{chart}-desc">{escape(desc)}</desc>', _defs(chart)]
    for i in range(3):   # the y axis: 0, half (unless a count would be a fraction), top
        value = top * i / 2
        if i == 1 and unit is None and value != int(value):
            continue
        y = TOP + plot_h - plot_h * i / 2
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#dde1e8"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" '
                     f'font-size="11">{escape(show(value))}</text>')
    every = max(1, math.ceil(len(labels) * 60 / W))
    for i, label in enumerate(labels):
        x = LEFT + i * slot + (slot - bar) / 2
        y = TOP + plot_h
        numbers = ", ".join(f"{show(s[1][i])} {s[0]}" for s in series if s[1][i]) \
            or f"no {what}"
        parts.append(f'<g class="bar" data-label="{escape(label)}" '
                     f'data-value="{totals[i]:g}"><title>{escape(label)}: '
                     f'{escape(numbers)}</title>')
        for name, values, style in series:
            h = plot_h * values[i] / top
            if h > 0:
                y -= h
                parts.append(f'<rect class="s-{escape(name)}" x="{x:.1f}" y="{y:.1f}" '
                             f'width="{bar:.1f}" height="{h:.1f}" '
                             f'fill="{_fill(chart, style)}" stroke="#1d2330" '
                             'stroke-width="0.5"/>')
        if values_shown and totals[i]:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" '
                         f'font-size="11">{escape(show(totals[i]))}</text>')
        parts.append("</g>")
        if i % every == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{H - BOTTOM + 14}" '
                         f'text-anchor="middle" font-size="10">{escape(label)}</text>')
    x = LEFT
    for name, _values, style in series if len(series) > 1 else ():   # the legend
        parts.append(f'<rect x="{x}" y="8" width="14" height="14" '
                     f'fill="{_fill(chart, style)}" stroke="#1d2330" stroke-width="0.5"/>'
                     f'<text x="{x + 18}" y="19" font-size="12">{escape(name)}</text>')
        x += 30 + 8 * len(name)
    parts.append(f'<text x="{W - RIGHT}" y="19" text-anchor="end" font-size="11">'
                 f'{escape(what)}</text></svg>')
    return Markup(
        f'<figure class="chart" id="{chart}"><figcaption>{escape(title)}</figcaption>'
        + "".join(parts)
        + f'<p class="chart-desc">{escape(desc)}</p>'
        f'<details class="chart-numbers"><summary>The numbers of “{escape(title)}”</summary>'
        f'<table class="chart-data" data-chart="{chart}">{table}</table></details></figure>')


def chart_context(store: Any, now: datetime, site: str | None = None,
                  type: str | None = None, timings: bool = False) -> Mapping[str, Any]:
    """What ``_charts.html`` shows: the ended-jobs charts of every span (and, with
    ``timings``, the distributions per type) of ``site`` and ``type``, as of ``now``."""
    return {"ends": [ends_chart(store, now, span, site, type) for span in SPANS],
            "timings": timing_charts(store, now, site, type) if timings else [],
            "as_of": now}
