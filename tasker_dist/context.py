"""`TaskContext`: what a running task knows about itself, and how it learns to stop."""

from __future__ import annotations

import threading
import time

from .errors import TaskCancelled, TaskTimeout

__all__ = ["TaskContext"]


class TaskContext:
    """Passed as the first argument of every task.

    ``cancelled`` turns True when the worker is killed or the task's deadline passes;
    long-running code should check it, call `raise_if_cancelled`, or wait with `wait`
    (which returns early on cancellation) instead of ``time.sleep``.
    """

    __slots__ = ("_event", "_reason", "attempt", "deadline", "queue", "task_id")

    def __init__(
        self, task_id: str, attempt: int, queue: str, deadline: float | None = None
    ) -> None:
        self.task_id = task_id
        #: 0 on the first run, then 1, 2, ... on retries after unhealthy errors.
        self.attempt = attempt
        self.queue = queue
        #: ``time.monotonic()`` value after which the task is cancelled, or None.
        self.deadline = deadline
        self._event = threading.Event()
        self._reason: str | None = None

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    @property
    def cancel_reason(self) -> str | None:
        """ "killed" or "timeout" once cancelled, else None."""
        return self._reason

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or None without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return True at once if the task is cancelled."""
        return self._event.wait(seconds)

    def raise_if_cancelled(self) -> None:
        """Raise `TaskCancelled` (or `TaskTimeout`) if the task has been cancelled."""
        if self._event.is_set():
            if self._reason == "timeout":
                raise TaskTimeout(f"task {self.task_id} timed out")
            raise TaskCancelled(f"task {self.task_id} cancelled")

    def cancel(self, reason: str) -> None:
        """Mark the task cancelled (used by the worker runtime)."""
        if not self._event.is_set():
            self._reason = reason
            self._event.set()

    def __repr__(self) -> str:
        return f"TaskContext(task_id={self.task_id!r}, attempt={self.attempt})"
