"""A Redis at its ``maxmemory`` under ``noeviction`` (the policy the README asks for):
producers are told `QueueFull`, workers drain it anyway, and queueing works again after;
under a policy that evicts, a caller whose task was evicted is told.

Before, every fetch and completion script was refused at the limit (their first write
needs memory) while heartbeats passed: nothing drained and nothing freed memory."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

import pytest
import redis

from tasker_dist import Producer, QueueFull, TaskLost
from tasker_dist.client import listener
from tasker_dist.store.embedded_server import EmbeddedServer
from tasker_dist.store.keys import QueueKeys

from . import tasks
from .conftest import ChildProcess, run_tasker, wait_until

DAEMON_ENV = {"TASKER_TEST_WORKERS": "4", "TASKER_TEST_HEARTBEAT": "0.2"}
PADDING = "x" * 2000


def _fill(producer: Producer) -> tuple[list[str], str]:
    """Queue tasks until Redis refuses: the ids of those queued, and why it refused."""
    ids: list[str] = []
    for _ in range(1000):
        calls = [(len(ids) + i, PADDING) for i in range(200)]
        try:
            ids += producer.enqueue_many(tasks.padded, calls)
        except QueueFull as exc:
            return ids, str(exc)
    raise AssertionError("Redis never filled up")


def test_a_full_redis_is_drained_and_producers_hear_queue_full(
    start_worker: Callable[..., ChildProcess], queue: str
) -> None:
    server = EmbeddedServer.start(("--maxmemory", "16mb", "--maxmemory-policy", "noeviction"))
    try:
        with Producer(server.url, queue) as producer:
            ids, refusal = _fill(producer)
            assert "out of memory" in refusal
            assert len(ids) > 1000
            stats = producer.stats()
            assert stats.redis_full
            assert stats.queued_tasks == len(ids)  # the refused call wrote nothing
            shown = run_tasker("stats", "--redis-url", server.url, "--queue", queue)
            assert shown.returncode == 0, shown.stderr
            assert "redis_full              True" in shown.stdout
            assert "Redis is full" in shown.stdout

            for _ in range(2):
                start_worker("tests.tasks:config", "--redis-url", server.url, env=DAEMON_ENV)
            wait_until(lambda: producer.metrics().total_tasks_completed == len(ids),
                       timeout=60, message="the daemons to drain the full Redis")  # fmt: skip
            assert [producer.result(t, timeout=5) for t in ids[:: len(ids) // 20]] == list(
                range(0, len(ids), len(ids) // 20)
            )
            assert not producer.stats().redis_full
            assert producer.queue_task(tasks.padded, -1, PADDING) == -1  # queues again
    finally:
        server.stop()


def test_a_caller_whose_task_redis_evicted_hears_it(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under an evicting maxmemory-policy Redis may drop a queued task while its caller
    waits; the listener checks every SWEEP_S (30 s; 0.3 s here) for the tasks waited for
    since before its previous check, so the caller is told instead of waiting forever."""
    monkeypatch.setattr(listener, "SWEEP_S", 0.3)
    server = EmbeddedServer.start(("--maxmemory-policy", "allkeys-lru"))
    try:
        with Producer(server.url, queue) as producer:
            futures = [producer.queue_task_async(tasks.padded, n, "") for n in range(3)]
            keys = QueueKeys(queue)
            client = redis.Redis.from_url(server.url)
            client.delete(keys.tasks, keys.pending)  # what evicting those keys does
            client.close()
            wait_until(lambda: all(f.done() for f in futures), message="the callers to hear")
            for future in futures:
                with pytest.raises(TaskLost, match="evicted by Redis under maxmemory-policy "
                                   "allkeys-lru"):  # fmt: skip
                    future.result(0)
    finally:
        server.stop()


def test_a_task_still_being_queued_is_not_taken_for_evicted(
    start_worker: Callable[..., ChildProcess], queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call waiting for a free connection has not queued its task yet: eviction checks
    made meanwhile must not find it missing and fail it (its task then runs as usual)."""
    monkeypatch.setattr(listener, "SWEEP_S", 0.2)
    server = EmbeddedServer.start(("--maxmemory-policy", "allkeys-lru"))
    try:
        with Producer(server.url, queue, max_connections=2) as producer:
            resolver = producer._ensure_listener()
            pool = producer._store.client.connection_pool
            held = [pool.get_connection() for _ in range(2)]
            submitted: list[Future[int]] = []
            submitting = threading.Thread(
                target=lambda: submitted.append(producer.queue_task_async(tasks.padded, 7, ""))
            )
            submitting.start()
            checks = resolver._sweeps
            wait_until(lambda: resolver._sweeps >= checks + 3, message="3 eviction checks")
            assert submitting.is_alive()  # still waiting for a connection all along
            for connection in held:
                pool.release(connection)
            submitting.join(5)
            start_worker("tests.tasks:config", "--redis-url", server.url, env=DAEMON_ENV)
            assert submitted[0].result(timeout=30) == 7
    finally:
        server.stop()
