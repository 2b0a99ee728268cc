"""`burst_delta` (SPEC §4 burst, both directions) and the fetcher's batch sizes."""

from __future__ import annotations

import itertools
import threading

import pytest

from tasker_dist.clock import SYSTEM_CLOCK
from tasker_dist.store import Fetched
from tasker_dist.worker.burst import BurstSample, burst_delta
from tasker_dist.worker.fetcher import (
    BATCH_BUDGET_S,
    MAX_BUDGET_S,
    MAX_PER_SLOT,
    Fetcher,
    ahead_of_slots,
    budget,
    per_slot,
)
from tasker_dist.worker.local_queue import LocalQueue

from .served_queues import served

BASE = 2
LIMIT = 6


def sample(
    slots: int, busy: int, backlog: int, previous_backlog: int = 0, completed: int = 0
) -> BurstSample:
    return BurstSample(slots, busy, backlog, previous_backlog, completed)


# -- growing --------------------------------------------------------------------------------


def test_grows_when_backlog_grows_and_all_slots_busy() -> None:
    assert burst_delta(BASE, LIMIT, sample(2, 2, backlog=10, previous_backlog=4)) > 0


def test_grows_when_backlog_holds_steady_and_all_slots_busy() -> None:
    assert burst_delta(BASE, LIMIT, sample(2, 2, backlog=5, previous_backlog=5)) > 0


def test_grows_to_the_limit_when_nothing_completed() -> None:
    # No pace known yet (no completions): take all the room there is.
    assert burst_delta(BASE, LIMIT, sample(2, 2, backlog=3, previous_backlog=1)) == LIMIT - 2


def test_grows_by_enough_to_clear_the_backlog_at_current_pace() -> None:
    # 2 slots finished 4 tasks in the interval: 2 per slot. 6 waiting -> 3 slots -> +1.
    delta = burst_delta(BASE, 10, sample(2, 2, backlog=6, previous_backlog=6, completed=4))
    assert delta == 1
    # 20 waiting at that pace -> 10 slots -> +8, capped by the limit (room 8 of 10).
    delta = burst_delta(BASE, 10, sample(2, 2, backlog=20, previous_backlog=6, completed=4))
    assert delta == 8
    delta = burst_delta(BASE, 5, sample(2, 2, backlog=20, previous_backlog=6, completed=4))
    assert delta == 3


def test_grows_by_at_least_one_when_pace_would_clear_backlog() -> None:
    # Fast slots would clear the backlog without help, yet the backlog did not shrink.
    delta = burst_delta(BASE, LIMIT, sample(2, 2, backlog=2, previous_backlog=2, completed=100))
    assert delta == 1


def test_never_grows_above_limit() -> None:
    assert burst_delta(BASE, LIMIT, sample(LIMIT, LIMIT, backlog=50, previous_backlog=1)) == 0
    assert burst_delta(BASE, LIMIT, sample(LIMIT - 1, LIMIT - 1, 50, 1)) == 1


def test_no_burst_when_limit_equals_base() -> None:
    assert burst_delta(BASE, BASE, sample(BASE, BASE, backlog=100, previous_backlog=1)) == 0


def test_does_not_grow_while_a_slot_is_idle() -> None:
    assert burst_delta(BASE, LIMIT, sample(3, 2, backlog=10, previous_backlog=4)) == 0


def test_does_not_grow_when_backlog_is_shrinking() -> None:
    assert burst_delta(BASE, LIMIT, sample(2, 2, backlog=5, previous_backlog=9)) == 0


def test_no_change_while_backlog_shrinks_with_burst_slots() -> None:
    # Burst slots are catching up: neither grow nor retire them while work remains.
    assert burst_delta(BASE, LIMIT, sample(5, 5, backlog=3, previous_backlog=10)) == 0
    assert burst_delta(BASE, LIMIT, sample(5, 2, backlog=3, previous_backlog=10)) == 0


# -- shrinking ------------------------------------------------------------------------------


def test_shrinks_idle_burst_slots_when_nothing_waits() -> None:
    assert burst_delta(BASE, LIMIT, sample(5, 0, backlog=0, previous_backlog=3)) == -3


def test_shrinks_only_idle_slots() -> None:
    assert burst_delta(BASE, LIMIT, sample(5, 4, backlog=0)) == -1
    assert burst_delta(BASE, LIMIT, sample(5, 5, backlog=0)) == 0


def test_never_shrinks_below_base() -> None:
    assert burst_delta(BASE, LIMIT, sample(BASE, 0, backlog=0)) == 0
    assert burst_delta(BASE, LIMIT, sample(3, 0, backlog=0)) == -1


def test_no_change_when_idle_at_base() -> None:
    assert burst_delta(BASE, LIMIT, sample(BASE, 1, backlog=0, previous_backlog=0)) == 0


def test_bounds_hold_for_every_sample() -> None:
    for base, limit in ((1, 1), (1, 4), (2, 6), (3, 8)):
        for slots, busy, backlog, previous, completed in itertools.product(
            range(base, limit + 1), range(limit + 1), (0, 1, 5, 40), (0, 1, 5, 40), (0, 1, 9)
        ):
            if busy > slots:
                continue
            s = sample(slots, busy, backlog, previous, completed)
            delta = burst_delta(base, limit, s)
            assert base <= slots + delta <= limit, (base, limit, s, delta)
            if delta < 0:
                assert backlog == 0
                assert -delta <= slots - busy  # only idle slots are retired
            if delta > 0:
                assert backlog > 0
                assert busy == slots
                assert backlog >= previous


# -- batch size -----------------------------------------------------------------------------


@pytest.mark.parametrize("mean", [None, 0.0, -1.0])
def test_one_task_per_slot_without_a_known_pace(mean: float | None) -> None:
    assert per_slot(mean) == 1
    assert ahead_of_slots(50, mean) == 0


def test_one_task_per_slot_for_long_tasks() -> None:
    assert per_slot(1.0) == 1
    assert per_slot(BATCH_BUDGET_S) == 1
    assert per_slot(BATCH_BUDGET_S * 1.5) == 1


def test_a_budget_of_short_tasks_per_slot() -> None:
    expected = int(BATCH_BUDGET_S / 0.0001)
    assert 1 < expected < MAX_PER_SLOT
    assert per_slot(0.0001) == expected


def test_the_budget_covers_twice_what_fetches_take_within_bounds() -> None:
    assert budget(None) == BATCH_BUDGET_S  # no fetch measured yet
    assert budget(0.0002) == BATCH_BUDGET_S  # fast fetches: the usual budget
    assert budget(0.005) == 0.010  # a reply that waited for the lock held by a busy task
    assert budget(1.0) == MAX_BUDGET_S  # never more, however slow
    # 1 ms tasks: 2 per slot on the usual budget, 10 once fetches take 5 ms
    assert per_slot(0.001) == 2
    assert per_slot(0.001, budget(0.005)) == 10
    assert ahead_of_slots(50, 0.010, budget(0.005)) == 50


def test_short_tasks_are_capped_per_slot() -> None:
    assert per_slot(1e-9) == MAX_PER_SLOT


def test_a_budget_of_the_pools_work_ahead_of_longer_tasks() -> None:
    # 50 slots of 10 ms tasks: 2 ms of the pool's work is 10 tasks
    assert ahead_of_slots(50, 0.010) == int(50 * BATCH_BUDGET_S / 0.010) == 10
    assert ahead_of_slots(50, 1.0) == 0  # tasks of a second are never fetched ahead
    assert ahead_of_slots(1, 0.010) == 0
    assert ahead_of_slots(4, BATCH_BUDGET_S / 1.5) == 4  # at most one per slot


class RecordingStore:
    """The fetcher's side of Redis: records each fetch's limit; nothing is ever queued."""

    def __init__(self) -> None:
        self.limits: list[int] = []
        self.fetched = threading.Event()
        self.woken = threading.Event()

    def fetch(self, worker_id: str, limit: int, ttl_ms: int) -> tuple[int, list[Fetched]]:
        self.limits.append(limit)
        self.fetched.set()
        return 0, []

    def wait_for_work(self, worker_id: str) -> None:
        self.woken.wait(5)

    def wake_worker(self, worker_id: str) -> None:
        self.woken.set()


def test_a_batch_as_soon_as_the_first_tasks_turn_out_short() -> None:
    """A worker starting on unknown tasks fetches one per slot; once its first task is
    seen to be short, the next fetch is a batch, not one more task per round trip."""
    local = LocalQueue()
    asked = threading.Event()

    class Pace:
        seen: float | None = None

        @property
        def mean_exec_s(self) -> float | None:
            asked.set()
            return self.seen

    class OneSlot:
        def ready_count(self) -> int:
            return 1

    pace = Pace()
    store = RecordingStore()
    fetcher = Fetcher(served(store), "w", 1000, local, pace=pace, slots=OneSlot(), in_hand=(),
                      clock=SYSTEM_CLOCK)  # fmt: skip

    def slot() -> None:  # ran its first task in 10 us, now waits for the next
        asked.wait(5)
        pace.seen = 10e-6
        local.take(lambda: False, lambda job: None)

    waiting = threading.Thread(target=slot, daemon=True)
    waiting.start()
    fetcher.start()
    try:
        assert store.fetched.wait(5), "the fetcher never fetched"
        assert store.limits[0] == per_slot(10e-6) > 1
    finally:
        fetcher.stop(5)
        local.close()
        waiting.join(5)
