"""`histogram`: mergeable log buckets, percentiles within RELATIVE_ERROR (SPEC §5, §9)."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable

import pytest

from tasker_dist.metrics.histogram import (
    GAMMA,
    RELATIVE_ERROR,
    bucket_of,
    bucket_value,
    count_buckets,
    percentile,
)

# Float rounding at bucket edges may add a hair to the stated bound.
TOLERANCE = RELATIVE_ERROR + 1e-9
QUANTILES = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)


def exact(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ceil(q*n) values <= it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(round(q * len(ordered), 9)))
    return ordered[rank - 1]


def relative_error(estimate: float, truth: float) -> float:
    return abs(estimate - truth) / truth


def _uniform(rng: random.Random) -> float:
    return rng.uniform(0.001, 0.5)


def _exponential(rng: random.Random) -> float:
    return rng.expovariate(1 / 0.02)


def _lognormal(rng: random.Random) -> float:
    return rng.lognormvariate(-6, 2)


def _bimodal(rng: random.Random) -> float:
    return rng.gauss(0.002, 0.0002) if rng.random() < 0.9 else rng.gauss(1.5, 0.1)


def _pareto(rng: random.Random) -> float:
    return 1e-4 * rng.paretovariate(1.2)


DISTRIBUTIONS: dict[str, Callable[[random.Random], float]] = {
    "uniform": _uniform,
    "exponential": _exponential,
    "lognormal": _lognormal,
    "bimodal": _bimodal,
    "pareto": _pareto,
}


def sample(name: str, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    draw = DISTRIBUTIONS[name]
    # Durations under 1 µs count as 1 µs by design; keep the samples above that.
    return [max(draw(rng), 2e-6) for _ in range(n)]


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("n", [1, 7, 100, 5000])
def test_percentile_within_relative_error(name: str, n: int) -> None:
    values = sample(name, n, seed=n * 31 + len(name))
    buckets = count_buckets(values)
    for q in QUANTILES:
        truth = exact(values, q)
        estimate = percentile(buckets, q)
        assert relative_error(estimate, truth) <= TOLERANCE, (q, estimate, truth)


def test_bucket_value_is_within_relative_error_of_every_value_in_bucket() -> None:
    rng = random.Random(7)
    for _ in range(20000):
        seconds = 10 ** rng.uniform(-5.5, 3)
        estimate = bucket_value(bucket_of(seconds))
        assert relative_error(estimate, seconds) <= TOLERANCE, seconds


def test_bucket_edges() -> None:
    for index in (0, 1, 100, 700):
        low = GAMMA**index / 1e6
        assert bucket_of(low * (1 + 1e-9)) == index
        assert bucket_of(low * GAMMA * (1 - 1e-9)) == index


def test_durations_under_one_microsecond_count_as_one() -> None:
    assert bucket_of(0.0) == bucket_of(1e-7) == bucket_of(-1.0) == bucket_of(1e-6) == 0


def test_merged_halves_give_the_same_percentiles_as_all() -> None:
    values = sample("lognormal", 4001, seed=99)
    first, second = values[:1500], values[1500:]
    merged: Counter[int] = Counter()
    # Sum the way workers do in Redis (HINCRBY per bucket).
    for part in (count_buckets(first), count_buckets(second)):
        for index, count in part.items():
            merged[index] += count
    whole = count_buckets(values)
    assert merged == whole
    for q in QUANTILES:
        assert percentile(merged, q) == percentile(whole, q)
        assert relative_error(percentile(merged, q), exact(values, q)) <= TOLERANCE


def test_merging_many_workers_keeps_the_error_bound() -> None:
    rng = random.Random(5)
    workers = [[rng.expovariate(1 / (0.001 * (w + 1))) for _ in range(300)] for w in range(8)]
    merged: Counter[int] = Counter()
    for durations in workers:
        merged.update(count_buckets(durations))
    everything = [d for durations in workers for d in durations]
    for q in (0.5, 0.95, 0.99):
        assert relative_error(percentile(merged, q), exact(everything, q)) <= TOLERANCE


def test_percentiles_are_not_biased_low() -> None:
    """The Go original's p95 of 1..100 ms came out at the 94th value or below."""
    values = [ms / 1000 for ms in range(1, 101)]
    buckets = count_buckets(values)
    assert percentile(buckets, 0.95) >= 0.095 * (1 - TOLERANCE)
    assert percentile(buckets, 0.99) >= 0.099 * (1 - TOLERANCE)
    assert percentile(buckets, 0.50) >= 0.050 * (1 - TOLERANCE)
    assert percentile(buckets, 1.0) >= 0.100 * (1 - TOLERANCE)
    # and not biased high either: below the next value's bucket
    assert percentile(buckets, 0.95) < 0.096 * (1 - TOLERANCE)


def test_single_value() -> None:
    buckets = count_buckets([0.25])
    for q in (0.001, 0.5, 1.0):
        assert relative_error(percentile(buckets, q), 0.25) <= TOLERANCE


def test_percentile_is_monotonic_in_q() -> None:
    buckets = count_buckets(sample("pareto", 2000, seed=3))
    results = [percentile(buckets, q / 100) for q in range(1, 101)]
    assert results == sorted(results)


def test_empty_is_zero() -> None:
    assert percentile({}, 0.5) == 0.0
    assert percentile(Counter(), 0.99) == 0.0
    assert percentile({3: 0, 10: 0}, 0.95) == 0.0


def test_zero_and_negative_counts_are_ignored() -> None:
    value = 0.01
    buckets = {bucket_of(0.001): 0, bucket_of(value): 5, bucket_of(1.0): -2}
    assert relative_error(percentile(buckets, 1.0), value) <= TOLERANCE
    assert relative_error(percentile(buckets, 0.01), value) <= TOLERANCE


@pytest.mark.parametrize("q", [0.0, -0.5, 1.0000001, 2.0, 95.0, math.nan, math.inf])
def test_q_out_of_range_raises_value_error(q: float) -> None:
    with pytest.raises(ValueError, match="q must be in"):
        percentile({bucket_of(0.1): 1}, q)


def test_stated_relative_error_is_about_one_percent() -> None:
    assert 0.005 < RELATIVE_ERROR <= 0.01


def test_nearest_rank_is_not_thrown_off_by_float_rounding() -> None:
    values = [ms / 1000 for ms in range(1, 101)]
    buckets = count_buckets(values)
    for q in (0.07, 0.14, 0.28, 0.56):
        truth = exact(values, q)
        assert relative_error(percentile(buckets, q), truth) <= TOLERANCE, q
