"""Tell when every result of a workload is stored, without loading the system under test.

Every result is checked (one EXISTS-like command each, pipelined), in queueing order: the
harness keeps a cursor on the first result not yet seen and re-checks only a window after
it. The window adapts to the rate at which results arrive, so the whole wait costs about
one command per task plus one small pipeline per poll, whatever the system's speed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from .systems.base import Handle, System

__all__ = ["Completion", "wait_stored"]

_MIN_WINDOW = 64
_MAX_WINDOW = 4096


@dataclass(frozen=True)
class Completion:
    """perf_counter times at which the first and the last result were seen."""

    first_s: float
    last_s: float
    stored_at_first: int  # results already stored when the first was seen
    commands: int  # the probe's own commands, which Redis counts with the system's


def wait_stored(
    client: redis.Redis,
    system: System,
    handles: Sequence[Handle],
    timeout_s: float,
    poll_s: float = 0.01,
    check: Callable[[], None] = lambda: None,
) -> Completion:
    """Block until every handle's result is stored; ``check`` runs between polls (it
    raises if the workers died, so a broken run fails instead of waiting for the timeout)."""
    deadline = time.perf_counter() + timeout_s
    cursor, window, commands = 0, _MIN_WINDOW, 0
    first: tuple[float, int] | None = None
    while cursor < len(handles):
        batch = handles[cursor : cursor + window]
        pipe = client.pipeline(transaction=False)
        for handle in batch:
            system.probe(pipe, handle)
        flags = pipe.execute()
        commands += len(batch)
        now = time.perf_counter()
        done = next((i for i, flag in enumerate(flags) if not flag), len(flags))
        if first is None and any(flags):
            first = (now, cursor + done)
        cursor += done
        if done == len(batch):
            window = min(window * 2, _MAX_WINDOW)  # keeping up with a fast system
            continue
        window = max(_MIN_WINDOW, 2 * done)
        if now > deadline:
            raise TimeoutError(f"{len(handles) - cursor} of {len(handles)} results not stored")
        check()
        time.sleep(poll_s)
    end = time.perf_counter()
    first_s, stored = first if first is not None else (end, len(handles))
    return Completion(first_s, end, stored, commands)
