"""A collective.cron-style add-on of the GenericSetup tests: profiles with a crons.xml."""
