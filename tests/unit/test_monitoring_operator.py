"""module_utils/monitoring.py: rule files as PrometheusRules, the namespace and labels a
Prometheus resource selects, cAdvisor scrapes and what they drop, relabelings in operator form."""

from __future__ import annotations

import copy

import pytest
import yaml

from ansible_collections.meshtune.mesh.plugins.filter.monitoring import prometheus_rules
from ansible_collections.meshtune.mesh.plugins.module_utils import monitoring
from tests.observability import content

SELECTOR = {"matchLabels": {"release": "kps"}}
KPS = {"metadata": {"name": "kps", "namespace": "observability"},
       "spec": {"podMonitorSelector": SELECTOR, "serviceMonitorSelector": SELECTOR,
                "ruleSelector": SELECTOR, "podMonitorNamespaceSelector": {},
                "serviceMonitorNamespaceSelector": {}, "ruleNamespaceSelector": {}}}


def prometheus(name="kps", namespace="observability", **spec):
    obj = copy.deepcopy(KPS)
    obj["metadata"] = {"name": name, "namespace": namespace}
    obj["spec"].update(spec)
    return obj


def test_each_rule_file_becomes_one_prometheus_rule_with_its_groups():
    files = {path.name: path.read_text(encoding="utf-8") for path in content.rule_files()}
    rules = prometheus_rules(files, "observability", {"release": "kps"})
    assert [r["metadata"]["name"] for r in rules] == [
        monitoring.rule_object_name(name) for name in files]
    for rule, (name, text) in zip(rules, files.items(), strict=True):
        assert rule["kind"] == "PrometheusRule" and rule["metadata"]["namespace"] == "observability"
        assert rule["metadata"]["annotations"] == {"meshtune.io/rule-file": name}
        assert rule["spec"]["groups"] == yaml.safe_load(text)["groups"]


@pytest.mark.parametrize(("file_name", "name"), [
    ("meshtune.yml", "meshtune"), ("meshtune-alerts.yml", "meshtune-alerts"),
    ("istio-workload-aggregation.yml", "meshtune-istio-workload-aggregation"),
    ("My_Rules.yaml", "meshtune-my-rules"),
])
def test_rule_object_names(file_name, name):
    assert monitoring.rule_object_name(file_name) == name


def test_a_rule_file_without_groups_is_refused():
    with pytest.raises(monitoring.MonitoringError, match="holds no 'groups' list"):
        monitoring.prometheus_rules({"x.yml": {"rules": []}}, "ns", {})


def test_selection_is_detected_from_the_only_prometheus():
    chosen = monitoring.operator_selection([KPS])
    assert chosen == {"namespace": "observability", "labels": {"release": "kps"},
                      "prometheus": "observability/kps", "notes": []}


def test_single_valued_in_expressions_give_labels_too():
    selector = {"matchExpressions": [{"key": "team", "operator": "In", "values": ["mesh"]}]}
    chosen = monitoring.operator_selection([prometheus(podMonitorSelector=selector,
                                                       serviceMonitorSelector=selector, ruleSelector={})])
    assert chosen["labels"] == {"team": "mesh"}


def test_explicit_values_win_and_are_checked_against_the_prometheus():
    chosen = monitoring.operator_selection([KPS], "mesh-monitoring", {"release": "kps", "x": "y"})
    assert (chosen["namespace"], chosen["labels"]) == ("mesh-monitoring", {"release": "kps", "x": "y"})
    with pytest.raises(monitoring.MonitoringError, match="does not select the labels"):
        monitoring.operator_selection([KPS], "", {"team": "mesh"})


def test_without_a_prometheus_the_inventory_or_fallback_values_are_used():
    chosen = monitoring.operator_selection([], "", {"prometheus": "main"}, "", "monitoring")
    assert (chosen["namespace"], chosen["labels"]) == ("monitoring", {"prometheus": "main"})
    assert chosen["prometheus"] == ""


@pytest.mark.parametrize(("prometheuses", "kwargs", "message"), [
    ([KPS, prometheus("other")], {}, "found 2 Prometheus resources"),
    ([KPS], {"prometheus": "observability/nope"}, "no Prometheus resource observability/nope"),
    ([prometheus(ruleSelector=None)], {}, "spec.ruleSelector is unset, so it selects none"),
    ([prometheus(ruleSelector={"matchLabels": {"release": "other"}})], {},
     "selects different values of the label release"),
    ([prometheus(podMonitorNamespaceSelector=None)], {"namespace": "elsewhere"},
     "reads only its own namespace observability, not elsewhere"),
])
def test_a_prometheus_that_would_not_load_the_objects_is_named(prometheuses, kwargs, message):
    with pytest.raises(monitoring.MonitoringError, match=message):
        monitoring.operator_selection(prometheuses, **kwargs)


def test_the_named_prometheus_is_used_among_several():
    chosen = monitoring.operator_selection([prometheus("a", "one"), KPS], prometheus="observability/kps")
    assert chosen["prometheus"] == "observability/kps"


def test_a_namespace_selector_with_labels_is_noted():
    chosen = monitoring.operator_selection([prometheus(ruleNamespaceSelector={"matchLabels": {"m": "y"}})])
    assert "spec.ruleNamespaceSelector" in chosen["notes"][0]


METRICS = ["container_cpu_usage_seconds_total", "container_spec_cpu_quota"]


def test_cadvisor_scrapes_and_what_they_drop():
    kubelet = {"metadata": {"name": "kubelet", "namespace": "o"}, "spec": {"endpoints": [
        {"path": "/metrics"},
        {"path": "/metrics/cadvisor", "metricRelabelings": [
            {"sourceLabels": ["__name__"], "action": "drop", "regex": "container_spec.*"},
            {"sourceLabels": ["id", "pod"], "action": "drop", "regex": ".+;"}]}]}}
    config = {"metadata": {"name": "cadvisor", "namespace": "o"}, "spec": {
        "metricsPath": "/metrics/cadvisor",
        "metricRelabelings": [{"sourceLabels": ["__name__"], "action": "keep", "regex": "container_cpu_.*"}]}}
    other = {"metadata": {"name": "app", "namespace": "o"}, "spec": {"endpoints": [{"port": "http"}]}}
    assert monitoring.cadvisor_scrapes([kubelet, other], [config], METRICS) == [
        {"object": "ServiceMonitor o/kubelet", "dropped": ["container_spec_cpu_quota"]},
        {"object": "ScrapeConfig o/cadvisor", "dropped": ["container_spec_cpu_quota"]}]
    assert monitoring.cadvisor_scrapes([other], [], METRICS) == []


def test_relabel_configs_convert_to_the_operator_form():
    rules = [{"source_labels": ["a", "b"], "separator": ";", "regex": "(.+)", "target_label": "c",
              "replacement": "$1", "action": "replace"}]
    assert monitoring.operator_relabelings(rules) == [
        {"sourceLabels": ["a", "b"], "separator": ";", "regex": "(.+)", "targetLabel": "c",
         "replacement": "$1", "action": "replace"}]
    with pytest.raises(monitoring.MonitoringError, match="does not take: honor_labels"):
        monitoring.operator_relabelings([{"honor_labels": True}])


WANTED = {"uid": "mesh", "title": "Mesh", "panels": [{"id": 1}]}


@pytest.mark.parametrize(("read", "folder", "outdated"), [
    ({"status": 404, "json": {"message": "Dashboard not found"}}, "", True),
    ({"status": 200, "json": {"dashboard": {**WANTED, "id": 7, "version": 3}, "meta": {"folderUid": ""}}},
     "", False),
    ({"status": 200, "json": {"dashboard": {**WANTED, "panels": [{"id": 2}]}, "meta": {}}}, "", True),
    ({"status": 200, "json": {"dashboard": WANTED, "meta": {"folderUid": "ops"}}}, "", True),
    ({"status": 200, "json": {"dashboard": WANTED, "meta": {"folderUid": "ops"}}}, "ops", False),
])
def test_outdated_dashboards(read, folder, outdated):
    expected = [WANTED] if outdated else []
    assert monitoring.outdated_dashboards([{"item": WANTED, **read}], folder) == expected
