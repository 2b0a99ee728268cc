"""`merge_raw`: the reads of the sub-queues of a spread queue as one read of one queue.

Counts add up; the execution-time extremes take the extreme; a daemon serving several
sub-queues is one daemon (its slots once, the tasks it runs of each sub-queue added up);
the memory shown is that of the fullest server, since that one refuses tasks first.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Mapping, Sequence

from .stats import RawCluster

__all__ = ["merge_raw"]

_EXTREMES = {"exec_min_us": min, "exec_max_us": max}


def _fullness(raw: RawCluster) -> float:
    return raw.memory_used / raw.memory_limit if raw.memory_limit else 0.0


def _counters(reads: Sequence[Mapping[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    extremes: dict[str, int] = {}
    for counters in reads:
        for name, value in counters.items():
            pick = _EXTREMES.get(name)
            if pick is None:
                total[name] += value
            elif value:  # 0: nothing ran on that sub-queue yet
                extremes[name] = pick(extremes.get(name, value), value)
    return {**total, **extremes}


def _workers(
    reads: Sequence[Sequence[tuple[str, Mapping[str, str]]]],
) -> list[tuple[str, Mapping[str, str]]]:
    merged: dict[str, dict[str, str]] = {}
    for workers in reads:
        for worker_id, fields in workers:
            if not fields:
                continue
            seen = merged.get(worker_id)
            if seen is None:
                merged[worker_id] = dict(fields)
                continue
            with contextlib.suppress(ValueError):  # a malformed entry: shown as read first
                seen["running"] = str(int(seen.get("running", 0)) + int(fields.get("running", 0)))
    return list(merged.items())


def merge_raw(reads: Sequence[RawCluster]) -> RawCluster:
    """One `RawCluster` of the sub-queues read in ``reads`` (at least one)."""
    fullest = max(reads, key=_fullness)
    buckets: Counter[int] = Counter()
    rates: Counter[str] = Counter()
    for raw in reads:
        buckets.update(raw.buckets)
        rates.update(raw.rates)
    return RawCluster(
        now_ms=max(raw.now_ms for raw in reads),
        queued=sum(raw.queued for raw in reads),
        priority=sum(raw.priority for raw in reads),
        workers=_workers([raw.workers for raw in reads]),
        counters=_counters([raw.counters for raw in reads]),
        buckets=dict(buckets),
        rates=dict(rates),
        memory_used=fullest.memory_used,
        memory_limit=fullest.memory_limit,
        eviction_policy=fullest.eviction_policy,
    )
