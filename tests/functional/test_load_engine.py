"""The local load engine against real servers on 127.0.0.1: rate, latency, stalls, errors.

Each server runs in its own process (tests/support/load_targets.py, or nginx), so it does not share the
engine's interpreter. Rates stay in what a two-core machine sustains beside the server (200 and
1000 requests/s); each run lasts a few seconds.

Latency accuracy is checked against what the server itself measured: the delay server records,
for every request, the time from reading it to writing the answer (the delay it applied). The
engine's latency of a request is that plus a fixed cost the server cannot see: loopback network,
the engine's own parsing and wake-up. That cost is measured first, with the same rate and
connections against the same server with no delay, and its median is subtracted. What is
checked to 5 % is then: engine percentile minus that median, against the exact percentile of the
server's applied delays.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import math
from decimal import Decimal
from pathlib import Path

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.engine import (
    SOCKET_ERROR,
    LoadSpec,
    RunResult,
    run_load,
)
from tests.conftest import require_program
from tests.support.load_targets import running as load_target
from tests.support.local_nginx import free_port, run_nginx

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def exact_percentile(values: list[float], percentile: float) -> float:
    """Nearest rank, the percentile read as the decimal it is written as."""
    ordered = sorted(values)
    rank = math.ceil(Decimal(repr(percentile)) * len(ordered) / 100)
    return ordered[max(rank, 1) - 1]


def relative(value: float, reference: float) -> float:
    return abs(value - reference) / reference


def run(url: str, **options) -> RunResult:
    return run_load(LoadSpec(url, **options))


def test_rate_and_percentiles_match_a_server_with_known_delays(tmp_path):
    qps, connections = 200.0, 64
    with load_target("delay") as url:
        baseline = run(url, qps=qps, connections=connections, duration=2.0)
    assert baseline.codes == {200: 400}
    overhead = baseline.histogram.percentile(50)

    # Delays of 40 ms plus an exponential part with mean 40 ms (seeded): median near 68 ms,
    # p99 near 225 ms.
    record = tmp_path / "applied.json"
    with load_target("delay", "--seed", "7", "--base", "0.04", "--mean", "0.04", "--cap", "0.5",
                     record=record) as url:
        result = run(url, qps=qps, connections=connections, duration=3.0)
    applied = json.loads(record.read_text())
    service, arrivals = applied["service"], applied["arrivals"]

    assert result.codes == {200: 600}
    assert len(service) == result.histogram.count == 600
    # Rate: the engine's own figure, and the rate the server saw the requests arrive at.
    server_rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert relative(result.achieved_qps, qps) <= 0.01
    assert relative(server_rate, qps) <= 0.01, server_rate
    # Latency: engine percentile minus the fixed cost, against the applied delays' percentile.
    report = []
    for percentile in (50, 75, 90, 99):
        exact = exact_percentile(service, percentile)
        measured = result.histogram.percentile(percentile)
        report.append(f"p{percentile}: applied {exact * 1e3:.2f} ms, engine {measured * 1e3:.2f} ms "
                      f"(- {overhead * 1e3:.2f} ms fixed cost: {relative(measured - overhead, exact):.2%})")
        assert relative(measured - overhead, exact) <= 0.05, report[-1]
    print("\n".join(report))


def test_rate_against_nginx_is_within_one_percent(tmp_path):
    nginx = require_program("nginx")
    qps = 1000.0
    reports = []
    with run_nginx(tmp_path / "nginx", nginx, log_requests=True) as server:
        result = run(server.url, qps=qps, connections=16, duration=3.0, warmup=0.5,
                     progress_interval=1.0, progress=reports.append)
        arrivals = server.logged_arrivals(3500)
    assert result.codes == {200: 3000}
    assert result.sent == 3000 and result.warmup_sent == 500
    assert len(arrivals) == 3500  # warm-up included: nginx saw every request once
    measured = arrivals[500:]
    nginx_rate = (len(measured) - 1) / (measured[-1] - measured[0])
    assert relative(result.achieved_qps, qps) <= 0.01
    assert relative(nginx_rate, qps) <= 0.01, nginx_rate
    assert result.sockets == 16  # keep-alive: no connection was opened twice
    assert [report["phase"] for report in reports][:1] == ["measure"]
    assert 2 <= len(reports) <= 4
    assert all(relative(report["rate"], qps) <= 0.05 for report in reports[1:]), reports
    print(f"nginx at {qps:g}/s: engine {result.achieved_qps:.2f}/s, nginx saw {nginx_rate:.2f}/s, "
          f"p50 {result.histogram.percentile(50) * 1e3:.3f} ms, "
          f"p99 {result.histogram.percentile(99) * 1e3:.3f} ms")


def test_full_speed_closed_loop_against_nginx(tmp_path):
    nginx = require_program("nginx")
    with run_nginx(tmp_path / "nginx", nginx) as server:
        result = run(server.url, qps=0, connections=8, requests=2000)
    assert result.codes == {200: 2000}
    assert result.achieved_qps > 500
    assert result.window > 0


def test_a_stalling_server_shows_in_the_percentiles_and_a_closed_loop_hides_it():
    """1 s stalls every 2.5 s, 200 requests/s for 5 s: stalls at 1-2 s and 3.5-4.5 s after the
    first request. Open loop, the requests due during a stall wait until it ends, so their
    latencies spread evenly from 0 to 1 s over 40 % of the requests: p99 = 1 s - 1 % of 2.5 s =
    0.975 s (a p99 cannot reach the stall itself unless more than 1 % of the requests wait the
    whole stall), and the largest latency is the full stall. The same run's service times (from
    the actual send, what fortio or wrk report) and a closed-loop run see only the few requests
    that were on the wire when a stall began.
    """
    stall = 1.0
    server = ("stall", "--first", "1.0", "--period", "2.5", "--stall", str(stall))
    with load_target(*server) as url:
        open_loop = run(url, qps=200, connections=2, duration=5.0, timeout=3.0)
    with load_target(*server) as url:
        closed_loop = run(url, qps=0, connections=2, duration=5.0, timeout=3.0)

    assert open_loop.codes == {200: 1000}
    assert relative(open_loop.achieved_qps, 200) <= 0.01
    p99 = open_loop.histogram.percentile(99)
    p999 = open_loop.histogram.percentile(99.9)
    assert p99 >= 0.95 * stall, p99
    assert p999 >= 0.98 * stall, p999
    assert open_loop.histogram.maximum >= 0.99 * stall

    service_p99 = open_loop.service_histogram.percentile(99)
    closed_p99 = closed_loop.histogram.percentile(99)
    assert service_p99 < 0.1 * stall, service_p99
    assert closed_p99 < 0.1 * stall, closed_p99
    assert closed_loop.histogram.maximum >= 0.9 * stall  # it did meet the stalls, a few times
    print(f"open loop p99 {p99:.3f} s, p99.9 {p999:.3f} s; same run from actual send p99 "
          f"{service_p99 * 1e3:.2f} ms; closed loop p99 {closed_p99 * 1e3:.2f} ms over "
          f"{closed_loop.histogram.count} requests")


def test_a_port_with_nothing_listening_counts_refused_connections():
    url = f"http://127.0.0.1:{free_port()}/"
    result = run(url, qps=200, connections=2, duration=1.0, timeout=1.0)
    assert result.codes == {SOCKET_ERROR: 200}
    assert result.error_kinds == {"connection_refused": 200}
    assert result.errors_histogram.count == 200
    assert result.sockets == 0


def test_timeouts_are_counted_and_the_run_still_ends():
    """A server that never answers: four connections that each hold a request for the 0.2 s
    timeout carry 20 requests/s, not 100. The requests sent time out; those that waited more
    than the timeout for a free connection are not sent at all. Both count, with their latency.
    """
    with load_target("hang") as url:
        result = run(url, qps=100, connections=4, requests=20, timeout=0.2)
    assert result.codes == {SOCKET_ERROR: 20}
    kinds = result.error_kinds
    assert set(kinds) == {"timeout", "not_sent"} and sum(kinds.values()) == 20
    assert kinds["timeout"] == result.sent == result.service_histogram.count >= 4
    assert result.not_sent == kinds["not_sent"]
    assert result.service_histogram.percentile(50) == pytest.approx(0.2, abs=0.05)
    assert result.histogram.count == result.errors_histogram.count == 20
    assert result.histogram.minimum >= 0.2


def test_resets_and_non_http_answers_are_counted():
    with load_target("reset") as url:
        reset = run(url, qps=100, connections=2, requests=50, timeout=1.0)
    assert reset.codes == {SOCKET_ERROR: 50}
    assert reset.error_kinds == {"connection_reset": 50}
    with load_target("garbage") as url:
        garbage = run(url, qps=100, connections=2, requests=50, timeout=1.0)
    assert garbage.codes == {SOCKET_ERROR: 50}
    assert garbage.error_kinds == {"protocol": 50}


def test_warmup_requests_reach_the_server_but_not_the_figures(tmp_path):
    record = tmp_path / "applied.json"
    with load_target("delay", record=record) as url:
        result = run(url, qps=200, connections=4, requests=100, warmup=0.5)
    assert result.warmup_sent == 100
    assert result.sent == result.histogram.count == 100
    assert len(json.loads(record.read_text())["arrivals"]) == 200
    assert relative(result.achieved_qps, 200) <= 0.01


def self_signed(directory: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1, signed by itself, and its key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.SubjectAlternativeName(
                       [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_https_with_and_without_certificate_checks(tmp_path):
    cert, key = self_signed(tmp_path)
    with load_target("delay", "--tls-cert", cert, "--tls-key", key) as url:
        assert url.startswith("https://")
        unchecked = run(url, qps=100, connections=2, requests=50, validate_certs=False)
        checked = run(url, qps=100, connections=2, requests=10)
    assert unchecked.codes == {200: 50}
    assert unchecked.sockets == 2  # kept alive: one handshake per connection
    assert checked.error_kinds == {"tls": 10}  # self-signed: verification fails
