"""Running one task with a resource, and judging its outcome (SPEC §4).

`Executor.run` never raises: every outcome, including undecodable payloads, a task that
calls ``sys.exit``, and unserializable results, becomes a `Report`.
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
    Failure,
    FailureKind,
    TaskEnvelope,
    decode_task,
    encode_failure,
    encode_success,
)
from ..errors import SerializationError, TaskCancelled, TaskTimeout
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


@dataclass(frozen=True, slots=True)
class _Ran:
    """A task that ran: where its result goes and how long it waited and ran."""

    env: TaskEnvelope
    exec_s: float
    wait_s: float

    def report(self, status: str, result: bytes = b"", unhealthy: bool = False) -> Report:
        finished = Finished(
            self.env.task_id, status, result, self.env.reply_to or "", self.exec_s, self.wait_s
        )
        return Report(finished, unhealthy)

    def failed(self, failure: Failure, unhealthy: bool = False) -> Report:
        return self.report(FAILED, encode_failure(self.env.task_id, failure), unhealthy)


class Executor:
    def __init__(self, config: Config[Any], aloop: AsyncLoop) -> None:
        self._config = config
        self._aloop = aloop
        self._callables = CallableCache()

    def prepare(
        self, job: Job
    ) -> tuple[TaskEnvelope, Callable[..., Any], list[Any], dict[str, Any]] | Report:
        """Decode a job's envelope, callable and arguments, or report why it cannot run."""
        try:
            env = decode_task(job.fetched.payload)
        except SerializationError as exc:
            return self.invalid(job.task_id, "", exc)
        try:
            fn = self._callables.load(env.fn)
            args, kwargs = codec.unpack(env.args)
        except (SerializationError, ValueError, TypeError) as exc:
            return self.invalid(job.task_id, env.reply_to or "", exc)
        return env, fn, args, kwargs

    def run(self, job: Job, resource: Any, on_start: Callable[[Job], None]) -> Report:
        prepared = self.prepare(job)
        if isinstance(prepared, Report):
            return prepared
        env, fn, args, kwargs = prepared
        job.reply_to = env.reply_to or ""
        timeout = env.timeout or self._config.task_timeout
        start = time.monotonic()
        job.ctx = TaskContext(
            job.task_id,
            job.fetched.retries,
            self._config.queue,
            None if timeout is None else start + timeout,
        )
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
            return self._failed(job, _Ran(env, time.monotonic() - start, wait_s), exc)
        ran = _Ran(env, time.monotonic() - start, wait_s)
        try:
            return ran.report(COMPLETED, encode_success(job.task_id, value))
        except SerializationError as exc:
            return ran.failed(Failure.from_exception(exc))

    def _failed(self, job: Job, ran: _Ran, exc: BaseException) -> Report:
        ctx = job.ctx
        assert ctx is not None
        if isinstance(exc, TaskTimeout) or ctx.cancel_reason == "timeout":
            return ran.failed(
                Failure(FailureKind.TIMEOUT, "TaskTimeout", f"task {job.task_id} timed out", "")
            )
        if isinstance(exc, TaskCancelled) or ctx.cancelled:
            return ran.failed(
                Failure(
                    FailureKind.CANCELLED, "TaskCancelled", f"task {job.task_id} was cancelled", ""
                )
            )
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
            log.warning(
                "task %s: unhealthy error %r; retry %d of %d",
                job.task_id,
                exc,
                job.fetched.retries + 1,
                self._config.max_retries,
            )
            return ran.report(RETRIED, unhealthy=True)
        original = Failure.from_exception(exc)
        return ran.failed(
            Failure(
                FailureKind.MAX_RETRIES,
                original.type_name,
                str(exc),
                original.traceback,
                original.exception,
            ),
            unhealthy=True,
        )

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
    def invalid(task_id: str, reply_to: str, exc: Exception) -> Report:
        """A payload that cannot be run: stored as a failed result naming the reason."""
        failure = Failure(
            FailureKind.INVALID, type(exc).__qualname__, f"task payload rejected: {exc}", ""
        )
        return Report(Finished(task_id, FAILED, encode_failure(task_id, failure), reply_to))

    @staticmethod
    def settled_by(job: Job, kind: str, message: str) -> Report:
        """The report for a job settled from outside its slot (timeout or kill)."""
        failure = Failure(kind, kind, message, "")
        return Report(
            Finished(job.task_id, FAILED, encode_failure(job.task_id, failure), job.reply_to)
        )


async def _await(value: Any) -> Any:
    return await value
