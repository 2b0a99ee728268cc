"""`TaskManager`: the seed's in-process manager, working through Redis.

It holds a `Producer` and a `WorkerRuntime` on the same queue, so its tasks can also be
served by `tasker-worker` daemons, and it serves theirs. With no ``redis_url`` it starts a
private local server and stops it again.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Any, Generic, TypeVar, cast

from ..client import CallbackRunner, Options, Producer, QueueingMethods, TaskFuture, build_task
from ..config import Config, resolve_redis_url
from ..errors import ConfigError, RedisUnavailable, ShuttingDown, TaskCancelled
from ..metrics import Metrics, RawCluster, Stats, build_metrics, build_stats
from ..status import FailureKind, KillMode, ManagerState
from ..store import EmbeddedServer, QueueStore
from ..wire import Failure, Signer, encode_failure, resolve_secret
from ..worker import WorkerRuntime

__all__ = ["TaskManager"]

log = logging.getLogger(__name__)

R = TypeVar("R")
T = TypeVar("T")


class TaskManager(QueueingMethods, Generic[R]):
    """Queue tasks and run them with ``config``'s resources, like the Go ``TaskManager``.

    It has the queueing methods of `Producer`; each serializes the task and sends it
    through Redis, where this manager's slots (and any daemon on the same queue) take it.
    `stop` waits for every task queued here, then releases the resources; `kill` cancels
    at once and leaves no caller waiting. Both are idempotent, in any order.
    """

    def __init__(self, config: Config[R]) -> None:
        if config.spread > 1:
            raise ConfigError(
                f"a TaskManager queues on one queue, not spread (Config.spread is "
                f"{config.spread}): spread queues are for tasker-worker daemons and "
                "SpreadProducer"
            )
        if config.queue not in config.served_queues:
            raise ConfigError(
                f"a TaskManager queues its tasks on queue {config.queue!r}, which must be "
                f"one of the queues it serves (Config.queues: {config.served_queues!r})"
            )
        url = resolve_redis_url(config.redis_url)
        self._server: EmbeddedServer | None = None
        if url is None:
            self._server = EmbeddedServer.start()
            url = self._server.url
            if resolve_secret(config.secret) is None and not config.allow_unsigned:
                # A private server: nobody else needs the secret, so make one up.
                config = dataclasses.replace(config, secret=secrets.token_hex(32))
        self.config = config
        self._signer = Signer.from_settings(
            config.secret, config.allow_unsigned, config.previous_secrets, queue=config.queue
        )
        self._state = ManagerState.RUNNING
        self._state_lock = threading.Condition()
        self._outstanding: set[TaskFuture[Any]] = set()
        self._submitting = 0
        self._final: tuple[Stats, Metrics] | None = None
        self._callbacks = CallbackRunner()
        try:
            self._producer = Producer(
                url,
                config.queue,
                connect_timeout=config.connect_timeout,
                task_timeout=config.task_timeout,
                secret=config.secret,
                previous_secrets=config.previous_secrets,
                allow_unsigned=config.allow_unsigned,
                max_payload_bytes=config.max_payload_bytes,
                wait_replicas=config.wait_replicas,
            )
            self._store = QueueStore(url, config.queue, config.connect_timeout,
                                     wait_replicas=config.wait_replicas)  # fmt: skip
            self._runtime = WorkerRuntime(config, self._store, kill_mode=KillMode.CANCEL)
            self._runtime.start()
        except BaseException:
            if self._server is not None:
                self._server.stop()
            raise

    @property
    def queue(self) -> str:
        return self.config.queue

    @property
    def redis_url(self) -> str:
        return self._producer.redis_url

    @property
    def worker_id(self) -> str:
        """This manager's id among the queue's workers (see `Stats.workers`)."""
        return self._runtime.worker_id

    # -- queueing -----------------------------------------------------------------------
    def _submit(
        self, fn: Callable[..., T], args: Sequence[Any], kwargs: Mapping[str, Any], options: Options
    ) -> TaskFuture[T]:
        with self._state_lock:
            self._check_running()
            self._submitting += 1  # stop() and kill() wait for submissions under way
        try:
            future = self._producer.submit(fn, args, kwargs, priority=options.priority,
                                           once=options.once, timeout=options.timeout)  # fmt: skip
        finally:
            with self._state_lock:
                self._submitting -= 1
                self._state_lock.notify_all()
        with self._state_lock:
            self._outstanding.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future[Any]) -> None:
        with self._state_lock:
            self._outstanding.discard(future)

    def _check_running(self) -> None:
        if self._state is not ManagerState.RUNNING:
            raise ShuttingDown()

    def enqueue(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> str:
        """Queue ``fn`` without waiting; returns the task id (see `result`)."""
        self._check_running()
        return self._producer.enqueue(fn, *args, **kwargs)

    def enqueue_many(
        self,
        fn: Callable[..., Any],
        calls: Iterable[Sequence[Any]],
        *,
        priority: bool = False,
        chunk: int = 1000,
    ) -> list[str]:
        """Queue ``fn(ctx, resource, *args)`` for each ``args`` in ``calls`` (see
        `Producer.enqueue_many`)."""
        self._check_running()
        return self._producer.enqueue_many(fn, calls, priority=priority, chunk=chunk)

    def result(self, task_id: str, timeout: float | None = None) -> Any:
        """The result of any task by id (see `Producer.result`)."""
        self._check_running()
        return self._producer.result(task_id, timeout)

    def request_stop(self, worker_id: str | None = None) -> None:
        """Ask the daemons serving this queue (or one) to stop (see `Producer.request_stop`)."""
        self._producer.request_stop(worker_id)

    # -- running now --------------------------------------------------------------------
    def run_task(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` now in this thread with a pooled resource; it is never queued.

        The call is serialized like a queued task (the task sees copies), and an
        unhealthy error replaces the resource and retries, as in a slot.
        """
        self._check_running()
        options = Options(timeout=self.config.task_timeout,
                          max_payload_bytes=self.config.max_payload_bytes)  # fmt: skip
        task = build_task(fn, args, kwargs, options, None, self._signer)
        return cast(T, self._runtime.run_now(task.task_id, task.payload).unwrap())

    # -- cluster state ------------------------------------------------------------------
    def stats(self) -> Stats:
        """Cluster-wide stats; after `stop` with a private server, the last
        reading taken before the server went away."""
        if self._final is not None:
            return self._final[0]
        return build_stats(self._read_cluster())

    def metrics(self) -> Metrics:
        """Cluster-wide metrics."""
        if self._final is not None:
            return self._final[1]
        return build_metrics(self._read_cluster())

    def _read_cluster(self) -> RawCluster:
        """The cluster as Redis has it, with this manager's own entry as it is right now
        (the others are as of their last heartbeat)."""
        raw = self._store.read_cluster()
        if self._runtime.stopped:
            return raw
        fields = self._runtime.stats_fields(self.config.queue)
        own = (self.worker_id, {k: str(v) for k, v in fields.items()})
        others = [w for w in raw.workers if w[0] != self.worker_id]
        return dataclasses.replace(raw, workers=[*others, own])

    # -- shutdown -----------------------------------------------------------------------
    def stop(self) -> None:
        """Take no new task, wait for every task queued here, then stop the slots and
        destroy their resources."""
        with self._state_lock:
            if self._state is not ManagerState.RUNNING:
                return
            self._state = ManagerState.STOPPING
            self._state_lock.wait_for(lambda: self._submitting == 0)
            waiting = list(self._outstanding)
        concurrent.futures.wait(waiting)
        self._runtime.stop()
        self._shutdown()

    def kill(self) -> None:
        """Cancel now: tasks of this manager not finished yet are cancelled (queued ones
        never run; running ones are told, and a late result is dropped), and every caller
        still waiting gets `TaskCancelled`."""
        with self._state_lock:
            if self._state is ManagerState.STOPPED:
                return
            self._state = ManagerState.STOPPED
            self._state_lock.wait_for(lambda: self._submitting == 0)
            waiting = [f for f in self._outstanding if not f.done()]
        self._cancel_queued(waiting)
        self._runtime.kill()
        for future in waiting:
            with contextlib.suppress(InvalidStateError):
                future.set_exception(TaskCancelled("task cancelled: task manager killed"))
        self._shutdown()

    def _cancel_queued(self, futures: list[TaskFuture[Any]]) -> None:
        failure = Failure(
            FailureKind.CANCELLED, "TaskCancelled", "task cancelled: task manager killed", ""
        )
        items = [(f.task_id, self._signer.seal(encode_failure(f.task_id, failure)))
                 for f in futures]  # fmt: skip
        try:
            self._store.cancel(int(self.config.result_ttl * 1000), items)
        except RedisUnavailable as exc:
            log.error("kill: could not remove queued tasks: %s", exc)

    def _shutdown(self) -> None:
        with self._state_lock:
            self._state = ManagerState.STOPPED
        if self._server is not None:
            with contextlib.suppress(RedisUnavailable):
                raw = self._store.read_cluster()
                self._final = (build_stats(raw), build_metrics(raw))
        self._producer.close()
        self._callbacks.close()
        self._store.close()
        if self._server is not None:
            self._server.stop()

    def close(self) -> None:
        """The same as `stop` (a manager owns its slots: closing it stops them)."""
        self.stop()

    def __enter__(self) -> TaskManager[R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
