"""`TaskContext`: what a running task knows about itself, and how it learns to stop."""

from __future__ import annotations

import threading

from .clock import SYSTEM_CLOCK, Clock
from .errors import TaskCancelled, TaskTimeout
from .status import CancelReason

__all__ = ["TaskContext"]

# Guards the lazily made Event of every context: taken only to wait or to cancel.
_LOCK = threading.Lock()


class TaskContext:
    """Passed as the first argument of every task.

    ``cancelled`` turns True when the worker is killed or the task's deadline passes;
    long-running code should check it, call `raise_if_cancelled`, or wait with `wait`
    (which returns early on cancellation) instead of ``time.sleep``.
    """

    __slots__ = (
        "_cancelled", "_clock", "_event", "_reason", "attempt", "deadline", "queue", "task_id",
    )  # fmt: skip

    def __init__(
        self,
        task_id: str,
        attempt: int,
        queue: str,
        deadline: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.task_id = task_id
        #: 0 on the first run, then 1, 2, ... on retries after unhealthy errors.
        self.attempt = attempt
        self.queue = queue
        #: The worker's monotonic time (``time.monotonic()``) past which the task is
        #: cancelled, or None.
        self.deadline = deadline
        self._clock = clock
        self._cancelled = False
        # Made on first `wait` only: most tasks never wait, and an Event costs as much
        # as the rest of a no-op task's context.
        self._event: threading.Event | None = None
        self._reason: CancelReason | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def cancel_reason(self) -> CancelReason | None:
        """Why the task was cancelled (a kill, its deadline, a lost lease), else None."""
        return self._reason

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or None without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - self._clock.monotonic())

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return True at once if the task is cancelled."""
        with _LOCK:
            if self._event is None:
                self._event = threading.Event()
                if self._cancelled:
                    self._event.set()
            event = self._event
        return self._clock.wait(event, seconds)

    def raise_if_cancelled(self) -> None:
        """Raise `TaskCancelled` (or `TaskTimeout`) if the task has been cancelled."""
        if self._cancelled:
            if self._reason is CancelReason.TIMEOUT:
                raise TaskTimeout(f"task {self.task_id} timed out")
            raise TaskCancelled(f"task {self.task_id} cancelled")

    def cancel(self, reason: CancelReason) -> None:
        """Mark the task cancelled (used by the worker runtime)."""
        with _LOCK:
            if self._cancelled:
                return
            self._reason = reason
            self._cancelled = True
            if self._event is not None:
                self._event.set()

    def __repr__(self) -> str:
        return f"TaskContext(task_id={self.task_id!r}, attempt={self.attempt})"
