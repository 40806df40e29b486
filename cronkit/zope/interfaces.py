"""The contracts of cronkit inside Zope and Plone (markers only)."""

from __future__ import annotations

from zope.interface import Interface


class ICronkitSiteRoot(Interface):
    """Marker of a plain Zope folder that is a cronkit site: it adapts to
    ``cronkit.interfaces.ISite`` as a Plone or CMF site root does, under the name of
    its physical path (``"/".join(obj.getPhysicalPath())``, e.g. ``"/app"``)."""


class ICronkitLayer(Interface):
    """Browser layer of cronkit's Plone profile (``cronkit.zope:default``): the control
    panel's views are registered for it, so they exist only where it is installed."""
