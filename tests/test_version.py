"""The version is defined once, in ``cronkit/__init__.py``: the installed metadata,
``cronkit --version`` and CHANGES.rst agree with it."""

from __future__ import annotations

import ast
import configparser
import importlib.metadata
import re
from pathlib import Path

import cronkit
from cronkit.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_setup_cfg_reads_the_version_from_the_package():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert setup["metadata"]["version"] == "attr: cronkit.__version__"


def test_the_version_is_a_literal_setuptools_reads_without_importing_cronkit():
    # setuptools reads `attr:` statically only from a plain `__version__ = "..."`;
    # otherwise it imports cronkit, which needs its dependencies at build time
    tree = ast.parse((ROOT / "cronkit" / "__init__.py").read_text())
    values = [node.value.value for node in tree.body
              if isinstance(node, ast.Assign)
              and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
              and isinstance(node.value, ast.Constant)]
    assert values == [cronkit.__version__]


def test_installed_metadata_has_the_package_version():
    assert importlib.metadata.version("cronkit") == cronkit.__version__


def test_cronkit_version_prints_it(capsys):
    try:
        main(["--version"])
    except SystemExit as exit:
        assert exit.code == 0
    assert capsys.readouterr().out.strip() == f"cronkit {cronkit.__version__}"


def test_changes_begins_with_this_version():
    changes = (ROOT / "CHANGES.rst").read_text()
    first = re.search(r"^(\S+) \((unreleased|\d{4}-\d{2}-\d{2})\)\n-+$", changes, re.MULTILINE)
    assert first is not None, "CHANGES.rst has no 'X.Y.Z (unreleased)' or dated heading"
    assert first.group(1) == re.sub(r"\.dev\d+$", "", cronkit.__version__)
