"""Running one task with a resource, and judging its outcome.

`Executor.run` never raises: every outcome becomes a `Report`, including payloads that
cannot be decoded (refused, kept in the failed store with their raw bytes and the
reason), tasks that keep killing their worker (quarantined), tasks that call
``sys.exit``, and results that cannot be serialized.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from ..clock import Clock
from ..config import Config
from ..context import TaskContext
from ..errors import SerializationError, TaskCancelled, TaskTimeout
from ..status import CancelReason, FailureKind, Status
from ..store import Finished
from ..wire import (
    CallableCache,
    FailedRecord,
    Failure,
    TaskEnvelope,
    check_size,
    codec,
    decode_task,
    encode_failure,
    encode_success,
)
from .async_loop import AsyncLoop
from .job import Job
from .served import ServedQueue

__all__ = ["Executor", "Report"]

log = logging.getLogger("tasker_dist.worker")


class Report(NamedTuple):  # as `Fetched`: one per task
    """What happened to one task, to be written to its ``queue``; ``unhealthy`` asks the
    slot to replace its resource."""

    finished: Finished
    queue: ServedQueue
    unhealthy: bool = False

    @property
    def status(self) -> Status:
        return self.finished.status


class Executor:
    def __init__(self, config: Config[Any], aloop: AsyncLoop, clock: Clock) -> None:
        self._config = config
        self._aloop = aloop
        self._clock = clock
        self._callables = CallableCache()

    def _report(
        self,
        job: Job,
        status: Status,
        result: bytes = b"",
        record: bytes = b"",
        unhealthy: bool = False,
    ) -> Report:
        """Results are signed here, once, for whoever reads them (for the task's queue)."""
        sealed = job.queue.signer.seal(result) if result else b""
        return Report(Finished(job.task_id, status, sealed, job.reply_to, job.exec_s, job.wait_s,
                               job.fetched.delivery, record), job.queue, unhealthy)  # fmt: skip

    def _failure(
        self, job: Job, failure: Failure, raw: bytes | None = None, unhealthy: bool = False
    ) -> Report:
        """A failed task; with ``raw`` bytes it is also kept in the failed store."""
        record = b""
        if raw is not None:
            record = FailedRecord(job.task_id, failure.kind, failure.message, raw,
                                  job.fetched.delivery, self._clock.time()).encode()  # fmt: skip
        return self._report(
            job, Status.FAILED, encode_failure(job.task_id, failure), record, unhealthy
        )

    def prepare(
        self, job: Job
    ) -> tuple[TaskEnvelope, Callable[..., Any], list[Any], dict[str, Any]] | Report:
        """Decode a job's envelope, callable and arguments, or report why it cannot run."""
        payload = job.fetched.payload
        if not payload:
            raw = job.task_id.encode("utf-8", "surrogateescape")
            return self.refuse(job, "no task is stored under this id (garbage on a lane?)", raw)
        try:  # verified before anything in it is decoded
            env = decode_task(job.queue.signer.open(payload))
        except SerializationError as exc:  # PayloadRejected included
            return self.refuse(job, str(exc), payload)
        job.reply_to = env.reply_to or ""
        if env.task_id != job.task_id:
            return self.refuse(job, f"envelope of task {env.task_id!r} stored under another id",
                               payload)  # fmt: skip
        runs = job.fetched.delivery - job.fetched.retries
        if runs > self._config.max_deliveries:
            message = (f"task {job.task_id} quarantined: taken {runs - 1} times without "
                       "finishing (its worker process died each time)")  # fmt: skip
            log.error("%s; it is in the failed store", message)
            failure = Failure(FailureKind.QUARANTINED, "TaskQuarantined", message, "")
            return self._failure(job, failure, payload)
        try:
            fn = self._callables.load(env.fn)
            args, kwargs = codec.unpack(env.args)
        except (SerializationError, ValueError, TypeError) as exc:
            return self.refuse(job, str(exc), payload)
        return env, fn, args, kwargs

    def refuse(self, job: Job, reason: str, raw: bytes) -> Report:
        """A payload that must not run: its caller gets `TaskRejected` naming ``reason``,
        and its raw bytes go to the failed store."""
        log.error("task %r refused: %s", job.task_id, reason)
        if not job.reply_to:
            # The envelope did not verify, so the reply channel it names is not to be
            # trusted: the queue's rejected channel tells its producer instead.
            job.reply_to = job.queue.rejected_channel
        failure = Failure(FailureKind.INVALID, "TaskRejected", f"task payload rejected: {reason}",
                          "")  # fmt: skip
        return self._failure(job, failure, raw)

    def run(self, job: Job, resource: Any, on_start: Callable[[Job], None] | None = None) -> Report:
        """Run ``job`` with ``resource`` in this thread; ``on_start(job)`` is called once
        its context (and deadline) exists, just before the task's code runs."""
        prepared = self.prepare(job)
        if isinstance(prepared, Report):
            return prepared
        env, fn, args, kwargs = prepared
        timeout = env.timeout or self._config.task_timeout
        clock = self._clock
        start = clock.monotonic()
        job.ctx = TaskContext(job.task_id, job.fetched.retries, job.queue.name,
                              None if timeout is None else start + timeout, clock)  # fmt: skip
        job.wait_s = max(0.0, clock.time() - env.enqueued_at)
        if on_start is not None:
            on_start(job)
        try:
            value = fn(job.ctx, resource, *args, **kwargs)
            if value is not None and inspect.isawaitable(value):
                job.async_future = self._aloop.submit(value)
                if job.ctx.cancelled:  # killed or timed out before the coroutine started
                    job.async_future.cancel()
                value = job.async_future.result()
        except BaseException as exc:
            job.exec_s = clock.monotonic() - start
            return self._failed(job, env, exc)
        job.exec_s = clock.monotonic() - start
        try:
            result = encode_success(job.task_id, value)
            check_size("result", len(result), self._config.max_payload_bytes)
        except SerializationError as exc:  # PayloadTooLarge included
            return self._failure(job, Failure.from_exception(exc))
        return self._report(job, Status.COMPLETED, result)

    def _failed(self, job: Job, env: TaskEnvelope, exc: BaseException) -> Report:
        ctx = job.ctx
        assert ctx is not None
        if isinstance(exc, TaskTimeout) or ctx.cancel_reason is CancelReason.TIMEOUT:
            return self._failure(job, Failure(FailureKind.TIMEOUT, "TaskTimeout",
                                      f"task {job.task_id} timed out", ""))  # fmt: skip
        if isinstance(exc, TaskCancelled) or ctx.cancelled:
            return self._failure(job, Failure(FailureKind.CANCELLED, "TaskCancelled",
                                      f"task {job.task_id} was cancelled", ""))  # fmt: skip
        if not isinstance(exc, Exception):
            # sys.exit() or KeyboardInterrupt inside a task ends the task, not the worker,
            # and is not re-raised as such in the caller.
            tb = Failure.from_exception(exc)
            return self._failure(
                job,
                Failure(
                    FailureKind.ERROR,
                    tb.type_name,
                    f"task raised {type(exc).__name__}({exc})",
                    tb.traceback,
                ),
            )
        if self._healthy(exc):
            return self._failure(job, Failure.from_exception(exc))
        if env.once:
            return self._failure(job, Failure.from_exception(exc), unhealthy=True)
        if job.fetched.retries < self._config.max_retries:
            log.warning("task %s: unhealthy error %r; retry %d of %d", job.task_id, exc,
                        job.fetched.retries + 1, self._config.max_retries)  # fmt: skip
            return self._report(job, Status.RETRIED, unhealthy=True)
        original = Failure.from_exception(exc)
        failure = Failure(FailureKind.MAX_RETRIES, original.type_name, str(exc),
                          original.traceback, original.exception)  # fmt: skip
        return self._failure(job, failure, job.fetched.payload, unhealthy=True)

    def _healthy(self, exc: Exception) -> bool:
        check = self._config.check_health
        if check is None:
            return True
        try:
            return bool(check(exc))
        except Exception:
            log.exception("check_health raised on %r; treating the error as healthy", exc)
            return True

    def settled_by(self, job: Job, kind: FailureKind, message: str) -> Report:
        """The report for a job settled from outside its slot (timeout or kill)."""
        return self._failure(job, Failure(kind, kind, message, ""))
