"""TaskManager against a real Redis server: SPEC §3, §4 and the Go bugs of §9."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest
import redis

from tasker_dist import (
    Config,
    MaxRetriesExceeded,
    Producer,
    RemoteTraceback,
    SerializationError,
    ShuttingDown,
    TaskCancelled,
    TaskContext,
    TaskError,
    TaskManager,
    TaskTimeout,
)
from tasker_dist.store import QueueStore
from tasker_dist.store.embedded_server import EmbeddedServer

from .conftest import alive, process_tree, wait_until
from .redis_proxy import RedisProxy


class Res:
    """A live resource: tests read what tasks did to it (tasks get copies of the rest)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.gate = threading.Event()
        self.ran: list[Any] = []


class Tracker:
    """on_create/on_destroy that record what happened, in order."""

    def __init__(self, create_delay: float = 0.0, fail_first: int = 0) -> None:
        self.events: list[str] = []
        self.resources: list[Res] = []
        self.lock = threading.Lock()
        self.create_delay = create_delay
        self.fail_first = fail_first
        self.creating = 0
        self.max_alive = 0
        self.alive = 0

    def create(self) -> Res:
        with self.lock:
            if self.fail_first > 0:
                self.fail_first -= 1
                raise ConnectionError("backend not ready")
            self.creating += 1
            self.alive += 1
            self.max_alive = max(self.max_alive, self.alive)
        time.sleep(self.create_delay)
        with self.lock:
            self.creating -= 1
            r = Res(len(self.resources))
            self.resources.append(r)
            self.events.append(f"create {r.n}")
        return r

    def destroy(self, r: Res) -> None:
        with self.lock:
            self.alive -= 1
            self.events.append(f"destroy {r.n}")

    def count(self, kind: str) -> int:
        with self.lock:
            return sum(1 for e in self.events if e.startswith(kind))


class Unhealthy(Exception):
    pass


@pytest.fixture
def make_manager(redis_url: str, queue: str) -> Iterator[Callable[..., TaskManager[Res]]]:
    managers: list[TaskManager[Res]] = []

    def make(tracker: Tracker | None = None, **kwargs: Any) -> TaskManager[Res]:
        t = tracker or Tracker()
        kwargs.setdefault("heartbeat_interval", 0.1)
        kwargs.setdefault("burst_interval", 0.1)
        kwargs.setdefault("redis_url", redis_url)
        m = TaskManager(
            Config(
                on_create=t.create,
                on_destroy=t.destroy,
                queue=queue,
                check_health=lambda e: not isinstance(e, Unhealthy),
                **kwargs,
            )
        )
        managers.append(m)
        return m

    yield make
    for m in managers:
        m.kill()


def test_queue_task_passes_arguments_and_returns_value(make_manager: Callable[..., Any]) -> None:
    m = make_manager(worker_count=2)
    assert m.queue_task(lambda ctx, r, a, b=0: (a * b, ctx.task_id != ""), 6, b=7) == (42, True)


def test_task_sees_copies_of_captured_objects(make_manager: Callable[..., Any]) -> None:
    m = make_manager()
    captured = [1, 2]

    def mutate(ctx: TaskContext, r: Res) -> list[int]:
        captured.append(3)
        return captured

    assert m.queue_task(mutate) == [1, 2, 3]
    assert captured == [1, 2]  # the caller's list is untouched, as on another host


def test_task_exception_is_reraised_with_remote_traceback(make_manager: Callable[..., Any]) -> None:
    m = make_manager()

    def broken_task(ctx: TaskContext, r: Res) -> None:
        raise KeyError("sku-42")

    with pytest.raises(KeyError, match="sku-42") as info:
        m.queue_task(broken_task)
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "broken_task" in info.value.__cause__.tb
    assert any("Remote traceback" in n for n in info.value.__notes__)


class NeedsTwoArgs(Exception):
    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}/{b}")  # unpickling calls NeedsTwoArgs("a/b") and fails


def test_exception_that_cannot_be_rebuilt_becomes_task_error(
    make_manager: Callable[..., Any],
) -> None:
    m = make_manager()

    def task(ctx: TaskContext, r: Res) -> None:
        raise NeedsTwoArgs("x", "y")

    with pytest.raises(TaskError) as info:
        m.queue_task(task)
    assert "NeedsTwoArgs" in info.value.type_name
    assert info.value.message == "x/y"


def test_callback_runs_later_with_result_or_error(make_manager: Callable[..., Any]) -> None:
    m = make_manager()
    got: list[tuple[Any, Any]] = []
    done = threading.Event()

    def callback(result: Any, error: BaseException | None) -> None:
        got.append((result, error))
        if len(got) == 2:
            done.set()

    def slow(ctx: TaskContext, r: Res) -> int:
        time.sleep(0.2)
        return 35

    start = time.monotonic()
    task_id = m.queue_task_with_callback(slow, callback)
    assert time.monotonic() - start < 0.2  # returned before the task finished
    m.queue_task_with_callback(lambda ctx, r: 1 / 0, callback)
    assert done.wait(10)
    assert (35, None) in got
    assert m.result(task_id, timeout=10) == 35  # the id it returned names the task
    errors = [e for _, e in got if e is not None]
    assert len(errors) == 1
    assert isinstance(errors[0], ZeroDivisionError)


def test_queue_task_async_returns_future(make_manager: Callable[..., Any]) -> None:
    m = make_manager()
    futures = [m.queue_task_async(lambda ctx, r, i: i * i, i) for i in range(50)]
    assert all(isinstance(f, Future) for f in futures)
    assert [f.result(10) for f in futures] == [i * i for i in range(50)]


def test_async_def_tasks_and_async_on_create(redis_url: str, queue: str) -> None:
    async def create() -> dict[str, str]:
        await asyncio.sleep(0.01)
        return {"kind": "async"}

    async def task(ctx: TaskContext, r: dict[str, str], x: int) -> str:
        await asyncio.sleep(0.01)
        return f"{r['kind']}-{x}"

    with TaskManager(Config(on_create=create, redis_url=redis_url, queue=queue)) as m:
        assert m.queue_task(task, 7) == "async-7"


def test_priority_tasks_are_served_strictly_first(make_manager: Callable[..., Any]) -> None:
    tracker = Tracker()
    m = make_manager(tracker, worker_count=1)

    def block(ctx: TaskContext, r: Res) -> None:
        r.gate.wait(10)

    def record(ctx: TaskContext, r: Res, label: str) -> None:
        r.ran.append(label)

    blocker = m.queue_task_async(block)
    wait_until(lambda: m.stats().running_tasks == 1, message="the slot to be busy")
    futures = [m.queue_task_async(record, f"normal-{i}") for i in range(5)]
    futures += [m.submit(record, (f"priority-{i}",), priority=True) for i in range(3)]
    tracker.resources[0].gate.set()
    for f in [blocker, *futures]:
        f.result(10)
    ran = tracker.resources[0].ran
    assert ran[:3] == ["priority-0", "priority-1", "priority-2"]
    assert ran[3:] == [f"normal-{i}" for i in range(5)]


def test_queue_task_with_priority_blocks_for_result(make_manager: Callable[..., Any]) -> None:
    m = make_manager()
    assert m.queue_task_with_priority(lambda ctx, r: "p") == "p"
    assert m.queue_task_with_priority_once(lambda ctx, r: "po") == "po"


def test_healthy_error_fails_once_and_keeps_the_resource(make_manager: Callable[..., Any]) -> None:
    tracker = Tracker()
    m = make_manager(tracker, worker_count=1)
    with pytest.raises(ValueError, match="bad input"):
        m.queue_task(lambda ctx, r: (_ for _ in ()).throw(ValueError("bad input")))
    assert m.queue_task(lambda ctx, r: r.n) == 0  # the same resource serves the next task
    assert tracker.count("create") == 1
    assert m.metrics().total_tasks_retried == 0


def test_unhealthy_error_replaces_resource_and_retries(make_manager: Callable[..., Any]) -> None:
    tracker = Tracker()
    m = make_manager(tracker, worker_count=1, max_retries=2)

    def flaky(ctx: TaskContext, r: Res) -> str:
        if ctx.attempt == 0:
            raise Unhealthy("connection reset")
        return f"attempt {ctx.attempt} on resource {r.n}"

    assert m.queue_task(flaky) == "attempt 1 on resource 1"
    assert tracker.events[:3] == ["create 0", "destroy 0", "create 1"]
    assert m.metrics().total_tasks_retried == 1


def test_max_retries_exceeded_and_slots_are_never_lost(make_manager: Callable[..., Any]) -> None:
    tracker = Tracker()
    m = make_manager(tracker, worker_count=2, max_retries=2)

    def always_broken(ctx: TaskContext, r: Res) -> None:
        raise Unhealthy(f"attempt {ctx.attempt}")

    for _ in range(3):
        with pytest.raises(MaxRetriesExceeded, match="max retries exceeded: attempt 2") as info:
            m.queue_task(always_broken)
        assert isinstance(info.value.__cause__, Unhealthy)
    # 3 tasks x 3 attempts destroyed 9 resources; every slot was replaced (Go lost them).
    wait_until(
        lambda: tracker.count("destroy") == 9 and m.stats().active_workers == 2,
        message="slots to be replaced",
    )
    assert m.queue_task(lambda ctx, r: "still serving") == "still serving"
    assert m.metrics().total_tasks_retried == 6


def test_max_retries_zero_means_no_retry(make_manager: Callable[..., Any]) -> None:
    tracker = Tracker()
    m = make_manager(tracker, worker_count=1, max_retries=0)

    def broken(ctx: TaskContext, r: Res) -> None:
        r.ran.append(ctx.attempt)
        raise Unhealthy("down")

    with pytest.raises(MaxRetriesExceeded):
        m.queue_task(broken)
    assert m.metrics().total_tasks_retried == 0
    assert sum(len(r.ran) for r in tracker.resources) == 1


def test_once_tasks_get_exactly_one_attempt(make_manager: Callable[..., Any]) -> None:
    tracker = Tracker()
    m = make_manager(tracker, worker_count=1, max_retries=3)

    def broken(ctx: TaskContext, r: Res) -> None:
        r.ran.append(ctx.attempt)
        raise Unhealthy("down")

    with pytest.raises(Unhealthy):
        m.queue_task_once(broken)
    with pytest.raises(Unhealthy):
        m.queue_task_with_priority_once(broken)
    assert sum(len(r.ran) for r in tracker.resources) == 2
    assert m.metrics().total_tasks_retried == 0
    wait_until(lambda: tracker.count("create") == 3, message="the resource to be replaced")


def test_run_task_runs_now_in_the_caller_with_a_pooled_resource(
    make_manager: Callable[..., Any],
) -> None:
    tracker = Tracker()
    m = make_manager(tracker, worker_count=1, resource_pool_size=1)
    before = m.metrics().total_tasks_arrived
    caller = threading.get_ident()
    assert m.run_task(lambda ctx, r, x: (threading.get_ident(), x), 5) == (caller, 5)
    assert m.run_task(lambda ctx, r: r.n) == 1  # the pooled resource is reused
    assert m.metrics().total_tasks_arrived == before  # never queued
    with pytest.raises(ZeroDivisionError):
        m.run_task(lambda ctx, r: 1 / 0)


def test_sys_exit_in_a_task_fails_the_task_not_the_worker(
    make_manager: Callable[..., Any],
) -> None:
    m = make_manager()

    def leave(ctx: TaskContext, r: Res) -> None:
        raise SystemExit(3)

    with pytest.raises(TaskError, match="SystemExit"):
        m.queue_task(leave)
    assert m.queue_task(lambda ctx, r: "alive") == "alive"


def test_task_timeout_cancels_and_fails_with_task_timeout(
    make_manager: Callable[..., Any],
) -> None:
    tracker = Tracker()
    m = make_manager(tracker, task_timeout=0.2)

    def slow(ctx: TaskContext, r: Res) -> str:
        r.ran.append(ctx.wait(5))  # True: woken by the cancellation, not after 5 s
        return "late"

    start = time.monotonic()
    with pytest.raises(TaskTimeout):
        m.queue_task(slow)
    assert time.monotonic() - start < 2
    wait_until(lambda: tracker.resources[0].ran, message="the task to see its cancellation")
    assert tracker.resources[0].ran == [True]


def test_on_create_failures_are_logged_and_retried(
    make_manager: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="tasker_dist.worker")
    tracker = Tracker(fail_first=2)
    m = make_manager(tracker, worker_count=1)
    assert m.queue_task(lambda ctx, r: r.n) == 0
    failures = [r for r in caplog.records if "on_create failed" in r.getMessage()]
    assert len(failures) == 2
    assert "backend not ready" in caplog.text


def test_burst_grows_under_backlog_and_shrinks_when_idle(make_manager: Callable[..., Any]) -> None:
    m = make_manager(worker_count=1, max_worker_count=4)

    def work(ctx: TaskContext, r: Res) -> None:
        time.sleep(0.05)

    futures = [m.queue_task_async(work) for _ in range(80)]
    wait_until(lambda: m.stats().burst_workers > 0, message="burst slots to be added")
    peak = 0
    for f in futures:
        f.result(30)
        peak = max(peak, m.stats().active_workers)
    assert peak <= 4
    wait_until(
        lambda: m.stats().burst_workers == 0 and m.stats().active_workers == 1,
        message="burst slots to be retired",
    )


def test_slow_on_create_never_exceeds_max_worker_count(make_manager: Callable[..., Any]) -> None:
    tracker = Tracker(create_delay=0.3)
    m = make_manager(tracker, worker_count=1, max_worker_count=3)

    def work(ctx: TaskContext, r: Res) -> None:
        time.sleep(0.05)

    futures = [m.queue_task_async(work) for _ in range(60)]
    for f in futures:
        f.result(60)
    assert tracker.max_alive <= 3


def test_stop_waits_for_queued_tasks_then_destroys(make_manager: Callable[..., Any]) -> None:
    tracker = Tracker()
    m = make_manager(tracker, worker_count=2)

    def work(ctx: TaskContext, r: Res, i: int) -> str:
        time.sleep(0.1)
        return f"task {i} completed"

    futures = [m.queue_task_async(work, i) for i in range(5)]
    m.stop()
    assert [f.result(0) for f in futures] == [f"task {i} completed" for i in range(5)]
    assert tracker.count("destroy") == tracker.count("create") == 2
    assert m.stats().active_workers == 0
    with pytest.raises(ShuttingDown):
        m.queue_task(lambda ctx, r: None)


def test_kill_cancels_running_and_queued_tasks(make_manager: Callable[..., Any]) -> None:
    tracker = Tracker()
    m = make_manager(tracker, worker_count=1, kill_grace=0.5)

    def cooperative(ctx: TaskContext, r: Res) -> str:
        r.ran.append("started")
        if ctx.wait(10):
            ctx.raise_if_cancelled()
        return "finished"

    def never_runs(ctx: TaskContext, r: Res) -> None:
        r.ran.append("queued task ran")

    running = m.queue_task_async(cooperative)
    wait_until(lambda: m.stats().running_tasks == 1, message="the task to start")
    queued = [m.queue_task_async(never_runs) for _ in range(3)]
    start = time.monotonic()
    m.kill()
    assert time.monotonic() - start < 5
    with pytest.raises(TaskCancelled):
        running.result(1)
    for f in queued:
        with pytest.raises(TaskCancelled):
            f.result(1)
    assert tracker.resources[0].ran == ["started"]
    assert m.stats().active_workers == 0


def test_kill_gives_up_on_tasks_that_ignore_cancellation(
    make_manager: Callable[..., Any],
) -> None:
    m = make_manager(worker_count=1, kill_grace=0.3)

    def stubborn(ctx: TaskContext, r: Res) -> str:
        r.gate.wait(3)
        return "too late"

    f = m.queue_task_async(stubborn)
    wait_until(lambda: m.stats().running_tasks == 1, message="the task to start")
    m.kill()
    with pytest.raises(TaskCancelled):
        f.result(2)


def test_stop_and_kill_in_any_order_are_safe(make_manager: Callable[..., Any]) -> None:
    m1 = make_manager()
    m1.stop()
    m1.kill()  # the Go original panicked here
    m1.stop()
    m2 = make_manager()
    m2.kill()
    m2.kill()
    m2.stop()
    with pytest.raises(ShuttingDown):
        m2.queue_task_async(lambda ctx, r: None)


def test_a_closed_manager_is_stopped_and_takes_nothing(make_manager: Callable[..., Any]) -> None:
    m = make_manager()
    task_id = m.enqueue(lambda ctx, r: "ran")
    m.close()  # as stop(): but stop waits only for tasks queued through queue_task & co
    for call in (
        lambda: m.queue_task(lambda ctx, r: None),
        lambda: m.enqueue(lambda ctx, r: None),
        lambda: m.result(task_id),
        lambda: m.run_task(lambda ctx, r: None),
    ):
        with pytest.raises(ShuttingDown):
            call()


def test_kill_never_waits_out_a_blocking_fetch(make_manager: Callable[..., Any]) -> None:
    """A stop or kill wakes the fetcher's blocking read at once, however it falls between
    an empty fetch and the read (before, about 1 in 7 kills waited out the 1 s read)."""
    slowest = 0.0
    for i in range(100):
        m = make_manager()
        if i % 2:  # half of them once the fetcher is surely blocked, half at once
            m.queue_task(lambda ctx, r: None)
        start = time.monotonic()
        m.kill()
        slowest = max(slowest, time.monotonic() - start)
    assert slowest < 0.3, f"a kill took {slowest:.3f} s"


def test_unpicklable_task_fails_before_anything_is_written(
    make_manager: Callable[..., Any],
) -> None:
    m = make_manager()
    lock = threading.Lock()
    before = m.metrics().total_tasks_arrived
    with pytest.raises(SerializationError):
        m.queue_task(lambda ctx, r: lock.locked())
    assert m.metrics().total_tasks_arrived == before
    assert m.stats().queued_tasks == 0


def test_metrics_after_only_failures(make_manager: Callable[..., Any]) -> None:
    m = make_manager()
    for _ in range(3):
        with pytest.raises(ZeroDivisionError):
            m.queue_task(lambda ctx, r: 1 / 0)
    metrics = m.metrics()
    assert metrics.total_tasks_failed == 3
    assert metrics.total_tasks_completed == 0
    assert metrics.success_rate == 0.0
    assert metrics.failure_rate == 1.0  # the Go original said 0


def test_metrics_percentiles_and_times(make_manager: Callable[..., Any]) -> None:
    m = make_manager(worker_count=2)

    def work(ctx: TaskContext, r: Res, ms: int) -> None:
        time.sleep(ms / 1000)

    futures = [m.queue_task_async(work, ms) for ms in (10, 20, 30, 40, 100)]
    for f in futures:
        f.result(10)
    metrics = m.metrics()
    assert metrics.total_tasks_completed == 5
    assert 0.009 <= metrics.min_execution_time <= 0.02
    assert metrics.max_execution_time >= 0.1
    assert metrics.p50_execution_time >= 0.03 * 0.99  # nearest rank: the 3rd of 5
    assert metrics.p95_execution_time >= 0.1 * 0.99  # not biased low
    assert 0.04 <= metrics.average_execution_time <= 0.1
    assert metrics.task_completion_rate > 0
    assert metrics.task_arrival_rate > 0
    assert metrics.success_rate == 1.0


def test_stats_are_cluster_wide(make_manager: Callable[..., Any]) -> None:
    a = make_manager(worker_count=2)
    b = make_manager(worker_count=3)
    wait_until(lambda: a.stats().active_workers == 5, message="both managers in the stats")
    stats = b.stats()
    assert stats.base_workers == 5
    assert {w.worker_id for w in stats.workers} == {a.worker_id, b.worker_id}
    a.stop()
    assert b.stats().base_workers == 3  # a stopped worker leaves at once


def test_embedded_server_when_no_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKER_REDIS_URL", raising=False)
    m = TaskManager(Config(on_create=dict))
    try:
        with redis.Redis.from_url(m.redis_url) as client:
            server_pid = int(client.info("server")["process_id"])
            workdir = client.config_get("dir")["dir"]
        assert server_pid in process_tree(os.getpid())  # a server of its own
        assert m.queue_task(lambda ctx, r: "embedded") == "embedded"
    finally:
        m.stop()
    assert not alive(server_pid)
    assert not os.path.exists(workdir)


def test_warns_when_redis_may_evict_tasks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tasker_dist.worker")
    server = EmbeddedServer.start(("--maxmemory-policy", "allkeys-lru"))
    with server, TaskManager(Config(on_create=dict, redis_url=server.url)) as m:
        assert m.queue_task(lambda ctx, r: "ok") == "ok"
    assert "maxmemory-policy is 'allkeys-lru'" in caplog.text


def test_no_eviction_warning_with_noeviction(
    make_manager: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tasker_dist.worker")
    make_manager()
    assert "maxmemory-policy" not in caplog.text


def test_an_unpicklable_result_fails_its_task_once_with_a_clear_error(
    make_manager: Callable[..., Any],
) -> None:
    m = make_manager()
    with pytest.raises(SerializationError, match="cannot serialize"):
        m.queue_task(lambda ctx, r: threading.Lock())
    metrics = m.metrics()
    assert (metrics.total_tasks_failed, metrics.total_tasks_retried) == (1, 0)
    assert m.queue_task(lambda ctx, r: "next") == "next"


@pytest.fixture
def redis_proxy(redis_url: str) -> Iterator[RedisProxy]:
    """Between a manager and the test server (requested before `make_manager`, so that
    it outlives the managers)."""
    with RedisProxy(redis_url) as proxy:
        yield proxy


def test_tasks_held_by_a_fetch_whose_reply_was_lost_are_handed_back(
    redis_proxy: RedisProxy, make_manager: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tasker_dist.worker")
    tracker = Tracker()
    m = make_manager(tracker, worker_count=2, redis_url=redis_proxy.url)

    def block(ctx: TaskContext, r: Res) -> str:
        r.ran.append("blocked")
        r.gate.wait(10)
        return "blocked"

    def record(ctx: TaskContext, r: Res, i: int) -> int:
        r.ran.append(i)
        return i

    running = m.queue_task_async(block)
    wait_until(lambda: m.stats().running_tasks == 1, message="one slot busy, one idle")
    # Redis runs the idle slot's fetch, then the connection drops before the worker hears
    # which tasks it took: they sit in the worker's held hash, known to nobody in it.
    redis_proxy.lose_fetch_replies(1)
    ids = m.enqueue_many(record, [(i,) for i in range(3)])  # all queued at once
    assert [m.result(t, timeout=10) for t in ids] == [0, 1, 2]
    assert redis_proxy.lost == 1
    assert "taken by a fetch whose reply was lost" in caplog.text
    for r in tracker.resources:
        r.gate.set()
    assert running.result(10) == "blocked"
    ran = [x for r in tracker.resources for x in r.ran]
    # each ran once: the orphans were handed back, the running task was left alone
    assert sorted(ran, key=str) == [0, 1, 2, "blocked"]


@pytest.mark.slow
def test_kill_with_100000_tasks_queued_never_blocks_redis(
    make_manager: Callable[..., Any], raw_redis: redis.Redis, redis_url: str, queue: str
) -> None:
    """Cancelling is linear and chunked: no script call of the kill, nor of the fetches
    that later drain the cancelled ids, runs 50 ms with 110,000 tasks queued (one LREM
    per task took 10.6 s for 60,000, every other client getting BUSY meanwhile)."""
    m = make_manager(worker_count=1, max_worker_count=1, kill_grace=0.5)

    def hold_the_slot(ctx: TaskContext, r: Res) -> None:
        ctx.wait(30)

    holder = m.queue_task_async(hold_the_slot)
    wait_until(lambda: m.stats().running_tasks == 1, message="the slot to be taken")

    def noop(ctx: TaskContext, r: Res) -> None:
        pass

    own = [m.queue_task_async(noop) for _ in range(10_000)]
    with Producer(redis_url=redis_url, queue=queue) as other:
        others = other.enqueue_many(noop, [()] * 100_000)
    threshold = raw_redis.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    raw_redis.config_set("slowlog-log-slower-than", 50_000)  # microseconds
    try:
        raw_redis.slowlog_reset()
        m.kill()
        for f in [holder, *own]:
            with pytest.raises(TaskCancelled):
                f.result(0)
        assert raw_redis.slowlog_get() == []
        # a fetch drops the cancelled ids (1,000 per call at most) on its way to the
        # other producer's tasks, which are all still there
        drainer = QueueStore(redis_url, queue)
        taken: list[str] = []
        while not taken:
            taken = [t.task_id for t in drainer.fetch("drainer", 10, 5_000)[1]]
        assert taken == others[:10]
        assert raw_redis.llen(drainer.keys.pending) == 100_000 - 10
        assert raw_redis.exists(drainer.keys.cancelled) == 0
        drainer.close()
        assert raw_redis.slowlog_get() == []
    finally:
        raw_redis.config_set("slowlog-log-slower-than", threshold)


@pytest.mark.slow
def test_kill_returns_while_a_stop_hangs_in_on_destroy(redis_url: str, queue: str) -> None:
    """A stop in another thread that hangs destroying a resource (user code) must not hold
    a kill forever: the kill returns within its bound (about 12 s here) and says so."""
    release = threading.Event()
    destroying = threading.Event()

    def destroy(r: object) -> None:
        destroying.set()
        release.wait(60)

    manager = TaskManager(Config(on_create=object, on_destroy=destroy, queue=queue,
                                 redis_url=redis_url, connect_timeout=0.5,
                                 heartbeat_interval=0.1))  # fmt: skip
    try:
        assert manager.run_task(lambda ctx, r: 7) == 7  # leaves a pooled resource
        stopping = threading.Thread(target=manager.stop, daemon=True)
        stopping.start()
        wait_until(destroying.is_set, message="the stop to hang in on_destroy")
        killing = threading.Thread(target=manager.kill, daemon=True)
        killing.start()
        killing.join(30)
        assert not killing.is_alive()
    finally:
        release.set()
