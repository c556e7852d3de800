"""Reliability: batches converge through injected API faults, and say exactly what changed."""

from __future__ import annotations

import pytest
from kubernetes import client, config

from ansible_collections.meshtune.mesh.plugins.module_utils import kube
from ansible_collections.meshtune.mesh.plugins.modules import sidecar_scope
from tests.support.module_harness import call_module

BATCH = 2000


@pytest.fixture(scope="module")
def faulty(kubeapi_factory_module):
    server = kubeapi_factory_module()
    core = client.CoreV1Api(config.new_client_from_config(str(server.kubeconfig)))
    for index in range(BATCH):
        core.create_namespace({"metadata": {"name": f"team-{index:04d}"}})
    return server


def sidecars(server) -> dict[str, dict]:
    api = client.CustomObjectsApi(config.new_client_from_config(str(server.kubeconfig)))
    items = api.list_cluster_custom_object("networking.istio.io", "v1", "sidecars")["items"]
    return {item["metadata"]["namespace"]: item for item in items}


def test_a_2000_object_batch_converges_through_10_percent_faults(faulty):
    namespaces = [f"team-{index:04d}" for index in range(BATCH)]
    faulty.set_faults(0.10, faults=["409", "429", "500", "reset"], seed=11)
    args = {"kubeconfig": str(faulty.kubeconfig), "namespaces": namespaces, "parallelism": 16}
    first = call_module(sidecar_scope.main, args)
    assert first.get("failed") is not True, first.get("msg")
    assert first["summary"]["created"] == BATCH
    assert len(first["results"]) == BATCH
    assert first["retries"] > 0
    injected = faulty.stats()["faults"]["injected"]
    assert min(injected.values()) > 0, injected
    assert set(sidecars(faulty)) == set(namespaces)

    second = call_module(sidecar_scope.main, args)
    assert second["changed"] is False
    assert second["summary"]["unchanged"] == BATCH
    faulty.set_faults(0.0)


def test_a_batch_that_still_fails_names_what_changed(faulty):
    stale = [f"team-{index:04d}" for index in range(5)]
    fresh = ["late-a", "late-b", "late-c"]
    core = client.CoreV1Api(config.new_client_from_config(str(faulty.kubeconfig)))
    for namespace in fresh:
        core.create_namespace({"metadata": {"name": namespace}})
    faulty.set_faults(1.0, faults=["500"], verbs=["create"])
    outcome = call_module(sidecar_scope.main, {
        "kubeconfig": str(faulty.kubeconfig), "namespaces": stale + fresh,
        "egress_hosts": ["./*", "istio-system/*", "shared/*"]})
    faulty.set_faults(0.0)
    assert outcome["failed"] is True
    actions = {r["namespace"]: r["action"] for r in outcome["results"]}
    assert actions == {**dict.fromkeys(stale, "updated"), **dict.fromkeys(fresh, "failed")}
    message = outcome["msg"]
    assert "3 of 8 objects failed" in message
    for namespace in fresh:
        assert f"Sidecar {namespace}/default" in message
    changed_part = message.split("Changed before the failure:")[1]
    assert all(f"Sidecar {namespace}/default" in changed_part for namespace in stale)
    assert not any(namespace in changed_part for namespace in fresh)
    live = sidecars(faulty)
    assert live["team-0000"]["spec"]["egress"][0]["hosts"][-1] == "shared/*"
    assert not set(fresh) & set(live)


@pytest.mark.parametrize("parallelism", [1, 4])
def test_a_batch_stops_once_the_server_stops_answering(kubeapi_factory, parallelism):
    server = kubeapi_factory()
    core = client.CoreV1Api(config.new_client_from_config(str(server.kubeconfig)))
    namespaces = [f"gone-{index:02d}" for index in range(30)]
    for namespace in namespaces:
        core.create_namespace({"metadata": {"name": namespace}})
    server.reset_stats()
    # Every create has its connection reset: the server takes the request and never answers.
    server.set_faults(1.0, faults=["reset"], verbs=["create"])
    outcome = call_module(sidecar_scope.main, {"kubeconfig": str(server.kubeconfig),
                                               "namespaces": namespaces, "parallelism": parallelism})
    creates = server.stats()["requests"]["by_verb"]["create"]
    server.set_faults(0.0)
    assert outcome["failed"] is True
    failed = [r for r in outcome["results"] if r["action"] == "failed"]
    not_attempted = [r for r in outcome["results"] if r["action"] == "skipped"]
    assert 1 <= len(failed) <= parallelism
    assert len(failed) + len(not_attempted) == len(namespaces)
    assert all(r["reason"] == "not attempted: the API server stopped answering (it would have been "
                              "created)" for r in not_attempted)
    # Only the writes already in flight spent their retries (all of them, not one per object).
    assert creates <= parallelism * kube.MAX_ATTEMPTS
    message = outcome["msg"]
    assert message.startswith(f"Cannot reach the Kubernetes API server {server.url}: Connection reset by "
                              "peer. Point meshtune at"), message
    assert f"{len(failed)} of 30 objects failed" in message
    assert f"{len(not_attempted)} not attempted, because the API server stopped answering: " \
           f"Sidecar {not_attempted[0]['namespace']}/default" in message
    assert "Changed before the failure: none." in message
    assert sidecars(server) == {}

    assert call_module(sidecar_scope.main, {"kubeconfig": str(server.kubeconfig),
                                            "namespaces": namespaces})["summary"]["created"] == 30
