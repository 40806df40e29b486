"""Validation of the model's values: each check returns the clean value of one field,
or raises the model's typed error naming the field and the value refused.

Everything read from outside goes through here too: :func:`read_json` is the one
reader of JSON text (strict, depth-limited, UTF-8), :func:`json_problem` says what
would stop a value from being stored as JSON and read back (an environ, a job
payload), :func:`text_problem` the same of a text field. A value these accept can be
stored in every store, listed, exported and imported again.

Every check here is pure: nothing reads the clock or a store.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .. import cronexpr, schedule
from ..exceptions import InvalidCron

MISFIRE_POLICIES = ("once", "all", "skip")
MAX_LOGS_LIMIT = 25
DATEFMT = "%Y-%m-%d %H:%M:%S"  # collective.cron's log date format, read on load

#: The largest environ or job payload, as JSON text in UTF-8.
MAX_JSON_BYTES = 1024 * 1024
#: How deep lists and objects may nest in an environ or a job payload.
MAX_JSON_DEPTH = 64
#: How deep a JSON document read from outside may nest: an environ or a payload, and
#: what holds it (a crontab dump holds an environ three levels down).
MAX_DOCUMENT_DEPTH = MAX_JSON_DEPTH + 8
#: The longest text of each text field (the stores' columns hold no more).
MAX_TEXT_LENGTH = {"uid": 200, "name": 200, "periodicity": 200, "user": 200,
                   "timezone": 100, "expanded": 300}
#: The longest misfire_grace: ten years, in seconds.
MAX_MISFIRE_GRACE = 10 * 365 * 86400


def shown(value: Any, width: int = 80) -> str:
    """``repr(value)``, cut to ``width`` characters: what an error message shows."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):   # an int too long to write, lists too deep
        text = f"<int of {value.bit_length()} bits>" if isinstance(value, int) \
            else f"<{type(value).__name__}>"
    return text if len(text) <= width else text[:width - 5] + " ...>"


# -- text and JSON from outside -------------------------------------------------


def text_problem(value: str, nul: bool = True) -> str | None:
    """What stops the text ``value`` from being stored, or None: a character UTF-8
    cannot encode (a lone surrogate), or (unless ``nul`` is false: in JSON text, where
    it is escaped) a NUL character, which PostgreSQL refuses in text."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"character {value[exc.start]!r} at position {exc.start} cannot be encoded "
                "in UTF-8")
    if nul and "\x00" in value:
        return f"a NUL character at position {value.index(chr(0))}"
    return None


def storable_text(value: str) -> str:
    """What a running job reports (status text, printed output, notes, its end's
    message) as text every store holds: a character UTF-8 cannot encode (a lone
    surrogate) is written as its escape, a NUL as ``\\x00``. Reported text is kept,
    never refused: the job's work is not undone for how it spoke."""
    if text_problem(value) is None:
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _where(path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f"[{p!r}]" for p in path) or "the value"


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH,
                 max_int: int | None = None) -> tuple[list[str | int], str] | None:
    """What stops ``value`` from being stored as JSON and read back the same, or None:
    (the path to the part at fault, keys and indexes from the top; what is wrong).

    JSON values are None, bool, int, finite float, str (valid UTF-8 text), and lists
    (or tuples) and dicts of them, nested at most ``max_depth`` deep; dict keys are
    str (or what JSON writes as one: int, finite float, bool, None). The walk is not
    recursive, so no value can exhaust the stack here."""
    stack: list[tuple[Any, int, list[str | int]]] = [(value, 0, [])]
    while stack:
        item, depth, path = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            problem = text_problem(item, nul=False)
            if problem is not None:
                return path, problem
        elif isinstance(item, int):
            if max_int is not None and abs(item) > max_int:
                return path, f"integer out of range (over {max_int})"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return path, f"{item!r} is not a JSON number"
        elif isinstance(item, (dict, list, tuple)):
            if depth >= max_depth:
                return path, f"nested deeper than {max_depth} levels"
            if isinstance(item, dict):
                for key, sub in item.items():
                    if isinstance(key, str):
                        problem = text_problem(key, nul=False)
                        if problem is not None:
                            return path, f"key {shown(key)}: {problem}"
                    elif not (key is None or isinstance(key, (int, float))) \
                            or isinstance(key, float) and not math.isfinite(key):
                        return path, f"key {shown(key)} is not a JSON object key"
                    stack.append((sub, depth + 1, [*path, key if isinstance(key, str) else repr(key)]))
            else:
                stack.extend((sub, depth + 1, [*path, i]) for i, sub in enumerate(item))
        else:
            return path, f"{type(item).__name__} {shown(item)} is not a JSON value"
    return None


def json_bytes(value: Any) -> int:
    """The size of ``value`` (a valid JSON value) as JSON text in UTF-8."""
    return len(json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8"))


def read_json(data: str | bytes | bytearray, what: str, error: Callable[[str], Exception],
              max_depth: int = MAX_DOCUMENT_DEPTH, max_int: int | None = None,
              key_error: Callable[[str, str], Exception] | None = None) -> Any:
    """The value of the JSON text ``data`` (str, or bytes in UTF-8) read from outside;
    raise ``error(message)`` (the message names ``what``) unless it is strict JSON
    (no NaN or Infinity, no number out of range), nested at most ``max_depth`` deep,
    and all of its text valid UTF-8 (see :func:`json_problem`). With ``key_error``, a
    problem inside an object's member raises ``key_error(message, top-level key)``."""
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{what}: not UTF-8 text (byte {data[exc.start]:#04x} at "
                        f"position {exc.start})") from None
    try:
        # NaN, Infinity and numbers out of range (1e999) are read as floats here, so
        # that json_problem names where they are.
        value = json.loads(data)
    except RecursionError:
        raise error(f"{what}: invalid JSON (nested deeper than {max_depth} levels)") from None
    except ValueError as exc:
        raise error(f"{what}: invalid JSON ({exc})") from None
    problem = json_problem(value, max_depth, max_int)
    if problem is not None:
        path, message = problem
        message = f"{what}: invalid JSON at {_where(path)}: {message}"
        if key_error is not None and path and isinstance(value, dict):
            raise key_error(message, str(path[0]))
        raise error(message)
    return value


def json_input(data: Any, what: str, error: Callable[[str], Exception]) -> Any:
    """``data`` itself, or the value of its JSON text (str or bytes, see read_json)."""
    if isinstance(data, (str, bytes, bytearray)):
        return read_json(data, what, error)
    return data


def parse_date(value: Any, error: type[Exception]) -> datetime:
    """An aware UTC datetime from a datetime or ISO 8601 (or collective.cron) text."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            try:
                dt = datetime.strptime(value, DATEFMT)
            except ValueError:
                raise error(f"invalid date {shown(value)}: expected ISO 8601") from None
    else:
        raise error(f"invalid date {shown(value)}: expected a datetime or ISO 8601 text")
    # Naive datetimes (collective.cron dumps) are read as UTC.
    try:
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    except (OverflowError, ValueError):   # e.g. year 1 at UTC+1: before year 1 in UTC
        raise error(f"invalid date {shown(value)}: out of range in UTC") from None


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """Return the ZoneInfo of an IANA name; raise InvalidCron naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise InvalidCron(f"unknown timezone {shown(name)}", "timezone", name) from None


# The bits a version 4 (random) UUID sets, as uuid.UUID(version=4) sets them.
_UUID4_KEEP = ~(0xc000 << 48) & ~(0xf000 << 64)
_UUID4_SET = (0x8000 << 48) | (4 << 76)


def new_uid() -> str:
    """A fresh cron uid: a random (version 4) UUID's 32 hex digits, as
    ``uuid.uuid4().hex`` gives, at half its cost (100,000 crons get one each)."""
    return f"{(int.from_bytes(os.urandom(16), 'big') & _UUID4_KEEP) | _UUID4_SET:032x}"


# -- the fields ---------------------------------------------------------------------


def check_text(field: str, value: str) -> str:
    """``value`` if it can be stored as the text field ``field``; else InvalidCron."""
    problem = text_problem(value)
    if problem is not None:
        raise InvalidCron(f"invalid {field} {shown(value)}: {problem}", field, value)
    longest = MAX_TEXT_LENGTH.get(field)
    if longest is not None and len(value) > longest:
        raise InvalidCron(f"invalid {field} {shown(value)}: longer than {longest} characters",
                          field, value)
    return value


def check_str(field: str, value: Any, required: bool = True) -> str | None:
    """A non-empty string, stripped (None when not ``required`` and not given)."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidCron(f"invalid {field} {shown(value)}: expected a non-empty string",
                          field, value)
    return check_text(field, value.strip())


def _refused(error: type[Exception], message: str, field: str, value: Any) -> Exception:
    """``error`` with ``message``, and the field and value when it is an InvalidCron."""
    if issubclass(error, InvalidCron):
        return error(message, field, value)
    return error(message)


_TRUE = {"true", "1", "yes", "on", "y", "t"}
_FALSE = {"false", "0", "no", "off", "n", "f", ""}


def as_bool(field: str, value: Any, error: type[Exception] = InvalidCron) -> bool:
    """Boolean reading for Python callers: True/False, 0/1 and the usual words;
    anything else refused. Loaders are stricter: :func:`json_bool`, :func:`text_bool`."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _refused(error, f"invalid {field} {shown(value)}: expected true or false", field, value)


def json_bool(field: str, value: Any, error: type[Exception] = InvalidCron) -> bool:
    """A boolean of a JSON document: true or false, nothing else (not "false", not 0)."""
    if isinstance(value, bool):
        return value
    raise _refused(error, f"invalid {field} {shown(value)}: expected true or false (a JSON "
                   "boolean)", field, value)


def text_bool(field: str, value: Any, error: type[Exception] = InvalidCron) -> bool:
    """A boolean written as text (an XML attribute): one of the usual words (true,
    false, yes, no, on, off, 1, 0, ...; any case); an empty value is refused."""
    if isinstance(value, str) and value.strip():
        return as_bool(field, value, error)
    raise _refused(error, f"invalid {field} {shown(value)}: expected true or false", field, value)


def check_periodicity(value: Any, seconds_first: bool = False) -> str:
    """A cron expression as written (croniter's language, ``H`` and ``R`` included:
    see :func:`expansion` for what the engine reads)."""
    value = _periodicity_text(value)
    expansion(value, seconds_first, "check")
    return value


def _periodicity_text(value: Any) -> str:
    """The text of a periodicity; a Cron checks the expression (it knows whether it is
    read seconds first)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidCron(f"invalid periodicity {shown(value)}: expected a cron expression",
                          "periodicity", value)
    return check_text("periodicity", value.strip())


def expansion(periodicity: str, seconds_first: bool, hash_id: str) -> str:
    """The plain expression the engine reads for ``periodicity`` (fields in cronkit's
    order, ``H`` drawn from ``hash_id``, ``R`` at random); InvalidCron naming the
    periodicity when cronkit refuses it."""
    plain = _undrawn_expansion(periodicity, seconds_first)
    if plain is not None:
        return plain
    return _expansion(periodicity, seconds_first, hash_id)


@lru_cache(maxsize=4096)
def drawn(periodicity: str) -> bool:
    """Whether ``periodicity`` has a field drawn when it is expanded (H or R)."""
    return cronexpr.hashed(periodicity)


@lru_cache(maxsize=4096)
def _undrawn_expansion(periodicity: str, seconds_first: bool) -> str | None:
    """The expansion of a periodicity with nothing to draw (the same for every cron,
    so it is worked out once, and its text shared); None when it draws."""
    if drawn(periodicity):
        return None
    return sys.intern(_expansion(periodicity, seconds_first, None))


def _expansion(periodicity: str, seconds_first: bool, hash_id: str | None) -> str:
    try:
        expanded = cronexpr.expand(periodicity, hash_id=hash_id, seconds_first=seconds_first)
        schedule.parse(expanded)
    except ValueError as exc:
        raise InvalidCron(f"invalid periodicity {shown(periodicity)}: {exc}", "periodicity",
                          periodicity) from None
    return expanded


def check_expanded(value: Any) -> str | None:
    """What the engine reads for a cron (``Cron.expanded``): None (drawn from the
    periodicity), or a plain expression, nothing left to draw."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidCron(f"invalid expanded {shown(value)}: expected a cron expression",
                          "expanded", value)
    value = check_text("expanded", value.strip())
    try:
        schedule.parse(value)
    except ValueError as exc:
        raise InvalidCron(f"invalid expanded {shown(value)}: {exc}", "expanded",
                          value) from None
    return value


def _environ_error(message: str) -> InvalidCron:
    return InvalidCron(message, "environ")


def check_environ(value: Any) -> dict[str, Any]:
    """A JSON object (or its JSON text) of at most MAX_JSON_BYTES that the store can
    hold and give back the same (see :func:`json_problem`); a copy of it."""
    if value is None:
        return {}
    read = isinstance(value, (str, bytes, bytearray))
    if read:   # read_json checks what json_problem does
        value = read_json(value, f"invalid environ {shown(value)}", _environ_error,
                          max_depth=MAX_JSON_DEPTH)
    if not isinstance(value, dict):
        raise InvalidCron(f"invalid environ {shown(value)}: expected a JSON object", "environ",
                          value)
    problem = None if read else json_problem(value)
    if problem is not None:
        path, message = problem
        raise InvalidCron(f"invalid environ {shown(value)}: at {_where(path)}: {message}",
                          "environ", value)
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:   # e.g. mixed key types, a huge int
        raise InvalidCron(f"invalid environ {shown(value)}: not JSON-serialisable ({exc})",
                          "environ", value) from None
    size = len(text.encode("utf-8"))
    if size > MAX_JSON_BYTES:
        raise InvalidCron(f"invalid environ: {size} bytes of JSON, over the 1 MiB limit",
                          "environ", value)
    result: dict[str, Any] = json.loads(text)
    return result


def check_logs_limit(value: Any) -> int:
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() \
            and len(value.strip()) <= 3:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LOGS_LIMIT:
        raise InvalidCron(f"invalid logs_limit {shown(value)}: expected an integer from 1 to "
                          f"{MAX_LOGS_LIMIT}", "logs_limit", value)
    return value


def check_timezone(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidCron(f"unknown timezone {shown(value)}", "timezone", value)
    check_text("timezone", value)
    zone(value)
    return value


def check_misfire(value: Any) -> str:
    if not isinstance(value, str) or value not in MISFIRE_POLICIES:
        raise InvalidCron(f"invalid misfire {shown(value)}: expected one of "
                          f"{', '.join(MISFIRE_POLICIES)}", "misfire", value)
    return value


def check_misfire_grace(value: Any) -> float | None:
    """Seconds from 0 to MAX_MISFIRE_GRACE (a number, or its text), or None. NaN and
    the infinities are refused: no store or JSON document holds them."""
    if value is None or value == "":
        return None
    given = value
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0 <= value <= MAX_MISFIRE_GRACE:   # also refuses NaN
        raise InvalidCron(f"invalid misfire_grace {shown(given)}: expected seconds from 0 to "
                          f"{MAX_MISFIRE_GRACE} (ten years), or None", "misfire_grace", given)
    return value


def _check_uid(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10 ** 200:
        value = str(value)
    checked = check_str("uid", value)
    assert checked is not None
    return checked


def _check_name(value: Any) -> str:
    if type(value) is str:      # the few names of a crontab's runners, checked once each
        return _checked_name(value)
    checked = check_str("name", value)
    assert checked is not None
    return checked


@lru_cache(maxsize=1024)
def _checked_name(value: str) -> str:
    checked = check_str("name", value)
    assert checked is not None
    return sys.intern(checked)


def _check_seconds_first(value: Any) -> bool:
    return as_bool("seconds_first", value)


def _check_activated(value: Any) -> bool:
    return as_bool("activated", value)


def _check_user(value: Any) -> str | None:
    return check_str("user", value, required=False)


#: The check of each cron field, in the order a Cron sets them.
VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "uid": _check_uid,
    "name": _check_name,
    "seconds_first": _check_seconds_first,
    "periodicity": _periodicity_text,
    "timezone": check_timezone,
    "activated": _check_activated,
    "environ": check_environ,
    "logs_limit": check_logs_limit,
    "user": _check_user,
    "misfire": check_misfire,
    "misfire_grace": check_misfire_grace,
    "expanded": check_expanded,
}
#: A cron's definition: every field but its logs and its crontab.
CRON_FIELDS = tuple(VALIDATORS)
