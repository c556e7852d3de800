"""Real Helm against the test API server: Helm v4's Go SDK in process (helm-python-sdk) installs
the real upstream charts of the chart mirror, with its defaults: OpenAPI validation, Secret release
storage, server-side apply and the kstatus watcher wait.

On one server, in order: Istio's base, istiod and gateway charts, Prometheus and Grafana; then
the Istio kinds served by the CRDs the base chart installed, an upgrade, a rollback, an upgrade
the server rejects (rolled back), and an uninstall. Each phase builds on the one before it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import helm_python as helm
import pytest
from kubernetes import config, dynamic

from tests.support.charts import chart_mirror, chart_package

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REVISION = "1-30-3"


@dataclass(frozen=True)
class Release:
    chart: str
    version: str
    name: str
    namespace: str
    values: dict = field(default_factory=dict)


BASE = Release("base", "1.30.3", "istio-base", "istio-system")
ISTIOD = Release("istiod", "1.30.3", "istiod-1-30-3", "istio-system", {"revision": REVISION})
GATEWAY = Release("gateway", "1.30.3", "istio-ingressgateway", "istio-ingress",
                  {"revision": REVISION})
PROMETHEUS = Release("prometheus", "29.27.0", "prometheus", "monitoring")
GRAFANA = Release("grafana", "12.11.1", "grafana", "monitoring", {"adminPassword": "x"})
RELEASES = (BASE, ISTIOD, GATEWAY, PROMETHEUS, GRAFANA)


def helm_config(server, namespace: str) -> helm.Config:
    return helm.Config(kubeconfig_path=str(server.kubeconfig), namespace=namespace)


def get(server, path: str) -> dict | None:
    """An object by API path, or None when the server has none."""
    result = server.kubectl("get", "--raw", path, check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


@pytest.fixture(scope="module")
def mirror():
    return chart_mirror()


@pytest.fixture(scope="module")
def installed(kubeapi, mirror) -> dict[str, dict]:
    """All five charts installed in order on the module's server, each waited for."""
    summaries = {}
    for release in RELEASES:
        summaries[release.name] = helm_config(kubeapi, release.namespace).install(
            chart_package(mirror, release.chart, release.version), release.name, release.values,
            create_namespace=True, wait="watcher", timeout=120)
    return summaries


@pytest.fixture(scope="module")
def dyn(kubeapi) -> dynamic.DynamicClient:
    return dynamic.DynamicClient(config.new_client_from_config(str(kubeapi.kubeconfig)))


def test_every_chart_installs_and_settles(kubeapi, installed):
    assert {name: (s["status"], s["revision"]) for name, s in installed.items()} == {
        r.name: ("deployed", 1) for r in RELEASES}
    verbs = kubeapi.stats()["requests"]["by_verb"]
    assert verbs.get("patch", 0) > 50, "objects are applied server-side"
    assert verbs.get("watch", 0) > 0, "the kstatus watcher waited on watches"

    crd = get(kubeapi, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                       "destinationrules.networking.istio.io")
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]}["Established"] == "True"
    assert get(kubeapi, "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
                        "istio-sidecar-injector-1-30-3")

    gateway = get(kubeapi, "/api/v1/namespaces/istio-ingress/services/istio-ingressgateway")
    assert gateway["spec"]["type"] == "LoadBalancer" and gateway["spec"]["clusterIP"]
    assert gateway["status"]["loadBalancer"]["ingress"]

    claim = get(kubeapi, "/api/v1/namespaces/monitoring/persistentvolumeclaims/prometheus-server")
    assert claim["status"]["phase"] == "Bound"
    assert get(kubeapi, f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}")

    records = get(kubeapi, "/api/v1/namespaces/istio-system/secrets?labelSelector=owner%3Dhelm")
    assert sorted(s["metadata"]["labels"]["name"] for s in records["items"]) == [
        "istio-base", "istiod-1-30-3"], "Helm's protobuf-encoded release Secrets were stored"


def istio_object(kind: str, name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": kind,
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def test_istio_kinds_are_served_by_the_installed_crds(kubeapi, installed, dyn):
    rules = dyn.resources.get(api_version="networking.istio.io/v1", kind="DestinationRule")
    sidecars = dyn.resources.get(api_version="networking.istio.io/v1", kind="Sidecar")
    rules.create(body=istio_object("DestinationRule", "reviews", {
        "host": "reviews.default.svc.cluster.local",
        "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 100}}}}))
    sidecars.create(body=istio_object("Sidecar", "default", {
        "egress": [{"hosts": ["./*", "istio-system/*"]}]}))
    assert rules.get(name="reviews", namespace="default").spec.host.startswith("reviews.")

    with pytest.raises(dynamic.exceptions.DynamicApiError) as err:
        rules.create(body=istio_object("DestinationRule", "typo", {
            "host": "reviews", "trafficPolicy": {"connectionPool": {"tcp": {"maxConections": 1}}}}))
    assert err.value.status == 422 and "maxConections" in err.value.body.decode(), \
        "the CRD's structural schema rejects unknown fields"
    versions = [v["version"] for v in get(kubeapi, "/apis/networking.istio.io")["versions"]]
    crd = get(kubeapi, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                       "destinationrules.networking.istio.io")
    assert set(versions) >= {v["name"] for v in crd["spec"]["versions"] if v["served"]}


def deployment_replicas(server, namespace: str, name: str) -> int:
    return get(server, f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")["spec"]["replicas"]


def test_upgrade_then_rollback(kubeapi, installed, mirror):
    cfg = helm_config(kubeapi, ISTIOD.namespace)
    chart = chart_package(mirror, ISTIOD.chart, ISTIOD.version)
    before = deployment_replicas(kubeapi, "istio-system", "istiod-1-30-3")
    upgraded = cfg.upgrade(chart, ISTIOD.name, {**ISTIOD.values, "autoscaleEnabled": False,
                                                "replicaCount": before + 2},
                           wait="watcher", timeout=120)
    assert (upgraded["status"], upgraded["revision"]) == ("deployed", 2)
    assert deployment_replicas(kubeapi, "istio-system", "istiod-1-30-3") == before + 2

    cfg.rollback(ISTIOD.name, wait="watcher", timeout=120)
    assert [(h["revision"], h["status"]) for h in cfg.history(ISTIOD.name)] == [
        (1, "superseded"), (2, "superseded"), (3, "deployed")]
    assert deployment_replicas(kubeapi, "istio-system", "istiod-1-30-3") == before


def test_upgrade_the_server_rejects_is_rolled_back(kubeapi, installed, mirror):
    cfg = helm_config(kubeapi, GATEWAY.namespace)
    before = deployment_replicas(kubeapi, "istio-ingress", "istio-ingressgateway")
    with pytest.raises(helm.HelmReleaseError) as err:
        cfg.upgrade(chart_package(mirror, GATEWAY.chart, GATEWAY.version), GATEWAY.name,
                    {**GATEWAY.values, "autoscaling": {"enabled": False}, "replicaCount": -1},
                    wait="watcher", timeout=120, rollback_on_failure=True)
    assert "spec.replicas: Invalid value: -1" in str(err.value)
    history = cfg.history(GATEWAY.name)
    assert [(h["revision"], h["status"]) for h in history] == [
        (1, "superseded"), (2, "failed"), (3, "deployed")]
    assert deployment_replicas(kubeapi, "istio-ingress", "istio-ingressgateway") == before


def test_uninstall_removes_the_objects(kubeapi, installed):
    cfg = helm_config(kubeapi, PROMETHEUS.namespace)
    claim = get(kubeapi, "/api/v1/namespaces/monitoring/persistentvolumeclaims/prometheus-server")
    cfg.uninstall(PROMETHEUS.name, wait="watcher", timeout=120)
    for path in ("/apis/apps/v1/namespaces/monitoring/deployments/prometheus-server",
                 "/api/v1/namespaces/monitoring/services/prometheus-server",
                 "/api/v1/namespaces/monitoring/persistentvolumeclaims/prometheus-server",
                 f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}",
                 "/apis/rbac.authorization.k8s.io/v1/clusterroles/prometheus-server"):
        assert get(kubeapi, path) is None, path
    assert [r["name"] for r in cfg.list()] == ["grafana"], "Grafana's release is untouched"


def test_wait_fails_when_workloads_never_become_ready(kubeapi_factory, mirror):
    """The waits above passed because the simulated controllers reported readiness, not
    trivially: on a server whose workloads never roll out, the same install times out."""
    server = kubeapi_factory("--rollout-delay", "-1")
    with pytest.raises(helm.HelmCancelledError) as err:
        helm_config(server, GATEWAY.namespace).install(
            chart_package(mirror, GATEWAY.chart, GATEWAY.version), GATEWAY.name, GATEWAY.values,
            create_namespace=True, wait="watcher", timeout=3)
    assert "Deployment/istio-ingress/istio-ingressgateway not ready" in str(err.value)
