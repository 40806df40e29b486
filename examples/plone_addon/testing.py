"""The add-on's test layers (plone.app.testing): a Plone site with the add-on's ZCML
loaded (which includes cronkit.zope's). Its profile is not applied here: the tests
install the add-on, as a site administrator does."""

from plone.app.testing import PLONE_FIXTURE, FunctionalTesting, PloneSandboxLayer


class NewsDigestLayer(PloneSandboxLayer):
    defaultBases = (PLONE_FIXTURE,)

    def setUpZope(self, app, configurationContext):
        import examples.plone_addon

        self.loadZCML(package=examples.plone_addon)


NEWS_DIGEST_FIXTURE = NewsDigestLayer()
# Functional: each test has a DemoStorage of its own and may commit, as cron jobs do.
NEWS_DIGEST_FUNCTIONAL_TESTING = FunctionalTesting(
    bases=(NEWS_DIGEST_FIXTURE,), name="NewsDigest:Functional")
