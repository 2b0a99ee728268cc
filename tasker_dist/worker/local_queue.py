"""`LocalQueue`: tasks this worker has fetched and not started, priority ones first.

Jobs wait in bands, taken in band order: a queue's priority lane, then its normal lane
(`ServedQueue.band`); a worker serving several queues in strict order gives each queue
its own two bands after those of the queues before it, so a task of an earlier queue
fetched later is still started first.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable

from .job import Job
from .served import ServedQueue

__all__ = ["LocalQueue"]

#: Longest a slot pauses for the fetcher it woke (it is usually scheduled in microseconds).
_HAND_OVER_S = 0.001


class LocalQueue:
    """Hands fetched jobs to idle slots, and tells the fetcher how many slots are waiting."""

    def __init__(self, bands: int = 2) -> None:
        self._bands: tuple[deque[Job], ...] = tuple(deque() for _ in range(bands))
        # The first queue's lanes, looked at first (with one queue, the only ones).
        self._priority, self._normal = self._bands[0], self._bands[1]
        self._count = 0
        # One lock, two conditions: slots wait for jobs, the fetcher for room, and neither
        # wakes the other kind for nothing (fifty idle slots must not wake each other).
        self._lock = threading.Lock()
        self._jobs = threading.Condition(self._lock)
        self._room = threading.Condition(self._lock)
        self._waiting = 0
        self._closed = False
        # The fetcher wants to hear when fewer jobs than this are buffered (0: only when
        # a slot waits with nothing left for it).
        self._low_water = 0
        self._fetcher_waits = False
        self._fetcher_woken = threading.Event()

    def put(self, jobs: Iterable[Job], band: int = 0) -> None:
        """Buffer ``jobs`` (of one queue, whose first band is ``band``)."""
        with self._lock:
            priority, normal = self._bands[band], self._bands[band + 1]
            added = 0
            for job in jobs:
                (priority if job.fetched.priority else normal).append(job)
                added += 1
            self._count += added
            self._jobs.notify(added)

    def take(self, leave: Callable[[], bool], on_take: Callable[[Job], None]) -> Job | None:
        """The next job, blocking while there is none; None once closed or ``leave()``.
        ``on_take(job)`` runs before the job leaves the queue's lock, so the job is never
        out of sight of `task_ids` and the taker at once."""
        with self._lock:
            while True:
                if self._closed or leave():
                    return None
                if self._count:
                    job = (self._priority or self._normal or self._later_band()).popleft()
                    self._count -= 1
                    on_take(job)
                    hand_over = False
                    if self._count + 1 == self._low_water:
                        self._room.notify()  # time to fetch the next batch
                        hand_over = self._fetcher_waits
                        self._fetcher_woken.clear()
                    break
                self._waiting += 1
                self._room.notify()  # a slot starves: the fetcher must fetch
                try:
                    self._jobs.wait()
                finally:
                    self._waiting -= 1
        if hand_over:
            # Step aside until the fetcher is awake to send its request. A slot running
            # short tasks back to back would keep the GIL (for up to the 5 ms switch
            # interval) until the buffer is empty, and then wait a whole round trip.
            self._fetcher_woken.wait(_HAND_OVER_S)
        return job

    def _later_band(self) -> deque[Job]:
        """The first band not empty after the first queue's (the count says there is one)."""
        return next(band for band in self._bands[2:] if band)

    def wait_for_room(self, timeout: float, low_water: int) -> tuple[int, int]:
        """Block until some slot waits with nothing buffered for it, or fewer than
        ``low_water`` jobs are buffered (or ``timeout``); return (slots waiting, jobs
        buffered)."""
        with self._lock:
            self._low_water = low_water
            buffered = self._count
            if self._waiting <= buffered and buffered >= low_water and not self._closed:
                self._fetcher_waits = True
                try:
                    self._room.wait(timeout)
                finally:
                    self._fetcher_waits = False
                    self._fetcher_woken.set()
                buffered = self._count
            return self._waiting, buffered

    def drain(self, queue: ServedQueue | None = None) -> list[Job]:
        """Remove and return every buffered job (of ``queue``, or of all), to hand them
        back."""
        with self._lock:
            taken: list[Job] = []
            for band in self._bands:
                kept = [job for job in band if queue is not None and job.queue is not queue]
                taken.extend(job for job in band if queue is None or job.queue is queue)
                band.clear()
                band.extend(kept)
            self._count -= len(taken)
            return taken

    def task_ids(self, queue: ServedQueue | None = None) -> set[str]:
        """Ids of the buffered jobs (of ``queue``, or of all)."""
        with self._lock:
            return {job.task_id for band in self._bands for job in band
                    if queue is None or job.queue is queue}  # fmt: skip

    def wake(self) -> None:
        """Make blocked calls re-check their conditions (``leave``, a stop)."""
        with self._lock:
            self._jobs.notify_all()
            self._room.notify_all()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._jobs.notify_all()
            self._room.notify_all()

    def __len__(self) -> int:
        with self._lock:
            return self._count
