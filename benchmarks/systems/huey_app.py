"""Huey's apps: ``huey_consumer benchmarks.systems.huey_app.huey`` (defaults) and
``...huey_app.huey_notify`` (tuned).

`RedisHuey` with its defaults (results stored, blocking BRPOP dequeue) except
``store_none=True``: Huey stores no result for a task that returns None by default, and
every workload waits for stored results. The tuned app adds ``notify_result=True``: a
caller waiting on a result blocks on a per-task notification list instead of polling
from 50 ms up (the one flag that makes Huey's round trip fast).
"""

from __future__ import annotations

import os
import time
from typing import Any

from huey import RedisHuey

from .io_call import burn_cpu_ms, mark_start, one_round_trip

__all__ = ["NOTIFY_TASKS", "TASKS", "huey", "huey_notify"]


def _noop() -> None:
    return None


def _sleep() -> None:
    mark_start()
    time.sleep(0.01)


def _io() -> None:
    time.sleep(0.001)


def _app(name: str, **options: Any) -> tuple[RedisHuey, dict[str, Any]]:
    """A Huey app and its tasks by kind (each app registers its own)."""
    app = RedisHuey(name, url=os.environ.get("BENCH_REDIS_URL", "redis://"), store_none=True,
                    **options)  # fmt: skip
    functions = {
        "noop": _noop,
        "sleep": _sleep,
        "roundtrip": one_round_trip,
        "cpu": burn_cpu_ms,
        "io": _io,
    }
    return app, {kind: app.task(name=kind)(fn) for kind, fn in functions.items()}


huey, TASKS = _app("bench")
huey_notify, NOTIFY_TASKS = _app("bench-notify", notify_result=True)
