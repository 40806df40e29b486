"""The zc.buildout of ``buildout/``, run as a user runs it: its *.cfg copied into a
temporary folder, the develop egg pointed at this checkout, every egg pinned.

Eggs and downloads are cached in ``test-output/buildout-cache`` (or
``$CRONKIT_BUILDOUT_CACHE``), so only the first run fetches from PyPI (about a minute);
later runs take seconds.
"""

from __future__ import annotations

import configparser
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

import cronkit

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("CRONKIT_BUILDOUT_CACHE") or ROOT / "test-output" / "buildout-cache")


def _env() -> dict[str, str]:
    """The environment without what this pytest run put in it: no PYTHONPATH (bin/test
    sets one), no coverage hooks."""
    return {k: v for k, v in os.environ.items()
            if k != "PYTHONPATH" and not k.startswith("COV_CORE_")}


def _run(command: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def _buildout_python() -> Path:
    """A virtualenv holding only buildout/requirements.txt, as buildout/README.rst sets
    one up (not this test run's virtualenv: buildout would take every egg from its
    site-packages instead of installing the pinned ones). Made once per requirements."""
    requirements = ROOT / "buildout" / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    venv = CACHE / f"python-{digest}"
    if not (venv / "complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        for command in ([sys.executable, "-m", "venv", str(venv)],
                        [str(venv / "bin" / "pip"), "install", "--quiet", "-r", str(requirements)]):
            proc = _run(command, CACHE, timeout=600)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        (venv / "complete").touch()
    return venv / "bin"


def _build(folder: Path) -> tuple[int, str]:
    """Run buildout in ``folder`` as a user does: its exit status and what it printed."""
    for cfg in (ROOT / "buildout").glob("*.cfg"):
        shutil.copy(cfg, folder)
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # the cache is shared with other runs
        command = [str(_buildout_python() / "buildout"), "-N", "-c", "buildout.cfg",
                   f"buildout:checkout={ROOT}",
                   f"buildout:eggs-directory={CACHE / 'eggs'}",
                   f"buildout:download-cache={CACHE / 'downloads'}"]
        proc = _run(command, folder, timeout=900)
    return proc.returncode, proc.stdout + proc.stderr


def _result_file(folder: Path) -> Path:
    return folder.with_name(folder.name + "-result.json")


class _Background:
    """The buildout, started as soon as the session knows it will run these tests
    (``start``, from conftest.py): on a fresh clone it spends most of its two minutes
    downloading and installing eggs, time the rest of the suite uses meanwhile.

    Under pytest-xdist the controller builds (it learns from the workers' collections
    whether these tests run) and each worker reads the result file it writes."""

    thread: threading.Thread | None = None
    folder: Path | None = None
    result: tuple[int, str] | None = None

    @classmethod
    def start(cls, folder: Path | None = None) -> None:
        if cls.thread is not None:
            return
        cls.folder = folder or Path(tempfile.mkdtemp(prefix="cronkit-buildout-"))

        def build() -> None:
            try:
                cls.result = _build(cls.folder)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - reported by the fixture
                cls.result = (-1, f"{type(exc).__name__}: {exc}")
            done = _result_file(cls.folder)  # type: ignore[arg-type]
            part = done.with_suffix(".part")
            part.write_text(json.dumps(cls.result))
            part.replace(done)

        cls.thread = threading.Thread(target=build, name="buildout", daemon=True)
        cls.thread.start()

    @classmethod
    def follow(cls, folder: Path) -> None:
        """In an xdist worker: the build is the controller's, in ``folder``."""
        cls.folder = folder

    @classmethod
    def wait(cls, timeout: float = 900) -> tuple[int, str] | None:
        if cls.thread is not None:
            cls.thread.join(timeout=timeout)
            return cls.result
        assert cls.folder is not None
        done = _result_file(cls.folder)
        deadline = time.monotonic() + timeout
        while not done.exists():
            if time.monotonic() > deadline:
                return None
            time.sleep(0.5)
        status, output = json.loads(done.read_text())
        return status, output

    @classmethod
    def stop(cls) -> None:
        if cls.thread is None:        # not built here: nothing of it to remove
            return
        cls.thread.join(timeout=900)
        if cls.folder is not None:
            shutil.rmtree(cls.folder, ignore_errors=True)
            _result_file(cls.folder).unlink(missing_ok=True)


start_in_background, follow_background, stop_background = (
    _Background.start, _Background.follow, _Background.stop)


@pytest.fixture(scope="module")
def buildout() -> tuple[Path, str]:
    """A folder where buildout ran, and what buildout printed."""
    if _Background.folder is None:
        _Background.start()      # already running when the session started it
    result = _Background.wait()
    assert result is not None, "buildout did not end within 15 minutes"
    assert _Background.folder is not None
    status, output = result
    assert status == 0, output
    return _Background.folder, output


def test_buildout_installs_only_pinned_eggs(buildout):
    folder, output = buildout
    assert "picked" not in output.lower(), output
    assert (folder / "bin" / "cronkit").exists()
    assert (folder / "bin" / "test").exists()


def test_bin_cronkit_is_the_cronkit_command_with_the_web_extra(buildout):
    folder, _ = buildout
    proc = _run(["bin/cronkit", "--help"], folder)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: cronkit")
    for command in ("run", "worker", "web", "crons", "jobs"):
        assert f"    {command} " in proc.stdout, proc.stdout

    proc = _run(["bin/cronkit", "--version"], folder)
    assert proc.stdout.strip() == f"cronkit {cronkit.__version__}"

    script = (folder / "bin" / "cronkit").read_text()
    assert f"'{ROOT}'" in script           # the develop egg: this checkout
    for egg in ("starlette-", "uvicorn-", "Jinja2-", "python_multipart-"):
        assert egg in script, f"{egg} is not on bin/cronkit's path"


def test_bin_test_runs_the_suite_with_pytest(buildout):
    folder, _ = buildout
    proc = _run(["bin/test", "--version"], folder)
    assert proc.returncode == 0, proc.stderr
    pinned = configparser.ConfigParser()
    pinned.read(ROOT / "buildout" / "versions.cfg")
    assert f"pytest {pinned['versions']['pytest']}" in proc.stdout + proc.stderr

    # bin/test runs in the checkout, with its setup.cfg: paths are relative to it
    proc = _run(["bin/test", "-q", "tests/test_model.py"], folder, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " passed" in proc.stdout and "failed" not in proc.stdout, proc.stdout
