"""A runner whose module takes seconds to import, as heavy applications do: the
processes executor's child imports it before it runs the job."""

import time

import cronkit

time.sleep(3)


class Quick(cronkit.Runner):
    """Done at once, once started."""

    def run(self):
        return "quick"
