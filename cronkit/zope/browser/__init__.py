"""cronkit's Plone control panel (``@@cronkit-controlpanel``)."""
