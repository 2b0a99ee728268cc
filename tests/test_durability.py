"""``wait_replicas``: a task counts as queued, and a result is published, only once that
many replicas have it (Redis WAIT), so an acknowledged task or a published result
survives a failover to a replica. Real master and replica servers."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
import redis

from tasker_dist import AsyncProducer, NotReplicated, Producer
from tasker_dist.store.embedded_server import EmbeddedServer

from . import tasks
from .conftest import ChildProcess, wait_until

ENV = {"TASKER_TEST_WORKERS": "2", "TASKER_TEST_CONNECT_TIMEOUT": "1",
       "TASKER_TEST_HUNG_AFTER": "10"}  # fmt: skip


@pytest.fixture
def replicated() -> Iterator[tuple[EmbeddedServer, EmbeddedServer]]:
    """A master and one replica of it."""
    master = EmbeddedServer.start()
    port = str(urlsplit(master.url).port)
    replica = EmbeddedServer.start(("--replicaof", "127.0.0.1", port))
    try:
        client = redis.Redis.from_url(master.url)
        wait_until(lambda: client.info("replication")["connected_slaves"] == 1
                   and client.info("replication")["slave0"]["state"] == "online",
                   message="the replica to sync")  # fmt: skip
        client.close()
        yield master, replica
    finally:
        replica.stop()
        master.stop()


def test_with_a_replica_up_tasks_and_results_wait_for_it_and_arrive(
    replicated: tuple[EmbeddedServer, EmbeddedServer],
    start_worker: Callable[..., ChildProcess],
    queue: str,
) -> None:
    master, replica = replicated
    env = {**ENV, "TASKER_TEST_WAIT_REPLICAS": "1"}
    start_worker("tests.tasks:config", "--redis-url", master.url, env=env)
    on_replica = redis.Redis.from_url(replica.url)
    with Producer(master.url, queue, wait_replicas=1, connect_timeout=1) as producer:
        stamp = producer.enqueue(tasks.sleep_then, 0.0, "x")
        # acknowledged: the replica has it (or had it, once the task ran meanwhile)
        assert on_replica.hexists(f"tasker:{{{queue}}}:tasks", stamp) or on_replica.exists(
            f"tasker:{{{queue}}}:result:{stamp}"
        )
        assert producer.result(stamp, timeout=10) == "x"  # a done channel, published late
        assert [producer.queue_task(tasks.padded, n, "") for n in range(20)] == list(range(20))

        async def from_asyncio() -> list[int]:
            async with AsyncProducer(master.url, queue, wait_replicas=1) as ap:
                return list(await asyncio.gather(*(ap.queue_task(tasks.padded, n, "")
                                                   for n in range(50))))  # fmt: skip

        assert asyncio.run(from_asyncio()) == list(range(50))
    on_replica.close()


def test_without_the_replica_producers_hear_not_replicated_and_callers_still_get_results(
    replicated: tuple[EmbeddedServer, EmbeddedServer],
    start_worker: Callable[..., ChildProcess],
    queue: str,
) -> None:
    master, replica = replicated
    env = {**ENV, "TASKER_TEST_WAIT_REPLICAS": "1"}
    start_worker("tests.tasks:config", "--redis-url", master.url, env=env)
    with Producer(master.url, queue, connect_timeout=1) as plain, \
            Producer(master.url, queue, wait_replicas=1, connect_timeout=1) as careful:  # fmt: skip
        os.kill(replica.process.pid, signal.SIGSTOP)  # the replica stops acknowledging
        try:
            started = time.monotonic()
            with pytest.raises(NotReplicated, match=r"only 0 of 1 replica\(s\) confirmed"):
                careful.enqueue(tasks.padded, 1, "")
            assert time.monotonic() - started < 5  # within connect_timeout, not forever
            # the worker publishes after its own wait: the caller is not left waiting
            assert plain.queue_task(tasks.padded, 2, "") == 2
            assert plain.metrics().total_tasks_completed == 2  # the NotReplicated one ran too
        finally:
            os.kill(replica.process.pid, signal.SIGCONT)
