"""The add-on's cron job: publish a page that lists the site's news items."""

from collective.cron import crontab


class NewsDigest(crontab.Runner):
    """Publish a page in the folder that the cron's environ names ("folder"), listing
    the titles of the site's news items."""

    def run(self):
        portal = self.context
        folder = portal.unrestrictedTraverse(self.cron.environ.get("folder", "digests"))
        titles = [brain.Title for brain in portal.portal_catalog(portal_type="News Item",
                                                                 sort_on="sortable_title")]
        page_id = folder.invokeFactory("Document", id=f"digest-{len(folder.objectIds()) + 1}",
                                       title="News digest", description=", ".join(titles))
        portal.portal_workflow.doActionFor(folder[page_id], "publish")
        if not titles:
            return ["no news item to list"]
        return None
