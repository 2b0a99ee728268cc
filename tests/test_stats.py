"""`stats`: Stats and Metrics built from one read of the cluster's hashes (SPEC §5, §9)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import pytest

from tasker_dist.metrics import histogram
from tasker_dist.metrics.stats import (
    RATE_WINDOW_S,
    Metrics,
    RawCluster,
    build_metrics,
    build_stats,
)

NOW_S = 1_000_000


def raw(
    *,
    now_ms: int = NOW_S * 1000 + 500,
    queued: int = 0,
    priority: int = 0,
    workers: Sequence[tuple[str, Mapping[str, str]]] = (),
    counters: Mapping[str, int] | None = None,
    buckets: Mapping[int, int] | None = None,
    rates: Mapping[str, int] | None = None,
) -> RawCluster:
    return RawCluster(
        now_ms=now_ms,
        queued=queued,
        priority=priority,
        workers=workers,
        counters=counters or {},
        buckets=buckets or {},
        rates=rates or {},
    )


def worker_hash(**fields: object) -> dict[str, str]:
    return {k: str(v) for k, v in fields.items()}


# -- stats ----------------------------------------------------------------------------------


def test_stats_sum_over_workers() -> None:
    w1 = worker_hash(
        host="a", pid=10, started_ms=5000, base=2, active=3, burst=1, running=2, idle=1
    )
    w2 = worker_hash(
        host="b", pid=20, started_ms=7500, base=4, active=4, burst=0, running=1, idle=3
    )
    stats = build_stats(raw(queued=7, priority=2, workers=[("w1", w1), ("w2", w2)]))
    assert stats.base_workers == 6
    assert stats.active_workers == 7
    assert stats.burst_workers == 1
    assert stats.running_tasks == 3
    assert stats.available_resources == 4
    assert stats.queued_tasks == 7
    assert stats.priority_tasks == 2
    assert [w.worker_id for w in stats.workers] == ["w1", "w2"]
    assert [w.host for w in stats.workers] == ["a", "b"]
    assert stats.workers[0].pid == 10
    assert stats.workers[1].started_at == 7.5


def test_stats_skip_expired_workers_and_tolerate_bad_fields() -> None:
    good = worker_hash(host="h", base=1, active=1, running="x", idle="")
    stats = build_stats(raw(workers=[("gone", {}), ("w", good)]))
    assert [w.worker_id for w in stats.workers] == ["w"]
    assert stats.base_workers == 1
    assert stats.running_tasks == 0
    assert stats.available_resources == 0
    assert stats.burst_workers == 0


def test_stats_of_an_empty_cluster() -> None:
    stats = build_stats(raw(queued=3))
    assert stats.workers == ()
    assert stats.base_workers == stats.active_workers == stats.running_tasks == 0
    assert stats.queued_tasks == 3


def test_stats_and_metrics_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        build_stats(raw()).queued_tasks = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        build_metrics(raw()).success_rate = 1.0  # type: ignore[misc]


# -- metrics: counters ----------------------------------------------------------------------


def test_all_failed_gives_failure_rate_one() -> None:
    m = build_metrics(raw(counters={"arrived": 4, "failed": 4}))
    assert m.success_rate == 0.0
    assert m.failure_rate == 1.0


def test_all_succeeded_gives_success_rate_one() -> None:
    m = build_metrics(raw(counters={"completed": 5}))
    assert m.success_rate == 1.0
    assert m.failure_rate == 0.0


def test_mixed_rates_sum_to_one() -> None:
    m = build_metrics(raw(counters={"completed": 3, "failed": 1}))
    assert m.success_rate == 0.75
    assert m.failure_rate == 0.25


def test_nothing_finished_gives_zero_rates() -> None:
    m = build_metrics(raw(counters={"arrived": 9, "retried": 2}))
    assert m.success_rate == 0.0
    assert m.failure_rate == 0.0
    assert m.total_tasks_arrived == 9
    assert m.total_tasks_retried == 2


def test_retries_do_not_count_as_finished() -> None:
    m = build_metrics(raw(counters={"completed": 1, "retried": 5}))
    assert m.success_rate == 1.0


def test_counters_and_averages() -> None:
    counters = {
        "arrived": 10,
        "completed": 6,
        "failed": 2,
        "retried": 1,
        "executions": 9,
        "exec_sum_us": 900_000,
        "exec_min_us": 1_500,
        "exec_max_us": 400_000,
        "wait_sum_us": 4_500_000,
    }
    m = build_metrics(raw(counters=counters))
    assert m.total_tasks_arrived == 10
    assert m.total_tasks_completed == 6
    assert m.total_tasks_failed == 2
    assert m.total_tasks_retried == 1
    assert m.average_execution_time == pytest.approx(0.1)
    assert m.min_execution_time == pytest.approx(0.0015)
    assert m.max_execution_time == pytest.approx(0.4)
    assert m.average_wait_time == pytest.approx(0.5)


def test_empty_metrics_are_zero() -> None:
    m = build_metrics(raw())
    for field in dataclasses.fields(Metrics):
        assert getattr(m, field.name) == 0, field.name


# -- metrics: percentiles -------------------------------------------------------------------


def test_percentiles_come_from_the_buckets() -> None:
    durations = [ms / 1000 for ms in range(1, 201)]
    buckets = dict(histogram.count_buckets(durations))
    m = build_metrics(raw(buckets=buckets))
    bound = histogram.RELATIVE_ERROR + 1e-9
    assert abs(m.p50_execution_time - 0.100) / 0.100 <= bound
    assert abs(m.p95_execution_time - 0.190) / 0.190 <= bound
    assert abs(m.p99_execution_time - 0.198) / 0.198 <= bound
    assert m.p50_execution_time < m.p95_execution_time < m.p99_execution_time


# -- metrics: rates -------------------------------------------------------------------------


def second_fields(kind: str, counts: Mapping[int, int]) -> dict[str, int]:
    return {f"{kind}:{second}": count for second, count in counts.items()}


def test_steady_rate_over_the_window() -> None:
    # 10 per second for the last nine whole seconds, and 5 in the current half second.
    counts = {NOW_S - k: 10 for k in range(1, RATE_WINDOW_S)} | {NOW_S: 5}
    m = build_metrics(raw(now_ms=NOW_S * 1000 + 500, rates=second_fields("a", counts)))
    assert m.task_arrival_rate == pytest.approx(10.0)
    assert m.task_completion_rate == 0.0


def test_old_buckets_are_ignored() -> None:
    recent = {NOW_S - k: 4 for k in range(RATE_WINDOW_S)}
    old = {NOW_S - RATE_WINDOW_S: 1000, NOW_S - 3600: 99999}
    with_old = second_fields("c", recent | old)
    without_old = second_fields("c", recent)
    now_ms = NOW_S * 1000 + 999
    rate = build_metrics(raw(now_ms=now_ms, rates=with_old)).task_completion_rate
    assert rate == build_metrics(raw(now_ms=now_ms, rates=without_old)).task_completion_rate
    assert rate == pytest.approx(4.0, rel=0.001)


def test_only_old_buckets_give_zero_rate() -> None:
    rates = second_fields("a", {NOW_S - 60: 500}) | second_fields("c", {NOW_S - 11: 5})
    m = build_metrics(raw(rates=rates))
    assert m.task_arrival_rate == 0.0
    assert m.task_completion_rate == 0.0


def test_a_burst_that_just_began_is_not_diluted() -> None:
    # 100 arrivals in the last three seconds, nothing before: 100 / ~3 s, not 100 / 10 s.
    counts = {NOW_S - 2: 40, NOW_S - 1: 40, NOW_S: 20}
    m = build_metrics(raw(now_ms=NOW_S * 1000 + 500, rates=second_fields("a", counts)))
    assert m.task_arrival_rate == pytest.approx(100 / 2.5)
    assert m.task_arrival_rate > 100 / RATE_WINDOW_S * 3


def test_a_burst_in_its_first_second_counts_over_one_second() -> None:
    m = build_metrics(raw(now_ms=NOW_S * 1000 + 100, rates={f"a:{NOW_S}": 7}))
    assert m.task_arrival_rate == pytest.approx(7.0)


def test_arrival_and_completion_rates_are_separate() -> None:
    rates = second_fields("a", {NOW_S - 1: 30}) | second_fields("c", {NOW_S - 1: 6})
    m = build_metrics(raw(now_ms=NOW_S * 1000, rates=rates))
    assert m.task_arrival_rate == pytest.approx(30.0)
    assert m.task_completion_rate == pytest.approx(6.0)
