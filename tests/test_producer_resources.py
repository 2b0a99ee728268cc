"""What a producer costs its process and Redis: CPU while idle, connections under many
concurrent calls, and what is left of one that was dropped without being closed. Set
$TASKER_RESOURCES_REPORT to a file to get the figures as JSON (the README quotes them)."""

from __future__ import annotations

import time

from tasker_dist import Producer

from . import tasks
from .conftest import report

IDLE_PRODUCERS = 100
IDLE_WINDOW_S = 2.0


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
