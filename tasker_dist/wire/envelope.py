"""The versioned envelopes that travel through Redis: one per task, one per result.

Task envelope (msgpack array, version 1)::

    [1, task_id, callable_bytes, args_bytes, flags, reply_to, enqueued_at, timeout_s]

``args_bytes`` is `codec.pack([args, kwargs])`; ``flags`` bit 0 means "once" (no retry);
``reply_to`` is the producer's reply channel or nil; ``enqueued_at`` is the producer's wall
clock (seconds), used only for the wait-time metric; ``timeout_s`` is nil or a float.

Result envelope (msgpack array, version 1)::

    [1, task_id, status, body]

``status`` 0: ``body`` is `codec.pack(value)`; otherwise ``body`` is a map describing the
failure (see `Failure`).
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import cloudpickle
import msgpack

from ..errors import (
    MaxRetriesExceeded,
    RemoteTraceback,
    SerializationError,
    ShuttingDown,
    TaskCancelled,
    TaskError,
    TaskQuarantined,
    TaskRejected,
    TaskTimeout,
)
from ..status import FailureKind
from . import codec

__all__ = [
    "FLAG_ONCE",
    "FailedRecord",
    "Failure",
    "Outcome",
    "TaskEnvelope",
    "decode_result",
    "decode_task",
    "encode_failure",
    "encode_success",
    "encode_task",
    "peek_task_id",
]

VERSION: Final = 1
FLAG_ONCE: Final = 1
_OK: Final = 0
_FAILED: Final = 1
_PACKED_NONE: Final = codec.pack(None)
_packers = threading.local()


def _pack_fields(fields: list[Any]) -> bytes:
    """An envelope's fields (str, bytes, numbers, None: no hooks, so no re-entry) packed
    by this thread's own Packer: `msgpack.packb` makes one per call, which costs three
    times the packing itself, twice per task."""
    try:
        packer = _packers.packer
    except AttributeError:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    return packer.pack(fields)  # type: ignore[no-any-return]


# Simple failures: the caller gets this error with the stored message, and no traceback.
_PLAIN: dict[str, type[Exception]] = {
    FailureKind.CANCELLED: TaskCancelled,
    FailureKind.TIMEOUT: TaskTimeout,
    FailureKind.SHUTDOWN: ShuttingDown,
    FailureKind.INVALID: TaskRejected,
    FailureKind.QUARANTINED: TaskQuarantined,
}


class TaskEnvelope(NamedTuple):  # not a frozen dataclass: one per task, 3x faster to make
    task_id: str
    fn: bytes
    args: bytes
    flags: int
    reply_to: str | None
    enqueued_at: float
    timeout: float | None

    @property
    def once(self) -> bool:
        return bool(self.flags & FLAG_ONCE)


def encode_task(env: TaskEnvelope) -> bytes:
    return _pack_fields([VERSION, env.task_id, env.fn, env.args, env.flags, env.reply_to,
                         env.enqueued_at, env.timeout])  # fmt: skip


def decode_task(data: bytes) -> TaskEnvelope:
    """Read a task envelope; any malformed input raises `SerializationError` naming why."""
    try:
        fields = msgpack.unpackb(data, raw=False)
    except Exception as exc:
        raise SerializationError(f"task payload is not msgpack: {exc}") from exc
    if not isinstance(fields, list) or not fields:
        raise SerializationError("task payload is not an envelope array")
    if fields[0] != VERSION:
        raise SerializationError(f"unknown task envelope version {fields[0]!r}")
    if len(fields) != 8:
        raise SerializationError(f"task envelope has {len(fields)} fields, expected 8")
    _, task_id, fn, args, flags, reply_to, enqueued_at, timeout = fields
    if not (
        isinstance(task_id, str)
        and isinstance(fn, bytes)
        and isinstance(args, bytes)
        and isinstance(flags, int)
        and (reply_to is None or isinstance(reply_to, str))
        and isinstance(enqueued_at, (int, float))  # a tuple: faster than int | float
        and (timeout is None or isinstance(timeout, (int, float)))
    ):
        raise SerializationError("task envelope fields have the wrong types")
    return TaskEnvelope(
        task_id,
        fn,
        args,
        flags,
        reply_to,
        float(enqueued_at),
        None if timeout is None else float(timeout),
    )


@dataclass(frozen=True, slots=True)
class Failure:
    """A task's failure as stored in its result: enough to re-raise it in the caller."""

    kind: str
    type_name: str
    message: str
    traceback: str
    exception: bytes | None = None

    @classmethod
    def from_exception(cls, exc: BaseException, kind: FailureKind = FailureKind.ERROR) -> Failure:
        try:
            pickled: bytes | None = cloudpickle.dumps(exc)
        except Exception:
            pickled = None
        tb = "".join(traceback.format_exception(exc))
        type_name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        return cls(kind, type_name, str(exc), tb, pickled)

    def to_exception(self) -> BaseException:
        """The exception the caller should see."""
        plain = _PLAIN.get(self.kind)
        if plain is not None:
            return plain(self.message)
        err = self._rebuild()
        if self.traceback:
            if err.__cause__ is None:
                err.__cause__ = RemoteTraceback(self.traceback)
            err.add_note(f"Remote traceback:\n{self.traceback}")
        if self.kind == FailureKind.MAX_RETRIES:
            wrapper = MaxRetriesExceeded(self.message)
            wrapper.__cause__ = err
            return wrapper
        return err

    def _rebuild(self) -> BaseException:
        if self.exception is not None:
            try:
                exc = cloudpickle.loads(self.exception)
            except Exception:
                exc = None
            if isinstance(exc, BaseException):
                return exc
        return TaskError(self.type_name, self.message)


def encode_success(task_id: str, value: object) -> bytes:
    """Raises `SerializationError` if ``value`` cannot be serialized."""
    packed = _PACKED_NONE if value is None else codec.pack(value)  # None: most tasks
    return _pack_fields([VERSION, task_id, _OK, packed])


def encode_failure(task_id: str, failure: Failure) -> bytes:
    body = {
        "kind": failure.kind,
        "type": failure.type_name,
        "message": failure.message,
        "traceback": failure.traceback,
        "exception": failure.exception,
    }
    return msgpack.packb([VERSION, task_id, _FAILED, body], use_bin_type=True,
                         unicode_errors="surrogateescape")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Outcome:
    """A result envelope read just far enough to know its task; `unwrap` decodes the rest,
    so a value that cannot be decoded here still reaches the caller, as an error."""

    task_id: str
    ok: bool
    body: Any

    def unwrap(self) -> Any:
        """The value, or raise what the task raised."""
        if self.ok:
            return codec.unpack(self.body)
        raise self.failure().to_exception()

    def failure(self) -> Failure:
        body = self.body
        try:
            return Failure(
                body["kind"],
                body["type"],
                body["message"],
                body["traceback"],
                body.get("exception"),
            )
        except Exception as exc:
            raise SerializationError(f"malformed failure in result of {self.task_id}") from exc


def decode_result(data: bytes) -> Outcome:
    try:
        version, task_id, status, body = msgpack.unpackb(
            data, raw=False, unicode_errors="surrogateescape"
        )
    except Exception as exc:
        raise SerializationError(f"result payload is not a result envelope: {exc}") from exc
    if version != VERSION or not isinstance(task_id, str):
        raise SerializationError(f"unknown result envelope version {version!r}")
    return Outcome(task_id, status == _OK, body)


def peek_task_id(data: bytes) -> tuple[str, str | None] | None:
    """(task id, failure message or None for a value) of a result envelope that could not
    be verified, read from its plain fields only (nothing in it is unpickled); None if it
    is not one."""
    try:
        _, task_id, status, body = msgpack.unpackb(data, raw=False, unicode_errors="replace")
        message = body["message"] if status == _FAILED else None
    except Exception:
        return None
    if not isinstance(task_id, str) or not isinstance(message, str | None):
        return None
    return task_id, message


@dataclass(frozen=True, slots=True)
class FailedRecord:
    """A task kept in the failed store: why, when, and its raw bytes (the envelope, or
    the bare id when no envelope was stored), so it can be inspected and re-queued."""

    task_id: str
    kind: str
    reason: str
    payload: bytes
    deliveries: int
    failed_at: float

    def encode(self) -> bytes:
        return msgpack.packb(
            [VERSION, self.task_id, self.kind, self.reason, self.payload, self.deliveries,
             self.failed_at],
            use_bin_type=True, unicode_errors="surrogateescape",
        )  # fmt: skip

    @classmethod
    def decode(cls, data: bytes) -> FailedRecord:
        try:
            version, task_id, kind, reason, payload, deliveries, failed_at = msgpack.unpackb(
                data, raw=False, unicode_errors="surrogateescape"
            )
        except Exception as exc:
            raise SerializationError(f"unreadable failed-store record: {exc}") from exc
        if version != VERSION:
            raise SerializationError(f"unknown failed-store record version {version!r}")
        return cls(task_id, kind, reason, payload, int(deliveries), float(failed_at))
