"""Fixtures of the Zope and Plone tests, run in their own virtualenv (`make test-zope`).

plone.testing layers are set up here the way zope.testrunner sets them up: every base
first, once, and torn down in reverse order when the last test that needs them is done;
``testSetUp``/``testTearDown`` around each test. A module asks for a layer with
``layer = layered(SOME_LAYER)`` at module level, and its tests take the ``layer``
fixture it makes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

_up: list[Any] = []        # layers set up, in set-up order


def _stack(layer: Any, out: list[Any]) -> list[Any]:
    for base in layer.__bases__:
        _stack(base, out)
    if layer not in out:
        out.append(layer)
    return out


def stack(layer: Any) -> list[Any]:
    """``layer`` and its bases, bases first: the order they are set up in."""
    return _stack(layer, [])


def set_up_layer(layer: Any) -> None:
    """Set ``layer`` up with its bases; first tear down the layers set up for another
    stack that this one does not use (two stacks may not be up at once)."""
    wanted = _stack(layer, [])
    while _up and _up[-1] not in wanted:
        _up.pop().tearDown()
    for each in wanted:
        if each not in _up:
            each.setUp()
            _up.append(each)


def layered(layer: Any) -> Any:
    """A ``layer`` fixture for one test module: the layer (set up at the module's first
    test), with its testSetUp and testTearDown around each test."""

    @pytest.fixture
    def layer_fixture() -> Iterator[Any]:
        set_up_layer(layer)
        for each in stack(layer):
            if hasattr(each, "testSetUp"):
                each.testSetUp()
        try:
            yield layer
        finally:
            for each in reversed(stack(layer)):
                if hasattr(each, "testTearDown"):
                    each.testTearDown()

    return layer_fixture


def tear_down_layers() -> None:
    """Tear down every layer set up, last first."""
    while _up:
        _up.pop().tearDown()


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    tear_down_layers()
