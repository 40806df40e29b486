"""Sphinx configuration of cronkit's documentation (``make docs``)."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE / "_ext"), str(HERE.parent)]

import cronkit  # noqa: E402

project = "cronkit"
author = "the cronkit authors"
copyright = "cronkit authors"
release = cronkit.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "repoze.sphinx.autointerface",   # zope.interface contracts
    "sphinxarg.ext",                  # the CLI reference, from cronkit's argparse parser
    "sphinxcontrib.openapi",          # the REST reference, from the OpenAPI document
    "cronkit_docs",                   # docs/_ext: the glue that keeps the pages true
]

root_doc = "index"
exclude_patterns = ["_build", "_ext"]
templates_path: list[str] = []
html_theme = "alabaster"
html_static_path: list[str] = []
html_theme_options = {"description": "crontabs per site and background jobs"}

nitpicky = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": False}
# The "httpdomain" renderer shows request and response bodies; the old default one does not.
openapi_default_renderer = "httpdomain"
