"""Celery over Redis for the benchmark (``$BENCH_REDIS_URL``); no result backend."""

import os

from celery import Celery

from bench.record import record

app = Celery("bench", broker=os.environ["BENCH_REDIS_URL"])
app.conf.update(task_ignore_result=True, broker_connection_retry_on_startup=True,
                worker_hijack_root_logger=False)


@app.task(name="bench.noop")
def noop():
    record()
