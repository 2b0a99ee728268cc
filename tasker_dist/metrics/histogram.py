"""A mergeable log-bucket histogram of durations (as in DDSketch / HDR Histogram).

Bucket ``i`` counts durations in ``[GAMMA**i, GAMMA**(i+1))`` microseconds, so buckets from
any number of workers add up with ``HINCRBY`` and a percentile read from the sum is within
a relative error of ``(GAMMA - 1) / (GAMMA + 1)`` (RELATIVE_ERROR, about 1 %) of the exact
nearest-rank percentile. Durations under 1 µs count as 1 µs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

__all__ = ["GAMMA", "RELATIVE_ERROR", "bucket_of", "bucket_value", "count_buckets", "percentile"]

GAMMA = 1.02
RELATIVE_ERROR = (GAMMA - 1) / (GAMMA + 1)
_LOG_GAMMA = math.log(GAMMA)


def bucket_of(seconds: float) -> int:
    """The index of the bucket that counts a duration of ``seconds``."""
    micros = max(seconds * 1e6, 1.0)
    return int(math.log(micros) / _LOG_GAMMA)


def bucket_value(index: int) -> float:
    """The duration (seconds) that stands for bucket ``index``: the point of its range with
    the smallest worst-case relative error."""
    return 2 * GAMMA ** (index + 1) / (GAMMA + 1) / 1e6


def count_buckets(durations: Iterable[float]) -> Counter[int]:
    """Bucket counts for a batch of durations, ready to add to the shared histogram."""
    return Counter(bucket_of(d) for d in durations)


def percentile(buckets: Mapping[int, int], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 1) of the counted durations, 0.0 if none.

    Nearest rank (the smallest value with at least ``ceil(q * n)`` values at or below it)
    never reports a value below the true percentile's bucket, unlike truncating indexes.
    """
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], got {q}")
    total = sum(c for c in buckets.values() if c > 0)
    if total == 0:
        return 0.0
    # Rounded first: 0.07 * 100 is 7.000000000000001 in floating point, not rank 8.
    rank = max(1, math.ceil(round(q * total, 9)))
    seen = 0
    for index in sorted(buckets):
        count = buckets[index]
        if count <= 0:
            continue
        seen += count
        if seen >= rank:
            return bucket_value(index)
    raise AssertionError("unreachable: rank <= total")
