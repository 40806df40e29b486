"""Zope and Plone sites as cronkit sites.

A Plone (or CMF) site root, or any object marked :class:`ICronkitSiteRoot`, adapts to
``cronkit.interfaces.ISite``: ``ISite(portal)`` is ``kit().site(name)`` with ``name`` the
site's physical path joined by "/" (``"/plone"``), stable across restarts, so each site
of a Zope keeps its own crontab in cronkit's store.
"""

from __future__ import annotations

from typing import Any

from cronkit.site import Site

from .config import kit
from .exceptions import ZopeRunnerError
from .interfaces import ICronkitSiteRoot

try:
    from Products.CMFCore.interfaces import ISiteRoot
except ImportError:  # pragma: no cover - a plain Zope without CMF: only marked folders
    ISiteRoot = None


def is_site_root(obj: Any) -> bool:
    """Whether ``obj`` is a cronkit site root: a CMF/Plone site root or a folder
    marked ``ICronkitSiteRoot``."""
    return ICronkitSiteRoot.providedBy(obj) or (
        ISiteRoot is not None and ISiteRoot.providedBy(obj))


def site_name(root: Any) -> str:
    """The cronkit site name of a site root: its physical path, e.g. ``"/plone"``."""
    return "/".join(root.getPhysicalPath())


def site_of_root(root: Any) -> Site:
    """The adapter site root -> ``ISite``: the kit's site named after ``root``."""
    return kit().site(site_name(root))


def find_root(obj: Any) -> Any:
    """The nearest site root of ``obj`` (itself, or up its acquisition chain), else
    the current site (``zope.component.hooks.getSite()``) when it is one, else None."""
    from Acquisition import aq_chain, aq_inner
    from zope.component.hooks import getSite

    for each in aq_chain(aq_inner(obj)):
        if is_site_root(each):
            return each
    current = getSite()
    if current is not None and is_site_root(current):
        return current
    return None


def site_of(obj: Any) -> Site:
    """The cronkit site of any object inside a Zope or Plone site.

    :raises ZopeRunnerError: ``obj`` is in no site (naming it)."""
    root = find_root(obj)
    if root is None:
        path = "/".join(obj.getPhysicalPath()) if hasattr(obj, "getPhysicalPath") \
            else repr(obj)
        raise ZopeRunnerError(f"{path} is in no cronkit site (no Plone or CMF site root, "
                              "no folder marked ICronkitSiteRoot above it)")
    return site_of_root(root)
