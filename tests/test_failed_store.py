"""`tasker failed list|show|retry|purge` against a real worker and Redis (SPEC §7)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tasker_dist import MaxRetriesExceeded, Producer, TaskRejected
from tasker_dist.store.keys import QueueKeys
from tasker_dist.wire import new_task_id
from tasker_dist.wire.signing import Signer

from . import tasks
from .conftest import ChildProcess, run_tasker


def _tasker(redis_url: str, queue: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_tasker("failed", *args, "--redis-url", redis_url, "--queue", queue)


def test_list_show_retry_and_purge(
    start_worker: Callable[..., ChildProcess], producer: Producer, raw_redis: redis.Redis,
    redis_url: str, queue: str, tmp_path: Path,
) -> None:  # fmt: skip
    start_worker(env={"TASKER_TEST_MAX_RETRIES": "0"})
    marker = str(tmp_path / "broke-once")
    out_of_retries = producer.queue_task_async(tasks.unhealthy_once, marker)
    with pytest.raises(MaxRetriesExceeded):
        out_of_retries.result(15)
    forged = new_task_id()
    keys = QueueKeys(queue)
    raw_redis.hset(keys.tasks, forged, Signer(b"a-wrong-secret-!" * 2, queue=queue).seal(b"\x90"))
    raw_redis.lpush(keys.pending, forged)
    raw_redis.lpush(keys.signal, 1)  # wake the worker, as a producer's enqueue does
    with pytest.raises(TaskRejected, match="signature did not verify"):
        producer.result(forged, timeout=15)

    listing = _tasker(redis_url, queue, "list", "--json")
    assert listing.returncode == 0, listing.stderr
    rows = {row["task_id"]: row for row in json.loads(listing.stdout)}
    assert set(rows) == {out_of_retries.task_id, forged}
    assert rows[out_of_retries.task_id]["kind"] == "max_retries"
    assert rows[out_of_retries.task_id]["retryable"] == "yes"
    assert rows[forged]["retryable"].startswith("no: signature did not verify")

    shown = _tasker(redis_url, queue, "show", out_of_retries.task_id)
    assert "first run breaks the resource" in shown.stdout

    refused = _tasker(redis_url, queue, "retry", forged)
    assert refused.returncode == 1
    assert "cannot be retried: signature did not verify" in refused.stdout

    retried = _tasker(redis_url, queue, "retry", out_of_retries.task_id)
    assert retried.returncode == 0, retried.stdout
    assert "queued 1 task(s) again" in retried.stdout
    assert producer.result(out_of_retries.task_id, timeout=15) == "fine now"

    purged = _tasker(redis_url, queue, "purge", "--all")
    assert "purged 1 task(s)" in purged.stdout
    assert json.loads(_tasker(redis_url, queue, "list", "--json").stdout) == []
