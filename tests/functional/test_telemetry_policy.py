"""meshtune.mesh.telemetry_policy against the test API server (Istio's Telemetry schema)."""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.meshtune.mesh.plugins.modules import telemetry_policy
from tests.support.ansible_runner import run_module
from tests.support.module_harness import call_module

MODULE = "meshtune.mesh.telemetry_policy"
ROOT = "istio-system"
RESOURCE = "telemetries.telemetry.istio.io"

MESH_DEFAULT = {"name": "mesh-default",
                "access_logging": {"providers": ["envoy"], "filter": "response.code >= 400"},
                "tracing": {"sampling": 1.0}}
CARDINALITY = {"name": "cardinality",
               "metrics": {"reporting_interval": "30s", "overrides": [
                   {"remove_tags": ["request_protocol", "destination_canonical_revision"]},
                   {"metric": "REQUEST_DURATION", "mode": "CLIENT", "disabled": True}]}}
QUIET = {"name": "fortio-quiet", "workload_selector": {"app": "fortio"},
         "access_logging": {"enabled": False, "mode": "SERVER"},
         "tracing": {"sampling": 0.0, "disable_span_reporting": True, "providers": ["zipkin"]}}


def expected_spec(policy: dict) -> dict:
    """The Telemetry spec for the module's options, built from the inputs."""
    spec = {}
    if "workload_selector" in policy:
        spec["selector"] = {"matchLabels": policy["workload_selector"]}
    logging = policy.get("access_logging")
    if logging is not None:
        entry = {}
        if logging.get("enabled") is False:
            entry["disabled"] = True
        if "filter" in logging:
            entry["filter"] = {"expression": logging["filter"]}
        if "providers" in logging:
            entry["providers"] = [{"name": name} for name in logging["providers"]]
        if "mode" in logging:
            entry["match"] = {"mode": logging["mode"]}
        spec["accessLogging"] = [entry]
    tracing = policy.get("tracing")
    if tracing is not None:
        entry = {"randomSamplingPercentage": tracing["sampling"]}
        if "disable_span_reporting" in tracing:
            entry["disableSpanReporting"] = tracing["disable_span_reporting"]
        if "providers" in tracing:
            entry["providers"] = [{"name": name} for name in tracing["providers"]]
        spec["tracing"] = [entry]
    metrics = policy.get("metrics")
    if metrics is not None:
        overrides = []
        for override in metrics["overrides"]:
            match = {"metric": override.get("metric", "ALL_METRICS"),
                     **({"mode": override["mode"]} if "mode" in override else {})}
            entry = {"match": match}
            if override.get("disabled"):
                entry["disabled"] = True
            if "remove_tags" in override:
                entry["tagOverrides"] = {tag: {"operation": "REMOVE"} for tag in override["remove_tags"]}
            overrides.append(entry)
        spec["metrics"] = [{"overrides": overrides, "reportingInterval": metrics["reporting_interval"]}]
    return spec


@pytest.fixture(scope="module")
def cluster(kubeapi):
    for namespace in (ROOT, "loadtest"):
        kubeapi.kubectl("create", "namespace", namespace)
    return kubeapi


def writes(stats: dict) -> int:
    verbs = stats["requests"]["by_verb"]
    return sum(verbs.get(v, 0) for v in ("create", "update", "patch", "delete"))


def live(cluster, name: str, namespace: str = ROOT) -> dict:
    return json.loads(cluster.kubectl("get", RESOURCE, name, "-n", namespace, "-o", "json").stdout)


def args_for(cluster, namespace, *policies, **extra) -> dict:
    return {"kubeconfig": str(cluster.kubeconfig), "namespace": namespace,
            "policies": copy.deepcopy(list(policies)), **extra}


def test_policies_are_written_as_valid_telemetry_then_left_alone(cluster, tmp_path):
    mesh = args_for(cluster, ROOT, MESH_DEFAULT)
    first = run_module(tmp_path, MODULE, mesh)
    assert first.get("failed") is not True, first.get("msg")
    assert first["api_version"] == "telemetry.istio.io/v1"
    assert first["summary"]["created"] == 1
    assert live(cluster, "mesh-default")["spec"] == expected_spec(MESH_DEFAULT)

    workloads = args_for(cluster, "loadtest", CARDINALITY, QUIET)
    assert call_module(telemetry_policy.main, workloads)["summary"]["created"] == 2
    for policy in (CARDINALITY, QUIET):
        stored = live(cluster, policy["name"], "loadtest")
        assert stored["spec"] == expected_spec(policy), policy["name"]
        assert stored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "meshtune"

    cluster.reset_stats()
    assert run_module(tmp_path, MODULE, mesh)["changed"] is False
    again = call_module(telemetry_policy.main, workloads)
    assert again["changed"] is False
    assert again["summary"]["unchanged"] == 2
    assert writes(cluster.stats()) == 0


def test_check_mode_writes_nothing_and_diff_shows_the_change(cluster, tmp_path):
    everything = copy.deepcopy(MESH_DEFAULT)
    del everything["access_logging"]["filter"]
    everything["tracing"]["sampling"] = 10.0
    args = args_for(cluster, ROOT, everything)
    cluster.reset_stats()
    planned = run_module(tmp_path, MODULE, args, "--check", "--diff")
    assert planned["summary"]["updated"] == 1, planned
    assert writes(cluster.stats()) == 0
    [diff] = planned["diff"]
    assert diff["before"]["spec"] == expected_spec(MESH_DEFAULT)
    assert diff["after"]["spec"] == expected_spec(everything)
    assert live(cluster, "mesh-default")["spec"] == expected_spec(MESH_DEFAULT), "check mode changed it"

    applied = run_module(tmp_path, MODULE, args, "--diff")
    assert applied["summary"]["updated"] == 1
    assert live(cluster, "mesh-default")["spec"] == expected_spec(everything)
    restored = call_module(telemetry_policy.main, args_for(cluster, ROOT, MESH_DEFAULT))
    assert restored["summary"]["updated"] == 1


def test_a_filter_that_is_not_cel_fails_before_any_request(cluster):
    broken = copy.deepcopy(MESH_DEFAULT)
    broken["access_logging"]["filter"] = "response.code >= 400 &&"
    cluster.reset_stats()
    outcome = call_module(telemetry_policy.main, args_for(cluster, ROOT, broken))
    assert outcome["failed"] is True
    assert outcome["msg"].startswith("Invalid options (nothing was changed): "
                                     "policies[0].access_logging.filter: expected a CEL expression")
    assert cluster.stats()["requests"]["total"] == 0


def test_two_namespace_wide_policies_are_refused(cluster):
    cluster.reset_stats()
    outcome = call_module(telemetry_policy.main, args_for(cluster, "loadtest", CARDINALITY,
                                                          {**MESH_DEFAULT, "name": "second"}))
    assert outcome["failed"] is True
    assert "policies[1].workload_selector: expected a workload selector: policies[0] already covers the " \
           "whole namespace" in outcome["msg"]
    assert cluster.stats()["requests"]["total"] == 0


def test_absent_deletes_and_a_second_run_writes_nothing(cluster):
    args = args_for(cluster, "loadtest", {"name": "fortio-quiet"}, {"name": "never-created"}, state="absent")
    removed = call_module(telemetry_policy.main, args)
    assert [(r["name"], r["action"]) for r in removed["results"]] == [
        ("fortio-quiet", "deleted"), ("never-created", "unchanged")]
    listed = json.loads(cluster.kubectl("get", RESOURCE, "-n", "loadtest", "-o", "json").stdout)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["cardinality"]
    cluster.reset_stats()
    assert call_module(telemetry_policy.main, args)["changed"] is False
    assert writes(cluster.stats()) == 0


def test_v1alpha1_is_used_where_the_cluster_serves_only_that(kubeapi_factory):
    server = kubeapi_factory("--disable", "telemetry.istio.io/v1")
    server.kubectl("create", "namespace", ROOT)
    outcome = call_module(telemetry_policy.main, args_for(server, ROOT, MESH_DEFAULT))
    assert outcome.get("failed") is not True, outcome.get("msg")
    assert outcome["api_version"] == "telemetry.istio.io/v1alpha1"
    stored = json.loads(server.kubectl("get", "telemetries.v1alpha1.telemetry.istio.io", "mesh-default",
                                       "-n", ROOT, "-o", "json").stdout)
    assert stored["spec"] == expected_spec(MESH_DEFAULT)


def test_a_cluster_without_the_telemetry_api_fails_naming_it(kubeapi_factory):
    server = kubeapi_factory("--disable", "telemetry.istio.io/v1,telemetry.istio.io/v1alpha1")
    server.kubectl("create", "namespace", ROOT)
    server.reset_stats()
    outcome = call_module(telemetry_policy.main, args_for(server, ROOT, MESH_DEFAULT))
    assert outcome["failed"] is True
    assert outcome["msg"] == ("The cluster serves no telemetry.istio.io Telemetry API (v1, v1alpha1): "
                              "is Istio installed?")
    assert writes(server.stats()) == 0
