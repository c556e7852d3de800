"""playbooks/install.yml, upgrade.yml and rollback.yml against the test API server.

Render-only first: the charts' values are rendered, while namespaces, labels, restarts and the
Sidecar default are applied to the server. The scenario: install revision 1-29-6; canary upgrade
of shop to 1-30-3 (tag prod-canary) without promotion, gated by readiness only; rollback; an
upgrade whose gate (by default the verify role, playbooks/gates/verify.yml, since
meshtune_verify_targets is set; loading a local server) misses a target and rolls itself back; a
full upgrade with promotion through the same gate with reachable targets. Each phase is a module
fixture built on the one before, so any single test can run alone. The last test installs and
upgrades with the cli Helm driver, through a stand-in `helm` program (none is installable here).
"""

from __future__ import annotations

import json
import os
import re
import sys

import pytest
import yaml

from tests.support.ansible_runner import REPO_ROOT, run_playbook
from tests.support.load_targets import running

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

PLAYBOOKS = REPO_ROOT / "playbooks"
HOST = "cluster-a"
OLD, NEW, TAG = "1-29-6", "1-30-3", "prod-canary"
NAMESPACES = ["shop", "payments", "catalog"]
CANARY = ["shop"]
REVISION_ANNOTATION = "meshtune.io/istio-revision"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
UPGRADE = {"istio_revision": NEW, "istio_previous_revision": OLD, "istio_canary_tag": TAG}
# The verify gate with the local engine: 2 s at 50 requests/s against a server answering in 2 ms.
GATE = {"meshtune_upgrade_gate_tasks": "gates/verify.yml", "verify_engine": "local",
        "verify_baseline": False, "verify_qps": 50, "verify_connections": 2, "verify_duration": "2s",
        "verify_warmup": "0s"}
REACHABLE = {"p50_ms": 500, "success_rate": 0.99}


def workload(kind: str, namespace: str, name: str) -> dict:
    spec = {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": name, "image": "nginx:1.27"}]}}}
    if kind != "DaemonSet":
        spec["replicas"] = 1
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


WORKLOADS = [workload("Deployment", "shop", "web"), workload("StatefulSet", "shop", "db"),
             workload("Deployment", "payments", "api"), workload("DaemonSet", "catalog", "agent")]


class Cluster:
    """The test server, an inventory for it, and what the playbooks rendered."""

    def __init__(self, server, tmp):
        self.server = server
        self.tmp = tmp
        self.rendered = tmp / "rendered" / HOST
        self.inventory = tmp / "hosts.yml"
        self.inventory.write_text(yaml.safe_dump({"all": {"hosts": {HOST: {
            "ansible_connection": "local", "meshtune_kubeconfig": str(server.kubeconfig),
            "meshtune_helm_install": False, "meshtune_render_dir": str(tmp / "rendered"),
            "istio_injected_namespaces": NAMESPACES, "istio_canary_namespaces": CANARY,
            "meshtune_install_observability": False}}}}))

    def play(self, name: str, extra_vars: dict | None = None):
        return run_playbook(PLAYBOOKS / name, extra_vars, inventory=str(self.inventory))

    def labels(self) -> dict[str, str]:
        return {ns: self.get("namespace", ns)["metadata"].get("labels", {}).get("istio.io/rev")
                for ns in NAMESPACES}

    def pod_annotations(self) -> dict[str, dict]:
        return {f"{w['metadata']['namespace']}/{w['metadata']['name']}":
                self.get(w["kind"].lower(), w["metadata"]["name"], w["metadata"]["namespace"])
                ["spec"]["template"]["metadata"].get("annotations", {}) for w in WORKLOADS}

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict:
        args = ["get", kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
        return json.loads(self.server.kubectl(*args).stdout)

    def values(self, release: str) -> dict:
        return yaml.safe_load((self.rendered / f"{release}.values.yaml").read_text())


def succeeded(result) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def changed(output: str) -> int:
    return int(re.search(rf"^{HOST}\s*:.*changed=(\d+)", output, re.M).group(1))


@pytest.fixture(scope="module")
def installed(kubeapi, tmp_path_factory):
    cluster = Cluster(kubeapi, tmp_path_factory.mktemp("upgrade"))
    succeeded(cluster.play("install.yml", {"istio_version": "1.29.6"}))
    kubeapi.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(WORKLOADS))
    return cluster


@pytest.fixture(scope="module")
def canary(installed):
    """Upgrade without promotion, twice."""
    first = succeeded(installed.play("upgrade.yml", {**UPGRADE, "istio_upgrade_promote": False}))
    after = (installed.labels(), installed.pod_annotations())
    second = succeeded(installed.play("upgrade.yml", {**UPGRADE, "istio_upgrade_promote": False}))
    return first, second, after


@pytest.fixture(scope="module")
def rolled_back(canary, installed):
    first = succeeded(installed.play("rollback.yml", {"istio_previous_revision": OLD}))
    after = (installed.labels(), installed.pod_annotations())
    second = succeeded(installed.play("rollback.yml", {"istio_previous_revision": OLD}))
    return first, second, after


@pytest.fixture(scope="module")
def canary_service():
    with running("delay", "--base", "0.002") as url:
        yield url


def verify_gate(installed, url: str, targets: dict) -> dict:
    return {**UPGRADE, **GATE, "verify_url": url, "verify_targets": targets,
            "meshtune_report_dir": str(installed.tmp / "reports")}


@pytest.fixture(scope="module")
def failed_gate(rolled_back, installed, canary_service):
    """The verify gate by default: meshtune_verify_targets set and the verify stage on (render-only
    turns it off unless meshtune_verify is set), no gate task file named."""
    variables = {**verify_gate(installed, canary_service, {}), "meshtune_upgrade_gate_tasks": "",
                 "meshtune_verify": True, "meshtune_verify_targets": {**REACHABLE, "p50_ms": 0.0001}}
    del variables["verify_targets"]
    result = installed.play("upgrade.yml", variables)
    return result, installed.labels(), installed.pod_annotations()


@pytest.fixture(scope="module")
def promoted(failed_gate, installed, canary_service):
    first = succeeded(installed.play("upgrade.yml", verify_gate(installed, canary_service, REACHABLE)))
    after = (installed.labels(), installed.pod_annotations())
    second = succeeded(installed.play("upgrade.yml", UPGRADE))
    return first, second, after


def test_install_labels_namespaces_and_applies_the_sidecar_default(installed):
    assert installed.labels() == dict.fromkeys(NAMESPACES, OLD)
    sidecar = installed.get("sidecars.networking.istio.io", "default", "istio-system")
    assert sidecar["spec"]["egress"] == [{"hosts": ["./*", "istio-system/*"]}]
    assert installed.values(f"istiod-{OLD}")["revision"] == OLD


def test_canary_moves_only_the_canary_namespaces(canary):
    labels, annotations = canary[2]
    assert labels == {"shop": TAG, "payments": OLD, "catalog": OLD}
    for name in ("shop/web", "shop/db"):
        assert annotations[name][REVISION_ANNOTATION] == NEW and RESTARTED_AT in annotations[name]
    for name in ("payments/api", "catalog/agent"):
        assert RESTARTED_AT not in annotations[name]


def test_canary_installs_the_new_revision_beside_the_old(canary, installed):
    assert installed.values(f"istiod-{NEW}")["revisionTags"] == [TAG]
    assert installed.values(f"istiod-{OLD}")["revision"] == OLD  # still there
    assert installed.values("istio-base")["defaultRevision"] == OLD  # not promoted yet
    assert "Not promoted" in canary[0]
    # No targets and no Prometheus: the run says what the gate did not check.
    output = " ".join(canary[0].split())
    assert "The canary was judged by readiness only: set meshtune_verify_targets" in output
    assert "Control planes not compared: no Prometheus URL" in output


def test_canary_rerun_changes_nothing(canary, installed):
    assert changed(canary[0]) > 0
    assert changed(canary[1]) == 0
    assert (installed.labels(), installed.pod_annotations()) == canary[2]


def test_rollback_moves_the_canary_back_and_restarts_it(rolled_back, canary):
    labels, annotations = rolled_back[2]
    assert labels == dict.fromkeys(NAMESPACES, OLD)
    for name in ("shop/web", "shop/db"):
        assert annotations[name][REVISION_ANNOTATION] == OLD
    assert annotations["payments/api"] == canary[2][1]["payments/api"]  # untouched


def test_rollback_rerun_changes_nothing(rolled_back, installed):
    assert changed(rolled_back[1]) == 0
    assert (installed.labels(), installed.pod_annotations()) == rolled_back[2]


def test_failed_gate_rolls_the_canary_back(failed_gate, installed):
    result, labels, annotations = failed_gate
    assert result.returncode != 0
    output = " ".join(result.stdout.split())
    assert "failed at 'Fail the play on a missed target'" in output.replace("''", "'")
    assert "1 of 2 targets missed: p50_ms" in output
    assert "Rolled back: shop are on 1-29-6 again" in output
    report = json.loads((installed.tmp / "reports" / HOST / "latest" / "report.json").read_text())
    assert report["checks_passed"] is False
    assert labels == dict.fromkeys(NAMESPACES, OLD)
    assert annotations["shop/web"][REVISION_ANNOTATION] == OLD
    assert installed.values("istio-base")["defaultRevision"] == OLD


def test_promotion_moves_every_namespace_and_removes_the_old_revision(promoted, installed):
    labels, annotations = promoted[2]
    assert labels == dict.fromkeys(NAMESPACES, TAG)
    assert {name: values[REVISION_ANNOTATION] for name, values in annotations.items()} == \
        dict.fromkeys(annotations, NEW)
    assert installed.values("istio-base")["defaultRevision"] == NEW
    assert not (installed.rendered / f"istiod-{OLD}.values.yaml").exists()
    plan = yaml.safe_load((installed.rendered / f"istiod-{OLD}.uninstall.yaml").read_text())
    assert plan == {"action": "uninstall", "release": f"istiod-{OLD}", "namespace": "istio-system",
                    "revision": OLD, "pods_still_injected": []}


def test_promotion_rerun_changes_nothing(promoted, installed):
    assert changed(promoted[1]) == 0
    assert (installed.labels(), installed.pod_annotations()) == promoted[2]


# --- With helm: a stand-in `helm` on PATH ---------------------------------------------------
# No helm binary exists here. This stand-in answers the commands kubernetes.core.helm runs
# (version, list, get values, show chart, upgrade -i, uninstall), keeps releases in a JSON file,
# logs every call with the namespace, kube context and API server it was given, and plays the
# istiod chart's part the playbooks rely on: the istiod-<revision> Deployment appears on
# install and goes on uninstall.
FAKE_HELM = """#!python
import json, os, subprocess, sys
from pathlib import Path
import yaml

state = Path(os.environ["FAKE_HELM_DIR"])
store = state / "releases.json"
releases = json.loads(store.read_text()) if store.exists() else {}
argv = sys.argv[1:]
flags = dict(a.split("=", 1) for a in argv if a.startswith("--") and "=" in a)
words = [a for a in argv if not a.startswith("-")]
namespace, context = os.environ.get("HELM_NAMESPACE"), os.environ.get("HELM_KUBECONTEXT")
config = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text()) if "KUBECONFIG" in os.environ else None
with open(state / "calls.jsonl", "a") as log:
    log.write(json.dumps({"argv": argv, "namespace": namespace, "context": context,
                          "server": config and config["clusters"][0]["cluster"]["server"]}) + "\\n")


def kubectl(*args, stdin=None):
    command = [str(Path(sys.executable).parent / "kubectl"), "--context", context, *args]
    subprocess.run(command, input=stdin, text=True, check=True, capture_output=True, timeout=60)


def istiod(name):
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "discovery", "image": "pilot"}]}}}}


if words[:2] == ["plugin", "list"]:
    print("NAME\tVERSION\tDESCRIPTION")
elif words[0] == "version":
    print('version.BuildInfo{Version:"v3.17.3", GitCommit:"", GitTreeState:"clean", GoVersion:"go1.23"}')
elif words[0] == "list":
    print(yaml.safe_dump([{"name": name, "namespace": r["namespace"], "chart": f"{r['chart']}-{r['version']}",
                           "app_version": r["version"], "status": "deployed"}
                          for name, r in releases.items() if name == words[-1]]))
elif words[:2] == ["get", "values"]:
    print(yaml.safe_dump(releases[words[-1]]["values"]))
elif words[:2] == ["show", "chart"]:
    print(yaml.safe_dump({"name": words[-1], "version": flags["--version"],
                          "appVersion": flags["--version"]}))
elif words[0] == "upgrade":
    name, chart = words[-2:]
    releases[name] = {"chart": chart, "version": flags["--version"], "namespace": namespace,
                      "values": yaml.safe_load(Path(flags["--values"]).read_text())}
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}] \
        if "--create-namespace" in argv else []
    objects += [istiod(name)] if chart == "istiod" else []
    if objects:
        kubectl("apply", "-f", "-", stdin="\\n---\\n".join(json.dumps(item) for item in objects))
elif words[0] == "uninstall":
    release = releases.pop(words[-1])
    if release["chart"] == "istiod":
        kubectl("delete", "deployment", words[-1], "-n", release["namespace"])
store.write_text(json.dumps(releases))
"""


class HelmCluster(Cluster):
    """A cluster whose playbooks install with the cli Helm driver (the stand-in helm), from the
    official chart repository, in an explicit kube context."""

    def __init__(self, server, tmp):
        super().__init__(server, tmp)
        self.helm_dir = tmp / "helm"
        self.helm_dir.mkdir()
        helm = self.helm_dir / "helm"
        helm.write_text(FAKE_HELM.replace("#!python", f"#!{sys.executable}", 1))
        helm.chmod(0o755)
        host = yaml.safe_load(self.inventory.read_text())["all"]["hosts"][HOST]
        host.update(meshtune_helm_install=True, meshtune_helm_driver="cli", meshtune_chart_mirror="",
                    meshtune_kube_context="kubeapi")
        self.inventory.write_text(yaml.safe_dump({"all": {"hosts": {HOST: host}}}))

    def play(self, name: str, extra_vars: dict | None = None):
        env = {"PATH": f"{self.helm_dir}{os.pathsep}{os.environ['PATH']}",
               "FAKE_HELM_DIR": str(self.helm_dir)}
        return run_playbook(PLAYBOOKS / name, extra_vars, inventory=str(self.inventory), env=env)

    def helm_calls(self, verb: str) -> list[dict]:
        calls = [json.loads(line) for line in (self.helm_dir / "calls.jsonl").read_text().splitlines()]
        return [call for call in calls if verb in call["argv"]]


def test_install_and_upgrade_with_helm(kubeapi_factory, tmp_path):
    server = kubeapi_factory()
    cluster = HelmCluster(server, tmp_path)

    first = succeeded(cluster.play("install.yml", {"istio_version": "1.29.6"}))
    installs = cluster.helm_calls("upgrade")
    assert [call["argv"][-2] for call in installs] == ["istio-base", f"istiod-{OLD}"]
    for call, chart in zip(installs, ["base", "istiod"], strict=True):
        release = call["argv"][-2]
        assert call["argv"][-1] == chart
        assert {"--version=1.29.6", "--repo=https://istio-release.storage.googleapis.com/charts",
                "--atomic", "--wait", "--create-namespace",
                f"--values={cluster.rendered / release}.values.yaml"} <= set(call["argv"])
        # module_defaults carried the inventory's cluster to helm
        assert (call["namespace"], call["context"], call["server"]) == ("istio-system", "kubeapi", server.url)
    assert "Render-only" not in first

    again = succeeded(cluster.play("install.yml", {"istio_version": "1.29.6"}))
    assert changed(again) == 0 and len(cluster.helm_calls("upgrade")) == 2

    succeeded(cluster.play("upgrade.yml", UPGRADE))
    installs = cluster.helm_calls("upgrade")[2:]
    assert [(call["argv"][-2], "--version=1.30.3" in call["argv"]) for call in installs] == [
        ("istio-base", True), (f"istiod-{NEW}", True)]
    assert [call["argv"][-1] for call in cluster.helm_calls("uninstall")] == [f"istiod-{OLD}"]
    deployments = json.loads(server.kubectl("get", "deployments", "-n", "istio-system", "-o", "json").stdout)
    assert [item["metadata"]["name"] for item in deployments["items"]] == [f"istiod-{NEW}"]
    assert cluster.labels() == dict.fromkeys(NAMESPACES, TAG)
