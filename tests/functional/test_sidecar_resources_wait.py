"""meshtune.mesh.sidecar_resources with wait: true when some workloads fail: the updated ones are
still waited for, and the failure says how their rollouts ended."""

from __future__ import annotations

from tests.functional.test_sidecar_resources import PROXY_CONFIG, annotations, apply, namespace, workload
from tests.support.ansible_runner import run_module

MODULE = "meshtune.mesh.sidecar_resources"


def test_the_updated_workloads_are_waited_for_when_another_one_failed(kubeapi_factory, tmp_path):
    server = kubeapi_factory("--rollout-delay", "1")
    apply(server, namespace("shop"),
          workload("Deployment", "shop", "garbled", annotations={PROXY_CONFIG: "concurrency: [2"}),
          workload("Deployment", "shop", "web"), workload("StatefulSet", "shop", "db"))
    result = run_module(tmp_path, MODULE, {"kubeconfig": str(server.kubeconfig), "namespaces": ["shop"],
                                           "concurrency": 4, "wait": True, "wait_timeout": 60})
    assert result["failed"] is True
    entries = {entry["name"]: entry for entry in result["results"]}
    assert entries["garbled"]["action"] == "failed"
    assert "rollout" not in entries["garbled"]
    assert (entries["web"]["action"], entries["web"]["rollout"]) == ("updated", "complete")
    assert (entries["db"]["action"], entries["db"]["rollout"]) == ("updated", "complete")
    message = result["msg"]
    assert message.startswith("1 of 3 objects failed: Deployment shop/garbled:"), message
    assert message.endswith("The rollouts of the 2 updated workload(s) finished."), message
    assert annotations(server, "Deployment", "shop", "web") == {PROXY_CONFIG: "concurrency: 4\n"}


def test_unfinished_rollouts_are_named_after_the_failed_workloads(kubeapi_factory, tmp_path):
    server = kubeapi_factory("--rollout-delay", "-1")
    apply(server, namespace("shop"),
          workload("Deployment", "shop", "garbled", annotations={PROXY_CONFIG: "concurrency: [2"}),
          workload("Deployment", "shop", "web"))
    result = run_module(tmp_path, MODULE, {"kubeconfig": str(server.kubeconfig), "namespaces": ["shop"],
                                           "concurrency": 4, "wait": True, "wait_timeout": 2})
    assert result["failed"] is True
    message = result["msg"]
    assert message.startswith("1 of 2 objects failed: Deployment shop/garbled:"), message
    assert "Rollouts unfinished (not rolled out after 2 s: Deployment shop/web)" in message
    assert result["pending_rollouts"] == ["Deployment shop/web"]
