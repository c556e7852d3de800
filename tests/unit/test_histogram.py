"""Latency histogram: percentiles within 1 % of the exact ones, exact merges, fortio's layout."""

from __future__ import annotations

import itertools
import math
import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.meshtune.mesh.plugins.module_utils.histogram import (
    DEFAULT_PERCENTILES,
    LOG_LINEAR,
    FortioBuckets,
    HistogramRecorder,
)

# Percentiles people ask for: fortio's defaults, whole numbers, a few finer tails.
PERCENTILES = st.sampled_from([*DEFAULT_PERCENTILES, 1.0, 10.0, 25.0, 33.3, 66.6, 95.0, 99.5,
                               99.99, 100.0]) | st.integers(1, 100).map(float)
# Latencies from 1 µs to 100 s.
LATENCY = st.floats(min_value=1e-6, max_value=100.0, allow_nan=False, allow_infinity=False)
# Long-tailed samples, as latencies are: exp of a uniform spreads them over 8 decades.
LOG_SAMPLES = st.lists(st.floats(min_value=math.log(1e-6), max_value=math.log(100.0)),
                       min_size=1, max_size=3000).map(lambda logs: [math.exp(x) for x in logs])


def exact_percentile(samples: list[float], percentile: float) -> float:
    """Nearest rank: the smallest sample with at least `percentile` % of all samples at or below.

    The percentile is taken as the decimal it was written as (99.9, not the binary float just
    above it), which is also how fortio's comparison with cumulative percentages behaves.
    """
    ordered = samples if all(a <= b for a, b in itertools.pairwise(samples)) else sorted(samples)
    rank = math.ceil(Decimal(repr(percentile)) * len(ordered) / 100)
    return ordered[max(rank, 1) - 1]


def histogram_of(samples, layout=None) -> HistogramRecorder:
    histogram = HistogramRecorder(layout)
    for value in samples:
        histogram.record(value)
    return histogram


@settings(max_examples=300, deadline=None)
@given(samples=st.lists(LATENCY, min_size=1, max_size=2000) | LOG_SAMPLES, percentile=PERCENTILES)
def test_percentiles_are_within_one_percent_of_the_exact_ones(samples, percentile):
    estimate = histogram_of(samples).percentile(percentile)
    exact = exact_percentile(samples, percentile)
    assert abs(estimate - exact) <= 0.01 * exact, (percentile, estimate, exact)


def test_worst_case_error_over_many_random_samples_is_below_one_percent():
    """A measured bound, not just a pass: the largest error over 100 000 long-tailed samples."""
    rng = random.Random(11)
    samples = [math.exp(rng.uniform(math.log(1e-5), math.log(10.0))) for _sample in range(100_000)]
    histogram = histogram_of(samples)
    ordered = sorted(samples)
    percentiles = [0.5 * step for step in range(1, 200)] + [99.9, 99.99]
    estimates = histogram.percentiles(percentiles)
    worst = 0.0
    for percentile, estimate in zip(percentiles, estimates, strict=True):
        exact = exact_percentile(ordered, percentile)
        worst = max(worst, abs(estimate - exact) / exact)
    assert worst <= 1 / 128  # the widest bucket relative to its lower bound
    assert histogram.percentile(100.0) == max(samples)
    assert histogram.percentile(0.0001) == min(samples)


def test_log_linear_buckets_are_contiguous_and_at_most_1_128_wide():
    previous_high = 0
    for index in range(4500):  # up to 73 minutes
        low, high = LOG_LINEAR.bounds_ns(index)
        assert low == previous_high
        assert LOG_LINEAR.index(low / 1e9) == index
        assert LOG_LINEAR.index((high - 1) / 1e9) == index
        if low >= 256:
            assert (high - low) / low <= 1 / 128
        previous_high = high


@settings(max_examples=100, deadline=None)
@given(samples=st.lists(LATENCY, min_size=1, max_size=1000), parts=st.integers(2, 6),
       seed=st.integers(0, 1000))
def test_merged_histograms_equal_one_histogram_of_all_samples(samples, parts, seed):
    rng = random.Random(seed)
    pieces = [[] for _piece in range(parts)]
    for value in samples:
        pieces[rng.randrange(parts)].append(value)
    merged = HistogramRecorder()
    for piece in pieces:
        merged.merge(histogram_of(piece))
    whole = histogram_of(samples)
    merged_data, whole_data = merged.export(), whole.export()
    for key in ("Count", "Min", "Max", "Data", "Percentiles"):
        assert merged_data[key] == whole_data[key], key
    assert math.isclose(merged_data["Sum"], whole_data["Sum"], rel_tol=1e-9)
    assert math.isclose(merged_data["StdDev"], whole_data["StdDev"], rel_tol=1e-6, abs_tol=1e-12)


@settings(max_examples=100, deadline=None)
@given(samples=st.lists(LATENCY, min_size=1, max_size=1000))
def test_rebuilding_from_exported_buckets_gives_back_the_same_histogram(samples):
    original = histogram_of(samples)
    exported = original.export()
    rebuilt = HistogramRecorder.from_data(exported, LOG_LINEAR)
    assert rebuilt.counts == original.counts
    again = rebuilt.export()
    for key in ("Count", "Min", "Max", "Sum", "Avg", "Data", "Percentiles"):
        assert again[key] == exported[key], key
    assert math.isclose(again["StdDev"], exported["StdDev"], rel_tol=1e-6, abs_tol=1e-12)


def test_empty_histogram_exports_like_fortio():
    assert HistogramRecorder().export() == {"Count": 0, "Min": 0.0, "Max": 0.0, "Sum": 0.0,
                                            "Avg": 0.0, "StdDev": 0.0, "Data": None}
    assert HistogramRecorder().percentile(99) == 0.0
    assert HistogramRecorder.from_data({"Count": 0, "Data": None}, LOG_LINEAR).count == 0


def test_merging_different_layouts_is_refused():
    with pytest.raises(ValueError, match="different buckets"):
        HistogramRecorder().merge(HistogramRecorder(FortioBuckets(0.001)))


# fortio's own histogram (stats.HistogramRecorder) ---------------------------------------------------

def test_fortio_layout_puts_boundary_values_in_the_lower_bucket():
    layout = FortioBuckets(0.001)
    assert layout.index(0.0) == 0
    assert layout.index(-1.0) == 0
    assert layout.bounds(layout.index(0.002)) == (0.001, 0.002)  # (1 ms, 2 ms]
    assert layout.bounds(layout.index(0.0025)) == (0.002, 0.003)
    assert layout.bounds(layout.index(0.003)) == (0.002, 0.003)  # 0.003/0.001 is 2.9999999999999996
    assert layout.bounds(layout.index(0.0030001)) == (0.003, 0.004)
    assert layout.index(150.0) == len(FortioBuckets.TABLE)  # above 100 s: the last bucket
    assert layout.bounds(layout.index(0.0999)) == (0.09, 0.1)


def test_fortio_percentiles_match_fortios_published_example():
    """fortio's README: 4 calls, min 0.00027292 s, max 0.000930407 s, all in one bucket."""
    data = {"Count": 4, "Min": 0.00027292, "Max": 0.000930407, "Sum": 0.002332047,
            "Avg": 0.00058301175, "StdDev": 0.00028491034912527755,
            "Data": [{"Start": 0.00027292, "End": 0.000930407, "Percent": 100, "Count": 4}]}
    histogram = HistogramRecorder.from_data(data, FortioBuckets(0.001))
    published = {50: 0.0004920823333333334, 75: 0.0007112446666666667, 90: 0.0008427420666666666,
                 99: 0.0009216405066666668, 99.9: 0.0009295303506666667}
    for percentile, value in published.items():
        assert histogram.percentile(percentile) == pytest.approx(value, rel=1e-15)
    assert histogram.export()["Data"] == data["Data"]


@settings(max_examples=100, deadline=None)
@given(samples=st.lists(st.floats(min_value=0.0, max_value=200.0), min_size=1, max_size=500),
       parts=st.integers(2, 4), resolution=st.sampled_from([0.001, 0.0001, 0.01]))
def test_fortio_layout_histograms_rebuild_and_merge_exactly(samples, parts, resolution):
    layout = FortioBuckets(resolution)
    pieces = [samples[index::parts] for index in range(parts)]
    merged = HistogramRecorder(layout)
    for piece in pieces:
        if piece:
            merged.merge(HistogramRecorder.from_data(histogram_of(piece, layout).export(), layout))
    whole = histogram_of(samples, layout).export()
    merged_data = merged.export()
    for key in ("Count", "Min", "Max", "Data", "Percentiles"):
        assert merged_data[key] == whole[key], key


@settings(max_examples=50, deadline=None)
@given(LOG_SAMPLES, st.integers(1, 7), st.sampled_from([LOG_LINEAR, FortioBuckets(0.001)]))
def test_recording_in_batches_equals_recording_one_by_one(samples, batches, layout):
    one_by_one = histogram_of(samples, layout)
    batched = HistogramRecorder(layout)
    size = -(-len(samples) // batches)
    for start in range(0, len(samples), size):
        batched.record_many(samples[start:start + size])
    batched.record_many([])
    assert batched.counts == one_by_one.counts
    assert (batched.count, batched.minimum, batched.maximum) == \
        (one_by_one.count, one_by_one.minimum, one_by_one.maximum)
    assert math.isclose(batched.total, one_by_one.total, rel_tol=1e-9)
    assert math.isclose(batched.stddev, one_by_one.stddev, rel_tol=1e-6, abs_tol=1e-12)
