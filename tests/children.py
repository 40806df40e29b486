"""Starting cronkit in child processes the same way under ``make test`` (a virtualenv)
and under a buildout's ``bin/test`` (eggs on ``sys.path``, scripts in ``bin/``).

- :func:`child_env`: the environment with ``PYTHONPATH`` naming the given folders, the
  checkout, and everything this process can import, so a child imports the same code.
- :func:`command`: how to run a console script: the script beside this Python or
  beside the running test script (``bin/test``), else ``python -m`` its module.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# console script -> the module ``python -m`` runs instead
MODULES = {"cronkit": "cronkit", "celery": "celery", "sphinx-build": "sphinx"}


def child_path(*front: str | os.PathLike[str]) -> str:
    entries = [str(p) for p in front] + [str(ROOT)]
    entries += os.environ.get("PYTHONPATH", "").split(os.pathsep) + sys.path
    seen: set[str] = set()
    return os.pathsep.join(p for p in entries if p and not (p in seen or seen.add(p)))


def child_env(*front: str | os.PathLike[str], **extra: str) -> dict[str, str]:
    """``os.environ`` with ``PYTHONPATH`` = ``front``, the checkout and this process's
    ``sys.path``, and ``extra`` on top."""
    return dict(os.environ, PYTHONPATH=child_path(*front), **extra)


def script(name: str) -> Path | None:
    for folder in (Path(sys.executable).parent, Path(sys.argv[0]).resolve().parent):
        if (folder / name).exists():
            return folder / name
    return None


def command(name: str) -> list[str]:
    """The argv prefix that runs console script ``name``."""
    found = script(name)
    if found is not None:
        return [str(found)]
    assert name in MODULES, f"no {name!r} script beside {sys.executable} or {sys.argv[0]}"
    return [sys.executable, "-m", MODULES[name]]
