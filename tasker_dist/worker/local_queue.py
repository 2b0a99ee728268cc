"""`LocalQueue`: tasks this worker has fetched and not started, priority ones first."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable

from .job import Job

__all__ = ["LocalQueue"]


class LocalQueue:
    """Hands fetched jobs to idle slots, and tells the fetcher how many slots are waiting."""

    def __init__(self) -> None:
        self._priority: deque[Job] = deque()
        self._normal: deque[Job] = deque()
        self._cond = threading.Condition()
        self._waiting = 0
        self._closed = False

    def put(self, jobs: Iterable[Job]) -> None:
        with self._cond:
            for job in jobs:
                (self._priority if job.fetched.priority else self._normal).append(job)
            self._cond.notify_all()

    def take(self, leave: Callable[[], bool]) -> Job | None:
        """The next job, blocking while there is none; None once closed or ``leave()``."""
        with self._cond:
            self._waiting += 1
            self._cond.notify_all()  # the fetcher waits for waiting slots
            try:
                while True:
                    if self._closed or leave():
                        return None
                    if self._priority:
                        return self._priority.popleft()
                    if self._normal:
                        return self._normal.popleft()
                    self._cond.wait()
            finally:
                self._waiting -= 1

    def wait_for_demand(self, timeout: float) -> int:
        """Block until some slot waits with nothing buffered for it (or ``timeout``);
        return how many slots wait beyond the buffered jobs."""
        with self._cond:
            if self._demand() <= 0 and not self._closed:
                self._cond.wait(timeout)
            return self._demand()

    def _demand(self) -> int:
        return self._waiting - len(self._priority) - len(self._normal)

    def drain(self) -> list[Job]:
        """Remove and return every buffered job (to hand them back)."""
        with self._cond:
            jobs = [*self._priority, *self._normal]
            self._priority.clear()
            self._normal.clear()
            return jobs

    def wake(self) -> None:
        """Make blocked `take` calls re-check their ``leave`` condition."""
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._priority) + len(self._normal)
