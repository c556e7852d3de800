"""Structure of roles/grafana's dashboards, their ConfigMap and the grafana.com dashboard pins.

The queries themselves run against a real Prometheus in tests/functional/test_observability.py.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.observability import content
from tests.observability.rendering import ROOT, render_template, role_defaults

DASHBOARDS = content.dashboards()
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
RECORDED = re.compile(r"\b(?:meshtune|workload):[a-z0-9_:]+")


@pytest.fixture(params=DASHBOARDS, ids=lambda path: path.name)
def dashboard(request) -> dict[str, Any]:
    return content.load_dashboard(request.param)


def walk(node: Any, path: str = "") -> Any:
    """(path, key, value) for every key of every object in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}/{index}")


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in dashboard["templating"]["list"]}


def test_there_is_a_dashboard():
    assert [path.name for path in DASHBOARDS] == ["mesh-performance.json"]


def test_dashboard_identity(dashboard):
    assert dashboard["title"] and dashboard["uid"] and dashboard["description"]
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert isinstance(dashboard["schemaVersion"], int)
    assert "meshtune" in dashboard["tags"]
    # Provisioned as is: no numeric id, no import-time inputs that would need a person to answer.
    assert "id" not in dashboard and "__inputs" not in dashboard and "__requires" not in dashboard


def test_panel_ids_are_unique(dashboard):
    ids = [panel["id"] for panel in content.all_panels(dashboard)]
    assert all(isinstance(panel_id, int) for panel_id in ids)
    assert len(ids) == len(set(ids))


def test_every_panel_has_a_grid_position_without_overlap(dashboard):
    boxes = []
    for panel in content.all_panels(dashboard):
        assert "gridPos" in panel, panel["title"]
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"}, panel["title"]
        assert all(isinstance(value, int) and value >= 0 for value in grid.values()), panel["title"]
        assert grid["w"] >= 1 and grid["h"] >= 1 and grid["x"] + grid["w"] <= 24, panel["title"]
        boxes.append((panel["title"], grid))
    for (first, a), (second, b) in itertools.combinations(boxes, 2):
        overlap = (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
                   and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])
        assert not overlap, (first, second)


def test_every_panel_has_a_title_description_and_queries(dashboard):
    for panel in content.all_panels(dashboard):
        assert panel["title"], panel["id"]
        if panel["type"] == "row":
            continue
        assert panel["description"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert ref_ids and len(ref_ids) == len(set(ref_ids)), panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]


def test_datasource_references_only_the_datasource_variable(dashboard):
    datasource = variables(dashboard)["datasource"]
    assert datasource["type"] == "datasource" and datasource["query"] == "prometheus"
    refs = [(path, value) for path, key, value in walk(dashboard) if key == "datasource"]
    assert refs
    for path, value in refs:
        assert value == DATASOURCE_REF or value == "${datasource}", path
    # No data source uid is written down anywhere: the only uid keys are the dashboard's own and
    # the references to the variable.
    uids = [(path, value) for path, key, value in walk(dashboard) if key == "uid"]
    assert all(path == "" or value == "${datasource}" for path, value in uids), uids
    for panel in content.all_panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"] == DATASOURCE_REF, panel["title"]
            assert all(target["datasource"] == DATASOURCE_REF for target in panel["targets"]), panel["title"]


def _variable_uses(dashboard: dict[str, Any]) -> set[str]:
    used: set[str] = set()
    for _path, key, value in walk(dashboard):
        if isinstance(value, str) and key in {"expr", "query", "definition", "uid", "legendFormat", "title"}:
            used |= content.variables_in(value)
    return used


def test_every_template_variable_is_used_and_every_use_is_defined(dashboard):
    defined = set(variables(dashboard))
    used = _variable_uses(dashboard)
    assert defined - used == set(), "defined but never used"
    assert used - defined - content.GRAFANA_BUILTINS == set(), "used but not defined"
    text = json.dumps(dashboard)
    assert not content.DEPRECATED_VARIABLE.search(text), "use $name, not [[name]]"


def test_namespace_and_workload_variables_read_the_recording_rules(dashboard):
    records = {rule["record"] for rule in content.recording_rules()}
    for name in ("namespace", "workload"):
        variable = variables(dashboard)[name]
        assert variable["type"] == "query"
        assert variable["datasource"] == DATASOURCE_REF
        query = variable["query"]["query"]
        assert query == variable["definition"]
        match = re.fullmatch(r"label_values\(([a-z0-9_:]+)(\{.*\})?,\s*(\w+)\)", query)
        assert match and match.group(1) in records and match.group(3) == name, query
        # Multi-value variables are used with =~, so "All" must be a regex.
        assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*"
    for panel, target in content.panel_targets(dashboard):
        for name in ("namespace", "workload"):
            if f"${name}" in target["expr"]:
                assert f'{name}=~"${name}"' in target["expr"], (panel["title"], target["expr"])


def test_baseline_variables_default_to_unset(dashboard):
    for name in ("baseline_p50_ms", "baseline_p90_ms", "baseline_p99_ms"):
        variable = variables(dashboard)[name]
        assert variable["type"] == "textbox" and variable["query"] == "0"


def test_dashboard_is_built_on_the_recording_rules(dashboard):
    records = {rule["record"] for rule in content.recording_rules()}
    used = {name for _panel, target in content.panel_targets(dashboard)
            for name in RECORDED.findall(target["expr"])}
    assert used - records == set(), "queries name recording rules that do not exist"
    assert {
        "meshtune:istio_request_duration_milliseconds:p50_rate1m",
        "meshtune:istio_request_duration_milliseconds:p90_rate1m",
        "meshtune:istio_request_duration_milliseconds:p99_rate1m",
        "meshtune:istio_requests:rate1m",
        "meshtune:istio_requests_5xx:ratio_rate1m",
        "meshtune:proxy_cpu_cores:rate1m",
        "meshtune:proxy_cpu_cores_per_1k_rps:ratio_rate1m",
        "meshtune:proxy_memory_working_set_mib:sum",
        "meshtune:proxy_memory_mib_per_1k_rps:ratio_rate1m",
        "meshtune:proxy_memory_growth_mib_per_minute:max_deriv10m",
        "meshtune:pilot_proxy_convergence_time_milliseconds:p99_rate5m",
    } <= used
    raw = [panel["title"] for panel, target in content.panel_targets(dashboard)
           if not RECORDED.search(target["expr"]) and "$baseline" not in target["expr"]]
    assert len(raw) <= 1, f"panels on raw series (keep them rare at mesh scale): {raw}"


def test_baseline_is_its_own_series(dashboard):
    latency = next(panel for panel in content.all_panels(dashboard) if "baseline" in panel["title"].lower())
    legends = [target["legendFormat"] for target in latency["targets"]]
    assert {"baseline p50", "baseline p90", "baseline p99"} <= set(legends)


# --- the ConfigMap for Grafana's dashboard sidecar ----------------------------------------------


def test_configmap_carries_every_dashboard_for_the_sidecar():
    configmap = yaml.safe_load(render_template("grafana", "dashboard-configmap.yml.j2"))
    assert kubernetes_validate.validate(configmap, "1.30", strict=True) is not None
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == role_defaults("grafana")["grafana_namespace"]
    assert set(configmap["data"]) == {path.name for path in DASHBOARDS}
    for path in DASHBOARDS:
        assert json.loads(configmap["data"][path.name]) == content.load_dashboard(path)


def test_configmap_label_and_namespace_follow_the_variables():
    configmap = yaml.safe_load(render_template("grafana", "dashboard-configmap.yml.j2", {
        "grafana_namespace": "observability", "grafana_dashboard_label": "dashboards",
        "grafana_dashboard_label_value": "meshtune"}))
    assert configmap["metadata"]["namespace"] == "observability"
    assert configmap["metadata"]["labels"]["dashboards"] == "meshtune"


# --- Istio's dashboards from grafana.com ------------------------------------------------------


def test_istio_dashboards_are_pinned_in_the_charts_format():
    defaults = role_defaults("grafana")
    dashboards = defaults["grafana_istio_dashboards"]
    providers = {provider["name"] for provider in
                 defaults["grafana_dashboard_providers"]["dashboardproviders.yaml"]["providers"]}
    assert set(dashboards) <= providers, "the chart only provisions dashboards of a configured provider"
    entries = {name: entry for group in dashboards.values() for name, entry in group.items()}
    assert {name: entry["gnetId"] for name, entry in entries.items()} == {
        "istio-mesh": 7639, "istio-service": 7636, "istio-workload": 7630,
        "istio-performance": 11829, "istio-control-plane": 7645}
    for name, entry in entries.items():
        assert set(entry) == {"gnetId", "revision", "datasource"}, name
        assert isinstance(entry["revision"], int) and entry["revision"] > 0, name
        assert entry["datasource"] == "{{ grafana_prometheus_datasource }}", name


# --- documentation ---------------------------------------------------------------------------


def test_docs_describe_every_rule_alert_and_panel():
    docs = (ROOT / "docs" / "observability.md").read_text(encoding="utf-8")
    template = content.ROLES / "prometheus" / "templates" / "meshtune-alerts.yml.j2"
    names = [rule["record"] for rule in content.recording_rules()]
    names += re.findall(r"- alert: (\w+)", template.read_text(encoding="utf-8"))
    for path in DASHBOARDS:
        names += [panel["title"] for panel in content.all_panels(content.load_dashboard(path))]
    assert [name for name in names if name not in docs] == []
