"""RQ's tasks: plain functions, which `rq worker` imports by name."""

from __future__ import annotations

import time

from .io_call import burn_cpu_ms, mark_start, one_round_trip

__all__ = ["cpu", "io", "noop", "roundtrip", "sleep"]


def noop() -> None:
    return None


def sleep() -> None:
    mark_start()
    time.sleep(0.01)


def roundtrip() -> None:
    one_round_trip()


def cpu() -> None:
    burn_cpu_ms()


def io() -> None:
    time.sleep(0.001)
