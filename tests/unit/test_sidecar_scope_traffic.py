"""The pure logic of sidecar_scope's from_prometheus: queries, host matching as istiod matches,
discoverySelectors and exportTo, the choice of mesh config, the scopes and their cuts."""

from __future__ import annotations

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.meshtune.mesh.plugins.module_utils import traffic_scope as ts
from ansible_collections.meshtune.mesh.plugins.modules import sidecar_scope


def validate(**options) -> str | None:
    result = ArgumentSpecValidator(sidecar_scope.argument_spec()).validate(
        {"namespaces": ["shop"], **options})
    assert not result.error_messages, result.error_messages
    return sidecar_scope.validate(result.validated_parameters)


@pytest.mark.parametrize("count", [1, 4, 500])
def test_two_queries_whatever_the_number_of_namespaces(count):
    namespaces = [f"team-{i}" for i in range(count)]
    queries = ts.traffic_queries(namespaces, 604800)
    assert list(queries) == ["requests", "connections"]
    counters = ("istio_requests_total", "istio_tcp_connections_opened_total")
    for query, counter in zip(queries.values(), counters, strict=True):
        assert f'increase({counter}{{reporter="source", ' in query
        assert query.startswith("sum by (" + ", ".join(ts.GROUPING) + ")")
        assert query.endswith("[604800s]))")
        assert f'source_workload_namespace=~"{"|".join(sorted(namespaces))}"' in query


@pytest.mark.parametrize(("entry", "sidecar_ns", "service_ns", "host", "expected"), [
    ("./*", "shop", "shop", "cart.shop.svc.cluster.local", True),
    ("./*", "shop", "payments", "charge.payments.svc.cluster.local", False),
    ("*/*", "shop", "payments", "charge.payments.svc.cluster.local", True),
    ("~/*", "shop", "shop", "cart.shop.svc.cluster.local", False),
    ("payments/*", "shop", "payments", "charge.payments.svc.cluster.local", True),
    ("payments/charge.payments.svc.cluster.local", "shop", "payments", "charge.payments.svc.cluster.local",
     True),
    ("payments/charge.payments.svc.cluster.local", "shop", "payments", "refund.payments.svc.cluster.local",
     False),
    ("*/*.example.com", "shop", "egress", "api.example.com", True),
    ("*/*.example.com", "shop", "egress", "a.b.example.com", True),
    ("*/*.example.com", "shop", "egress", "example.com", False),
    ("*/API.Example.com", "shop", "egress", "api.example.com", True),
    ("./*.example.com", "shop", "egress", "api.example.com", False),
])
def test_host_matching(entry, sidecar_ns, service_ns, host, expected):
    assert ts.host_matches(entry, sidecar_ns, service_ns, host) is expected


def test_no_discovery_selectors_watch_every_namespace_and_any_one_match_is_enough():
    selectors = [{"matchLabels": {"a": "1"}}, {"matchLabels": {"b": "2"}}]
    assert ts.watched([], {}) and ts.watched(None, {"x": "y"})
    assert ts.watched(selectors, {"b": "2"}) and not ts.watched(selectors, {"c": "3"})


def service(namespace: str, name: str, export_to: str | None = None) -> dict:
    annotations = {} if export_to is None else {ts.EXPORT_TO_ANNOTATION: export_to}
    return {"metadata": {"namespace": namespace, "name": name, "annotations": annotations}}


@pytest.mark.parametrize(("export_to", "default", "viewer", "expected"), [
    (None, None, "shop", True),
    (".", None, "db", True),
    (".", None, "shop", False),
    ("shop, web", None, "shop", True),
    ("web", None, "shop", False),
    ("~", None, "db", False),
    (None, ["."], "shop", False),
    (None, ["."], "db", True),
    ("*", ["."], "shop", True),
])
def test_export_to(export_to, default, viewer, expected):
    assert ts.exported_to(service("db", "postgres", export_to), viewer, default) is expected


def config_map(name: str, revision: str, mesh: str | None = "{}") -> dict:
    data = {} if mesh is None else {"mesh": mesh}
    return {"metadata": {"name": name, "labels": {"istio.io/rev": revision}}, "data": data}


def test_mesh_config_choice():
    one = config_map("istio-1-30-3", "1-30-3", "rootNamespace: istio-system")
    canary = config_map("istio-canary", "canary")
    values = config_map("values-1-30-3", "1-30-3", None)  # the chart's other ConfigMap: no mesh key
    assert ts.pick_mesh_config([], None, "istio-system") == (None, "")
    assert ts.pick_mesh_config([one, values], None, "istio-system") == (one["metadata"]["name"],
                                                                        one["data"]["mesh"])
    assert ts.pick_mesh_config([one, canary], "canary", "istio-system")[0] == "istio-canary"
    with pytest.raises(ValueError, match=r"\Aistio_revision: namespace istio-system holds the mesh configs "
                                         r"of several control planes \(1-30-3, canary\)"):
        ts.pick_mesh_config([one, canary], None, "istio-system")
    with pytest.raises(ValueError, match=r"\Aistio_revision: no mesh config of revision 'gone'.*found "
                                         r"revisions: 1-30-3\Z"):
        ts.pick_mesh_config([one], "gone", "istio-system")


def sample(value: float, **labels: str) -> dict:
    return {"metric": labels, "value": value}


def row(namespace, workload, service_namespace, service, cluster=None):
    return {"source_workload_namespace": namespace, "source_workload": workload,
            "destination_service_namespace": service_namespace, "destination_service": service,
            "destination_service_name": cluster or service.split(".")[0]}


def test_edges_add_requests_and_connections_and_skip_nothing_counted():
    cart = row("shop", "cart", "payments", "charge.payments.svc.cluster.local")
    db = row("shop", "catalog", "db", "postgres.db.svc.cluster.local")
    results = {"requests": {"result": [sample(99.6, **cart), sample(0.0, **db)]},
               "connections": {"result": [sample(10.2, **cart), sample(7.0, **db)]}}
    assert ts.edges(results) == [
        ts.Edge("shop", "cart", "payments", "charge.payments.svc.cluster.local", "charge", 100, 10),
        ts.Edge("shop", "catalog", "db", "postgres.db.svc.cluster.local", "postgres", 0, 7)]


def edge(namespace, workload, host, total, cluster=None, tcp=False):
    service_namespace, service = host.split("/", 1)
    name = cluster or service.split(".")[0]
    return ts.Edge(namespace, workload, service_namespace, service, name, 0 if tcp else total,
                   total if tcp else 0)


def test_scopes_keep_the_static_hosts_add_what_was_called_and_report_the_rest():
    charge = "payments/charge.payments.svc.cluster.local"
    catalog = "shop/catalog.shop.svc.cluster.local"
    postgres = "db/postgres.db.svc.cluster.local"
    rare = "payments/refund.payments.svc.cluster.local"
    calls = [edge("shop", "cart", charge, 500), edge("shop", "cart", catalog, 80),
             edge("shop", "catalog", postgres, 12, tcp=True), edge("shop", "cart", rare, 2),
             edge("shop", "cart", "unknown/fraud.example.net", 5, cluster="PassthroughCluster"),
             edge("shop", "cart", "unknown/10.0.0.7", 1, cluster="BlackHoleCluster"),
             edge("shop", "cart", "payments/10.0.0.8", 4),  # no registry host: outside too
             edge("web", "front", catalog, 9)]
    scopes, outside = ts.plan_scopes(["shop", "db"], calls, ["./*"], "istio-system", 3)
    assert [scope["egress_hosts"] for scope in scopes] == [
        ["./*", "istio-system/*", postgres, charge], ["./*", "istio-system/*"]]
    assert [(entry["host"], entry["requests"], entry["connections"]) for entry in scopes[0]["observed"]] == [
        (postgres, 0, 12), (charge, 500, 0), (rare, 2, 0), (catalog, 80, 0)]
    # Edges are taken in order (source, destination namespace, host); a registry name that is no
    # host (an IP) is reported with the name Istio gave it.
    assert [(call["destination"], call["cluster"]) for call in outside] == [
        ("10.0.0.8", "10"), ("10.0.0.7", "BlackHoleCluster"), ("fraud.example.net", "PassthroughCluster")]
    cuts = ts.cut_hosts(scopes, {"shop": None})
    assert [(cut["host"], cut["sidecar"]) for cut in cuts] == [(rare, "new")]


def test_workload_mode_counts_only_the_selected_workloads():
    deployments = [("Deployment", {"metadata": {"namespace": "shop", "name": name},
                                   "spec": {"template": {"metadata": {"labels": labels}}}})
                   for name, labels in (("cart", {"app": "cart", "tier": "api"}),
                                        ("catalog", {"app": "catalog"}))]
    selected = ts.selected_workloads(deployments, {"tier": "api"})
    assert selected == {"shop": {"cart"}}
    calls = [edge("shop", "cart", "payments/charge.payments.svc.cluster.local", 5),
             edge("shop", "catalog", "db/postgres.db.svc.cluster.local", 5, tcp=True)]
    [scope], outside = ts.plan_scopes(["shop"], calls, [], "istio-system", 1, selected)
    assert outside == []
    assert scope["egress_hosts"] == ["istio-system/*", "payments/charge.payments.svc.cluster.local"]


def sidecar(namespace, name, hosts, created, selector=None):
    spec = {"egress": [{"hosts": hosts}]}
    if selector:
        spec["workloadSelector"] = {"labels": selector}
    return {"metadata": {"namespace": namespace, "name": name, "creationTimestamp": created}, "spec": spec}


def test_the_sidecar_in_force_is_the_named_one_else_the_oldest_default_else_the_mesh_wide_one():
    objects = [sidecar("shop", "scope", ["./*"], "2026-01-03T00:00:00Z"),
               sidecar("shop", "old", ["*/*"], "2026-01-01T00:00:00Z"),
               sidecar("web", "picky", ["./*"], "2026-01-01T00:00:00Z", {"app": "x"}),
               sidecar("web", "newer", ["./*"], "2026-01-05T00:00:00Z"),
               sidecar("web", "older", ["./*"], "2026-01-02T00:00:00Z"),
               sidecar("istio-system", "default", ["istio-system/*"], "2025-01-01T00:00:00Z")]
    live = {(obj["metadata"]["namespace"], obj["metadata"]["name"]): obj for obj in objects}
    current = ts.current_sidecars(live, ["shop", "web", "db"], "scope", "istio-system")
    assert {ns: obj["metadata"]["name"] for ns, obj in current.items()} == {
        "shop": "scope", "web": "older", "db": "default"}
    assert ts.current_sidecars({}, ["db"], "scope", "istio-system") == {"db": None}


@pytest.mark.parametrize(("options", "option"), [
    ({"from_prometheus": {"url": "http://p:9090", "window": "59s"}}, "from_prometheus.window"),
    ({"from_prometheus": {"url": "http://p:9090", "window": "90500ms"}}, "from_prometheus.window"),
    ({"from_prometheus": {"url": "http://p:9090", "min_requests": -1}}, "from_prometheus.min_requests"),
    ({"from_prometheus": {"url": "http://user:secret@p:9090/?q=1"}}, "from_prometheus.url"),
    ({"from_prometheus": {"url": "http://p:9090", "bearer_token": "t", "username": "u", "password": "p"}},
     "from_prometheus.bearer_token"),
    ({"allow_cutting": True}, "allow_cutting"),
])
def test_bad_options_are_named_by_their_path(options, option):
    message = validate(**options)
    assert message.startswith("Invalid options (nothing was changed): ")
    assert f"{option}: expected" in message
    assert "secret" not in message


@pytest.mark.parametrize("window", ["1m", "90s", "1h30m", "7d", "2w", 3600])
def test_good_windows_pass(window):
    assert validate(from_prometheus={"url": "http://p:9090", "window": window}, egress_hosts=[]) is None


def test_username_needs_a_password():
    result = ArgumentSpecValidator(sidecar_scope.argument_spec()).validate(
        {"namespaces": ["shop"], "from_prometheus": {"url": "http://p:9090", "username": "u"}})
    assert result.error_messages == [
        "parameters are required together: username, password found in from_prometheus"]
