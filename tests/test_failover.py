"""A master killed in the middle of a run, on the real engines: a Sentinel group (master,
replica, 3 sentinels) and a Redis Cluster (3 masters, 3 replicas), each started here
from the redis-server binary. Two `tasker-worker` daemons and a producer reach Redis only
through the URL (``redis+sentinel://`` or ``redis+cluster://``), and must ride out the
failover: every caller gets its result, no task is lost.

What asynchronous replication may cost is measured, not asserted: a completion the old
master had not yet sent to its replica is undone by the failover, so that task runs
again (``run_twice``). Each figure is appended to $TASKER_FAILOVER_FIGURES if set (the
README quotes them), and $TASKER_FAILOVER_RUNS repeats each test (1 by default)."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from tasker_dist import Producer, RedisUnavailable
from tasker_dist.store.clients import close as close_client
from tasker_dist.store.clients import connect
from tasker_dist.store.subscription import Subscription

from . import tasks
from .conftest import ChildProcess, report, wait_until
from .topology import Cluster, SentinelGroup

TASKS = 2000
KILL_AFTER = 300  # results in before the master is killed
ENV = {"TASKER_TEST_WORKERS": "4", "TASKER_TEST_HEARTBEAT": "0.2",
       "TASKER_TEST_CONNECT_TIMEOUT": "1", "TASKER_TEST_HUNG_AFTER": "10"}  # fmt: skip
RUNS = range(int(os.environ.get("TASKER_FAILOVER_RUNS", "1")))

pytestmark = pytest.mark.slow


@pytest.fixture
def sentinel_group() -> Iterator[SentinelGroup]:
    group = SentinelGroup.start()
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture
def redis_cluster() -> Iterator[Cluster]:
    cluster = Cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _runs(ledger: Path) -> dict[int, int]:
    runs: dict[int, int] = defaultdict(int)
    if ledger.exists():
        for line in ledger.read_text().splitlines():
            runs[int(line.split()[0])] += 1
    return runs


def _master_killed_mid_run(
    url: str,
    kill_master: Callable[[], object],
    start_worker: Callable[..., ChildProcess],
    queue: str,
    tmp_path: Path,
    topology: str,
) -> None:
    """Queue TASKS tasks (callers waiting on each), half before the master is killed and
    half while it fails over (each retried, as a user would, while Redis is away)."""
    ledger = tmp_path / "ledger"
    for _ in range(2):
        start_worker("tests.tasks:config", "--redis-url", url, env=ENV)
    done_at: list[float] = []
    futures: dict[int, Future[int]] = {}
    refused = 0
    with Producer(url, queue, connect_timeout=1) as producer:
        wait_until(lambda: len(producer.stats().workers) == 2, timeout=30, message="2 daemons")

        def submit(n: int) -> None:
            nonlocal refused
            while True:
                try:
                    future = producer.queue_task_async(tasks.ledger_task, str(ledger), n, 0.005)
                    break
                except RedisUnavailable:  # the failover: the caller tries again
                    refused += 1
                    time.sleep(0.05)
            future.add_done_callback(lambda _: done_at.append(time.monotonic()))
            futures[n] = future

        for n in range(TASKS // 2):
            submit(n)
        wait_until(lambda: len(done_at) >= KILL_AFTER, timeout=60, message="results to come")
        killed_at = time.monotonic()
        kill_master()
        for n in range(TASKS // 2, TASKS):
            submit(n)
        wait_until(lambda: all(f.done() for f in futures.values()), timeout=120,
                   message="every caller to hear")  # fmt: skip
        failed = {n: repr(f.exception()) for n, f in futures.items() if f.exception()}
        runs = _runs(ledger)
        after = sorted(t for t in done_at if t >= killed_at)
        gaps = [b - a for a, b in zip([killed_at, *after], after, strict=False)]
        figures = {
            "topology": topology,
            "tasks": TASKS,
            "lost": sum(1 for n in range(TASKS) if runs[n] == 0),
            "run_twice": sum(1 for n in range(TASKS) if runs[n] > 1),
            "callers_failed": len(failed),
            "callers_waiting": sum(1 for f in futures.values() if not f.done()),
            "enqueues_refused_then_retried": refused,
            "seconds_without_results": round(max(gaps, default=0.0), 2),
        }
        report("TASKER_FAILOVER_FIGURES", figures)
        print(figures)
        assert failed == {}
        assert [futures[n].result() for n in range(TASKS)] == list(range(TASKS))
        assert figures["lost"] == 0


@pytest.mark.parametrize("run", RUNS)
def test_a_sentinel_failover_mid_run_loses_nothing(
    run: int,
    sentinel_group: SentinelGroup,
    start_worker: Callable[..., ChildProcess],
    queue: str,
    tmp_path: Path,
) -> None:
    _master_killed_mid_run(sentinel_group.url, sentinel_group.kill_master, start_worker,
                           queue, tmp_path, "sentinel")  # fmt: skip


@pytest.mark.parametrize("run", RUNS)
def test_a_cluster_failover_mid_run_loses_nothing(
    run: int,
    redis_cluster: Cluster,
    start_worker: Callable[..., ChildProcess],
    queue: str,
    tmp_path: Path,
) -> None:
    def kill_master() -> None:
        redis_cluster.kill(redis_cluster.master_for(f"tasker:{{{queue}}}"))

    _master_killed_mid_run(redis_cluster.url, kill_master, start_worker, queue, tmp_path,
                           "cluster")  # fmt: skip


def test_the_result_listener_subscribes_on_the_new_master_after_a_sentinel_failover(
    sentinel_group: SentinelGroup,
) -> None:
    """redis-py reconnects a pub/sub connection to the server it had, even one Sentinel
    manages (it asks the sentinels again only for a connection taken from the pool): after
    a failover, every subscription the result listener made went to the dead master, for
    good, and its callers waited forever (1 failover test in about 8)."""
    url = sentinel_group.url
    client = connect(url, 1.0)
    subscription = Subscription(client, url, 1.0, "{q}")
    try:

        def confirmed(channel: str) -> bool:
            try:
                message = subscription.get_message(timeout=1.0)
            except RedisUnavailable:  # the listener reads again, subscribing afresh
                return False
            return message is not None and message[:2] == ("subscribe", channel)

        subscription.subscribe("{q}:before")
        wait_until(lambda: confirmed("{q}:before"), message="the first subscription")
        sentinel_group.wait_failover(sentinel_group.kill_master())

        def subscribed() -> bool:
            try:
                subscription.subscribe("{q}:after")
            except RedisUnavailable:  # the listener tries again, as here
                return False
            return True

        wait_until(subscribed, timeout=20, interval=0.1, message="a subscription to go through")
        wait_until(lambda: confirmed("{q}:after"), message="the new master to confirm it")
        with sentinel_group.master().client() as master:
            assert master.publish("{q}:after", b"heard") == 1
        heard: list[object] = []

        def published() -> bool:  # past the confirmations of the subscriptions made again
            message = subscription.get_message(timeout=1.0)
            if message is not None and message.kind == "message":
                heard.append(message)
            return bool(heard)

        wait_until(published, message="the message published on the new master")
        assert heard == [("message", "{q}:after", b"heard")]
    finally:
        subscription.close()
        close_client(client)
