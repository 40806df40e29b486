"""The peers' task modules, configured from the environment by the harness."""
