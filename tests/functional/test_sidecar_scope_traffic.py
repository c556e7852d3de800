"""meshtune.mesh.sidecar_scope with from_prometheus: a known call graph across four namespaces,
served by a real Prometheus over TSDB blocks, and the cluster's Services on the test API server.

Every expected egress list, count and cut is computed here from the call graph and the Services
the test creates, with the rules the module documents.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml

from ansible_collections.meshtune.mesh.plugins.modules import sidecar_scope
from tests.observability.call_graph import Call, serve
from tests.support.ansible_runner import run_module
from tests.support.module_harness import call_module

pytestmark = pytest.mark.integration

MODULE = "meshtune.mesh.sidecar_scope"
NAMESPACES = ["frontend", "shop", "payments", "db"]
REVISION = "1-30-3"
ISTIO = "istio-system"
RARE = 3  # requests of the one rare call
SVC = "svc.cluster.local"


def fqdn(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.{SVC}"


CALLS = [
    Call("frontend", "web", "shop", fqdn("catalog", "shop"), 360000),
    Call("frontend", "web", "shop", fqdn("cart", "shop"), 180000),
    Call("frontend", "admin", "shop", fqdn("catalog", "shop"), 3600),
    Call("frontend", "web", "payments", fqdn("refund", "payments"), RARE),
    Call("shop", "cart", "shop", fqdn("catalog", "shop"), 90000),
    Call("shop", "cart", "payments", fqdn("charge", "payments"), 36000),
    Call("shop", "catalog", "db", fqdn("postgres", "db"), 720, tcp=True),  # the TCP-only edge
    Call("payments", "charge", "payments", "api.bank.example.com", 36000),  # a ServiceEntry host
    Call("payments", "charge", "unknown", "fraud.example.net", 3600, cluster="PassthroughCluster"),
    Call(ISTIO, "istio-ingressgateway", "frontend", fqdn("web", "frontend"), 400000),  # not scoped
    Call("batch", "nightly", "shop", fqdn("catalog", "shop"), 24),  # only scoped by the mesh-wide default
]
# Services per namespace; `legacy` is outside discoverySelectors, shop's `internal` exported to shop only.
SERVICES = {"frontend": ["web", "admin"], "shop": ["catalog", "cart", "internal"],
            "payments": ["charge", "refund"], "db": ["postgres"], ISTIO: ["istiod"],
            "legacy": [f"old-{i}" for i in range(5)]}
EXPORTED_TO_OWN_NAMESPACE = {("shop", "internal")}


# ---- expectations, from the call graph ---------------------------------------------------------

def admits(entry: str, sidecar_namespace: str, host: str) -> bool:
    """The documented matching for the hosts used here: ns/* , ./* and exact hosts."""
    namespace, name = entry.split("/", 1)
    host_namespace, host_name = host.split("/", 1)
    if namespace == ".":
        namespace = sidecar_namespace
    return namespace == host_namespace and name in ("*", host_name)


def observed(namespace: str, workloads: set[str] | None = None) -> dict[str, int]:
    """Registry host -> requests + connections of a namespace's (selected) workloads."""
    totals: dict[str, int] = {}
    for call in CALLS:
        selected = workloads is None or call.workload in workloads
        if call.namespace == namespace and not call.cluster and selected:
            totals[call.host] = totals.get(call.host, 0) + call.total
    return totals


def expected_hosts(namespace: str, static: list[str], min_requests: int = 1,
                   workloads: set[str] | None = None) -> list[str]:
    base = static + ([f"{ISTIO}/*"] if f"{ISTIO}/*" not in static else [])
    return base + sorted(host for host, total in observed(namespace, workloads).items()
                         if total >= min_requests and not any(admits(e, namespace, host) for e in base))


def services_told(namespace: str, hosts: list[str] | None) -> int:
    """Services istiod watches (namespaces with istio.io/rev, and istio-system), exported to
    `namespace`, admitted by `hosts` (None: no Sidecar)."""
    watched = [*NAMESPACES, ISTIO]
    return sum(1 for svc_namespace in watched for name in SERVICES[svc_namespace]
               if ((svc_namespace, name) not in EXPORTED_TO_OWN_NAMESPACE or svc_namespace == namespace)
               and (hosts is None or any(admits(e, namespace, f"{svc_namespace}/{fqdn(name, svc_namespace)}")
                                         for e in hosts)))


def close(measured: int, total: int) -> bool:
    """increase() extrapolates by at most half a step past the last sample: within 0.5 % (+1)."""
    return abs(measured - total) <= total * 0.005 + 1


# ---- fixtures ----------------------------------------------------------------------------------

def apply(cluster, obj: dict) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))


def mesh_config() -> str:
    """The mesh config of the istio role's performance profile, as the istiod chart stores it."""
    profile = yaml.safe_load(Path("roles/istio/vars/profiles/performance.yml").read_text())
    mesh = {"rootNamespace": ISTIO, **profile["istio_profile_defaults"]["meshConfig"]}
    return yaml.safe_dump(mesh)


@pytest.fixture(scope="module")
def cluster(kubeapi):
    for namespace in [*NAMESPACES, "batch", ISTIO, "legacy"]:
        labels = {"istio.io/rev": REVISION} if namespace in [*NAMESPACES, "batch"] else {}
        apply(kubeapi, {"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": namespace, "labels": labels}})
    for namespace, names in SERVICES.items():
        for name in names:
            annotations = {"networking.istio.io/exportTo": "."} \
                if (namespace, name) in EXPORTED_TO_OWN_NAMESPACE else {}
            apply(kubeapi, {"apiVersion": "v1", "kind": "Service", "metadata": {
                "name": name, "namespace": namespace, "annotations": annotations},
                "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}})
    for name in ("web", "admin"):
        apply(kubeapi, {"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": name, "namespace": "frontend"},
                        "spec": {"selector": {"matchLabels": {"app": name}},
                                 "template": {"metadata": {"labels": {"app": name}},
                                              "spec": {"containers": [{"name": name, "image": "nginx"}]}}}})
    apply(kubeapi, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": f"istio-{REVISION}", "namespace": ISTIO, "labels": {"istio.io/rev": REVISION}},
        "data": {"mesh": mesh_config(), "meshNetworks": "networks: {}"}})
    return kubeapi


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    with serve(CALLS, tmp_path_factory.mktemp("prometheus")) as server:
        yield server


def writes(cluster) -> int:
    verbs = cluster.stats()["requests"]["by_verb"]
    return sum(verbs.get(v, 0) for v in ("create", "update", "patch", "delete"))


def sidecar(cluster, namespace: str, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "sidecars.networking.istio.io", name, "-n", namespace,
                                      "-o", "json").stdout)


def arguments(cluster, prometheus, **options) -> dict:
    traffic = {"url": prometheus.url, **options.pop("from_prometheus", {})}
    return {"kubeconfig": str(cluster.kubeconfig), "namespaces": NAMESPACES,
            "from_prometheus": traffic, **options}


# ---- tests -------------------------------------------------------------------------------------

def test_exact_egress_lists_from_two_queries_check_mode_first_then_idempotent(cluster, prometheus, tmp_path):
    args = arguments(cluster, prometheus, name="traffic", egress_hosts=[])
    expected = {namespace: expected_hosts(namespace, []) for namespace in NAMESPACES}
    assert f"{ISTIO}/*" in expected["db"] and len(expected["db"]) == 1, "db calls nothing"

    cluster.reset_stats()
    planned = run_module(tmp_path, MODULE, args, "--check", "--diff")
    assert planned.get("failed") is not True, planned.get("msg")
    assert planned["changed"] is True and planned["summary"]["created"] == 4
    assert writes(cluster) == 0
    assert {d["after_header"]: d["after"]["spec"]["egress"][0]["hosts"] for d in planned["diff"]} == {
        f"Sidecar {namespace}/traffic": hosts for namespace, hosts in expected.items()}

    applied = run_module(tmp_path, MODULE, args)
    assert applied["summary"]["created"] == 4, applied
    assert applied["prometheus_queries"] == 2
    assert applied["mesh_config"]["config_map"] == f"istio-{REVISION}"
    for scope in applied["scopes"]:
        namespace = scope["namespace"]
        assert scope["egress_hosts"] == expected[namespace]
        assert sidecar(cluster, namespace, "traffic")["spec"] == {"egress": [{"hosts": expected[namespace]}]}
        assert {entry["host"] for entry in scope["observed"]} == set(observed(namespace))
        for entry in scope["observed"]:
            assert close(entry["requests"] + entry["connections"], observed(namespace)[entry["host"]]), entry
        assert scope["services_before"] == services_told(namespace, None)
        assert scope["services_after"] == services_told(namespace, expected[namespace])
    tcp = next(e for s in applied["scopes"] for e in s["observed"] if e["host"].startswith("db/"))
    assert tcp["requests"] == 0 and close(tcp["connections"], 720)
    outside = [call for call in CALLS if call.cluster]
    assert [(o["namespace"], o["workload"], o["destination"], o["cluster"])
            for o in applied["outside_registry"]] == [(c.namespace, c.workload, c.service, c.cluster)
                                                      for c in outside]
    assert any("REGISTRY_ONLY" in warning for warning in applied["warnings"])
    assert applied["would_cut"] == []

    cluster.reset_stats()
    again = run_module(tmp_path, MODULE, args)
    assert again["changed"] is False and again["summary"]["unchanged"] == 4
    assert writes(cluster) == 0


def test_a_sidecar_in_the_cluster_that_cuts_observed_hosts_fails_unless_allowed(cluster, prometheus,
                                                                                tmp_path):
    static = ["./*", f"{ISTIO}/*"]
    base = {"kubeconfig": str(cluster.kubeconfig), "namespaces": ["shop"], "name": "default"}
    assert run_module(tmp_path, MODULE, base)["summary"]["created"] == 1
    cut = sorted(host for host in observed("shop") if not any(admits(e, "shop", host) for e in static))
    assert cut, "shop calls outside its namespace"

    args = {**arguments(cluster, prometheus, name="default"), "namespaces": ["shop"]}
    cluster.reset_stats()
    refused = run_module(tmp_path, MODULE, args)
    assert refused["failed"] is True
    assert refused["msg"].startswith(f"{len(cut)} host(s) called in the last 7d would be cut off")
    for host in cut:
        assert f"shop -> {host}" in refused["msg"]
    assert "by the Sidecar shop/default in the cluster" in refused["msg"]
    assert "allow_cutting" in refused["msg"]
    assert [(c["host"], c["sidecar"]) for c in refused["would_cut"]] == [(h, "shop/default") for h in cut]
    assert refused["scopes"][0]["current_sidecar"] == "shop/default"
    assert writes(cluster) == 0
    assert sidecar(cluster, "shop", "default")["spec"]["egress"][0]["hosts"] == static

    allowed = run_module(tmp_path, MODULE, {**args, "allow_cutting": True})
    assert allowed["summary"]["updated"] == 1
    assert sidecar(cluster, "shop", "default")["spec"]["egress"][0]["hosts"] == \
        expected_hosts("shop", static) == static + cut
    [scope] = allowed["scopes"]
    assert scope["services_before"] == services_told("shop", static)
    assert scope["services_after"] == services_told("shop", static + cut)
    assert run_module(tmp_path, MODULE, args)["changed"] is False, "nothing is cut any more"


def test_hosts_below_min_requests_are_cut_by_the_new_sidecar_only_when_allowed(cluster, prometheus, tmp_path):
    minimum = 10
    args = {**arguments(cluster, prometheus, name="busy", egress_hosts=[],
                        from_prometheus={"min_requests": minimum, "window": "2h"}),
            "namespaces": ["frontend"]}
    rare = [host for host, total in observed("frontend").items() if total < minimum]
    assert rare == [f"payments/{fqdn('refund', 'payments')}"]
    cluster.reset_stats()
    refused = run_module(tmp_path, MODULE, args)
    assert refused["failed"] is True
    assert f"frontend -> {rare[0]} ({RARE} requests, 0 connections) by the new Sidecar" in refused["msg"]
    assert "called in the last 2h" in refused["msg"]
    assert writes(cluster) == 0

    allowed = run_module(tmp_path, MODULE, {**args, "allow_cutting": True})
    assert allowed["summary"]["created"] == 1
    assert [(c["host"], c["sidecar"]) for c in allowed["would_cut"]] == [(rare[0], "new")]
    assert sidecar(cluster, "frontend", "busy")["spec"]["egress"][0]["hosts"] == \
        expected_hosts("frontend", [], minimum)


def test_workload_selector_takes_only_the_selected_workloads_traffic(cluster, prometheus, tmp_path):
    args = {**arguments(cluster, prometheus, name="admin", egress_hosts=[],
                        workload_selector={"app": "admin"}), "namespaces": ["frontend"]}
    outcome = run_module(tmp_path, MODULE, args)
    assert outcome["summary"]["created"] == 1, outcome
    hosts = expected_hosts("frontend", [], workloads={"admin"})
    assert hosts == [f"{ISTIO}/*", f"shop/{fqdn('catalog', 'shop')}"]
    assert sidecar(cluster, "frontend", "admin")["spec"] == {
        "egress": [{"hosts": hosts}], "workloadSelector": {"labels": {"app": "admin"}}}


def test_the_mesh_wide_default_sidecar_counts_where_a_namespace_has_none(cluster, prometheus, tmp_path):
    root = ["./*", f"{ISTIO}/*"]
    created = run_module(tmp_path, MODULE, {"kubeconfig": str(cluster.kubeconfig), "namespaces": [ISTIO],
                                            "name": "default", "egress_hosts": root})
    assert created["summary"]["created"] == 1
    try:
        args = {**arguments(cluster, prometheus, egress_hosts=[]), "namespaces": ["batch"]}
        refused = run_module(tmp_path, MODULE, args, "--check")
        cut = sorted(host for host in observed("batch")
                     if not any(admits(entry, "batch", host) for entry in root))
        assert refused["failed"] is True and cut
        assert [(c["host"], c["sidecar"]) for c in refused["would_cut"]] == \
            [(host, f"{ISTIO}/default") for host in cut]
        [scope] = refused["scopes"]
        assert scope["current_sidecar"] == f"{ISTIO}/default"
        assert scope["services_before"] == services_told("batch", root)
        assert scope["services_after"] == services_told("batch", expected_hosts("batch", []))
    finally:
        cluster.kubectl("delete", "sidecars.networking.istio.io", "default", "-n", ISTIO)


def test_credentials_for_prometheus_stay_out_of_the_result(cluster, prometheus, tmp_path):
    password, token = "s3cret-pass", "t0ken-value"
    url = prometheus.url.replace("http://", f"http://meshtune:{password}@")
    args = {**arguments(cluster, prometheus, name="traffic", egress_hosts=[]), "namespaces": ["db"]}
    args["from_prometheus"] = {"url": url, "headers": {"X-Scope-Token": token}}
    outcome = run_module(tmp_path, MODULE, args, "--check")
    assert outcome.get("failed") is not True, outcome.get("msg")
    assert outcome["scopes"][0]["egress_hosts"] == expected_hosts("db", [])
    shown = json.dumps(outcome)
    assert password not in shown and token not in shown


def test_converges_through_injected_api_faults(cluster, prometheus):
    # allow_cutting: Sidecars the other tests left in these namespaces may cut some hosts.
    args = arguments(cluster, prometheus, name="faulty", egress_hosts=[], allow_cutting=True)
    cluster.set_faults(0.2, faults=["409", "429", "500", "reset"], seed=7)
    try:
        first = call_module(sidecar_scope.main, args)
        second = call_module(sidecar_scope.main, args)
        injected = cluster.stats()["faults"]["injected"]
    finally:
        cluster.set_faults(0.0)
    assert first.get("failed") is not True, first.get("msg")
    assert first["summary"]["created"] == 4
    assert sum(injected.values()) > 0, injected
    for namespace in NAMESPACES:
        assert sidecar(cluster, namespace, "faulty")["spec"]["egress"][0]["hosts"] == \
            expected_hosts(namespace, [])
    assert second.get("failed") is not True, second.get("msg")
    assert second["changed"] is False and second["summary"]["unchanged"] == 4


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(("override", "option"), [
    ({"from_prometheus": {"url": "ftp://prometheus"}}, "from_prometheus.url"),
    ({"from_prometheus": {"window": "7 days"}}, "from_prometheus.window"),
    ({"from_prometheus": {"window": "30s"}}, "from_prometheus.window"),
    ({"from_prometheus": {"min_requests": 0}}, "from_prometheus.min_requests"),
    ({"from_prometheus": {"timeout": 0}}, "from_prometheus.timeout"),
    ({"from_prometheus": {"headers": {"bad name": "x"}}}, "from_prometheus.headers.bad name"),
    ({"from_prometheus": {"client_key": "/nonexistent.pem"}}, "from_prometheus.client_cert"),
    ({"state": "absent"}, "from_prometheus"),
    ({"istio_namespace": "Istio_System"}, "istio_namespace"),
    ({"istio_revision": "bad revision"}, "istio_revision"),
    ({"egress_hosts": ["no-slash"]}, "egress_hosts[0]"),
])
def test_bad_input_fails_naming_the_option_before_any_request(cluster, prometheus, tmp_path,
                                                              override, option):
    others = {key: value for key, value in override.items() if key != "from_prometheus"}
    traffic = {"url": prometheus.url, **override.get("from_prometheus", {})}
    args = {"kubeconfig": str(cluster.kubeconfig), "namespaces": ["shop"], "from_prometheus": traffic,
            **others}
    cluster.reset_stats()
    outcome = run_module(tmp_path, MODULE, args)
    assert outcome["failed"] is True
    assert outcome["msg"].startswith("Invalid options (nothing was changed): "), outcome["msg"]
    assert f"{option}:" in outcome["msg"]
    assert cluster.stats()["requests"]["total"] == 0


def test_allow_cutting_without_from_prometheus_is_refused(cluster, tmp_path):
    outcome = run_module(tmp_path, MODULE, {"kubeconfig": str(cluster.kubeconfig), "namespaces": ["shop"],
                                            "allow_cutting": True})
    assert outcome["failed"] is True
    assert "allow_cutting: expected true only with from_prometheus" in outcome["msg"]


def test_an_unreachable_prometheus_is_named_and_nothing_is_written(cluster, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    cluster.reset_stats()
    outcome = run_module(tmp_path, MODULE, {"kubeconfig": str(cluster.kubeconfig), "namespaces": ["shop"],
                                            "from_prometheus": {"url": url, "timeout": 5}})
    assert outcome["failed"] is True
    assert outcome["msg"].startswith(f"from_prometheus.url: Cannot reach Prometheus at {url}: "), \
        outcome["msg"]
    assert writes(cluster) == 0


def test_several_control_planes_need_istio_revision(cluster, prometheus, tmp_path):
    apply(cluster, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "istio-canary", "namespace": ISTIO, "labels": {"istio.io/rev": "canary"}},
        "data": {"mesh": "discoverySelectors: []\n"}})
    try:
        several_control_planes(cluster, prometheus, tmp_path)
    finally:
        cluster.kubectl("delete", "configmap", "istio-canary", "-n", ISTIO)


def several_control_planes(cluster, prometheus, tmp_path):
    # batch has no Sidecar of its own (the other tests only plan it): before is every Service.
    args = {**arguments(cluster, prometheus, egress_hosts=[]), "namespaces": ["batch"]}
    cluster.reset_stats()
    refused = run_module(tmp_path, MODULE, args)
    assert refused["failed"] is True
    assert refused["msg"].startswith(f"istio_revision: namespace {ISTIO} holds the mesh configs of several "
                                     f"control planes (1-30-3, canary)"), refused["msg"]
    assert writes(cluster) == 0
    canary = run_module(tmp_path, MODULE, {**args, "istio_revision": "canary"}, "--check")
    assert canary["mesh_config"] == {"config_map": "istio-canary", "discovery_selectors": []}
    [scope] = canary["scopes"]
    # No discoverySelectors: istiod watches every namespace, legacy's Services too.
    everything = sum(len(names) for names in SERVICES.values()) - len(EXPORTED_TO_OWN_NAMESPACE)
    assert scope["current_sidecar"] is None
    assert scope["services_before"] == everything == services_told("batch", None) + len(SERVICES["legacy"])
    assert writes(cluster) == 0
