"""What every command shares: the context it gets, its errors, tables, progress bars,
argument types and the global options."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, Self, TextIO

from .. import cli  # the package: WATCH_INTERVAL is read from it at call time
from ..exceptions import CronkitError
from ..model.validation import text_problem

if TYPE_CHECKING:
    from ..jobs import Job
    from ..kit import Cronkit
    from ..site import Site

PROG = "cronkit"
BAR_WIDTH = 30
LIST_LIMIT = 50
MAX_SECONDS = 10 * 365 * 86400   # the longest time in seconds an option takes: ten years
MAX_DAYS = 100 * 365             # the longest retention in days: a hundred years
MAX_ID = 2 ** 63 - 1             # the largest job id a store holds
MAX_SITE_NAME = 200              # the longest site name a store holds


class UsageError(Exception):
    """A mistake on the command line: reported as one line, exit code 2."""


class Terminated(Exception):  # noqa: N818 - a signal, not an error
    """SIGTERM reached a command that serves (``web``, ``run``): stop cleanly, exit 0."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so that every
    error is one line (subparsers inherit the class)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


# -- output helpers -----------------------------------------------------------


def _dt(value: datetime | None) -> str:
    if value is None:
        return "-"
    if value.tzinfo is None:  # pragma: no cover - stores return aware datetimes
        value = value.replace(tzinfo=UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S %Z")


def _table_lines(rows: list[list[Any]], headers: list[str]) -> list[str]:
    cells = [headers] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in cells]


def _table(rows: list[list[Any]], headers: list[str], out: TextIO, indent: str = "") -> None:
    for line in _table_lines(rows, headers):
        print(indent + line, file=out)


def _one_line(text: str | None, width: int = 50) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _bar(progress: int | None) -> str:
    progress = max(0, min(100, progress or 0))
    full = BAR_WIDTH * progress // 100
    return f"[{'#' * full}{'-' * (BAR_WIDTH - full)}] {progress:3d}%"


class _ProgressView:
    """Shows a job's progress on ``stream``: a bar redrawn in place on a terminal; one
    plain line per change otherwise (logs, pipes: ``job 7 running 50%  text``), no bar
    and no carriage return. Either way the output ends with a newline."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last: tuple[str, int | None, str | None] | None = None
        self.width = 0

    def show(self, job: Job) -> None:
        state = (job.status.value, job.progress, job.status_text)
        if state == self.last:
            return
        self.last = state
        lines = (job.status_text or "").strip().splitlines()
        text = _one_line(lines[-1]) if lines else ""
        if self.tty:
            line = f"job {job.id} {_bar(job.progress)} {job.status.value}"
            line += f"  {text}" if text else ""
            pad = max(0, self.width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self.width = len(line)
        else:
            progress = max(0, min(100, job.progress or 0))
            line = f"job {job.id} {job.status.value} {progress}%"
            self.stream.write(line + (f"  {text}" if text else "") + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()


class _Follower:
    """Shows the progress of a job run in the foreground, from a background thread
    polling the store (every ``cronkit.cli.WATCH_INTERVAL`` seconds)."""

    def __init__(self, site: Site, job_id: int | None, stream: TextIO) -> None:
        self.site, self.job_id = site, job_id
        self.view = _ProgressView(stream)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cronkit-progress", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(cli.WATCH_INTERVAL):
            try:
                self.view.show(self.site.jobs.get(self.job_id))
            except CronkitError:   # the job is gone: nothing more to draw
                return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self.view.show(self.site.jobs.get(self.job_id))
        except CronkitError:
            pass
        self.view.end()


# -- the context every command gets -------------------------------------------


class Context:
    """The parsed options, and the kit and site built from them on first use."""

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args, self.out, self.err = args, out, err
        self.store: str | None = _merged(args, "store")
        self.site_name: str = _merged(args, "site") or "default"
        problem = text_problem(self.site_name) or (
            f"longer than {MAX_SITE_NAME} characters" if len(self.site_name) > MAX_SITE_NAME
            else None)
        if problem is not None:
            raise UsageError(f"invalid --site {self.site_name!r}: {problem}")
        self._kit: Cronkit | None = None
        self._site_checked = False

    @property
    def one_shot(self) -> bool:
        """Whether the command does one thing and ends (not ``worker``, ``run``, ``web``)."""
        return getattr(self.args, "command", None) not in SERVING

    @property
    def kit(self) -> Cronkit:
        if self._kit is None:
            from ..kit import Cronkit
            self._kit = Cronkit(store=self._open_store())
        return self._kit

    def _open_store(self) -> Any:
        """The store URL, or for a one-shot command on PostgreSQL the store itself,
        opened with a budget of ONE_SHOT_RETRY seconds for its calls (connecting
        included): an unreachable server is an error in seconds, not after the
        minute of retries a worker rides out a failover with."""
        from ..stores import store_url
        url = store_url(self.store)
        scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
        if not self.one_shot or scheme not in ("postgresql", "postgres"):
            return self.store
        from ..stores import postgres
        # Its retries are not announced: in these seconds the error comes, in one line.
        quiet, postgres.log.disabled = postgres.log.disabled, True
        try:
            return postgres.PostgresStore(url, retry_for=ONE_SHOT_RETRY)
        finally:
            postgres.log.disabled = quiet

    @property
    def site(self) -> Site:
        if not self._site_checked:
            self._check_site()
            self._site_checked = True
        return self.kit.site(self.site_name)

    def _check_site(self) -> None:
        """A command that lists what a site holds (LISTING) refuses a name the store
        does not know, which it would show as an empty site; the ``default`` site is
        always known. The commands that create what they name take any; those that
        name a cron or a job say when it is not in the site."""
        args = self.args
        command = getattr(args, "command", None)
        if self.site_name == "default" or (
                command, getattr(args, f"{command}_action", None)) not in LISTING:
            return
        kit = self.kit
        known = set(kit.site_names()) | set(kit.store.paused_sites())
        if self.site_name in known or kit.store.list_jobs(site=self.site_name, limit=1):
            return
        names = ", ".join(repr(n) for n in sorted(known)) or "none"
        raise UsageError(f"no site {self.site_name!r} in store "
                         f"{shown_store(getattr(kit.store, 'url', self.store))} (--site): "
                         f"no crontab, job or pause of that site; the sites it knows: {names}")

    def print(self, *parts: object) -> None:
        print(*parts, file=self.out)

    def note(self, *parts: object) -> None:
        print(*parts, file=self.err)

    def close(self) -> None:
        if self._kit is not None:
            self._kit.close()


_LEVELS = ("g0", "g1", "g2")   # the top parser, a command, a subcommand
#: The commands that serve until stopped: they ride out a store's outage.
SERVING = ("worker", "run", "web")
#: How long a one-shot command's store calls (connecting included) may retry, seconds.
ONE_SHOT_RETRY = 3.0
#: The commands that list what a site holds: a site the store does not know is an error.
LISTING = {("crons", "list"), ("jobs", "list"), ("jobs", "paused"), ("profile", "export")}


def shown_store(url: str | None, quoted: bool = True) -> str:
    """A store URL as messages show it: without its password (quoted by default)."""
    from ..stores import store_url
    url = store_url(url)
    text = repr(url) if quoted else url
    if "@" in url:
        from ..stores.postgres import hide_password
        return hide_password(text, url)
    return text


def _merged(args: argparse.Namespace, name: str) -> Any:
    """A global option given at several levels: the innermost wins."""
    for level in reversed(_LEVELS):
        value = getattr(args, f"{level}_{name}", None)
        if value is not None:
            return value
    return None


def _imports(args: argparse.Namespace) -> list[str]:
    return [m for level in _LEVELS for m in (getattr(args, f"{level}_imports", None) or [])]


def current_folder_on_path() -> None:
    """Put the current folder first on the module path, as ``python -m cronkit`` has it
    (and uvicorn and celery do): the console script's path starts with its own folder,
    so ``--import``, ZCML dotted names and ``--profile`` modules would not be found."""
    try:
        cwd = os.getcwd()
    except OSError:  # pragma: no cover - the folder was deleted under us: nothing to import
        return
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def import_modules(names: list[str]) -> None:
    """Import the modules that register runners, the current folder first on the
    path (:func:`current_folder_on_path`)."""
    current_folder_on_path()
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise UsageError(f"cannot import module {name!r} (--import): {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a broken user module: say so in one line
            raise UsageError(f"importing module {name!r} (--import) failed: "
                             f"{type(exc).__name__}: {exc}") from None


# -- options and argument types ---------------------------------------------------


def _globals(parser: argparse.ArgumentParser, level: str) -> None:
    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument("--store", dest=f"{level}_store", metavar="URL",
                       help="store URL (default: $CRONKIT_STORE, else sqlite:///cronkit.db)")
    group.add_argument("--site", dest=f"{level}_site", metavar="NAME",
                       help="site name (default: default)")
    group.add_argument("--import", dest=f"{level}_imports", metavar="MODULE", action="append",
                       help="import MODULE first, to register its runners (repeatable)")


def _non_negative(text: str, high: float = MAX_SECONDS) -> float:
    """A number of seconds from 0 to ``high`` (ten years); NaN and infinities refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    if not value <= high:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to {high:g}, got {text!r}")
    return value


def _aware_time(text: str) -> datetime:
    """An ISO-8601 date and time with its offset (``2030-01-01T09:00+01:00``, ``...Z``),
    as UTC; a naive one is refused: the CLI never guesses a time zone."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 date and time with an offset, got {text!r}") from None
    if when.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"expected an offset (+00:00, Z) in {text!r}: a naive time is ambiguous")
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise argparse.ArgumentTypeError(f"out of range: {text!r}") from None


def _days(text: str) -> float:
    """A number of days from 0 to MAX_DAYS."""
    try:
        return _non_negative(text, MAX_DAYS)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("number of seconds",
                                                          "number of days")) from None


def _positive_float(text: str) -> float:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _int_in(text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
    if value > high:
        raise argparse.ArgumentTypeError(f"expected an integer <= {high}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _int_in(text, 1, MAX_ID)


def _job_id(text: str) -> int:
    """A job id: an integer from 1 to the largest a store holds."""
    try:
        int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    return _int_in(text, 1, MAX_ID)


def _priority(text: str) -> int:
    """A job priority: an integer the store holds (32 bits)."""
    return _int_in(text, -(2 ** 31 - 1), 2 ** 31 - 1)


def _port(text: str) -> int:
    return _int_in(text, 0, 65535)
