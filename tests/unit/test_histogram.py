"""Percentiles read from log-scale buckets: how close they come to the true ones."""

from __future__ import annotations

import math
import random

import pytest

from salvador_django import histogram
from salvador_django.histogram import bucket, lower_bound, merge, middle, percentile

#: The worst ratio between a bucket's middle and a duration it holds: 2 ** (1/8).
PRECISION = 2 ** (1 / (2 * histogram.PER_DOUBLING))


def exact_percentile(values: list[float], q: float) -> float:
    """Nearest rank, as histogram.percentile reads it."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def counted(values: list[float]) -> dict[str, int]:
    found: dict[str, int] = {}
    for value in values:
        found[str(bucket(value))] = found.get(str(bucket(value)), 0) + 1
    return found


def test_buckets_are_four_per_doubling_from_one_millisecond():
    assert bucket(0.0) == bucket(0.0005) == bucket(0.001) == 0
    assert bucket(0.0011) == 0  # under 2 ** (1/4) ms
    assert bucket(0.0012) == 1
    assert bucket(0.002) == 4
    assert bucket(1.0) == math.floor(4 * math.log2(1000))  # 39
    assert bucket(10**9) == histogram.BUCKETS - 1
    for index in (1, 10, 39, 80):
        assert bucket(lower_bound(index) * 1.0001) == index
        assert lower_bound(index) < middle(index) < lower_bound(index + 1)


@pytest.mark.parametrize("q", [50, 95, 99])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_percentile_from_buckets_is_within_9_percent_of_the_true_one(q, seed):
    rng = random.Random(seed)
    values = [rng.lognormvariate(math.log(0.2), 1.5) for _ in range(5000)]
    read = percentile(counted(values), q)
    true = exact_percentile(values, q)
    assert read is not None
    assert 1 / PRECISION <= read / true <= PRECISION


def test_percentiles_of_known_counts():
    # 90 attempts in the bucket of 100 ms, 10 in that of 3 s: p50 and p90 read 100 ms,
    # p95 and p100 read 3 s (each as its bucket's middle).
    counts = {str(bucket(0.1)): 90, str(bucket(3.0)): 10}
    assert percentile(counts, 50) == percentile(counts, 90) == middle(bucket(0.1))
    assert percentile(counts, 95) == percentile(counts, 100) == middle(bucket(3.0))
    assert abs(middle(bucket(0.1)) / 0.1 - 1) < PRECISION - 1


def test_empty_histograms_have_no_percentile_and_merge_adds_up():
    assert percentile({}, 50) is None
    assert percentile({"3": 0}, 50) is None
    assert merge([{"1": 2, "5": 1}, {"5": 3}, {}]) == {"1": 2, "5": 4}
