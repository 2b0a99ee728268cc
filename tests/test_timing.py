"""Every timing component on a fake clock: deadlines, the heartbeat tick, each backoff and
the supervisor's restart pause. Time moves only when a test moves it, so none of these
waits in real time for more than a few milliseconds."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tasker_dist import Config
from tasker_dist.backoff import Backoff
from tasker_dist.client.listener import ResultListener
from tasker_dist.context import TaskContext
from tasker_dist.errors import RedisUnavailable
from tasker_dist.status import Status
from tasker_dist.store import Fetched, Finished, QueueKeys, QueueStore
from tasker_dist.store.subscription import Message
from tasker_dist.wire import Signer
from tasker_dist.worker.async_loop import AsyncLoop
from tasker_dist.worker.completer import Completer
from tasker_dist.worker.deadlines import Deadlines
from tasker_dist.worker.executor import Report
from tasker_dist.worker.fetcher import Fetcher
from tasker_dist.worker.job import Job
from tasker_dist.worker.local_queue import LocalQueue
from tasker_dist.worker.resources import ResourceHooks
from tasker_dist.worker.runtime import WorkerRuntime
from tasker_dist.worker.supervisor import RestartPause

from .conftest import wait_until
from .fake_clock import FakeClock
from .served_queues import served, served_queue


def job(task_id: str) -> Job:
    return Job(Fetched(task_id, b"", 0, False), served_queue())


def doubling(first: float, count: int, cap: float = float("inf")) -> list[float]:
    return [min(first * 2**i, cap) for i in range(count)]


def assert_delays(seen: list[float], nominal: list[float], jitter: float) -> None:
    assert len(seen) == len(nominal), (seen, nominal)
    for delay, expected in zip(seen, nominal, strict=True):
        assert expected * (1 - jitter) <= delay <= expected * (1 + jitter), (seen, nominal)


# -- Backoff ------------------------------------------------------------------------------


def test_backoff_doubles_up_to_its_cap_within_its_jitter_and_resets() -> None:
    backoff = Backoff(0.1, 1.0, jitter=0.2)
    assert_delays([backoff.next() for _ in range(6)], doubling(0.1, 6, cap=1.0), 0.2)
    backoff.reset()
    assert_delays([backoff.next()], [0.1], 0.2)


def test_backoff_jitter_spreads_clients_that_failed_together() -> None:
    delays = {Backoff(1.0, 10.0).next() for _ in range(50)}
    assert len(delays) > 40
    assert 0.8 <= min(delays) < 0.9
    assert 1.1 < max(delays) <= 1.2


# -- deadlines ----------------------------------------------------------------------------


def test_a_deadline_fires_when_the_clock_passes_it_and_not_before() -> None:
    clock = FakeClock()
    expired: list[str] = []
    deadlines = Deadlines(lambda j: expired.append(j.task_id), clock)
    now = clock.monotonic()
    deadlines.add(job("late"), now + 10)
    deadlines.add(job("early"), now + 5)
    try:
        wait_until(lambda: clock.blocked() == 1, message="the watchdog to wait")
        clock.advance(4.999)
        assert expired == []  # decided: the watchdog saw 4.999 s and went back to waiting
        clock.advance(0.001)
        wait_until(lambda: expired == ["early"], message="the first deadline")
        wait_until(lambda: clock.blocked() == 1, message="the watchdog to wait again")
        clock.advance(4.999)
        assert expired == ["early"]
        clock.advance(0.001)
        wait_until(lambda: expired == ["early", "late"], message="the second deadline")
    finally:
        deadlines.close()


def test_a_task_context_counts_down_on_the_clock_it_is_given() -> None:
    clock = FakeClock()
    ctx = TaskContext("t", 0, "q", clock.monotonic() + 3, clock)
    assert ctx.remaining() == 3
    clock.advance(2)
    assert ctx.remaining() == 1
    clock.advance(5)
    assert ctx.remaining() == 0


def test_task_context_wait_returns_after_its_seconds_on_the_clock() -> None:
    clock = FakeClock()
    ctx = TaskContext("t", 0, "q", None, clock)
    outcome: list[bool] = []
    waiter = threading.Thread(target=lambda: outcome.append(ctx.wait(30)))
    waiter.start()
    wait_until(lambda: clock.blocked() == 1, message="the task to wait")
    clock.advance(29)
    assert outcome == []
    clock.advance(1)
    waiter.join(5)
    assert outcome == [False]  # slept its 30 s, not cancelled


# -- backoffs -----------------------------------------------------------------------------


class FlakyStore:
    """Fails the first ``failures`` calls of what it is asked, as a Redis restart would."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.completed: list[list[Finished]] = []

    def _maybe_fail(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise RedisUnavailable("connection refused")

    def complete(self, worker_id: str, ttl_ms: int, cap: int, finished: list[Finished]) -> int:
        self._maybe_fail()
        self.completed.append(list(finished))
        return 0

    def fetch(self, worker_id: str, limit: int, ttl_ms: int) -> tuple[int, list[Fetched]]:
        self._maybe_fail()
        return 0, [Fetched("fetched", b"", 0, False)]

    def held(self, worker_id: str) -> dict[str, int]:
        return {}

    def wake_worker(self, worker_id: str) -> None:
        pass


@pytest.mark.parametrize("failures", [4, 10])
def test_the_completer_retries_a_failed_write_with_backoff_until_it_lands(failures: int) -> None:
    clock = FakeClock(autojump=True)
    store = FlakyStore(failures)
    completer = Completer("w", 1000, 10, clock)
    completer.start()
    report = Report(Finished("t", Status.COMPLETED, b"r"), served_queue(store=store))
    completer.add(report)
    assert completer.flush(5)
    completer.close(1)
    assert store.completed == [[report.finished]]  # written once, nothing dropped
    assert_delays(clock.waits, doubling(0.05, failures, cap=5.0), 0.2)
    assert completer.take_finished() == 1


def test_on_create_is_retried_with_backoff_and_a_stop_ends_the_retries() -> None:
    clock = FakeClock(autojump=True)
    calls = 0

    def on_create() -> str:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise ConnectionError("database not up yet")
        return "resource"

    hooks = ResourceHooks(Config(on_create=on_create), AsyncLoop(), clock)
    assert hooks.create("slot 0", threading.Event()) == (True, "resource")
    assert_delays(clock.waits, doubling(0.1, 3), 0.2)

    stopping = threading.Event()
    stopping.set()
    assert hooks.create("slot 1", stopping) == (False, None)


def test_the_fetcher_backs_off_while_redis_is_down_then_fetches() -> None:
    clock = FakeClock(autojump=True)
    store = FlakyStore(failures=3)
    local = LocalQueue()

    class Pace:
        mean_exec_s = None

    class OneSlot:
        def ready_count(self) -> int:
            return 1

    fetcher = Fetcher(served(store), "w", 1000, local, pace=Pace(), slots=OneSlot(),
                      in_hand=(local,), clock=clock)  # fmt: skip
    fetcher.start()
    try:
        taken = local.take(lambda: False, lambda j: None)  # a slot waiting for work
        assert taken is not None
        assert taken.task_id == "fetched"
    finally:
        fetcher.stop(5)
        local.close()
    assert_delays(clock.waits, doubling(0.05, 3), 0.2)


class FlakySubscription:
    """Confirms the reply channel, then loses Redis ``failures`` times, then waits (as a
    real one does) until woken."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.pending: list[Message] = []
        self.recovered = threading.Event()
        self.woken = threading.Event()

    def subscribe(self, *channels: str) -> None:
        self.pending.extend(Message("subscribe", channel, 1) for channel in channels)

    def unsubscribe(self, *channels: str) -> None:
        pass

    def wake(self) -> None:
        self.woken.set()

    def get_message(self, *, wait: bool = True, timeout: float | None = None) -> Message | None:
        if self.pending:
            return self.pending.pop(0)
        if self.failures > 0:
            self.failures -= 1
            raise RedisUnavailable("connection reset")
        self.recovered.set()
        self.woken.wait()
        self.woken.clear()
        return None

    def close(self) -> None:
        pass


def test_the_result_listener_backs_off_while_redis_is_down() -> None:
    clock = FakeClock(autojump=True)
    subscription = FlakySubscription(failures=5)

    class Store:
        timeout = 5.0
        keys = QueueKeys("q")

        def subscription(self) -> FlakySubscription:
            return subscription

        def eviction_policy(self) -> str | None:
            return None  # CONFIG not allowed, as on a managed Redis

        def close(self) -> None:
            pass

    listener = ResultListener(Store(), Signer(None, allow_unsigned=True, queue="q"), clock)  # type: ignore[arg-type]
    try:
        assert subscription.recovered.wait(5)
    finally:
        listener.close()
    assert_delays(clock.waits, doubling(0.05, 5, cap=2.0), 0.0)


# -- the supervisor's restart pause -------------------------------------------------------


def test_the_restart_pause_doubles_while_deaths_repeat_and_resets_after_a_healthy_run() -> None:
    clock = FakeClock()
    pause = RestartPause(clock)
    pauses = []
    for _ in range(8):
        pause.started()
        clock.advance(1)
        assert pause.lived() == 1
        wait = pause.died(pause.lived())
        pauses.append(wait)
        assert pause.waiting
        assert not pause.due()
        clock.advance(wait - 0.001)
        assert not pause.due()
        clock.advance(0.001)
        assert pause.due()
    assert pauses == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]

    pause.started()
    assert not pause.waiting
    clock.advance(60)  # a process that lived a minute was healthy
    assert pause.died(pause.lived()) == 0.5


# -- the heartbeat ------------------------------------------------------------------------


@pytest.fixture
def runtime(redis_url: str, queue: str) -> Iterator[tuple[WorkerRuntime, FakeClock]]:
    clock = FakeClock()
    config: Config[Any] = Config(on_create=dict, redis_url=redis_url, queue=queue,
                                 heartbeat_interval=1.0, burst_interval=1.0)  # fmt: skip
    store = QueueStore(redis_url, queue)
    rt = WorkerRuntime(config, store, clock=clock)
    rt.start()
    yield rt, clock
    rt.kill()
    store.close()


def test_the_heartbeat_beats_once_per_interval_on_the_clock(
    runtime: tuple[WorkerRuntime, FakeClock], raw_redis: redis.Redis, queue: str
) -> None:
    rt, clock = runtime
    stats_key = QueueKeys(queue).worker(rt.worker_id)
    # The slot coming up beats at once (not on the tick): wait for that beat.
    wait_until(lambda: raw_redis.hget(stats_key, "active") == b"1", message="the slot's beat")
    wait_until(lambda: clock.blocked() == 1, message="the heartbeat to wait for its tick")
    for _ in range(3):
        raw_redis.delete(stats_key)
        clock.advance(0.999)
        assert not raw_redis.exists(stats_key)  # decided: it saw 0.999 s and kept waiting
        clock.advance(0.001)
        wait_until(lambda: raw_redis.exists(stats_key), message="the beat on the tick")
        wait_until(lambda: clock.blocked() == 1, message="the heartbeat to wait again")
