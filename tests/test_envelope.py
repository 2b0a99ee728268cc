"""`envelope`: task and result envelopes, and how failures reach the caller (SPEC §3, §7)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import msgpack
import pytest

from tasker_dist import errors
from tasker_dist.errors import (
    MaxRetriesExceeded,
    RemoteTraceback,
    SerializationError,
    ShuttingDown,
    TaskCancelled,
    TaskerError,
    TaskError,
    TaskFailed,
    TaskQuarantined,
    TaskRejected,
    TaskTimeout,
)
from tasker_dist.status import FailureKind
from tasker_dist.wire.codec import pack
from tasker_dist.wire.envelope import (
    FLAG_ONCE,
    FailedRecord,
    Failure,
    Outcome,
    TaskEnvelope,
    decode_result,
    decode_task,
    encode_failure,
    encode_success,
    encode_task,
)

ENVELOPE = TaskEnvelope(
    task_id="t-1",
    fn=b"\x80\x05fn",
    args=pack([(1, 2), {"k": b"v"}]),
    flags=FLAG_ONCE,
    reply_to="tasker:reply:p1",
    enqueued_at=1_700_000_000.25,
    timeout=2.5,
)


class NeedsTwo(Exception):
    """Pickles fine but cannot be unpickled: its args do not match ``__init__``."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}/{b}")


class HoldsLock(Exception):
    """Cannot be pickled at all."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


class WithData(Exception):
    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


def raise_value_error_in_worker(message: str) -> None:
    raise ValueError(message)


def raised(fn: Callable[..., object], *args: object) -> BaseException:
    try:
        fn(*args)
    except BaseException as exc:
        return exc
    raise AssertionError("did not raise")


def failed_result(exc: BaseException, kind: str = FailureKind.ERROR) -> Outcome:
    data = encode_failure("t-9", Failure.from_exception(exc, kind))
    return decode_result(data)


# -- task envelopes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [
        ENVELOPE,
        TaskEnvelope("id", b"", b"", 0, None, 0.0, None),
        TaskEnvelope("\u00e9t\u00e9", b"\x00" * 100, b"\xff", 6, "", 1.5, 0.001),
    ],
)
def test_task_envelope_roundtrip(env: TaskEnvelope) -> None:
    assert decode_task(encode_task(env)) == env


def test_a_failed_encoding_leaves_nothing_behind_for_the_next() -> None:
    """Envelopes are packed by a Packer kept per thread: bytes of an encoding that failed
    must not end up in the next one."""
    with pytest.raises(UnicodeEncodeError):
        encode_task(ENVELOPE._replace(task_id="\udc80"))  # a lone surrogate: no UTF-8
    assert encode_task(ENVELOPE) == msgpack.packb([1, *ENVELOPE], use_bin_type=True)


def test_once_flag() -> None:
    assert ENVELOPE.once
    assert not TaskEnvelope("id", b"", b"", 0, None, 0.0, None).once
    assert not TaskEnvelope("id", b"", b"", 2, None, 0.0, None).once


def test_integer_times_become_floats() -> None:
    data = msgpack.packb([1, "id", b"f", b"a", 0, None, 17, 3], use_bin_type=True)
    env = decode_task(data)
    assert env.enqueued_at == 17.0
    assert type(env.enqueued_at) is float
    assert env.timeout == 3.0
    assert type(env.timeout) is float


def test_random_bytes_are_refused() -> None:
    rng = random.Random(1234)
    for _ in range(300):
        data = rng.randbytes(rng.randint(0, 64))
        with pytest.raises(SerializationError, match=r"^task (payload|envelope)"):
            decode_task(data)


def test_truncated_envelope_is_not_msgpack() -> None:
    data = encode_task(ENVELOPE)
    for cut in (1, 5, len(data) // 2, len(data) - 1):
        with pytest.raises(SerializationError, match="not msgpack"):
            decode_task(data[:cut])


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(SerializationError, match="not msgpack"):
        decode_task(encode_task(ENVELOPE) + b"\x00")


@pytest.mark.parametrize(
    "value",
    [{"version": 1, "task_id": "x"}, "a string", 1, None, [], b"bytes"],
    ids=["map", "str", "int", "nil", "empty-array", "bin"],
)
def test_non_array_payload_is_refused(value: object) -> None:
    with pytest.raises(SerializationError, match="not an envelope array"):
        decode_task(msgpack.packb(value, use_bin_type=True))


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_wrong_version_is_refused(version: object) -> None:
    fields = [version, "id", b"f", b"a", 0, None, 1.0, None]
    with pytest.raises(SerializationError, match="version"):
        decode_task(msgpack.packb(fields, use_bin_type=True))


@pytest.mark.parametrize("count", [1, 2, 7, 9, 12])
def test_wrong_field_count_is_refused(count: int) -> None:
    fields = [1, "id", b"f", b"a", 0, None, 1.0, None, 0, 0, 0, 0][:count]
    with pytest.raises(SerializationError, match=f"has {count} fields, expected 8"):
        decode_task(msgpack.packb(fields, use_bin_type=True))


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (1, 7),  # task_id not str
        (1, b"id"),
        (2, "fn as str"),  # fn not bytes
        (3, None),  # args not bytes
        (4, "1"),  # flags not int
        (4, 1.0),
        (5, 5),  # reply_to not str/nil
        (5, b"chan"),
        (6, "now"),  # enqueued_at not a number
        (6, None),
        (7, "10"),  # timeout not a number/nil
    ],
)
def test_wrong_field_types_are_refused(index: int, value: object) -> None:
    fields: list[object] = [1, "id", b"f", b"a", 0, None, 1.0, None]
    fields[index] = value
    with pytest.raises(SerializationError, match="wrong types"):
        decode_task(msgpack.packb(fields, use_bin_type=True))


# -- result envelopes -----------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, 0, "ok", b"raw", (1, (2,)), {(1,): [()]}, {1, 2}, 2**80])
def test_success_roundtrip(value: object) -> None:
    outcome = decode_result(encode_success("t-1", value))
    assert outcome.task_id == "t-1"
    assert outcome.ok
    back = outcome.unwrap()
    assert back == value
    assert type(back) is type(value)


def test_success_with_unserializable_value_raises_at_encode() -> None:
    with pytest.raises(SerializationError, match="lock"):
        encode_success("t-1", threading.Lock())


def test_success_body_that_cannot_be_decoded_raises_on_unwrap() -> None:
    body = msgpack.packb(msgpack.ExtType(1, b"not a pickle"))
    data = msgpack.packb([1, "t-1", 0, body], use_bin_type=True)
    outcome = decode_result(data)
    assert outcome.task_id == "t-1"
    with pytest.raises(SerializationError):
        outcome.unwrap()


@pytest.mark.parametrize(
    "data",
    [
        b"\xc1",
        msgpack.packb([1, "t"]),
        msgpack.packb([2, "t", 0, b""]),
        msgpack.packb([1, 5, 0, b""]),
    ],
)
def test_garbage_result_is_refused(data: bytes) -> None:
    with pytest.raises(SerializationError, match="result"):
        decode_result(data)


def test_malformed_failure_body_names_the_task() -> None:
    data = msgpack.packb([1, "t-7", 1, {"kind": "error"}], use_bin_type=True)
    outcome = decode_result(data)
    assert not outcome.ok
    with pytest.raises(SerializationError, match="t-7"):
        outcome.unwrap()


def test_failure_reraises_original_type_with_remote_traceback() -> None:
    outcome = failed_result(raised(raise_value_error_in_worker, "bad input"))
    assert outcome.task_id == "t-9"
    assert not outcome.ok
    with pytest.raises(ValueError, match="bad input") as info:
        outcome.unwrap()
    assert type(info.value) is ValueError
    assert str(info.value) == "bad input"
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "raise_value_error_in_worker" in cause.tb
    assert "ValueError: bad input" in cause.tb
    notes = getattr(info.value, "__notes__", [])
    assert len(notes) == 1
    assert notes[0].startswith("Remote traceback:")
    assert "raise_value_error_in_worker" in notes[0]


def test_failure_keeps_exception_attributes() -> None:
    with pytest.raises(WithData, match="nope") as info:
        failed_result(WithData("nope", code=42)).unwrap()
    assert info.value.code == 42


def test_each_unwrap_builds_a_fresh_exception() -> None:
    outcome = failed_result(raised(raise_value_error_in_worker, "x"))
    first = raised(outcome.unwrap)
    second = raised(outcome.unwrap)
    assert first is not second
    assert len(getattr(second, "__notes__", [])) == 1


def test_exception_that_cannot_be_unpickled_becomes_task_error() -> None:
    with pytest.raises(TaskError) as info:
        failed_result(NeedsTwo("x", "y")).unwrap()
    err = info.value
    assert err.type_name == f"{__name__}.NeedsTwo"
    assert err.message == "x/y"
    assert str(err) == f"{__name__}.NeedsTwo: x/y"
    assert isinstance(err.__cause__, RemoteTraceback)
    assert isinstance(err, TaskFailed)


def test_exception_that_cannot_be_pickled_becomes_task_error() -> None:
    failure = Failure.from_exception(HoldsLock("locked"))
    assert failure.exception is None
    with pytest.raises(TaskError, match="HoldsLock: locked"):
        decode_result(encode_failure("t", failure)).unwrap()


def test_exception_bytes_that_are_not_an_exception_become_task_error() -> None:
    failure = Failure(FailureKind.ERROR, "pkg.Err", "msg", "tb", b"junk")
    err = failure.to_exception()
    assert isinstance(err, TaskError)
    assert str(err) == "pkg.Err: msg"


def test_max_retries_wraps_the_original() -> None:
    outcome = failed_result(raised(raise_value_error_in_worker, "db gone"), FailureKind.MAX_RETRIES)
    with pytest.raises(MaxRetriesExceeded) as info:
        outcome.unwrap()
    err = info.value
    assert str(err) == "max retries exceeded: db gone"
    original = err.__cause__
    assert isinstance(original, ValueError)
    assert str(original) == "db gone"
    assert isinstance(original.__cause__, RemoteTraceback)
    assert isinstance(err, TaskFailed)


def test_max_retries_with_unrebuildable_original() -> None:
    with pytest.raises(MaxRetriesExceeded, match=r"^max retries exceeded: a/b$") as info:
        failed_result(NeedsTwo("a", "b"), FailureKind.MAX_RETRIES).unwrap()
    assert isinstance(info.value.__cause__, TaskError)


@pytest.mark.parametrize(
    ("kind", "error_type"),
    [
        (FailureKind.CANCELLED, TaskCancelled),
        (FailureKind.TIMEOUT, TaskTimeout),
        (FailureKind.SHUTDOWN, ShuttingDown),
    ],
)
def test_settled_kinds_give_their_errors(kind: str, error_type: type[Exception]) -> None:
    failure = Failure(kind, kind, f"task t-3 {kind}", "")
    outcome = decode_result(encode_failure("t-3", failure))
    with pytest.raises(error_type, match=f"^task t-3 {kind}$") as info:
        outcome.unwrap()
    assert isinstance(info.value, TaskerError)
    assert type(info.value) is error_type


def test_invalid_payload_failure_gives_task_rejected_with_reason() -> None:
    failure = Failure(
        FailureKind.INVALID, "TaskRejected", "task payload rejected: bad signature", ""
    )
    with pytest.raises(TaskRejected, match="bad signature"):
        decode_result(encode_failure("t", failure)).unwrap()


def test_quarantined_failure_gives_task_quarantined() -> None:
    failure = Failure(FailureKind.QUARANTINED, "TaskQuarantined", "taken 5 times", "")
    with pytest.raises(TaskQuarantined, match="taken 5 times"):
        decode_result(encode_failure("t", failure)).unwrap()


def test_failed_record_round_trip_keeps_raw_bytes_and_odd_ids() -> None:
    odd_id = b"\xff\xfegarbage".decode("utf-8", "surrogateescape")
    record = FailedRecord(odd_id, FailureKind.INVALID, "no envelope", b"\x00\x01", 3, 1.5)
    assert FailedRecord.decode(record.encode()) == record
    with pytest.raises(SerializationError):
        FailedRecord.decode(b"garbage")


def test_failure_from_system_exit() -> None:
    failure = Failure.from_exception(SystemExit(3))
    assert failure.type_name == "builtins.SystemExit"
    assert failure.message == "3"
    rebuilt = failure.to_exception()
    assert type(rebuilt) is SystemExit
    assert rebuilt.code == 3


# -- the error tree -------------------------------------------------------------------------


def test_every_error_derives_from_tasker_error() -> None:
    names = [n for n in errors.__all__ if n != "RemoteTraceback"]
    assert len(names) >= 12
    for name in names:
        cls = getattr(errors, name)
        assert issubclass(cls, TaskerError), name


def test_task_failures_derive_from_task_failed() -> None:
    for cls in (TaskError, MaxRetriesExceeded, TaskCancelled, TaskTimeout):
        assert issubclass(cls, TaskFailed)
    assert issubclass(errors.ConfigError, ValueError)


def test_shutting_down_default_message() -> None:
    assert str(ShuttingDown()) == "task manager is shutting down"


def test_remote_traceback_str_shows_the_traceback() -> None:
    assert "line 3" in str(RemoteTraceback('File "x", line 3\n'))
