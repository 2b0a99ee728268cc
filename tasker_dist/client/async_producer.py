"""`AsyncProducer`: `Producer` for asyncio code (FastAPI and friends).

Queueing and reads go through an asyncio Redis client, so the event loop never blocks;
results arrive through the same background listener as in `Producer` and resolve
awaitables on the caller's loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from ..metrics import Metrics, Stats, build_metrics, build_stats
from ..store import AsyncQueueStore
from .base import BaseProducer
from .callbacks import Callback
from .listener import ResultListener, TaskFuture, missing
from .submission import Options, chunks

__all__ = ["AsyncProducer"]

T = TypeVar("T")


class AsyncProducer(BaseProducer):
    """The queueing methods of `Producer` as coroutines.

    ``await queue_task(fn, ...)`` returns the task's value (or raises its exception);
    ``await queue_task_async(fn, ...)`` queues and returns an `asyncio.Future` for the
    outcome; ``await enqueue(fn, ...)`` returns the task id.
    """

    @functools.cached_property
    def _astore(self) -> AsyncQueueStore:
        """The asyncio twin of the store, made on first use (inside the caller's loop)."""
        return AsyncQueueStore(
            self.redis_url,
            self.queue,
            self._connect_timeout,
            self._max_connections,
            wait_replicas=self._wait_replicas,
        )

    async def queue_task(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Queue ``fn`` and wait for its result; raises what the task raised."""
        return await (await self._submit(fn, args, kwargs, Options()))

    async def queue_task_with_priority(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> T:
        """Like `queue_task`, on the priority lane."""
        return await (await self._submit(fn, args, kwargs, Options(priority=True)))

    async def queue_task_once(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Like `queue_task`, never retried after an unhealthy error."""
        return await (await self._submit(fn, args, kwargs, Options(once=True)))

    async def queue_task_with_priority_once(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> T:
        """Priority lane, one attempt only."""
        return await (await self._submit(fn, args, kwargs, Options(priority=True, once=True)))

    async def queue_task_async(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> asyncio.Future[T]:
        """Queue ``fn`` now; the returned future resolves with its outcome."""
        return await self._submit(fn, args, kwargs, Options())

    async def queue_task_with_callback(
        self, fn: Callable[..., T], callback: Callback, /, *args: Any, **kwargs: Any
    ) -> str:
        """Queue ``fn``; ``callback(result, error)`` runs later on a callback thread."""
        listener = self._ensure_listener()
        task = self._task(fn, args, kwargs, Options(), listener.channel)
        future = listener.expect(task.task_id)
        self._callbacks.attach(future, callback)
        await self._send(listener, future, task.payload, False)
        return task.task_id

    async def submit(
        self,
        fn: Callable[..., T],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        priority: bool = False,
        once: bool = False,
        timeout: float | None = None,
    ) -> asyncio.Future[T]:
        """The options form (see `Producer.submit`)."""
        return await self._submit(fn, args, kwargs or {}, Options(priority, once, timeout))

    async def enqueue(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> str:
        """Queue ``fn`` without waiting; returns the task id."""
        task = self._task(fn, args, kwargs, Options(), None)
        self._check_open()
        await self._check_spread()
        await self._astore.enqueue([(task.task_id, task.payload)])
        return task.task_id

    async def enqueue_many(
        self,
        fn: Callable[..., Any],
        calls: Iterable[Sequence[Any]],
        *,
        priority: bool = False,
        chunk: int = 1000,
    ) -> list[str]:
        """Queue ``fn(ctx, resource, *args)`` for each ``args``; returns the ids in order."""
        tasks = self._tasks(fn, calls, priority)
        self._check_open()
        await self._check_spread()
        for part in chunks(tasks, chunk):
            await self._astore.enqueue(part, priority)
        return [t.task_id for t in tasks]

    async def result(self, task_id: str, timeout: float | None = None) -> Any:
        """The result of any task by id (see `Producer.result`)."""
        listener = self._ensure_listener()
        future = listener.watch(task_id)
        if not future.done():
            [presence] = await self._astore.presence([task_id])
            if presence.result is not None:  # finished before anyone here waited
                listener.deliver(task_id, presence.result)
            elif not presence.queued:  # neither queued, running nor finished
                listener.unwatch(task_id)
                raise missing(task_id, self.queue, presence.finished)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            listener.unwatch(task_id)
            raise TimeoutError(f"task {task_id} did not finish within {timeout}s") from None

    async def stats(self) -> Stats:
        """Cluster-wide stats."""
        return build_stats(await self._astore.read_cluster())

    async def metrics(self) -> Metrics:
        """Cluster-wide metrics."""
        return build_metrics(await self._astore.read_cluster())

    async def close(self) -> None:
        """Stop listening; waiting calls fail with `ShuttingDown`. The listener thread and
        callbacks under way are waited for on a worker thread, never on the event loop."""
        if await asyncio.to_thread(self._close_sync) and "_astore" in self.__dict__:
            await self._astore.close()

    async def __aenter__(self) -> AsyncProducer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _submit(
        self,
        fn: Callable[..., T],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Options,
    ) -> asyncio.Future[T]:
        await self._check_spread()
        listener = self._ensure_listener()
        task = self._task(fn, args, kwargs, options, listener.channel)
        future = listener.expect(task.task_id)
        await self._send(listener, future, task.payload, options.priority)
        return asyncio.wrap_future(future)

    async def _check_spread(self) -> None:
        if not self._spread_checked:
            self._spread_seen(await self._astore.served_spread())

    async def _send(
        self, listener: ResultListener, future: TaskFuture[Any], payload: bytes, priority: bool
    ) -> None:
        try:
            await self._astore.enqueue([(future.task_id, payload)], priority)
        except BaseException:
            listener.discard(future.task_id)
            raise
        listener.queued(future)
