"""A collective.cron add-on as its users have it, moved to cronkit in Plone 6: a runner
(cron.py), registered as a named adapter (configure.zcml), and a GenericSetup profile
with a crons.xml. docs/howto/plone.rst installs it in a Plone site and runs it; the
files it had under collective.cron are in before/."""
