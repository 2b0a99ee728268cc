"""`LocalQueue`: the hand-off of fetched jobs between the fetcher and the slots."""

from __future__ import annotations

import sys
import threading

from tasker_dist.store.calls import Fetched
from tasker_dist.worker.job import Job
from tasker_dist.worker.local_queue import LocalQueue

from .conftest import wait_until
from .served_queues import served_queue

QUEUE = served_queue()


def jobs(count: int, priority: bool = False) -> list[Job]:
    return [Job(Fetched(f"t{i}-{priority}", b"", 0, priority), QUEUE) for i in range(count)]


def blocked(thread: threading.Thread) -> bool:
    """The thread sits in a `threading.Condition.wait`."""
    frame = sys._current_frames().get(thread.ident or -1)
    return frame is not None and frame.f_code.co_name == "wait"


def test_priority_jobs_first_then_in_fetch_order() -> None:
    local = LocalQueue()
    local.put(jobs(2))
    local.put(jobs(1, priority=True))
    taken = [local.take(lambda: False, lambda job: None) for _ in range(3)]
    assert [job.task_id for job in taken if job] == ["t0-True", "t0-False", "t1-False"]


def test_a_slot_waiting_for_work_wakes_the_fetcher() -> None:
    local = LocalQueue()
    slot = threading.Thread(target=local.take, args=(lambda: False, lambda job: None))
    slot.start()
    try:
        assert local.wait_for_room(10, 0) == (1, 0)  # one slot waiting, nothing buffered
    finally:
        local.close()
        slot.join(5)


def test_the_fetcher_runs_at_low_water_even_while_a_slot_keeps_the_gil() -> None:
    """A slot running short tasks back to back holds the GIL for several ms; a fetcher
    woken at low water must still get to send its request while jobs remain, or the slot
    ends up waiting a whole round trip for the next batch."""
    local = LocalQueue()
    batch, low_water = 400, 200
    local.put(jobs(batch))
    seen: list[tuple[int, int]] = []

    def fetcher() -> None:
        seen.append(local.wait_for_room(10, low_water))

    woken = threading.Thread(target=fetcher)
    woken.start()
    wait_until(lambda: blocked(woken), message="the fetcher to wait for room")
    for _ in range(batch):
        if local.take(lambda: False, lambda job: None) is None:
            break
        sum(range(300))  # a short task in pure Python: it never lets go of the GIL
    woken.join(5)
    local.close()
    assert seen, "the fetcher never woke"
    slots_waiting, buffered = seen[0]
    assert buffered > 0, "the fetcher woke only once the slot had nothing left"
    assert slots_waiting == 0
