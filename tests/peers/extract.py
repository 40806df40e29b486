"""Extract the test cases of croniter's and cronsim's own test suites (run by hand).

Usage::

    python tests/peers/extract.py --croniter CRONITER_GIT_DIR --cronsim CRONSIM_GIT_DIR

Each argument is a clone (or bare git directory) of the peer's repository. The script
exports the tree at ``HEAD`` into a temporary directory, imports the peer's library
and its test modules *from that tree*, and runs the peer's whole test suite in this
process with the peer's class (``croniter``, ``CronSim``) replaced, in the test
modules only, by a recording subclass. It writes ``croniter_cases.json`` and
``cronsim_cases.json`` next to itself. The Python that runs it needs the peer's test
dependencies (croniter's suite imports ``pytz`` and ``dateutil``); the installed
croniter is not used.

How a case is recorded (mechanically, nothing is picked by hand):

* Every object of the peer's class that a test builds (built from the test's own
  code, loops and helpers included, not from inside the peer's library) is followed:
  each ``get_next``/``get_prev``/``next()``/``all_next``/``all_prev`` call is a step.
  Consecutive steps in one direction, each starting where the previous one ended,
  make one case (a ``start_time=`` argument, ``set_current`` or
  ``update_current=False`` starts a new case).
* A step's expected value is what the test checks of it. Results are handed to the
  test as a ``datetime`` (or ``float``) subclass that notes what the test reads:
  comparing it for equality, ``isoformat()``, ``str()``, ``timestamp()``,
  ``astimezone()``, ``replace()`` or ``strftime()`` checks the whole time (the step
  is recorded as an ISO-8601 string, with the offset when the peer's result was
  aware); reading ``year``, ``month``, ``day``, ``hour``, ``minute``, ``second`` or
  ``isoweekday()``/``weekday()`` checks those fields only (recorded as
  ``{"fields": {...}}``, in the result's wall time). A step the test never looks at
  (``for i in range(39): itr.get_next()``) is ``null``: it is still taken, as the
  peer takes it. Values come from a run of the peer's own suite in which the test
  passed, so they are the values the test asserts; a test that fails or errors
  contributes nothing.
* A step where the peer raises ``CroniterBadDateError`` (or cronsim's iterator
  stops) and the test passes records ``{"never": true}``: the peer expects no
  further time.
* Refusals: a construction from the test that raises the peer's syntax error
  (``CroniterBadCronError`` and its subclasses, ``CronSimError``) in a passing test,
  and every ``croniter.is_valid(...)`` call from a test that returns ``False``,
  record ``"refused": true``.
* cronsim's ``TestReverse`` runs an expression forward five times and then checks
  that the reverse iterator, started at the fifth result, gives the first four back.
  The expected times are cronsim's own output, checked only against each other; the
  case is recorded as ``"roundtrip": 5`` (cronkit must reproduce the property with
  its own times).

Fields of a case: ``id`` ("<suite>:<Class.test>:<n>"), ``origin`` (repository,
commit, path, test, line of the construction), ``expr``, ``start`` (ISO-8601; with
an offset when the peer's start was aware), ``tz`` (IANA name of the start's zone,
or null: a naive start is UTC, an aware start with a fixed offset runs in that
offset), ``next``/``prev``, ``refused``, ``hash_id``, ``seconds_first``
(croniter: ``second_at_beginning=True``; cronsim always reads a sixth field as the
*first*, seconds, field, so every six-field cronsim case has it) and ``options``
(the other keyword arguments of croniter that change its answers: ``day_or``,
``implement_cron_bug``, ``expand_from_start_time``, ``max_years_between_matches``,
``strict``).

Not extractable, and why:

* Tests of the peers' Python API rather than of times: ``expanded``/``expand()``
  field lists, ``CronSim``'s parsed sets (cronsim's ``TestParse``,
  ``TestOptimizations``), ``explain()``, ``ret_type`` and type errors, ``tzinfo``
  identity of results, ``get_current``, pickling, speed tests: no step is checked.
* ``croniter.match``/``match_range`` (is this instant a firing time?) and
  ``croniter_range`` (all times between two bounds, ends included or not): other
  shapes than (expression, start, expected next/previous times); the ``croniter``
  objects ``croniter_range`` builds inside the library are not followed.
* ``is_valid`` returning ``True``: acceptance without any time is not a case here.
* Checks that compare two results of the peer with each other (other than cronsim's
  round trip) or do arithmetic on them (``n2 - n1``, ``<``, ``>=``), as croniter's
  random ``R`` tests and speed tests do: nothing absolute is asserted.
* Objects built without a start (``croniter(expr)``: the current time) and starts in
  a zone without a name (``tzlocal()``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import subprocess
import sys
import tarfile
import tempfile
import traceback
import unittest
from io import BytesIO
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIELDS = ("year", "month", "day", "hour", "minute", "second", "microsecond")
WHOLE = ("isoformat", "timestamp", "astimezone", "replace", "strftime", "ctime", "utcoffset")
OPTIONS = ("day_or", "implement_cron_bug", "expand_from_start_time",
           "max_years_between_matches", "strict", "strict_year")

# -- the state of one run --------------------------------------------------------------


class Run:
    """What the running test recorded; reset before each test."""

    library_files: tuple[str, ...] = ()
    test_dir = ""
    objects: list[Followed] = []
    refusals: list[dict] = []


def _in_library(filename: str) -> bool:
    return filename.startswith(Run.library_files) and not filename.startswith(Run.test_dir)


def _outside_library(depth: int = 2) -> bool:
    """True when the caller ``depth`` frames up is not the peer's library code."""
    return not _in_library(sys._getframe(depth).f_code.co_filename)


def _test_line() -> int:
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename.startswith(Run.test_dir):
            return frame.f_lineno
        frame = frame.f_back
    return 0


class Step:
    __slots__ = ("direction", "fields", "never", "relations", "result", "whole")

    def __init__(self, direction: str, result) -> None:
        self.direction = direction
        self.result = result  # a datetime, a float timestamp, or None (no time)
        self.fields: dict[str, int] = {}
        self.whole = False
        self.never = result is None
        self.relations: list[Step] = []


def _step_of(obj) -> Step | None:
    try:
        return object.__getattribute__(obj, "_step")
    except AttributeError:
        return None


class TrackedInt(int):
    """A field of a result (``n.day``, ``n.isoweekday()``, ``n.minute - 1``): an
    equality check on it, or rendering it as text, asserts that field."""

    def __new__(cls, value, step, field):
        obj = super().__new__(cls, value)
        obj._step, obj._field = step, field
        return obj

    def _asserted(self) -> None:
        if _outside_library(3):
            step = self._step
            step.fields[self._field] = (step.result.isoweekday() if self._field == "isoweekday"
                                        else getattr(step.result, self._field))

    def __eq__(self, other):
        self._asserted()
        return int(self) == other

    def __ne__(self, other):
        self._asserted()
        return int(self) != other

    __hash__ = int.__hash__

    def __str__(self):  # rendered as text by the test: compared as text
        self._asserted()
        return int.__repr__(self)

    def __format__(self, spec):
        self._asserted()
        return format(int(self), spec)

    def __add__(self, other):
        return TrackedInt(int(self) + other, self._step, self._field)

    __radd__ = __add__

    def __sub__(self, other):
        return TrackedInt(int(self) - other, self._step, self._field)

    def __rsub__(self, other):
        return TrackedInt(other - int(self), self._step, self._field)


class TrackedDatetime(_dt.datetime):
    def __getattribute__(self, name):
        value = super().__getattribute__(name)
        if name in FIELDS or name in WHOLE or name in ("isoweekday", "weekday"):
            step = _step_of(self)
            if step is None or not _outside_library(2):
                return value
            if name in FIELDS:
                return TrackedInt(value, step, name)
            if name in ("isoweekday", "weekday"):
                return lambda: TrackedInt(value(), step, "isoweekday") if name == "isoweekday" \
                    else _Weekday(value(), step)
            step.whole = True
        return value

    def __eq__(self, other):
        _equality(self, other)
        return _dt.datetime.__eq__(self, other)

    def __ne__(self, other):
        _equality(self, other)
        return _dt.datetime.__ne__(self, other)

    __hash__ = _dt.datetime.__hash__

    def __str__(self):
        step = _step_of(self)
        if step is not None and _outside_library(2):
            step.whole = True
        return _dt.datetime.__str__(self)


class _Weekday(TrackedInt):
    """``weekday()`` (Monday 0): asserting it asserts the ISO weekday."""

    def __new__(cls, value, step):
        return super().__new__(cls, value, step, "isoweekday")


class TrackedFloat(float):
    def __eq__(self, other):
        _equality(self, other)
        return float.__eq__(self, other)

    def __ne__(self, other):
        _equality(self, other)
        return float.__ne__(self, other)

    __hash__ = float.__hash__


def _equality(obj, other) -> None:
    try:
        step = object.__getattribute__(obj, "_step")
    except AttributeError:
        return
    if not _outside_library(3):
        return
    try:
        other_step = object.__getattribute__(other, "_step")
    except AttributeError:
        step.whole = True
        return
    step.relations.append(other_step)
    other_step.relations.append(step)


def _track(result, step: Step):
    if isinstance(result, _dt.datetime):
        tracked = TrackedDatetime(*result.timetuple()[:6], result.microsecond,
                                  tzinfo=result.tzinfo, fold=result.fold)
    else:
        tracked = TrackedFloat(result)
    object.__setattr__(tracked, "_step", step)
    return tracked


class Followed:
    """One object of the peer's class built by a test: its start, options and steps."""

    def __init__(self, expr, start, kwargs, line, origin_step=None) -> None:
        self.expr = expr
        self.start = start
        self.kwargs = kwargs
        self.line = line
        self.origin_step = origin_step  # cronsim: started at a result of another object
        # [(start instant or datetime, tzinfo, [Step, ...])]
        self.segments: list[tuple[object, list[Step]]] = []
        self._position = None
        self.unknown_start = None

    def step(self, position, direction: str, result) -> Step:
        step = Step(direction, result)
        if (not self.segments or position != self._position
                or self.segments[-1][1][-1].direction != direction):
            self.segments.append((position, []))
        self.segments[-1][1].append(step)
        self._position = result
        return step


# -- croniter -------------------------------------------------------------------------


def croniter_recorder(croniter_cls, bad_cron, bad_date):
    class Recorded(croniter_cls):
        def __init__(self, expr_format, start_time=None, *args, **kwargs):
            outside = _outside_library()
            try:
                super().__init__(expr_format, start_time, *args, **kwargs)
            except bad_cron:
                if outside:
                    Run.refusals.append({"expr": expr_format, "kwargs": kwargs,
                                         "line": _test_line()})
                raise
            self._followed = None
            if outside:
                given = start_time
                self._followed = Followed(expr_format, given, kwargs, _test_line())
                Run.objects.append(self._followed)
                self._followed._position = self._start_key()
                if start_time is None:  # the current time: not reproducible
                    self._followed.unknown_start = self._start_key()

        def _start_key(self):
            return (self.cur, self.tzinfo)

        def _get_next(self, ret_type=None, start_time=None, is_prev=None,
                      update_current=None):
            followed = getattr(self, "_followed", None)
            if followed is None:
                return super()._get_next(ret_type, start_time, is_prev, update_current)
            if start_time is not None:
                self.set_current(start_time, force=True)
            position = self._start_key()
            direction = "prev" if (is_prev if is_prev is not None else self._is_prev) \
                else "next"
            try:
                result = super()._get_next(ret_type, None, is_prev, update_current)
            except bad_date:
                followed.step(position, direction, None)
                raise
            if isinstance(result, _dt.datetime):
                value = result
            else:
                value = self.timestamp_to_datetime(result)
                if self.tzinfo is None:
                    value = value.replace(tzinfo=_dt.UTC)
            step = followed.step(position, direction, value)
            if update_current is False:
                followed._position = None
            else:
                followed._position = self._start_key()
            return _track(result, step)

        __next__ = next = _get_next

        @classmethod
        def is_valid(cls, expression, *args, **kwargs):
            answer = super().is_valid(expression, *args, **kwargs)
            if not answer and _outside_library():
                Run.refusals.append({"expr": expression, "kwargs": kwargs,
                                     "line": _test_line(), "is_valid": True})
            return answer

    return Recorded


# -- cronsim --------------------------------------------------------------------------


def cronsim_recorder(cronsim_cls, bad_cron):
    class Recorded(cronsim_cls):
        def __init__(self, expr, dt, reverse=False):
            outside = _outside_library()
            try:
                super().__init__(expr, dt, reverse)
            except bad_cron:
                if outside:
                    Run.refusals.append({"expr": expr, "kwargs": {}, "line": _test_line()})
                raise
            self._followed = None
            if outside:
                origin = None
                try:
                    origin = object.__getattribute__(dt, "_step")
                except AttributeError:
                    pass
                self._followed = Followed(expr, dt, {"reverse": reverse}, _test_line(),
                                          origin)
                Run.objects.append(self._followed)
                self._followed._position = "start"
                self._direction = "prev" if reverse else "next"

        def __next__(self):
            followed = self._followed
            if followed is None:
                return super().__next__()
            position = followed._position
            try:
                result = super().__next__()
            except StopIteration:
                followed.step(position, self._direction, None)
                raise
            step = followed.step(position, self._direction, result)
            return _track(result, step)

    return Recorded


# -- turning what was recorded into cases --------------------------------------------


def _tz_name(tz) -> str | None:
    if tz is None:
        return None
    key = getattr(tz, "key", None) or getattr(tz, "zone", None)
    if key:
        return str(key)
    filename = getattr(tz, "_filename", None)
    if filename:
        return str(filename).split("zoneinfo/")[-1]
    if tz is _dt.UTC or type(tz).__name__ == "tzutc":
        return "UTC"
    if isinstance(tz, _dt.timezone) or type(tz).__name__ in ("tzoffset", "FixedOffset",
                                                             "StaticTzInfo"):
        return None
    raise LookupError(f"zone without a name: {tz!r}")


def _iso(value) -> str:
    return value.isoformat()


def _start(position, given) -> tuple[str, str | None]:
    """ISO start and zone name of a segment."""
    if isinstance(position, tuple):  # croniter (cur, tzinfo)
        cur, tz = position
        if tz is None:
            naive = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=cur)
            if isinstance(given, _dt.datetime) and given.tzinfo is not None:
                return naive.replace(tzinfo=_dt.UTC).isoformat(), None
            if not isinstance(given, _dt.datetime) and given is not None:
                return naive.replace(tzinfo=_dt.UTC).isoformat(), None
            return naive.isoformat(), None
        aware = _dt.datetime.fromtimestamp(cur, tz)
        if hasattr(tz, "normalize"):
            aware = tz.normalize(aware)
        return aware.isoformat(), _tz_name(tz)
    value = position
    if value.tzinfo is None:
        return value.isoformat(), None
    return value.isoformat(), _tz_name(value.tzinfo)


def _expected(step: Step):
    if step.never:
        return {"never": True}
    if step.whole:
        return _iso(step.result)
    if step.fields:
        return {"fields": dict(sorted(step.fields.items()))}
    return None


def cases_of(followed: Followed, prefix: str, origin: dict, counter) -> list[dict]:
    cases = []
    for position, steps in followed.segments:
        expected = [_expected(s) for s in steps]
        while expected and expected[-1] is None:
            expected.pop()
        if not any(e is not None for e in expected):
            continue
        if followed.unknown_start is not None and position == followed.unknown_start:
            continue
        if position == "start":
            position = followed.start
        start, tz = _start(position, followed.start)
        case = base_case(prefix, origin, followed, counter, start, tz)
        case[steps[0].direction] = expected
        cases.append(case)
    return cases


def base_case(prefix, origin, followed, counter, start, tz) -> dict:
    kwargs = followed.kwargs
    expr = followed.expr
    seconds_first = bool(kwargs.get("second_at_beginning"))
    if prefix.startswith("cronsim"):
        seconds_first = len(expr.split()) == 6
    hash_id = kwargs.get("hash_id")
    if isinstance(hash_id, bytes):
        hash_id = hash_id.decode("utf-8")
    return {
        "id": f"{prefix}:{next(counter)}",
        "origin": {**origin, "line": followed.line},
        "expr": expr,
        "start": start,
        "tz": tz,
        "hash_id": hash_id,
        "seconds_first": seconds_first,
        "options": {k: kwargs[k] for k in OPTIONS if k in kwargs},
    }


def roundtrip_cases(objects, prefix, origin, counter) -> tuple[list[dict], set[int]]:
    """cronsim's TestReverse: a reverse object started at a forward object's result."""
    out, used = [], set()
    for rev in objects:
        if rev.origin_step is None:
            continue
        fwd = next((o for o in objects if o.segments and rev.origin_step in o.segments[0][1]),
                   None)
        if fwd is None or fwd.expr != rev.expr:
            continue
        fsteps = fwd.segments[0][1]
        k = fsteps.index(rev.origin_step)
        rsteps = rev.segments[0][1] if rev.segments else []
        pairs_ok = all(fsteps[k - 1 - i] in r.relations for i, r in enumerate(rsteps))
        if not pairs_ok or len(rsteps) != k:
            continue
        start, tz = _start(fwd.start, fwd.start)
        case = base_case(prefix, origin, fwd, counter, start, tz)
        case["roundtrip"] = k + 1
        out.append(case)
        used.update((id(fwd), id(rev)))
    return out, used


def refusal_cases(prefix, origin, counter) -> list[dict]:
    cases = []
    for r in Run.refusals:
        followed = Followed(r["expr"], None, r["kwargs"], r["line"])
        case = base_case(prefix, origin, followed, counter, None, None)
        del case["start"], case["tz"]
        case["refused"] = True
        cases.append(case)
    return cases


# -- running a suite -----------------------------------------------------------------


class Collector(unittest.TestResult):
    def __init__(self, suite_name, repo, commit, root, out):
        super().__init__()
        self.suite_name, self.repo, self.commit, self.root, self.out = (
            suite_name, repo, commit, root, out)
        self.skipped_objects = 0

    def startTest(self, test):
        super().startTest(test)
        Run.objects, Run.refusals = [], []
        self._failures = len(self.failures) + len(self.errors)

    def stopTest(self, test):
        super().stopTest(test)
        if len(self.failures) + len(self.errors) != self._failures:
            return  # the peer's own test did not pass: nothing it asserts is known
        module = sys.modules[type(test).__module__]
        path = Path(module.__file__).resolve().relative_to(self.root).as_posix()
        name = f"{type(test).__name__}.{test._testMethodName}"
        origin = {"repo": self.repo, "commit": self.commit, "path": path, "test": name}
        counter = iter(range(10_000))
        prefix = f"{self.suite_name}:{name}"
        cases, used = roundtrip_cases(Run.objects, prefix, origin, counter)
        for followed in Run.objects:
            if id(followed) in used:
                continue
            try:
                cases.extend(cases_of(followed, prefix, origin, counter))
            except LookupError:
                self.skipped_objects += 1
        cases.extend(refusal_cases(prefix, origin, counter))
        self.out.extend(cases)


def export(git_dir: str, into: Path) -> str:
    commit = subprocess.run(["git", "--git-dir", git_dir, "rev-parse", "HEAD"],
                            check=True, capture_output=True, text=True).stdout.strip()
    data = subprocess.run(["git", "--git-dir", git_dir, "archive", commit],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return commit


def run_suite(name, repo, commit, root: Path, lib_dir: Path, package: str, test_dir: Path,
              test_base: Path, patch) -> list[dict]:
    sys.path.insert(0, str(lib_dir))
    sys.path.insert(0, str(test_base))
    for mod in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[mod]
    lib = importlib.import_module(package)
    assert Path(lib.__file__).resolve().is_relative_to(root), lib.__file__
    Run.library_files = (str((lib_dir / package).resolve()),)
    Run.test_dir = str(test_dir.resolve())
    out: list[dict] = []
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for path in sorted(test_dir.glob("test_*.py")):
        modname = (path.relative_to(test_base).with_suffix("").as_posix()
                   .replace("/", "."))
        module = importlib.import_module(modname)
        patch(module, lib)
        suite.addTests(loader.loadTestsFromModule(module))
    result = Collector(name, repo, commit, root.resolve(), out)
    suite.run(result)
    for test, tb in result.failures + result.errors:
        print(f"{name}: peer test did not pass here: {test.id()}\n{tb}", file=sys.stderr)
    print(f"{name}: {result.testsRun} tests run, {len(out)} cases,"
          f" {result.skipped_objects} objects in unnamed zones skipped", file=sys.stderr)
    return out


def patch_croniter(module, lib):
    if hasattr(module, "croniter") and isinstance(module.croniter, type):
        module.croniter = croniter_recorder(lib.croniter, lib.CroniterBadCronError,
                                            lib.CroniterBadDateError)


def patch_cronsim(module, lib):
    if hasattr(module, "CronSim"):
        module.CronSim = cronsim_recorder(lib.CronSim, lib.CronSimError)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--croniter", required=True, help="croniter's git directory")
    parser.add_argument("--cronsim", required=True, help="cronsim's git directory")
    parser.add_argument("--croniter-repo", default="pallets-eco/croniter")
    parser.add_argument("--cronsim-repo", default="cuu508/cronsim")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "croniter"
        commit = export(args.croniter, root)
        cases = run_suite("croniter", args.croniter_repo, commit, root, root / "src",
                          "croniter", root / "src" / "croniter" / "tests", root / "src",
                          patch_croniter)
        write(HERE / "croniter_cases.json", cases)
        root = Path(tmp) / "cronsim"
        commit = export(args.cronsim, root)
        cases = run_suite("cronsim", args.cronsim_repo, commit, root, root, "cronsim",
                          root / "tests", root / "tests", patch_cronsim)
        write(HERE / "cronsim_cases.json", cases)


def write(path: Path, cases: list[dict]) -> None:
    text = json.dumps(cases, indent=1, ensure_ascii=False, default=str)
    path.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
