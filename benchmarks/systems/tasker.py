"""tasker-dist as a `System`: `tasker-worker` daemons and a `Producer`, signing on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from redis.client import Pipeline

from tasker_dist import Producer
from tasker_dist.store.keys import QueueKeys

from . import tasker_app
from .base import Handle, System, TaskKind, WorkerSpec, bin_path

__all__ = ["BENCH_SECRET", "TaskerSystem", "worker_command"]

#: Signing stays on: speed that drops guarantees does not count. Producer and workers
#: share this secret through $TASKER_SECRET, as a deployment would.
BENCH_SECRET = "benchmarks-" + "5f1e0c9a7b3d2e48" * 2

_TASKS: dict[TaskKind, Callable[..., Any]] = {
    TaskKind.NOOP: tasker_app.noop,
    TaskKind.SLEEP: tasker_app.sleep,
    TaskKind.ASYNC_SLEEP: tasker_app.async_sleep,
    TaskKind.ROUNDTRIP: tasker_app.roundtrip,
    TaskKind.CPU: tasker_app.cpu,
    TaskKind.IO: tasker_app.io,
}


def worker_command(config: str, redis_url: str, processes: int, *extra: str) -> list[str]:
    """``tasker-worker benchmarks.systems.tasker_app:<config>`` serving ``redis_url``."""
    return [bin_path("tasker-worker"), f"benchmarks.systems.tasker_app:{config}",
            "--redis-url", redis_url, "--processes", str(processes), *extra]  # fmt: skip


class TaskerSystem(System):
    sleep_kinds = (TaskKind.SLEEP, TaskKind.ASYNC_SLEEP)

    def __init__(self, redis_url: str) -> None:
        super().__init__(redis_url)
        self._producer = Producer(redis_url, secret=BENCH_SECRET)
        self._keys = QueueKeys(self._producer.queue)

    def worker_commands(self, spec: WorkerSpec) -> list[list[str]]:
        workers = [] if spec.concurrency is None else ["--workers", str(spec.concurrency)]
        return [worker_command("config", self.redis_url, spec.processes, *workers)]

    def worker_env(self, spec: WorkerSpec) -> dict[str, str]:
        return {**super().worker_env(spec), "TASKER_SECRET": BENCH_SECRET}

    def enqueue(self, kind: TaskKind) -> Handle:
        return self._producer.enqueue(_TASKS[kind])

    def enqueue_batch(self, kind: TaskKind, count: int) -> Sequence[Handle]:
        return self._producer.enqueue_many(_TASKS[kind], [()] * count)

    def probe(self, pipe: Pipeline, handle: Handle) -> None:
        pipe.exists(self._keys.result(handle))

    def round_trip(self, timeout_s: float) -> None:
        # queue_task has no timeout: a hang is caught by the orchestrator's driver timeout.
        self._producer.queue_task(_TASKS[TaskKind.NOOP])

    def close(self) -> None:
        self._producer.close()
