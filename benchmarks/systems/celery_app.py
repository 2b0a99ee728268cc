"""Celery's app: ``celery -A benchmarks.systems.celery_app worker``.

Redis as broker and as result backend (Celery stores no results by default: the backend
is switched on here, since every workload waits for stored results); all else default.
"""

from __future__ import annotations

import os
import time

from celery import Celery

from .io_call import burn_cpu_ms, mark_start, one_round_trip

__all__ = ["app", "cpu", "io", "noop", "roundtrip", "sleep"]

_URL = os.environ.get("BENCH_REDIS_URL", "redis://")
app = Celery("bench", broker=_URL, backend=_URL)


@app.task
def noop() -> None:
    return None


@app.task
def sleep() -> None:
    mark_start()
    time.sleep(0.01)


@app.task
def roundtrip() -> None:
    one_round_trip()


@app.task
def cpu() -> None:
    burn_cpu_ms()


@app.task
def io() -> None:
    time.sleep(0.001)
