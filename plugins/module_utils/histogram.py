# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Latency histograms that merge exactly and keep percentiles within 1 % of the true values.

A load run records one latency per request; keeping them all costs memory for long runs and
cannot be shipped from several load generators cheaply. A histogram with fixed bucket boundaries
can: two histograms with the same boundaries merge by adding counts, and the merged percentiles
are those of one histogram of all samples.

The local engine uses HdrHistogram's log-linear layout with two significant digits over whole
nanoseconds (LOG_LINEAR): values below 256 ns have their own bucket, above that every power of
two is cut into 128 equal buckets, so a bucket is never wider than 1/128 (0.78 %) of its lower
bound. fortio's own histograms use a fixed table of boundaries scaled by a resolution
(FortioBuckets); results written by fortio are rebuilt with that layout so that they, too, merge
exactly.

Percentiles are computed the way fortio computes them (linear interpolation inside the bucket
that holds the percentile's rank, see percentile_from_buckets), so a percentile read
back from a result file and one recomputed from its buckets agree. The true sample of that rank
lies in the same bucket, hence the error bound of the bucket width.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import math

# fortio's default `-p` list.
DEFAULT_PERCENTILES = (50.0, 75.0, 90.0, 99.0, 99.9)


def percentile_from_buckets(buckets, count, minimum, maximum, percentile):
    """The value below which `percentile` % of the calls fall, estimated the way fortio does.

    fortio's CalcPercentile: at or below the share of one call the minimum, at 100 % the
    maximum, otherwise linear interpolation inside the bucket whose cumulative share first
    reaches the percentile, from the previous bucket's cumulative share to this one's.
    `buckets` are (start, end, cumulative_percent) in increasing order.
    """
    if not buckets or count <= 0:
        raise ValueError("no buckets")
    if percentile >= 100:
        return maximum
    previous = 100.0 / count
    if percentile <= previous:
        return minimum
    for start, end, cumulative in buckets:
        if percentile <= cumulative:
            if cumulative <= previous:
                return end
            return start + (percentile - previous) / (cumulative - previous) * (end - start)
        previous = cumulative
    return maximum


class LogLinearBuckets:
    """HdrHistogram's bucket layout with two significant digits, over whole nanoseconds."""

    name = "log-linear (2 significant digits, ns)"
    # 2**8 = 256 sub-buckets: the smallest power of two above 2 * 10**2 (two significant digits).
    SUB_BUCKET_BITS = 8
    HALF_BITS = SUB_BUCKET_BITS - 1

    def __eq__(self, other):
        return isinstance(other, LogLinearBuckets)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self.name)

    def index(self, seconds):
        """The bucket of a value in seconds (negative values count as 0)."""
        nanoseconds = round(seconds * 1e9) if seconds > 0 else 0
        shift = nanoseconds.bit_length() - self.SUB_BUCKET_BITS
        if shift <= 0:
            return nanoseconds
        return (shift << self.HALF_BITS) + (nanoseconds >> shift)

    def bounds_ns(self, index):
        """[low, high) of a bucket in nanoseconds."""
        if index < (1 << self.SUB_BUCKET_BITS):
            return index, index + 1
        shift = (index >> self.HALF_BITS) - 1
        sub = index - (shift << self.HALF_BITS)
        return sub << shift, (sub + 1) << shift

    def bounds(self, index):
        low, high = self.bounds_ns(index)
        return low / 1e9, high / 1e9

    def data_index(self, bucket):
        """The bucket an exported {Start, End} stands for: Start lies in [low, high)."""
        return self.index(bucket["Start"])


class FortioBuckets:
    """fortio's histogram layout (stats.Histogram): a fixed table times a resolution, plus offset.

    Intervals are open on the left and closed on the right, (previous, current]; the first bucket
    holds everything <= offset and the last everything above the table's end.
    """

    TABLE = (
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
        12, 14, 16, 18, 20,
        25, 30, 35, 40, 45, 50,
        60, 70, 80, 90, 100,
        120, 140, 160, 180, 200,
        250, 300, 350, 400, 450, 500,
        600, 700, 800, 900, 1000,
        2000, 3000, 4000, 5000, 7500, 10000,
        20000, 30000, 40000, 50000, 75000, 100000,
    )

    def __init__(self, resolution=0.001, offset=0.0):
        if not math.isfinite(resolution) or resolution <= 0:
            raise ValueError(f"fortio histogram resolution must be positive, got {resolution!r}")
        self.resolution = float(resolution)
        self.offset = float(offset)
        self.name = f"fortio (resolution {self.resolution:g} s, offset {self.offset:g} s)"

    def __eq__(self, other):
        return isinstance(other, FortioBuckets) and \
            (self.resolution, self.offset) == (other.resolution, other.offset)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((self.resolution, self.offset))

    def index(self, value):
        """fortio's Histogram.record, including its guard for values exactly on a boundary."""
        scaled = (value - self.offset) / self.resolution
        if scaled <= self.TABLE[0]:
            return 0
        if scaled > self.TABLE[-1]:
            return len(self.TABLE)
        whole = int(scaled)
        if scaled - whole < 1e-12:
            whole -= 1
        return bisect.bisect_right(self.TABLE, whole)

    def bounds(self, index):
        start = self.resolution * self.TABLE[index - 1] + self.offset if index > 0 else -math.inf
        end = self.resolution * self.TABLE[index] + self.offset if index < len(self.TABLE) else math.inf
        return start, end

    def data_index(self, bucket):
        """(previous, current]: End is the boundary or, for the last bucket, the maximum."""
        return self.index(bucket["End"])


LOG_LINEAR = LogLinearBuckets()


class HistogramRecorder:
    """Counts per bucket plus count, min, max and sum, as fortio's Counter keeps, and the sum of
    squared deviations from the mean (Welford's update, Chan's merge) for the standard
    deviation: fortio's sum of squares loses all precision when the samples are close together.
    """

    def __init__(self, layout=None):
        self.layout = layout if layout is not None else LOG_LINEAR
        self.counts = {}
        self.count = 0
        self.minimum = 0.0
        self.maximum = 0.0
        self.total = 0.0
        self.squared_deviations = 0.0

    def record(self, value, times=1):
        """Add `times` samples of `value` (seconds)."""
        index = self.layout.index(value)
        self.counts[index] = self.counts.get(index, 0) + times
        if self.count == 0:
            self.minimum = self.maximum = value
            mean = value
        else:
            mean = self.total / self.count
            if value < self.minimum:
                self.minimum = value
            elif value > self.maximum:
                self.maximum = value
        self.count += times
        self.total += value * times
        self.squared_deviations += times * (value - mean) * (value - self.total / self.count)

    def record_many(self, values):
        """Add each of `values` (seconds) once, as `record` would one by one, in one pass.

        The load engine records its latencies in batches: a method call per request costs it
        more than the rest of its bookkeeping for that request.
        """
        if not values:
            return self
        counts = self.counts
        if isinstance(self.layout, LogLinearBuckets):
            # LogLinearBuckets.index, inlined.
            bits, half = LogLinearBuckets.SUB_BUCKET_BITS, LogLinearBuckets.HALF_BITS
            for value in values:
                nanoseconds = round(value * 1e9) if value > 0 else 0
                shift = nanoseconds.bit_length() - bits
                index = nanoseconds if shift <= 0 else (shift << half) + (nanoseconds >> shift)
                counts[index] = counts.get(index, 0) + 1
        else:
            for value in values:
                index = self.layout.index(value)
                counts[index] = counts.get(index, 0) + 1
        total = sum(values)
        mean = total / len(values)
        self._add_moments(len(values), total, min(values), max(values),
                          sum((value - mean) * (value - mean) for value in values))
        return self

    def merge(self, other):
        """Add another histogram's samples; the layouts must be the same (else ValueError)."""
        if other.layout != self.layout:
            raise ValueError(f"cannot merge histograms with different buckets: "
                             f"{self.layout.name} and {other.layout.name}")
        if other.count == 0:
            return self
        for index, times in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + times
        self._add_moments(other.count, other.total, other.minimum, other.maximum,
                          other.squared_deviations)
        return self

    def _add_moments(self, count, total, minimum, maximum, squared_deviations):
        """Count, sum, extremes and squared deviations of more samples (Chan's merge)."""
        if self.count == 0:
            self.minimum, self.maximum = minimum, maximum
            self.squared_deviations = squared_deviations
        else:
            self.minimum = min(self.minimum, minimum)
            self.maximum = max(self.maximum, maximum)
            delta = total / count - self.total / self.count
            self.squared_deviations += squared_deviations + \
                delta * delta * self.count * count / (self.count + count)
        self.count += count
        self.total += total

    def copy(self):
        clone = HistogramRecorder(self.layout)
        return clone.merge(self)

    @property
    def average(self):
        return self.total / self.count if self.count else 0.0

    @property
    def stddev(self):
        """Population standard deviation, as fortio reports it."""
        if not self.count:
            return 0.0
        return math.sqrt(max(self.squared_deviations, 0.0) / self.count)

    def buckets(self):
        """(start, end, cumulative percent, count) per non-empty bucket, as fortio exports them.

        The first bucket starts at the minimum and the last ends at the maximum, so the buckets
        cover exactly [min, max].
        """
        rows = []
        seen = 0
        indexes = sorted(index for index, times in self.counts.items() if times)
        for position, index in enumerate(indexes):
            times = self.counts[index]
            seen += times
            start, end = self.layout.bounds(index)
            if position == 0:
                start = self.minimum
            if position == len(indexes) - 1:
                end = self.maximum
            rows.append((start, end, 100.0 * seen / self.count, times))
        return rows

    def percentile(self, percentile):
        """The value below which `percentile` % of the samples fall (seconds); 0.0 when empty."""
        return self.percentiles([percentile])[0]

    def percentiles(self, percentiles, rows=None):
        """Several percentiles at once, from one pass over the buckets."""
        if not self.count:
            return [0.0 for _percentile in percentiles]
        rows = [(start, end, cumulative) for start, end, cumulative, _times in
                (rows if rows is not None else self.buckets())]
        return [percentile_from_buckets(rows, self.count, self.minimum, self.maximum, percentile)
                for percentile in percentiles]

    def export(self, percentiles=DEFAULT_PERCENTILES):
        """fortio's HistogramData: Count, Min, Max, Sum, Avg, StdDev, Data and Percentiles."""
        data = {
            "Count": self.count,
            "Min": self.minimum,
            "Max": self.maximum,
            "Sum": self.total,
            "Avg": self.average,
            "StdDev": self.stddev,
            "Data": None,
        }
        if not self.count:
            return data  # fortio leaves Data null and omits Percentiles when nothing was recorded
        rows = self.buckets()
        data["Data"] = [{"Start": start, "End": end, "Percent": cumulative, "Count": times}
                        for start, end, cumulative, times in rows]
        values = self.percentiles(percentiles, rows)
        data["Percentiles"] = [{"Percentile": float(p), "Value": value}
                               for p, value in zip(percentiles, values)]
        return data

    @classmethod
    def from_data(cls, data, layout):
        """Rebuild from fortio's HistogramData whose buckets follow `layout` (else ValueError).

        Counts, minimum, maximum and sum are exact; the squared deviations are recovered from
        StdDev, so a merged StdDev is exact only up to floating-point rounding.
        """
        histogram = cls(layout)
        rows = data.get("Data") or []
        count = data.get("Count", 0)
        if not rows:
            if count:
                raise ValueError(f"histogram has Count {count} but no Data buckets")
            return histogram
        previous = None
        for position, bucket in enumerate(rows):
            index = layout.data_index(bucket)
            start, end = layout.bounds(index)
            if previous is not None and index <= previous:
                raise ValueError(f"Data[{position}] is not above the previous bucket")
            if (position > 0 and bucket["Start"] != start) or \
                    (position < len(rows) - 1 and bucket["End"] != end):
                raise ValueError(f"Data[{position}] [{bucket['Start']!r}, {bucket['End']!r}] is not "
                                 f"a bucket of the {layout.name} layout")
            histogram.counts[index] = histogram.counts.get(index, 0) + int(bucket["Count"])
            previous = index
        recorded = sum(histogram.counts.values())
        if count != recorded:
            raise ValueError(f"histogram Count {count} differs from the sum of its buckets {recorded}")
        histogram.count = recorded
        histogram.minimum = float(data.get("Min", rows[0]["Start"]))
        histogram.maximum = float(data.get("Max", rows[-1]["End"]))
        histogram.total = float(data.get("Sum", 0.0))
        deviation = float(data.get("StdDev", 0.0))
        histogram.squared_deviations = recorded * deviation * deviation
        return histogram
