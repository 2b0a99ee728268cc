"""Huey's app: ``huey_consumer benchmarks.systems.huey_app.huey``.

`RedisHuey` with its defaults (results stored, blocking BRPOP dequeue) except
``store_none=True``: Huey stores no result for a task that returns None by default, and
every workload waits for stored results.
"""

from __future__ import annotations

import os
import time

from huey import RedisHuey

from .io_call import one_round_trip

__all__ = ["huey", "noop", "roundtrip", "sleep"]

huey = RedisHuey("bench", url=os.environ.get("BENCH_REDIS_URL", "redis://"), store_none=True)


@huey.task()
def noop() -> None:
    return None


@huey.task()
def sleep() -> None:
    time.sleep(0.01)


@huey.task()
def roundtrip() -> None:
    one_round_trip()
