"""Running one task with a resource, and judging its outcome (SPEC §4, §7).

`Executor.run` never raises: every outcome becomes a `Report`, including payloads that
cannot be decoded (refused, kept in the failed store with their raw bytes and the
reason), tasks that keep killing their worker (quarantined), tasks that call
``sys.exit``, and results that cannot be serialized.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import codec
from ..callables import CallableCache
from ..commands import COMPLETED, FAILED, RETRIED, Finished
from ..config import Config
from ..context import TaskContext
from ..envelope import (
    FailedRecord,
    Failure,
    FailureKind,
    TaskEnvelope,
    decode_task,
    encode_failure,
    encode_success,
)
from ..errors import SerializationError, TaskCancelled, TaskTimeout
from ..signing import Signer
from ..submission import check_size
from .async_loop import AsyncLoop
from .job import Job

__all__ = ["Executor", "Report"]

log = logging.getLogger("tasker_dist.worker")


@dataclass(frozen=True, slots=True)
class Report:
    """What happened to one task; ``unhealthy`` asks the slot to replace its resource."""

    finished: Finished
    unhealthy: bool = False

    @property
    def status(self) -> str:
        return self.finished.status


def _finished(
    job: Job,
    status: str,
    result: bytes = b"",
    exec_s: float | None = None,
    wait_s: float | None = None,
    record: bytes = b"",
) -> Finished:
    return Finished(job.task_id, status, result, job.reply_to, exec_s, wait_s,
                    job.fetched.delivery, record)  # fmt: skip


def _failure_report(
    job: Job,
    failure: Failure,
    raw: bytes | None = None,
    exec_s: float | None = None,
    wait_s: float | None = None,
    unhealthy: bool = False,
) -> Report:
    """A failed task; with ``raw`` bytes it is also kept in the failed store."""
    record = b""
    if raw is not None:
        record = FailedRecord(job.task_id, failure.kind, failure.message, raw,
                              job.fetched.delivery, time.time()).encode()  # fmt: skip
    result = encode_failure(job.task_id, failure)
    return Report(_finished(job, FAILED, result, exec_s, wait_s, record), unhealthy)


@dataclass(frozen=True, slots=True)
class _Ran:
    """A task that ran, and how long it waited and ran."""

    job: Job
    env: TaskEnvelope
    exec_s: float
    wait_s: float

    def report(self, status: str, result: bytes = b"", unhealthy: bool = False) -> Report:
        return Report(_finished(self.job, status, result, self.exec_s, self.wait_s), unhealthy)

    def failed(self, failure: Failure, keep: bool = False, unhealthy: bool = False) -> Report:
        """``keep``: also put the task in the failed store, so it can be re-queued."""
        raw = self.job.fetched.payload if keep else None
        return _failure_report(self.job, failure, raw, self.exec_s, self.wait_s, unhealthy)


class Executor:
    def __init__(self, config: Config[Any], aloop: AsyncLoop, signer: Signer) -> None:
        self._config = config
        self._aloop = aloop
        self._signer = signer
        self._callables = CallableCache()

    def prepare(
        self, job: Job
    ) -> tuple[TaskEnvelope, Callable[..., Any], list[Any], dict[str, Any]] | Report:
        """Decode a job's envelope, callable and arguments, or report why it cannot run."""
        payload = job.fetched.payload
        if not payload:
            raw = job.task_id.encode("utf-8", "surrogateescape")
            return self.refuse(job, "no task is stored under this id (garbage on a lane?)", raw)
        try:  # verified before anything in it is decoded
            env = decode_task(self._signer.open(payload))
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
            return _failure_report(job, failure, payload)
        try:
            fn = self._callables.load(env.fn)
            args, kwargs = codec.unpack(env.args)
        except (SerializationError, ValueError, TypeError) as exc:
            return self.refuse(job, str(exc), payload)
        return env, fn, args, kwargs

    @staticmethod
    def refuse(job: Job, reason: str, raw: bytes) -> Report:
        """A payload that must not run: its caller gets `TaskRejected` naming ``reason``,
        and its raw bytes go to the failed store."""
        log.error("task %r refused: %s", job.task_id, reason)
        failure = Failure(FailureKind.INVALID, "TaskRejected", f"task payload rejected: {reason}",
                          "")  # fmt: skip
        return _failure_report(job, failure, raw)

    def run(self, job: Job, resource: Any, on_start: Callable[[Job], None]) -> Report:
        prepared = self.prepare(job)
        if isinstance(prepared, Report):
            return prepared
        env, fn, args, kwargs = prepared
        timeout = env.timeout or self._config.task_timeout
        start = time.monotonic()
        job.ctx = TaskContext(job.task_id, job.fetched.retries, self._config.queue,
                              None if timeout is None else start + timeout)  # fmt: skip
        wait_s = max(0.0, time.time() - env.enqueued_at)
        on_start(job)
        try:
            value = fn(job.ctx, resource, *args, **kwargs)
            if inspect.isawaitable(value):
                job.async_future = self._aloop.submit(_await(value))
                if job.ctx.cancelled:  # killed or timed out before the coroutine started
                    job.async_future.cancel()
                value = job.async_future.result()
        except BaseException as exc:
            return self._failed(_Ran(job, env, time.monotonic() - start, wait_s), exc)
        ran = _Ran(job, env, time.monotonic() - start, wait_s)
        try:
            result = encode_success(job.task_id, value)
            check_size("result", len(result), self._config.max_payload_bytes)
        except SerializationError as exc:  # PayloadTooLarge included
            return ran.failed(Failure.from_exception(exc))
        return ran.report(COMPLETED, result)

    def _failed(self, ran: _Ran, exc: BaseException) -> Report:
        job = ran.job
        ctx = job.ctx
        assert ctx is not None
        if isinstance(exc, TaskTimeout) or ctx.cancel_reason == "timeout":
            return ran.failed(Failure(FailureKind.TIMEOUT, "TaskTimeout",
                                      f"task {job.task_id} timed out", ""))  # fmt: skip
        if isinstance(exc, TaskCancelled) or ctx.cancelled:
            return ran.failed(Failure(FailureKind.CANCELLED, "TaskCancelled",
                                      f"task {job.task_id} was cancelled", ""))  # fmt: skip
        if not isinstance(exc, Exception):
            # sys.exit() or KeyboardInterrupt inside a task ends the task, not the worker,
            # and is not re-raised as such in the caller.
            tb = Failure.from_exception(exc)
            return ran.failed(
                Failure(
                    FailureKind.ERROR,
                    tb.type_name,
                    f"task raised {type(exc).__name__}({exc})",
                    tb.traceback,
                )
            )
        if self._healthy(exc):
            return ran.failed(Failure.from_exception(exc))
        if ran.env.once:
            return ran.failed(Failure.from_exception(exc), unhealthy=True)
        if job.fetched.retries < self._config.max_retries:
            log.warning("task %s: unhealthy error %r; retry %d of %d", job.task_id, exc,
                        job.fetched.retries + 1, self._config.max_retries)  # fmt: skip
            return ran.report(RETRIED, unhealthy=True)
        original = Failure.from_exception(exc)
        failure = Failure(FailureKind.MAX_RETRIES, original.type_name, str(exc),
                          original.traceback, original.exception)  # fmt: skip
        return ran.failed(failure, keep=True, unhealthy=True)

    def _healthy(self, exc: Exception) -> bool:
        check = self._config.check_health
        if check is None:
            return True
        try:
            return bool(check(exc))
        except Exception:
            log.exception("check_health raised on %r; treating the error as healthy", exc)
            return True

    @staticmethod
    def settled_by(job: Job, kind: str, message: str) -> Report:
        """The report for a job settled from outside its slot (timeout or kill)."""
        return _failure_report(job, Failure(kind, kind, message, ""))


async def _await(value: Any) -> Any:
    return await value
