"""Taskiq's broker: ``taskiq worker benchmarks.systems.taskiq_app:broker``.

`RedisStreamBroker` (taskiq-redis's recommended broker, with acknowledgements) and the
`RedisAsyncResultBackend` (Taskiq stores no results without one); all else default.
"""

from __future__ import annotations

import asyncio
import os

from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from .io_call import burn_cpu_ms, mark_start, one_round_trip

__all__ = ["broker", "cpu", "io", "noop", "roundtrip", "sleep"]

_URL = os.environ.get("BENCH_REDIS_URL", "redis://")
broker = RedisStreamBroker(url=_URL).with_result_backend(RedisAsyncResultBackend(redis_url=_URL))


@broker.task
async def noop() -> None:
    return None


@broker.task
async def sleep() -> None:
    mark_start()
    await asyncio.sleep(0.01)


@broker.task
async def roundtrip() -> None:
    one_round_trip()  # blocking, as a synchronous driver's call would be


@broker.task
async def cpu() -> None:
    burn_cpu_ms()


@broker.task
async def io() -> None:
    await asyncio.sleep(0.001)
