"""`Job`: one fetched task as it moves through a worker, settled exactly once."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ..context import TaskContext
from ..status import CancelReason
from ..store import Fetched
from .served import ServedQueue

__all__ = ["Job"]


# Settling takes a moment, once per job: one lock for all (a Lock per job costs more).
_SETTLE = threading.Lock()


@dataclass(eq=False, slots=True)
class Job:
    """A fetched task. Whoever settles it first (the slot that ran it, the timeout
    watchdog, or a kill) reports its outcome; later reports are dropped."""

    fetched: Fetched
    #: The queue it came from: its result, retry or hand-back goes there.
    queue: ServedQueue
    ctx: TaskContext | None = None
    reply_to: str = ""
    #: Set while an ``async def`` task runs on the worker's event loop.
    async_future: Future[Any] | None = None
    #: Seconds it waited in the queue and ran, once known.
    wait_s: float | None = None
    exec_s: float | None = None
    _settled: bool = False

    @property
    def task_id(self) -> str:
        return self.fetched.task_id

    def settle(self) -> bool:
        """True for the first caller only."""
        with _SETTLE:
            if self._settled:
                return False
            self._settled = True
            return True

    def cancel(self, reason: CancelReason) -> None:
        """Tell the running task to stop: sets ``ctx.cancelled``; an async task is also
        cancelled on its event loop."""
        if self.ctx is not None:
            self.ctx.cancel(reason)
        if self.async_future is not None:
            self.async_future.cancel()
