"""The Prometheus content of roles/prometheus and the queries of roles/grafana's dashboards, proven
with the real promtool and a real Prometheus server on 127.0.0.1.

- Rule files and the rendered alerts pass `promtool check rules`; promtool unit tests
  (tests/observability/promtool/) cover every recording rule and every alert, firing and quiet;
  alert thresholds follow the verify targets.
- The scrape jobs pass `promtool check config` once their Kubernetes discovery is swapped for
  static targets carrying the labels discovery would set, and a server running them relabels
  and scrapes a stand-in proxy as intended.
- A server loaded with an hour of a sample mesh's metrics (TSDB blocks made by promtool) and the
  rule files evaluates every recording rule, raises the expected alerts, and answers every
  dashboard query with the expected labels.
"""

from __future__ import annotations

import copy
import math
import re
import shutil
import time
from pathlib import Path

import certifi
import jinja2
import pytest
import yaml

from tests.conftest import require_program
from tests.observability import content
from tests.observability.exporter import ProxyMetricsExporter
from tests.observability.mesh_metrics import FAST, PUSH_TIME, SLOW, SampleMesh, timestamps, write_openmetrics
from tests.observability.prometheus import PrometheusServer, promtool
from tests.observability.rendering import render_template, role_defaults

pytestmark = pytest.mark.integration

ALERTS_TEMPLATE = "meshtune-alerts.yml.j2"
ALERTS_FILE = "meshtune-alerts.yml"
ALERT_TEST_FILE = "meshtune-alerts.test.yml"
DEFAULT_TARGETS = role_defaults("prometheus")["prometheus_alert_target_defaults"]


@pytest.fixture(scope="module")
def promtool_bin() -> str:
    return require_program("promtool")


@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    return require_program("prometheus")


def render_alerts(directory: Path, targets: dict | None = None) -> Path:
    """The alerts template rendered as the role would, with `targets` as meshtune_verify_targets."""
    extra = {} if targets is None else {"meshtune_verify_targets": targets}
    path = directory / ALERTS_FILE
    path.write_text(render_template("prometheus", ALERTS_TEMPLATE, extra), encoding="utf-8")
    return path


def alert_rules(path: Path) -> dict[str, dict]:
    return {rule["alert"]: rule for rule in content.rules([path]) if "alert" in rule}


def strip_annotations(path: Path) -> None:
    """promtool compares annotations verbatim; its alert tests check firing and labels only."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for group in data["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def promtool_workdir(directory: Path, targets: dict | None = None) -> Path:
    """A directory with the rule files, the rendered alerts and the promtool test files."""
    for path in content.rule_files():
        shutil.copy(path, directory / path.name)
    strip_annotations(render_alerts(directory, targets))
    for path in content.PROMTOOL_TESTS.glob("*.test.yml"):
        shutil.copy(path, directory / path.name)
    return directory


# --- rules and alerts with promtool ------------------------------------------------------------


def test_rule_files_and_rendered_alerts_pass_promtool_check(promtool_bin, tmp_path):
    alerts = render_alerts(tmp_path)
    result = promtool(promtool_bin, "check", "rules", *map(str, content.rule_files()), str(alerts))
    assert result.stdout.count("SUCCESS") == len(content.rule_files()) + 1


@pytest.mark.parametrize("test_file", sorted(p.name for p in content.PROMTOOL_TESTS.glob("*.test.yml")))
def test_promtool_unit_tests(promtool_bin, tmp_path, test_file):
    workdir = promtool_workdir(tmp_path)
    result = promtool(promtool_bin, "test", "rules", test_file, cwd=workdir)
    assert "SUCCESS" in result.stdout


def _promtool_tests() -> list[dict]:
    paths = content.PROMTOOL_TESTS.glob("*.test.yml")
    return [yaml.safe_load(path.read_text(encoding="utf-8")) for path in paths]


def test_every_recording_rule_has_a_promtool_expectation():
    tested = " ".join(expr_test["expr"] for test_file in _promtool_tests() for group in test_file["tests"]
                      for expr_test in group.get("promql_expr_test", []))
    untested = [rule["record"] for rule in content.recording_rules()
                if not re.search(re.escape(rule["record"]) + r"(?![\w:])", tested)]
    assert untested == []


def test_every_alert_has_a_firing_and_a_quiet_promtool_case(tmp_path):
    cases: dict[str, set[str]] = {}
    for test_file in _promtool_tests():
        for group in test_file["tests"]:
            for alert_test in group.get("alert_rule_test", []):
                kind = "firing" if alert_test["exp_alerts"] else "quiet"
                cases.setdefault(alert_test["alertname"], set()).add(kind)
    alerts = alert_rules(render_alerts(tmp_path))
    assert {name: cases.get(name, set()) for name in alerts} == {name: {"firing", "quiet"} for name in alerts}


# (target key, value that silences the alert in its firing case, alert, threshold in the expr)
RELAXED_TARGETS = [
    ("p99_ms", 600, "MeshtuneLatencyP99OverTarget", "> 600.0"),
    ("success_rate", 0.9, "MeshtuneErrorRatioOverTarget", "> (1 - 0.9)"),
    ("proxy_memory_growth_mib_per_min", 3, "MeshtuneProxyMemoryGrowing", "> 3.0"),
    ("push_latency_p99_ms", 5000, "MeshtuneConfigPushLatencyHigh", "> 5000.0"),
    ("proxy_cpu_limit_fraction", 0.9, "MeshtuneProxyCpuNearLimit", "> 0.9"),
]


def _only_alert_tests(test_file: dict, alertname: str, expect) -> dict:
    """The promtool test groups that exercise `alertname`, with expectations replaced by `expect`."""
    result = copy.deepcopy(test_file)
    groups = []
    for group in result["tests"]:
        tests = [t for t in group.get("alert_rule_test", []) if t["alertname"] == alertname]
        if not tests:
            continue
        for alert_test in tests:
            alert_test["exp_alerts"] = expect(alert_test)
        group["alert_rule_test"] = tests
        group.pop("promql_expr_test", None)
        groups.append(group)
    result["tests"] = groups
    return result


@pytest.mark.parametrize(("key", "value", "alertname", "threshold"), RELAXED_TARGETS,
                         ids=[row[0] for row in RELAXED_TARGETS])
def test_relaxing_a_verify_target_silences_its_alert(promtool_bin, tmp_path, key, value, alertname,
                                                     threshold):
    workdir = promtool_workdir(tmp_path, {key: value})
    expr = alert_rules(workdir / ALERTS_FILE)[alertname]["expr"]
    assert expr.endswith(threshold)
    # The other thresholds keep their defaults.
    defaults_dir = tmp_path / "defaults"
    defaults_dir.mkdir()
    defaults = alert_rules(render_alerts(defaults_dir))
    for other, rule in alert_rules(workdir / ALERTS_FILE).items():
        if other != alertname:
            assert rule["expr"] == defaults[other]["expr"]
    # The same input that fires with the default target stays quiet now: the default
    # expectations fail, the quiet ones pass.
    test_file = yaml.safe_load((workdir / ALERT_TEST_FILE).read_text(encoding="utf-8"))
    firing = _only_alert_tests(test_file, alertname, lambda alert_test: alert_test["exp_alerts"])
    (workdir / "default.test.yml").write_text(yaml.safe_dump(firing), encoding="utf-8")
    with pytest.raises(AssertionError, match=alertname):
        promtool(promtool_bin, "test", "rules", "default.test.yml", cwd=workdir)
    quiet = _only_alert_tests(test_file, alertname, lambda alert_test: [])
    (workdir / "relaxed.test.yml").write_text(yaml.safe_dump(quiet), encoding="utf-8")
    promtool(promtool_bin, "test", "rules", "relaxed.test.yml", cwd=workdir)


@pytest.mark.parametrize(("key", "value", "alertname", "extra_workload"), [
    ("p99_ms", 50, "MeshtuneLatencyP99OverTarget", "productpage-v1"),          # productpage p99 is 95 ms
    ("proxy_memory_growth_mib_per_min", 0.25, "MeshtuneProxyMemoryGrowing", "productpage-v1"),  # grows 0.5
])
def test_tightening_a_verify_target_catches_more_workloads(promtool_bin, tmp_path, key, value, alertname,
                                                           extra_workload):
    workdir = promtool_workdir(tmp_path, {key: value})
    test_file = yaml.safe_load((workdir / ALERT_TEST_FILE).read_text(encoding="utf-8"))

    def expect(alert_test):
        firing = alert_test["exp_alerts"]
        if not firing:
            return []
        return [*firing, {"exp_labels": {**firing[0]["exp_labels"], "workload": extra_workload}}]

    default = _only_alert_tests(test_file, alertname, lambda alert_test: alert_test["exp_alerts"])
    (workdir / "default.test.yml").write_text(yaml.safe_dump(default), encoding="utf-8")
    with pytest.raises(AssertionError, match=extra_workload):
        promtool(promtool_bin, "test", "rules", "default.test.yml", cwd=workdir)
    strict = _only_alert_tests(test_file, alertname, expect)
    (workdir / "strict.test.yml").write_text(yaml.safe_dump(strict), encoding="utf-8")
    promtool(promtool_bin, "test", "rules", "strict.test.yml", cwd=workdir)


def test_targets_default_when_the_inventory_has_none(tmp_path):
    exprs = {name: rule["expr"] for name, rule in alert_rules(render_alerts(tmp_path)).items()}
    targets = DEFAULT_TARGETS
    assert exprs["MeshtuneLatencyP99OverTarget"].endswith(f"> {float(targets['p99_ms'])}")
    assert exprs["MeshtuneErrorRatioOverTarget"].endswith(f"> (1 - {targets['success_rate']})")
    assert exprs["MeshtuneProxyCpuNearLimit"].endswith(f"> {targets['proxy_cpu_limit_fraction']}")


def test_every_alert_carries_summary_description_and_runbook(tmp_path):
    for name, rule in alert_rules(render_alerts(tmp_path)).items():
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook"}, name
        assert all(text.strip() for text in annotations.values()), name
        assert re.match(r"1\. ", annotations["runbook"]), name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert "{%" not in str(rule) and "[[" not in str(rule), name


@pytest.mark.parametrize("trim_blocks", [True, False])
def test_alert_template_renders_the_same_with_plain_jinja(tmp_path, trim_blocks):
    """Ansible renders with trim_blocks; the raw blocks must not depend on it."""
    source = (content.ROLES / "prometheus" / "templates" / ALERTS_TEMPLATE).read_text(encoding="utf-8")
    defaults = role_defaults("prometheus")
    variables = {**defaults, "prometheus_alert_targets": DEFAULT_TARGETS}
    environment = jinja2.Environment(trim_blocks=trim_blocks, undefined=jinja2.StrictUndefined)
    plain = yaml.safe_load(environment.from_string(source).render(**variables))
    ansible = yaml.safe_load(render_alerts(tmp_path).read_text(encoding="utf-8"))
    assert plain == ansible


# --- scrape configuration --------------------------------------------------------------------


def _pod(name: str, ip: str, *, namespace: str = "shop", kind: str | None = "ReplicaSet",
         controller: str | None = None, scrape: str = "true", port: str = "15020",
         path: str = "/stats/prometheus", phase: str = "Running") -> dict[str, str]:
    """The labels Kubernetes pod discovery sets for one container port of a pod."""
    labels = {
        "__address__": f"{ip}:9080" if ":" not in ip else f"[{ip}]:9080",
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_pod_name": name,
        "__meta_kubernetes_pod_ip": ip,
        "__meta_kubernetes_pod_phase": phase,
        "__meta_kubernetes_pod_container_name": "app",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": scrape,
        "__meta_kubernetes_pod_annotation_prometheus_io_port": port,
        "__meta_kubernetes_pod_annotation_prometheus_io_path": path,
    }
    if kind:
        labels["__meta_kubernetes_pod_controller_kind"] = kind
        labels["__meta_kubernetes_pod_controller_name"] = controller
    return labels


def _endpoint(service: str, port_name: str, address: str, pod: str, revision: str | None) -> dict[str, str]:
    labels = {
        "__address__": address,
        "__meta_kubernetes_namespace": "istio-system",
        "__meta_kubernetes_service_name": service,
        "__meta_kubernetes_endpoint_port_name": port_name,
        "__meta_kubernetes_pod_name": pod,
    }
    if revision:
        labels["__meta_kubernetes_pod_label_istio_io_rev"] = revision
    return labels


def discovered_targets(proxy_port: int) -> dict[str, list[dict[str, str]]]:
    """What Kubernetes discovery would report per role; the reviews pod is the local exporter."""
    port = str(proxy_port)
    return {
        "endpoints": [
            _endpoint("istiod", "http-monitoring", "127.0.0.2:15014", "istiod-6c9d8f7b5-q2w3e", "default"),
            _endpoint("istiod-canary", "http-monitoring", "127.0.0.3:15014", "istiod-canary-5d6f7b8c9-n9p0q",
                      "canary"),
            # Dropped: another istiod port, another service.
            _endpoint("istiod", "grpc-xds", "127.0.0.2:15010", "istiod-6c9d8f7b5-q2w3e", "default"),
            _endpoint("kube-dns", "metrics", "127.0.0.4:9153", "coredns-5d78c9869d-abcde", None),
        ],
        "pod": [
            _pod("reviews-v1-6d5c8b7f9-a1b2c", "127.0.0.1", controller="reviews-v1-6d5c8b7f9", port=port),
            _pod("mysqldb-0", "127.0.0.5", kind="StatefulSet", controller="mysqldb", port=port),
            _pod("debug-shell", "127.0.0.6", kind=None, port=port),
            _pod("ratings-v1-5b7c8d9f6-z9y8x", "fd00:10:1::5", controller="ratings-v1-5b7c8d9f6", port=port),
            # Dropped: application metrics without a sidecar, scraping turned off, a finished Job.
            _pod("legacy-5f6d7c8b9-q1w2e", "127.0.0.7", controller="legacy-5f6d7c8b9", port="8080",
                 path="/metrics"),
            _pod("batch-4c5d6e7f8-r5t6y", "127.0.0.8", controller="batch-4c5d6e7f8", scrape="false",
                 port=port),
            _pod("migrate-x7k2p", "127.0.0.9", kind="Job", controller="migrate", phase="Succeeded",
                 port=port),
        ],
        "node": [
            {"__address__": "127.0.0.10:10250", "__meta_kubernetes_node_name": "node-1",
             "__meta_kubernetes_node_address_InternalIP": "127.0.0.10"},
        ],
    }


def scrape_config(tmp_path: Path, proxy_port: int = 15020, interval: str = "15s") -> dict:
    """A full Prometheus config: the role's scrape jobs (discovery swapped) and rule files."""
    rendered = render_template("prometheus", "scrape_configs.yml.j2", {
        "prometheus_proxy_metrics_port": proxy_port, "prometheus_scrape_interval": interval})
    token = tmp_path / "token"
    token.write_text("test-token", encoding="utf-8")
    jobs = content.swap_kubernetes_sd(
        yaml.safe_load(rendered), discovered_targets(proxy_port),
        {"/var/run/secrets/kubernetes.io/serviceaccount/token": str(token),
         "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt": certifi.where()})
    return {"global": {"scrape_interval": interval, "evaluation_interval": interval}, "scrape_configs": jobs}


def test_swap_replaces_every_kubernetes_discovery_block(tmp_path):
    config = scrape_config(tmp_path)
    assert "kubernetes_sd_configs" not in yaml.safe_dump(config)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"istiod", "envoy-stats", "kubernetes-cadvisor"}
    assert all(job["static_configs"] for job in jobs.values())


def test_scrape_config_passes_promtool_check_config(promtool_bin, tmp_path):
    config = scrape_config(tmp_path)
    alerts = render_alerts(tmp_path)
    config["rule_files"] = [*map(str, content.rule_files()), str(alerts)]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = promtool(promtool_bin, "check", "config", str(path))
    assert "SUCCESS" in result.stdout


def test_scrape_interval_is_a_variable(tmp_path):
    rendered = yaml.safe_load(render_template("prometheus", "scrape_configs.yml.j2",
                                              {"prometheus_scrape_interval": "7s"}))
    assert {job["scrape_interval"] for job in rendered} == {"7s"}


def test_scrape_jobs_relabel_and_scrape_on_a_real_server(prometheus_bin, tmp_path):
    with ProxyMetricsExporter() as exporter:
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump(scrape_config(tmp_path, exporter.port, "1s")), encoding="utf-8")
        server = PrometheusServer(prometheus_bin, config, tmp_path / "data").start()
        try:
            targets = server.wait_for(
                lambda: (data := server.api("targets"))["activeTargets"] and data, timeout=20)
            active = {(t["labels"]["job"], t["labels"]["instance"]): t for t in targets["activeTargets"]}
            port = exporter.port
            assert set(active) == {
                ("istiod", "127.0.0.2:15014"), ("istiod", "127.0.0.3:15014"),
                ("envoy-stats", f"127.0.0.1:{port}"), ("envoy-stats", f"127.0.0.5:{port}"),
                ("envoy-stats", f"127.0.0.6:{port}"), ("envoy-stats", f"[fd00:10:1::5]:{port}"),
                ("kubernetes-cadvisor", "127.0.0.10:10250"),
            }
            assert len(targets["droppedTargets"]) == 5

            def labels(job, instance):
                found = dict(active[(job, instance)]["labels"])
                found.pop("job"), found.pop("instance")
                return found

            assert labels("istiod", "127.0.0.2:15014") == {
                "namespace": "istio-system", "pod": "istiod-6c9d8f7b5-q2w3e", "revision": "default"}
            assert labels("istiod", "127.0.0.3:15014")["revision"] == "canary"
            assert labels("envoy-stats", f"127.0.0.1:{port}") == {
                "namespace": "shop", "pod": "reviews-v1-6d5c8b7f9-a1b2c", "workload": "reviews-v1"}
            assert labels("envoy-stats", f"127.0.0.5:{port}")["workload"] == "mysqldb"          # StatefulSet
            assert labels("envoy-stats", f"127.0.0.6:{port}")["workload"] == "debug-shell"      # bare pod
            assert labels("envoy-stats", f"[fd00:10:1::5]:{port}")["workload"] == "ratings-v1"  # IPv6
            assert active[("envoy-stats", f"127.0.0.1:{port}")]["scrapeUrl"] == \
                f"http://127.0.0.1:{port}/stats/prometheus"
            cadvisor = active[("kubernetes-cadvisor", "127.0.0.10:10250")]
            assert cadvisor["scrapeUrl"] == "https://127.0.0.10:10250/metrics/cadvisor"
            assert labels("kubernetes-cadvisor", "127.0.0.10:10250") == {"node": "node-1"}

            # The stand-in proxy is scraped and its Istio series carry the pod's labels.
            samples = server.wait_for(
                lambda: server.query('istio_requests_total{job="envoy-stats"}'), timeout=20)
            assert exporter.scrapes >= 1
            assert [sample["metric"] for sample in samples] == [{
                "__name__": "istio_requests_total", "job": "envoy-stats", "instance": f"127.0.0.1:{port}",
                "namespace": "shop", "pod": "reviews-v1-6d5c8b7f9-a1b2c", "workload": "reviews-v1",
                "reporter": "destination", "source_workload": "productpage-v1",
                "source_workload_namespace": "shop",
                "destination_workload": "reviews-v1", "destination_workload_namespace": "shop",
                "destination_service": "reviews.shop.svc.cluster.local", "request_protocol": "http",
                "response_code": "200", "response_flags": "-", "connection_security_policy": "mutual_tls"}]
        finally:
            server.stop()


# --- a real server with an hour of a sample mesh -------------------------------------------


MESH = SampleMesh()
DASHBOARD_VALUES = {
    "namespace": "shop", "workload": "reviews-v1", "__rate_interval": "1m", "__interval": "15s",
    "baseline_p50_ms": "3", "baseline_p90_ms": "6.5", "baseline_p99_ms": "12",
}


@pytest.fixture(scope="module")
def mesh_server(prometheus_bin, promtool_bin, tmp_path_factory):
    """Prometheus with the rule files and rendered alerts, over an hour of sample-mesh metrics.

    The samples end one second before the blocks are made (backfilled data must be older than
    the server's head); the server evaluates the rules every second from its start on.
    """
    directory = tmp_path_factory.mktemp("mesh-prometheus")
    openmetrics = directory / "mesh.om"
    write_openmetrics(openmetrics, MESH, timestamps(time.time() - 1))
    data = directory / "data"
    promtool(promtool_bin, "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(data))
    openmetrics.unlink()
    rules = [*content.rule_files(), render_alerts(directory)]
    config = directory / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"evaluation_interval": "1s"},
                                      "rule_files": [str(path) for path in rules]}), encoding="utf-8")
    server = PrometheusServer(prometheus_bin, config, data).start()
    try:
        # Groups are evaluated independently and chained rules need their inputs recorded first:
        # wait until every recorded series exists (a loaded machine may take several rounds).
        for record in [rule["record"] for rule in content.recording_rules()]:
            assert server.wait_for(lambda record=record: server.query(record), timeout=60), record
        yield server
    finally:
        server.stop()


# Label names each recording rule's series must have (exactly), besides __name__.
WORKLOAD = {"namespace", "workload"}
RULE_LABELS = {
    "meshtune:pod_workload:info": WORKLOAD | {"pod"},
    "meshtune:istio_request_duration_milliseconds_bucket:rate1m": WORKLOAD | {"le"},
    "meshtune:proxy_cpu_limit_usage:ratio_rate1m": WORKLOAD | {"pod"},
    "meshtune:istiod_up:sum": {"revision"},
    "meshtune:pilot_proxy_convergence_time_milliseconds:p99_rate5m": {"revision"},
    "meshtune:pilot_xds_pushes:rate5m": {"revision", "type"},
    "meshtune:pilot_xds_connections:sum": {"revision"},
}


@pytest.mark.parametrize("rule", content.recording_rules(), ids=lambda rule: rule["record"])
def test_recording_rule_expr_on_real_prometheus(mesh_server, rule):
    record = rule["record"]
    for expr in (rule["expr"], record):  # the expression itself, and the series the server recorded
        result = mesh_server.query(expr)
        assert result, f"{record}: {expr!r} returned no data"
        for series in result:
            names = set(series["metric"]) - {"__name__"}
            if record.startswith("workload:"):
                assert {"reporter", "namespace", "workload", "destination_workload"} <= names, series
                assert not names & {"pod", "instance"}, series
            else:
                assert names == RULE_LABELS.get(record, WORKLOAD), series
            assert not math.isnan(float(series["value"][1])), series


def _value(server: PrometheusServer, expr: str) -> dict[str, float]:
    """workload (or revision, or pod) -> value."""
    result = server.query(expr)
    return {s["metric"].get("pod") or s["metric"].get("workload") or s["metric"].get("revision", ""):
            float(s["value"][1]) for s in result}


def _quantile(distribution, q: float) -> float:
    previous_bound, previous_share = 0.0, 0.0
    for bound, share in distribution:
        if share >= q:
            return previous_bound + (bound - previous_bound) * (q - previous_share) / (share - previous_share)
        previous_bound, previous_share = bound, share
    raise ValueError(q)


def test_recorded_values_match_the_sample_mesh(mesh_server):
    """What Prometheus computes from the sample data equals what the model put in."""
    approx = pytest.approx
    rps = _value(mesh_server, "meshtune:istio_requests:rate1m")
    assert rps == {"productpage-v1": approx(400, rel=0.15), "reviews-v1": approx(400, rel=0.15)}
    assert _value(mesh_server, "meshtune:istio_requests_5xx:ratio_rate1m") == {
        "productpage-v1": 0, "reviews-v1": approx(0.02, rel=0.02)}
    p99 = _value(mesh_server, "meshtune:istio_request_duration_milliseconds:p99_rate1m")
    assert p99 == {"productpage-v1": approx(_quantile(FAST, 0.99), rel=0.02),
                   "reviews-v1": approx(_quantile(SLOW, 0.99), rel=0.02)}
    p50 = _value(mesh_server, "meshtune:istio_request_duration_milliseconds:p50_rate1m")
    assert p50["reviews-v1"] == approx(_quantile(SLOW, 0.5), rel=0.02)

    # Cost: fortio and productpage sidecars each carry their own traffic, reviews' two share 400 rps.
    through = {"fortio-client": 400, "productpage-v1": 800, "reviews-v1": 400}
    per_1k = _value(mesh_server, "meshtune:proxy_cpu_cores_per_1k_rps:ratio_rate1m")
    expected = {w.name: w.proxy_cpu_cores * len(w.pods) * 1000 / through[w.name]
                for w in MESH.workloads if w.name in through}
    assert per_1k == {name: approx(value, rel=0.02) for name, value in expected.items()}
    cores = _value(mesh_server, "meshtune:proxy_cpu_cores:rate1m")
    assert cores == {w.name: approx(w.proxy_cpu_cores * len(w.pods), rel=0.15) for w in MESH.workloads}
    limit = _value(mesh_server, "meshtune:proxy_cpu_limit_usage:ratio_rate1m")
    assert limit == {pod: approx(w.proxy_cpu_cores / w.proxy_cpu_limit_cores, rel=0.15)
                     for w in MESH.workloads for pod in w.pods}

    growth = _value(mesh_server, "meshtune:proxy_memory_growth_mib_per_minute:max_deriv10m")
    assert growth["reviews-v1"] == approx(2.0, rel=0.2)
    assert all(abs(growth[w.name]) < 0.5 for w in MESH.workloads if w.name != "reviews-v1")
    largest = _value(mesh_server, "meshtune:proxy_memory_working_set_mib:max")
    assert largest["reviews-v1"] == approx(MESH.reviews.proxy_memory_mib + 2 + 2.0 * 60, rel=0.03)
    assert largest["productpage-v1"] == approx(MESH.productpage.proxy_memory_mib, abs=0.6)

    assert _value(mesh_server, "meshtune:pilot_proxy_convergence_time_milliseconds:p99_rate5m") == {
        "default": approx(_quantile(PUSH_TIME, 0.99) * 1000, rel=0.02)}
    assert _value(mesh_server, "meshtune:istiod_up:sum") == {"default": 1}
    assert _value(mesh_server, "meshtune:pilot_xds_connections:sum") == {"default": 5}
    pods = len(MESH.reviews.pods)
    assert _value(mesh_server, "meshtune:envoy_http_local_rate_limit_rate_limited:rate1m") == {
        "reviews-v1": approx(MESH.rate_limited_rps * pods, rel=0.02)}
    assert _value(mesh_server, "meshtune:envoy_http_local_rate_limit_enforced:rate1m") == {
        "reviews-v1": approx(MESH.rate_limit_enforced_rps * pods, rel=0.02)}


def test_alerts_on_real_prometheus(mesh_server):
    """reviews-v1 breaks every workload target; nothing else may alert. Annotations expand."""
    expected = {
        ("MeshtuneLatencyP99OverTarget", "reviews-v1"),
        ("MeshtuneErrorRatioOverTarget", "reviews-v1"),
        ("MeshtuneProxyMemoryGrowing", "reviews-v1"),
        ("MeshtuneProxyCpuNearLimit", MESH.reviews.pods[0]),
        ("MeshtuneProxyCpuNearLimit", MESH.reviews.pods[1]),
    }

    def alerts():
        found = mesh_server.api("alerts")["alerts"]
        keys = {(alert["labels"]["alertname"], alert["labels"].get("pod") or alert["labels"].get("workload"))
                for alert in found}
        return found if keys == expected else None

    found = mesh_server.wait_for(alerts, timeout=15)
    assert found, mesh_server.api("alerts")
    for alert in found:
        assert alert["state"] in {"pending", "firing"}
        annotations = alert["annotations"]
        assert "shop/" in annotations["summary"], annotations
        for text in annotations.values():
            assert "<no value>" not in text and "error expanding template" not in text, annotations
    rules = mesh_server.api("rules")["groups"]
    unhealthy = [(r["name"], r.get("lastError")) for g in rules for r in g["rules"] if r["health"] != "ok"]
    assert unhealthy == []


@pytest.fixture(scope="module")
def dashboard_targets():
    return [(path.name, panel, target) for path in content.dashboards()
            for panel, target in content.panel_targets(content.load_dashboard(path))]


def test_dashboard_variables_on_real_prometheus(mesh_server):
    for path in content.dashboards():
        for variable in content.load_dashboard(path)["templating"]["list"]:
            if variable["type"] != "query":
                continue
            definition = content.substitute(variable["query"]["query"], {"namespace": "shop"})
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", definition)
            assert match, definition
            values = mesh_server.label_values(match.group(2), match.group(1))
            expected = {"namespace": {"shop", "bench"},
                        "workload": {"productpage-v1", "reviews-v1"}}[variable["name"]]
            assert expected <= set(values), (variable["name"], values)


def test_every_dashboard_query_on_real_prometheus(mesh_server, dashboard_targets):
    assert dashboard_targets
    for dashboard, panel, target in dashboard_targets:
        where = f"{dashboard} panel {panel['id']} {panel['title']!r} target {target['refId']}"
        expr = content.substitute(target["expr"], DASHBOARD_VALUES)
        result = mesh_server.query(expr)
        assert result, f"{where}: no data for {expr}"
        legend_labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
        for series in result:
            assert legend_labels <= set(series["metric"]), f"{where}: {series['metric']} lacks a legend label"
            if "$workload" in target["expr"] and "workload" in series["metric"]:
                assert series["metric"]["workload"] == "reviews-v1", where
            if "$namespace" in target["expr"] and "namespace" in series["metric"]:
                assert series["metric"]["namespace"] == "shop", where
