"""`SpreadProducer`: one logical queue spread over sub-queues, so that it uses every master
of a Redis Cluster (one queue lives in one hash slot, so on one master).

It holds one `Producer` per sub-queue (`tasker_dist.spread.sub_queues` names them) and
queues each task, or each chunk of `enqueue_many`, on the next sub-queue in turn. Daemons
serve all of them with ``tasker-worker --spread N`` (`Config.spread`); both sides must
use the same count, or the tasks of the sub-queues no daemon serves wait: daemons say
their count on the queue itself, and a producer checks it on first use.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from ..config import check_int, check_queue_name
from ..errors import ConfigError
from ..metrics import Metrics, Stats, build_metrics, build_stats, merge_raw
from ..spread import MAX_SPREAD, sub_queues
from .base import check_spread
from .callbacks import CallbackRunner
from .listener import TaskFuture
from .producer import Producer
from .queueing import QueueingMethods
from .submission import Options

__all__ = ["SpreadProducer"]

T = TypeVar("T")


class SpreadProducer(QueueingMethods):
    """Queues tasks on ``queue`` spread over ``spread`` sub-queues; the same methods as
    `Producer`. ``options`` are `Producer`'s keyword arguments (each sub-queue gets a
    producer with them: its own connections and result listener)."""

    def __init__(
        self, redis_url: str | None = None, queue: str = "default", *, spread: int,
        **options: Any,
    ) -> None:  # fmt: skip
        self.queue = check_queue_name(queue)
        check_int("spread", spread, 1)
        if spread > MAX_SPREAD:
            raise ConfigError(f"spread must be <= {MAX_SPREAD}, got {spread}")
        self.sub_queues = sub_queues(queue, spread)
        self._lanes: list[Producer] = []
        self._turn = itertools.count()
        self._callbacks = CallbackRunner()
        self._spread_checked = False
        try:
            for name in self.sub_queues:
                self._lanes.append(Producer(redis_url, check_queue_name(name, "a sub-queue"),
                                            **options))  # fmt: skip
        except BaseException:
            self.close()
            raise

    @property
    def redis_url(self) -> str:
        return self._lanes[0].redis_url

    def _next(self) -> Producer:
        if not self._spread_checked:
            store = self._lanes[0]._store.for_queue(self.queue)
            try:
                check_spread(self.queue, store.served_spread(), len(self._lanes))
            finally:
                store.close()
            self._spread_checked = True
        return self._lanes[next(self._turn) % len(self._lanes)]

    def _submit(
        self, fn: Callable[..., T], args: Sequence[Any], kwargs: Mapping[str, Any], options: Options
    ) -> TaskFuture[T]:
        return self._next()._submit(fn, args, kwargs, options)

    def enqueue(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> str:
        """Queue ``fn`` without waiting; returns the task id (see `result`)."""
        return self._next().enqueue(fn, *args, **kwargs)

    def enqueue_many(
        self,
        fn: Callable[..., Any],
        calls: Iterable[Sequence[Any]],
        *,
        priority: bool = False,
        chunk: int = 1000,
    ) -> list[str]:
        """Queue ``fn(ctx, resource, *args)`` for each ``args`` in ``calls``, each chunk of
        ``chunk`` tasks on the next sub-queue; returns the task ids in order."""
        check_int("chunk", chunk, 1)
        ids: list[str] = []
        batch = list(calls)
        for start in range(0, len(batch), chunk):
            part = batch[start : start + chunk]
            ids += self._next().enqueue_many(fn, part, priority=priority, chunk=chunk)
        return ids

    def result(self, task_id: str, timeout: float | None = None) -> Any:
        """As `Producer.result`; the sub-queue that has the task is looked up first (one
        round trip per sub-queue at most)."""
        lane = next((p for p in self._lanes if p._knows(task_id)), self._lanes[0])
        return lane.result(task_id, timeout)

    def stats(self) -> Stats:
        """As `Producer.stats`, for the sub-queues together (a daemon counted once)."""
        return build_stats(merge_raw([p._read_cluster() for p in self._lanes]))

    def metrics(self) -> Metrics:
        """As `Producer.metrics`, for the sub-queues together."""
        return build_metrics(merge_raw([p._read_cluster() for p in self._lanes]))

    def request_stop(self, worker_id: str | None = None) -> None:
        """As `Producer.request_stop`, on every sub-queue."""
        for lane in self._lanes:
            lane.request_stop(worker_id)

    def close(self) -> None:
        """Stop listening for results; waiting calls fail with `ShuttingDown`."""
        for lane in self._lanes:
            lane.close()
        self._callbacks.close()

    def __enter__(self) -> SpreadProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
