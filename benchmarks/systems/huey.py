"""Huey as a `System`: ``huey_consumer`` (worker processes for W1, threads for W3's
concurrency) and the tasks' calls, which enqueue and return a `Result`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.client import Pipeline

from . import huey_app
from .base import Handle, System, TaskKind, WorkerSpec, bin_path

__all__ = ["HueySystem"]

_TASKS: dict[TaskKind, Any] = {
    TaskKind.NOOP: huey_app.noop,
    TaskKind.SLEEP: huey_app.sleep,
    TaskKind.ROUNDTRIP: huey_app.roundtrip,
}


class HueySystem(System):
    def worker_commands(self, spec: WorkerSpec) -> list[list[str]]:
        base = [bin_path("huey_consumer"), "benchmarks.systems.huey_app.huey"]
        if spec.concurrency is None:
            # One consumer with a worker process per slot (its default is 1 thread).
            return [[*base, "--worker-type", "process", "--workers", str(spec.processes)]]
        # Concurrency inside a process: one consumer per process, with threads.
        threads = ["--worker-type", "thread", "--workers", str(spec.concurrency)]
        return [[*base, *threads] for _ in range(spec.processes)]

    def enqueue(self, kind: TaskKind) -> Handle:
        return _TASKS[kind]().id

    def enqueue_batch(self, kind: TaskKind, count: int) -> Sequence[Handle]:
        # Huey's bulk form; it enqueues one task per call.
        return [result.id for result in _TASKS[kind].map([()] * count)]

    def probe(self, pipe: Pipeline, handle: Handle) -> None:
        pipe.hexists(huey_app.huey.storage.result_key, handle)

    def round_trip(self, timeout_s: float) -> None:
        huey_app.noop().get(blocking=True, timeout=timeout_s)  # polls, from 50 ms up

    def close(self) -> None:
        huey_app.huey.storage.pool.disconnect()
