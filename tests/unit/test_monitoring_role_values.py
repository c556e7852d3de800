"""The prometheus and grafana roles' rendered Helm values, per profile, checked against the charts.

Helm ignores a value key that no template reads, so a misspelt key costs nothing at install and
buys nothing. The roles render their values with their own tasks (render-only, no cluster
needed) and every leaf path of every file must be one of the chart value paths listed below,
written from the charts' values.yaml at the pinned versions (and independently of the roles' own
lists in vars/value_paths.yml, which their validation uses and which must agree with these).
The content meshtune adds (rule files, alerts, scrape jobs, data source, dashboards) is checked
against its sources, and the Grafana admin password must never reach a values file.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_program
from tests.observability import content
from tests.observability.rendering import render_template, role_defaults
from tests.support.ansible_runner import REPO_ROOT, run_playbook

ROLES = REPO_ROOT / "roles"
PROFILES = ["minimal", "balanced", "performance"]
PASSWORD = "unit-Test-passw0rd-7d41"

PROMETHEUS_VERSION = "29.27.0"
GRAFANA_VERSION = "12.11.1"
RULE_FILES = ["istio-workload-aggregation.yml", "meshtune.yml", "meshtune-alerts.yml"]

# prometheus-community/helm-charts charts/prometheus/values.yaml at chart 29.27.0: the values
# meshtune's profiles, overrides in this test and the role's content use.
PROMETHEUS_CHART_PATHS = {
    # server.global: the `global` block of prometheus.yml (defaults 1m / 10s / 1m).
    "server.global.scrape_interval", "server.global.scrape_timeout", "server.global.evaluation_interval",
    # server.retention ("15d") and server.retentionSize (""): --storage.tsdb.retention.*.
    "server.retention", "server.retentionSize",
    # server.persistentVolume: enabled (true), size (8Gi), storageClass (commented out).
    "server.persistentVolume.enabled", "server.persistentVolume.size", "server.persistentVolume.storageClass",
    # server.resources ({} in values.yaml; the container's requests and limits).
    "server.resources.requests.cpu", "server.resources.requests.memory",
    "server.resources.limits.cpu", "server.resources.limits.memory",
    # Conditions of the chart's dependencies (Chart.yaml `condition:`).
    "alertmanager.enabled", "kube-state-metrics.enabled", "prometheus-node-exporter.enabled",
    "prometheus-pushgateway.enabled",
    # extraScrapeConfigs (""): a string appended to scrape_configs through `tpl`.
    "extraScrapeConfigs",
    # serverFiles: prometheus.yml's rule_files and the chart's two rule files.
    "serverFiles.prometheus.yml.rule_files", "serverFiles.recording_rules.yml.groups",
    "serverFiles.alerting_rules.yml.groups",
}
# scrapeConfigs: the chart's default scrape jobs, each with an `enabled` switch.
PROMETHEUS_DEFAULT_JOBS = [
    "prometheus", "kubernetes-api-servers", "kubernetes-nodes", "kubernetes-nodes-cadvisor",
    "kubernetes-service-endpoints", "kubernetes-service-endpoints-slow", "prometheus-pushgateway",
    "kubernetes-services", "kubernetes-pods", "kubernetes-pods-slow",
]
PROMETHEUS_CHART_PATHS |= {f"scrapeConfigs.{job}.enabled" for job in PROMETHEUS_DEFAULT_JOBS}
# serverFiles.<name> is free: the chart writes every entry as /etc/config/<name> (templates/cm.yaml);
# the test below checks that each extra file is also in rule_files, or it would never be loaded.
SERVER_FILE = re.compile(r"serverFiles\.(?P<name>[\w.-]+\.yml)\.groups")

# grafana-community/helm-charts charts/grafana/values.yaml at chart 12.11.1.
GRAFANA_CHART_PATHS = {
    "replicas",
    # resources ({} in values.yaml).
    "resources.requests.cpu", "resources.requests.memory", "resources.limits.cpu", "resources.limits.memory",
    # persistence: enabled (false), size (10Gi), storageClassName (commented out).
    "persistence.enabled", "persistence.size", "persistence.storageClassName",
    "deploymentStrategy.type",
    # adminUser ("admin") and admin.existingSecret / userKey / passwordKey.
    "adminUser", "admin.existingSecret", "admin.userKey", "admin.passwordKey",
    # The dashboard sidecar.
    "sidecar.dashboards.enabled", "sidecar.dashboards.label", "sidecar.dashboards.labelValue",
    "sidecar.dashboards.folderAnnotation", "sidecar.dashboards.provider.foldersFromFilesStructure",
}
# datasources, dashboardProviders and dashboards hold provisioning files by any file name; their
# inner keys are checked by the content tests below.
GRAFANA_PROVISIONING = ("datasources.", "dashboardProviders.", "dashboards.")
# Grafana's data source provisioning fields, and the keys of a chart `dashboards` entry.
DATASOURCE_FIELDS = {"name", "type", "access", "url", "isDefault", "editable", "uid", "orgId",
                     "basicAuth", "jsonData", "secureJsonData", "version"}
DASHBOARD_ENTRY_KEYS = {"gnetId", "revision", "datasource", "url", "file", "json", "title",
                        "curlOptions", "token", "b64content", "acceptHeader"}

# Paths Helm would silently ignore: the roles' value path lists must reject each.
PROMETHEUS_MISSPELT = ["server.retension", "server.global.scrape_intervals", "server.resource.requests.cpu",
                       "server.persistentVolume.sizes", "alertmanagr.enabled", "extraScrapeConfig",
                       "server.evaluation_interval"]
GRAFANA_MISSPELT = ["replica", "persistance.enabled", "persistence.storageClass", "resource.limits.memory",
                    "sidecar.dashboard.enabled", "admin.existingSecrets", "deploymentStrategy.typ"]

RENDER_PLAYBOOK = """
- name: Render the monitoring roles' values without a cluster
  hosts: all
  gather_facts: false
  tasks:
    - name: Validate the prometheus role's input
      ansible.builtin.include_role: {name: meshtune.mesh.prometheus, tasks_from: validate}
    - name: Write the Prometheus values file
      ansible.builtin.include_role: {name: meshtune.mesh.prometheus, tasks_from: render}
    - name: Validate the grafana role's input
      ansible.builtin.include_role: {name: meshtune.mesh.grafana, tasks_from: validate}
    - name: Write the Grafana values file
      ansible.builtin.include_role: {name: meshtune.mesh.grafana, tasks_from: render}
"""
MAIN_PLAYBOOK = """
- name: Run the monitoring roles
  hosts: all
  gather_facts: false
  roles:
    - role: meshtune.mesh.prometheus
      when: "'prometheus' in group_names"
    - role: meshtune.mesh.grafana
      when: "'grafana' in group_names"
"""
CUSTOM = {
    "meshtune_profile": "balanced", "grafana_admin_password": PASSWORD,
    "meshtune_verify_targets": {"p99_ms": 120, "success_rate": 0.9995},
    "prometheus_overrides": {"server": {"retention": "7d", "persistentVolume": {"storageClass": "fast"},
                                        "global": {"scrape_interval": "10s"}}},
    "prometheus_extra_scrape_configs": [{"job_name": "shop-exporter",
                                         "static_configs": [{"targets": ["exporter.shop:9100"]}]}],
    "prometheus_chart_scrape_jobs_disabled": ["kubernetes-nodes-cadvisor"],
    "grafana_overrides": {"persistence": {"storageClassName": "fast"}, "resources": {"limits": {"cpu": "1"}}},
    "grafana_prometheus_release": "metrics", "grafana_prometheus_namespace": "observability",
}


def leaf_paths(tree: dict, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf: scalars, lists and empty mappings."""
    paths = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            paths += leaf_paths(value, f"{prefix}{key}.")
        else:
            paths.append(f"{prefix}{key}")
    return paths


def is_listed(path: str, known: list[str]) -> bool:
    """Known exactly, or below a free-form map (an entry ending in `.*`) of a role's list."""
    return path in known or any(
        entry.endswith(".*") and (path == entry[:-2] or path.startswith(entry[:-1])) for entry in known)


def role_value_paths(role: str) -> dict:
    return yaml.safe_load((ROLES / role / "vars" / "value_paths.yml").read_text())


def profile(role: str, name: str) -> dict:
    data = yaml.safe_load((ROLES / role / "vars" / "profiles" / f"{name}.yml").read_text())
    return data[f"{role}_profile_defaults"]


def seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return float(duration[:-1]) * units[duration[-1]]


def quantity(value: str) -> float:
    units = {"m": 1e-3, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def write_inventory(path: Path, render_dir: Path, groups: dict[str, dict[str, dict]]) -> Path:
    """Local hosts by group; the roles write to render_dir/<host>/."""
    common = {"ansible_connection": "local", "meshtune_helm_install": False,
              "meshtune_render_dir": str(render_dir)}
    children = {group: {"hosts": {name: {**common, **host_vars} for name, host_vars in hosts.items()}}
                for group, hosts in groups.items()}
    path.write_text(yaml.safe_dump({"all": {"children": children}}))
    return path


def read_values(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def render_dir(tmp_path_factory) -> Path:
    """Every profile (minimal without an admin password), plus one host with overrides, in one run."""
    tmp = tmp_path_factory.mktemp("monitoring-render")
    hosts = {name: {"meshtune_profile": name} for name in PROFILES}
    for name in ("balanced", "performance"):
        hosts[name]["grafana_admin_password"] = PASSWORD
    hosts["custom"] = CUSTOM
    playbook = tmp / "render.yml"
    playbook.write_text(RENDER_PLAYBOOK)
    inventory = write_inventory(tmp / "hosts.yml", tmp / "rendered", {"monitoring": hosts})
    result = run_playbook(playbook, inventory=str(inventory))
    assert result.returncode == 0, result.stdout + result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    return tmp / "rendered"


def prometheus_values(render_dir: Path, host: str) -> dict:
    return read_values(render_dir / host / "prometheus.values.yaml")


def grafana_values(render_dir: Path, host: str) -> dict:
    return read_values(render_dir / host / "grafana.values.yaml")


# --- every path is a chart value -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("host", [*PROFILES, "custom"])
def test_every_prometheus_path_is_a_chart_value(render_dir, host):
    values = prometheus_values(render_dir, host)
    unknown = []
    for path in leaf_paths(values):
        match = SERVER_FILE.fullmatch(path)
        if path in PROMETHEUS_CHART_PATHS:
            continue
        if match and f"/etc/config/{match['name']}" in values["serverFiles"]["prometheus.yml"]["rule_files"]:
            continue
        unknown.append(path)
    assert unknown == []


@pytest.mark.slow
@pytest.mark.parametrize("host", [*PROFILES, "custom"])
def test_every_grafana_path_is_a_chart_value(render_dir, host):
    paths = leaf_paths(grafana_values(render_dir, host))
    assert [path for path in paths
            if path not in GRAFANA_CHART_PATHS and not path.startswith(GRAFANA_PROVISIONING)] == []


@pytest.mark.parametrize(("role", "chart_paths", "misspelt"), [
    ("prometheus", PROMETHEUS_CHART_PATHS, PROMETHEUS_MISSPELT),
    ("grafana", GRAFANA_CHART_PATHS, GRAFANA_MISSPELT),
])
def test_role_value_path_lists_agree_and_reject_misspellings(role, chart_paths, misspelt):
    """The roles validate overrides with vars/value_paths.yml: it must know every path above."""
    known = role_value_paths(role)[f"{role}_value_paths"]
    assert len(known) == len(set(known))
    assert sorted(path for path in chart_paths if not is_listed(path, known)) == []
    assert [path for path in misspelt if is_listed(path, known)] == []


@pytest.mark.parametrize(("role", "version"),
                         [("prometheus", PROMETHEUS_VERSION), ("grafana", GRAFANA_VERSION)])
def test_value_paths_are_for_the_pinned_chart_version(role, version):
    assert role_defaults(role)[f"{role}_chart_version"] == version
    assert role_value_paths(role)[f"{role}_value_paths_version"] == version


# --- profiles -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_decides_the_tuning_knobs(render_dir, name):
    prometheus = set(leaf_paths(prometheus_values(render_dir, name)))
    grafana = set(leaf_paths(grafana_values(render_dir, name)))
    assert {"server.retention", "server.global.scrape_interval", "server.global.evaluation_interval",
            "server.resources.requests.cpu", "server.resources.requests.memory",
            "server.resources.limits.memory", "server.persistentVolume.enabled"} <= prometheus
    assert {"replicas", "resources.requests.cpu", "resources.requests.memory", "resources.limits.memory",
            "persistence.enabled"} <= grafana


@pytest.mark.slow
def test_profiles_trade_cost_for_capacity(render_dir):
    prometheus = [prometheus_values(render_dir, name)["server"] for name in PROFILES]
    grafana = [grafana_values(render_dir, name) for name in PROFILES]
    retention = [seconds(server["retention"]) for server in prometheus]
    assert retention == sorted(retention) and len(set(retention)) == 3
    for kind in ("cpu", "memory"):
        requests = [quantity(server["resources"]["requests"][kind]) for server in prometheus]
        assert requests == sorted(requests) and len(set(requests)) == 3
        requests = [quantity(values["resources"]["requests"][kind]) for values in grafana]
        assert requests == sorted(requests) and len(set(requests)) == 3
    # Every profile keeps the 1m recording-rule windows fed (at least four samples each).
    intervals = [seconds(server["global"]["scrape_interval"]) for server in prometheus]
    assert max(intervals) <= 15 and intervals[2] < intervals[1]
    assert [server["persistentVolume"]["enabled"] for server in prometheus] == [False, True, True]
    assert [values["persistence"]["enabled"] for values in grafana] == [False, True, True]
    assert all(values["replicas"] == 1 for values in grafana)  # SQLite: no more without a shared database
    minimal = prometheus_values(render_dir, "minimal")
    assert not minimal["alertmanager"]["enabled"] and not minimal["prometheus-node-exporter"]["enabled"]


@pytest.mark.slow
def test_overrides_change_single_values_over_the_profile(render_dir):
    custom, balanced = (prometheus_values(render_dir, host) for host in ("custom", "balanced"))
    assert custom["server"]["retention"] == "7d"
    assert custom["server"]["persistentVolume"] == {**balanced["server"]["persistentVolume"],
                                                    "storageClass": "fast"}
    assert custom["server"]["resources"] == balanced["server"]["resources"]  # deep merge, not replacement
    assert custom["server"]["global"]["evaluation_interval"] == \
        balanced["server"]["global"]["evaluation_interval"]
    custom, balanced = (grafana_values(render_dir, host) for host in ("custom", "balanced"))
    assert custom["persistence"] == {**balanced["persistence"], "storageClassName": "fast"}
    assert custom["resources"]["limits"] == {**balanced["resources"]["limits"], "cpu": "1"}
    assert custom["resources"]["requests"] == balanced["resources"]["requests"]


@pytest.mark.parametrize("role", ["prometheus", "grafana"])
@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_value_carries_a_comment(role, name):
    """A leaf line has its own comment or sits in a block of keys under a comment."""
    lines = (ROLES / role / "vars" / "profiles" / f"{name}.yml").read_text().splitlines()
    uncommented = []
    for number, line in enumerate(lines):
        if not re.match(r"^\s+[\w.-]+:\s*\S", line) or "#" in line:
            continue  # not a leaf value, or commented inline
        above = number - 1
        while above >= 0 and re.match(r"^\s+([\w.-]+:|- )", lines[above]):
            above -= 1
        if above < 0 or not lines[above].lstrip().startswith("#"):
            uncommented.append(line.strip())
    assert uncommented == []


@pytest.mark.parametrize("role", ["prometheus", "grafana"])
def test_profiles_set_the_same_keys(role):
    """Switching profiles changes values, never which values are decided."""
    shapes = {name: sorted(leaf_paths(profile(role, name))) for name in PROFILES}
    assert shapes["balanced"] == shapes["performance"]
    assert set(shapes["minimal"]) <= set(shapes["balanced"])


# --- Prometheus content --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("host", PROFILES)
def test_rule_files_are_the_role_files_and_rendered_alerts(render_dir, host):
    server_files = prometheus_values(render_dir, host)["serverFiles"]
    for path in content.rule_files():
        assert server_files[path.name] == yaml.safe_load(path.read_text())
    alerts = yaml.safe_load(render_template("prometheus", "meshtune-alerts.yml.j2"))
    assert server_files["meshtune-alerts.yml"] == alerts
    assert server_files["prometheus.yml"]["rule_files"] == [
        "/etc/config/recording_rules.yml", "/etc/config/alerting_rules.yml", "/etc/config/rules",
        "/etc/config/alerts", *(f"/etc/config/{name}" for name in RULE_FILES)]


@pytest.mark.slow
def test_alert_thresholds_follow_the_verify_targets(render_dir):
    alerts = prometheus_values(render_dir, "custom")["serverFiles"]["meshtune-alerts.yml"]
    rules = alerts["groups"][0]["rules"]
    exprs = {rule["alert"]: rule["expr"] for rule in rules}
    assert exprs["MeshtuneLatencyP99OverTarget"].endswith("> 120.0")
    assert re.search(r"> \(1 - 0\.9995\)$", exprs["MeshtuneErrorRatioOverTarget"])
    # Prometheus' own templates stay for Prometheus (the chart writes serverFiles with toYaml).
    assert any("{{ $labels.workload }}" in rule["annotations"]["summary"] for rule in rules)


@pytest.mark.slow
@pytest.mark.parametrize("host", [*PROFILES, "custom"])
def test_scrape_jobs_follow_the_interval_and_survive_helm_tpl(render_dir, host):
    values = prometheus_values(render_dir, host)
    jobs = yaml.safe_load(values["extraScrapeConfigs"])
    names = [job["job_name"] for job in jobs]
    assert names[:3] == ["istiod", "envoy-stats", "kubernetes-cadvisor"]
    assert {job["scrape_interval"] for job in jobs[:3]} == {values["server"]["global"]["scrape_interval"]}
    assert "{{" not in values["extraScrapeConfigs"]  # the chart passes it through Helm's tpl
    extra_jobs = CUSTOM["prometheus_extra_scrape_configs"] if host == "custom" else []
    expected = render_template("prometheus", "scrape_configs.yml.j2", {
        "prometheus_scrape_interval": values["server"]["global"]["scrape_interval"],
        "prometheus_extra_scrape_configs": extra_jobs})
    assert values["extraScrapeConfigs"] == expected.strip()


@pytest.mark.slow
def test_chart_jobs_that_duplicate_meshtune_jobs_are_off(render_dir):
    assert prometheus_values(render_dir, "balanced")["scrapeConfigs"] == {
        "kubernetes-nodes-cadvisor": {"enabled": False}, "kubernetes-pods": {"enabled": False}}
    custom = prometheus_values(render_dir, "custom")
    assert custom["scrapeConfigs"] == {"kubernetes-nodes-cadvisor": {"enabled": False}}
    assert [job["job_name"] for job in yaml.safe_load(custom["extraScrapeConfigs"])][-1] == "shop-exporter"


@pytest.mark.slow
def test_rendered_rule_files_pass_promtool(render_dir, tmp_path):
    promtool_bin = require_program("promtool")
    server_files = prometheus_values(render_dir, "custom")["serverFiles"]
    paths = []
    for name in RULE_FILES:
        paths.append(tmp_path / name)
        paths[-1].write_text(yaml.safe_dump(server_files[name]))
    result = subprocess.run([promtool_bin, "check", "rules", *map(str, paths)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# --- Grafana content and the admin password ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("host", "url"), [
    ("balanced", "http://prometheus-server.monitoring.svc:80"),
    ("custom", "http://metrics-prometheus-server.observability.svc:80"),
])
def test_the_data_source_is_the_prometheus_release(render_dir, host, url):
    datasources = grafana_values(render_dir, host)["datasources"]
    assert list(datasources) == ["datasources.yaml"]
    [datasource] = datasources["datasources.yaml"]["datasources"]
    assert set(datasource) <= DATASOURCE_FIELDS
    assert datasource["url"] == url and datasource["type"] == "prometheus" and datasource["isDefault"]
    assert datasource["name"] == "Prometheus"


@pytest.mark.slow
def test_istio_dashboards_by_grafana_com_id_under_their_provider(render_dir):
    values = grafana_values(render_dir, "balanced")
    providers = values["dashboardProviders"]["dashboardproviders.yaml"]["providers"]
    assert set(values["dashboards"]) <= {provider["name"] for provider in providers}
    for provider in providers:  # the chart downloads into /var/lib/grafana/dashboards/<provider>
        assert provider["options"]["path"] == f"/var/lib/grafana/dashboards/{provider['name']}"
    dashboards = values["dashboards"]["istio"]
    assert {entry["gnetId"] for entry in dashboards.values()} == {7639, 7636, 7630, 11829, 7645}
    for entry in dashboards.values():
        assert set(entry) <= DASHBOARD_ENTRY_KEYS
        assert entry["datasource"] == "Prometheus" and isinstance(entry["revision"], int)


@pytest.mark.slow
def test_the_sidecar_loads_the_dashboard_configmap(render_dir):
    sidecar = grafana_values(render_dir, "balanced")["sidecar"]["dashboards"]
    configmap = yaml.safe_load(render_template("grafana", "dashboard-configmap.yml.j2"))
    label, value = next(iter(configmap["metadata"]["labels"].items()))
    assert sidecar["enabled"] is True
    assert (sidecar["label"], sidecar["labelValue"]) == (label, value) == ("grafana_dashboard", "1")
    assert sidecar["folderAnnotation"] in configmap["metadata"]["annotations"]
    assert sidecar["provider"]["foldersFromFilesStructure"] is True


@pytest.mark.slow
@pytest.mark.parametrize("host", ["balanced", "performance", "custom"])
def test_the_admin_password_is_only_referenced(render_dir, host):
    text = (render_dir / host / "grafana.values.yaml").read_text()
    assert PASSWORD not in text
    assert "adminPassword" not in text
    assert grafana_values(render_dir, host)["admin"] == {
        "existingSecret": "grafana-admin", "userKey": "admin-user", "passwordKey": "admin-password"}


@pytest.mark.slow
def test_minimal_without_password_lets_the_chart_generate_one(render_dir):
    values = grafana_values(render_dir, "minimal")
    assert "admin" not in values and "adminPassword" not in values
    assert values["adminUser"] == "admin"


@pytest.mark.slow
def test_render_only_writes_one_values_file_per_release(render_dir):
    for host in [*PROFILES, "custom"]:
        assert sorted(path.name for path in (render_dir / host).iterdir()) == [
            "grafana.values.yaml", "prometheus.values.yaml"]


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bad_input_fails_before_anything_is_written(tmp_path):
    groups = {
        "prometheus": {
            "prom_typo": {"prometheus_overrides": {"server": {"retension": "7d"}}},
            "prom_unknown_profile": {"meshtune_profile": "fast"},
            "prom_wrong_type": {"prometheus_overrides": ["server", "retention"]},
            "prom_owned": {"prometheus_overrides": {"extraScrapeConfigs": "- job_name: x"}},
            "prom_string_list": {"prometheus_chart_scrape_jobs_disabled": "kubernetes-pods"},
        },
        "grafana": {
            "graf_no_password": {"meshtune_profile": "performance"},
            "graf_password_type": {"grafana_admin_password": 1234},
            "graf_password_override": {"meshtune_profile": "minimal",
                                       "grafana_overrides": {"adminPassword": PASSWORD}},
            "graf_typo": {"meshtune_profile": "minimal",
                          "grafana_overrides": {"persistance": {"enabled": True}}},
            "graf_unknown_profile": {"grafana_profile": "tiny", "grafana_admin_password": PASSWORD},
        },
    }
    playbook = tmp_path / "main.yml"
    playbook.write_text(MAIN_PLAYBOOK)
    inventory = write_inventory(tmp_path / "hosts.yml", tmp_path / "rendered", groups)
    result = run_playbook(playbook, inventory=str(inventory))
    output = " ".join(result.stdout.split())
    expected = {
        "prom_typo": "server.retension is not a value of the prometheus chart 29.27.0",
        "prom_unknown_profile": "value of meshtune_profile must be one of: minimal, balanced, performance",
        "prom_wrong_type": "argument 'prometheus_overrides' is of type list",
        "prom_owned": "prometheus_overrides sets extraScrapeConfigs, which the role renders itself",
        "prom_string_list": "must be YAML lists, not strings",
        "graf_no_password": "grafana_admin_password is not set: the performance profile has no default",
        "graf_password_type": "grafana_admin_password must be a string",
        "graf_password_override": "grafana_overrides sets adminPassword, which the role renders itself",
        "graf_typo": "persistance.enabled is not a value of the grafana chart 12.11.1",
        "graf_unknown_profile": "value of grafana_profile must be one of: minimal, balanced, performance",
    }
    for host, message in expected.items():
        failure = re.search(rf"(?:fatal|failed): \[{host}\](?: \(item=[^)]*\))?(?:: FAILED!)? => (.*?)"
                            r"(?=fatal: \[|failed: \[|PLAY RECAP|PLAY \[|TASK \[)", output)
        assert failure, f"{host} did not fail:\n{result.stdout}"
        assert message in failure.group(1).replace("''", "'"), failure.group(1)
    assert PASSWORD not in result.stdout + result.stderr
    assert not (tmp_path / "rendered").exists()


@pytest.mark.parametrize("role", ["prometheus", "grafana"])
def test_every_default_is_documented_and_in_the_argument_spec(role):
    """Each variable of defaults/main.yml sits under a comment and is an option of the main spec."""
    spec = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    assert sorted(set(role_defaults(role)) - set(options)) == []
    assert all(name.startswith((f"{role}_", "meshtune_")) for name in options)
    lines = (ROLES / role / "defaults" / "main.yml").read_text().splitlines()
    undocumented = []
    for number, line in enumerate(lines):
        if not re.match(r"^\w+:", line):
            continue
        above = number - 1
        while above >= 0 and re.match(r"^(\w+:|\s+\S)", lines[above]):
            above -= 1
        if above < 0 or not lines[above].startswith("#"):
            undocumented.append(line.split(":")[0])
    assert undocumented == []
