"""arq's worker settings: ``arq benchmarks.systems.arq_app.WorkerSettings``.

All of arq's defaults (results kept 3600 s, the queue polled every 0.5 s) except
``max_jobs``, set only where a workload asks for a concurrency (W3: 50).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, ClassVar

from arq.connections import RedisSettings

from .io_call import burn_cpu_ms, mark_start, one_round_trip

__all__ = ["WorkerSettings", "cpu", "io", "noop", "roundtrip", "sleep"]


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def sleep(ctx: dict[str, Any]) -> None:
    mark_start()
    await asyncio.sleep(0.01)


async def roundtrip(ctx: dict[str, Any]) -> None:
    one_round_trip()  # blocking, as a synchronous driver's call would be


async def cpu(ctx: dict[str, Any]) -> None:
    burn_cpu_ms()


async def io(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(0.001)


class WorkerSettings:
    functions: ClassVar[list[Any]] = [noop, sleep, roundtrip, cpu, io]
    redis_settings = RedisSettings.from_dsn(os.environ.get("BENCH_REDIS_URL", "redis://"))
    if "BENCH_CONCURRENCY" in os.environ:
        max_jobs = int(os.environ["BENCH_CONCURRENCY"])
