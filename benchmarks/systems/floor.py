"""The floor as a `System`: the same Redis work as a task queue, and nothing else."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence

import redis
from redis.client import Pipeline

from .base import Handle, System, TaskKind, WorkerSpec
from .floor_app import QUEUE, reply_key, result_key

__all__ = ["FloorSystem"]

_KIND_TAGS = {
    TaskKind.NOOP: b"n", TaskKind.SLEEP: b"s", TaskKind.ROUNDTRIP: b"t", TaskKind.CPU: b"c",
    TaskKind.IO: b"i",
}  # fmt: skip
_CHUNK = 1000  # as Producer.enqueue_many: one pipeline per 1,000 tasks


class FloorSystem(System):
    def __init__(self, redis_url: str) -> None:
        super().__init__(redis_url)
        self._client = redis.Redis.from_url(redis_url)
        self._ids = (str(i).encode() for i in itertools.count())

    def worker_commands(self, spec: WorkerSpec) -> list[list[str]]:
        threads = spec.concurrency or 1
        # One thread pops 100 at a time; with many threads each takes one (a sleeping
        # thread must not hold tasks the others could run).
        batch = 100 if threads == 1 else 1
        command = [sys.executable, "-m", "benchmarks.systems.floor_app"]
        args = ["--batch", str(batch), "--threads", str(threads)]
        return [[*command, *args] for _ in range(spec.processes)]

    def _task(self, kind: TaskKind) -> tuple[bytes, bytes]:
        task_id = next(self._ids)
        return task_id, _KIND_TAGS[kind] + b":" + task_id

    def enqueue(self, kind: TaskKind) -> Handle:
        task_id, payload = self._task(kind)
        self._client.lpush(QUEUE, payload)
        return task_id

    def enqueue_batch(self, kind: TaskKind, count: int) -> Sequence[Handle]:
        tasks = [self._task(kind) for _ in range(count)]
        for start in range(0, count, _CHUNK):
            pipe = self._client.pipeline(transaction=False)
            for _, payload in tasks[start : start + _CHUNK]:
                pipe.lpush(QUEUE, payload)
            pipe.execute()
        return [task_id for task_id, _ in tasks]

    def probe(self, pipe: Pipeline, handle: Handle) -> None:
        pipe.exists(result_key(handle))

    def round_trip(self, timeout_s: float) -> None:
        task_id = next(self._ids)
        self._client.lpush(QUEUE, b"r:" + task_id)
        if self._client.brpop([reply_key(task_id)], timeout=timeout_s) is None:
            raise TimeoutError(f"floor round trip {task_id!r} timed out")

    def close(self) -> None:
        self._client.close()
