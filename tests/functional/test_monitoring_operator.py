"""meshtune_monitoring: operator against the test API server with the real Prometheus Operator CRDs.

The prometheus-operator-crds chart (Prometheus Operator v0.93.1) is installed with real Helm, so
the API server judges the PodMonitor, ServiceMonitor and PrometheusRules by the real CRD schemas.
The role detects the namespace and labels from a Prometheus resource, writes every object once
and nothing on a re-run; the PrometheusRules hold exactly the rule files that promtool tests
(run here on the rules read back from the server). Without the CRDs, a missing cAdvisor scrape or
a Prometheus that would not select the objects, the run fails naming why, before any write.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import helm_python as helm
import pytest
import yaml

from tests.conftest import require_program
from tests.observability import content
from tests.observability.prometheus import promtool
from tests.support.ansible_runner import run_module, run_playbook
from tests.support.charts import chart_mirror, chart_package

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WRITE_VERBS = ("create", "update", "patch", "delete")
GROUP = "monitoring.coreos.com"
PLAYBOOK = """
- name: Deliver meshtune's Prometheus content
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/meshtune.mesh.meshtune:
      kubeconfig: "{{ meshtune_kubeconfig }}"
  roles:
    - role: meshtune.mesh.prometheus
"""
# kube-prometheus-stack's Prometheus: it loads monitors and rules labelled release=kps from any
# namespace.
KPS_SELECTOR = {"matchLabels": {"release": "kps"}}
PROMETHEUS = {
    "apiVersion": f"{GROUP}/v1", "kind": "Prometheus",
    "metadata": {"name": "kps-prometheus", "namespace": "observability"},
    "spec": {"podMonitorSelector": KPS_SELECTOR, "serviceMonitorSelector": KPS_SELECTOR,
             "ruleSelector": KPS_SELECTOR, "podMonitorNamespaceSelector": {},
             "serviceMonitorNamespaceSelector": {}, "ruleNamespaceSelector": {}}}
# Its kubelet ServiceMonitor scrapes cAdvisor and drops the container_spec_* series.
KUBELET_MONITOR = {
    "apiVersion": f"{GROUP}/v1", "kind": "ServiceMonitor",
    "metadata": {"name": "kps-kubelet", "namespace": "observability", "labels": {"release": "kps"}},
    "spec": {"selector": {"matchLabels": {"k8s-app": "kubelet"}},
             "namespaceSelector": {"matchNames": ["kube-system"]},
             "endpoints": [{"port": "https-metrics", "scheme": "https", "path": "/metrics/cadvisor",
                            "metricRelabelings": [{"sourceLabels": ["__name__"], "action": "drop",
                                                   "regex": "container_spec.*"}]}]}}


def said(result) -> str:
    """The run's output with line breaks and indents as single spaces."""
    return " ".join(result.stdout.split())


def writes(server) -> int:
    verbs = server.stats()["requests"]["by_verb"]
    return sum(verbs.get(verb, 0) for verb in WRITE_VERBS)


def apply(server, obj: dict) -> None:
    server.kubectl("apply", "-f", "-", input=json.dumps(obj))


def objects(server, kind: str, namespace: str | None = None) -> list[dict]:
    scope = ["-n", namespace] if namespace else ["-A"]
    listing = server.kubectl("get", f"{kind}.{GROUP}", *scope, "-o", "json").stdout
    return json.loads(listing)["items"]


def install_crds(server) -> None:
    package = chart_package(chart_mirror(), "prometheus-operator-crds", "31.0.1")
    helm.Config(kubeconfig_path=str(server.kubeconfig), namespace="default").install(
        package, "prometheus-operator-crds", {}, wait="watcher", timeout=120)


@pytest.fixture(scope="module")
def stack(kubeapi_factory_module):
    """A server with the real Prometheus Operator CRDs and a kube-prometheus-stack Prometheus."""
    server = kubeapi_factory_module()
    install_crds(server)
    server.kubectl("create", "namespace", "observability")
    apply(server, PROMETHEUS)
    apply(server, KUBELET_MONITOR)
    return server


def play(tmp_path: Path, server, *flags: str, **host_vars):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    return run_playbook(playbook, {"meshtune_kubeconfig": str(server.kubeconfig),
                                   "meshtune_monitoring": "operator", **host_vars}, *flags)


@pytest.fixture(scope="module")
def delivered(stack, tmp_path_factory):
    """The first run's output: it writes the objects into the detected namespace."""
    result = play(tmp_path_factory.mktemp("operator"), stack)
    assert result.returncode == 0, result.stdout[-5000:]
    return result


def test_objects_go_where_the_prometheus_resource_selects_them(stack, delivered):
    monitors = [*objects(stack, "podmonitors", "observability"),
                *objects(stack, "servicemonitors", "observability")]
    rules = objects(stack, "prometheusrules", "observability")
    names = sorted(o["metadata"]["name"] for o in monitors + rules)
    assert names == ["kps-kubelet", "meshtune", "meshtune-alerts", "meshtune-envoy-stats",
                     "meshtune-istio-workload-aggregation", "meshtune-istiod"]
    for obj in monitors + rules:
        assert obj["metadata"]["labels"]["release"] == "kps", obj["metadata"]
    assert "selected by Prometheus observability/kps-prometheus" in said(delivered)
    # The stack's kubelet ServiceMonitor drops container_spec_*: the run says which rules go dark.
    assert "ServiceMonitor observability/kps-kubelet drops container_spec_cpu_quota, " \
           "container_spec_cpu_period, container_spec_memory_limit_bytes" in said(delivered)


def test_monitors_relabel_like_the_install_mode_scrape_jobs(stack, delivered):
    pod_monitor = next(o for o in objects(stack, "podmonitors", "observability")
                       if o["metadata"]["name"] == "meshtune-envoy-stats")
    endpoint = pod_monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["path"] == "/stats/prometheus"
    targets = {r.get("targetLabel"): r for r in endpoint["relabelings"]}
    assert {"namespace", "pod", "workload", "job", "__address__"} <= set(targets)
    assert targets["job"]["replacement"] == "envoy-stats"
    istiod = next(o for o in objects(stack, "servicemonitors", "observability")
                  if o["metadata"]["name"] == "meshtune-istiod")
    assert istiod["spec"]["namespaceSelector"] == {"matchNames": ["istio-system"]}
    assert istiod["spec"]["endpoints"][0]["port"] == "http-monitoring"
    relabelings = istiod["spec"]["endpoints"][0]["relabelings"]
    targets = {r.get("targetLabel"): r.get("replacement") for r in relabelings}
    assert targets == {"job": "istiod", "revision": None}


def test_a_second_run_writes_nothing(stack, delivered, tmp_path):
    stack.reset_stats()
    result = play(tmp_path, stack)
    assert result.returncode == 0, result.stdout[-4000:]
    assert writes(stack) == 0
    assert "changed=0" in result.stdout


def test_the_rules_are_the_files_promtool_tests(stack, delivered, tmp_path):
    binary = require_program("promtool")
    by_file = {o["metadata"]["annotations"]["meshtune.io/rule-file"]: o["spec"]
               for o in objects(stack, "prometheusrules", "observability")}
    assert sorted(by_file) == sorted([p.name for p in content.rule_files()] + ["meshtune-alerts.yml"])
    for path in content.rule_files():
        assert by_file[path.name] == yaml.safe_load(path.read_text(encoding="utf-8"))
    for name, spec in by_file.items():
        if name == "meshtune-alerts.yml":  # promtool's alert tests compare labels, not annotations
            for group in spec["groups"]:
                for rule in group["rules"]:
                    rule.pop("annotations", None)
        (tmp_path / name).write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    for test_file in content.PROMTOOL_TESTS.glob("*.test.yml"):
        shutil.copy(test_file, tmp_path / test_file.name)
        assert "SUCCESS" in promtool(binary, "test", "rules", test_file.name, cwd=tmp_path).stdout


def test_the_alert_thresholds_follow_the_verify_targets(stack, delivered, tmp_path):
    result = play(tmp_path, stack, "--check", "--diff", meshtune_verify_targets={"p99_ms": 75})
    assert result.returncode == 0, result.stdout[-4000:]
    assert "meshtune:istio_request_duration_milliseconds:p99_rate1m > 75.0" in said(result)
    live = next(o for o in objects(stack, "prometheusrules", "observability")
                if o["metadata"]["name"] == "meshtune-alerts")
    assert "p99_rate1m > 250.0" in json.dumps(live["spec"])  # check mode wrote nothing


@pytest.mark.parametrize(("host_vars", "expected"), [
    pytest.param({"prometheus_operator_selector": {"team": "mesh"}},
                 "spec.podMonitorSelector {'matchLabels': {'release': 'kps'}} does not select the labels",
                 id="selector-the-prometheus-ignores"),
    pytest.param({"prometheus_operator_selector": {"release": 7}},
                 "prometheus_operator_selector.release: expected a label value string", id="bad-label"),
    pytest.param({"meshtune_monitoring": "operators"}, "meshtune_monitoring", id="bad-mode"),
])
def test_a_selection_the_prometheus_would_not_load_fails_before_any_write(stack, delivered, tmp_path,
                                                                          host_vars, expected):
    stack.reset_stats()
    result = play(tmp_path, stack, **host_vars)
    assert result.returncode != 0
    assert expected in said(result), result.stdout[-4000:]
    assert writes(stack) == 0


def test_no_cadvisor_scrape_fails_before_any_write(stack, delivered, tmp_path):
    stack.kubectl("delete", f"servicemonitors.{GROUP}", "-n", "observability", "kps-kubelet")
    try:
        stack.reset_stats()
        result = play(tmp_path, stack)
        written = writes(stack)
    finally:
        apply(stack, KUBELET_MONITOR)
    assert result.returncode != 0
    assert "No ServiceMonitor or ScrapeConfig scrapes the kubelets' /metrics/cadvisor" in said(result)
    assert written == 0


def test_without_the_crds_the_run_names_them_and_writes_nothing(kubeapi, tmp_path):
    kubeapi.reset_stats()
    result = play(tmp_path, kubeapi)
    assert result.returncode != 0
    assert "does not serve the Prometheus Operator CRDs prometheuses.monitoring.coreos.com, " \
           "servicemonitors.monitoring.coreos.com, podmonitors.monitoring.coreos.com, " \
           "prometheusrules.monitoring.coreos.com" in said(result), result.stdout[-3000:]
    assert writes(kubeapi) == 0


def test_k8s_objects_dry_run_first_refuses_the_whole_batch_the_crds_reject(stack, tmp_path):
    monitor = {"apiVersion": f"{GROUP}/v1", "kind": "PodMonitor",
               "metadata": {"name": "batch-valid", "namespace": "observability"},
               "spec": {"selector": {}, "podMetricsEndpoints": [{"path": "/stats/prometheus"}]}}
    rule = {"apiVersion": f"{GROUP}/v1", "kind": "PrometheusRule",
            "metadata": {"name": "batch-invalid", "namespace": "observability"},
            "spec": {"groups": [{"name": "g", "rules": [{"record": "r", "expr": "1", "for": "soon"}]}]}}
    stack.reset_stats()
    result = run_module(tmp_path, "meshtune.mesh.k8s_objects",
                        {"kubeconfig": str(stack.kubeconfig), "definitions": [monitor, rule],
                         "dry_run_first": True})
    assert result.get("failed") is True
    assert "rejects 1 of 2 objects in a dry run; nothing was written: " \
           "PrometheusRule observability/batch-invalid:" in result["msg"], result["msg"]
    assert "for" in result["msg"].split("batch-invalid:")[1]
    assert [o["metadata"]["name"] for o in objects(stack, "podmonitors", "observability")
            if o["metadata"]["name"] == "batch-valid"] == []
