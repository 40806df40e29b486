"""Validation of the model's values: each check returns the clean value of one field,
or raises the model's typed error naming the field and the value refused.

Every check here is pure: nothing reads the clock or a store.
"""

from __future__ import annotations

import json
import uuid as uuidlib
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .. import schedule
from ..exceptions import InvalidCron

MISFIRE_POLICIES = ("once", "all", "skip")
MAX_LOGS_LIMIT = 25
DATEFMT = "%Y-%m-%d %H:%M:%S"  # collective.cron's log date format, read on load


def json_input(data: Any, what: str, error: type[Exception]) -> Any:
    """``data`` itself, or the value of its JSON text (str or bytes)."""
    if isinstance(data, (str, bytes)):
        try:
            return json.loads(data)
        except ValueError as exc:
            raise error(f"{what}: invalid JSON ({exc})") from None
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
                raise error(f"invalid date {value!r}: expected ISO 8601") from None
    else:
        raise error(f"invalid date {value!r}: expected a datetime or ISO 8601 text")
    # Naive datetimes (collective.cron dumps) are read as UTC.
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """Return the ZoneInfo of an IANA name; raise InvalidCron naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidCron(f"unknown timezone {name!r}", "timezone", name) from None


def new_uid() -> str:
    """A fresh cron uid."""
    return uuidlib.uuid4().hex


def check_str(field: str, value: Any, required: bool = True) -> str | None:
    """A non-empty string, stripped (None when not ``required`` and not given)."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidCron(f"invalid {field} {value!r}: expected a non-empty string", field, value)
    return value.strip()


_TRUE = {"true", "1", "yes", "on", "y", "t"}
_FALSE = {"false", "0", "no", "off", "n", "f", ""}


def as_bool(field: str, value: Any, error: type[Exception] = InvalidCron) -> bool:
    """Strict boolean reading: True/False, 0/1 and the usual words; anything else refused."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise error(f"invalid {field} {value!r}: expected true or false")


def check_periodicity(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidCron(f"invalid periodicity {value!r}: expected a cron expression",
                          "periodicity", value)
    try:
        schedule.parse(value.strip())
    except ValueError as exc:
        raise InvalidCron(f"invalid periodicity {value!r}: {exc}", "periodicity", value) from None
    return value.strip()


def check_environ(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidCron(f"invalid environ {value!r}: not JSON ({exc})", "environ", value) from None
    if not isinstance(value, dict):
        raise InvalidCron(f"invalid environ {value!r}: expected a JSON object", "environ", value)
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise InvalidCron(f"invalid environ {value!r}: not JSON-serialisable ({exc})",
                          "environ", value) from None


def check_logs_limit(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LOGS_LIMIT:
        raise InvalidCron(f"invalid logs_limit {value!r}: expected an integer from 1 to "
                          f"{MAX_LOGS_LIMIT}", "logs_limit", value)
    return value


def check_timezone(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidCron(f"unknown timezone {value!r}", "timezone", value)
    zone(value)
    return value


def check_misfire(value: Any) -> str:
    if value not in MISFIRE_POLICIES:
        raise InvalidCron(f"invalid misfire {value!r}: expected one of "
                          f"{', '.join(MISFIRE_POLICIES)}", "misfire", value)
    return value


def check_misfire_grace(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InvalidCron(f"invalid misfire_grace {value!r}: expected seconds (>= 0) or None",
                          "misfire_grace", value)
    return value


#: The check of each cron field, in the order a Cron sets them.
VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "uid": lambda v: check_str("uid", str(v) if isinstance(v, int) else v),
    "name": lambda v: check_str("name", v),
    "periodicity": check_periodicity,
    "timezone": check_timezone,
    "activated": lambda v: as_bool("activated", v),
    "environ": check_environ,
    "logs_limit": check_logs_limit,
    "user": lambda v: check_str("user", v, required=False),
    "misfire": check_misfire,
    "misfire_grace": check_misfire_grace,
}
#: A cron's definition: every field but its logs and its crontab.
CRON_FIELDS = tuple(VALIDATORS)
