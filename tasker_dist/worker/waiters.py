"""`Waiters`: a worker serving several queues waits for work on all of them at once.

One blocking read cannot wait on keys of several queues: each queue's keys live under
its own hash tag, so on a Redis Cluster they are on different slots (a cross-slot
command is refused). So each queue has a thread of its own that blocks on that queue's
signal list (and this worker's wake list of that queue), on a connection of its own,
while the fetcher waits; the first to hear a token wakes the fetcher, which then fetches
from every queue in its order. Idle, they use no CPU (each read blocks in Redis for up
to a second), and a task queued on any of the queues wakes the fetcher within a round
trip.

A thread that hears a token when the fetcher no longer waits (it woke for another queue,
and its slots may now all be busy) passes the token back to its queue's signal list, so
that another worker waiting on that queue wakes instead: a token is meant for a worker
that will fetch. (So does the fetcher with the tokens it was woken by, for the queues its
next fetch did not reach.)
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence

from ..backoff import Backoff
from ..clock import Clock
from ..errors import RedisUnavailable
from .served import ServedQueue

__all__ = ["IDLE_FETCH_S", "Waiters"]

log = logging.getLogger("tasker_dist.worker")

#: How long a woken blocking read may take to return before its connection is closed.
_WAKE_S = 0.5
#: The fetcher fetches again after this long without a token (a token can be lost, e.g.
#: with a connection), as a worker serving one queue does when its blocking read ends.
IDLE_FETCH_S = 1.0


class Waiters:
    def __init__(self, queues: Sequence[ServedQueue], worker_id: str, clock: Clock) -> None:
        self._queues = tuple(queues)
        self._worker_id = worker_id
        self._clock = clock
        self._cond = threading.Condition()
        self._wanted = False  # the fetcher waits for work
        self._heard: set[ServedQueue] = set()  # the queues whose tokens came while it waited
        self._closed = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(q,), name=f"tasker-wait-{i}", daemon=True)
            for i, q in enumerate(self._queues)
        ]
        self._started = False

    def wait(self, timeout: float = IDLE_FETCH_S) -> set[ServedQueue]:
        """Block until a token is heard on any of the queues, `close`, or ``timeout``;
        returns the queues whose tokens were heard (taken: a fetch should visit them, or
        pass their tokens on with `ServedQueue.store.pass_signal`)."""
        with self._cond:
            if not self._started:
                self._started = True
                for thread in self._threads:
                    thread.start()
            self._heard = set()
            self._wanted = True
            self._cond.notify_all()
            deadline = self._clock.monotonic() + timeout
            while not self._heard and not self._closed.is_set():
                left = deadline - self._clock.monotonic()
                if left <= 0:
                    break
                self._clock.wait_on(self._cond, left)
            self._wanted = False
            heard, self._heard = self._heard, set()
            return heard

    def close(self, timeout: float) -> None:
        """End the threads: wake their blocking reads (or, if Redis does not answer,
        close their connections)."""
        self._closed.set()
        with self._cond:
            self._cond.notify_all()
            started = self._started
        if not started:
            return
        for queue in self._queues:
            with contextlib.suppress(RedisUnavailable):
                queue.store.wake_worker(self._worker_id)
        woken_by = self._clock.monotonic() + _WAKE_S
        for thread in self._threads:
            thread.join(max(0.0, woken_by - self._clock.monotonic()))
        for queue, thread in zip(self._queues, self._threads, strict=True):
            if thread.is_alive():
                queue.store.interrupt_wait()
                thread.join(timeout)

    def _run(self, queue: ServedQueue) -> None:
        backoff = Backoff(0.05, 5.0)
        while True:
            with self._cond:
                while not self._wanted and not self._closed.is_set():
                    self._cond.wait()
            if self._closed.is_set():
                return
            try:
                token = queue.store.wait_for_work(self._worker_id)
                backoff.reset()
            except Exception as exc:  # the thread must outlive any error
                if self._closed.is_set():
                    return  # e.g. the read interrupted by close() dropping its connection
                delay = backoff.next()
                log.warning("waiting for work on queue %r failed (%s); retrying in %.2fs",
                            queue.name, exc, delay)  # fmt: skip
                self._clock.wait(self._closed, delay)
                continue
            if token:
                self._heard_token(queue)

    def _heard_token(self, queue: ServedQueue) -> None:
        with self._cond:
            if self._wanted:
                self._heard.add(queue)
                self._cond.notify_all()
                return
        try:  # not ours to take: for another worker waiting on that queue
            queue.store.pass_signal()
        except RedisUnavailable as exc:
            log.warning("could not pass a wake-up on to queue %r: %s", queue.name, exc)
