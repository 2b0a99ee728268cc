"""RQ as a `System`: ``rq worker`` processes (the default `rq.Worker`, which forks a
work horse for every job) and a `Queue`; results are kept by default (500 s)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.client import Pipeline
from rq import Queue
from rq.results import Result

from . import rq_app
from .base import Handle, System, TaskKind, WorkerSpec, bin_path

__all__ = ["RqSystem"]

_TASKS: dict[TaskKind, Callable[[], Any]] = {
    TaskKind.NOOP: rq_app.noop,
    TaskKind.SLEEP: rq_app.sleep,
    TaskKind.ROUNDTRIP: rq_app.roundtrip,
    TaskKind.CPU: rq_app.cpu,
    TaskKind.IO: rq_app.io,
}


class RqSystem(System):
    def __init__(self, redis_url: str) -> None:
        super().__init__(redis_url)
        self._client = redis.Redis.from_url(redis_url)
        self._queue = Queue(connection=self._client)

    def worker_commands(self, spec: WorkerSpec) -> list[list[str]]:
        # RQ runs one job at a time per worker: there is no in-process concurrency to set,
        # so W3 gets the 2 worker processes it asks for, each running one job at a time.
        return [[bin_path("rq"), "worker", "--url", self.redis_url]] * spec.processes

    def enqueue(self, kind: TaskKind) -> Handle:
        return self._queue.enqueue(_TASKS[kind]).id

    def enqueue_batch(self, kind: TaskKind, count: int) -> Sequence[Handle]:
        data = [Queue.prepare_data(_TASKS[kind]) for _ in range(count)]
        return [job.id for job in self._queue.enqueue_many(data)]

    def probe(self, pipe: Pipeline, handle: Handle) -> None:
        pipe.exists(Result.get_key(handle))

    def round_trip(self, timeout_s: float) -> None:
        job = self._queue.enqueue(rq_app.noop)
        if job.latest_result(timeout=max(1, round(timeout_s))) is None:
            raise TimeoutError(f"rq job {job.id} gave no result in {timeout_s}s")

    def close(self) -> None:
        self._client.close()
