"""`Clock`: the one source of time (monotonic and wall) for every timing component.

Deadlines, heartbeats, backoffs and the supervisor's restart pause read the time and
wait through a clock handed to them, never through `time` or a bare ``Event.wait``, so
tests can give them a fake clock and move time in microseconds of real time.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for durations and deadlines)."""

    def time(self) -> float:
        """Seconds since the epoch (for timestamps other processes read)."""

    def sleep(self, seconds: float) -> None:
        """Block this thread for ``seconds``."""

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """`Event.wait`: True once ``event`` is set, False after ``timeout`` seconds."""

    def wait_on(self, cond: threading.Condition, timeout: float | None) -> bool:
        """`Condition.wait` (the caller holds ``cond``): True if notified, False after
        ``timeout`` seconds."""


class SystemClock:
    """Real time."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        return event.wait(timeout)

    def wait_on(self, cond: threading.Condition, timeout: float | None) -> bool:
        return cond.wait(timeout)


SYSTEM_CLOCK: Clock = SystemClock()
