"""`CallbackRunner`: runs ``callback(result, error)`` of finished tasks on threads of its
own, so a slow or failing callback never holds up the result listener."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["Callback", "CallbackRunner"]

log = logging.getLogger("tasker_dist.producer")

#: ``callback(result, error)``: ``error`` is None on success (then ``result`` is the value).
Callback = Callable[[Any, BaseException | None], Any]


class CallbackRunner:
    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None  # made on first use
        self._lock = threading.Lock()
        self._closed = False

    def attach(self, future: Future[Any], callback: Callback) -> None:
        """Call ``callback`` once ``future`` is done."""
        future.add_done_callback(lambda f: self._run(callback, f))

    def _run(self, callback: Callback, future: Future[Any]) -> None:
        with self._lock:
            if self._pool is None and not self._closed:
                self._pool = ThreadPoolExecutor(4, thread_name_prefix="tasker-callback")
            pool = self._pool
        try:
            if pool is not None:
                pool.submit(_call_back, callback, future)
                return
        except RuntimeError:  # closed meanwhile: run it here rather than drop it
            pass
        _call_back(callback, future)

    def close(self) -> None:
        """Wait for the callbacks under way; later ones run on the thread that finishes
        their task."""
        with self._lock:
            self._closed = True
            pool = self._pool
        if pool is not None:
            pool.shutdown(wait=True)


def _call_back(callback: Callback, future: Future[Any]) -> None:
    error = future.exception()
    try:
        callback(None if error is not None else future.result(), error)
    except Exception:
        log.exception("task callback %r raised", callback)
