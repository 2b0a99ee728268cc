"""`FakeClock`: time that moves only when a test moves it, for the timing components.

`advance` moves time forward and returns only once every thread blocked in one of the
clock's waits has looked at the new time (and those whose timeout passed have left their
wait), so what a test asserts right after it is decided, not raced. With ``autojump``
every timed wait returns at once, as if its whole timeout had passed: backoff loops then
run in microseconds and `waits` records the delays they asked for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["FakeClock"]

# How often a thread waiting on something the clock is not told about (an Event being
# set, a Condition being notified) looks at it again: real time, a few milliseconds.
_POLL_S = 0.002
# A thread that does not see an advance within this (real) time is a bug in the test.
_SEE_ADVANCE_S = 5.0


class FakeClock:
    def __init__(
        self, *, autojump: bool = False, start: float = 1000.0, wall: float = 1.7e9
    ) -> None:
        self._cond = threading.Condition()
        self._now = start
        self._wall_offset = wall - start
        self._autojump = autojump
        self._waiting: set[object] = set()  # a token per thread blocked in a wait
        self._behind: set[object] = set()  # waiting threads that missed the last advance
        #: Every timeout a wait asked for, in order.
        self.waits: list[float] = []

    def monotonic(self) -> float:
        with self._cond:
            return self._now

    def time(self) -> float:
        return self.monotonic() + self._wall_offset

    def blocked(self) -> int:
        """How many threads are blocked in a wait of this clock now."""
        with self._cond:
            return len(self._waiting)

    def advance(self, seconds: float) -> None:
        with self._cond:
            self._now += seconds
            self._behind = set(self._waiting)
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: not self._behind, _SEE_ADVANCE_S):
                raise AssertionError("a waiting thread did not see the clock move")

    def sleep(self, seconds: float) -> None:
        self._wait(None, seconds)

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        return self._wait(event.is_set, timeout)

    def wait_on(self, cond: threading.Condition, timeout: float | None) -> bool:
        if timeout is None:
            return cond.wait()
        deadline = self._start_wait(timeout)
        if deadline is None:
            return False
        token = object()
        try:
            while True:
                with self._cond:
                    self._seen(token)
                    if self._now >= deadline:
                        return False
                if cond.wait(_POLL_S):  # releases the caller's lock meanwhile
                    return True
        finally:
            self._done(token)

    def _start_wait(self, timeout: float) -> float | None:
        """Record a timed wait; its deadline, or None if it ends at once (autojump)."""
        with self._cond:
            self.waits.append(timeout)
            deadline = self._now + timeout
            if self._autojump:
                self._now = max(self._now, deadline)
                return None
            return deadline

    def _wait(self, done: Callable[[], bool] | None, timeout: float | None) -> bool:
        if done is not None and done():
            return True
        deadline = None if timeout is None else self._start_wait(timeout)
        if timeout is not None and deadline is None:
            return done is not None and done()
        token = object()
        with self._cond:
            try:
                while True:
                    self._seen(token)
                    if done is not None and done():
                        return True
                    if deadline is not None and self._now >= deadline:
                        return False
                    # An Event being set does not notify this condition: look again soon.
                    self._cond.wait(_POLL_S if done is not None else _SEE_ADVANCE_S)
            finally:
                self._done(token)

    def _seen(self, token: object) -> None:
        """The thread with ``token`` is waiting and has seen the current time (lock held)."""
        self._waiting.add(token)
        if token in self._behind:
            self._behind.discard(token)
            self._cond.notify_all()

    def _done(self, token: object) -> None:
        with self._cond:
            self._waiting.discard(token)
            self._behind.discard(token)
            self._cond.notify_all()
