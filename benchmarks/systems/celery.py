"""Celery as a `System`: ``celery worker`` (prefork pool; the threads pool for W3's 50
concurrent tasks per process) and the tasks' ``delay``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Task, group
from redis.client import Pipeline

from . import celery_app
from .base import Handle, System, TaskKind, WorkerSpec, bin_path

__all__ = ["CelerySystem"]

_TASKS: dict[TaskKind, Task[Any, Any]] = {
    TaskKind.NOOP: celery_app.noop,
    TaskKind.SLEEP: celery_app.sleep,
    TaskKind.ROUNDTRIP: celery_app.roundtrip,
    TaskKind.CPU: celery_app.cpu,
    TaskKind.IO: celery_app.io,
}


class CelerySystem(System):
    def __init__(self, redis_url: str) -> None:
        super().__init__(redis_url)
        self._backend = celery_app.app.backend

    def worker_commands(self, spec: WorkerSpec) -> list[list[str]]:
        base = [bin_path("celery"), "-A", "benchmarks.systems.celery_app", "worker"]
        if spec.concurrency is None:
            # The default prefork pool: one worker whose pool has one process per slot.
            return [[*base, "--concurrency", str(spec.processes)]]
        # Concurrency inside a process: Celery's threads pool, one worker per process
        # (each needs its own node name).
        return [
            [*base, "--pool", "threads", "--concurrency", str(spec.concurrency),
             "--hostname", f"bench{i}@%h"]
            for i in range(spec.processes)
        ]  # fmt: skip

    def enqueue(self, kind: TaskKind) -> Handle:
        return _TASKS[kind].delay().id

    def enqueue_batch(self, kind: TaskKind, count: int) -> Sequence[Handle]:
        result = group(_TASKS[kind].s() for _ in range(count)).apply_async()
        return [r.id for r in result.results]

    def probe(self, pipe: Pipeline, handle: Handle) -> None:
        pipe.exists(self._backend.get_key_for_task(handle))

    def round_trip(self, timeout_s: float) -> None:
        celery_app.noop.delay().get(timeout=timeout_s)

    def close(self) -> None:
        celery_app.app.close()
