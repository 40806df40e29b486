"""A cron expression in English words, for the faces that show one (the dashboard, the
CLI's previews): cron-descriptor when it is installed, else a plain description.
The engine (``cronkit.cronexpr``, ``cronkit.schedule``) never imports this."""

from __future__ import annotations

import re

from .cronexpr import CronSyntaxError, Expression

__all__ = ["describe", "describe_expression", "describe_fallback"]

# "12-12" and "12-12" alone (no step) read as "12" when describing.
_EQUAL_RANGE = re.compile(r"(?<![\w/-])(\w+)-\1(?![\w/-])")


def describe_expression(expr: str) -> str:
    """The plain expression ``expr`` (cronkit's order, nothing left to draw) in words;
    the expression itself when cronkit refuses it."""
    try:
        parsed = Expression(expr)
    except CronSyntaxError:
        return expr
    return describe(parsed.fields, parsed.has_seconds)


def describe(fields: tuple[str, ...], has_seconds: bool) -> str:
    """Describe the fields in English words, e.g. "every 5 minutes" (cron-descriptor
    when installed, else :func:`describe_fallback`)."""
    words = [_EQUAL_RANGE.sub(r"\1", f) for f in fields]
    try:
        from cron_descriptor import ExpressionDescriptor, Options
    except ImportError:  # optional dependency
        return describe_fallback(fields, has_seconds)
    if has_seconds:
        # cron-descriptor reads six or seven fields with the seconds first.
        words = [words[5], *words[:5], *words[6:]]
    try:
        options = Options(use_24hour_time_format=True, locale_code="en_US")
        text = ExpressionDescriptor(" ".join(words), options).get_description()
    except Exception:  # cron-descriptor refuses some syntax we accept
        return describe_fallback(fields, has_seconds)
    return text[:1].lower() + text[1:]


def describe_fallback(fields: tuple[str, ...], has_seconds: bool) -> str:
    """A plain description, for when cron-descriptor is missing or refuses the fields."""
    minute, hour, dom, month, dow = fields[:5]
    seconds = fields[5] if has_seconds else "0"
    year = fields[6] if len(fields) > 6 else "*"
    rest_all = dom in ("*", "?") and month == "*" and dow in ("*", "?") and year == "*"
    if rest_all and seconds == "0":
        if minute == "*" and hour == "*":
            return "every minute"
        if minute.startswith("*/") and hour == "*":
            return f"every {minute[2:]} minutes"
        if minute.isdigit() and hour == "*":
            return f"at minute {int(minute)} of every hour"
        if minute.isdigit() and hour.isdigit():
            return f"at {int(hour):02d}:{int(minute):02d} every day"
    labels = ("minute", "hour", "day-of-month", "month", "day-of-week", "second", "year")
    parts = [
        f"{label} {f}"
        for label, f in zip(labels[: len(fields)], fields, strict=True)
        if f not in ("*", "?")
    ]
    return "cron: " + (", ".join(parts) if parts else "every minute")
