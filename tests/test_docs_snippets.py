"""Every example of the documentation runs.

The narrative pages (docs/*.rst) are doctests, collected by pytest itself. This module
runs what is not a doctest: the code blocks of the how-to guides and the shell part of
the tutorial (the rules are in docs/howto/index.rst), and builds the Sphinx site with
warnings as errors.
"""

from __future__ import annotations

import argparse
import configparser
import doctest
import importlib
import importlib.util
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from docutils import nodes
from docutils.core import publish_doctree
from docutils.parsers.rst import Directive, directives

import cronkit
from cronkit.events import Event
from tests.children import MODULES, child_env
from tests.children import command as script_command
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# The Plone how-to is a doctest on a Plone site: `make test-zope` runs it, in .venv-zope.
ZOPE_PAGES = {"howto/plone.rst"}
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in (DOCS / "howto").glob("*.rst")
               if p.name != "index.rst" and p.relative_to(DOCS).as_posix() not in ZOPE_PAGES
               ) + ["tutorial.rst", "deployment.rst"]
# The placeholders of the deployment page, and what the test suite has instead.
PG_PLACEHOLDER = "postgresql://cronkit:secret@db.example.org/cronkit"
REDIS_PLACEHOLDER = "redis://redis.example.org:6379/0"
SERVICE_TIMEOUT = 60.0
COMMAND_TIMEOUT = 60.0
LANGUAGES = {"python", "xml", "console", "ini", "text"}


# -- reading the blocks ---------------------------------------------------------------------


@dataclass
class Block:
    language: str
    text: str
    line: int
    caption: str | None = None
    section: str = ""


class _CodeBlock(Directive):
    """``code-block`` without Sphinx: keeps the language and the caption on the node."""

    required_arguments = 1
    has_content = True
    option_spec = {"caption": directives.unchanged}

    def run(self):
        node = nodes.literal_block("\n".join(self.content), "\n".join(self.content))
        node["language"] = self.arguments[0]
        node["caption"] = self.options.get("caption")
        node["line"] = self.lineno
        return [node]


class _Ignored(Directive):
    optional_arguments = 10
    final_argument_whitespace = True
    has_content = True
    option_spec = None

    def run(self):
        return []


def _roles() -> None:
    from docutils.parsers.rst import roles

    def literal(name, rawtext, text, lineno, inliner, options=None, content=None):
        return [nodes.literal(rawtext, text)], []

    for name in ("doc", "class", "func", "ref", "mod", "meth", "attr"):
        roles.register_local_role(name, literal)


def blocks_of(page: str) -> list[Block]:
    """The ``code-block`` directives of a page, in order (``::`` literal blocks of the
    narrative pages are doctests: not these)."""
    directives.register_directive("code-block", _CodeBlock)
    for name in ("toctree", "cronkit-api", "cronkit-events", "cronkit-interfaces"):
        directives.register_directive(name, _Ignored)
    _roles()
    tree = publish_doctree((DOCS / page).read_text(), source_path=str(DOCS / page),
                           settings_overrides={"report_level": 4, "halt_level": 5})
    def section(node):
        while node is not None and not isinstance(node, nodes.section):
            node = node.parent
        return node["ids"][0] if node is not None else ""

    return [Block(n["language"], n.astext(), n["line"], n["caption"], section(n))
            for n in tree.findall(nodes.literal_block) if "language" in n]


# -- running them ---------------------------------------------------------------------------


@dataclass
class Page:
    name: str
    folder: Path
    env: dict
    namespace: dict = field(default_factory=dict)
    services: list = field(default_factory=list)
    modules: list = field(default_factory=list)

    def where(self, block: Block) -> str:
        return f"docs/{self.name}, line {block.line}"

    def service_logs(self) -> str:
        return "".join(f"\n--- {shlex.join(argv)}:\n{proc.log.read_text()[-3000:]}"
                       for argv, proc in self.services)


def _write(page: Page, block: Block) -> Path:
    path = page.folder / block.caption
    assert not Path(block.caption).is_absolute() and ".." not in Path(block.caption).parts, \
        f"{page.where(block)}: a caption is a file name relative to the working folder"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(block.text + "\n")
    return path


def run_python(page: Page, block: Block) -> None:
    if block.caption:
        path = _write(page, block)
        assert path.suffix == ".py", f"{page.where(block)}: a python file ends in .py"
        module = ".".join(path.relative_to(page.folder).with_suffix("").parts)
        importlib.invalidate_caches()
        importlib.import_module(module)
        page.modules.append(module)
        return
    code = compile(block.text, page.where(block), "exec")
    exec(code, page.namespace)


def run_xml(page: Page, block: Block) -> None:
    assert block.caption, f"{page.where(block)}: an XML example names its file (caption)"
    path = _write(page, block)
    probe = cronkit.Cronkit(store=f"sqlite:///{page.folder / 'probe.db'}")
    try:
        if "<configure" in block.text:
            probe.load_profile(str(path))
        elif "<crons" in block.text:
            probe.site("probe").import_crons(path)
        else:
            pytest.fail(f"{page.where(block)}: neither ZCML nor crons.xml")
    finally:
        probe.close()


def _command(argv: list[str]) -> str | None:
    """The subcommand of a ``cronkit`` command line."""
    if Path(argv[0]).name != "cronkit":
        return None
    from cronkit.cli import build_parser
    return build_parser().parse_args(argv[1:]).command


def _is_service(argv: list[str]) -> bool:
    if Path(argv[0]).name == "celery":
        return "worker" in argv
    return _command(argv) in ("worker", "web", "run")


def _pip_install(page: Page, block: Block, argv: list[str]) -> None:
    """``pip install 'cronkit[a,b]' [other-package]`` is not run (no network in tests):
    cronkit's extras must exist; another package is only named."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    extras = set(cfg["options.extras_require"])
    for arg in argv[2:]:
        match = re.fullmatch(r"cronkit(?:\[([\w,-]+)\])?", arg)
        if match is None:
            assert re.fullmatch(r"[A-Za-z0-9][\w.-]*", arg), \
                f"{page.where(block)}: unexpected pip argument {arg!r}"
            continue
        for extra in (match.group(1) or "").split(","):
            assert not extra or extra in extras, f"{page.where(block)}: no extra {extra!r}"


def _start(page: Page, argv: list[str], env: dict) -> subprocess.Popen:
    port = None
    if _command(argv) in ("web", "run") and "--no-web" not in argv:
        if "--port" not in argv:   # the default, 8080, may be taken: a free one instead
            argv = [*argv, "--port", str(free_port())]
        port = int(argv[argv.index("--port") + 1])
    argv = [*script_command(argv[0]), *argv[1:]] if argv[0] in MODULES else argv
    log = page.folder / f"service-{len(page.services) + 1}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=page.folder, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    proc.log = log
    page.services.append((argv, proc))
    if _command(argv) in ("worker", "run"):
        _wait_log(proc, "worker ", " started (")
    if port is not None:
        _wait_http(proc, port)
    return proc


def _wait_log(proc: subprocess.Popen, *parts: str) -> None:
    """Wait until the service logs a line with all of ``parts`` (it is ready)."""
    deadline = time.monotonic() + SERVICE_TIMEOUT
    while time.monotonic() < deadline:
        text = proc.log.read_text()
        if any(all(p in line for p in parts) for line in text.splitlines()):
            return
        assert proc.poll() is None, f"the service exited with {proc.returncode}:\n{text}"
        time.sleep(0.05)   # a real process starting: real time
    pytest.fail(f"the service did not log {parts!r}:\n{proc.log.read_text()}")


def _wait_http(proc: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + SERVICE_TIMEOUT
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the dashboard exited: {proc.log.read_text()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/openapi.json",
                                        timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)   # a real server starting: real time
    pytest.fail(f"the dashboard did not answer on port {port}")


def _catches(pid: int, signum: int) -> bool:
    """Whether the process has a handler for ``signum`` (Linux: /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:   # it has just ended
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    return False


def stop_services(page: Page, kill_signal: int = signal.SIGTERM) -> None:
    """SIGTERM to every service of the page, once it handles it: each must exit 0."""
    for _argv, proc in page.services:
        deadline = time.monotonic() + SERVICE_TIMEOUT
        while proc.poll() is None and not _catches(proc.pid, kill_signal):
            assert time.monotonic() < deadline, f"no {kill_signal!r} handler:{page.service_logs()}"
            time.sleep(0.05)   # a real process starting: real time
        if proc.poll() is None:
            proc.send_signal(kill_signal)
    problems = []
    for argv, proc in page.services:
        try:
            rc = proc.wait(SERVICE_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = "timeout"
        err = proc.log.read_text()
        if rc != 0:
            problems.append(f"{shlex.join(argv)} ended with {rc}: {err[-2000:]}")
    page.services.clear()
    assert not problems, "\n".join(problems)


def _substitute(page: Page, text: str) -> str:
    for placeholder, key in ((PG_PLACEHOLDER, "pg"), (REDIS_PLACEHOLDER, "redis"),
                             ("--port 8080", "port")):
        if placeholder in text:
            text = text.replace(placeholder, page.env["_substitutes"][key](placeholder))
    return text


def _commands(block: Block) -> list[tuple[str, str]]:
    """(command, expected output) pairs of a console block."""
    pairs: list[tuple[str, list[str]]] = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        assert line.startswith("$ "), f"line {block.line}: output before any command: {line!r}"
        command = line[2:]
        while command.endswith("\\"):
            i += 1
            command = command[:-1] + lines[i].strip()
        i += 1
        output = []
        while i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        pairs.append((command, output))
    return [(c, "\n".join(o).strip()) for c, o in pairs]


CHECKER = doctest.OutputChecker()
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def run_console(page: Page, block: Block) -> None:
    for command, expected in _commands(block):
        command = _substitute(page, command)
        argv = shlex.split(command, comments=True)
        if argv[0] == "export":
            for assignment in argv[1:]:
                name, _, value = assignment.partition("=")
                page.env[name] = value
            continue
        if argv[:2] == ["pip", "install"]:
            _pip_install(page, block, argv)
            continue
        assert argv[0] in ("cronkit", "celery"), \
            f"{page.where(block)}: how would the test run {argv[0]!r}?"
        env = {k: v for k, v in page.env.items() if not k.startswith("_")}
        if _is_service(argv):
            assert not expected, f"{page.where(block)}: a service's output is not checked"
            _start(page, argv, env)
            continue
        argv = [*script_command(argv[0]), *argv[1:]]
        try:
            done = subprocess.run(argv, cwd=page.folder, env=env, capture_output=True,
                                  text=True, timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{page.where(block)}: `{command}` timed out{page.service_logs()}")
        got = done.stdout.strip() or done.stderr.strip()   # what is shown: stdout, or errors
        assert done.returncode == 0, f"{page.where(block)}: `{command}` exited " \
            f"{done.returncode}:\n{done.stdout}{done.stderr}{page.service_logs()}"
        if expected and expected != "...":
            assert CHECKER.check_output(expected + "\n", got + "\n", FLAGS), \
                f"{page.where(block)}: `{command}`\nexpected:\n{expected}\ngot:\n{got}"


def _unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit: section -> [(key, value)], keys may repeat."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def run_unit(page: Page, block: Block) -> None:
    """Start the unit's ExecStart as systemd would (its Environment, its WorkingDirectory
    being the scratch folder), and register it for the stop at the end of the page."""
    assert block.caption and block.caption.endswith(".service"), \
        f"{page.where(block)}: an ini example is a systemd unit named by its caption"
    unit = _unit(block.text)
    service = dict(unit["Service"])
    assert {"Unit", "Service", "Install"} <= set(unit), f"{page.where(block)}: sections"
    workdir = service["WorkingDirectory"]
    env = {k: v for k, v in page.env.items() if not k.startswith("_")}
    for key, value in unit["Service"]:
        value = value.replace(workdir, str(page.folder))
        if key == "Environment":
            name, _, val = value.partition("=")
            env[name] = val
        elif key == "EnvironmentFile":
            env["CRONKIT_TOKEN"] = "s3cret"   # the file the page tells to write
    assert service.get("KillSignal", "SIGTERM") == "SIGTERM"
    argv = shlex.split(_substitute(page, service["ExecStart"]))
    argv[0] = Path(argv[0]).name
    assert _is_service(argv), f"{page.where(block)}: ExecStart is not a cronkit service"
    _start(page, argv, env)
    if "worker" in argv:
        # the worker runs what is submitted to its store
        submit = subprocess.run([*script_command("cronkit"), "--import", "shop_jobs", "jobs",
                                 "submit", "reindex"], cwd=page.folder, env=env,
                                capture_output=True, text=True, check=True)
        job_id = submit.stdout.strip()
        watch = subprocess.run([*script_command("cronkit"), "jobs", "watch", job_id], cwd=page.folder,
                               env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        assert watch.returncode == 0, watch.stdout + watch.stderr


def show_text(page: Page, block: Block) -> None:
    """A ``text`` block illustrates output (a table a command prints): nothing to run."""


RUNNERS = {"python": run_python, "xml": run_xml, "console": run_console, "ini": run_unit,
           "text": show_text}


def _receivers() -> dict[type, set]:
    def walk(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from walk(sub)
    def live(ref):
        return ref() if isinstance(ref, weakref.ref) else ref
    return {cls: {live(r) for r in cls.signal.receivers.values()} for cls in walk(Event)
            if "signal" in cls.__dict__}


def scratch_env(folder: Path) -> dict:
    """The scratch folder of a page, as a reader's: the repository's ``examples/`` copied
    in (``--profile examples/site.zcml``, ``--import examples.jobs`` work as from the
    repository root), a SQLite store of its own, and the folder *not* on PYTHONPATH: the
    console script finds the reader's modules there as the current folder's."""
    shutil.copytree(ROOT / "examples", folder / "examples",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = child_env(CRONKIT_STORE=f"sqlite:///{folder / 'cronkit.db'}")
    env["PYTHONPATH"] = os.pathsep.join(p for p in env["PYTHONPATH"].split(os.pathsep)
                                        if Path(p).resolve() != folder.resolve())
    return env


@pytest.fixture
def substitutes(request):
    """Real servers for the placeholders of a page, started only when it names them."""
    return {"pg": lambda _: request.getfixturevalue("pg_db"),
            "redis": lambda _: request.getfixturevalue("redis_url"),
            "port": lambda _: f"--port {free_port()}"}


@pytest.mark.parametrize("page_name", PAGES)
def test_the_examples_of_the_page_run(page_name, tmp_path, monkeypatch, substitutes):
    blocks = blocks_of(page_name)
    assert blocks, f"docs/{page_name} has no example"
    for block in blocks:
        assert block.language in LANGUAGES, \
            f"docs/{page_name}, line {block.line}: no test runs {block.language!r} blocks"
    cache: dict[str, str] = {}

    def once(key):
        return lambda placeholder: cache.setdefault(key, substitutes[key](placeholder))

    env = scratch_env(tmp_path)
    env["_substitutes"] = {key: once(key) for key in substitutes}
    page = Page(page_name, tmp_path, env)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = _receivers()
    try:
        for i, block in enumerate(blocks):
            RUNNERS[block.language](page, block)
            if i + 1 == len(blocks) or blocks[i + 1].section != block.section:
                stop_services(page)   # services run until the end of their section
    finally:
        for _argv, proc in page.services:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for cls, receivers in _receivers().items():
            for receiver in receivers - before.get(cls, set()):
                cls.signal.disconnect(receiver)
        for module in page.modules:
            sys.modules.pop(module, None)



# -- the shell sessions of the other pages ------------------------------------------------


def _all_pages() -> list[str]:
    pages = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.rst")
             if "_build" not in p.parts and p.relative_to(DOCS).as_posix() not in ZOPE_PAGES]
    return sorted(pages) + ["../README.rst"]


def sessions_of(page: str) -> list[Block]:
    """Every literal block of a page that is a shell session (its first line starts with
    ``$ ``): ``code-block:: console`` blocks and ``::`` blocks alike."""
    blocks_of("index.rst")   # registers the directives and roles read without Sphinx
    path = DOCS / page
    tree = publish_doctree(path.read_text(), source_path=str(path),
                           settings_overrides={"report_level": 5, "halt_level": 5})
    return [Block(n.get("language") or "console", n.astext(), n.get("line") or n.line or 0)
            for n in tree.findall(nodes.literal_block) if n.astext().startswith("$ ")]


OTHER_PAGES = [p for p in _all_pages() if p not in PAGES and sessions_of(p)]


def check_service(page: Page, block: Block, argv: list[str]) -> None:
    """A command that serves until stopped is not started here: argparse must accept
    it, and what it loads must be there (its profiles, its modules)."""
    from cronkit.cli import build_parser
    from cronkit.cli.common import _imports
    try:
        args = build_parser().parse_args(argv[1:])
    except Exception as exc:  # noqa: BLE001 - the parser's UsageError, or worse
        pytest.fail(f"{page.where(block)}: `{shlex.join(argv)}`: {exc}")
    for path in getattr(args, "profile", None) or []:
        assert (page.folder / path).is_file(), f"{page.where(block)}: no profile {path}"
    for module in _imports(args):
        here = page.folder / Path(*module.split("."))
        assert (here.with_suffix(".py").is_file() or (here / "__init__.py").is_file()
                or importlib.util.find_spec(module) is not None), \
            f"{page.where(block)}: no module {module}"


def run_session(page: Page, block: Block) -> None:
    """Run a shell session of a narrative page: ``export`` and ``pip install`` as on the
    how-to pages; a service is checked (check_service); any other ``cronkit`` command
    runs through the console script in the scratch folder, exit code 0, or 2 when its
    expected output is an error line, and its output is compared."""
    for command, expected in _commands(block):
        argv = shlex.split(command, comments=True)
        if argv[0] == "export":
            for assignment in argv[1:]:
                name, _, value = assignment.partition("=")
                page.env[name] = value
            continue
        if argv[:2] == ["pip", "install"]:
            _pip_install(page, block, argv)
            continue
        assert argv[0] == "cronkit", f"{page.where(block)}: how would the test run {argv[0]!r}?"
        if _is_service(argv):
            check_service(page, block, argv)
            continue
        env = {k: v for k, v in page.env.items() if not k.startswith("_")}
        done = subprocess.run([*script_command("cronkit"), *argv[1:]], cwd=page.folder,
                              env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        got = done.stdout.strip() or done.stderr.strip()
        error = expected.startswith("cronkit: error:")
        assert done.returncode == (2 if error else 0), f"{page.where(block)}: `{command}` " \
            f"exited {done.returncode}:\n{done.stdout}{done.stderr}"
        if expected and expected != "...":
            assert CHECKER.check_output(expected + "\n", got + "\n", FLAGS), \
                f"{page.where(block)}: `{command}`\nexpected:\n{expected}\ngot:\n{got}"


@pytest.mark.parametrize("page_name", OTHER_PAGES)
def test_the_shell_sessions_of_the_page_run(page_name, tmp_path):
    page = Page(page_name, tmp_path, scratch_env(tmp_path))
    for block in sessions_of(page_name):
        run_session(page, block)


def test_the_shell_sessions_of_every_page_are_checked():
    assert {"cli.rst", "logging.rst"} <= set(OTHER_PAGES)
    assert not set(OTHER_PAGES) & set(PAGES)


# -- the Sphinx site ------------------------------------------------------------------------


def test_the_documentation_builds_without_a_warning(tmp_path):
    """``make docs``: the whole site, warnings as errors. Warnings that docutils prints
    by itself (text parsed outside Sphinx's logging) fail it too."""
    done = subprocess.run([*script_command("sphinx-build"), "-W", "--keep-going", "-E", "-q",
                           "-b", "html", "-d", str(tmp_path / "doctrees"), str(DOCS),
                           str(tmp_path / "html")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not re.search(r"WARNING|ERROR|SEVERE", done.stderr), done.stderr
    html = (tmp_path / "html")
    assert "cronkit.Cronkit" in (html / "reference" / "python.html").read_text()
    assert "/sites/{site}/jobs" in (html / "reference" / "rest.html").read_text()
    assert "--concurrency" in (html / "reference" / "cli.html").read_text()
    assert "IQueueManager" in (html / "reference" / "interfaces.html").read_text()


def _docs_ext():
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        return importlib.import_module("cronkit_docs")
    finally:
        sys.path.remove(str(DOCS / "_ext"))


def test_the_design_page_names_exactly_the_components_and_events_of_the_code():
    ext = _docs_ext()
    text = (DOCS / "design.rst").read_text()
    assert ext.check_design_text(text) == []
    assert set(ext.component_names()) == {"CrontabRegistryManager", "CrontabManager",
                                          "CronManager", "QueueManager", "QueueMarker",
                                          "JobLifecycle"}
    assert ext.check_design_text(text.replace("QueueMarker", "Queue marker")) == [
        "component QueueMarker is not on the design page"]
    assert ext.check_design_text(text + "\nThe JobPausedEvent.\n") == [
        "JobPausedEvent is on the design page but not in the code"]
    assert ext.check_design_text(text.replace("JobLifecycle", "job lifecycle")) == [
        "component JobLifecycle is not on the design page"]


def test_the_cli_reference_is_the_parser_with_its_help_escaped():
    parser = _docs_ext().cli_parser()
    crons = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    add = crons.choices["crons"]._actions[-1].choices["add"]
    helps = {a.dest: a.help for a in add._actions}
    assert helps["periodicity"] == r"cron expression ('\*/5 \* \* \* \*') or @hourly-style alias"
