"""Task ids: they sort by queueing time and tell when they were made."""

from __future__ import annotations

import os
import time

__all__ = ["new_task_id", "queued_at"]


def new_task_id() -> str:
    """32 hex characters: the time (ms since the epoch, 48 bits) then 80 random bits, so
    ids sort by queueing time and a missing result can be told apart from a bad id."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def queued_at(task_id: str) -> float | None:
    """When a task with this id was queued (seconds since the epoch), if it is one of ours."""
    if len(task_id) != 32:
        return None
    try:
        stamp = int(task_id[:12], 16) / 1000
        int(task_id[12:], 16)
    except ValueError:
        return None
    return stamp if 1.5e9 < stamp < time.time() + 86_400 else None
