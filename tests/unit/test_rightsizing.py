"""module_utils.rightsizing: pod owners, the numbers of one recommendation, options, queries."""

from __future__ import annotations

import math

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils.rightsizing import (
    QUERY_COUNT,
    PodUsage,
    build_queries,
    owners_from_api,
    owners_from_metrics,
    recommend,
    rollback_entries,
    validate,
)

MIB = 1048576
PARAMS = {
    "namespaces": ["shop"], "kinds": ["Deployment", "StatefulSet", "DaemonSet"], "names": None,
    "label_selector": None, "metric_filter": None, "prometheus_url": "http://127.0.0.1:9090",
    "prometheus_timeout": 30.0, "prometheus_bearer_token": None, "prometheus_username": None,
    "prometheus_password": None, "prometheus_ca_cert": None, "prometheus_client_cert": None,
    "prometheus_client_key": None, "prometheus_validate_certs": True, "prometheus_headers": None,
    "window": "7d", "min_history": "24h", "step": "1m", "rate_interval": "5m",
    "cpu_percentile": 95.0, "cpu_headroom": 0.0, "memory_headroom": 0.15, "cpu_limit": "none",
    "memory_limit": 1.0, "min_cpu": "10m", "min_memory": "64Mi", "max_step_down": 0.5,
    "leak_growth": 0.2, "istio_namespace": "istio-system", "injector_configmap": "istio-sidecar-injector",
    "mesh_configmap": "istio", "parallelism": 8, "wait_timeout": 300, "state": "present",
}
CURRENT = {"cpu_request": "100m", "cpu_limit": "2000m", "memory_request": "128Mi",
           "memory_limit": "1024Mi", "concurrency": 2}


def deployment(name="web", replicas=2):
    return {"metadata": {"namespace": "shop", "name": name}, "spec": {"replicas": replicas}}


def flat_pod(cpu, memory, hours=48.0):
    return PodUsage(cpu=cpu, memory=memory, growth=0.0, recent_growth=0.0, first=0.0, last=hours * 3600)


def owner(kind, name):
    return {"metadata": {"ownerReferences": [{"kind": kind, "name": name, "controller": True}]}}


def test_pods_map_through_live_owners_kept_replicasets_and_controller_names():
    workloads = [("Deployment", {"metadata": {"namespace": "shop", "name": "web"}}),
                 ("Deployment", {"metadata": {"namespace": "shop", "name": "web-api"}}),
                 ("StatefulSet", {"metadata": {"namespace": "shop", "name": "db"}}),
                 ("DaemonSet", {"metadata": {"namespace": "shop", "name": "agent"}})]
    replicasets = {("shop", "web-5d8f7c9b6"): owner("Deployment", "web"),
                   ("shop", "web-84f6d5c7b"): owner("Deployment", "web")}
    live = {("shop", "web-84f6d5c7b-xxxxx"): owner("ReplicaSet", "web-84f6d5c7b")}
    pods = [("shop", "web-84f6d5c7b-xxxxx"),      # live pod -> its ReplicaSet -> Deployment
            ("shop", "web-5d8f7c9b6-gone1"),      # gone, its ReplicaSet kept
            ("shop", "web-api-7c9d8b6f4-q2w3e"),  # neither: the name a Deployment gives
            ("shop", "db-0"), ("shop", "db-12"), ("shop", "agent-x7k2p"),
            ("shop", "job-28u7k-abcde"), ("shop", "db-x")]
    owners = owners_from_api(pods, live, replicasets, workloads)
    assert owners == {("shop", "web-84f6d5c7b-xxxxx"): ("Deployment", "web"),
                      ("shop", "web-5d8f7c9b6-gone1"): ("Deployment", "web"),
                      ("shop", "web-api-7c9d8b6f4-q2w3e"): ("Deployment", "web-api"),
                      ("shop", "db-0"): ("StatefulSet", "db"), ("shop", "db-12"): ("StatefulSet", "db"),
                      ("shop", "agent-x7k2p"): ("DaemonSet", "agent")}


def test_kube_state_metrics_owners_follow_replicasets_to_deployments():
    def sample(**labels):
        return {"metric": {"namespace": "shop", **labels}, "value": 1.0}

    answers = {
        "replicaset_owner": [sample(replicaset="web-1", owner_kind="Deployment", owner_name="web")],
        "pod_owner": [sample(pod="web-1-a", owner_kind="ReplicaSet", owner_name="web-1"),
                      sample(pod="db-0", owner_kind="StatefulSet", owner_name="db"),
                      sample(pod="cron-1", owner_kind="Job", owner_name="cron")]}
    assert owners_from_metrics(answers) == {("shop", "web-1-a"): ("Deployment", "web"),
                                            ("shop", "db-0"): ("StatefulSet", "db")}


def test_cpu_from_the_busiest_pod_rounded_up_and_memory_with_headroom():
    params = {**PARAMS, "cpu_headroom": 0.1}
    pods = [flat_pod(0.0412, 70 * MIB), flat_pod(0.0731, 90.2 * MIB)]
    entry = recommend("Deployment", deployment(), pods, CURRENT, [], params)
    rec = entry["recommended"]
    assert rec["cpu_request"] == f"{math.ceil(0.0731 * 1.1 * 1000 / 5) * 5}m"
    assert rec["memory_request"] == f"{math.ceil(90.2 * 1.15)}Mi" == rec["memory_limit"]
    assert rec["cpu_limit"] == "2000m" and rec["concurrency"] == 1
    assert entry["action"] == "resize" and entry["replicas"] == 2


def test_cut_capped_floors_and_raises_uncapped():
    small = recommend("Deployment", deployment(), [flat_pod(0.001, 10 * MIB)],
                      {**CURRENT, "cpu_request": "1", "memory_request": "1Gi"}, [], PARAMS)
    assert small["recommended"]["cpu_request"] == "500m"          # halved at most
    assert small["recommended"]["memory_request"] == "512Mi"
    floors = recommend("Deployment", deployment(), [flat_pod(0.001, 10 * MIB)], CURRENT, [],
                       {**PARAMS, "max_step_down": 1.0})
    assert floors["recommended"]["cpu_request"] == "10m"
    assert floors["recommended"]["memory_request"] == "64Mi"
    busy = recommend("Deployment", deployment(), [flat_pod(1.5, 900 * MIB)], CURRENT, [], PARAMS)
    assert busy["recommended"]["cpu_request"] == "1500m"           # raised in one run
    assert busy["recommended"]["concurrency"] == 2                 # ceil(1.5), under the 2-core limit


@pytest.mark.parametrize(("cpu", "ratio", "threads"), [(1.2, "2", 2), (3.4, "1", 3), (0.3, "1", 1)])
def test_concurrency_never_above_the_limit_in_whole_cores(cpu, ratio, threads):
    entry = recommend("Deployment", deployment(), [flat_pod(cpu, 100 * MIB)], CURRENT, [],
                      {**PARAMS, "cpu_limit": ratio, "max_step_down": 1.0})
    assert entry["recommended"]["concurrency"] == threads


def test_a_leak_suspect_keeps_its_memory_and_a_short_history_is_skipped():
    leaking = PodUsage(cpu=0.05, memory=200 * MIB, growth=140 * MIB / (48 * 3600), recent_growth=1.0,
                       first=0.0, last=48 * 3600)
    entry = recommend("Deployment", deployment(), [leaking], CURRENT, [], PARAMS)
    assert entry["leak_suspect"] is True
    assert entry["recommended"]["memory_request"] == "128Mi"
    assert entry["recommended"]["memory_limit"] == "1024Mi"
    young = recommend("Deployment", deployment(), [flat_pod(0.05, 80 * MIB, hours=5)], CURRENT, [],
                      PARAMS)
    assert young["action"] == "skipped" and "min_history" in young["reason"]


def test_rollback_removes_new_annotations_before_restoring_old_ones():
    entry = recommend("Deployment", deployment(), [flat_pod(0.3, 100 * MIB)],
                      {**CURRENT, "cpu_limit": "200m"}, ["cpu_limit"], PARAMS)
    absent, present = rollback_entries([entry], PARAMS)
    assert absent["state"] == "absent" and present["state"] == "present"
    assert present["workloads"] == [{"kind": "Deployment", "namespace": "shop", "name": "web",
                                     "cpu_limit": "200m"}]
    assert "cpu_limit" not in absent["workloads"][0] and "cpu_request" in absent["workloads"][0]


def test_queries_are_a_fixed_set_for_any_number_of_namespaces():
    few = build_queries(PARAMS)
    many = build_queries({**PARAMS, "namespaces": [f"team-{i}" for i in range(300)],
                          "metric_filter": 'cluster="eu-1"'})
    assert len(few) == len(many) == QUERY_COUNT
    assert 'namespace=~"team-0|team-1|' in many["cpu"] and ',cluster="eu-1"}' in many["cpu"]
    assert "quantile_over_time(0.95," in few["cpu"] and "[604800s:60s]" in few["cpu"]
    recorded = build_queries({**PARAMS, "cpu_recording_rule": "meshtune:istio_proxy_cpu_usage:rate5m"})
    assert 'meshtune:istio_proxy_cpu_usage:rate5m{namespace=~"shop"}[604800s]))' in recorded["cpu"]
    assert "rate(" not in recorded["cpu"] and len(recorded) == QUERY_COUNT


@pytest.mark.parametrize(("change", "option"), [
    ({"cpu_percentile": 0.5}, "cpu_percentile"), ({"cpu_percentile": 101}, "cpu_percentile"),
    ({"cpu_headroom": -0.01}, "cpu_headroom"), ({"window": "1m"}, "window"),
    ({"min_history": "8d"}, "min_history"), ({"cpu_limit": "half"}, "cpu_limit"),
    ({"memory_limit": 0.5}, "memory_limit"), ({"max_step_down": -0.1}, "max_step_down"),
    ({"leak_growth": 0}, "leak_growth"), ({"min_cpu": "-5m"}, "min_cpu"),
    ({"metric_filter": "cluster=eu"}, "metric_filter"), ({"prometheus_url": "ftp://x"}, "prometheus_url"),
    ({"namespaces": []}, "namespaces"), ({"step": "soon"}, "step"),
    ({"cpu_recording_rule": "rate(x[5m])"}, "cpu_recording_rule"),
    ({"prometheus_timeout": 0.0}, "prometheus_timeout"),
    ({"prometheus_ca_cert": "/nonexistent/ca.pem"}, "prometheus_ca_cert"),
])
def test_each_bad_option_is_named(change, option):
    message = validate({**PARAMS, **change})
    assert message is not None and message.startswith("Invalid options")
    assert option in message, message


def test_good_options_pass():
    assert validate(PARAMS) is None
    assert validate({**PARAMS, "cpu_limit": "2", "metric_filter": 'cluster="a",node!~"spot-.*"'}) is None
