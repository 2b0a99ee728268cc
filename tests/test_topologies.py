"""Every entry point on each topology, through its URL alone: a Sentinel group and a Redis
Cluster started from redis-server (see topology.py); and a daemon pointed at the wrong
kind of server exits 2 saying which URL to write."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from tasker_dist import AsyncProducer, Config, ConfigError, Producer, SpreadProducer, TaskManager
from tasker_dist.spread import sub_queues
from tasker_dist.status import ExitCode

from . import tasks
from .conftest import ChildProcess, run_tasker
from .topology import Cluster, SentinelGroup

ENV = {"TASKER_TEST_WORKERS": "2", "TASKER_TEST_CONNECT_TIMEOUT": "1"}

pytestmark = pytest.mark.slow  # forming the topologies takes about 10 s


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    started = Cluster.start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelGroup]:
    started = SentinelGroup.start()
    yield started
    started.stop()


@pytest.fixture(params=["sentinel", "cluster"])
def url(request: pytest.FixtureRequest) -> str:
    fixture = "sentinels" if request.param == "sentinel" else "cluster"
    topology: Cluster | SentinelGroup = request.getfixturevalue(fixture)
    return topology.url


def test_producers_daemons_and_the_cli_work_through_the_url_alone(
    url: str, start_worker: Callable[..., ChildProcess], queue: str
) -> None:
    start_worker("tests.tasks:config", "--redis-url", url, env=ENV)
    with Producer(url, queue) as producer:
        assert [producer.queue_task(tasks.padded, n, "") for n in range(10)] == list(range(10))
        task_id = producer.enqueue(tasks.sleep_then, 0.2, "later")
        assert producer.result(task_id, timeout=10) == "later"  # told on its done channel
        assert producer.metrics().total_tasks_completed == 11

        async def from_asyncio() -> list[int]:
            async with AsyncProducer(url, queue) as ap:
                return list(await asyncio.gather(*(ap.queue_task(tasks.padded, n, "")
                                                   for n in range(200))))  # fmt: skip

        assert asyncio.run(from_asyncio()) == list(range(200))
    shown = run_tasker("stats", "--redis-url", url, "--queue", queue)
    assert shown.returncode == 0, shown.stderr
    assert "workers                 1 daemon(s)" in shown.stdout


def test_a_task_manager_works_through_the_url_alone(url: str, queue: str) -> None:
    config = Config(on_create=object, redis_url=url, queue=queue, worker_count=2)
    with TaskManager(config) as manager:
        assert manager.queue_task(lambda ctx, r: 6 * 7) == 42


def test_a_daemon_pointed_at_the_wrong_kind_of_server_exits_2_saying_what_to_write(
    cluster: Cluster, sentinels: SentinelGroup, start_worker: Callable[..., ChildProcess]
) -> None:
    single = sentinels.master().url
    cases = {
        cluster.nodes[0].url: "is a node of a Redis Cluster: use redis+cluster://",
        single.replace("redis://", "redis+cluster://"): "is not a Redis Cluster node",
        single.replace("redis://", "redis+sentinel://") + "/tasker": "is not a Redis Sentinel",
        sentinels.replicas()[0].url: "is a read-only replica (of 127.0.0.1:",
    }
    for wrong, says in cases.items():
        daemon = start_worker("tests.tasks:config", "--redis-url", wrong, env=ENV)
        assert daemon.wait(30) == ExitCode.BAD_CONFIG, daemon.output()
        assert says in daemon.output()


def test_a_producer_pointed_at_a_cluster_node_hears_which_url_to_write(
    cluster: Cluster, queue: str
) -> None:
    # a node that does not own the queue's slot answers MOVED
    owner = cluster.master_for(f"tasker:{{{queue}}}")
    other = next(n for n in cluster.nodes if n.alive and n is not owner)
    with Producer(other.url, queue) as producer, pytest.raises(
        ConfigError, match=r"is a node of a Redis Cluster \(it sent the command to another "
    ):  # fmt: skip
        producer.enqueue(tasks.padded, 1, "")


def test_a_queue_spread_over_three_sub_queues_uses_every_master_of_the_cluster(
    cluster: Cluster, start_worker: Callable[..., ChildProcess], queue: str
) -> None:
    subs = sub_queues(queue, 3)
    masters = {cluster.master_for(f"tasker:{{{sub}}}:pending").port for sub in subs}
    assert len(masters) == 3  # one sub-queue on each master
    start_worker("tests.tasks:config", "--redis-url", cluster.url, "--spread", "3", env=ENV)
    with SpreadProducer(cluster.url, queue, spread=3) as producer:
        futures = [producer.queue_task_async(tasks.padded, n, "") for n in range(300)]
        assert [f.result(60) for f in futures] == list(range(300))
        assert producer.metrics().total_tasks_completed == 300
        assert len(producer.stats().workers) == 1
    for sub in subs:  # each master ran its share
        with Producer(cluster.url, sub) as each:
            assert each.metrics().total_tasks_completed == 100
