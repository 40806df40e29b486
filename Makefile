# cronkit: `make run` starts it, `make test` proves it. Both build .venv first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS := web,postgres,celery,test,dev,docs
# What `make run` needs: the dashboard, metrics and JSON logs; nothing to test or build docs.
RUN_EXTRAS := web,ops
# Where `make run` serves the dashboard: `make run PORT=8081`; a HOST off loopback needs
# CRONKIT_TOKEN or CRONKIT_PASSWORD in the environment (the dashboard refuses otherwise).
HOST ?= 127.0.0.1
PORT ?= 8080
# Re-install whenever the package metadata changes (the version is in cronkit/__init__.py).
# STAMP: everything installed (`make test`); RUN_STAMP: what `make run` needs, which a
# full install also brings (so `make run` after `make test` installs nothing).
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
BENCH_STAMP := $(VENV)/.installed-bench
PYTEST_ARGS ?=
# The suite runs on this many pytest-xdist workers (`make test PYTEST_WORKERS=0`: one
# process); most of its time is spent waiting on subprocesses and servers, not on CPU.
PYTEST_WORKERS ?= 2

# Zope and Plone run in a virtualenv of their own, with the pins of the Plone release
# cronkit supports (constraints/): older than the newest releases the rest of the suite
# runs with (zope.interface, Sphinx, click...), and the newest Plone packages do not
# start a site together.
ZVENV := .venv-zope
ZBIN := $(ZVENV)/bin
ZSTAMP := $(ZVENV)/.installed
ZOPE_CONSTRAINTS := constraints/plone-6.0.13.txt

.PHONY: .venv .venv-zope system-deps test test-zope docs run bench clean

.venv: $(STAMP)

.venv-zope: $(ZSTAMP)

$(ZSTAMP): setup.cfg pyproject.toml cronkit/__init__.py $(ZOPE_CONSTRAINTS)
	test -x $(ZBIN)/python || $(PYTHON) -m venv $(ZVENV)
	$(ZBIN)/pip install --quiet --disable-pip-version-check -c $(ZOPE_CONSTRAINTS) \
		-e '.[plone]' pytest pytest-cov
	touch $@

$(STAMP): setup.cfg pyproject.toml cronkit/__init__.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $@ $(RUN_STAMP)

$(RUN_STAMP): setup.cfg pyproject.toml cronkit/__init__.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[$(RUN_EXTRAS)]'
	touch $@

# PostgreSQL, Redis and Chromium from Debian; a fast no-op once installed.
system-deps:
	scripts/install-system-deps

# Browser tests use Debian's Chromium: `playwright install` is never run.
# mypy first (settings in setup.cfg): a type error fails the run before the suite starts.
# Then the Zope and Plone tests in their virtualenv, whose coverage the suite's adds to:
# the report and its threshold are those of both runs together.
test: .venv $(ZSTAMP) system-deps
	$(BIN)/mypy
	$(MAKE) --no-print-directory test-zope ZOPE_COV='--cov=cronkit --cov-report='
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --durations=15 --cov=cronkit --cov-append \
		--cov-report=term-missing:skip-covered --cov-fail-under=95 $(PYTEST_ARGS)

# The Zope and Plone tests alone (plone.app.testing layers on Plone 6.0.13), with the
# how-to that moves a collective.cron add-on over.
ZOPE_COV ?=
test-zope: $(ZSTAMP)
	$(ZBIN)/python -m pytest tests_zope docs/howto/plone.rst $(ZOPE_COV) $(PYTEST_ARGS)

# The Sphinx site, warnings as errors: docs/_build/html/index.html.
docs: .venv
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

run: $(RUN_STAMP)
	$(BIN)/cronkit run --store sqlite:///cronkit.db --profile examples/site.zcml \
		--import examples.runners --host $(HOST) --port $(PORT)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS),bench]'
	touch $@

bench: $(BENCH_STAMP)
	scripts/install-system-deps
	$(BIN)/python -m bench

# Build and test output only: the data of `make run` (cronkit.db) is kept.
clean:
	rm -rf $(VENV) $(ZVENV) *.egg-info build dist .coverage .coverage.* test-output docs/_build \
		.hypothesis .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
