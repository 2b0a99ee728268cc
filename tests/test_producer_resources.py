"""What a producer costs its process and Redis: CPU while idle, connections under many
concurrent calls, and what is left of one that was dropped without being closed. Set
$TASKER_RESOURCES_REPORT to a file to get the figures as JSON (the README quotes them)."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
import redis

from tasker_dist import AsyncProducer, ConfigError, Producer
from tasker_dist.store import MAX_CONNECTIONS
from tasker_dist.store.keys import QueueKeys

from . import tasks
from .conftest import ChildProcess, report, wait_until

IDLE_PRODUCERS = 100
IDLE_WINDOW_S = 2.0
#: What one producer may hold: its pool for calls, and its listener's two.
BOUND = MAX_CONNECTIONS + 2


def _own_connections(redis_url: str) -> set[int]:
    """The local ports of this process's open connections to the server. A pool keeps
    what it opened until it is closed: what a producer holds just before it is closed is
    the most it held at once."""
    port = urlsplit(redis_url).port
    return {
        c.laddr.port
        for c in psutil.Process().net_connections("tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    }


def test_idle_producers_cost_no_cpu(redis_url: str, queue: str) -> None:
    """Producers whose listeners run and whose calls wait (no worker serves the queue)
    use no CPU while nothing happens: the old listeners woke every 50 ms, and 100 of
    them used 0.3 s of CPU in these 2 s."""
    producers = [Producer(redis_url, queue) for _ in range(IDLE_PRODUCERS)]
    try:
        for p in producers:
            p.queue_task_async(tasks.sleep_then, 0, None)
        started = time.process_time()
        time.sleep(IDLE_WINDOW_S)  # the window measured, not a wait for something
        cpu_s = time.process_time() - started
    finally:
        for p in producers:
            p.close()
    report("TASKER_RESOURCES_REPORT", {"test": "idle_cpu", "producers": IDLE_PRODUCERS,
                                       "window_s": IDLE_WINDOW_S,
                                       "cpu_ms": round(cpu_s * 1000, 1)})  # fmt: skip
    assert cpu_s < 0.01 * IDLE_WINDOW_S, f"{cpu_s * 1000:.1f} ms of CPU in {IDLE_WINDOW_S} s"


def test_max_connections_is_checked() -> None:
    for bad in (0, -1, 2.5, True, "20"):
        with pytest.raises(ConfigError, match="max_connections must be an int >= 1"):
            Producer("redis://127.0.0.1:1/0", max_connections=bad)  # type: ignore[arg-type]


@pytest.mark.timeout(400)  # room for a loaded machine: a caller left waiting fails first
def test_one_async_producer_serves_thousands_of_concurrent_calls_on_few_connections(
    redis_url: str,
    queue: str,
    start_worker: Callable[..., ChildProcess],
    raw_redis: redis.Redis,
    tmp_path: Path,
) -> None:
    """1,000 concurrent `queue_task` calls, then 10,000 concurrent `result` waits, on one
    AsyncProducer: every one succeeds, on at most `BOUND` connections. Before, every
    call past the pool's 100 connections failed with "Too many connections"."""
    start_worker()
    raw_redis.ping()  # its own connection is open before the producer's
    release = tmp_path / "release"
    keys = QueueKeys(queue)

    def all_subscribed(ids: list[str]) -> bool:
        counts = raw_redis.pubsub_numsub(*(keys.done_channel(t) for t in ids))
        return all(n > 0 for _, n in counts)

    async def scenario() -> int:
        async with AsyncProducer(redis_url, queue) as producer:
            calls = [producer.queue_task(tasks.sleep_then, 0, i) for i in range(1000)]
            assert await asyncio.gather(*calls) == list(range(1000))
            ids = await producer.enqueue_many(
                tasks.run_until_file, [(str(release), i) for i in range(10_000)]
            )
            waits = [asyncio.create_task(producer.result(t, timeout=200)) for t in ids]
            await asyncio.to_thread(wait_until, lambda: all_subscribed(ids), 60, 0.05,
                                    "every done channel subscribed")  # fmt: skip
            release.touch()
            _, pending = await asyncio.wait(waits, timeout=150)
            late = [t for t, w in zip(ids, waits, strict=True) if w in pending]
            stored = sum(raw_redis.exists(keys.result(t)) for t in late)
            assert not late, f"{len(late)} callers still wait, {stored} of their results stored"
            assert [w.result() for w in waits] == list(range(10_000))
            return len(_own_connections(redis_url) - before)

    before = _own_connections(redis_url)
    held = asyncio.run(scenario())
    report("TASKER_RESOURCES_REPORT", {"test": "async_concurrency", "calls": 1000,
                                       "waits": 10_000, "connections": held})  # fmt: skip
    assert held <= BOUND


def test_one_producer_serves_200_threads_on_few_connections(
    redis_url: str, queue: str, start_worker: Callable[..., ChildProcess]
) -> None:
    """1,000 `queue_task` calls from 200 threads on one Producer: every one succeeds, on
    at most `BOUND` connections (before: a connection per thread calling at once)."""
    start_worker()
    before = _own_connections(redis_url)
    with Producer(redis_url, queue) as producer, ThreadPoolExecutor(200) as pool:
        values = list(pool.map(lambda i: producer.queue_task(tasks.sleep_then, 0, i),
                               range(1000)))  # fmt: skip
        held = len(_own_connections(redis_url) - before)
    report("TASKER_RESOURCES_REPORT", {"test": "thread_concurrency", "calls": 1000,
                                       "threads": 200, "connections": held})  # fmt: skip
    assert values == list(range(1000))
    assert held <= BOUND


def test_a_producer_dropped_without_closing_frees_its_thread_and_connections(
    redis_url: str,
    queue: str,
    start_worker: Callable[..., ChildProcess],
    raw_redis: redis.Redis,
) -> None:
    """Its listener thread refers to nothing of the producer, so garbage collection
    reaches the producer and closes it; before, the thread and its connections lived on
    with nothing left to stop them."""
    start_worker()
    raw_redis.ping()  # its own connection is open before the producer's
    threads, connections = set(threading.enumerate()), _own_connections(redis_url)
    producer = Producer(redis_url, queue)
    assert producer.queue_task(tasks.sleep_then, 0, "done") == "done"
    mine = [t for t in threading.enumerate() if t not in threads]
    ports = _own_connections(redis_url) - connections
    assert [t.name for t in mine] == ["tasker-results"]
    assert len(ports) >= 2  # the calls' and the listener's

    del producer
    gc.collect()

    wait_until(lambda: not any(t.is_alive() for t in mine), timeout=5,
               message="the listener thread to end")  # fmt: skip

    def server_sees_them() -> set[int]:
        return {int(c["addr"].rsplit(":", 1)[1]) for c in raw_redis.client_list()} & ports

    wait_until(lambda: not server_sees_them(), timeout=5,
               message="the server to see the producer's connections closed")  # fmt: skip
