"""Turning a call into a task envelope: the producer logic that does no I/O.

Shared by `Producer`, `AsyncProducer` and `TaskManager`, so all three build identical tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..wire import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    FLAG_ONCE,
    Signer,
    TaskEnvelope,
    check_size,
    codec,
    dumps_callable,
    encode_task,
    new_task_id,
)

__all__ = ["Options", "Task", "build_task", "build_tasks", "chunks"]


@dataclass(frozen=True, slots=True)
class Options:
    """How one task is queued: its lane, retry policy, deadline and size limit."""

    priority: bool = False
    once: bool = False
    timeout: float | None = None
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES


@dataclass(frozen=True, slots=True)
class Task:
    task_id: str
    payload: bytes


def build_task(
    fn: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    options: Options,
    reply_to: str | None,
    signer: Signer,
) -> Task:
    """Serialize and sign one call; raises `SerializationError` (or `ConfigError` with no
    secret) before anything is written."""
    signer.check_can_seal()
    return _build(dumps_callable(fn), args, kwargs, options, reply_to, signer)


def build_tasks(
    fn: Callable[..., Any],
    calls: Sequence[tuple[Sequence[Any], Mapping[str, Any]]],
    options: Options,
    reply_to: str | None,
    signer: Signer,
) -> list[Task]:
    """Serialize and sign many calls of one callable, pickling the callable once."""
    signer.check_can_seal()
    fn_bytes = dumps_callable(fn)
    return [_build(fn_bytes, a, kw, options, reply_to, signer) for a, kw in calls]


def _build(
    fn_bytes: bytes,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    options: Options,
    reply_to: str | None,
    signer: Signer,
) -> Task:
    task_id = new_task_id()
    envelope = TaskEnvelope(
        task_id=task_id,
        fn=fn_bytes,
        args=codec.pack([list(args), dict(kwargs)]),
        flags=FLAG_ONCE if options.once else 0,
        reply_to=reply_to,
        enqueued_at=time.time(),
        timeout=options.timeout,
    )
    payload = signer.seal(encode_task(envelope))
    check_size("task", len(payload), options.max_payload_bytes)
    return Task(task_id, payload)


def chunks(tasks: Sequence[Task], size: int) -> Iterator[list[tuple[str, bytes]]]:
    """``(id, payload)`` pairs in groups of at most ``size``: one enqueue call each."""
    if size < 1:
        raise ValueError(f"chunk must be >= 1, got {size}")
    for start in range(0, len(tasks), size):
        yield [(t.task_id, t.payload) for t in tasks[start : start + size]]
