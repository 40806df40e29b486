"""The Plone release cronkit supports is pinned in three places that must agree: the
``zope`` and ``plone`` extras (setup.cfg), pip's constraints file
(``constraints/plone-6.0.13.txt``, which `make test-zope` installs with) and buildout's
``[versions-plone]`` (``buildout/versions.cfg``, for ``buildout/plone.cfg``). A pin
changed in one and not the others would test one release and ship another."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints" / "plone-6.0.13.txt"


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _extra(name: str) -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    pins = {}
    for line in cfg["options.extras_require"][name].splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("cronkit["):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"extra {name}: {line!r} is not an exact pin"
        pins[_key(req.name)] = spec.version
    return pins


def _constraints() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate():
                (spec,) = req.specifier
                pins[_key(req.name)] = spec.version
    return pins


def _buildout() -> dict[str, str]:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.optionxform = str     # type: ignore[assignment,method-assign]
    cfg.read(ROOT / "buildout" / "versions.cfg")
    return {_key(k): v for k, v in cfg["versions-plone"].items() if k != "<"}


def test_the_plone_extra_pins_the_release_and_its_test_layers():
    plone = _extra("plone")
    assert plone["products-cmfplone"] == "6.0.13"
    assert plone["plone-app-testing"] == "7.1.0"
    assert _extra("zope")["zope"] == "5.10"


def test_every_pin_of_the_extras_is_the_constraints_file_s():
    constraints = _constraints()
    for extra in ("zope", "plone"):
        for name, version in _extra(extra).items():
            assert constraints.get(name) == version, (extra, name, version)


#: What [versions-plone] pins beside the extras: zc.buildout and what it runs on, and
#: cronkit's core dependencies, as [versions] pins them (the extras leave out Plone's
#: packaging 23.2: zc.buildout 6 needs 24 or later, and none of Plone's packages 23.2).
BUILDOUT_OWN = {"zc-buildout", "zc-recipe-egg", "setuptools", "pip", "wheel", "packaging",
                "platformdirs", "blinker", "croniter", "sqlalchemy", "greenlet"}
#: SQLAlchemy's typing-extensions, which Plone pins but none of its packages installs.
CORE_AS_PLONE_PINS = {"typing-extensions"}


def test_buildout_pins_what_the_extras_pin_and_what_buildout_and_the_core_run_on():
    extras = {**_extra("zope"), **_extra("plone")}
    pinned = _buildout()
    assert {k: v for k, v in pinned.items()
            if k not in BUILDOUT_OWN | CORE_AS_PLONE_PINS} == extras
    constraints = _constraints()
    assert {k: pinned[k] for k in CORE_AS_PLONE_PINS} == \
        {k: constraints[k] for k in CORE_AS_PLONE_PINS}
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "buildout" / "versions.cfg")
    base = {_key(k): v for k, v in cfg["versions"].items()}
    same = BUILDOUT_OWN - {"setuptools"}
    assert {k: pinned[k] for k in same} == {k: base[k] for k in same}
    # Plone 6.0.13 imports pkg_resources (gone in setuptools 81); zc.buildout 6 needs 75.8.2
    assert pinned["setuptools"] == "80.9.0"


def test_the_zope_extra_is_in_the_plone_extra():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert "cronkit[zope]" in cfg["options.extras_require"]["plone"].split()
