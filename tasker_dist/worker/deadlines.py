"""`Deadlines`: one thread that cancels tasks whose timeout has passed."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

from .job import Job

__all__ = ["Deadlines"]


class Deadlines:
    def __init__(self, on_expired: Callable[[Job], None]) -> None:
        self._on_expired = on_expired
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
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        break
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._closed:
                    return
                _, _, job = heapq.heappop(self._heap)
            self._on_expired(job)
