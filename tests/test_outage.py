"""An outage of Redis longer than a lease (a failover, a restart, a stalled server)
cuts every worker off at once: when Redis is back, every peer's lease looks stale.

Before, the first worker to beat again took its peers for dead and handed their running
tasks to the queue, where they ran a second time. A worker back from an outage now
judges no peer dead until it has been back for a lease plus what a stuck heartbeat may
take (`Lease.grace_s`)."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import redis

from tasker_dist import Producer
from tasker_dist.store.keys import QueueKeys

from . import tasks
from .conftest import ChildProcess, wait_until
from .redis_proxy import RedisProxy

# 2 s leases; a heartbeat gives up on a silent Redis after 2 x 0.6 s.
ENV = {"TASKER_TEST_WORKERS": "3", "TASKER_TEST_HEARTBEAT": "0.2",
       "TASKER_TEST_CONNECT_TIMEOUT": "0.6", "TASKER_TEST_HUNG_AFTER": "10"}  # fmt: skip


def _runs(ledger: Path) -> dict[int, int]:
    runs: dict[int, int] = defaultdict(int)
    if ledger.exists():
        for line in ledger.read_text().splitlines():
            runs[int(line.split()[0])] += 1
    return runs


def test_peers_back_from_an_outage_at_different_times_run_no_task_twice(
    start_worker: Callable[..., ChildProcess], redis_url: str, queue: str, tmp_path: Path
) -> None:
    """Two daemons cut off from Redis for twice their lease, as by a failover: one gets
    back a second before the other (its host reconnects later). Before, the first back
    took the other for dead and its 3 running tasks ran again."""
    ledger = tmp_path / "ledger"
    with RedisProxy(redis_url) as first, RedisProxy(redis_url) as second, \
            Producer(redis_url, queue) as producer:  # fmt: skip
        for proxy in (first, second):
            start_worker("tests.tasks:config", "--redis-url", proxy.url, env=ENV)
        client = redis.Redis.from_url(redis_url)
        wait_until(lambda: client.zcard(QueueKeys(queue).workers) == 2, message="2 daemons")
        client.close()
        futures = [producer.queue_task_async(tasks.ledger_task, str(ledger), n, 6.0)
                   for n in range(6)]  # fmt: skip
        wait_until(lambda: len(_runs(ledger)) == 6, message="every task to start")
        first.partition()
        second.partition()
        time.sleep(4.0)  # the fault itself: twice a lease without Redis
        first.heal()
        time.sleep(1.0)  # the second host is a second slower to get back
        second.heal()
        assert [f.result(60) for f in futures] == list(range(6))
        assert _runs(ledger) == dict.fromkeys(range(6), 1)


_HELD_BACK = re.compile(r"writing \d+ results failed .*; retrying in (\d+\.\d+)s")


def test_a_result_held_back_by_an_outage_is_written_once_redis_is_back_not_after_the_backoff(
    start_worker: Callable[..., ChildProcess], redis_url: str, queue: str, tmp_path: Path
) -> None:
    """A task ends while its daemon is cut off from Redis: the write of its result fails
    and is retried with a backoff that grows to seconds. Before, once Redis was back the
    caller still waited for the backoff to run out; now the first heartbeat that gets
    through has the write tried at once."""
    ledger = tmp_path / "ledger"
    with RedisProxy(redis_url) as proxy, Producer(redis_url, queue) as producer:
        daemon = start_worker("tests.tasks:config", "--redis-url", proxy.url,
                              env={**ENV, "TASKER_TEST_WORKERS": "1"})  # fmt: skip
        future = producer.queue_task_async(tasks.ledger_task, str(ledger), 7, 0.5)
        wait_until(lambda: len(_runs(ledger)) == 1, message="the task to start")
        proxy.partition()  # the task ends in the outage: its result cannot be written

        def backoff() -> float:  # the longest wait the completer has begun
            delays = [float(d) for d in _HELD_BACK.findall(daemon.output())]
            return max(delays, default=0.0)

        # At its cap (5 s +/- 20 %) the backoff has at least 4 s to run.
        wait_until(lambda: backoff() >= 4.0, timeout=60, interval=0.02,
                   message="the completer's backoff to reach seconds")  # fmt: skip
        proxy.heal()
        # Its wait began before we read the log line: it runs out >= 4 s - a poll from now.
        assert future.result(timeout=3.0) == 7, "the result waited for the backoff"
        assert _runs(ledger) == {7: 1}
