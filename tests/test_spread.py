"""One logical queue spread over sub-queues: `SpreadProducer`, ``tasker-worker --spread``,
``Config.spread``; the names, the order a worker visits them in, the merged stats; real
daemons on a real server (the Redis Cluster run is in test_topologies.py)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.crc import key_slot

from tasker_dist import AsyncProducer, Config, ConfigError, Producer, SpreadProducer, TaskManager
from tasker_dist.metrics import RawCluster, build_metrics, build_stats, merge_raw
from tasker_dist.spread import MAX_SPREAD, sub_queues
from tasker_dist.store import QueueKeys
from tasker_dist.worker.served import ServedQueues

from . import tasks
from .conftest import ChildProcess, run_tasker, wait_until
from .served_queues import served_queue

SLOTS = 16384


# -- names ----------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 3, 4, 5, 7, 16, 64, MAX_SPREAD])
@pytest.mark.parametrize("name", ["jobs", "default", "t-0123456789ab", "a:b.c-d_e"])
def test_each_sub_queue_falls_in_its_own_equal_range_of_the_cluster_slots(
    name: str, count: int
) -> None:
    names = sub_queues(name, count)
    assert len(set(names)) == count
    for i, sub in enumerate(names):
        assert sub.startswith(f"{name}:{i}")
        slot = key_slot(f"tasker:{{{sub}}}:pending".encode())  # redis-py's slot, as keys are
        assert i * SLOTS // count <= slot < (i + 1) * SLOTS // count, (sub, slot)
    assert sub_queues(name, count) == names  # every producer and daemon finds the same


def test_a_queue_spread_over_one_is_itself() -> None:
    assert sub_queues("jobs", 1) == ("jobs",)
    assert Config(on_create=object, queue="jobs").served_queues == ("jobs",)


@pytest.mark.parametrize("spread", [0, -1, MAX_SPREAD + 1, 2.0, True])
def test_a_spread_out_of_range_is_refused_naming_it(spread: object) -> None:
    with pytest.raises(ConfigError, match="spread"):
        Config(on_create=object, spread=spread)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="spread"):
        SpreadProducer("redis://127.0.0.1:1", "jobs", spread=spread)  # type: ignore[arg-type]


def test_a_queue_name_too_long_for_its_sub_queues_is_refused_naming_the_sub_queue() -> None:
    with pytest.raises(ConfigError, match=r"sub-queue.*'x{128}:0"):
        Config(on_create=object, queue="x" * 128, spread=2)
    with pytest.raises(ConfigError, match=r"sub-queue.*'x{128}:0"):
        SpreadProducer("redis://127.0.0.1:1", "x" * 128, spread=2)


def test_config_serves_each_queue_as_its_sub_queues_with_its_weight() -> None:
    config = Config(on_create=object, queues=(("a", 3), "b"), spread=2)
    assert config.served_queues == (*sub_queues("a", 2), *sub_queues("b", 2))
    assert config.queue_weights == (3, 3, 1, 1)
    assert Config(on_create=object, queues=("a", "b"), spread=2).queue_weights is None


def test_a_task_manager_refuses_a_spread_queue() -> None:
    with pytest.raises(ConfigError, match="spread queues are for tasker-worker daemons"):
        TaskManager(Config(on_create=object, spread=2))


# -- the order a worker visits them in --------------------------------------------------


def test_in_strict_order_the_sub_queues_of_a_queue_take_turns_and_share_its_place() -> None:
    names = ["a:0", "a:1", "a:2", "b:0", "b:1", "b:2"]
    served = ServedQueues([served_queue(n) for n in names], weighted=False, spread=3)
    orders = [[q.name for q in served.order()] for _ in range(6)]
    firsts = [order[0] for order in orders]
    assert firsts == ["a:0", "a:1", "a:2", "a:0", "a:1", "a:2"]  # each comes first in turn
    for order in orders:  # and the sub-queues of `a` always come before those of `b`
        assert sorted(order[:3]) == names[:3]
        assert sorted(order[3:]) == names[3:]
    assert [q.band for q in served.all] == [0, 0, 0, 2, 2, 2]
    assert served.bands == 4
    assert "the sub-queues of each taking turns" in served.describe()


# -- stats of the sub-queues together ---------------------------------------------------


def _raw(running: str, counters: dict[str, int], used: int, limit: int, queued: int) -> RawCluster:
    daemon = {"host": "h", "pid": "7", "base": "4", "active": "4", "running": running}
    return RawCluster(now_ms=1000, queued=queued, priority=1, workers=[("w1", daemon)],
                      counters=counters, buckets={3: 2}, rates={"c:1": 5},
                      memory_used=used, memory_limit=limit,
                      eviction_policy="noeviction")  # fmt: skip


def test_merged_stats_count_a_daemon_once_and_add_up_what_each_sub_queue_has() -> None:
    one = _raw("2", {"completed": 10, "executions": 10, "exec_min_us": 5, "exec_max_us": 50},
               used=10, limit=100, queued=3)  # fmt: skip
    two = _raw("1", {"completed": 4, "executions": 4, "exec_min_us": 2, "exec_max_us": 90},
               used=99, limit=100, queued=4)  # fmt: skip
    idle = _raw("0", {"exec_min_us": 0}, used=0, limit=100, queued=0)  # nothing ran there yet
    merged = merge_raw([one, two, idle])
    stats, metrics = build_stats(merged), build_metrics(merged)
    assert len(stats.workers) == 1
    assert stats.base_workers == 4
    assert stats.running_tasks == 3  # the tasks it runs of each sub-queue
    assert stats.queued_tasks == 7
    assert stats.priority_tasks == 3
    assert stats.redis_full  # the fullest server is shown: it refuses tasks first
    assert metrics.total_tasks_completed == 14
    assert metrics.min_execution_time == 2e-6
    assert metrics.max_execution_time == 90e-6


# -- real daemons on a real server ------------------------------------------------------


@pytest.fixture
def spread_producer(redis_url: str, queue: str) -> Iterator[SpreadProducer]:
    with SpreadProducer(redis_url, queue, spread=3) as p:
        yield p


def test_a_daemon_with_the_same_spread_serves_every_sub_queue_a_producer_spreads_over(
    start_worker: Callable[..., ChildProcess], spread_producer: SpreadProducer, redis_url: str,
    queue: str,
) -> None:  # fmt: skip
    daemon = start_worker("tests.tasks:config", "--spread", "3")
    futures = [spread_producer.queue_task_async(tasks.padded, n, "") for n in range(30)]
    assert [f.result(30) for f in futures] == list(range(30))
    for sub in sub_queues(queue, 3):  # one task in three on each, in turn
        with Producer(redis_url, sub) as each:
            assert each.metrics().total_tasks_completed == 10
    ids = spread_producer.enqueue_many(tasks.padded, [(n, "") for n in range(2500)], chunk=1000)
    assert [spread_producer.result(i, timeout=30) for i in ids[::250]] == list(range(0, 2500, 250))
    wait_until(lambda: spread_producer.metrics().total_tasks_completed == 2530, timeout=60,
               message="every task of the spread queue")  # fmt: skip
    stats = spread_producer.stats()
    assert [w.pid for w in stats.workers] == list(daemon.worker_pids())  # counted once
    assert stats.queued_tasks == 0
    assert "the sub-queues of each taking turns" in daemon.output()

    shown = run_tasker("stats", "--redis-url", redis_url, "--queue", queue, "--spread", "3")
    assert shown.returncode == 0, shown.stderr
    assert "workers                 1 daemon(s)" in shown.stdout
    stopped = run_tasker("stop", "--redis-url", redis_url, "--queue", queue, "--spread", "3")
    assert stopped.returncode == 0, stopped.stderr
    assert daemon.wait(30) == 0


def test_a_task_id_is_found_on_whichever_sub_queue_has_it(
    start_worker: Callable[..., ChildProcess], spread_producer: SpreadProducer, redis_url: str
) -> None:
    ids = [spread_producer.enqueue(tasks.padded, n, "") for n in range(6)]  # none served yet
    start_worker("tests.tasks:config", "--spread", "3")
    assert [spread_producer.result(i, timeout=30) for i in ids] == list(range(6))
    with pytest.raises(Exception, match="no task nope was ever queued"):
        spread_producer.result("nope", timeout=1)


@pytest.mark.parametrize("bad", ["0", "257", "x"])
def test_a_daemon_with_a_bad_spread_exits_2_naming_it(
    start_worker: Callable[..., ChildProcess], bad: str
) -> None:
    daemon = start_worker("tests.tasks:config", "--spread", bad)
    assert daemon.wait(30) == 2
    assert "spread" in daemon.output()


def test_a_producer_spreading_a_queue_otherwise_than_its_daemons_is_told_and_queues_nothing(
    start_worker: Callable[..., ChildProcess], redis_url: str, queue: str, raw_redis: redis.Redis
) -> None:
    daemon = start_worker("tests.tasks:config", "--spread", "3")
    said = QueueKeys(queue).control
    wait_until(lambda: raw_redis.hget(said, "spread") == b"3", timeout=15, message="the daemon")
    with Producer(redis_url, queue) as plain:
        told = "served spread over 3 sub-queue\\(s\\) .*this producer spreads it over"
        with pytest.raises(ConfigError, match=told + " 1"):
            plain.queue_task(tasks.padded, 1, "")
        with pytest.raises(ConfigError, match=told + " 1"):
            plain.enqueue_many(tasks.padded, [(1, "")])
        assert plain.stats().queued_tasks == 0  # nothing left where nobody serves
    with (
        SpreadProducer(redis_url, queue, spread=2) as two,
        pytest.raises(ConfigError, match=told + " 2"),
    ):
        two.enqueue(tasks.padded, 1, "")

    async def from_asyncio() -> None:
        async with AsyncProducer(redis_url, queue) as ap:
            with pytest.raises(ConfigError, match=told + " 1"):
                await ap.queue_task(tasks.padded, 1, "")

    asyncio.run(from_asyncio())
    with SpreadProducer(redis_url, queue, spread=3) as three:
        assert three.queue_task(tasks.padded, 7, "") == 7
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(30) == 0

    again = start_worker("tests.tasks:config", "--spread", "2")
    wait_until(lambda: "now 2" in again.output(), timeout=15, message="the warning")
    assert "was served spread over 3 sub-queue(s), now 2" in again.output()
