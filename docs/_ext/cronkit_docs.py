"""cronkit's own Sphinx glue: the reference pages are generated from the code.

- ``.. cronkit-api:: NAME ...`` documents public names of ``cronkit`` with autodoc; at the
  end of the build every name of ``cronkit.__all__`` must have been documented exactly
  once, and nothing else.
- ``.. cronkit-interfaces::`` documents every interface of ``cronkit.interfaces``, in
  source order (repoze.sphinx.autointerface).
- ``.. cronkit-events::`` is the table of the event classes, read from ``cronkit.events``.
- The design page's component and event names are checked against the code: a name
  missing from the page, or named there and absent from the code, is a warning (an error
  under ``-W``).
- ``openapi.json`` is written next to the REST reference from ``openapi_document()``
  before the sources are read, for sphinxcontrib-openapi.
- ``cli_parser()`` is cronkit's own argparse parser, its help texts escaped for
  reStructuredText, for sphinx-argparse.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

OPENAPI_FILE = Path("reference") / "openapi.json"
DESIGN_DOC = "design"


# -- the public API ----------------------------------------------------------------------


def public_names() -> list[str]:
    import cronkit
    return list(cronkit.__all__)


def _autodoc_lines(name: str) -> list[str]:
    import cronkit
    obj = getattr(cronkit, name)
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return [f".. autoexception:: cronkit.{name}", ""]
    if inspect.isclass(obj):
        return [f".. autoclass:: cronkit.{name}", "   :members:", ""]
    return [f".. autofunction:: cronkit.{name}", ""]


class ApiDirective(SphinxDirective):
    """``.. cronkit-api:: Cronkit Site``: autodoc for those public names."""

    required_arguments = 1
    final_argument_whitespace = True

    def run(self) -> list[nodes.Node]:
        names = self.arguments[0].split()
        known = set(public_names())
        documented = self.env.cronkit_api_names.setdefault(self.env.docname, [])
        lines: list[str] = []
        for name in names:
            if name not in known:
                logger.warning("cronkit-api: %r is not in cronkit.__all__", name,
                               location=self.get_location())
                continue
            documented.append(name)
            lines += _autodoc_lines(name)
        return self.parse_text_to_nodes("\n".join(lines)) if lines else []

    def parse_text_to_nodes(self, text: str) -> list[nodes.Node]:
        node = nodes.section()
        node.document = self.state.document
        self.state.nested_parse(StringList(text.splitlines(), source=self.get_source_info()[0]),
                                self.content_offset, node)
        return node.children


def _env_init(app, env, docnames) -> None:
    if not hasattr(env, "cronkit_api_names"):
        env.cronkit_api_names = {}
    for docname in docnames:
        env.cronkit_api_names.pop(docname, None)


def _env_purge(app, env, docname) -> None:
    getattr(env, "cronkit_api_names", {}).pop(docname, None)


def _env_merge(app, env, docnames, other) -> None:
    env.cronkit_api_names.update(getattr(other, "cronkit_api_names", {}))


def _check_api(app, env) -> None:
    documented = [n for names in env.cronkit_api_names.values() for n in names]
    expected = set(public_names())
    missing = sorted(expected - set(documented))
    twice = sorted({n for n in documented if documented.count(n) > 1})
    if missing:
        logger.warning("cronkit.__all__ names without a reference entry: %s", ", ".join(missing))
    if twice:
        logger.warning("cronkit.__all__ names documented twice: %s", ", ".join(twice))


# -- interfaces ---------------------------------------------------------------------------


def interface_names() -> list[str]:
    """The interfaces of cronkit.interfaces, in source order."""
    from zope.interface.interface import InterfaceClass

    from cronkit import interfaces
    source = inspect.getsource(interfaces)
    found = [(source.index(f"class {name}("), name) for name, obj in vars(interfaces).items()
             if isinstance(obj, InterfaceClass) and obj.__module__ == interfaces.__name__]
    return [name for _, name in sorted(found)]


class InterfacesDirective(ApiDirective):
    required_arguments = 0

    def run(self) -> list[nodes.Node]:
        lines: list[str] = []
        for name in interface_names():
            lines += [f".. autointerface:: cronkit.interfaces.{name}", "   :members:", ""]
        return self.parse_text_to_nodes("\n".join(lines))


# -- events -------------------------------------------------------------------------------


def event_classes() -> list[type]:
    from cronkit import events
    return [obj for obj in vars(events).values()
            if inspect.isclass(obj) and issubclass(obj, events.Event) and obj is not events.Event
            and not obj.__name__.startswith("_")]


class EventsDirective(ApiDirective):
    """A table: each event class, its fields (keyword arguments) and what it means."""

    required_arguments = 0

    def run(self) -> list[nodes.Node]:
        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 30 30 40", "",
                 "   * - event", "     - fields", "     - sent when"]
        for cls in event_classes():
            fields = [f.name for f in dataclasses.fields(cls) if f.name != "timestamp"]
            doc = " ".join((cls.__doc__ or "").split())
            lines += [f"   * - :class:`cronkit.{cls.__name__}`",
                      f"     - {', '.join(f'``{f}``' for f in fields)}",
                      f"     - {doc}"]
        return self.parse_text_to_nodes("\n".join(lines))


# -- the design page is kept true ---------------------------------------------------------


def component_names() -> list[str]:
    from cronkit.components import COMPONENTS, JobLifecycle
    return [cls.__name__ for cls in (*COMPONENTS, JobLifecycle)]


def check_design_text(text: str) -> list[str]:
    """What is wrong with the design page ``text``: every component and event class of
    the code named in it, and no other ``...Manager`` / ``...Marker`` / ``...Lifecycle`` /
    ``...Event``."""
    problems = []
    components = set(component_names())
    events = {cls.__name__ for cls in event_classes()}
    named = set(re.findall(r"\b(?:I?[A-Z][A-Za-z]*(?:Manager|Marker|Lifecycle|Event))\b", text))
    named = {n[1:] if n.startswith("I") and n[1:] in components else n for n in named}
    for name in sorted(components - named):
        problems.append(f"component {name} is not on the design page")
    for name in sorted(events - named):
        problems.append(f"event {name} is not on the design page")
    for name in sorted(named - components - events):
        problems.append(f"{name} is on the design page but not in the code")
    return problems


def _check_design(app, docname, source) -> None:
    if docname != DESIGN_DOC:
        return
    for problem in check_design_text(source[0]):
        logger.warning("design page: %s", problem, location=docname)


# -- the CLI and the REST API -------------------------------------------------------------


def _escape(text: str | None) -> str | None:
    if not text or text == argparse.SUPPRESS:
        return text
    return re.sub(r"([\\*`|_])", r"\\\1", text)


def cli_parser() -> argparse.ArgumentParser:
    """``cronkit.cli.build_parser()``, its help texts escaped for reStructuredText (they
    are plain text: ``'*/5 * * * *'`` is not emphasis)."""
    from cronkit.cli import build_parser
    seen: set[int] = set()

    def walk(parser: argparse.ArgumentParser) -> None:
        if id(parser) in seen:
            return
        seen.add(id(parser))
        parser.description = _escape(parser.description)
        parser.epilog = _escape(parser.epilog)
        for action in parser._actions:
            action.help = _escape(action.help)
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    choice.help = _escape(choice.help)
                for sub in action.choices.values():
                    walk(sub)

    parser = build_parser()
    walk(parser)
    return parser


def _write_openapi(app, config) -> None:
    from cronkit.web.openapi import openapi_document
    path = Path(app.srcdir) / OPENAPI_FILE
    text = json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


GENERATED = ["reference/python", "reference/interfaces", "reference/cli", "reference/rest", DESIGN_DOC]


def _always_outdated(app, env, added, changed, removed) -> list[str]:
    """The pages generated from the code are read again at every build: the code may have
    changed while their sources did not."""
    return [name for name in GENERATED if name in env.found_docs]


def setup(app):
    app.add_directive("cronkit-api", ApiDirective)
    app.add_directive("cronkit-interfaces", InterfacesDirective)
    app.add_directive("cronkit-events", EventsDirective)
    app.connect("config-inited", _write_openapi)
    app.connect("env-before-read-docs", _env_init)
    app.connect("env-purge-doc", _env_purge)
    app.connect("env-merge-info", _env_merge)
    app.connect("env-check-consistency", _check_api)
    app.connect("source-read", _check_design)
    app.connect("env-get-outdated", _always_outdated)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
