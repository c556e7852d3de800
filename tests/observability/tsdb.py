"""Series a test generates, loaded into a real Prometheus: OpenMetrics -> promtool -> TSDB blocks.

A test states its series as `Series` (name, labels, [(unix seconds, value), ...]), calls
`serve_series` and queries the server it yields. The samples are the test's own, so every
expected value can be computed from them. Usable for any metric: cAdvisor's
`container_cpu_usage_seconds_total`, kube-state-metrics' `kube_pod_owner`, Istio's
`istio_requests_total` or `istio_tcp_connections_opened_total`.

    series = [Series("istio_requests_total", {"reporter": "source", ...}, counter(rates, times))]
    with serve_series(series, tmp_path) as prometheus:
        prometheus.query("sum(rate(istio_requests_total[5m]))")

Backfilled samples must be older than the server's head: end them a little before now (`aligned_times`
does). The server listens on 127.0.0.1 only and is stopped when the block ends.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import require_program
from tests.observability.prometheus import PrometheusServer

Samples = list[tuple[float, float]]


@dataclass
class Series:
    """One time series: metric name (counters end in _total), labels, and (time, value) samples."""

    name: str
    labels: dict[str, str]
    samples: Samples = field(default_factory=list)
    kind: str = ""  # OpenMetrics type; "" = counter for *_total names, gauge otherwise

    @property
    def family(self) -> str:
        return self.name[:-len("_total")] if self.type == "counter" else self.name

    @property
    def type(self) -> str:
        return self.kind or ("counter" if self.name.endswith("_total") else "gauge")


def aligned_times(duration: float, step: float, end: float) -> list[float]:
    """Sample times `step` apart covering `duration`, the last one the multiple of `step` at or before
    `end` (aligned like Prometheus's subquery steps, so an evaluation lands on a sample)."""
    last = math.floor(end / step) * step
    count = int(duration // step)
    return [last - (count - index) * step for index in range(count + 1)]


def counter(rates: Sequence[float], times: Sequence[float], start: float = 0.0) -> Samples:
    """A counter's samples at `times` that grows at rates[i] per second between times[i-1] and
    times[i] (rates[0] is unused: the counter starts at `start`)."""
    value, samples = start, []
    for index, moment in enumerate(times):
        if index:
            value += rates[index] * (moment - times[index - 1])
        samples.append((moment, value))
    return samples


def _labels(labels: dict[str, str]) -> str:
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return "{" + ",".join(f'{key}="{escape(value)}"' for key, value in sorted(labels.items())) + "}"


def openmetrics_lines(series: Iterable[Series]) -> Iterator[str]:
    """The OpenMetrics exposition: one family after the other, each series' samples in time order."""
    families: dict[str, list[Series]] = {}
    for item in series:
        families.setdefault(item.family, []).append(item)
    for family, members in families.items():
        yield f"# TYPE {family} {members[0].type}\n"
        for item in members:
            prefix = item.name + _labels(item.labels) + " "
            for moment, value in sorted(item.samples):
                yield f"{prefix}{format(value, '.17g')} {format(moment, '.3f')}\n"
    yield "# EOF\n"


def write_openmetrics(path: Path, series: Iterable[Series]) -> int:
    """Write the exposition to `path` in chunks; returns the number of lines."""
    lines = 0
    with path.open("w", encoding="utf-8") as out:
        chunk: list[str] = []
        for line in openmetrics_lines(series):
            chunk.append(line)
            if len(chunk) >= 8192:
                out.write("".join(chunk))
                lines += len(chunk)
                chunk.clear()
        out.write("".join(chunk))
        lines += len(chunk)
    return lines


def build_blocks(series: Iterable[Series], directory: Path, promtool_bin: str | None = None,
                 max_block_duration: str = "24h", timeout: float = 900) -> Path:
    """TSDB blocks of `series` in directory/data, made by `promtool tsdb create-blocks-from
    openmetrics` (the text file is removed afterwards)."""
    promtool_bin = promtool_bin or require_program("promtool")
    directory.mkdir(parents=True, exist_ok=True)
    text = directory / "series.om"
    write_openmetrics(text, series)
    data = directory / "data"
    command = [promtool_bin, "tsdb", "create-blocks-from", "openmetrics",
               f"--max-block-duration={max_block_duration}", str(text), str(data)]
    try:
        # Benchmarks' days of data for thousands of series take minutes, not seconds.
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        text.unlink()
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return data


@contextlib.contextmanager
def serve_blocks(data: Path, prometheus_bin: str | None = None) -> Iterator[PrometheusServer]:
    """A Prometheus on 127.0.0.1 over the blocks in `data`, stopped when the block ends."""
    prometheus_bin = prometheus_bin or require_program("prometheus")
    config = data.parent / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n", encoding="utf-8")
    server = PrometheusServer(prometheus_bin, config, data).start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def serve_series(series: Iterable[Series], directory: Path) -> Iterator[PrometheusServer]:
    """build_blocks, then serve_blocks: a real Prometheus holding exactly `series`."""
    promtool_bin = require_program("promtool")
    prometheus_bin = require_program("prometheus")
    with serve_blocks(build_blocks(series, directory, promtool_bin), prometheus_bin) as server:
        yield server
