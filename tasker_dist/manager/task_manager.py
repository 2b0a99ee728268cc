"""`TaskManager`: the seed's in-process manager, working through Redis.

It is a `Producer` and a worker (`WorkerRuntime`) on the same queue in one object, so its
tasks can also be served by `tasker-worker` daemons, and it serves theirs. With no
``redis_url`` it starts a private local server and stops it again (SPEC §6).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any, Generic, TypeVar, cast

from ..client.listener import TaskFuture
from ..client.producer import Producer
from ..client.submission import Options
from ..config import Config, resolve_redis_url
from ..errors import RedisUnavailable, ShuttingDown, TaskCancelled
from ..metrics.stats import Metrics, RawCluster, Stats, build_metrics, build_stats
from ..store.calls import RETRIED, Fetched
from ..store.embedded_server import EmbeddedServer
from ..store.queue_store import QueueStore
from ..wire.envelope import Failure, FailureKind, decode_result, encode_failure
from ..wire.signing import resolve_secret
from ..worker.job import Job
from ..worker.resource_pool import ResourcePool
from ..worker.runtime import KillMode, WorkerRuntime

__all__ = ["TaskManager"]

log = logging.getLogger(__name__)

R = TypeVar("R")
T = TypeVar("T")

_RUNNING, _STOPPING, _STOPPED = "running", "stopping", "stopped"


class TaskManager(Producer, Generic[R]):
    """Queue tasks and run them with ``config``'s resources, like the Go ``TaskManager``.

    It has every queueing method of `Producer`; each serializes the task and sends it
    through Redis, where this manager's slots (and any daemon on the same queue) take it.
    `stop` waits for every task queued here, then releases the resources; `kill` cancels
    at once and leaves no caller waiting. Both are idempotent, in any order.
    """

    def __init__(self, config: Config[R]) -> None:
        url = resolve_redis_url(config.redis_url)
        self._server: EmbeddedServer | None = None
        if url is None:
            self._server = EmbeddedServer.start()
            url = self._server.url
            if resolve_secret(config.secret) is None and not config.allow_unsigned:
                # A private server: nobody else needs the secret, so make one up.
                config = dataclasses.replace(config, secret=secrets.token_hex(32))
        self.config = config
        self._state = _RUNNING
        self._state_lock = threading.Condition()
        self._outstanding: set[TaskFuture[Any]] = set()
        self._submitting = 0
        self._final: tuple[Stats, Metrics] | None = None
        try:
            super().__init__(
                url,
                config.queue,
                connect_timeout=config.connect_timeout,
                task_timeout=config.task_timeout,
                secret=config.secret,
                allow_unsigned=config.allow_unsigned,
                max_payload_bytes=config.max_payload_bytes,
            )
            self._store_w = QueueStore(url, config.queue, config.connect_timeout)
            self._runtime = WorkerRuntime(
                config, self._store_w, kill_mode=KillMode.CANCEL, extra_idle=lambda: self._pool.idle
            )
            self._pool = ResourcePool(config.pool_size, self._runtime.hooks)
            self._runtime.start()
        except BaseException:
            if self._server is not None:
                self._server.stop()
            raise

    @property
    def worker_id(self) -> str:
        """This manager's id among the queue's workers (see `Stats.workers`)."""
        return self._runtime.worker_id

    def _submit(
        self, fn: Callable[..., T], args: Any, kwargs: Any, options: Options
    ) -> TaskFuture[T]:
        with self._state_lock:
            self._check_running()
            self._submitting += 1  # stop() and kill() wait for submissions under way
        try:
            future = super()._submit(fn, args, kwargs, options)
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

    def _check_open(self) -> None:
        self._check_running()

    def _check_running(self) -> None:
        if self._state != _RUNNING:
            raise ShuttingDown()

    # -- running now --------------------------------------------------------------------
    def run_task(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` now in this thread with a pooled resource; it is never queued.

        The call is serialized like a queued task (the task sees copies), and an
        unhealthy error replaces the resource and retries, as in a slot.
        """
        self._check_running()
        task = self._task(fn, args, kwargs, Options(), None)
        retries = 0
        while True:
            resource = self._pool.acquire()
            job = Job(Fetched(task.task_id, task.payload, retries, False))
            report = self._runtime.executor.run(job, resource, lambda _job: None)
            self._pool.release(resource, healthy=not report.unhealthy)
            if report.status != RETRIED:
                return cast(T, decode_result(self._signer.open(report.finished.result)).unwrap())
            retries += 1

    # -- cluster state ------------------------------------------------------------------
    def stats(self) -> Stats:
        """Cluster-wide stats (SPEC §5); after `stop` with a private server, the last
        reading taken before the server went away."""
        if self._final is not None:
            return self._final[0]
        return build_stats(self._read_cluster())

    def metrics(self) -> Metrics:
        """Cluster-wide metrics (SPEC §5)."""
        if self._final is not None:
            return self._final[1]
        return build_metrics(self._read_cluster())

    def _read_cluster(self) -> RawCluster:
        """The cluster as Redis has it, with this manager's own entry as it is right now
        (the others are as of their last heartbeat)."""
        raw = self._store.read_cluster()
        if self._runtime.stopped:
            return raw
        own = (self.worker_id, {k: str(v) for k, v in self._runtime.fields().items()})
        others = [w for w in raw.workers if w[0] != self.worker_id]
        return dataclasses.replace(raw, workers=[*others, own])

    # -- shutdown -----------------------------------------------------------------------
    def stop(self) -> None:
        """Take no new task, wait for every task queued here, then stop the slots and
        destroy their resources."""
        with self._state_lock:
            if self._state != _RUNNING:
                return
            self._state = _STOPPING
            self._state_lock.wait_for(lambda: self._submitting == 0)
            waiting = list(self._outstanding)
        concurrent.futures.wait(waiting)
        self._runtime.stop()
        self._shutdown()

    def kill(self) -> None:
        """Cancel now: queued tasks of this manager are removed from the queue, running
        ones are cancelled, and every caller still waiting gets `TaskCancelled`."""
        with self._state_lock:
            if self._state == _STOPPED:
                return
            self._state = _STOPPED
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
            self._store_w.cancel(int(self.config.result_ttl * 1000), items)
        except RedisUnavailable as exc:
            log.error("kill: could not remove queued tasks: %s", exc)

    def _shutdown(self) -> None:
        with self._state_lock:
            self._state = _STOPPED
        self._pool.close()
        if self._server is not None:
            with contextlib.suppress(RedisUnavailable):
                raw = self._store_w.read_cluster()
                self._final = (build_stats(raw), build_metrics(raw))
        self.close()
        self._store_w.close()
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> TaskManager[R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
