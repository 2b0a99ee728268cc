"""Bursting: when to add or retire burst slots (`burst_delta`, pure logic),
and `BurstControl`, which judges it once per interval and acts on it."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from .local_queue import LocalQueue
from .slot_pool import SlotPool
from .task_runner import TaskRunner

__all__ = ["BurstControl", "BurstSample", "burst_delta"]

log = logging.getLogger("tasker_dist.worker")


@dataclass(frozen=True, slots=True)
class BurstSample:
    """What a worker saw over one ``burst_interval``."""

    slots: int  # slots alive or being created
    busy: int  # slots running a task now
    backlog: int  # tasks waiting: both lanes in Redis plus this worker's buffer
    previous_backlog: int  # the backlog one interval ago
    completed: int  # tasks this worker finished during the interval


def burst_delta(base: int, limit: int, s: BurstSample) -> int:
    """How many slots to add (> 0) or retire (< 0) now.

    Grow while work waits, every slot is busy and the backlog did not shrink over the
    interval (arrivals outpace completions): by enough slots to clear the backlog in about
    one interval at the current per-slot pace, within ``limit``. Retire idle burst slots
    once nothing waits. Never below ``base`` nor above ``limit``.
    """
    if s.backlog > 0 and s.busy >= s.slots and s.backlog >= s.previous_backlog:
        room = limit - s.slots
        if room <= 0:
            return 0
        per_slot = s.completed / s.slots if s.slots else 0.0
        wanted = math.ceil(s.backlog / per_slot) - s.slots if per_slot > 0 else room
        return max(1, min(room, wanted))
    if s.backlog == 0 and s.slots > base:
        idle = s.slots - s.busy
        return -min(idle, s.slots - base)
    return 0


class BurstControl:
    """Judges bursting once per ``burst_interval`` from what the heartbeat saw, and adds
    or retires burst slots accordingly."""

    def __init__(
        self, base: int, limit: int, slots: SlotPool, jobs: LocalQueue, runner: TaskRunner
    ) -> None:
        self._base = base
        self._limit = limit
        self._slots = slots
        self._jobs = jobs
        self._runner = runner
        self._previous_backlog = 0

    def adjust(self, queued: int) -> None:
        """Judge bursting, with ``queued`` tasks waiting in Redis (on both lanes of every
        queue served) as the heartbeats saw them."""
        counts = self._slots.counts()
        backlog = queued + len(self._jobs)
        sample = BurstSample(
            slots=counts.slots,
            busy=counts.busy,
            backlog=backlog,
            previous_backlog=self._previous_backlog,
            completed=self._runner.take_finished(),
        )
        self._previous_backlog = backlog
        delta = burst_delta(self._base, self._limit, sample)
        if delta > 0:
            log.info("backlog %d: adding %d burst slot(s)", backlog, delta)
            self._slots.add(delta, burst=True)
        elif delta < 0 and (retired := self._slots.retire_idle_burst(-delta)):
            log.info("queue empty: retiring %d burst slot(s)", retired)
