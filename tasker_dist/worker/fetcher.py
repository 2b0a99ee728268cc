"""`Fetcher`: takes tasks from Redis for this worker's idle slots.

It fetches only when slots wait for work, so tasks are not hoarded while other workers
are idle, and a batch is sized to about `BATCH_BUDGET_S` of work per waiting slot: short
tasks come many per round trip, long ones one per slot, and a priority task that arrives
meanwhile waits at most about that long. With nothing queued it blocks on the queue's
signal list instead of polling.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

from ..errors import RedisUnavailable
from ..store import QueueStore
from .job import Job
from .local_queue import LocalQueue

__all__ = ["BATCH_BUDGET_S", "Fetcher", "batch_size"]

log = logging.getLogger("tasker_dist.worker")

BATCH_BUDGET_S = 0.002
MAX_PER_SLOT = 64


def batch_size(waiting_slots: int, mean_exec_s: float | None) -> int:
    """How many tasks to take for ``waiting_slots`` idle slots."""
    if waiting_slots <= 0:
        return 0
    if mean_exec_s is None or mean_exec_s <= 0:
        return waiting_slots
    per_slot = int(BATCH_BUDGET_S / mean_exec_s)
    return waiting_slots * max(1, min(MAX_PER_SLOT, per_slot))


class Fetcher:
    def __init__(
        self,
        store: QueueStore,
        worker_id: str,
        ttl_ms: int,
        local: LocalQueue,
        mean_exec_s: Callable[[], float | None],
    ) -> None:
        self._store = store
        self._worker_id = worker_id
        self._ttl_ms = ttl_ms
        self._local = local
        self._mean_exec_s = mean_exec_s
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

    def _run(self) -> None:
        backoff = 0.05
        while not self._stopped.is_set():
            try:
                waiting = self._local.wait_for_demand(0.25)
                if waiting <= 0 or self._stopped.is_set():
                    continue
                limit = batch_size(waiting, self._mean_exec_s())
                _, fetched = self._store.fetch(self._worker_id, limit, self._ttl_ms)
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
