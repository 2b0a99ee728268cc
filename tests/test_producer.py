"""Producer and AsyncProducer against a real Redis server (workers in-process or none)."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from tasker_dist import (
    AsyncProducer,
    Config,
    ConfigError,
    PayloadTooLarge,
    Producer,
    RedisUnavailable,
    ResultExpired,
    SerializationError,
    ShuttingDown,
    TaskContext,
    TaskFuture,
    TaskManager,
    TaskNotFound,
    TaskTimeout,
)
from tasker_dist.status import Status
from tasker_dist.store import Finished
from tasker_dist.store.keys import QueueKeys
from tasker_dist.store.queue_store import QueueStore
from tasker_dist.wire.envelope import encode_success
from tasker_dist.wire.signing import Signer

from . import tasks
from .conftest import wait_until


@pytest.fixture
def manager(redis_url: str, queue: str) -> Iterator[TaskManager[dict[str, int]]]:
    """A worker for the producers under test (any process on the queue would do)."""
    with TaskManager(
        Config(
            on_create=dict, redis_url=redis_url, queue=queue, worker_count=2, heartbeat_interval=0.1
        )
    ) as m:
        yield m


def test_producer_needs_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKER_REDIS_URL", raising=False)
    with pytest.raises(ConfigError, match="redis_url"):
        Producer()
    with pytest.raises(ConfigError, match="queue"):
        Producer("redis://localhost", queue="bad {queue}")


def test_producer_uses_env_url(
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    queue: str,
    manager: TaskManager[dict[str, int]],
) -> None:
    monkeypatch.setenv("TASKER_REDIS_URL", redis_url)
    with Producer(queue=queue) as p:
        assert p.queue_task(lambda ctx, r: "env") == "env"


def test_enqueue_and_batch_enqueue(
    redis_url: str, queue: str, manager: TaskManager[dict[str, int]]
) -> None:
    with Producer(redis_url, queue) as p:
        one = p.enqueue(lambda ctx, r, x: x + 1, 1)
        many = p.enqueue_many(lambda ctx, r, a, b: a * b, [(i, 2) for i in range(250)], chunk=100)
        assert len(set(many)) == 250
        assert p.result(one, timeout=10) == 2
        assert [p.result(i, timeout=10) for i in many] == [i * 2 for i in range(250)]


def test_submit_with_timeout(
    redis_url: str, queue: str, manager: TaskManager[dict[str, int]]
) -> None:
    def slow(ctx: TaskContext, r: dict[str, int]) -> str:
        ctx.wait(5)
        return "late"

    with Producer(redis_url, queue) as p:
        with pytest.raises(TaskTimeout):
            p.submit(slow, timeout=0.2).result(5)
        assert p.submit(lambda ctx, r, x: x, (5,), priority=True).result(5) == 5


def test_result_timeout_and_unknown_ids(
    redis_url: str, queue: str, manager: TaskManager[dict[str, int]], tmp_path: Path
) -> None:
    release = tmp_path / "release"
    with Producer(redis_url, queue) as p:
        task_id = p.enqueue(tasks.run_until_file, str(release), "done")
        with pytest.raises(TimeoutError):
            p.result(task_id, timeout=0.05)
        release.touch()
        assert p.result(task_id, timeout=10) == "done"
        with pytest.raises(TaskNotFound, match="was ever queued") as info:
            p.result("f" * 32, timeout=1)
        assert not isinstance(info.value, ResultExpired)


def test_results_expire_after_result_ttl(
    redis_url: str, queue: str, raw_redis: redis.Redis
) -> None:
    config = Config(on_create=dict, redis_url=redis_url, queue=queue, result_ttl=0.3)
    with TaskManager(config) as m:
        task_id = m.enqueue(lambda ctx, r: "short-lived")
        assert m.result(task_id, timeout=10) == "short-lived"
        key = QueueKeys(queue).result(task_id)
        assert 0 < raw_redis.pttl(key) <= 300
        wait_until(lambda: not raw_redis.exists(key), timeout=5, message="the result to expire")
        with pytest.raises(ResultExpired, match="has expired"):
            m.result(task_id, timeout=1)


def test_closed_producer_refuses_work_and_fails_waiters(redis_url: str, queue: str) -> None:
    p = Producer(redis_url, queue)
    waiting = p.queue_task_async(lambda ctx, r: None)  # no worker: never finishes
    p.close()
    with pytest.raises(ShuttingDown):
        waiting.result(5)
    with pytest.raises(ShuttingDown):
        p.enqueue(lambda ctx, r: None)
    p.close()  # idempotent


def test_unpicklable_arguments_fail_before_writing(redis_url: str, queue: str) -> None:
    with Producer(redis_url, queue) as p:
        with pytest.raises(SerializationError, match="lock"):
            p.enqueue(lambda ctx, r, x: x, __import__("threading").Lock())
        assert p.stats().queued_tasks == 0
        assert p.metrics().total_tasks_arrived == 0


def test_refused_connection_is_a_clear_error_within_seconds() -> None:
    start = time.monotonic()
    with Producer("redis://127.0.0.1:1/0", connect_timeout=1) as p:
        with pytest.raises(RedisUnavailable, match=r"127\.0\.0\.1:1"):
            p.enqueue(lambda ctx, r: None)
        with pytest.raises(RedisUnavailable):
            p.queue_task(lambda ctx, r: None)
    assert time.monotonic() - start < 5


def test_silent_server_is_a_clear_error_not_a_hang() -> None:
    """A server that accepts connections but never answers (a hung host)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        start = time.monotonic()
        with Producer(url, connect_timeout=0.5) as p, pytest.raises(RedisUnavailable):
            p.enqueue(lambda ctx, r: None)
        assert time.monotonic() - start < 5


def test_listener_rechecks_results_after_reconnect(
    redis_url: str, queue: str, raw_redis: redis.Redis
) -> None:
    """A result whose notification never arrived is found when the listener reconnects."""
    with Producer(redis_url, queue) as p:
        future = p.queue_task_async(lambda ctx, r: "unused")
        store = QueueStore(redis_url, queue)
        _, [task] = store.fetch("test-worker", 1, 60_000)
        # Store the result as a worker would, but without telling the reply channel.
        result = Signer.from_settings(None, False, queue=queue).seal(
            encode_success(task.task_id, "recovered")
        )
        store.complete(
            "test-worker", 60_000, 100, [Finished(task.task_id, Status.COMPLETED, result, "")]
        )
        store.close()
        time.sleep(0.2)
        assert not future.done()  # nobody told it
        raw_redis.client_kill_filter(_type="pubsub")
        assert future.result(10) == "recovered"


def test_async_producer(redis_url: str, queue: str, manager: TaskManager[dict[str, int]]) -> None:
    async def scenario() -> None:
        async with AsyncProducer(redis_url, queue) as p:
            assert await p.queue_task(lambda ctx, r, x: x + 1, 41) == 42
            assert await p.queue_task_with_priority(lambda ctx, r: "p") == "p"
            assert await p.queue_task_once(lambda ctx, r: "o") == "o"
            future = await p.queue_task_async(lambda ctx, r: "f")
            assert await future == "f"
            task_id = await p.enqueue(lambda ctx, r: "later")
            assert await p.result(task_id, timeout=10) == "later"
            ids = await p.enqueue_many(lambda ctx, r, i: -i, [(i,) for i in range(20)])
            assert [await p.result(i, timeout=10) for i in ids] == [-i for i in range(20)]
            with pytest.raises(ZeroDivisionError):
                await p.queue_task(lambda ctx, r: 1 / 0)
            got: asyncio.Future[tuple[object, object]] = asyncio.get_running_loop().create_future()
            loop = asyncio.get_running_loop()
            await p.queue_task_with_callback(
                lambda ctx, r: "cb",
                lambda res, err: loop.call_soon_threadsafe(got.set_result, (res, err)),
            )
            assert await asyncio.wait_for(got, 10) == ("cb", None)
            assert (await p.stats()).active_workers == 2
            assert (await p.metrics()).total_tasks_completed >= 26
            with pytest.raises(TaskNotFound):
                await p.result("0" * 32)

    asyncio.run(scenario())


def test_a_result_timeout_leaves_other_waiters_waiting(
    redis_url: str, queue: str, manager: TaskManager[dict[str, int]], tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    with Producer(redis_url, queue) as p:
        own = p.queue_task_async(tasks.run_until_file, str(first), "done")
        with pytest.raises(TimeoutError):
            p.result(own.task_id, timeout=0.05)
        first.touch()
        assert own.result(10) == "done"

        task_id = p.enqueue(tasks.run_until_file, str(second), "done")
        with ThreadPoolExecutor(1) as pool:
            patient = pool.submit(p.result, task_id, 10)
            with pytest.raises(TimeoutError):
                p.result(task_id, timeout=0.05)
            second.touch()
            assert patient.result(10) == "done"


def test_oversized_tasks_are_refused_before_anything_is_written(redis_url: str, queue: str) -> None:
    with Producer(redis_url, queue, max_payload_bytes=10_000) as p:
        with pytest.raises(PayloadTooLarge, match=r"over the limit of 10,000"):
            p.enqueue(lambda ctx, r, blob: len(blob), b"x" * 20_000)
        with pytest.raises(PayloadTooLarge):
            p.enqueue_many(lambda ctx, r, blob: len(blob), [(b"small",), (b"x" * 20_000,)])
        assert p.stats().queued_tasks == 0  # not even the small one of the batch
        assert p.metrics().total_tasks_arrived == 0


def test_an_oversized_result_fails_its_task_once(redis_url: str, queue: str) -> None:
    config = Config(on_create=dict, redis_url=redis_url, queue=queue, max_payload_bytes=10_000)
    with TaskManager(config) as m:
        with pytest.raises(PayloadTooLarge, match="result payload is"):
            m.queue_task(lambda ctx, r: b"y" * 20_000)
        assert m.metrics().total_tasks_failed == 1
        assert m.queue_task(lambda ctx, r: "small") == "small"


class SlowToDecode:
    """A result whose decoding takes a while: a caller may give up meanwhile."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __setstate__(self, state: dict[str, int]) -> None:
        time.sleep(0.002)
        self.__dict__.update(state)


def slow_to_decode(ctx: TaskContext, r: dict[str, int], n: int) -> SlowToDecode:
    return SlowToDecode(n)


class GiveUpAtRandom(threading.Thread):
    """Cancels random futures of ``futures`` until stopped, as impatient callers do."""

    def __init__(self, futures: list[TaskFuture[SlowToDecode]], seed: int) -> None:
        super().__init__()
        self.futures = futures
        self.rng = random.Random(seed)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.rng.choice(self.futures).cancel()


def test_futures_cancelled_at_random_while_results_arrive_never_stop_the_listener(
    redis_url: str, queue: str, manager: TaskManager[dict[str, int]]
) -> None:
    """A caller that gives up (a cancelled future, an asyncio.wait_for timing out) while
    its result is being decoded must not take the producer's listener down with it."""
    with Producer(redis_url, queue) as producer:
        for attempt in range(5):
            futures = [producer.queue_task_async(slow_to_decode, i) for i in range(200)]
            canceller = GiveUpAtRandom(futures, seed=attempt)
            canceller.start()
            try:
                # (concurrent.futures.wait never sees a future cancelled outside an
                # executor as done, so look at them one by one)
                wait_until(lambda fs=futures: all(f.done() for f in fs), timeout=30)
            finally:
                canceller.done.set()
                canceller.join()
            for i, future in enumerate(futures):
                assert future.cancelled() or future.result().n == i
        later = producer.queue_task_async(lambda ctx, r: "still listening")
        assert later.result(10) == "still listening"
