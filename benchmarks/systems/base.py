"""The one interface every benchmarked system implements for the harness.

An adapter runs inside a driver process (`benchmarks.driver`) whose interpreter has the
system installed: the repository's own for tasker-dist and the floor, the peers' venv
for the others. It knows how the system's users start its workers (its own CLI), how to
queue the workloads' tasks, how to wait for one result the documented way, and where the
system stores a result, so that the harness can tell cheaply when all are stored.
"""

from __future__ import annotations

import asyncio
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from redis.client import Pipeline

__all__ = ["REPO_ROOT", "AsyncSystem", "Handle", "System", "TaskKind", "WorkerSpec", "bin_path"]

REPO_ROOT = Path(__file__).resolve().parents[2]

#: What `enqueue` returns: whatever the system hands back for a queued task (an id, a job
#: or message object); only the same adapter's `probe` looks inside.
Handle = Any


class TaskKind(StrEnum):
    """The tasks of the workloads; every system's app module defines each it supports."""

    NOOP = "noop"  # returns None at once (W1, W2, W4)
    SLEEP = "sleep"  # blocks 10 ms: time.sleep, or asyncio.sleep where tasks are async (W3)
    ASYNC_SLEEP = "async_sleep"  # `async def` with asyncio.sleep, where sync is the default
    ROUNDTRIP = "roundtrip"  # one blocking round trip to Redis of its own (W5: real work)
    CPU = "cpu"  # 1 ms of CPU (W6)
    IO = "io"  # blocks 1 ms, as a short I/O call would (W7); asyncio.sleep where tasks are async


@dataclass(frozen=True)
class WorkerSpec:
    """What a workload asks of the workers; everything else stays at the system's default."""

    processes: int
    concurrency: int | None  # tasks in flight per process; None: the system's default


def bin_path(name: str) -> str:
    """A console script of the interpreter running this driver (its venv's bin)."""
    return str(Path(sys.executable).parent / name)


class System(ABC):
    """One task system under test, seen from a producer process."""

    #: W3 runs each of these and keeps the fastest (e.g. tasker-dist: sync and async).
    sleep_kinds: ClassVar[tuple[TaskKind, ...]] = (TaskKind.SLEEP,)

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url

    @abstractmethod
    def worker_commands(self, spec: WorkerSpec) -> list[list[str]]:
        """The command lines to start, as the system's users would type them."""

    def worker_env(self, spec: WorkerSpec) -> dict[str, str]:
        """The environment of the workers: the app modules read the server from it (and
        the concurrency, where the system's CLI has no option for it)."""
        env = {**os.environ, "BENCH_REDIS_URL": self.redis_url, "PYTHONPATH": str(REPO_ROOT)}
        if spec.concurrency is not None:
            env["BENCH_CONCURRENCY"] = str(spec.concurrency)
        return env

    @abstractmethod
    def enqueue(self, kind: TaskKind) -> Handle:
        """Queue one task, one round trip, the plainest way the system offers."""

    def enqueue_batch(self, kind: TaskKind, count: int) -> Sequence[Handle]:
        """Queue ``count`` tasks with the system's bulk API; a loop where it has none."""
        return [self.enqueue(kind) for _ in range(count)]

    @abstractmethod
    def probe(self, pipe: Pipeline, handle: Handle) -> None:
        """Add to ``pipe`` one command whose reply is truthy once the result is stored."""

    @abstractmethod
    def round_trip(self, timeout_s: float) -> None:
        """Queue a no-op task and wait for its result with the system's own mechanism."""

    @abstractmethod
    def close(self) -> None:
        """Release the producer's connections."""


class AsyncSystem(System):
    """A system whose producer API is asyncio-only: one event loop kept for the
    producer's life, run from the harness's thread."""

    def __init__(self, redis_url: str) -> None:
        super().__init__(redis_url)
        self._loop = asyncio.Runner()

    @abstractmethod
    async def _enqueue(self, kind: TaskKind) -> Handle:
        """Queue one task; its handle."""

    def enqueue(self, kind: TaskKind) -> Handle:
        return self._loop.run(self._enqueue(kind))

    def enqueue_batch(self, kind: TaskKind, count: int) -> Sequence[Handle]:
        # No bulk API: a loop of awaits, all in one run of the event loop.
        async def batch() -> list[Handle]:
            return [await self._enqueue(kind) for _ in range(count)]

        return self._loop.run(batch())

    def close(self) -> None:
        self._loop.close()
