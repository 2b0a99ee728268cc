"""tasker-dist's worker module: ``tasker-worker benchmarks.systems.tasker_app:config``.

Every setting is `Config`'s default (one slot per process unless ``--workers`` says
otherwise; retries, leases, fencing and signing on: the workers get $TASKER_SECRET).
Tasks are plain importable functions, so producers send them by reference.
"""

from __future__ import annotations

import asyncio
import os
import time

from tasker_dist import Config, TaskContext

from .io_call import burn_cpu_ms, mark_start, one_round_trip

__all__ = [
    "SOAK_RESULT_TTL_ENV", "async_sleep", "config", "cpu", "io", "noop", "roundtrip", "sleep",
    "soak_config",
]  # fmt: skip

SOAK_RESULT_TTL_ENV = "TASKER_SOAK_RESULT_TTL_S"


def _no_resource() -> None:
    return None  # the workloads need no per-slot resource


config: Config[None] = Config(on_create=_no_resource)


def noop(ctx: TaskContext, resource: None) -> None:
    return None


def sleep(ctx: TaskContext, resource: None) -> None:
    mark_start()
    time.sleep(0.01)


def roundtrip(ctx: TaskContext, resource: None) -> None:
    one_round_trip()


def cpu(ctx: TaskContext, resource: None) -> None:
    burn_cpu_ms()


def io(ctx: TaskContext, resource: None) -> None:
    time.sleep(0.001)


async def async_sleep(ctx: TaskContext, resource: None) -> None:
    mark_start()
    await asyncio.sleep(0.01)


#: The soak (``benchmarks/soak.py``): results expire soon (15 s; the soak's smoke test
#: sets less), so that Redis's memory can be seen to go back to where it started.
soak_config: Config[None] = Config(
    on_create=_no_resource, result_ttl=float(os.environ.get(SOAK_RESULT_TTL_ENV, "15"))
)
