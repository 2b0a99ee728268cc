"""Garbage, forged and deadly payloads against a real `tasker-worker` (SPEC §7).

None of them ever runs (the canary file is never written); each is kept in the failed
store with its raw bytes and the reason; a caller waiting for it gets an error saying
why; the worker lives on and the next valid task runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
import redis

from tasker_dist import Producer, TaskQuarantined, TaskRejected
from tasker_dist.client.submission import Options, build_task
from tasker_dist.store.keys import QueueKeys
from tasker_dist.wire import new_task_id
from tasker_dist.wire.envelope import FailedRecord
from tasker_dist.wire.signing import Signer

from . import tasks
from .conftest import TEST_SECRET, ChildProcess, wait_until


def _good(queue: str) -> Signer:
    return Signer(TEST_SECRET.encode(), queue=queue)


def _push(
    raw_redis: redis.Redis, queue: str, task_id: bytes, frame: bytes | None, *, wake: bool = True
) -> None:
    """What an attacker (or a bug elsewhere) with write access to Redis could do; with
    ``wake``, the token a producer's enqueue pushes so that a blocked worker fetches now."""
    keys = QueueKeys(queue)
    if frame is not None:
        raw_redis.hset(keys.tasks, task_id, frame)
    raw_redis.lpush(keys.pending, task_id)
    if wake:
        raw_redis.lpush(keys.signal, 1)


def _canary_frame(canary: Path, signer: Signer) -> tuple[str, bytes]:
    task = build_task(tasks.write_canary, (str(canary),), {}, Options(), None, signer)
    return task.task_id, task.payload


def _cases(canary: Path, queue: str) -> dict[str, tuple[bytes, str]]:
    """name -> (frame as stored, the reason the caller must be told)."""
    good = _good(queue)
    valid = good.open(_canary_frame(canary, good)[1])
    fields = msgpack.unpackb(valid)
    return {
        "random bytes": (b"\x8f\x13\xfe" * 40, "not a tasker-dist payload"),
        "forged signature": (_canary_frame(canary, Signer(b"not-the-secret-" * 2, queue=queue))[1],
                             "signature did not verify"),
        "signed for another queue": (_canary_frame(canary, _good(queue + "-other"))[1],
                                     "signed for another queue"),
        "unsigned": (Signer(None, allow_unsigned=True, queue=queue).seal(valid),
                     "unsigned payload refused"),
        "truncated msgpack": (good.seal(valid[: len(valid) // 2]), "not msgpack"),
        "map of the wrong shape": (good.seal(msgpack.packb({"fn": "x", "args": []})),
                                   "not an envelope"),
        "unknown version": (good.seal(msgpack.packb([99, *fields[1:]])),
                            "unknown task envelope version 99"),
        "envelope of another id": (good.seal(valid), "stored under another id"),
    }  # fmt: skip


def test_garbage_and_forgeries_never_run(
    start_worker: Callable[..., ChildProcess], producer: Producer, raw_redis: redis.Redis,
    queue: str, tmp_path: Path,
) -> None:  # fmt: skip
    daemon = start_worker()
    canary = tmp_path / "canary"
    keys = QueueKeys(queue)
    for name, (frame, reason) in _cases(canary, queue).items():
        task_id = new_task_id()
        _push(raw_redis, queue, task_id.encode(), frame)
        with pytest.raises(TaskRejected, match=reason):
            producer.result(task_id, timeout=15)
        record = FailedRecord.decode(raw_redis.hget(keys.failed, task_id) or b"")
        assert record.payload == frame, name
        assert reason in record.reason, name
        assert not canary.exists(), name
    # a bare id of random bytes with no envelope at all, pushed without the wake-up
    # token: the worker finds it anyway once its blocking read times out
    odd = b"\xff\xfe\x00garbage-id"
    _push(raw_redis, queue, odd, None, wake=False)
    wait_until(lambda: raw_redis.hexists(keys.failed, odd), message="the garbage id kept")
    record = FailedRecord.decode(raw_redis.hget(keys.failed, odd) or b"")
    assert record.payload == odd
    assert "no task is stored under this id" in record.reason
    # nothing ran, the worker is alive, and a valid task runs
    assert not canary.exists()
    assert daemon.proc.poll() is None
    assert producer.queue_task(tasks.write_canary, str(canary)) == "canary"
    assert canary.read_text() == "ran"
    assert producer.metrics().total_tasks_failed == len(_cases(canary, queue)) + 1


def test_a_task_that_keeps_killing_its_worker_is_quarantined(
    start_worker: Callable[..., ChildProcess], producer: Producer, raw_redis: redis.Redis,
    queue: str,
) -> None:  # fmt: skip
    daemon = start_worker(env={"TASKER_TEST_WORKERS": "1", "TASKER_TEST_MAX_DELIVERIES": "2"})
    future = producer.queue_task_async(tasks.always_crash)
    with pytest.raises(TaskQuarantined, match="taken 2 times without finishing"):
        future.result(60)
    record = FailedRecord.decode(raw_redis.hget(QueueKeys(queue).failed, future.task_id) or b"")
    assert record.kind == "quarantined"
    assert record.deliveries == 3
    assert daemon.output().count("died (exit code 11)") == 2
    assert producer.queue_task(lambda ctx, r: "still serving") == "still serving"
    assert daemon.proc.poll() is None
