"""crons.xml, collective.cron's GenericSetup format, and the other exports of a site.

::

    <crons>
      <cron uid="backup" name="backup" activated="true" periodicity="0 3 * * *">
        <environ><![CDATA[{"keep": 7}]]></environ>
      </cron>
      <cron uid="old" remove="true"/>
    </crons>

Entries apply in document order: a new uid adds a cron (uid, name and periodicity
required; ``activated`` defaults to false and ``environ`` to {}, as in collective.cron),
a known uid edits only the attributes given, ``remove="true"`` deletes. Beyond
collective.cron's attributes a cron may give ``timezone``, ``logs_limit``, ``user``,
``misfire``, ``misfire_grace``, ``seconds_first`` (true reads six or seven fields with
the seconds first) and ``expanded`` (the drawing of ``H`` and ``R`` to keep), and
``<crons activated="false">`` switches the whole crontab (all written by the export
only when they differ from the defaults, so the export of a plain crontab is what
collective.cron writes). Logs are never imported.

The parser is expat with no DTD: a DOCTYPE (hence any entity declaration) is refused.
A file over ``cronkit.profiles.MAX_PROFILE_BYTES`` is refused before it is read, and
the parse stops at the first cron beyond ``MAX_PROFILE_CRONS`` (see cronkit.profiles).
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.parsers import expat
from xml.sax.saxutils import quoteattr

from .. import cronexpr
from ..exceptions import ProfileError
from ..model import Crontab
from ..model.validation import MAX_JSON_DEPTH, read_json, text_bool
from . import (
    CRON_ATTRIBUTES,
    CronEntry,
    ElementCount,
    apply_entries,
    check_size,
    decode_profile,
    limits,
    read_profile,
)

if TYPE_CHECKING:
    from ..site import Site

#: What import_crons reads: a path, XML text or bytes.
Source = str | os.PathLike[str] | bytes | bytearray | memoryview

__all__ = ["export_crons", "export_json", "export_zcml", "import_crons", "parse_crons"]

CRON_XML_ATTRIBUTES = ("uid", "remove") + CRON_ATTRIBUTES
CRON_XML_ATTRIBUTES = tuple(a for a in CRON_XML_ATTRIBUTES if a != "environ")
#: Value of each optional attribute the export leaves out (the import's default).
EXPORT_DEFAULTS = {"timezone": None, "logs_limit": 5, "user": None, "misfire": "once",
                   "misfire_grace": None, "seconds_first": False}
NAMESPACE = "http://namespaces.cronkit.org/cron"


# -- parsing ------------------------------------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    line: int
    children: list[Element] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


class _Refused(Exception):
    """Raised from an expat handler to stop the parse."""

    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


def _read(source: Source, max_bytes: int) -> tuple[bytes | str, str]:
    """(the XML, the name errors give as its file) of a path, XML text or bytes; over
    ``max_bytes`` it is refused (a file before it is read)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        check_size(len(source) if not isinstance(source, memoryview) else source.nbytes,
                   max_bytes, "<string>")
        return bytes(source), "<string>"
    if isinstance(source, os.PathLike) or (isinstance(source, str)
                                           and not source.lstrip().startswith("<")):
        path = os.fspath(source)
        if not isinstance(path, str) or not os.path.isfile(path):
            raise ProfileError(f"no such crons.xml file {path!r} (and not XML text)",
                               file=str(path))
        return read_profile(path, max_bytes), path
    if isinstance(source, str):
        # A character is one byte of UTF-8 or more: count the bytes of a short text only.
        check_size(len(source) if len(source) > max_bytes
                   else len(source.encode("utf-8", "surrogatepass")), max_bytes, "<string>")
        return source, "<string>"
    raise ProfileError(f"a crons.xml source is a path, XML text or bytes, got {source!r}")


_UTF8_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']\s*utf-?8\s*["']""", re.I)
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=""")


def _not_utf8(data: bytes | str, name: str) -> ProfileError | None:
    """A ProfileError naming the first byte of ``data`` that is not UTF-8 (file, line
    and column), when ``data`` is bytes read as UTF-8 (no other encoding declared)."""
    if not isinstance(data, bytes) or (_DECLARED.match(data) and not _UTF8_DECLARED.match(data)):
        return None
    try:
        decode_profile(data, name)
    except ProfileError as exc:
        return ProfileError(f"malformed XML: {exc.message}", file=exc.file, line=exc.line)
    return None


def parse_xml(data: bytes | str, name: str, max_crons: int | None = None) -> Element:
    """Parse ``data`` into Elements that know their line; refuse any DOCTYPE, and stop
    at the first cron beyond ``max_crons`` (see cronkit.profiles.ElementCount)."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[Element] = []
    root: list[Element] = []
    count = ElementCount(name, limits(max_crons=max_crons)[1])

    def start(tag: str, attrs: dict[str, str]) -> None:
        try:
            count.add(parser.CurrentLineNumber, tag == "cron")
        except ProfileError as exc:
            raise _Refused(exc.message, parser.CurrentLineNumber) from None
        element = Element(tag, attrs, parser.CurrentLineNumber)
        (stack[-1].children if stack else root).append(element)
        stack.append(element)

    def end(tag: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        if stack:
            stack[-1].text.append(data)

    def doctype(*args: Any) -> None:
        raise _Refused("a DOCTYPE is not allowed in crons.xml (no DTD, no entities)",
                       parser.CurrentLineNumber)

    def entity(*args: Any) -> None:  # pragma: no cover - a DOCTYPE is refused first
        raise _Refused("entity declarations are not allowed", parser.CurrentLineNumber)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise ProfileError(str(exc), file=name, line=exc.line) from None
    except expat.ExpatError as exc:
        undecodable = _not_utf8(data, name) if exc.code == _INVALID_TOKEN else None
        if undecodable is not None:   # say why the token is invalid: its byte
            raise undecodable from None
        raise ProfileError(f"malformed XML: {expat.ErrorString(exc.code)}"
                           f" (column {exc.offset + 1})", file=name, line=exc.lineno) from None
    except (ValueError, LookupError, UnicodeError) as exc:
        # expat refuses some encodings and inputs itself (e.g. unknown encoding names).
        raise ProfileError(f"malformed XML: {exc}", file=name,
                           line=parser.CurrentLineNumber) from None
    return root[0]


_INVALID_TOKEN = expat.errors.codes[expat.errors.XML_ERROR_INVALID_TOKEN]


def _refused_at(name: str, line: int, message: str) -> ProfileError:
    return ProfileError(message, file=name, line=line)


def _text(element: Element) -> str:
    return "".join(element.text).strip()


def parse_crons(data: bytes | str, name: str = "<string>",
                max_crons: int | None = None) -> tuple[list[CronEntry], str | None]:
    """Read a crons.xml document: (its entries in order, the crontab switch or None)."""
    root = parse_xml(data, name, max_crons)

    def fail(message: str, element: Element) -> ProfileError:
        return ProfileError(message, file=name, line=element.line)

    if root.tag != "crons":
        raise fail(f"the root element must be <crons>, not <{root.tag}>", root)
    unknown = set(root.attrs) - {"activated"}
    if unknown:
        raise fail(f"unknown attribute(s) of <crons>: {', '.join(sorted(unknown))}", root)
    activated = root.attrs.get("activated")
    if _text(root):
        raise fail(f"unexpected text in <crons>: {_text(root)[:40]!r}", root)
    entries = []
    for element in root.children:
        if element.tag != "cron":
            raise fail(f"unknown element <{element.tag}> in <crons>: expected <cron>", element)
        attrs: dict[str, Any] = dict(element.attrs)
        unknown = set(attrs) - set(CRON_XML_ATTRIBUTES)
        if unknown:
            raise fail(f"unknown attribute(s) of <cron>: {', '.join(sorted(unknown))}", element)
        uid = attrs.pop("uid", None)
        if uid is None or not uid.strip():
            raise fail("a <cron> needs a uid", element)
        try:
            remove = text_bool("remove", attrs.pop("remove", "false"), ValueError)
            for flag in ("activated", "seconds_first"):
                if flag in attrs:
                    attrs[flag] = text_bool(flag, attrs[flag], ValueError)
        except ValueError as exc:
            raise fail(f"cron {uid!r}: {exc}", element) from None
        if _text(element):
            raise fail(f"unexpected text in <cron>: {_text(element)[:40]!r}", element)
        for child in element.children:
            if child.tag != "environ":
                raise fail(f"unknown element <{child.tag}> in <cron>: expected <environ>", child)
            if "environ" in attrs:
                raise fail(f"cron {uid!r} has more than one <environ>", child)
            if child.attrs or child.children:
                raise fail("<environ> holds only JSON text (in CDATA)", child)
            environ = _text(child)
            if environ:
                attrs["environ"] = read_json(
                    environ, f"cron {uid!r}: invalid environ JSON {environ[:60]!r}",
                    functools.partial(_refused_at, name, child.line), max_depth=MAX_JSON_DEPTH)
                if not isinstance(attrs["environ"], dict):
                    raise fail(f"cron {uid!r}: invalid environ {environ[:60]!r}: expected a "
                               "JSON object", child)
        entries.append(CronEntry(uid.strip(), attrs, remove, name, element.line))
    return entries, activated


def import_crons(site: Site, source: Source, *, max_bytes: int | None = None,
                 max_crons: int | None = None) -> Crontab:
    """Apply a crons.xml (path, XML text or bytes) to ``site``'s live crontab, whole or
    not at all; save it (which syncs the queue) and return it. A source over
    ``max_bytes`` or with more than ``max_crons`` crons is refused (default: the
    limits of cronkit.profiles)."""
    max_bytes, max_crons = limits(max_bytes, max_crons)
    data, name = _read(source, max_bytes)
    entries, activated = parse_crons(data, name, max_crons)
    return apply_entries(site.crontab, entries, default_activated=False,
                         activated=activated, source=name, line=1)


# -- exports ------------------------------------------------------------------


def _attr(value: Any) -> str:
    return "True" if value is True else "False" if value is False else str(value)


def _cdata(text: str) -> str:
    # "]]>" cannot appear inside CDATA; JSON can escape ">" so it never does.
    return "<![CDATA[\n" + text.replace("]]>", "]]\\u003e") + "\n]]>"


def export_crons(site: Site) -> str:
    """The crontab of ``site`` as crons.xml text, in collective.cron's layout."""
    crontab = site.crontab
    head = "<crons>" if crontab.activated else '<crons activated="False">'
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n' + head]
    for cron in crontab.crons.values():
        attrs = [f" {key}={quoteattr(_attr(getattr(cron, key)))}"
                 for key in ("uid", "name", "activated", "periodicity")]
        attrs += [f" {key}={quoteattr(_attr(getattr(cron, key)))}"
                  for key, default in EXPORT_DEFAULTS.items() if getattr(cron, key) != default]
        if cron.expanded != cron.periodicity and cronexpr.hashed(cron.periodicity):
            attrs.append(f" expanded={quoteattr(cron.expanded)}")   # H, R: the drawing kept
        parts.append(f"\n  <cron{''.join(attrs)}>")
        if cron.environ:
            parts.append(f"\n    <environ>{_cdata(json.dumps(cron.environ))}\n    </environ>")
        parts.append("\n  </cron>")
    parts.append("\n</crons>\n")
    return "".join(parts)


def export_json(site: Site) -> str:
    """The crontab of ``site`` as JSON (``Crontab.dump()``, logs included)."""
    return json.dumps(site.crontab.dump(), indent=2, ensure_ascii=False) + "\n"


def _dotted(factory: Any) -> str | None:
    """The dotted name that imports ``factory`` back, or None."""
    module, qualname = getattr(factory, "__module__", None), getattr(factory, "__qualname__", "")
    if not module or not qualname or "<" in qualname:
        return None
    return f"{module}.{qualname}"


def export_zcml(site: Site) -> str:
    """A ZCML profile declaring ``site``'s own runners and its crontab."""
    from .zcml import site_runners
    crontab = site.crontab
    lines = ['<configure xmlns="http://namespaces.zope.org/zope"',
             f'           xmlns:cron="{NAMESPACE}">']
    for name, factory in site_runners(site):
        dotted = _dotted(factory)
        if dotted is not None:
            lines.append(f"  <cron:runner name={quoteattr(name)} factory={quoteattr(dotted)}"
                         f" site={quoteattr(site.name)}/>")
    lines.append(f"  <cron:crontab site={quoteattr(site.name)} "
                 f"activated=\"{str(crontab.activated).lower()}\">")
    for cron in crontab.crons.values():
        attrs = [f"uid={quoteattr(cron.uid)}", f"name={quoteattr(cron.name)}",
                 f"periodicity={quoteattr(cron.periodicity)}",
                 f'activated="{str(cron.activated).lower()}"']
        if cron.environ:
            attrs.append(f"environ={quoteattr(json.dumps(cron.environ))}")
        attrs += [f"{key}={quoteattr(str(getattr(cron, key)))}"
                  for key, default in EXPORT_DEFAULTS.items() if getattr(cron, key) != default]
        lines.append("    <cron:cron " + "\n               ".join(attrs) + "/>")
    lines.append("  </cron:crontab>")
    lines.append("</configure>")
    return "\n".join(lines) + "\n"
