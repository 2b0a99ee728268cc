"""Liveness of worker processes comes from their supervisor, which never runs user code.

A task that holds the interpreter lock (one long C call) starves the heartbeat thread of
its own process. Before, other daemons then took the whole process for dead after its
lease (about 2 s here) and ran its tasks again while the originals still ran; after a
few rounds a healthy task was quarantined. The supervisor now renews the leases of its
living processes, and replaces a process only when it is hung by the documented rule
(heartbeat silent for ``hung_after`` seconds while using almost no CPU).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import redis

from tasker_dist import Producer
from tasker_dist.store.keys import QueueKeys

from . import tasks
from .conftest import ChildProcess, wait_until

ENV = {"TASKER_TEST_WORKERS": "2", "TASKER_TEST_HEARTBEAT": "0.2"}  # a lease of 2 s


def _runs(ledger: Path) -> dict[int, int]:
    runs: dict[int, int] = defaultdict(int)
    if ledger.exists():
        for line in ledger.read_text().splitlines():
            runs[int(line.split()[0])] += 1
    return runs


def test_a_task_holding_the_interpreter_lock_past_its_lease_runs_once(
    start_worker: Callable[..., ChildProcess], producer: Producer, raw_redis: redis.Redis,
    queue: str, tmp_path: Path,
) -> None:  # fmt: skip
    ledger = tmp_path / "ledger"
    for _ in range(2):
        start_worker(env=ENV)
    wait_until(lambda: raw_redis.zcard(QueueKeys(queue).workers) == 2, message="2 daemons")
    hog = producer.queue_task_async(tasks.hold_the_gil, str(ledger), 0, 12.0)
    wait_until(lambda: _runs(ledger)[0] == 1, message="the hog to start")
    others = [producer.queue_task_async(tasks.ledger_task, str(ledger), n, 0.05)
              for n in range(1, 41)]  # fmt: skip
    held = hog.result(90)
    assert held > 2 * 2.0  # it did starve its process well past its lease
    assert [f.result(30) for f in others] == list(range(1, 41))
    assert _runs(ledger) == dict.fromkeys(range(41), 1)  # nothing ran twice
    assert producer.metrics().total_tasks_failed == 0


def test_a_hung_worker_process_is_replaced_and_its_task_handed_back(
    start_worker: Callable[..., ChildProcess], producer: Producer, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    # hung_after must exceed what a heartbeat waiting on a silent Redis may take
    env = {**ENV, "TASKER_TEST_HUNG_AFTER": "3", "TASKER_TEST_CONNECT_TIMEOUT": "0.6"}
    daemon = start_worker("tests.tasks:config", env=env)
    result = producer.queue_task(tasks.hang_once, str(ledger), 0, str(tmp_path / "hung"))
    assert result == "ran again"
    assert _runs(ledger) == {0: 2}
    assert "hung" in daemon.output()
