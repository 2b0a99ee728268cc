"""`Completer`: writes finished tasks to Redis in batches, one script call per batch (per
queue of the batch, for a worker serving several: each task to its own queue).

Slots hand reports over and go on with their next task; while one write is in flight the
next reports gather, so under load many results share a round trip. When tasks wait in
the worker's buffer, more reports are due within about a task's time: a report then
waits up to `LINGER_S` for others to join it (a group commit), since with tasks about as
long as a write's round trip (one call to a database) writes would otherwise carry one
report each. With nothing buffered (a caller waiting on its one task) it goes at once.
A failed write is retried with backoff and never dropped (a result is written exactly
once: the script skips tasks this worker no longer holds).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..backoff import Backoff
from ..clock import Clock
from ..status import Status
from ..store import Finished
from .executor import Report
from .served import ServedQueue

__all__ = ["GROUP", "LINGER_S", "Completer"]

log = logging.getLogger("tasker_dist.worker")

_MAX_BATCH = 500
#: The longest a report waits for others while tasks are buffered: the fetcher's usual
#: batch budget (`fetcher.BATCH_BUDGET_S`), so a write carries about a fetch's worth.
LINGER_S = 0.002
#: Reports that are written at once, however much is buffered.
GROUP = 64


class Completer:
    def __init__(
        self, worker_id: str, ttl_ms: int, failed_cap: int, clock: Clock,
        buffered: Callable[[], bool] = lambda: False,
    ) -> None:  # fmt: skip
        """``buffered``: whether tasks wait in the worker's buffer (more reports soon)."""
        self._worker_id = worker_id
        self._buffered = buffered
        self._ttl_ms = ttl_ms
        self._failed_cap = failed_cap
        self._clock = clock
        self._reports: list[Report] = []
        self._busy = False
        self._writing: list[Report] = []
        self._finished = 0  # tasks written as finished (not retried) since `take_finished`
        self._cond = threading.Condition()
        self._closed = False
        self._retry = threading.Event()  # Redis is back: retry a failed write now
        self._thread = threading.Thread(target=self._run, name="tasker-completer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def retry_now(self) -> None:
        """Redis answers again (a heartbeat got through after failing): a write waiting
        out its backoff, which grew during the outage, is tried at once."""
        self._retry.set()

    def add(self, report: Report) -> None:
        with self._cond:
            self._reports.append(report)
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until every report handed over so far is written; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._reports and not self._busy, timeout)

    def close(self, timeout: float) -> None:
        """Write what is pending (for up to ``timeout`` seconds), then stop."""
        if not self.flush(timeout):
            with self._cond:
                unwritten = len(self._reports) + (1 if self._busy else 0)
            log.error("stopping with result(s) of about %d task(s) unwritten (Redis "
                      "unreachable); their tasks run again elsewhere once this worker's "
                      "lease expires", unwritten)  # fmt: skip
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(0.5)

    def task_ids(self, queue: ServedQueue | None = None) -> set[str]:
        """Tasks (of ``queue``, or of all) whose reports are waiting to be written or
        being written."""
        with self._cond:
            return {r.finished.task_id for r in (*self._reports, *self._writing)
                    if queue is None or r.queue is queue}  # fmt: skip

    def take_finished(self) -> int:
        """How many tasks were written as finished since the last call."""
        with self._cond:
            finished, self._finished = self._finished, 0
            return finished

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._reports or self._closed)
                if not self._reports:
                    return
                few = len(self._reports) < GROUP and not self._closed
            if few and self._buffered():  # asked outside our lock: it takes the buffer's
                with self._cond:
                    self._cond.wait_for(lambda: len(self._reports) >= GROUP or self._closed,
                                        LINGER_S)  # fmt: skip
            with self._cond:
                batch = self._reports[:_MAX_BATCH]
                del self._reports[:_MAX_BATCH]
                self._busy = True
                self._writing = batch
            try:
                self._write(batch)
            except Exception:  # keep the thread: later results must still be written
                log.exception("completing %d task(s) failed", len(batch))
            finally:
                with self._cond:
                    self._busy = False
                    self._writing = []
                    self._cond.notify_all()

    def _write(self, batch: list[Report]) -> None:
        while batch:  # one queue's reports at a time (with one queue served, all at once)
            queue = batch[0].queue
            finished = [r.finished for r in batch if r.queue is queue]
            batch = [r for r in batch if r.queue is not queue] if len(finished) < len(batch) else []
            self._write_to(queue, finished)
            done = sum(1 for f in finished if f.status != Status.RETRIED)
            with self._cond:
                self._finished += done

    def _write_to(self, queue: ServedQueue, finished: list[Finished]) -> None:
        backoff: Backoff | None = None
        while True:
            try:
                queue.store.complete(self._worker_id, self._ttl_ms, self._failed_cap, finished)
                return
            except Exception as exc:  # never drop results: retry whatever went wrong
                backoff = backoff or Backoff(0.05, 5.0)
                delay = backoff.next()
                log.warning("writing %d results failed (%r); retrying in %.2fs",
                            len(finished), exc, delay)  # fmt: skip
                if self._clock.wait(self._retry, delay):
                    self._retry.clear()
