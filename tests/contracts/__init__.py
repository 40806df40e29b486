"""Contract suites: one per interface, run against every backend."""
