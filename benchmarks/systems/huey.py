"""Huey as a `System`: ``huey_consumer`` (worker processes for W1, threads for W3's
concurrency) and the tasks' calls, which enqueue and return a `Result`. `HueyNotifySystem`
is Huey tuned: results notified (``notify_result=True``) rather than polled for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from huey import RedisHuey
from redis.client import Pipeline

from . import huey_app
from .base import Handle, System, TaskKind, WorkerSpec, bin_path

__all__ = ["HueyNotifySystem", "HueySystem"]


class HueySystem(System):
    app_path: ClassVar[str] = "benchmarks.systems.huey_app.huey"
    app: ClassVar[RedisHuey] = huey_app.huey
    tasks: ClassVar[dict[str, Any]] = huey_app.TASKS

    def worker_commands(self, spec: WorkerSpec) -> list[list[str]]:
        base = [bin_path("huey_consumer"), self.app_path]
        if spec.concurrency is None:
            # One consumer with a worker process per slot (its default is 1 thread).
            return [[*base, "--worker-type", "process", "--workers", str(spec.processes)]]
        # Concurrency inside a process: one consumer per process, with threads.
        threads = ["--worker-type", "thread", "--workers", str(spec.concurrency)]
        return [[*base, *threads] for _ in range(spec.processes)]

    def enqueue(self, kind: TaskKind) -> Handle:
        return self.tasks[kind]().id

    def enqueue_batch(self, kind: TaskKind, count: int) -> Sequence[Handle]:
        # Huey's bulk form; it enqueues one task per call.
        return [result.id for result in self.tasks[kind].map([()] * count)]

    def probe(self, pipe: Pipeline, handle: Handle) -> None:
        pipe.hexists(self.app.storage.result_key, handle)

    def round_trip(self, timeout_s: float) -> None:
        # By default Huey polls for the result, from 50 ms up; notified when tuned.
        self.tasks[TaskKind.NOOP]().get(blocking=True, timeout=timeout_s)

    def close(self) -> None:
        self.app.storage.pool.disconnect()


class HueyNotifySystem(HueySystem):
    app_path = "benchmarks.systems.huey_app.huey_notify"
    app = huey_app.huey_notify
    tasks = huey_app.NOTIFY_TASKS
