"""`Deadlines`: one thread that cancels tasks whose timeout has passed."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable

from ..clock import Clock
from .job import Job

__all__ = ["Deadlines"]


class Deadlines:
    """Calls ``on_expired(job)`` once the clock passes the deadline given for it; the
    thread starts with the first deadline (most workers never see one)."""

    def __init__(self, on_expired: Callable[[Job], None], clock: Clock) -> None:
        self._on_expired = on_expired
        self._clock = clock
        self._heap: list[tuple[float, int, Job]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def add(self, job: Job, deadline: float) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tasker-deadlines", daemon=True
                )
                self._thread.start()
            heapq.heappush(self._heap, (deadline, next(self._order), job))
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if self._heap and self._heap[0][0] <= self._clock.monotonic():
                        break
                    timeout = self._heap[0][0] - self._clock.monotonic() if self._heap else None
                    self._clock.wait_on(self._cond, timeout)
                if self._closed:
                    return
                _, _, job = heapq.heappop(self._heap)
            self._on_expired(job)
