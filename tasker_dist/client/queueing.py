"""`QueueingMethods`: the blocking queueing methods of `Producer` and `TaskManager`,
written once in terms of ``_submit``, which each of them implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from .callbacks import Callback, CallbackRunner
from .listener import TaskFuture
from .submission import Options

__all__ = ["QueueingMethods"]

T = TypeVar("T")


class QueueingMethods(ABC):
    """``fn(ctx, resource, *args, **kwargs)`` runs on a worker. `queue_task` blocks for the
    result (or re-raises the task's exception), `queue_task_async` returns a
    `concurrent.futures.Future`, `queue_task_with_callback` returns at once and later calls
    ``callback(result, error)``."""

    _callbacks: CallbackRunner

    @abstractmethod
    def _submit(
        self, fn: Callable[..., T], args: Sequence[Any], kwargs: Mapping[str, Any], options: Options
    ) -> TaskFuture[T]:
        """Queue one task; its future resolves with the outcome."""

    def queue_task(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Queue ``fn`` and block until its result; raises what the task raised."""
        return self._submit(fn, args, kwargs, Options()).result()

    def queue_task_with_priority(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Like `queue_task`, on the priority lane (served before all normal tasks)."""
        return self._submit(fn, args, kwargs, Options(priority=True)).result()

    def queue_task_once(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Like `queue_task`, but never retried after an unhealthy error."""
        return self._submit(fn, args, kwargs, Options(once=True)).result()

    def queue_task_with_priority_once(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> T:
        """Priority lane, one attempt only."""
        return self._submit(fn, args, kwargs, Options(priority=True, once=True)).result()

    def queue_task_async(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> TaskFuture[T]:
        """Queue ``fn``; the returned future holds its result or exception."""
        return self._submit(fn, args, kwargs, Options())

    def queue_task_with_callback(
        self, fn: Callable[..., T], callback: Callback, /, *args: Any, **kwargs: Any
    ) -> str:
        """Queue ``fn`` and return its id at once; ``callback(result, error)`` runs later
        (``error`` None on success) on a callback thread."""
        future = self._submit(fn, args, kwargs, Options())
        self._callbacks.attach(future, callback)
        return future.task_id

    def submit(
        self,
        fn: Callable[..., T],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        priority: bool = False,
        once: bool = False,
        timeout: float | None = None,
    ) -> TaskFuture[T]:
        """The options form of the queueing methods: ``timeout`` (seconds) cancels the task
        on the worker and fails it with `TaskTimeout` past that time."""
        return self._submit(fn, args, kwargs or {}, Options(priority, once, timeout))
