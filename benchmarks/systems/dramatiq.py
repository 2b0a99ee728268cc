"""Dramatiq as a `System`: the ``dramatiq`` CLI (its own process and thread counts) and
the actors' ``send``; a result is waited for with ``message.get_result(block=True)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dramatiq import Actor, Message, group
from redis.client import Pipeline

from . import dramatiq_app
from .base import Handle, System, TaskKind, WorkerSpec, bin_path

__all__ = ["DramatiqSystem"]

_ACTORS: dict[TaskKind, Actor[Any, Any]] = {
    TaskKind.NOOP: dramatiq_app.noop,
    TaskKind.SLEEP: dramatiq_app.sleep,
    TaskKind.ROUNDTRIP: dramatiq_app.roundtrip,
    TaskKind.CPU: dramatiq_app.cpu,
    TaskKind.IO: dramatiq_app.io,
}


class DramatiqSystem(System):
    def worker_commands(self, spec: WorkerSpec) -> list[list[str]]:
        command = [bin_path("dramatiq"), "benchmarks.systems.dramatiq_app"]
        command += ["--processes", str(spec.processes)]
        if spec.concurrency is not None:  # else its default, 8 threads per process
            command += ["--threads", str(spec.concurrency)]
        return [command]

    def enqueue(self, kind: TaskKind) -> Handle:
        return _ACTORS[kind].send()

    def enqueue_batch(self, kind: TaskKind, count: int) -> Sequence[Handle]:
        messages: list[Message[Any]] = [_ACTORS[kind].message() for _ in range(count)]
        group(messages).run()  # Dramatiq's bulk form; it sends one message per call
        return messages

    def probe(self, pipe: Pipeline, handle: Handle) -> None:
        pipe.exists(dramatiq_app.backend.build_message_key(handle))

    def round_trip(self, timeout_s: float) -> None:
        message = dramatiq_app.noop.send()
        message.get_result(block=True, timeout=int(timeout_s * 1000))

    def close(self) -> None:
        dramatiq_app.broker.close()
