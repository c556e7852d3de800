"""rate_limit through injected API faults: a batch converges, and a batch that still fails says
exactly what changed (as tests/functional/test_fault_convergence.py shows for the other modules)."""

from __future__ import annotations

import pytest
from kubernetes import client, config

from ansible_collections.meshtune.mesh.plugins.modules import rate_limit
from tests.support.module_harness import call_module

BATCH = 300
NAMESPACE = "limits"


@pytest.fixture(scope="module")
def faulty(kubeapi_factory_module):
    server = kubeapi_factory_module()
    core = client.CoreV1Api(config.new_client_from_config(str(server.kubeconfig)))
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    return server


def limits(count: int, rate: int) -> list[dict]:
    return [{"name": f"web-{index:03d}", "workload_selector": {"app": f"web-{index:03d}"},
             "requests_per_unit": rate} for index in range(count)]


def live_rates(server) -> dict[str, int]:
    api = client.CustomObjectsApi(config.new_client_from_config(str(server.kubeconfig)))
    items = api.list_namespaced_custom_object("networking.istio.io", "v1alpha3", NAMESPACE,
                                              "envoyfilters")["items"]
    return {item["metadata"]["name"]: item["spec"]["configPatches"][0]["patch"]["value"]["typed_config"][
        "token_bucket"]["tokens_per_fill"] for item in items}


def test_a_batch_converges_through_10_percent_faults(faulty):
    args = {"kubeconfig": str(faulty.kubeconfig), "namespace": NAMESPACE, "limits": limits(BATCH, 50),
            "parallelism": 16}
    faulty.set_faults(0.10, faults=["409", "429", "500", "reset"], seed=13)
    first = call_module(rate_limit.main, args)
    injected = faulty.stats()["faults"]["injected"]
    faulty.set_faults(0.0)
    assert first.get("failed") is not True, first.get("msg")
    assert first["summary"]["created"] == BATCH
    assert first["retries"] > 0
    assert min(injected.values()) > 0, injected
    assert live_rates(faulty) == {limit["name"]: 50 for limit in args["limits"]}

    faulty.reset_stats()
    second = call_module(rate_limit.main, args)
    assert second["changed"] is False and second["summary"]["unchanged"] == BATCH
    verbs = faulty.stats()["requests"]["by_verb"]
    assert sum(verbs.get(verb, 0) for verb in ("create", "update", "patch", "delete")) == 0


def test_a_batch_that_still_fails_names_what_changed(faulty):
    existing = [limit["name"] for limit in limits(3, 50)]
    args = {"kubeconfig": str(faulty.kubeconfig), "namespace": NAMESPACE,
            "limits": [*limits(3, 70), *({"name": f"new-{index}", "requests_per_unit": 70}
                                         for index in range(2))]}
    faulty.set_faults(1.0, faults=["500"], verbs=["create"])
    outcome = call_module(rate_limit.main, args)
    faulty.set_faults(0.0)
    assert outcome["failed"] is True
    actions = {r["name"]: r["action"] for r in outcome["results"]}
    assert actions == {**dict.fromkeys(existing, "updated"), "new-0": "failed", "new-1": "failed"}
    message = outcome["msg"]
    assert "2 of 5 objects failed" in message
    changed_part = message.split("Changed before the failure:")[1]
    assert all(f"EnvoyFilter {NAMESPACE}/{name}" in changed_part for name in existing)
    assert "new-" not in changed_part
    rates = live_rates(faulty)
    assert [rates[name] for name in existing] == [70] * 3
    assert "new-0" not in rates
