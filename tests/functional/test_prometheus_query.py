"""meshtune.mesh.prometheus_query against a real Prometheus server and small local HTTP servers.

The Prometheus server reads TSDB blocks that `promtool tsdb create-blocks-from openmetrics`
builds from a generated OpenMetrics file, so every figure is known in advance and no scrape has
to be waited for. The stand-in servers record what the module sends (headers, form fields) and
answer slowly, with errors or over TLS.
"""

from __future__ import annotations

import base64
import json
import math
import socket
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime

import pytest

from ansible_collections.meshtune.mesh.plugins.modules import prometheus_query
from tests.conftest import require_program
from tests.support.ansible_runner import run_module, run_playbook
from tests.support.http_stub import QuietHandler, StubServer, serving
from tests.support.module_harness import call_module

pytestmark = pytest.mark.integration

MODULE = "meshtune.mesh.prometheus_query"
STEP = 15  # seconds between samples in the generated data
SAMPLES = 241  # one hour of samples, both ends included
MIB = 1048576


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def openmetrics(first: int) -> str:
    """Counters rising 10/s (pod a) and 5/s (pod b), a growing memory gauge, NaN and infinities."""
    lines = ["# TYPE meshtune_requests counter"]
    for i in range(SAMPLES):
        at = first + i * STEP
        lines.append(f'meshtune_requests_total{{pod="a"}} {i * STEP * 10} {at}')
        lines.append(f'meshtune_requests_total{{pod="b"}} {i * STEP * 5} {at}')
    lines.append("# TYPE meshtune_proxy_memory_bytes gauge")
    for i in range(SAMPLES):
        lines.append(f'meshtune_proxy_memory_bytes{{pod="a"}} {40 * MIB + i * 1024} {first + i * STEP}')
    lines.append("# TYPE meshtune_special gauge")
    for i in range(SAMPLES):
        at = first + i * STEP
        lines.append(f'meshtune_special{{kind="nan"}} NaN {at}')
        lines.append(f'meshtune_special{{kind="inf"}} +Inf {at}')
        lines.append(f'meshtune_special{{kind="minus_inf"}} -Inf {at}')
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


class Prometheus:
    def __init__(self, url: str, first: int, last: int):
        self.url = url
        self.first = first
        self.last = last


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    binary = require_program("prometheus")
    promtool = require_program("promtool")
    directory = tmp_path_factory.mktemp("prometheus")
    # The last sample lands ten minutes ago, on a 15 s boundary, well inside the retention.
    last = (int(time.time()) - 600) // STEP * STEP
    first = last - (SAMPLES - 1) * STEP
    (directory / "metrics.om").write_text(openmetrics(first))
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics",
                    str(directory / "metrics.om"), str(directory / "data")],
                   check=True, capture_output=True, timeout=60)
    (directory / "prometheus.yml").write_text("global:\n  scrape_interval: 15s\n")
    port = free_port()
    log = (directory / "prometheus.log").open("w")
    process = subprocess.Popen(
        [binary, f"--config.file={directory / 'prometheus.yml'}",
         f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=1) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("Prometheus did not start: " + (directory / "prometheus.log").read_text()[-2000:])
        time.sleep(0.05)
    yield Prometheus(url, first, last)
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


class Recorder(StubServer):
    """Answers every POST with a configured status and body after a delay; remembers requests."""

    def __init__(self):
        super().__init__(RecordingHandler)
        self.requests = []
        self.status = 200
        scalar = {"resultType": "scalar", "result": [1714564800, "0.25"]}
        self.body = json.dumps({"status": "success", "data": scalar})
        self.content_type = "application/json"
        self.delay = 0.0


class RecordingHandler(QuietHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.requests.append({"path": self.path, "headers": headers,
                                     "form": {k: v[0] for k, v in form.items()}})
        time.sleep(self.server.delay)
        self.reply(self.server.status, self.server.content_type, self.server.body.encode())


@pytest.fixture
def recorder():
    with serving(Recorder()) as server:
        yield server


def query(args: dict, check_mode: bool = False) -> dict:
    return call_module(prometheus_query.main, args, check_mode=check_mode)


def rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- against Prometheus ---------------------------------------------------------------------

def test_instant_vector_with_typed_values(prometheus):
    result = query({"url": prometheus.url, "query": 'meshtune_requests_total{pod="a"}',
                    "time": str(prometheus.last)})
    assert result["changed"] is False, result
    assert result["result_type"] == "vector"
    assert result["time"] == prometheus.last
    assert result["result"] == [{"metric": {"__name__": "meshtune_requests_total", "pod": "a"},
                                 "value": 36000.0, "timestamp": prometheus.last}]
    assert result["value"] == 36000.0


def test_instant_aggregation_and_scalar_and_string(prometheus):
    rate = query({"url": prometheus.url, "query": "sum(rate(meshtune_requests_total[5m]))",
                  "time": rfc3339(prometheus.last)})
    assert rate["value"] == pytest.approx(15.0)
    assert rate["result"][0]["metric"] == {}

    scalar = query({"url": prometheus.url, "query": "scalar(sum(meshtune_requests_total)) / 2",
                    "time": str(prometheus.last)})
    assert scalar["result_type"] == "scalar"
    assert scalar["result"] == {"timestamp": prometheus.last, "value": 27000.0}
    assert scalar["value"] == 27000.0

    text = query({"url": prometheus.url, "query": '"mesh"', "time": str(prometheus.last)})
    assert text["result_type"] == "string"
    assert text["result"] == {"timestamp": prometheus.last, "value": "mesh"}
    assert text["value"] is None


def test_range_query_returns_matrix_of_floats(prometheus):
    start = prometheus.last - 300
    result = query({"url": prometheus.url, "query": 'meshtune_requests_total{pod="b"}',
                    "start": str(start), "end": rfc3339(prometheus.last), "step": "1m"})
    assert result["result_type"] == "matrix", result
    assert (result["start"], result["end"], result["step"]) == (start, prometheus.last, 60.0)
    series = result["result"]
    assert len(series) == 1
    assert series[0]["metric"] == {"__name__": "meshtune_requests_total", "pod": "b"}
    first_index = (start - prometheus.first) // STEP
    assert series[0]["values"] == [
        [start + 60 * n, float((first_index + 4 * n) * STEP * 5)] for n in range(6)]
    assert result["value"] is None


def test_range_with_relative_times(prometheus):
    # The data ends ten minutes ago: the window from 25 to 15 minutes ago is fully covered.
    before = time.time()
    result = query({"url": prometheus.url, "query": "sum(rate(meshtune_requests_total[1m]))",
                    "start": "-25m", "end": "now-15m", "step": "5m"})
    after = time.time()
    assert before - 1500 <= result["start"] <= after - 1500
    assert result["end"] - result["start"] == pytest.approx(600)
    points = result["result"][0]["values"]
    assert len(points) == 3
    assert all(point[1] == pytest.approx(15.0) for point in points)


def test_several_queries_at_one_instant_with_nan_and_infinity(prometheus):
    result = query({"url": prometheus.url, "time": rfc3339(prometheus.last), "queries": {
        "rate": "sum(rate(meshtune_requests_total[5m]))",
        "memory_mib": f"max(meshtune_proxy_memory_bytes) / {MIB}",
        "growth_mib_per_min": f"deriv(meshtune_proxy_memory_bytes[10m]) * 60 / {MIB}",
        "special": "meshtune_special",
        "nothing": "absent_metric_that_does_not_exist",
    }})
    results = result["query_results"]
    assert list(results) == ["rate", "memory_mib", "growth_mib_per_min", "special", "nothing"]
    assert results["rate"]["value"] == pytest.approx(15.0)
    assert results["rate"]["query"] == "sum(rate(meshtune_requests_total[5m]))"
    assert results["memory_mib"]["value"] == pytest.approx(40 + 240 / 1024)
    assert results["growth_mib_per_min"]["value"] == pytest.approx(4 / 1024)
    special = {s["metric"]["kind"]: s["value"] for s in results["special"]["result"]}
    assert math.isnan(special["nan"])
    assert special["inf"] == math.inf
    assert special["minus_inf"] == -math.inf
    assert results["nothing"] == {"query": "absent_metric_that_does_not_exist", "result_type": "vector",
                                  "result": [], "value": None}
    assert {r["result"][0]["timestamp"] for r in results.values() if r["result"]} == {prometheus.last}


def test_queries_run_in_check_mode(prometheus):
    result = query({"url": prometheus.url, "query": "count(meshtune_special)",
                    "time": str(prometheus.last)}, check_mode=True)
    assert result["value"] == 3.0
    assert result["changed"] is False


def test_bad_promql_fails_with_prometheus_error_text_and_the_query(prometheus):
    result = query({"url": prometheus.url, "queries": {
        "fine": "sum(meshtune_requests_total)", "broken": "sum(rate(meshtune_requests_total[5m]"}})
    assert result["failed"] is True
    assert result["msg"] == (
        f"Prometheus at {prometheus.url} rejected query 'broken' (bad_data): invalid parameter "
        "\"query\": 1:37: parse error: unclosed left parenthesis "
        "(query: sum(rate(meshtune_requests_total[5m])")
    single = query({"url": prometheus.url, "query": "rate(meshtune_requests_total)"})
    assert single["failed"] is True
    assert "(bad_data)" in single["msg"]
    assert "expected type range vector" in single["msg"]
    assert single["msg"].endswith("(query: rate(meshtune_requests_total))")


def test_through_ansible_playbook_keeps_nan_and_infinity(prometheus, tmp_path):
    result = run_module(tmp_path, MODULE, {"url": prometheus.url, "query": "meshtune_special",
                                           "time": str(prometheus.last)})
    assert result.get("failed") is not True, result
    values = {s["metric"]["kind"]: s["value"] for s in result["result"]}
    assert math.isnan(values["nan"])
    assert values["inf"] == math.inf


def test_named_queries_reach_a_playbook_under_their_own_key(prometheus, tmp_path):
    # ansible-core moves a dict returned as `results` to `ansible_module_results` with a warning.
    result = run_module(tmp_path, MODULE, {"url": prometheus.url, "time": str(prometheus.last),
                                           "queries": {"special": "count(meshtune_special)"}})
    assert result.get("failed") is not True, result
    assert result["query_results"]["special"]["value"] == 3.0
    assert "ansible_module_results" not in result
    assert not [text for text in result.get("warnings", []) if "results" in text]


# --- connection faults ----------------------------------------------------------------------

def test_unreachable_server_is_one_line_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    result = query({"url": url, "query": "up"})
    assert result["failed"] is True
    assert result["msg"] == f"Cannot reach Prometheus at {url}: [Errno 111] Connection refused"

    unknown = query({"url": "http://prometheus.invalid:9090", "query": "up"})
    assert unknown["msg"].startswith("Cannot reach Prometheus at http://prometheus.invalid:9090: ")
    assert "\n" not in unknown["msg"]


def test_slow_server_times_out(recorder):
    recorder.delay = 1.5
    result = query({"url": recorder.url, "queries": {"slow": "up"}, "timeout": 0.3})
    assert result["failed"] is True
    assert result["msg"] == (f"Prometheus at {recorder.url} did not answer query 'slow' within 0.3 s "
                             "(option timeout)")
    assert recorder.requests[0]["form"]["timeout"] == "0.3"


def test_prometheus_evaluation_timeout_is_reported(recorder):
    recorder.status = 503
    recorder.body = json.dumps({"status": "error", "errorType": "timeout",
                                "error": "query timed out in expression evaluation"})
    result = query({"url": recorder.url, "query": "sum(big)"})
    assert result["msg"] == (f"Prometheus at {recorder.url} timed out evaluating query: query timed out "
                             "in expression evaluation (query: sum(big))")


def test_non_prometheus_answer_names_the_status(recorder):
    recorder.status = 404
    recorder.content_type = "text/plain"
    recorder.body = "404 page not found\n"
    result = query({"url": recorder.url + "/", "query": "up"})
    assert result["msg"] == (f"Prometheus at {recorder.url} answered HTTP 404 Not Found for "
                             "/api/v1/query: 404 page not found")

    recorder.status = 200
    recorder.body = "<html>login</html>"
    result = query({"url": recorder.url, "query": "up"})
    assert result["msg"].startswith(f"{recorder.url}/api/v1/query did not answer with JSON (")


# --- what is sent ---------------------------------------------------------------------------

def test_bearer_token_header_is_sent_and_never_returned(recorder):
    result = query({"url": recorder.url + "/prefix", "query": "up", "time": "1714564800",
                    "bearer_token": "s3cret-token", "headers": {"X-Scope-OrgID": "mesh"}})
    assert result["value"] == 0.25, result
    sent = recorder.requests[0]
    assert sent["path"] == "/prefix/api/v1/query"
    assert sent["headers"]["authorization"] == "Bearer s3cret-token"
    assert sent["headers"]["x-scope-orgid"] == "mesh"
    assert sent["headers"]["user-agent"] == "meshtune.mesh.prometheus_query"
    assert sent["form"] == {"query": "up", "time": "1714564800", "timeout": "30"}
    assert "s3cret-token" not in json.dumps(result)


def test_basic_auth_header_is_sent(recorder):
    result = query({"url": recorder.url, "query": "up", "username": "mesh", "password": "pa55"})
    assert result["value"] == 0.25
    expected = "Basic " + base64.b64encode(b"mesh:pa55").decode()
    assert recorder.requests[0]["headers"]["authorization"] == expected
    assert "pa55" not in json.dumps(result)


def test_range_form_fields(recorder):
    recorder.body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"pod": "a"}, "values": [[1714564800, "1"], [1714564830, "NaN"]]}]}})
    result = query({"url": recorder.url, "query": "up", "start": "2024-05-01T11:30:00Z",
                    "end": "2024-05-01T14:00:00+02:00", "step": "30s"})
    sent = recorder.requests[0]
    assert sent["path"] == "/api/v1/query_range"
    assert sent["form"] == {"query": "up", "start": "1714563000", "end": "1714564800", "step": "30",
                            "timeout": "30"}
    assert result["result"][0]["values"][0] == [1714564800, 1.0]
    assert math.isnan(result["result"][0]["values"][1][1])


def test_prometheus_warnings_become_task_warnings(recorder):
    note = "PromQL info: metric might not be a counter"
    recorder.body = json.dumps({"status": "success", "warnings": [note],
                                "data": {"resultType": "vector", "result": []}})
    result = query({"url": recorder.url, "queries": {"cpu": "rate(x[5m])"}})
    assert result["query_results"]["cpu"]["result"] == []
    # ansible-core 2.19 reports warnings as structured events; older releases as plain strings.
    warnings = [w["event"]["msg"] if isinstance(w, dict) else w for w in result["warnings"]]
    assert warnings == [f"Query 'cpu': {note}"]


@pytest.mark.parametrize(("args", "option"), [
    ({"step": "30 seconds", "start": "-10m"}, "step"),
    ({"time": "yesterday"}, "time"),
    ({"start": "-10m"}, "step"),
    ({"end": "now"}, "start"),
    ({"start": "now", "end": "-1h", "step": "1m"}, "end"),
    ({"start": "-30d", "step": "1s"}, "step"),
    ({"time": "now", "start": "-1h", "step": "1m"}, "time"),
    ({"timeout": 0}, "timeout"),
    ({"ca_cert": "/does/not/exist.pem"}, "ca_cert"),
    ({"client_key": "/does/not/exist.key"}, "client_cert"),
    ({"headers": {"X-Tenant": ["a", "b"]}}, "headers.X-Tenant"),
    ({"query": "  "}, "query"),
])
def test_bad_option_fails_naming_it_with_no_request(recorder, args, option):
    result = query({"url": recorder.url, "query": "up", **args})
    assert result["failed"] is True
    assert result["msg"].startswith("Invalid options (nothing was changed): " + option + ": expected"), \
        result["msg"]
    assert recorder.requests == []


def test_bad_url_and_empty_queries_fail_before_any_request(recorder):
    result = query({"url": "prometheus:9090", "queries": {"a": "", "b": "up"}})
    assert result["msg"] == (
        "Invalid options (nothing was changed): url: expected an http(s) URL of the Prometheus "
        "server, such as http://prometheus.istio-system:9090, got 'prometheus:9090'; queries.a: "
        "expected a PromQL expression, got ''")
    both = query({"url": recorder.url, "query": "up", "queries": {"b": "up"}})
    assert "mutually exclusive" in both["msg"] and "query|queries" in both["msg"]
    assert recorder.requests == []


# --- TLS --------------------------------------------------------------------------------------

@pytest.fixture
def tls_recorder(tmp_path):
    openssl = require_program("openssl")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True, timeout=30)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = Recorder()
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.https_url = server.url.replace("http://", "https://")
    server.ca_cert = str(tmp_path / "cert.pem")
    with serving(server):
        yield server


def test_tls_with_ca_cert_and_without_validation(tls_recorder):
    trusted = query({"url": tls_recorder.https_url, "query": "up", "ca_cert": tls_recorder.ca_cert})
    assert trusted["value"] == 0.25, trusted
    unchecked = query({"url": tls_recorder.https_url, "query": "up", "validate_certs": False})
    assert unchecked["value"] == 0.25, unchecked
    refused = query({"url": tls_recorder.https_url, "query": "up"})
    assert refused["failed"] is True
    assert refused["msg"].startswith(f"Cannot reach Prometheus at {tls_recorder.https_url}: ")
    assert "CERTIFICATE_VERIFY_FAILED" in refused["msg"]
    assert "\n" not in refused["msg"]
    assert len(tls_recorder.requests) == 2


# --- answers of the wrong shape ---------------------------------------------------------------

def no_traceback(result: dict) -> None:
    """A failure a person can act on: one message, no Python exception or trace in the result."""
    assert "exception" not in result, result["exception"]
    assert "Traceback" not in json.dumps(result)
    assert "\n" not in result["msg"]


SCALAR = {"resultType": "scalar", "result": [1714564800, "0.25"]}


@pytest.mark.parametrize(("answer", "problem"), [
    ({"status": "success", "data": []}, "data: expected an object with resultType and result, got []"),
    ({"status": "success", "data": [1, 2]}, "data: expected an object with resultType and result, "
                                            "got 'a list of 2'"),
    ({"status": "success"}, "data: expected the query result, got None"),
    ({"status": "success", "data": {}}, "data.resultType: expected one of vector, matrix, scalar, string"),
    ({"status": "success", "data": SCALAR, "warnings": 5}, "warnings: expected a list of strings, got 5"),
    ({"status": "success", "data": SCALAR, "warnings": [{"a": 1}]}, "warnings[0]: expected a string"),
    ({"status": "success", "data": SCALAR, "infos": "note"}, "infos: expected a list of strings"),
    ({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {}, "histogram": [1714564800, []]}]}},
     "data.result[0].histogram[1]: expected a native histogram {count, sum, buckets}, got []"),
    ({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {}, "histogram": [1714564800, {"count": "1", "buckets": [[0, "1", "2"]]}]}]}},
     "data.result[0].histogram[1].buckets[0]: expected a [rule, lower, upper, count] bucket"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "histogram": []}]}},
     "data.result[0].histogram: expected a [timestamp, histogram] pair, got []"),
    ({"status": "success", "data": {"resultType": "matrix", "result": ["abc"]}},
     "data.result[0]: expected a series {metric, values}, got 'abc'"),
    ({"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": "abc"}]}},
     "data.result[0].values: expected a list of [timestamp, value] pairs, got 'abc'"),
    ({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {}, "values": [[1714564800, "1"], [1714564830]]}]}},
     "data.result[0].values[1]: expected a [timestamp, value] pair"),
    ({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {}, "values": [], "histograms": {"a": 1}}]}},
     "data.result[0].histograms: expected a list of [timestamp, histogram] pairs"),
    ({"status": "success", "data": {"resultType": "vector", "result": {"a": 1}}},
     "data.result: expected a list of samples"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": 5, "value": [1, "1"]}]}},
     "data.result[0].metric: expected a map of label name to value, got 5"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}},
     "data.result[0]: expected a sample {metric, value} or {metric, histogram}"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"value": ["now", "1"]}]}},
     "data.result[0].value[0]: expected a unix time in seconds, got 'now'"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "many"]}]}},
     "data.result[0].value[1]: expected a sample value (a number as a string), got 'many'"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, None]}]}},
     "data.result[0].value[1]: expected a sample value (a number as a string), got None"),
    ({"status": "success", "data": {"resultType": "scalar", "result": "1"}},
     "data.result: expected a [timestamp, value] pair, got '1'"),
    ({"status": "success", "data": {"resultType": "string", "result": [1, 2]}},
     "data.result[1]: expected a string, got 2"),
    ({"status": "ok", "data": SCALAR}, "status: expected success or error, got 'ok'"),
    ([1, 2, 3], "answer: expected a JSON object with status and data, got 'a list of 3'"),
    (42, "answer: expected a JSON object with status and data, got 42"),
])
def test_an_answer_of_the_wrong_shape_fails_naming_what_is_wrong(recorder, answer, problem):
    recorder.body = json.dumps(answer)
    result = query({"url": recorder.url, "queries": {"cpu": "up"}})
    assert result["failed"] is True, result
    assert result["msg"].startswith(f"The answer of {recorder.url}/api/v1/query to query 'cpu' is not "
                                    "what Prometheus's HTTP API sends: "), result["msg"]
    assert problem in result["msg"]
    no_traceback(result)


def test_an_answer_nested_too_deeply_fails_without_a_traceback(recorder):
    recorder.body = '{"status": "success", "data": ' + "[" * 100000 + "]" * 100000 + "}"
    result = query({"url": recorder.url, "query": "up"})
    assert result["failed"] is True
    assert result["msg"] == (f"{recorder.url}/api/v1/query answered with JSON nested too deeply to be "
                             "a Prometheus answer")
    no_traceback(result)


def test_an_error_answer_of_the_wrong_shape_still_fails_with_one_line(recorder):
    recorder.status = 400
    recorder.body = json.dumps({"status": "error", "errorType": ["x"], "error": {"nested": True}})
    result = query({"url": recorder.url, "query": "up"})
    assert result["msg"] == f"Prometheus at {recorder.url} rejected query (error): no error text (query: up)"
    no_traceback(result)


@pytest.mark.parametrize("timeout", [1e12, 86401, float("inf"), float("nan")])
def test_a_timeout_too_long_for_a_socket_is_refused_before_any_request(recorder, timeout):
    result = query({"url": recorder.url, "query": "up", "timeout": timeout})
    assert result["failed"] is True
    assert result["msg"].startswith("Invalid options (nothing was changed): timeout: expected a positive "
                                    "number of seconds, at most 86400 (a day), got ")
    no_traceback(result)
    assert recorder.requests == []


@pytest.mark.parametrize(("headers", "problem"), [
    ({"X-Tenant": "a\r\nInjected: yes"}, "headers.X-Tenant: expected a header value on one line"),
    ({"Bad Name": "x"}, "headers.Bad Name: expected a header name of letters, digits and -"),
    ({"Authorization": "Bearer a\nb"}, "headers.Authorization: expected a header value on one line, "
                                       "got '(hidden)'"),
])
def test_headers_that_http_cannot_carry_are_refused(recorder, headers, problem):
    result = query({"url": recorder.url, "query": "up", "headers": headers})
    assert result["failed"] is True
    assert problem in result["msg"]
    no_traceback(result)
    assert recorder.requests == []


# --- credentials never shown ----------------------------------------------------------------

def test_a_password_in_the_url_is_sent_but_never_shown(recorder):
    url = recorder.url.replace("http://", "http://mesh:pa55-in-url@")
    result = query({"url": url, "query": "up"})
    assert result["value"] == 0.25, result
    expected = "Basic " + base64.b64encode(b"mesh:pa55-in-url").decode()
    assert recorder.requests[0]["headers"]["authorization"] == expected
    assert "pa55-in-url" not in json.dumps(result)

    recorder.status = 500
    recorder.body = "boom"
    failed = query({"url": url, "query": "up"})
    shown = recorder.url.replace("http://", "http://mesh:********@")
    assert failed["msg"].startswith(f"Prometheus at {shown} answered HTTP 500"), failed["msg"]
    assert "pa55-in-url" not in json.dumps(failed)


def test_a_password_in_the_url_of_an_unreachable_server_is_masked():
    port = free_port()
    result = query({"url": f"http://alice:pw-s3cret-9@127.0.0.1:{port}", "query": "up"})
    assert result["failed"] is True
    assert result["msg"].startswith(f"Cannot reach Prometheus at http://alice:********@127.0.0.1:{port}: ")
    assert "pw-s3cret-9" not in json.dumps(result)


def test_a_bad_url_is_quoted_with_its_password_masked():
    result = query({"url": "ftp://alice:pw-s3cret-9@prometheus:9090", "query": "up"})
    assert "got 'ftp://alice:********@prometheus:9090'" in result["msg"]
    assert "pw-s3cret-9" not in json.dumps(result)


VERBOSE_PLAYBOOK = """
- name: Query with credentials
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Query a server that answers
      meshtune.mesh.prometheus_query:
        url: "{{ good_url }}"
        query: up
        headers:
          Authorization: Bearer tok-s3cret-7
          X-Scope-OrgID: mesh
      register: answered

    - name: Query a server that does not
      meshtune.mesh.prometheus_query:
        url: "{{ bad_url }}"
        query: up
        bearer_token: bearer-s3cret-5
        timeout: 5
      ignore_errors: true

    - name: Query with basic authentication options
      meshtune.mesh.prometheus_query:
        url: "{{ bad_url }}"
        query: up
        username: alice
        password: option-s3cret-3
      ignore_errors: true

    - name: Fail Ansible's own option checks, before the module's code runs
      meshtune.mesh.prometheus_query:
        url: "{{ bad_url }}"
        query: up
        timeout: soon
        headers:
          Authorization: Bearer tok-s3cret-7
      ignore_errors: true

    - name: Show what was registered
      ansible.builtin.debug:
        var: answered
"""


@pytest.mark.parametrize("verbosity", [[], ["-vvv"]])
def test_no_credential_reaches_the_playbook_output(recorder, tmp_path, verbosity):
    playbook = tmp_path / "credentials.yml"
    playbook.write_text(VERBOSE_PLAYBOOK)
    good = recorder.url.replace("http://", "http://alice:pw-s3cret-9@")
    bad = f"http://alice:pw-s3cret-9@127.0.0.1:{free_port()}"
    process = run_playbook(playbook, {"good_url": good, "bad_url": bad}, *verbosity)
    output = process.stdout + process.stderr
    assert "Cannot reach Prometheus at http://alice:********@127.0.0.1" in output, output
    assert recorder.requests[0]["headers"]["authorization"] == "Bearer tok-s3cret-7"
    for secret in ("pw-s3cret-9", "tok-s3cret-7", "bearer-s3cret-5", "option-s3cret-3"):
        assert secret not in output, secret
    if verbosity:
        assert "X-Scope-OrgID" in output  # the invocation is shown, with the secrets masked
