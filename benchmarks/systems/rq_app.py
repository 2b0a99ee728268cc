"""RQ's tasks: plain functions, which `rq worker` imports by name."""

from __future__ import annotations

import time

__all__ = ["noop", "sleep"]


def noop() -> None:
    return None


def sleep() -> None:
    time.sleep(0.01)
