"""`Stats` and `Metrics` and how they are built from what Redis holds.

Pure logic: the store reads the raw hashes; this module turns them into the frozen
dataclasses that `stats()` and `metrics()` return.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import histogram

__all__ = [
    "FULL_AT",
    "Metrics",
    "RawCluster",
    "Stats",
    "WorkerInfo",
    "build_metrics",
    "build_stats",
]

#: The share of ``maxmemory`` from which `Stats.redis_full` says Redis is full.
FULL_AT = 0.95

#: Seconds of history behind `Metrics.task_arrival_rate` and `task_completion_rate`.
RATE_WINDOW_S = 10


@dataclass(frozen=True)
class WorkerInfo:
    """One live daemon (or in-process manager) serving the queue."""

    worker_id: str
    host: str
    pid: int
    started_at: float
    base_workers: int
    active_workers: int
    burst_workers: int
    running_tasks: int
    available_resources: int


@dataclass(frozen=True)
class Stats:
    """The queue and its workers right now, summed over every live daemon."""

    base_workers: int
    active_workers: int
    burst_workers: int
    queued_tasks: int
    priority_tasks: int
    running_tasks: int
    available_resources: int
    workers: tuple[WorkerInfo, ...]
    #: Redis's memory in use and its ``maxmemory`` (0: no limit), in bytes.
    redis_memory_used: int = 0
    redis_memory_limit: int = 0
    #: True when Redis is within `FULL_AT` of its limit under ``noeviction`` (a write may
    #: be refused, its arguments count too): producers get `QueueFull` until workers have
    #: drained enough (finishing tasks frees memory).
    redis_full: bool = False


@dataclass(frozen=True)
class Metrics:
    """Cluster-wide counters and timings. Times are seconds; rates are per second over the
    last `RATE_WINDOW_S` seconds; percentiles carry `histogram.RELATIVE_ERROR`."""

    total_tasks_arrived: int
    total_tasks_completed: int
    total_tasks_failed: int
    total_tasks_retried: int
    average_execution_time: float
    min_execution_time: float
    max_execution_time: float
    p50_execution_time: float
    p95_execution_time: float
    p99_execution_time: float
    average_wait_time: float
    task_arrival_rate: float
    task_completion_rate: float
    success_rate: float
    failure_rate: float


@dataclass(frozen=True)
class RawCluster:
    """What one read of Redis returns, decoded to str/int."""

    now_ms: int
    queued: int
    priority: int
    workers: Sequence[tuple[str, Mapping[str, str]]]
    counters: Mapping[str, int]
    buckets: Mapping[int, int]
    rates: Mapping[str, int]
    memory_used: int = 0
    memory_limit: int = 0
    eviction_policy: str = ""


def _worker(worker_id: str, h: Mapping[str, str]) -> WorkerInfo:
    def num(name: str) -> int:
        try:
            return int(h.get(name, 0))
        except ValueError:
            return 0

    return WorkerInfo(
        worker_id=worker_id,
        host=h.get("host", "?"),
        pid=num("pid"),
        started_at=num("started_ms") / 1000.0,
        base_workers=num("base"),
        active_workers=num("active"),
        burst_workers=num("burst"),
        running_tasks=num("running"),
        available_resources=num("idle"),
    )


def build_stats(raw: RawCluster) -> Stats:
    workers = tuple(_worker(wid, h) for wid, h in raw.workers if h)
    return Stats(
        base_workers=sum(w.base_workers for w in workers),
        active_workers=sum(w.active_workers for w in workers),
        burst_workers=sum(w.burst_workers for w in workers),
        queued_tasks=raw.queued,
        priority_tasks=raw.priority,
        running_tasks=sum(w.running_tasks for w in workers),
        available_resources=sum(w.available_resources for w in workers),
        workers=workers,
        redis_memory_used=raw.memory_used,
        redis_memory_limit=raw.memory_limit,
        redis_full=raw.eviction_policy == "noeviction"
        and 0 < raw.memory_limit * FULL_AT <= raw.memory_used,
    )


def _rate(rates: Mapping[str, int], kind: str, now_ms: int) -> float:
    """Events per second over the last `RATE_WINDOW_S` seconds, or over the time since the
    first event in that window when it is younger (at least one second), so a burst that
    just started is not diluted by seconds in which nothing had begun."""
    now_s = now_ms / 1000
    first = int(now_s) - RATE_WINDOW_S + 1
    total, oldest = 0, None
    for field, count in rates.items():
        if not field.startswith(kind):
            continue
        second = int(field[2:])
        if second >= first:
            total += count
            oldest = second if oldest is None else min(oldest, second)
    if oldest is None:
        return 0.0
    span = min(float(RATE_WINDOW_S), max(1.0, now_s - oldest))
    return total / span


def build_metrics(raw: RawCluster) -> Metrics:
    c = raw.counters
    completed, failed = c.get("completed", 0), c.get("failed", 0)
    executions = c.get("executions", 0)
    finished = completed + failed
    return Metrics(
        total_tasks_arrived=c.get("arrived", 0),
        total_tasks_completed=completed,
        total_tasks_failed=failed,
        total_tasks_retried=c.get("retried", 0),
        average_execution_time=c.get("exec_sum_us", 0) / executions / 1e6 if executions else 0.0,
        min_execution_time=c.get("exec_min_us", 0) / 1e6,
        max_execution_time=c.get("exec_max_us", 0) / 1e6,
        p50_execution_time=histogram.percentile(raw.buckets, 0.50),
        p95_execution_time=histogram.percentile(raw.buckets, 0.95),
        p99_execution_time=histogram.percentile(raw.buckets, 0.99),
        average_wait_time=c.get("wait_sum_us", 0) / executions / 1e6 if executions else 0.0,
        task_arrival_rate=_rate(raw.rates, "a:", raw.now_ms),
        task_completion_rate=_rate(raw.rates, "c:", raw.now_ms),
        success_rate=completed / finished if finished else 0.0,
        failure_rate=failed / finished if finished else 0.0,
    )
