"""Taskiq as a `System`: ``taskiq worker`` (its own processes, async tasks up to
``--max-async-tasks`` each) and ``kiq``, driven from one event loop."""

from __future__ import annotations

from typing import Any

from redis.client import Pipeline

from . import taskiq_app
from .base import AsyncSystem, Handle, TaskKind, WorkerSpec, bin_path

__all__ = ["TaskiqSystem"]

_TASKS: dict[TaskKind, Any] = {
    TaskKind.NOOP: taskiq_app.noop,
    TaskKind.SLEEP: taskiq_app.sleep,
    TaskKind.ROUNDTRIP: taskiq_app.roundtrip,
    TaskKind.CPU: taskiq_app.cpu,
    TaskKind.IO: taskiq_app.io,
}


class TaskiqSystem(AsyncSystem):
    def __init__(self, redis_url: str) -> None:
        super().__init__(redis_url)
        self._loop.run(taskiq_app.broker.startup())

    def worker_commands(self, spec: WorkerSpec) -> list[list[str]]:
        command = [bin_path("taskiq"), "worker", "benchmarks.systems.taskiq_app:broker"]
        command += ["--workers", str(spec.processes)]
        if spec.concurrency is not None:  # else its default, 100 per process
            command += ["--max-async-tasks", str(spec.concurrency)]
        return [command]

    async def _enqueue(self, kind: TaskKind) -> str:
        task = await _TASKS[kind].kiq()
        return str(task.task_id)

    def probe(self, pipe: Pipeline, handle: Handle) -> None:
        pipe.exists(handle)  # RedisAsyncResultBackend's key is the bare task id

    def round_trip(self, timeout_s: float) -> None:
        async def trip() -> None:
            task = await taskiq_app.noop.kiq()
            result = await task.wait_result(timeout=timeout_s)  # polls, every 0.2 s
            result.raise_for_error()

        self._loop.run(trip())

    def close(self) -> None:
        self._loop.run(taskiq_app.broker.shutdown())
        super().close()
