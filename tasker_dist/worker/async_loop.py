"""`AsyncLoop`: one event loop thread per worker, on which ``async def`` tasks and
resource hooks run, so async resources live on the loop that uses them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from concurrent.futures import Future
from typing import TypeVar

__all__ = ["AsyncLoop"]

T = TypeVar("T")


class AsyncLoop:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="tasker-asyncio", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def submit(self, awaitable: Awaitable[T]) -> Future[T]:
        """Schedule ``awaitable`` on the loop; cancelling the returned future cancels it."""
        return asyncio.run_coroutine_threadsafe(_await(awaitable), self._ensure())

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` on the loop and block this thread for its result."""
        return self.submit(awaitable).result()

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()


async def _await(awaitable: Awaitable[T]) -> T:
    # A coroutine for run_coroutine_threadsafe, which takes no other awaitable.
    return await awaitable
