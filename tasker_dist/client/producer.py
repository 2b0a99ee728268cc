"""`Producer`: queue tasks for `tasker-worker` daemons and get their results back."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from ..metrics import Metrics, RawCluster, Stats, build_metrics, build_stats
from .base import BaseProducer
from .listener import TaskFuture, missing
from .queueing import QueueingMethods
from .submission import Options, chunks

__all__ = ["Producer"]

T = TypeVar("T")


class Producer(BaseProducer, QueueingMethods):
    """Queues tasks on one queue; `tasker-worker` daemons (or a `TaskManager`) run them.

    The queueing methods take ``(fn, *args, **kwargs)`` and call
    ``fn(ctx, resource, *args, **kwargs)`` on a worker. `queue_task` blocks for the result
    (or re-raises the task's exception), `queue_task_async` returns a
    `concurrent.futures.Future`, `queue_task_with_callback` returns at once and later calls
    ``callback(result, error)``, and `enqueue` only queues and returns the task id.
    """

    def _submit(
        self, fn: Callable[..., T], args: Sequence[Any], kwargs: Mapping[str, Any], options: Options
    ) -> TaskFuture[T]:
        self._check_spread()
        listener = self._ensure_listener()
        task = self._task(fn, args, kwargs, options, listener.channel)
        future: TaskFuture[T] = listener.expect(task.task_id)
        try:
            self._store.enqueue([(task.task_id, task.payload)], options.priority)
        except BaseException:
            listener.discard(task.task_id)
            raise
        listener.queued(future)
        return future

    def enqueue(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> str:
        """Queue ``fn`` without waiting; returns the task id (see `result`)."""
        task = self._task(fn, args, kwargs, Options(), None)
        self._check_open()
        self._check_spread()
        self._store.enqueue([(task.task_id, task.payload)])
        return task.task_id

    def enqueue_many(
        self,
        fn: Callable[..., Any],
        calls: Iterable[Sequence[Any]],
        *,
        priority: bool = False,
        chunk: int = 1000,
    ) -> list[str]:
        """Queue ``fn(ctx, resource, *args)`` for each ``args`` in ``calls``, in chunks of
        ``chunk`` tasks per round trip; returns the task ids in order."""
        tasks = self._tasks(fn, calls, priority)
        self._check_open()
        self._check_spread()
        for part in chunks(tasks, chunk):
            self._store.enqueue(part, priority)
        return [t.task_id for t in tasks]

    def result(self, task_id: str, timeout: float | None = None) -> Any:
        """The result of any task by id, waiting up to ``timeout`` seconds (None: forever).

        Raises what the task raised, `TaskNotFound` if no task has that id (or its result
        expired), or `TimeoutError` if the task has not finished in time.
        """
        listener = self._ensure_listener()
        future = listener.watch(task_id)
        if not future.done():
            [presence] = self._store.presence([task_id])
            if presence.result is not None:  # finished before anyone here waited
                listener.deliver(task_id, presence.result)
            elif not presence.queued:  # neither queued, running nor finished
                listener.unwatch(task_id)
                raise missing(task_id, self.queue, presence.finished)
        try:
            return future.result(timeout)
        except FutureTimeout:
            listener.unwatch(task_id)
            raise TimeoutError(f"task {task_id} did not finish within {timeout}s") from None

    def stats(self) -> Stats:
        """Workers, queue lengths and running tasks of the whole cluster, now."""
        return build_stats(self._read_cluster())

    def metrics(self) -> Metrics:
        """Cluster-wide counters, execution-time percentiles and recent rates."""
        return build_metrics(self._read_cluster())

    def _check_spread(self) -> None:
        if not self._spread_checked:
            self._spread_seen(self._store.served_spread())

    def _read_cluster(self) -> RawCluster:
        return self._store.read_cluster()

    def _knows(self, task_id: str) -> bool:
        """Redis holds ``task_id`` on this queue: queued, running, finished or its id kept."""
        [presence] = self._store.presence([task_id])
        return presence.queued or presence.result is not None or presence.finished

    def request_stop(self, worker_id: str | None = None) -> None:
        """Ask every daemon serving this queue (or the one with ``worker_id``, as listed
        in `stats`) to stop gracefully, as SIGTERM would."""
        self._store.request_stop(worker_id)

    def close(self) -> None:
        """Stop listening for results; waiting calls fail with `ShuttingDown`."""
        self._close_sync()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
