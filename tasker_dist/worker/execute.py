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
from ..commands import ACTION_DONE, ACTION_RETRY, Finished
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
    """What happened to one task. ``status`` is "completed", "failed" or "retried";
    ``unhealthy`` asks the slot to replace its resource."""

    finished: Finished
    status: str
    exec_s: float | None = None
    wait_s: float | None = None
    unhealthy: bool = False


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
            elapsed = time.monotonic() - start
            return self._failed(job, env, exc, elapsed, wait_s)
        elapsed = time.monotonic() - start
        try:
            result = encode_success(job.task_id, value)
        except SerializationError as exc:
            failure = Failure.from_exception(exc)
            return self._report(
                env, encode_failure(job.task_id, failure), "failed", elapsed, wait_s
            )
        return self._report(env, result, "completed", elapsed, wait_s)

    def _failed(
        self, job: Job, env: TaskEnvelope, exc: BaseException, elapsed: float, wait_s: float
    ) -> Report:
        ctx = job.ctx
        assert ctx is not None
        if isinstance(exc, TaskTimeout) or (ctx.cancel_reason == "timeout"):
            failure = Failure(
                FailureKind.TIMEOUT, "TaskTimeout", f"task {job.task_id} timed out", ""
            )
            return self._fail(env, failure, elapsed, wait_s)
        if isinstance(exc, TaskCancelled) or ctx.cancelled:
            failure = Failure(
                FailureKind.CANCELLED, "TaskCancelled", f"task {job.task_id} was cancelled", ""
            )
            return self._fail(env, failure, elapsed, wait_s)
        if not isinstance(exc, Exception):
            # sys.exit() or KeyboardInterrupt inside a task ends the task, not the worker,
            # and is not re-raised as such in the caller.
            failure = Failure.from_exception(exc)
            failure = Failure(
                FailureKind.ERROR,
                failure.type_name,
                f"task raised {type(exc).__name__}({exc})",
                failure.traceback,
            )
            return self._fail(env, failure, elapsed, wait_s)
        if self._healthy(exc):
            return self._fail(env, Failure.from_exception(exc), elapsed, wait_s)
        if env.once:
            return self._fail(env, Failure.from_exception(exc), elapsed, wait_s, unhealthy=True)
        if job.fetched.retries < self._config.max_retries:
            log.warning(
                "task %s: unhealthy error %r; retry %d of %d",
                job.task_id,
                exc,
                job.fetched.retries + 1,
                self._config.max_retries,
            )
            return Report(
                Finished(job.task_id, ACTION_RETRY), "retried", elapsed, wait_s, unhealthy=True
            )
        original = Failure.from_exception(exc)
        failure = Failure(
            FailureKind.MAX_RETRIES,
            original.type_name,
            str(exc),
            original.traceback,
            original.exception,
        )
        return self._fail(env, failure, elapsed, wait_s, unhealthy=True)

    def _healthy(self, exc: Exception) -> bool:
        check = self._config.check_health
        if check is None:
            return True
        try:
            return bool(check(exc))
        except Exception:
            log.exception("check_health raised on %r; treating the error as healthy", exc)
            return True

    def _fail(
        self,
        env: TaskEnvelope,
        failure: Failure,
        elapsed: float,
        wait_s: float,
        *,
        unhealthy: bool = False,
    ) -> Report:
        result = encode_failure(env.task_id, failure)
        return self._report(env, result, "failed", elapsed, wait_s, unhealthy)

    @staticmethod
    def _report(
        env: TaskEnvelope,
        result: bytes,
        status: str,
        elapsed: float | None,
        wait_s: float | None,
        unhealthy: bool = False,
    ) -> Report:
        finished = Finished(env.task_id, ACTION_DONE, result, env.reply_to or "")
        return Report(finished, status, elapsed, wait_s, unhealthy)

    @staticmethod
    def invalid(task_id: str, reply_to: str, exc: Exception) -> Report:
        """A payload that cannot be run: stored as a failed result naming the reason."""
        failure = Failure(
            FailureKind.INVALID, type(exc).__qualname__, f"task payload rejected: {exc}", ""
        )
        finished = Finished(task_id, ACTION_DONE, encode_failure(task_id, failure), reply_to)
        return Report(finished, "failed")

    @staticmethod
    def settled_by(job: Job, kind: str, message: str) -> Report:
        """The report for a job settled from outside its slot (timeout or kill)."""
        failure = Failure(kind, kind, message, "")
        finished = Finished(
            job.task_id, ACTION_DONE, encode_failure(job.task_id, failure), job.reply_to
        )
        return Report(finished, "failed")


async def _await(value: Any) -> Any:
    return await value
