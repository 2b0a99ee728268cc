"""`Fetcher`: takes tasks from Redis for this worker's idle slots.

A batch is sized to about `BATCH_BUDGET_S` of work per slot: short tasks come many per
round trip, long ones one per slot, and a priority task that arrives meanwhile waits at
most about that long. Longer tasks are fetched for slots that wait, plus about that much
of the pool's work ahead (none for tasks of a second), so they are not hoarded while
other workers are idle; for short ones the next batch is fetched when the buffer is half
empty (the slot that takes it below half steps aside until the fetcher is awake: see
`LocalQueue.take`), so slots need not wait for a round trip. With nothing queued it
blocks on the queue's signal list instead of polling.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

from ..errors import RedisUnavailable
from ..store.queue_store import QueueStore
from .job import Job
from .local_queue import LocalQueue

__all__ = ["BATCH_BUDGET_S", "MAX_PER_SLOT", "Fetcher", "ahead_of_slots", "per_slot"]

log = logging.getLogger("tasker_dist.worker")

BATCH_BUDGET_S = 0.002
MAX_PER_SLOT = 512


def per_slot(mean_exec_s: float | None) -> int:
    """How many tasks make about `BATCH_BUDGET_S` of work for one slot."""
    if mean_exec_s is None or mean_exec_s <= 0:
        return 1
    return max(1, min(MAX_PER_SLOT, int(BATCH_BUDGET_S / mean_exec_s)))


def ahead_of_slots(slots: int, mean_exec_s: float | None) -> int:
    """Tasks of ``mean_exec_s`` (too long for `per_slot` batches) to keep buffered for
    ``slots`` slots: about `BATCH_BUDGET_S` of their work."""
    if mean_exec_s is None or mean_exec_s <= 0:
        return 0
    return min(slots, int(slots * BATCH_BUDGET_S / mean_exec_s))


class Fetcher:
    def __init__(
        self,
        store: QueueStore,
        worker_id: str,
        ttl_ms: int,
        local: LocalQueue,
        mean_exec_s: Callable[[], float | None],
        slots: Callable[[], int],
        known: Callable[[], set[str]],
    ) -> None:
        self._store = store
        self._worker_id = worker_id
        self._ttl_ms = ttl_ms
        self._local = local
        self._mean_exec_s = mean_exec_s
        self._slots = slots
        self._known = known
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tasker-fetcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Fetch nothing more; returns once no fetch is in progress (or ``timeout``)."""
        self._stopped.set()
        self._local.wake()
        self._store.interrupt_wait()
        self._thread.join(timeout)

    def _wanted(self) -> int:
        """Wait until tasks are wanted; how many to fetch (0: none yet)."""
        mean = self._mean_exec_s()
        each = per_slot(mean)
        slots = self._slots()
        if each == 1:
            # Longer tasks: for the slots that wait now, plus a few ahead so that slots
            # finishing together do not each wait a round trip; ahead of them is at most
            # about BATCH_BUDGET_S of the pool's work, so none for tasks of seconds.
            ahead = ahead_of_slots(slots, mean)
            waiting, buffered = self._local.wait_for_room(0.25, ahead)
            each = per_slot(self._mean_exec_s())
            if each == 1:
                return waiting + ahead - buffered if waiting > buffered or buffered < ahead else 0
            # The first tasks (their length unknown until now) turned out short: size
            # this batch for them, not one more round trip per slot.
        else:
            waiting, buffered = self._local.wait_for_room(0.25, slots * each // 2)
        target = slots * each  # about BATCH_BUDGET_S of work for every slot
        return target - buffered if buffered < target // 2 or waiting > buffered else 0

    def _reconcile(self) -> None:
        """After a failed fetch: a fetch Redis ran but whose reply was lost (the connection
        dropped) left tasks in our held hash that nobody here knows of. Hand them back;
        the script checks each delivery, so a task finished meanwhile is left alone."""
        held = self._store.held(self._worker_id)
        known = self._known()
        orphans = [(task_id, d) for task_id, d in held.items() if task_id not in known]
        if orphans and (handed := self._store.requeue(self._worker_id, orphans)):
            log.warning("handed back %d task(s) taken by a fetch whose reply was lost", handed)

    def _run(self) -> None:
        backoff = 0.05
        unsure = False  # a fetch failed: tasks may be held that nobody here knows of
        while not self._stopped.is_set():
            try:
                if unsure:
                    self._reconcile()
                    unsure = False
                limit = self._wanted()
                if limit <= 0 or self._stopped.is_set():
                    continue
                unsure = True
                _, fetched = self._store.fetch(self._worker_id, limit, self._ttl_ms)
                unsure = False
                if fetched:
                    self._local.put(Job(f) for f in fetched)
                else:
                    self._store.wait_for_work()
                backoff = 0.05
            except Exception as exc:
                # The thread must outlive any error, or slots would wait for work forever.
                if self._stopped.is_set():
                    break  # e.g. the wait interrupted by stop() closing its socket
                if isinstance(exc, RedisUnavailable):
                    log.warning("fetching failed (%s); retrying in %.2fs", exc, backoff)
                else:
                    log.exception("unexpected error while fetching; retrying in %.2fs", backoff)
                self._stopped.wait(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, 5.0)
