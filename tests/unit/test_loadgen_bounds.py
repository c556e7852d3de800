"""The local load engine's bounds and judgement: what load_test refuses before sending (rate,
requests per run, connections under the open-file limit), how errors are sorted into client and
server errors, when a finished run fails, and that a stuck worker process cannot keep a run
from ending."""

from __future__ import annotations

import errno
import ssl
import time

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen import engine, options
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.engine import (
    DEFAULT_MAX_NOT_SENT,
    MAX_QPS_PER_WORKER,
    MAX_REQUESTS,
    SOCKET_ERROR,
    LoadError,
    LoadSpec,
    RunResult,
    assess,
    planned_requests,
    rate_bound,
    schedule_figures,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.errors import (
    CLIENT_ERROR_KINDS,
    LOCAL_ERROR_KINDS,
    SERVER_ERROR_KINDS,
    ClosedEarly,
    Expired,
    describe_error,
    error_kind,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.schedule import Share
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.workers import run_workers
from ansible_collections.meshtune.mesh.plugins.modules.load_test import argument_spec


def params(**given) -> dict:
    """load_test's parameters as Ansible hands them over: defaults, then `given`."""
    values = {name: option.get("default") for name, option in argument_spec().items()}
    values.update({"url": "http://127.0.0.1:9/", "duration": "10s"}, **given)
    return values


def problems_of(**given) -> str:
    spec, message = options.spec_from_params(params(**given))
    assert spec is None, "expected a problem"
    return message


@pytest.fixture
def two_cpus(monkeypatch):
    monkeypatch.setattr(engine, "usable_cpus", lambda: 2)
    monkeypatch.setattr(options, "usable_cpus", lambda: 2)


# ------------------------------------------------------------------ bounds checked up front


def test_the_rate_bound_is_a_worker_ceiling_times_the_workers_that_can_run(two_cpus):
    assert rate_bound(connections=8, workers=0) == (2 * MAX_QPS_PER_WORKER, 2)
    assert rate_bound(connections=1, workers=0) == (MAX_QPS_PER_WORKER, 1)
    assert rate_bound(connections=8, workers=1) == (MAX_QPS_PER_WORKER, 1)
    assert rate_bound(connections=8, workers=6) == (2 * MAX_QPS_PER_WORKER, 2)


@pytest.mark.parametrize(("given", "path", "expected"), [
    ({"qps": 1e12}, "qps:", f"at most {2 * MAX_QPS_PER_WORKER} requests per second "
     f"({MAX_QPS_PER_WORKER} per worker process, 2 workers: one per usable CPU, 2)"),
    ({"qps": 1.5 * MAX_QPS_PER_WORKER, "workers": 1}, "qps:", "1 worker: workers 1"),
    ({"qps": 1.5 * MAX_QPS_PER_WORKER, "connections": 1}, "qps:", "1 worker: one per connection"),
    ({"qps": 0, "duration": None, "requests": MAX_REQUESTS + 1}, "requests:",
     f"at most {MAX_REQUESTS} requests per run, warm-up included (this run would send "
     f"{MAX_REQUESTS + 1})"),
    ({"qps": 100, "duration": None, "requests": MAX_REQUESTS - 10, "warmup": "1s"}, "requests:",
     f"(this run would send {MAX_REQUESTS + 90})"),
    ({"qps": 60000, "duration": "1h"}, "duration:", "(this run would send 216000000)"),
    ({"max_not_sent": -0.1}, "max_not_sent:", "a share from 0 to 1"),
    ({"max_not_sent": float("nan")}, "max_not_sent:", "a share from 0 to 1"),
])
def test_load_the_engine_cannot_send_is_refused(two_cpus, given, path, expected):
    message = problems_of(**given)
    assert f"{path} expected " in message and expected in message, message


def test_loads_within_the_bounds_pass(two_cpus):
    for given in ({"qps": 2 * MAX_QPS_PER_WORKER, "duration": "1s"},
                  {"qps": 0, "duration": None, "requests": MAX_REQUESTS},
                  {"qps": 0, "duration": "24h"},
                  {"max_not_sent": 0}, {"max_not_sent": 1}):
        spec, message = options.spec_from_params(params(**given))
        assert message is None, (given, message)
    assert spec.max_not_sent == 1.0
    assert options.spec_from_params(params())[0].max_not_sent == DEFAULT_MAX_NOT_SENT


def test_max_not_sent_belongs_to_the_local_engine():
    message = problems_of(engine="fortio", url=None, max_not_sent=0.5)
    assert "max_not_sent: expected no max_not_sent with engine fortio" in message


def test_the_rate_bound_is_the_local_engines(two_cpus):
    """fortio pods run elsewhere, with their own limits (and job_timeout bounds their run)."""
    _spec, message = options.spec_from_params(params(engine="fortio", url=None, qps=1e6))
    assert message is None, message


def test_planned_requests_count_the_warmup_too():
    assert planned_requests(100, 10.0, None, 2.0) == 1200
    assert planned_requests(100, None, 50, 0.5) == 100
    assert planned_requests(0, None, 50, 5.0) == 50
    assert planned_requests(0, 10.0, None, 0.0) is None


def test_connections_beyond_the_open_file_limit_are_refused(two_cpus, monkeypatch):
    monkeypatch.setattr(options, "_open_files", lambda: (256, 4096, 40))
    # 200 connections over 2 workers: 100 descriptors each, room for 256 - 40 - 16 = 200 each.
    assert options.spec_from_params(params(qps=1000, connections=200))[1] is None
    # One worker (qps 1000 needs one): 200 descriptors in one process.
    message = problems_of(qps=1000, connections=201, workers=1)
    assert "connections: expected at most 200 with this host's open-file limit (RLIMIT_NOFILE " \
           "soft limit 256, 40 open already, hard limit 4096)" in message, message
    assert "(201 for each of 1)" in message


def test_an_unlimited_open_file_limit_is_no_bound(monkeypatch):
    monkeypatch.setattr(options, "_open_files", lambda: None)
    assert options.spec_from_params(params(connections=10000))[1] is None


# ------------------------------------------------------------------ errors sorted by side


def test_error_kinds_of_the_sending_host_and_of_the_server():
    assert error_kind(OSError(errno.EMFILE, "Too many open files")) == "client_exhausted"
    assert error_kind(OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")) == \
        "client_exhausted"
    assert error_kind(OSError(errno.ECONNREFUSED, "Connection refused")) == "connection_refused"
    assert error_kind(ssl.SSLCertVerificationError("certificate verify failed")) == "tls"
    assert error_kind(OSError(errno.ENETUNREACH, "Network is unreachable")) == "other"
    assert error_kind(Expired()) == "timeout"
    assert error_kind(ClosedEarly(0)) == "connection_reset"
    assert set(CLIENT_ERROR_KINDS) | set(SERVER_ERROR_KINDS) | {"not_sent"} == set(LOCAL_ERROR_KINDS)
    assert not set(CLIENT_ERROR_KINDS) & set(SERVER_ERROR_KINDS)


def test_errors_in_words():
    assert describe_error(OSError(errno.EMFILE, "Too many open files"), 3.0) == \
        "Too many open files (errno EMFILE)"
    assert describe_error(Expired(), 0.5) == "no complete response within the timeout (0.5 s)"
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate"
    assert describe_error(error, 3.0) == \
        "TLS certificate verification failed: self-signed certificate"


def finished_run(codes=None, kinds=None, not_sent=0, first=None, planned=None) -> RunResult:
    """A RunResult as a finished open-loop run leaves it (only the fields assess reads)."""
    run = RunResult(LoadSpec("http://127.0.0.1:9/", qps=100, connections=4, requests=100,
                             timeout=1.0))
    run.codes = dict(codes or {})
    run.error_kinds = dict(kinds or {})
    run.not_sent = not_sent
    run.sent = sum(run.codes.values()) - not_sent
    run.first_errors = {kind: (order, message) for order, (kind, message) in enumerate((first or {}).items())}
    run.planned = planned if planned is not None else run.sent + not_sent
    return run


def test_client_and_server_errors_are_counted_apart():
    run = finished_run(codes={200: 50, 503: 10, 404: 5, SOCKET_ERROR: 35},
                       kinds={"timeout": 4, "connection_reset": 3, "protocol": 2, "tls": 1,
                              "connection_refused": 5, "client_exhausted": 6, "other": 2,
                              "not_sent": 12},
                       not_sent=12)
    assert run.server_errors == 15 + 4 + 3 + 2
    assert run.client_errors == 1 + 5 + 6 + 2
    assert run.not_sent_share == 12 / 100


def test_a_run_with_only_server_errors_is_a_result():
    run = finished_run(codes={200: 10, 500: 90}, planned=100)
    assert assess(run) == (None, [])


def test_a_run_where_every_sent_request_failed_on_the_client_side_fails_naming_the_first():
    run = finished_run(codes={SOCKET_ERROR: 40}, kinds={"tls": 10, "connection_refused": 30},
                       first={"connection_refused": "Connection refused (errno ECONNREFUSED)",
                              "tls": "TLS certificate verification failed: expired"})
    failure, warnings = assess(run)
    assert failure == ("every measured request that was sent (40) failed before reaching the "
                       "server: connection_refused: 30 (first: Connection refused (errno "
                       "ECONNREFUSED)), tls: 10 (first: TLS certificate verification failed: "
                       "expired)")
    assert warnings == []


def test_some_client_errors_warn_and_exhaustion_fails():
    some = finished_run(codes={200: 95, SOCKET_ERROR: 5}, kinds={"connection_refused": 5},
                        first={"connection_refused": "Connection refused"})
    assert assess(some) == (None, ["5 of 100 measured requests sent failed before reaching the "
                                   "server (client errors, not server errors): "
                                   "connection_refused: 5 (first: Connection refused)"])
    exhausted = finished_run(codes={200: 99, SOCKET_ERROR: 1}, kinds={"client_exhausted": 1},
                             first={"client_exhausted": "Too many open files (errno EMFILE)"})
    failure, _warnings = assess(exhausted)
    assert failure.startswith("this host ran out of its own resources")
    assert "client_exhausted: 1 (first: Too many open files (errno EMFILE))" in failure


def test_unsent_requests_warn_up_to_max_not_sent_and_fail_beyond():
    within = finished_run(codes={200: 99, SOCKET_ERROR: 1}, kinds={"not_sent": 1}, not_sent=1)
    failure, warnings = assess(within)
    assert failure is None
    assert warnings == ["1 of 100 measured requests (1.00%) were due but never sent, more than "
                        "the timeout (1 s) late (max_not_sent 1.00%)"]
    assert schedule_figures(within, DEFAULT_MAX_NOT_SENT) == {
        "planned": 100, "sent": 99, "not_sent": 1, "not_sent_share": 0.01, "max_not_sent": 0.01,
        "slipped": False}
    beyond = finished_run(codes={200: 98, SOCKET_ERROR: 2}, kinds={"not_sent": 2}, not_sent=2)
    failure, warnings = assess(beyond)
    assert failure.startswith("the schedule slipped: 2 of 100 measured requests (2.00%)")
    assert warnings == []
    assert schedule_figures(beyond, DEFAULT_MAX_NOT_SENT)["slipped"] is True
    assert assess(beyond, max_not_sent=0.05)[0] is None


# ------------------------------------------------------------------ worker processes end


def _ready_then_stuck(share, start=None, progress=None, parent=None):
    start()
    time.sleep(600)


def _never_ready(share, start=None, progress=None, parent=None):
    time.sleep(600)


@pytest.mark.timeout(60)
def test_a_worker_that_does_not_report_after_the_schedule_is_stopped():
    shares = [Share(0, 2, 1, None), Share(1, 2, 1, None)]
    with pytest.raises(LoadError, match=r"load worker 1 of 2, load worker 2 of 2 did not report "
                                        r"within 0\.5 s of the start"):
        run_workers(shares, _ready_then_stuck, None, limits=(30.0, 0.5))


@pytest.mark.timeout(60)
def test_a_worker_that_does_not_get_ready_is_stopped():
    with pytest.raises(LoadError, match=r"load worker 1 of 1 did not connect and get ready "
                                        r"within 0\.5 s"):
        run_workers([Share(0, 1, 1, None)], _never_ready, None, limits=(0.5, None))


def test_worker_limits_follow_the_schedule():
    spec = LoadSpec("http://127.0.0.1:9/", qps=100, connections=4, duration=10.0, warmup=1.0,
                    timeout=2.0)
    ready, end = engine._worker_limits(spec, engine.Plan(spec))
    assert ready == 2.0 + engine.STOP_GRACE
    assert end == pytest.approx(10.99 + 4.0 + engine.STOP_GRACE)
    closed = LoadSpec("http://127.0.0.1:9/", qps=0, connections=4, requests=10, timeout=2.0)
    assert engine._worker_limits(closed, engine.Plan(closed))[1] is None
