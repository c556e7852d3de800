"""The install stage through real Helm (the Go SDK driver, no helm program) with the real pinned
charts from the chart mirror, against the test API server.

One cluster goes through the whole life of an install, each phase a module fixture on the one
before: `make run` with the balanced profile (install and tune, no helm program on PATH), an
idempotent re-run of site.yml, an override
planned in check and diff mode, then applied, an override the API server rejects (atomic: rolled
back), a canary upgrade to a second revision that is rolled back by a failed gate, and one that is
promoted and removes the old revision. A second cluster installs the performance profile.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.support.ansible_runner import REPO_ROOT, run_playbook
from tests.support.charts import chart_mirror
from tests.support.load_targets import running

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

HOST = "local-cluster"  # the one host of inventories/local
PLAYBOOKS = REPO_ROOT / "playbooks"
REVISION, NEW = "1-30-3", "1-30-3-b"
RELEASES = {"istio-system": ["istio-base", f"istiod-{REVISION}"],
            "monitoring": ["grafana", "prometheus"]}
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
DEBOUNCE = {"istio_overrides": {"env": {"PILOT_DEBOUNCE_AFTER": "150ms"}}}
UPGRADE = {"istio_revision": NEW, "istio_previous_revision": REVISION,
           "istio_canary_namespaces": ["shop"], "meshtune_install_observability": False}
# The verify gate with the local engine: 2 s at 50 requests/s against a server answering in 2 ms.
GATE = {"meshtune_upgrade_gate_tasks": "gates/verify.yml", "verify_engine": "local",
        "verify_baseline": False, "verify_qps": 50, "verify_connections": 2, "verify_duration": "2s",
        "verify_warmup": "0s"}


def without_helm_path() -> str:
    """PATH for a run that must not find a helm program: this Python's bin and the system's."""
    path = os.pathsep.join([str(REPO_ROOT / ".venv" / "bin"), os.path.dirname(sys.executable),
                            "/usr/local/bin", "/usr/bin", "/bin"])
    assert shutil.which("helm", path=path) is None, "a helm program is on the test's PATH"
    return path


class Cluster:
    """The test server, reached the way `make run` reaches a cluster (inventories/local, the
    cluster from KUBECONFIG, the charts from MESHTUNE_CHART_MIRROR, no helm program on PATH), with
    this test's settings as extra variables."""

    def __init__(self, server, tmp, profile: str):
        self.server = server
        self.tmp = tmp
        self.variables = tmp / "run-vars.yml"
        self.variables.write_text(yaml.safe_dump({
            "meshtune_profile": profile, "meshtune_render_dir": str(tmp / "rendered"),
            "meshtune_verify": False, "meshtune_report_dir": str(tmp / "reports"),
            "istio_injected_namespaces": ["shop"],
            "tune_sidecar_scopes": [{"namespaces": ["shop"]}],
            "tune_destination_rules": [{"namespace": "shop", "rules": [
                {"name": "cart", "host": "cart",
                 "connection_pool": {"http": {"http1_max_pending_requests": 64}}}]}]}))
        self.env = {"KUBECONFIG": str(server.kubeconfig),
                    "MESHTUNE_CHART_MIRROR": str(chart_mirror()),
                    "MESHTUNE_GRAFANA_ADMIN_PASSWORD": "s3cret-for-tests",
                    "PATH": without_helm_path()}

    def make_run(self) -> subprocess.CompletedProcess:
        self.server.reset_stats()
        return subprocess.run(["make", "run", f"RUN_ARGS=-e @{self.variables}"], cwd=REPO_ROOT,
                              env={**os.environ, **self.env, "ANSIBLE_NOCOLOR": "1"},
                              capture_output=True, text=True, timeout=900, check=False)

    def play(self, name: str, extra_vars: dict | None = None, *flags: str):
        self.server.reset_stats()
        return run_playbook(PLAYBOOKS / name, extra_vars, "-e", f"@{self.variables}", *flags,
                            inventory=str(REPO_ROOT / "inventories" / "local"), env=self.env)

    def writes(self) -> dict:
        verbs = self.server.stats()["requests"]["by_verb"]
        return {verb: verbs[verb] for verb in WRITE_VERBS if verbs.get(verb)}

    def get(self, kind: str, name: str = "", namespace: str | None = None):
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        args += ["-n", namespace] if namespace else []
        result = self.server.kubectl(*args, check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def revisions(self, namespace: str) -> dict[str, list[int]]:
        """Helm's release records in a namespace: release name -> stored revisions."""
        found: dict[str, list[int]] = {}
        for secret in self.get("secrets", namespace=namespace)["items"]:
            labels = secret["metadata"].get("labels", {})
            if labels.get("owner") == "helm":
                found.setdefault(labels["name"], []).append(int(labels["version"]))
        return {name: sorted(numbers) for name, numbers in sorted(found.items())}

    def istiod(self, revision: str = REVISION) -> dict:
        return self.get("deployment", f"istiod-{revision}", "istio-system")


def succeeded(result) -> str:
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    return result.stdout


def recap_changed(output: str) -> int:
    return int(re.search(rf"^{HOST}\s*:.*changed=(\d+)", output, re.M).group(1))


def discovery_env(deployment: dict) -> dict:
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"]
                     if c["name"] == "discovery")
    return {item["name"]: item.get("value") for item in container.get("env", [])}


@pytest.fixture(scope="module")
def cluster(kubeapi_factory_module, tmp_path_factory):
    return Cluster(kubeapi_factory_module(), tmp_path_factory.mktemp("install"), "balanced")


@pytest.fixture(scope="module")
def installed(cluster):
    """`make run`, as the README gives it."""
    return succeeded(cluster.make_run())


def test_make_run_installs_every_release_with_the_sdk(installed, cluster):
    assert "Render-only" not in installed
    for namespace, releases in RELEASES.items():
        assert cluster.revisions(namespace) == {release: [1] for release in releases}
    assert cluster.get("deployment", "prometheus-server", "monitoring") is not None
    assert cluster.get("deployment", "grafana", "monitoring") is not None


def test_istiod_carries_the_profile(installed, cluster):
    istiod = cluster.istiod()
    discovery = next(c for c in istiod["spec"]["template"]["spec"]["containers"]
                     if c["name"] == "discovery")
    assert discovery["resources"] == {"requests": {"cpu": "500m", "memory": "2Gi"},
                                      "limits": {"cpu": "2", "memory": "4Gi"}}
    assert discovery_env(istiod)["PILOT_DEBOUNCE_AFTER"] == "100ms"
    assert istiod["status"]["availableReplicas"] >= 1


def test_the_base_charts_crds_serve_what_the_tune_stage_writes(installed, cluster):
    crd = cluster.get("customresourcedefinition", "destinationrules.networking.istio.io")
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    rule = cluster.get("destinationrules.networking.istio.io", "cart", "shop")
    assert rule["spec"]["trafficPolicy"]["connectionPool"]["http"]["http1MaxPendingRequests"] == 64
    assert cluster.get("sidecars.networking.istio.io", "default", "shop") is not None


@pytest.fixture(scope="module")
def rerun(installed, cluster):
    output = succeeded(cluster.play("site.yml"))
    return output, cluster.writes(), cluster.server.stats()["requests"]


def test_a_second_run_changes_and_writes_nothing(rerun, cluster):
    output, writes, requests = rerun
    assert recap_changed(output) == 0, output[-3000:]
    assert writes == {}, requests
    for namespace, releases in RELEASES.items():
        assert cluster.revisions(namespace) == {release: [1] for release in releases}


@pytest.fixture(scope="module")
def planned(rerun, cluster):
    output = succeeded(cluster.play("install.yml", DEBOUNCE, "--check", "--diff"))
    return output, cluster.writes()


def test_check_and_diff_mode_show_the_override_and_write_nothing(planned, cluster):
    output, writes = planned
    assert writes == {}
    assert re.search(r"^\+\s+PILOT_DEBOUNCE_AFTER: 150ms", output, re.M), output[-4000:]
    # The manifest diff: the istiod Deployment's environment as the server dry run renders it.
    assert re.search(r'^-\s+value: "100ms"', output, re.M), output[-4000:]
    assert re.search(r'^\+\s+value: "150ms"', output, re.M)
    assert cluster.revisions("istio-system")[f"istiod-{REVISION}"] == [1]


@pytest.fixture(scope="module")
def overridden(planned, cluster):
    return succeeded(cluster.play("install.yml", DEBOUNCE, "--diff"))


def test_an_override_makes_one_new_revision_of_that_release_only(overridden, cluster):
    assert cluster.revisions("istio-system") == {"istio-base": [1], f"istiod-{REVISION}": [1, 2]}
    assert cluster.revisions("monitoring") == {"grafana": [1], "prometheus": [1]}
    assert discovery_env(cluster.istiod())["PILOT_DEBOUNCE_AFTER"] == "150ms"
    assert re.search(r"^\+\s+PILOT_DEBOUNCE_AFTER: 150ms", overridden, re.M)


@pytest.fixture(scope="module")
def rejected(overridden, cluster):
    bad = {"istio_overrides": {"env": {"PILOT_DEBOUNCE_AFTER": "150ms"},
                               "resources": {"requests": {"cpu": "lots"}}}}
    return cluster.play("install.yml", bad)


def test_a_rejected_install_fails_naming_the_release_and_keeps_the_last_good_one(rejected, cluster):
    assert rejected.returncode != 0
    output = " ".join(rejected.stdout.split())
    assert f"Helm release istiod-{REVISION} (namespace istio-system): upgrade failed:" in output
    assert f"Deployed now: revision 4 (istiod {REVISION.replace('-', '.')})." in output
    assert cluster.revisions("istio-system")[f"istiod-{REVISION}"] == [1, 2, 3, 4]
    discovery = next(c for c in cluster.istiod()["spec"]["template"]["spec"]["containers"]
                     if c["name"] == "discovery")
    assert discovery["resources"]["requests"]["cpu"] == "500m"


@pytest.fixture(scope="module")
def canary_service():
    with running("delay", "--base", "0.002") as url:
        yield url


@pytest.fixture(scope="module")
def failed_gate(rejected, cluster, canary_service):
    return cluster.play("upgrade.yml", {**UPGRADE, **GATE, "verify_url": canary_service,
                                        "verify_targets": {"p50_ms": 0.0001}})


def test_a_failed_gate_keeps_the_old_revision_serving(failed_gate, cluster):
    assert failed_gate.returncode != 0
    output = " ".join(failed_gate.stdout.split())
    assert f"Rolled back: shop are on {REVISION} again" in output
    shop = cluster.get("namespace", "shop")["metadata"]["labels"]
    assert shop["istio.io/rev"] == REVISION
    # The new revision stays installed for inspection, beside the old one.
    assert set(cluster.revisions("istio-system")) == {"istio-base", f"istiod-{REVISION}",
                                                      f"istiod-{NEW}"}
    assert cluster.istiod(NEW) is not None and cluster.istiod() is not None


@pytest.fixture(scope="module")
def promoted(failed_gate, cluster):
    return succeeded(cluster.play("upgrade.yml", UPGRADE))


def test_promotion_removes_the_old_release_and_its_objects(promoted, cluster):
    assert set(cluster.revisions("istio-system")) == {"istio-base", f"istiod-{NEW}"}
    assert cluster.istiod() is None
    assert cluster.istiod(NEW)["status"]["availableReplicas"] >= 1
    assert cluster.get("namespace", "shop")["metadata"]["labels"]["istio.io/rev"] == NEW
    validator = cluster.get("validatingwebhookconfiguration", "istiod-default-validator")
    assert validator["metadata"]["labels"]["istio.io/rev"] == NEW
    assert validator["webhooks"][0]["clientConfig"]["service"]["name"] == f"istiod-{NEW}"


def test_performance_profile_installs(kubeapi_factory_module, tmp_path_factory):
    performance = Cluster(kubeapi_factory_module(), tmp_path_factory.mktemp("performance"),
                          "performance")
    succeeded(performance.play("install.yml", {"meshtune_install_observability": False}))
    assert performance.revisions("istio-system") == {"istio-base": [1], f"istiod-{REVISION}": [1]}
    istiod = performance.istiod()
    discovery = next(c for c in istiod["spec"]["template"]["spec"]["containers"]
                     if c["name"] == "discovery")
    assert discovery["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert discovery_env(istiod)["PILOT_PUSH_THROTTLE"] == "100"
    hpa = performance.get("hpa", f"istiod-{REVISION}", "istio-system")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
