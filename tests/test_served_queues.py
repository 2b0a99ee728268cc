"""A worker serving several queues, part by part (no Redis): the fetch order, the buffer's
bands, completions written per queue, and the wait on all queues at once."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest

from tasker_dist.clock import SYSTEM_CLOCK
from tasker_dist.status import Status
from tasker_dist.store import Fetched, Finished
from tasker_dist.worker.completer import Completer
from tasker_dist.worker.executor import Report
from tasker_dist.worker.fetcher import Fetcher
from tasker_dist.worker.job import Job
from tasker_dist.worker.local_queue import LocalQueue
from tasker_dist.worker.served import ServedQueue, ServedQueues
from tasker_dist.worker.waiters import Waiters

from .conftest import wait_until
from .served_queues import served_queue


def queues(*spec: tuple[str, int], weighted: bool, store: object = None) -> ServedQueues:
    return ServedQueues([served_queue(name, store, weight) for name, weight in spec],
                        weighted=weighted, rng=random.Random(7))  # fmt: skip


def job(queue: ServedQueue, task_id: str, priority: bool = False) -> Job:
    return Job(Fetched(task_id, b"", 0, priority), queue)


def take_all(local: LocalQueue) -> list[str]:
    taken = []
    while len(local):
        got = local.take(lambda: False, lambda job: None)
        assert got is not None
        taken.append(got.task_id)
    return taken


# -- the order of a fetch -----------------------------------------------------------------


def test_strict_order_is_the_order_given_every_time() -> None:
    served = queues(("a", 1), ("b", 1), ("c", 1), weighted=False)
    assert all([q.name for q in served.order()] == ["a", "b", "c"] for _ in range(100))
    assert "strict order" in served.describe()


@pytest.mark.parametrize(
    ("weights", "shares"), [((3, 1), (0.75, 0.25)), ((1, 1, 2), (0.25, 0.25, 0.5))]
)
def test_weighted_order_puts_each_queue_first_in_proportion_to_its_weight(
    weights: tuple[int, ...], shares: tuple[float, ...]
) -> None:
    names = [f"q{i}" for i in range(len(weights))]
    served = queues(*zip(names, weights, strict=True), weighted=True)
    draws = 20_000
    first = Counter(served.order()[0].name for _ in range(draws))
    for name, share in zip(names, shares, strict=True):
        assert abs(first[name] / draws - share) < 0.02, first
    # every queue is in every order: one that comes first rarely is still fetched from
    # whenever those before it have nothing
    assert all(sorted(q.name for q in served.order()) == names for _ in range(100))
    assert "weighted random order" in served.describe()


def test_one_queue_is_neither_strict_nor_weighted_and_has_two_bands() -> None:
    served = queues(("a", 5), weighted=True)
    assert not served.weighted
    assert served.bands == 2
    assert served.describe() == "queue 'a'"


# -- the buffer ---------------------------------------------------------------------------


def test_in_strict_order_an_earlier_queue_is_started_first_whenever_it_was_fetched() -> None:
    served = queues(("a", 1), ("b", 1), weighted=False)
    a, b = served.all
    local = LocalQueue(served.bands)
    local.put([job(b, "b1"), job(b, "b-prio", priority=True), job(b, "b2")], b.band)
    local.put([job(a, "a1"), job(a, "a-prio", priority=True)], a.band)
    assert take_all(local) == ["a-prio", "a1", "b-prio", "b1", "b2"]


def test_in_weighted_order_priority_tasks_of_every_queue_come_first() -> None:
    served = queues(("a", 3), ("b", 1), weighted=True)
    a, b = served.all
    local = LocalQueue(served.bands)
    local.put([job(b, "b1"), job(b, "b-prio", priority=True)], b.band)
    local.put([job(a, "a1"), job(a, "a-prio", priority=True)], a.band)
    assert take_all(local) == ["b-prio", "a-prio", "b1", "a1"]


def test_draining_one_queue_leaves_the_others_in_order() -> None:
    served = queues(("a", 1), ("b", 1), weighted=False)
    a, b = served.all
    local = LocalQueue(served.bands)
    local.put([job(a, "a1"), job(a, "a2"), job(a, "a-prio", priority=True)], a.band)
    local.put([job(b, "b1"), job(b, "b2")], b.band)
    assert local.task_ids(b) == {"b1", "b2"}
    assert [j.task_id for j in local.drain(a)] == ["a-prio", "a1", "a2"]
    assert len(local) == 2
    assert take_all(local) == ["b1", "b2"]


# -- completions --------------------------------------------------------------------------


class CompleteStore:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def complete(self, worker_id: str, ttl_ms: int, cap: int, finished: list[Finished]) -> int:
        self.calls.append([f.task_id for f in finished])
        return 0


def test_each_result_is_written_to_the_queue_its_task_came_from() -> None:
    stores = {"a": CompleteStore(), "b": CompleteStore()}
    a, b = served_queue("a", stores["a"]), served_queue("b", stores["b"])
    completer = Completer("w", 1000, 10, SYSTEM_CLOCK)
    reports = [Report(Finished(task_id, Status.COMPLETED, b"r"), queue)
               for task_id, queue in [("a1", a), ("b1", b), ("a2", a), ("b2", b)]]  # fmt: skip
    for report in reports:  # handed over before the thread starts: one batch
        completer.add(report)
    completer.start()
    assert completer.flush(5)
    completer.close(1)
    assert stores["a"].calls == [["a1", "a2"]]  # one call per queue of the batch
    assert stores["b"].calls == [["b1", "b2"]]
    assert completer.take_finished() == 4


def test_while_tasks_are_buffered_a_report_waits_for_the_next_ones_and_they_go_together() -> None:
    """A group commit: with tasks waiting in the worker's buffer, the reports that come
    while the first waits are written with it, in one call (before: one call each)."""
    store = CompleteStore()
    a = served_queue("a", store)
    later = [Report(Finished(f"t{n}", Status.COMPLETED, b"r"), a) for n in range(2, 6)]

    def buffered() -> bool:  # the buffered tasks end while the first report waits
        while later:
            completer.add(later.pop(0))
        return True

    completer = Completer("w", 1000, 10, SYSTEM_CLOCK, buffered=buffered)
    completer.add(Report(Finished("t1", Status.COMPLETED, b"r"), a))
    completer.start()
    assert completer.flush(5)
    completer.close(1)
    assert store.calls == [["t1", "t2", "t3", "t4", "t5"]]


# -- waiting on all queues ----------------------------------------------------------------


class SignalStore:
    """A queue's blocking read: returns True when a token is pushed, False when woken."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.cond = threading.Condition()
        self.waiting = 0
        self.passed = 0

    def push(self, token: str = "signal") -> None:
        with self.cond:
            self.tokens.append(token)
            self.cond.notify_all()

    def wait_for_work(self, worker_id: str) -> bool:
        with self.cond:
            self.waiting += 1
            try:
                if not self.cond.wait_for(lambda: self.tokens, 1.0):
                    return False
                return self.tokens.pop(0) == "signal"
            finally:
                self.waiting -= 1

    def wake_worker(self, worker_id: str) -> None:
        self.push("wake")

    def pass_signal(self) -> None:
        self.passed += 1

    def interrupt_wait(self) -> None:
        pass


def test_a_token_on_any_queue_wakes_the_fetcher_within_milliseconds() -> None:
    stores = [SignalStore() for _ in range(3)]
    waiters = Waiters([served_queue(f"q{i}", s) for i, s in enumerate(stores)], "w", SYSTEM_CLOCK)
    try:
        for store in stores:
            woke = threading.Event()

            def fetch(woke: threading.Event = woke) -> None:
                waiters.wait(10)
                woke.set()

            fetcher = threading.Thread(target=fetch)
            fetcher.start()
            wait_until(lambda: all(s.waiting for s in stores), message="every queue waited on")
            started = time.monotonic()
            store.push()
            assert woke.wait(5)
            assert time.monotonic() - started < 0.5
            fetcher.join(5)
    finally:
        waiters.close(5)


def test_a_token_heard_when_the_fetcher_no_longer_waits_is_passed_on() -> None:
    a, b = SignalStore(), SignalStore()
    waiters = Waiters([served_queue("a", a), served_queue("b", b)], "w", SYSTEM_CLOCK)
    try:
        fetcher = threading.Thread(target=waiters.wait, args=(10,))
        fetcher.start()
        wait_until(lambda: a.waiting and b.waiting, message="both queues waited on")
        a.push()  # the fetcher wakes for a
        fetcher.join(5)
        assert not fetcher.is_alive()
        b.push()  # b's reader, still blocked, hears a token nobody here will act on
        wait_until(lambda: b.passed == 1, message="the token passed on")
        assert a.passed == 0
    finally:
        waiters.close(5)


def test_closing_the_waiters_ends_a_fetcher_waiting_and_their_threads() -> None:
    stores = [SignalStore(), SignalStore()]
    waiters = Waiters([served_queue(f"q{i}", s) for i, s in enumerate(stores)], "w", SYSTEM_CLOCK)
    fetcher = threading.Thread(target=waiters.wait, args=(30,))
    fetcher.start()
    wait_until(lambda: all(s.waiting for s in stores), message="every queue waited on")
    started = time.monotonic()
    waiters.close(5)
    fetcher.join(5)
    assert not fetcher.is_alive()
    assert time.monotonic() - started < 1.0
    assert not any(s.waiting for s in stores)
    assert not any(s.passed for s in stores)  # a stop's wake-up is not passed on


class FetchStore(SignalStore):
    """A queue for the fetcher: `fetch` takes from ``queued``."""

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[str] = []

    def fetch(self, worker_id: str, limit: int, ttl_ms: int) -> tuple[int, list[Fetched]]:
        with self.cond:
            taken, self.queued = self.queued[:limit], self.queued[limit:]
        return 0, [Fetched(task_id, b"", 0, False) for task_id in taken]

    def held(self, worker_id: str) -> dict[str, int]:
        return {}


def test_a_token_whose_queue_the_next_fetch_did_not_reach_is_passed_on() -> None:
    """Woken by b's token, the fetcher fills its batch from a (strict order) and never
    gets to b: b's token goes back, for another worker serving b."""
    a, b = FetchStore(), FetchStore()
    served = ServedQueues([served_queue("a", a), served_queue("b", b)], weighted=False)
    local = LocalQueue(served.bands)

    class Pace:
        mean_exec_s = None

    class OneSlot:
        def ready_count(self) -> int:
            return 1

    fetcher = Fetcher(served, "w", 1000, local, pace=Pace(), slots=OneSlot(),
                      in_hand=(local,), clock=SYSTEM_CLOCK)  # fmt: skip
    taken: list[Job | None] = []
    slot = threading.Thread(target=lambda: taken.append(local.take(lambda: False, lambda j: None)))
    slot.start()
    fetcher.start()
    try:
        wait_until(lambda: a.waiting and b.waiting, message="the fetcher waiting on both")
        a.queued.append("a1")  # both have work; only b's token is heard
        b.queued.append("b1")
        b.push()
        slot.join(5)
        assert [j.task_id for j in taken if j] == ["a1"]
        wait_until(lambda: b.passed == 1, message="b's token passed on")
        assert b.queued == ["b1"]
        assert a.passed == 0
    finally:
        fetcher.stop(5)
        local.close()
