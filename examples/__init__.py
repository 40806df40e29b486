"""Examples of cronkit: runners and the profiles that `make run` loads."""
