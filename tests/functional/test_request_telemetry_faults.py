"""Reliability of virtual_service and telemetry_policy: batches converge through injected API
faults, and a batch that still fails says exactly what changed."""

from __future__ import annotations

import pytest
from kubernetes import client, config

from ansible_collections.meshtune.mesh.plugins.modules import (
    destination_rule,
    telemetry_policy,
    virtual_service,
)
from tests.support.module_harness import call_module

BATCH = 200
NAMESPACE = "shop"


@pytest.fixture(scope="module")
def faulty(kubeapi_factory_module):
    server = kubeapi_factory_module()
    server.kubectl("create", "namespace", NAMESPACE)
    subsets = [{"name": version, "labels": {"version": version}} for version in ("v1", "v2")]
    rules = [{"name": f"svc-{index:03d}", "host": f"svc-{index:03d}", "subsets": subsets}
             for index in range(BATCH)]
    created = call_module(destination_rule.main, {"kubeconfig": str(server.kubeconfig),
                                                  "namespace": NAMESPACE, "rules": rules})
    assert created["summary"]["created"] == BATCH, created.get("msg")
    return server


def services(count=BATCH, timeout="2s"):
    return [{"name": f"svc-{index:03d}", "hosts": [f"svc-{index:03d}"],
             "http": [{"timeout": timeout, "retries": {"attempts": 2, "per_try_timeout": "500ms"},
                       "route": [{"host": f"svc-{index:03d}", "subset": "v1", "weight": 90},
                                 {"host": f"svc-{index:03d}", "subset": "v2", "weight": 10}]}]}
            for index in range(count)]


def policies(count=BATCH):
    return [{"name": f"team-{index:03d}", "workload_selector": {"app": f"team-{index:03d}"},
             "access_logging": {"providers": ["envoy"], "filter": "response.code >= 500"},
             "tracing": {"sampling": 1.0}} for index in range(count)]


def live(server, group, version, plural):
    api = client.CustomObjectsApi(config.new_client_from_config(str(server.kubeconfig)))
    items = api.list_namespaced_custom_object(group, version, NAMESPACE, plural)["items"]
    return {item["metadata"]["name"]: item for item in items}


@pytest.mark.parametrize(("main", "key", "items", "resource"), [
    (virtual_service.main, "services", services, ("networking.istio.io", "v1", "virtualservices")),
    (telemetry_policy.main, "policies", policies, ("telemetry.istio.io", "v1", "telemetries")),
], ids=["virtual_service", "telemetry_policy"])
def test_a_batch_converges_through_10_percent_faults(faulty, main, key, items, resource):
    args = {"kubeconfig": str(faulty.kubeconfig), "namespace": NAMESPACE, key: items(), "parallelism": 16}
    faulty.set_faults(0.10, faults=["409", "429", "500", "reset"], seed=13)
    first = call_module(main, args)
    injected = faulty.stats()["faults"]["injected"]
    faulty.set_faults(0.0)
    assert first.get("failed") is not True, first.get("msg")
    assert first["summary"]["created"] == BATCH
    assert first["retries"] > 0
    assert min(injected.values()) > 0, injected
    assert set(live(faulty, *resource)) == {item["name"] for item in items()}

    faulty.set_faults(0.10, faults=["429", "500", "reset"], seed=14)
    second = call_module(main, args)
    faulty.set_faults(0.0)
    assert second.get("failed") is not True, second.get("msg")
    assert second["changed"] is False
    assert second["summary"]["unchanged"] == BATCH


def test_a_batch_that_still_fails_names_what_changed(faulty):
    slower = services(count=5, timeout="3s")
    fresh = [{"name": f"late-{letter}", "hosts": [f"late-{letter}"],
              "http": [{"route": [{"host": "svc-000"}]}]} for letter in "abc"]
    faulty.set_faults(1.0, faults=["500"], verbs=["create"])
    outcome = call_module(virtual_service.main, {"kubeconfig": str(faulty.kubeconfig), "namespace": NAMESPACE,
                                                 "services": slower + fresh})
    faulty.set_faults(0.0)
    assert outcome["failed"] is True
    actions = {r["name"]: r["action"] for r in outcome["results"]}
    assert actions == {**{s["name"]: "updated" for s in slower}, **{s["name"]: "failed" for s in fresh}}
    message = outcome["msg"]
    assert f"{len(fresh)} of {len(slower) + len(fresh)} objects failed" in message
    changed_part = message.split("Changed before the failure:")[1]
    assert all(f"VirtualService {NAMESPACE}/{s['name']}" in changed_part for s in slower)
    assert not any(s["name"] in changed_part for s in fresh)
    stored = live(faulty, "networking.istio.io", "v1", "virtualservices")
    assert stored["svc-000"]["spec"]["http"][0]["timeout"] == "3s"
    assert not {s["name"] for s in fresh} & set(stored)
