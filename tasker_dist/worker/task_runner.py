"""`TaskRunner`: runs a job in the calling slot and reports its outcome exactly once.

The executor runs it; the deadline watchdog cancels it when its time is up; a kill may
give up on it. Whichever settles the job first hands its report to the completer, which
writes it to Redis; later reports of the same job are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..clock import Clock
from ..config import Config
from ..status import CancelReason, FailureKind
from .async_loop import AsyncLoop
from .completer import Completer
from .deadlines import Deadlines
from .executor import Executor, Report
from .job import Job
from .served import ServedQueue

__all__ = ["TaskRunner"]

log = logging.getLogger("tasker_dist.worker")


class TaskRunner:
    def __init__(
        self, config: Config[Any], worker_id: str, aloop: AsyncLoop, clock: Clock,
        buffered: Callable[[], bool] = lambda: False,
    ) -> None:  # fmt: skip
        """``buffered``: whether tasks wait in the worker's buffer (more reports soon)."""
        self.executor = Executor(config, aloop, clock)
        self._completer = Completer(worker_id, int(config.result_ttl * 1000),
                                    config.failed_limit, clock, buffered)  # fmt: skip
        self._deadlines = Deadlines(self._expired, clock)
        self._mean_exec_s: float | None = None

    def start(self) -> None:
        self._completer.start()

    @property
    def mean_exec_s(self) -> float | None:
        """How long this worker's tasks take lately (None before the first one ran)."""
        return self._mean_exec_s

    def run(self, job: Job, resource: Any) -> Report:
        """Run ``job`` with ``resource`` in this thread and report it (unless something
        else settled it first); the report tells the slot whether its resource is healthy."""
        try:
            report = self.executor.run(job, resource, self._started)
        except Exception as exc:  # a bug of ours: fail the task rather than strand it
            log.exception("internal error running task %r", job.task_id)
            report = self.executor.settled_by(job, FailureKind.ERROR,
                                              f"tasker-dist internal error: {exc!r}")  # fmt: skip
        if job.exec_s is not None:
            # Here, not once the result is written: a worker starting on short tasks then
            # sizes its next fetch without waiting a round trip per step of its ramp-up.
            m = self._mean_exec_s
            self._mean_exec_s = job.exec_s if m is None else 0.9 * m + 0.1 * job.exec_s
        if job.settle():
            self._completer.add(report)
        return report

    def fail_cancelled(self, jobs: list[Job]) -> None:
        """Fail jobs a kill gave up on (and settled) with `TaskCancelled`."""
        for job in jobs:
            message = f"task {job.task_id} was cancelled (kill)"
            self._completer.add(self.executor.settled_by(job, FailureKind.CANCELLED, message))

    def task_ids(self, queue: ServedQueue | None = None) -> set[str]:
        """Tasks (of ``queue``, or of all) whose reports are not yet written."""
        return self._completer.task_ids(queue)

    def retry_writes(self) -> None:
        """See `Completer.retry_now`."""
        self._completer.retry_now()

    def take_finished(self) -> int:
        """How many tasks were written as finished since the last call."""
        return self._completer.take_finished()

    def close(self, timeout: float) -> None:
        """Write the reports handed over so far (for up to ``timeout`` seconds) and stop."""
        self._completer.close(timeout)
        self._deadlines.close()

    def _started(self, job: Job) -> None:
        if job.ctx is not None and job.ctx.deadline is not None:
            self._deadlines.add(job, job.ctx.deadline)

    def _expired(self, job: Job) -> None:
        job.cancel(CancelReason.TIMEOUT)
        if job.settle():
            report = self.executor.settled_by(
                job, FailureKind.TIMEOUT, f"task {job.task_id} timed out"
            )
            self._completer.add(report)
