"""Dramatiq's actors: ``dramatiq benchmarks.systems.dramatiq_app``.

The Redis broker, with the Results middleware (Redis backend) added and
``store_results=True`` on the actors: Dramatiq stores no results by default.
"""

from __future__ import annotations

import os
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from .io_call import burn_cpu_ms, mark_start, one_round_trip

__all__ = ["backend", "broker", "cpu", "io", "noop", "roundtrip", "sleep"]

_URL = os.environ.get("BENCH_REDIS_URL", "redis://")
backend = RedisBackend(url=_URL)
broker = RedisBroker(url=_URL)
broker.add_middleware(Results(backend=backend))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True)
def noop() -> None:
    return None


@dramatiq.actor(store_results=True)
def sleep() -> None:
    mark_start()
    time.sleep(0.01)


@dramatiq.actor(store_results=True)
def roundtrip() -> None:
    one_round_trip()


@dramatiq.actor(store_results=True)
def cpu() -> None:
    burn_cpu_ms()


@dramatiq.actor(store_results=True)
def io() -> None:
    time.sleep(0.001)
