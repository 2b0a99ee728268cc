"""`Fetcher`: takes tasks from Redis for this worker's idle slots.

A batch is sized to about `BATCH_BUDGET_S` of work per slot: short tasks come many per
round trip, long ones one per slot, and a priority task that arrives meanwhile waits at
most about that long. Longer tasks are fetched for slots that wait, plus about that much
of the pool's work ahead (none for tasks of a second), so they are not hoarded while
other workers are idle; for short ones the next batch is fetched when the buffer is half
empty (the slot that takes it below half steps aside until the fetcher is awake: see
`LocalQueue.take`), so slots need not wait for a round trip. The budget grows to twice
what fetches take lately (up to `MAX_BUDGET_S`) when that is longer: a fetch's reply
waits for the interpreter lock, which a task that keeps the CPU busy holds for up to the
interpreter's switch interval (5 ms), and slots must not wait for it. With nothing queued it
blocks on the queue's signal list instead of polling, and on this worker's wake list,
which `stop` pushes so that a stop never waits out a blocking read.

A worker serving several queues fetches from them in the order `ServedQueues.order`
gives, each fetch taking what the queues before it left of the batch, and with nothing
queued on any of them waits on all of them at once (`Waiters`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

from ..backoff import Backoff
from ..clock import Clock
from ..errors import RedisUnavailable
from .job import Job
from .local_queue import LocalQueue
from .served import ServedQueue, ServedQueues
from .waiters import Waiters

__all__ = [
    "BATCH_BUDGET_S", "MAX_BUDGET_S", "MAX_PER_SLOT", "Fetcher", "InHand", "Pace", "Slots",
    "ahead_of_slots", "budget", "per_slot",
]  # fmt: skip

log = logging.getLogger("tasker_dist.worker")

BATCH_BUDGET_S = 0.002
MAX_BUDGET_S = 0.02
MAX_PER_SLOT = 512
# How long a woken blocking read may take to return before its connection is closed.
_WAKE_S = 0.5


def budget(fetch_s: float | None) -> float:
    """Seconds of work to fetch ahead per slot, given what fetches take lately."""
    if fetch_s is None:
        return BATCH_BUDGET_S
    return min(MAX_BUDGET_S, max(BATCH_BUDGET_S, 2 * fetch_s))


def per_slot(mean_exec_s: float | None, budget_s: float = BATCH_BUDGET_S) -> int:
    """How many tasks make about ``budget_s`` of work for one slot."""
    if mean_exec_s is None or mean_exec_s <= 0:
        return 1
    return max(1, min(MAX_PER_SLOT, int(budget_s / mean_exec_s)))


def ahead_of_slots(slots: int, mean_exec_s: float | None, budget_s: float = BATCH_BUDGET_S) -> int:
    """Tasks of ``mean_exec_s`` (too long for `per_slot` batches) to keep buffered for
    ``slots`` slots: about ``budget_s`` of their work."""
    if mean_exec_s is None or mean_exec_s <= 0:
        return 0
    return min(slots, int(slots * budget_s / mean_exec_s))


class Pace(Protocol):
    @property
    def mean_exec_s(self) -> float | None:
        """How long tasks take lately (None: unknown yet)."""


class Slots(Protocol):
    def ready_count(self) -> int:
        """Slots that will take tasks."""


class InHand(Protocol):
    def task_ids(self, queue: ServedQueue | None = None) -> set[str]:
        """Ids of the tasks (of ``queue``) this part of the worker holds."""


class Fetcher:
    """Fetches from ``queues`` for ``slots`` at the ``pace`` their tasks run, into
    ``local``; ``in_hand`` are every part of the worker that may hold a fetched task
    (buffer, slots, completer), so a task Redis says is held but none of them knows can
    be handed back."""

    def __init__(
        self,
        queues: ServedQueues,
        worker_id: str,
        ttl_ms: int,
        local: LocalQueue,
        *,
        pace: Pace,
        slots: Slots,
        in_hand: Sequence[InHand],
        clock: Clock,
    ) -> None:
        self._queues = queues
        self._worker_id = worker_id
        self._ttl_ms = ttl_ms
        self._local = local
        self._pace = pace
        self._slots = slots
        self._in_hand = in_hand
        self._clock = clock
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tasker-fetcher", daemon=True)
        # One queue: wait on its signal list in this thread; several: on all of them.
        self._waiters = Waiters(queues.all, worker_id, clock) if len(queues) > 1 else None
        #: A fetch of this queue failed: tasks may be held that nobody here knows of.
        self._unsure: ServedQueue | None = None
        #: The queues whose wake-up tokens woke this fetcher, until it fetches from them.
        self._heard: set[ServedQueue] = set()
        #: How long fetches that found tasks take lately, reply handling included.
        self._fetch_s: float | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Fetch nothing more; returns once no fetch is in progress (or ``timeout``)."""
        self._stopped.set()
        self._local.wake()
        if self._waiters is not None:
            self._waiters.close(timeout)
            self._thread.join(timeout)
            return
        store = self._queues.first.store
        try:
            store.wake_worker(self._worker_id)
            self._thread.join(min(timeout, _WAKE_S))
        except RedisUnavailable:
            pass
        if self._thread.is_alive():
            # Redis is unreachable, or the blocking read hangs on a connection that died
            # silently: close that connection.
            store.interrupt_wait()
        self._thread.join(timeout)

    def _wanted(self) -> int:
        """Wait until tasks are wanted; how many to fetch (0: none yet)."""
        mean = self._pace.mean_exec_s
        budget_s = budget(self._fetch_s)
        each = per_slot(mean, budget_s)
        slots = self._slots.ready_count()
        if each == 1:
            # Longer tasks: for the slots that wait now, plus a few ahead so that slots
            # finishing together do not each wait a round trip; ahead of them is at most
            # about the budget of the pool's work, so none for tasks of seconds.
            ahead = ahead_of_slots(slots, mean, budget_s)
            waiting, buffered = self._local.wait_for_room(0.25, ahead)
            each = per_slot(self._pace.mean_exec_s, budget_s)
            if each == 1:
                return waiting + ahead - buffered if waiting > buffered or buffered < ahead else 0
            # The first tasks (their length unknown until now) turned out short: size
            # this batch for them, not one more round trip per slot.
        else:
            waiting, buffered = self._local.wait_for_room(0.25, slots * each // 2)
        target = slots * each  # about the budget of work for every slot
        return target - buffered if buffered < target // 2 or waiting > buffered else 0

    def _reconcile(self, queue: ServedQueue) -> None:
        """After a failed fetch: a fetch Redis ran but whose reply was lost (the connection
        dropped) left tasks in our held hash that nobody here knows of. Hand them back;
        the script checks each delivery, so a task finished meanwhile is left alone."""
        store = queue.store
        held = store.held(self._worker_id)
        known: set[str] = set().union(*(part.task_ids(queue) for part in self._in_hand))
        orphans = [(task_id, d) for task_id, d in held.items() if task_id not in known]
        if orphans and (handed := store.requeue(self._worker_id, orphans)):
            log.warning("handed back %d task(s) taken by a fetch whose reply was lost", handed)

    def _fetch(self, limit: int) -> int:
        """Fetch up to ``limit`` tasks, visiting the queues in their order; returns how
        many. While a fetch is under way, ``self._unsure`` is its queue."""
        got = 0
        heard, self._heard = self._heard, set()
        for queue in self._queues.order():
            heard.discard(queue)
            self._unsure = queue
            began = self._clock.monotonic()
            _, fetched = queue.store.fetch(self._worker_id, limit - got, self._ttl_ms)
            self._unsure = None
            if fetched:
                took = self._clock.monotonic() - began
                lately = self._fetch_s
                self._fetch_s = took if lately is None else 0.8 * lately + 0.2 * took
                self._local.put((Job(f, queue) for f in fetched), queue.band)
                got += len(fetched)
                if got >= limit:
                    break
        for queue in heard:  # its token woke us, but the batch was full before its turn:
            queue.store.pass_signal()  # another worker may take its tasks
        return got

    def _wait(self) -> None:
        if self._waiters is not None:
            self._heard |= self._waiters.wait()
        else:
            self._queues.first.store.wait_for_work(self._worker_id)

    def _run(self) -> None:
        backoff = Backoff(0.05, 5.0)
        while not self._stopped.is_set():
            try:
                if self._unsure is not None:
                    self._reconcile(self._unsure)
                    self._unsure = None
                limit = self._wanted()
                if limit <= 0 or self._stopped.is_set():
                    continue
                if not self._fetch(limit) and not self._stopped.is_set():
                    self._wait()
                backoff.reset()
            except Exception as exc:
                # The thread must outlive any error, or slots would wait for work forever.
                if self._stopped.is_set():
                    break  # e.g. the wait interrupted by stop() closing its socket
                delay = backoff.next()
                if isinstance(exc, RedisUnavailable):
                    log.warning("fetching failed (%s); retrying in %.2fs", exc, delay)
                else:
                    log.exception("unexpected error while fetching; retrying in %.2fs", delay)
                self._clock.wait(self._stopped, delay)
