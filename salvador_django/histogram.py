"""Step durations counted in fixed log-scale buckets, and percentiles read from them.

Bucket ``i`` holds the durations ``d`` with ``floor(PER_DOUBLING * log2(d / SMALLEST))
== i``: four buckets per doubling from 1 ms, bucket ``i`` spanning
``[2**(i/4), 2**((i+1)/4))`` ms. Durations under 1 ms fall in bucket 0, those over
``2**(BUCKETS/4)`` ms (37 h) in the last one. A percentile read from the buckets is the
geometric middle of the bucket that holds it: within a factor ``2**(1/8)`` (9%) of a
duration the bucket holds, for durations from 1 ms to 37 h.

Histograms are ``{"<bucket>": count}`` (JSON objects: their keys are strings): they add
up across hours and workflows, which percentiles do not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

SMALLEST = 0.001  # seconds: the lower bound of bucket 1
PER_DOUBLING = 4
BUCKETS = 108  # up to 2**27 ms, 37 h

Histogram = dict[str, int]


def bucket(seconds: float) -> int:
    """The bucket of a duration in seconds."""
    if seconds <= SMALLEST:
        return 0
    index = math.floor(PER_DOUBLING * math.log2(seconds / SMALLEST))
    return max(0, min(BUCKETS - 1, index))


def lower_bound(index: int) -> float:
    """The shortest duration (seconds) bucket ``index`` holds (0 for bucket 0)."""
    return 0.0 if index <= 0 else SMALLEST * 2 ** (index / PER_DOUBLING)


def middle(index: int) -> float:
    """The duration (seconds) that stands for bucket ``index``: its geometric middle."""
    return SMALLEST * 2 ** ((index + 0.5) / PER_DOUBLING)


def merge(histograms: Iterable[Mapping[str, int]]) -> Histogram:
    """The sum of ``histograms``."""
    total: Histogram = {}
    for histogram in histograms:
        for key, count in histogram.items():
            total[key] = total.get(key, 0) + count
    return total


def percentile(histogram: Mapping[str, int], q: float) -> float | None:
    """The ``q``-th percentile (0 < q <= 100) of the durations counted, in seconds, by
    nearest rank; None when the histogram is empty."""
    counts = sorted((int(key), count) for key, count in histogram.items() if count > 0)
    total = sum(count for _index, count in counts)
    if not total:
        return None
    rank = max(1, math.ceil(q / 100 * total))
    seen = 0
    for index, count in counts:
        seen += count
        if seen >= rank:
            return middle(index)
    return middle(counts[-1][0])  # not reached: seen ends at total >= rank
