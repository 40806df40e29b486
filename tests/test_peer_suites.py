"""The test cases of croniter's and cronsim's own suites, run against cronkit's engine.

The cases were recorded from the peers' suites by ``tests/peers/extract.py`` (its
docstring says how, and what could not be recorded). Each case either agrees with
cronkit or is listed in ``tests/peers/differences.json`` with the rule that explains
the difference; the rules are explained in ``docs/cron-semantics.rst``. A listed case
that agrees fails, as does an unlisted one that disagrees: the list stays exact.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cronkit import cronexpr, schedule
from cronkit.schedule import CronSyntaxError

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "tests" / "peers"
PAGE = ROOT / "docs" / "cron-semantics.rst"


def _load(name: str) -> list[dict]:
    return json.loads((PEERS / name).read_text(encoding="utf-8"))


CASES = _load("croniter_cases.json") + _load("cronsim_cases.json")
BY_ID = {case["id"]: case for case in CASES}
DIFFERENCES: dict[str, str] = json.loads((PEERS / "differences.json").read_text("utf-8"))

# A field that is croniter's hashed or random value: H, H/5, H(0-29), R ...
_HASHED = re.compile(r"(?:^|[\s,])[HhRr](?:$|[\s,/(])")


class Disagrees(Exception):
    """cronkit's answer is not the peer's."""


def _expression(case: dict) -> schedule.Schedule:
    expr = case["expr"]
    if case["seconds_first"] or case["hash_id"] is not None or _HASHED.search(expr):
        expr = cronexpr.expand(expr, hash_id=case["hash_id"],
                               seconds_first=case["seconds_first"])
    return schedule.parse(expr)


def _zone(case: dict, start: datetime) -> tzinfo:
    if case["tz"]:
        return ZoneInfo(case["tz"])
    if start.tzinfo is not None:
        offset = start.utcoffset()
        assert offset is not None
        return timezone(offset)
    return UTC


def _instant(text: str, tz: tzinfo) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def _check(got: datetime | None, expected, tz: tzinfo, where: str) -> None:
    if isinstance(expected, dict) and expected.get("never"):
        if got is not None:
            raise Disagrees(f"{where}: the peer expects no time, cronkit gives {got}")
        return
    if got is None:
        raise Disagrees(f"{where}: cronkit gives no time, the peer expects {expected}")
    if isinstance(expected, str):
        if got != _instant(expected, tz):
            raise Disagrees(f"{where}: expected {expected}, cronkit gives "
                            f"{got.astimezone(tz).isoformat()}")
        return
    local = got.astimezone(tz)
    seen = {name: (local.isoweekday() if name == "isoweekday" else getattr(local, name))
            for name in expected["fields"]}
    if seen != expected["fields"]:
        raise Disagrees(f"{where}: expected {expected['fields']}, cronkit gives {local}")


def _step(sched: schedule.Schedule, when: datetime, tz: tzinfo, direction: str):
    try:
        if direction == "next":
            return sched.next_after(when, tz)
        return sched.previous_before(when, tz)
    except CronSyntaxError:  # "it never fires": no next (or previous) time
        return None


def run_case(case: dict) -> None:
    """Return if cronkit agrees with the peer's case; raise Disagrees if not."""
    if case.get("refused"):
        try:
            sched = _expression(case)
        except CronSyntaxError:
            return
        raise Disagrees(f"the peer refuses {case['expr']!r}, cronkit accepts it: {sched!r}")
    start = datetime.fromisoformat(case["start"])
    tz = _zone(case, start)
    if start.tzinfo is None:
        start = start.replace(tzinfo=tz)
    try:
        sched = _expression(case)
    except CronSyntaxError as exc:
        if [e for e in case.get("next", []) + case.get("prev", [])
                if not (isinstance(e, dict) and e.get("never"))]:
            raise Disagrees(f"cronkit refuses {case['expr']!r}: {exc.reason}") from None
        return  # the peer expects no time at all, cronkit refuses: it never fires
    if "roundtrip" in case:
        times: list[datetime] = []
        at: datetime | None = start
        for k in range(case["roundtrip"]):
            assert at is not None
            at = _step(sched, at, tz, "next")
            if at is None:
                raise Disagrees(f"next #{k}: cronkit gives no time")
            times.append(at)
        at = times.pop()
        for k, expected in enumerate(reversed(times)):
            assert at is not None
            at = _step(sched, at, tz, "prev")
            if at != expected:
                raise Disagrees(f"prev #{k}: cronkit gives {at}, its next gave {expected}")
        return
    for direction in ("next", "prev"):
        when: datetime | None = start
        for k, expected in enumerate(case.get(direction, ())):
            assert when is not None
            when = _step(sched, when, tz, direction)
            if expected is not None:
                _check(when, expected, tz, f"{direction} #{k}")
            elif when is None:
                raise Disagrees(f"{direction} #{k}: cronkit gives no time")
            if when is None:
                break


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_peer_case(case):
    rule = DIFFERENCES.get(case["id"])
    try:
        run_case(case)
    except Disagrees as exc:
        if rule is None:
            pytest.fail(f"{case['expr']!r} from {case.get('start')} in {case.get('tz')}: "
                        f"{exc} (not listed in differences.json)")
        return
    if rule is not None:
        pytest.fail(f"listed as {rule!r} in differences.json, but cronkit agrees")


def test_differences_name_cases():
    assert set(DIFFERENCES) <= set(BY_ID)


def test_the_page_explains_every_rule_and_lists_exactly_the_differences():
    text = PAGE.read_text(encoding="utf-8")
    for rule_id in set(DIFFERENCES.values()):
        assert f".. _rule-{rule_id}:" in text, rule_id
    listed: dict[str, str] = {}
    rule: str | None = None
    for line in text.splitlines():
        label = re.fullmatch(r"\.\. _rule-([\w-]+):", line)
        if label:
            rule = label.group(1)
        item = re.fullmatch(r"\* ``((?:croniter|cronsim):[^`]+)``", line)
        if item:
            assert rule is not None, line
            listed[item.group(1)] = rule
    assert set(listed) <= set(BY_ID)
    assert listed == DIFFERENCES


def test_cases_are_from_the_suites():
    for case in CASES:
        origin = case["origin"]
        assert origin["repo"] in ("pallets-eco/croniter", "cuu508/cronsim")
        assert re.fullmatch(r"[0-9a-f]{40}", origin["commit"])
        assert case["id"].startswith(("croniter:", "cronsim:"))
        assert case["id"].split(":")[1] == origin["test"]

