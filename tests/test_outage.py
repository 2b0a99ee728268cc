"""An outage of Redis longer than a lease (a failover, a restart, a stalled server)
cuts every worker off at once: when Redis is back, every peer's lease looks stale.

Before, the first worker to beat again took its peers for dead and handed their running
tasks to the queue, where they ran a second time. A worker back from an outage now
judges no peer dead until it has been back for a lease plus what a stuck heartbeat may
take (`Lease.grace_s`)."""

from __future__ import annotations

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
