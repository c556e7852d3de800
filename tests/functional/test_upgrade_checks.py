"""The upgrade's safety checks against the test API server: meshtune.mesh.istio_precheck failing
on each case it knows (version skew, deprecated API versions and fields, both injection labels, a
revision tag that points elsewhere), and meshtune.mesh.revision_pods with the role's
remove_revision refusing while pods still run the old revision, and removing it when forced."""

from __future__ import annotations

import json

import pytest
import yaml

from ansible_collections.meshtune.mesh.plugins.module_utils.upgrade import ISTIO_KINDS
from ansible_collections.meshtune.mesh.plugins.modules import istio_precheck, revision_pods
from tests.functional.test_upgrade_playbooks import Cluster
from tests.support.ansible_runner import REPO_ROOT, run_playbook
from tests.support.module_harness import call_module

pytestmark = [pytest.mark.integration]

OLD, NEW, TAG = "1-29-6", "1-30-3", "prod-canary"
PRECHECK = {"revision": NEW, "version": "1.30.3", "previous_revision": OLD}
STATUS = "sidecar.istio.io/status"
ISTIO_INDEX = REPO_ROOT / "tests" / "kubeapi" / "schemas" / "istio" / "index.json"


def apply(server, *objects: dict) -> None:
    server.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))


def create(server, *objects: dict) -> None:
    server.kubectl("create", "-f", "-", input=yaml.safe_dump_all(objects))


def namespace(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def destination_rule(name: str, version: str = "v1", **traffic_policy) -> dict:
    spec = {"host": name, **({"trafficPolicy": traffic_policy} if traffic_policy else {})}
    return {"apiVersion": f"networking.istio.io/{version}", "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": "shop"}, "spec": spec}


def precheck(server, **options) -> dict:
    server.reset_stats()
    return call_module(istio_precheck.main, {"kubeconfig": str(server.kubeconfig), **PRECHECK, **options})


def findings(result) -> list[tuple[str, str]]:
    return [(f["check"], f["object"]) for f in result["findings"]]


@pytest.fixture
def cluster(kubeapi_factory):
    server = kubeapi_factory()
    apply(server, namespace("shop", **{"istio.io/rev": OLD}), namespace("istio-system"))
    return server


def test_a_clean_cluster_passes_with_one_list_per_kind(cluster):
    apply(cluster, destination_rule("cart", outlierDetection={"consecutive5xxErrors": 5}))
    result = precheck(cluster, tags=[TAG])
    assert "failed" not in result, result.get("msg")
    assert result["findings"] == []
    assert result["versions"] == {"new": "1.30.3", "previous": "1.29.6",
                                  "previous_from": f"the revision name {OLD}"}
    requests = cluster.stats()["requests"]
    # Each Istio kind the server serves, namespaces and webhooks: one list each; one get of the
    # old istiod.
    served = {(entry["group"], entry["kind"]) for entry in json.loads(ISTIO_INDEX.read_text())}
    checked = [(group, kind) for group, _v, _d, kinds in ISTIO_KINDS for kind in kinds
               if (group, kind) in served]
    assert requests["by_verb"] == {"list": len(checked) + 2, "get": 1}


def test_a_skew_beyond_two_minor_versions_fails(cluster):
    istiod = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
        "name": "istiod-old", "namespace": "istio-system",
        "labels": {"app": "istiod", "app.kubernetes.io/version": "1.27.2"}},
        "spec": {"selector": {"matchLabels": {"app": "istiod"}}, "template": {
            "metadata": {"labels": {"app": "istiod"}},
            "spec": {"containers": [{"name": "discovery", "image": "docker.io/istio/pilot:1.27.2"}]}}}}
    apply(cluster, istiod)
    result = precheck(cluster, previous_revision="old")
    assert result["failed"] is True
    assert findings(result) == [("version skew", f"revisions old -> {NEW}")]
    assert result["findings"][0]["fix"] == "upgrade in steps: first to 1.29.x, then on"
    assert result["versions"]["previous_from"] == \
        "label app.kubernetes.io/version of Deployment istiod-old"
    assert "1.27.2 -> 1.30.3 spans more than 2 minor versions" in result["msg"]
    # Two minor versions apart is supported; an unknown previous version is a finding.
    assert "failed" not in precheck(cluster, previous_revision="old", previous_version="1.28.0")
    unknown = precheck(cluster, previous_revision="canary")
    assert findings(unknown) == [("version skew", "revision canary")]
    assert unknown["findings"][0]["fix"] == "set previous_version (istio_previous_version)"


def test_deprecated_api_versions_and_fields_are_listed_each(cluster):
    apply(cluster, destination_rule("legacy", "v1alpha3"),
          destination_rule("reviews", outlierDetection={"consecutiveErrors": 5},
                           loadBalancer={"simple": "LEAST_CONN"}))
    route = {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
             "metadata": {"name": "web", "namespace": "shop"},
             "spec": {"hosts": ["web"], "http": [{"route": [{"destination": {"host": "web"}}],
                                                  "mirror": {"host": "web-shadow"},
                                                  "mirrorPercent": 10}]}}
    apply(cluster, route)
    result = precheck(cluster)
    assert result["failed"] is True
    assert sorted(findings(result)) == sorted([
        ("deprecated API version", "DestinationRule shop/legacy"),
        ("deprecated field", "DestinationRule shop/reviews"),
        ("deprecated field", "DestinationRule shop/reviews"),
        ("deprecated API version", "VirtualService shop/web"),
        ("deprecated field", "VirtualService shop/web")])
    problems = {f["problem"]: f["fix"] for f in result["findings"]}
    assert problems["spec.trafficPolicy.outlierDetection.consecutiveErrors is deprecated"].startswith(
        "use consecutive5xxErrors")
    assert problems["spec.trafficPolicy.loadBalancer.simple is deprecated"] == "use simple: LEAST_REQUEST"
    assert "spec.http[0].mirrorPercent is deprecated" in problems
    legacy = next(f for f in result["findings"] if f["object"] == "DestinationRule shop/legacy")
    assert legacy["problem"] == "written as networking.istio.io/v1alpha3, deprecated since Istio 1.22"
    assert legacy["fix"] == "apply it again as networking.istio.io/v1 (same fields)"
    # Before 1.22 the old API versions were current.
    older = precheck(cluster, version="1.21.0", previous_version="1.20.1")
    assert {check for check, _obj in findings(older)} == {"deprecated field"}


def test_a_namespace_with_both_injection_labels_fails(cluster):
    apply(cluster, namespace("payments", **{"istio-injection": "enabled", "istio.io/rev": OLD}))
    result = precheck(cluster)
    assert findings(result) == [("injection labels", "Namespace payments")]
    assert result["findings"][0]["fix"] == "kubectl label namespace payments istio-injection-"


def tag_webhook(tag: str, revision: str) -> dict:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": f"istio-revision-tag-{tag}",
                         "labels": {"istio.io/tag": tag, "istio.io/rev": revision}},
            "webhooks": [{"name": "rev.namespace.sidecar-injector.istio.io",
                          "clientConfig": {"service": {"name": f"istiod-{revision}",
                                                       "namespace": "istio-system"}},
                          "admissionReviewVersions": ["v1"], "sideEffects": "None"}]}


def test_a_tag_that_points_at_another_revision_fails(cluster):
    apply(cluster, tag_webhook(TAG, "1-28-0"), tag_webhook("prod-stable", OLD))
    result = precheck(cluster, tags=[TAG])
    assert findings(result) == [("revision tag", f"MutatingWebhookConfiguration istio-revision-tag-{TAG}")]
    assert result["findings"][0]["problem"] == f"tag {TAG} already points at revision 1-28-0"
    # The tag on the new revision itself (a re-run) is fine.
    apply(cluster, tag_webhook(TAG, NEW))
    assert "failed" not in precheck(cluster, tags=[TAG])


def test_bad_options_fail_before_any_request(cluster):
    result = precheck(cluster, version="1.30", previous_revision=NEW, tags=["Prod"])
    assert result["failed"] is True
    assert "previous_revision: expected a revision other than revision" in result["msg"]
    assert "tags[0]" in result["msg"]
    bad = precheck(cluster, version="latest")
    assert "version: expected an Istio version such as 1.30.3" in bad["msg"]
    assert cluster.stats()["requests"]["total"] == 0


# ---- pods still on the old revision ---------------------------------------------------------

def pod(namespace_name: str, name: str, owner: tuple[str, str] | None = None, label: str | None = None,
        status_revision: str | None = None) -> dict:
    meta = {"name": name, "namespace": namespace_name}
    if label:
        meta["labels"] = {"istio.io/rev": label}
    if status_revision:
        meta["annotations"] = {STATUS: json.dumps({"containers": ["istio-proxy"],
                                                   "revision": status_revision})}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1" if owner[0] == "ReplicaSet" else "batch/v1",
                                    "kind": owner[0], "name": owner[1], "controller": True,
                                    "uid": "5e0c2a0e-0000-4000-8000-000000000001"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "app", "image": "app:1"}]}}


STALE = [pod("shop", "web-5d9c-abcde", ("ReplicaSet", "web-5d9c"), label=OLD),
         pod("batch", "backup-2913-x7k2p", ("Job", "backup-2913"), status_revision=OLD),
         pod("batch", "report-28512-q1", ("Job", "report-28512"), label=OLD),
         pod("misc", "debug", status_revision=OLD),
         pod("istio-ingress", "istio-ingressgateway-7f-zz", ("ReplicaSet", "istio-ingressgateway-7f"),
             label=OLD)]
FINISHED = pod("batch", "backup-2912-done", ("Job", "backup-2912"), status_revision=OLD)
OTHERS = [pod("shop", "web-6e1a-fghij", ("ReplicaSet", "web-6e1a"), label=NEW),
          pod("misc", "plain")]


@pytest.fixture(scope="module")
def stale(kubeapi_factory_module):
    server = kubeapi_factory_module()
    apply(server, *(namespace(name) for name in ("shop", "batch", "misc", "istio-ingress")))
    create(server, *STALE, FINISHED, *OTHERS)
    server.kubectl("patch", "pod", "backup-2912-done", "-n", "batch", "--subresource", "status",
                   "--type", "merge", "-p", json.dumps({"status": {"phase": "Succeeded"}}))
    return server


def key(entry: dict) -> tuple[str, str]:
    return entry["namespace"], entry["name"]


def test_pods_still_on_the_old_revision_are_listed_and_refused(stale):
    stale.reset_stats()
    result = call_module(revision_pods.main, {"kubeconfig": str(stale.kubeconfig), "revision": OLD})
    assert result["failed"] is True
    expected = sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in [*STALE, FINISHED])
    assert [key(e) for e in result["pods"]] == expected
    assert result["active"] == len(STALE)
    owners = {e["name"]: e["owner"] for e in result["pods"]}
    assert owners["debug"] == "bare pod" and owners["backup-2913-x7k2p"] == "Job backup-2913"
    found_by = {e["name"]: e["found_by"] for e in result["pods"]}
    assert found_by["debug"] == f"annotation {STATUS}" and found_by["web-5d9c-abcde"] == "label istio.io/rev"
    message = result["msg"]
    assert message.startswith(f"{len(STALE)} pod(s) still run the sidecar of revision {OLD};")
    for entry in STALE:
        assert entry["metadata"]["name"] in message
    assert stale.stats()["requests"]["by_verb"] == {"list": 1}


REMOVE_PLAY = """
- name: Remove the old revision
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Remove it through the istio role
      ansible.builtin.include_role:
        name: meshtune.mesh.istio
        tasks_from: remove_revision
      vars:
        istio_remove_revision: "{{ old }}"
"""


def remove(server, tmp_path, **variables):
    play = tmp_path / "remove.yml"
    play.write_text(REMOVE_PLAY)
    return run_playbook(play, {"old": OLD, "meshtune_render_dir": str(tmp_path / "rendered"),
                               "meshtune_helm_install": False, **variables},
                        env={"KUBECONFIG": str(server.kubeconfig)})


def test_render_only_removal_records_the_pods(stale, tmp_path):
    result = remove(stale, tmp_path)
    assert result.returncode == 0, result.stdout
    plan = yaml.safe_load((tmp_path / "rendered" / "localhost" / f"istiod-{OLD}.uninstall.yaml").read_text())
    assert plan["release"] == f"istiod-{OLD}"
    assert sorted(key(e) for e in plan["pods_still_injected"]) == \
        sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in STALE)
    assert "still run the sidecar of revision" in result.stderr  # the warning


def test_removal_refuses_unless_forced(stale, tmp_path):
    refused = remove(stale, tmp_path, meshtune_helm_install=True, meshtune_chart_mirror=str(tmp_path))
    assert refused.returncode != 0
    output = " ".join(refused.stdout.split())
    assert f"{len(STALE)} pod(s) still run the sidecar of revision {OLD}" in output
    assert "istio_remove_force: true" in output
    assert "Uninstall each release" not in refused.stdout
    forced = remove(stale, tmp_path, meshtune_helm_install=True, istio_remove_force=True,
                    meshtune_chart_mirror=str(tmp_path))
    # Forced: the uninstall runs (the release does not exist here, so Helm has nothing to remove).
    assert "Uninstall each release with Helm's Go SDK" in forced.stdout, forced.stdout
    assert forced.returncode == 0, forced.stdout


def test_the_upgrade_stops_at_the_precheck_with_nothing_changed(kubeapi_factory, tmp_path):
    server = kubeapi_factory()
    cluster = Cluster(server, tmp_path)
    apply(server, namespace("istio-system"), namespace("shop", **{"istio.io/rev": OLD}),
          namespace("payments", **{"istio-injection": "enabled", "istio.io/rev": OLD}))
    apply(server, destination_rule("legacy", "v1alpha3"))
    server.reset_stats()
    result = cluster.play("upgrade.yml", {"istio_revision": NEW, "istio_previous_revision": OLD,
                                          "istio_canary_tag": TAG})
    assert result.returncode != 0
    output = " ".join(result.stdout.split())
    assert "Upgrade precheck: 2 finding(s), nothing was changed" in output
    assert "Namespace payments" in output and "DestinationRule shop/legacy" in output
    verbs = server.stats()["requests"]["by_verb"]
    assert not set(verbs) & {"create", "update", "patch", "delete"}, verbs
    assert not cluster.rendered.exists()
