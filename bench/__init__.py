"""cronkit's benchmark suite: cronkit against Huey, Celery, RQ and APScheduler 3.

Run it with ``make bench`` (installs the peers and Redis first) or
``python -m bench [--quick] [--only WORKLOAD]``. See ``bench/__main__.py``.
"""
