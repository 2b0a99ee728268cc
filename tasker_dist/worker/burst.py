"""When to add or retire burst slots (SPEC §4): pure logic, judged once per interval."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["BurstSample", "burst_delta"]


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
