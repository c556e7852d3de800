"""meshtune.mesh.rollout_status, the upgrade gate's one batched wait, over 1,000 workloads in 20
namespaces on the test API server. The server runs with `--rollout-delay -1` (no rollout finishes
by itself); the test writes a finished rollout's status to all workloads but a chosen few."""

from __future__ import annotations

import math

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import LIST_PAGE
from ansible_collections.meshtune.mesh.plugins.modules.rollout_status import main
from tests.support import workload_fleet
from tests.support.module_harness import call_module

pytestmark = [pytest.mark.integration]

NAMESPACES = 20
PER_NAMESPACE = {"Deployment": 40, "StatefulSet": 5, "DaemonSet": 5}
NOT_READY = {("Deployment", "team-03", "deployment-7"), ("Deployment", "team-03", "deployment-8"),
             ("StatefulSet", "team-11", "statefulset-2"), ("DaemonSet", "team-19", "daemonset-0")}
WORKLOADS = workload_fleet.plan(NAMESPACES, PER_NAMESPACE)
ALL = [f"team-{n:02d}" for n in range(NAMESPACES)]


@pytest.fixture(scope="module")
def fleet(kubeapi_factory_module):
    server = kubeapi_factory_module("--rollout-delay", "-1")
    workload_fleet.create(server, WORKLOADS, NOT_READY)
    return server


def list_calls(server) -> int:
    return sum(verbs.get("list", 0) for verbs in server.stats()["requests"]["by_resource"].values())


def gate(server, **options):
    server.reset_stats()
    result = call_module(main, {"kubeconfig": str(server.kubeconfig), **options})
    return result, server.stats()["requests"]


def first_round_calls() -> int:
    """One cluster-wide list per kind (20 namespaces), in pages of LIST_PAGE."""
    return sum(math.ceil(count * NAMESPACES / LIST_PAGE) for count in PER_NAMESPACE.values())


def test_the_gate_names_the_workloads_that_are_not_ready(fleet):
    result, requests = gate(fleet, namespaces=ALL, timeout=2)
    assert result["failed"] is True
    named = {(e["kind"], e["namespace"], e["name"]) for e in result["not_ready"]}
    assert named == NOT_READY
    assert {e["state"] for e in result["not_ready"]} == {"pending"}
    assert (result["workloads"], result["ready"]) == (len(WORKLOADS), len(WORKLOADS) - len(NOT_READY))
    lines = result["msg"].splitlines()
    namespaces = ", ".join(ALL)
    assert lines[0] == f"{len(NOT_READY)} of {len(WORKLOADS)} workloads in {namespaces} not ready after 2 s:"
    header = [cell.strip() for cell in lines[1].split(" | ")]
    assert header == ["namespace", "kind", "name", "state", "reason"]
    rows = [tuple(cell.strip() for cell in line.split(" | "))[:3] for line in lines[3:]]
    assert rows == sorted((ns, kind, name) for kind, ns, name in NOT_READY)
    # Later rounds list only the (namespace, kind) groups that still hold unfinished workloads.
    groups = len({(kind, ns) for kind, ns, _name in NOT_READY})
    assert result["rounds"] >= 2
    expected = first_round_calls() + (result["rounds"] - 1) * groups
    assert requests["by_verb"] == {"list": expected}, requests
    assert requests["total"] <= NAMESPACES * len(PER_NAMESPACE) + result["rounds"] * groups


def test_ready_namespaces_pass_after_one_round(fleet):
    ready = [ns for ns in ALL if ns not in {ns for _kind, ns, _name in NOT_READY}]
    result, requests = gate(fleet, namespaces=ready, timeout=30)
    assert "failed" not in result, result.get("msg")
    assert (result["workloads"], result["ready"], result["not_ready"]) == (
        sum(PER_NAMESPACE.values()) * len(ready), sum(PER_NAMESPACE.values()) * len(ready), [])
    assert result["rounds"] == 1
    assert requests["by_verb"] == {"list": first_round_calls()}


def test_a_few_namespaces_are_listed_one_by_one(fleet):
    result, requests = gate(fleet, namespaces=["team-03", "team-04"], kinds=["Deployment"], timeout=0)
    assert result["failed"] is True
    assert [e["name"] for e in result["not_ready"]] == ["deployment-7", "deployment-8"]
    assert requests["by_verb"] == {"list": 2}


def test_check_mode_reads_once_and_warns(fleet):
    fleet.reset_stats()
    result = call_module(main, {"kubeconfig": str(fleet.kubeconfig), "namespaces": ["team-19"],
                                "timeout": 600}, check_mode=True)
    assert "failed" not in result
    assert [e["name"] for e in result["not_ready"]] == ["daemonset-0"]
    assert "without waiting (check mode)" in str(result["warnings"])
    assert fleet.stats()["requests"]["by_verb"] == {"list": 3}


@pytest.mark.parametrize(("options", "expected"), [
    ({"namespaces": ["Shop"]}, "namespaces[0]"),
    ({"namespaces": []}, "namespaces: expected at least one namespace"),
    ({"namespaces": ["shop"], "timeout": -1}, "timeout: expected a number of seconds from 0 to 86400"),
    ({"namespaces": ["shop"], "label_selector": "app in (a"}, "label_selector"),
    ({"namespaces": ["shop"], "kinds": ["Deployment", "Deployment"]}, "kinds"),
])
def test_bad_options_fail_before_any_request(fleet, options, expected):
    result, requests = gate(fleet, **options)
    assert result["failed"] is True
    assert result["msg"].startswith("Invalid options (nothing was changed): ")
    assert expected in result["msg"]
    assert requests["total"] == 0
