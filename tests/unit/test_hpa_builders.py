"""HPA builders and validators (plugins/module_utils/hpa.py) and hpa_policy's argument spec."""

from __future__ import annotations

import copy

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.meshtune.mesh.plugins.module_utils.hpa import (
    check_metric,
    hpa_objects,
    v2_required_message,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption
from ansible_collections.meshtune.mesh.plugins.modules.hpa_policy import argument_spec, validate

WEB = {
    "target": {"kind": "Deployment", "name": "web", "api_version": "apps/v1"},
    "min_replicas": 3,
    "max_replicas": 30,
    "cpu_utilization": 70,
    "scale_up": {"stabilization_window_seconds": 0, "select_policy": "Max", "policies": [
        {"type": "Percent", "value": 100, "period_seconds": 15},
        {"type": "Pods", "value": 4, "period_seconds": 15}]},
    "scale_down": {"stabilization_window_seconds": 600, "select_policy": "Min", "policies": [
        {"type": "Percent", "value": 10, "period_seconds": 60}]},
}
RPS_METRIC = {"type": "Pods", "pods": {"metric": {"name": "istio_requests_per_second"},
                                       "target": {"type": "AverageValue", "averageValue": "100"}}}


def normalized(options: dict) -> dict:
    """Module parameters as Ansible hands them over: defaults applied, aliases resolved."""
    args = {"namespace": "shop", **options}
    result = ArgumentSpecValidator(argument_spec()).validate(args)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


# --------------------------------------------------------------------------- builders


def test_builds_the_exact_v2_object_with_camel_case_behavior():
    [hpa] = hpa_objects("v2", "shop", [WEB])
    assert hpa == {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 3,
            "maxReplicas": 30,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                    {"type": "Percent", "value": 100, "periodSeconds": 15},
                    {"type": "Pods", "value": 4, "periodSeconds": 15}]},
                "scaleDown": {"stabilizationWindowSeconds": 600, "selectPolicy": "Min", "policies": [
                    {"type": "Percent", "value": 10, "periodSeconds": 60}]},
            },
        },
    }


def test_metrics_are_cpu_then_memory_then_raw_metrics_in_order():
    policy = {"name": "api", "target": {"name": "checkout", "kind": "StatefulSet"},
              "max_replicas": 5, "memory_utilization": 80, "cpu_utilization": 60,
              "metrics": [RPS_METRIC]}
    [hpa] = hpa_objects("v2", "shop", [policy])
    assert hpa["metadata"]["name"] == "api"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                             "name": "checkout"}
    assert hpa["spec"]["minReplicas"] == 1
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource", "Resource", "Pods"]
    assert [m.get("resource", {}).get("name") for m in hpa["spec"]["metrics"][:2]] == ["cpu", "memory"]
    assert hpa["spec"]["metrics"][2] == RPS_METRIC
    assert "behavior" not in hpa["spec"]


def test_raw_metrics_are_copied_and_integer_quantities_become_strings():
    metric = {"type": "External", "external": {"metric": {"name": "queue_depth"},
                                               "target": {"type": "Value", "value": 30}}}
    original = copy.deepcopy(metric)
    [hpa] = hpa_objects("v2", "shop", [{"target": {"name": "worker"}, "max_replicas": 4,
                                        "metrics": [metric]}])
    assert hpa["spec"]["metrics"][0]["external"]["target"] == {"type": "Value", "value": "30"}
    assert metric == original, "the caller's options are not changed"


def test_only_the_directions_and_fields_asked_for_are_sent():
    policy = {**WEB, "scale_up": None,
              "scale_down": {"stabilization_window_seconds": 300, "select_policy": None,
                             "policies": None}}
    [hpa] = hpa_objects("v2", "shop", [policy])
    assert hpa["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 300}}
    empty = {**WEB, "scale_up": {"stabilization_window_seconds": None, "select_policy": None,
                                 "policies": None}, "scale_down": None}
    assert "behavior" not in hpa_objects("v2", "shop", [empty])[0]["spec"]


def test_absent_builds_names_only():
    objects = hpa_objects("v2", "shop", [{"name": "api"}, {"target": {"name": "web"}}], state="absent")
    assert objects == [
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
         "metadata": {"name": "api", "namespace": "shop"}},
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
         "metadata": {"name": "web", "namespace": "shop"}},
    ]


# --------------------------------------------------------------------------- argument spec


def test_v1_name_is_an_alias_of_cpu_utilization():
    params = normalized({"policies": [{"target": {"name": "web"}, "max_replicas": 4,
                                       "target_cpu_utilization_percentage": 65}]})
    policy = params["policies"][0]
    assert policy["cpu_utilization"] == 65
    assert hpa_objects("v2", "shop", params["policies"])[0]["spec"]["metrics"][0]["resource"] == {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 65}}


def test_argument_spec_applies_defaults_in_suboptions():
    params = normalized({"policies": [{"target": {"name": "web"}, "max_replicas": 4,
                                       "cpu_utilization": 50}]})
    policy = params["policies"][0]
    assert policy["target"] == {"kind": "Deployment", "name": "web", "api_version": "apps/v1"}
    assert policy["min_replicas"] == 1
    assert params["state"] == "present"
    assert validate(params) is None


@pytest.mark.parametrize(("policy", "expected"), [
    ({"target": {"name": "web"}, "max_replicas": 4, "cpu_utilization": 50, "minReplicas": 2},
     "minReplicas"),
    ({"target": {"name": "web"}, "max_replicas": 4, "cpu_utilization": 50,
      "scale_down": {"window": 60}}, "window"),
    ({"target": {"name": "web"}, "max_replicas": 4, "cpu_utilization": 50,
      "scale_up": {"select_policy": "Fastest"}}, "select_policy"),
    ({"target": {"name": "web"}, "max_replicas": 4, "cpu_utilization": 50,
      "scale_up": {"policies": [{"type": "Replicas", "value": 1, "period_seconds": 15}]}}, "type"),
    ({"target": {"name": "web"}, "max_replicas": 4, "cpu_utilization": 50,
      "scale_up": {"policies": [{"type": "Pods", "value": 1}]}}, "period_seconds"),
])
def test_argument_spec_rejects_unknown_keys_bad_choices_and_missing_fields(policy, expected):
    result = ArgumentSpecValidator(argument_spec()).validate({"namespace": "shop", "policies": [policy]})
    assert result.error_messages
    assert any(expected in message for message in result.error_messages), result.error_messages


# --------------------------------------------------------------------------- validation


def with_policy(**changes):
    policy = copy.deepcopy(WEB)
    policy.update(changes)
    return policy


BAD_POLICIES = [
    # (policies, option path the message must name)
    ([with_policy(min_replicas=0)], "policies[0].min_replicas"),
    ([with_policy(min_replicas=5, max_replicas=4)], "policies[0].max_replicas"),
    ([with_policy(max_replicas=None)], "policies[0].max_replicas"),
    ([with_policy(max_replicas=0)], "policies[0].max_replicas"),
    ([with_policy(cpu_utilization=0)], "policies[0].cpu_utilization"),
    ([with_policy(memory_utilization=-5)], "policies[0].memory_utilization"),
    ([with_policy(cpu_utilization=None)], "policies[0].metrics"),
    ([with_policy(target={"kind": "Deployment"})], "policies[0].target.name"),
    ([with_policy(target=None)], "policies[0].target.name"),
    ([with_policy(target={"name": "Web_App"})], "policies[0].target.name"),
    ([with_policy(name="Web")], "policies[0].name"),
    ([with_policy(target={"name": "web", "kind": "deployment"})], "policies[0].target.kind"),
    ([with_policy(target={"name": "web", "api_version": "apps"})], "policies[0].target.api_version"),
    ([WEB, with_policy(name="web", target={"name": "other"})], "policies[1].name"),
    ([WEB, with_policy(name="web-slow",
                       scale_down={"policies": [{"type": "Pods", "value": 1, "period_seconds": 0}]})],
     "policies[1].scale_down.policies[0].period_seconds"),
    ([with_policy(scale_down={"policies": [{"type": "Pods", "value": 1, "period_seconds": 1801}]})],
     "policies[0].scale_down.policies[0].period_seconds"),
    ([with_policy(scale_up={"policies": [{"type": "Percent", "value": 0, "period_seconds": 15}]})],
     "policies[0].scale_up.policies[0].value"),
    ([with_policy(scale_up={"policies": [{"type": "Percent", "value": None, "period_seconds": 15}]})],
     "policies[0].scale_up.policies[0].value"),
    ([with_policy(scale_down={"stabilization_window_seconds": 3601})],
     "policies[0].scale_down.stabilization_window_seconds"),
    ([with_policy(scale_up={"stabilization_window_seconds": -1})],
     "policies[0].scale_up.stabilization_window_seconds"),
    ([with_policy(scale_up={"select_policy": "Fastest"})], "policies[0].scale_up.select_policy"),
    ([with_policy(scale_up={"policies": []})], "policies[0].scale_up.policies"),
    ([with_policy(metrics=[{"pods": {}}])], "policies[0].metrics[0].type"),
    ([with_policy(metrics=[{"type": "Requests"}])], "policies[0].metrics[0].type"),
    ([with_policy(metrics=[{"type": "Pods", "resource": {"name": "cpu"}}])],
     "policies[0].metrics[0].resource"),
    ([with_policy(metrics=[{"type": "Pods"}])], "policies[0].metrics[0].pods"),
    ([with_policy(metrics=[RPS_METRIC, {"type": "Pods", "pods": {"target": {
        "type": "AverageValue", "averageValue": "1"}}}])], "policies[0].metrics[1].pods.metric.name"),
    ([with_policy(metrics=[{"type": "Pods", "pods": {"metric": {"name": "rps"},
                                                     "target": {"type": "Utilization",
                                                                "averageUtilization": 50}}}])],
     "policies[0].metrics[0].pods.target.type"),
    ([with_policy(metrics=[{"type": "External", "external": {"metric": {"name": "queue"},
                                                             "target": {"type": "Value",
                                                                        "value": "lots"}}}])],
     "policies[0].metrics[0].external.target.value"),
    ([with_policy(metrics=[{"type": "External", "external": {"metric": {"name": "queue"},
                                                             "target": {"type": "Value",
                                                                        "value": "0"}}}])],
     "policies[0].metrics[0].external.target.value"),
    ([with_policy(metrics=[{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 60}}}])], "policies[0].metrics[0].resource.name"),
    ([with_policy(metrics=[{"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "Utilization"}}}])], "policies[0].metrics[0].resource.target.averageUtilization"),
    ([with_policy(metrics=[{"type": "ContainerResource", "containerResource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}])],
     "policies[0].metrics[0].containerResource.container"),
    ([with_policy(metrics=[{"type": "Object", "object": {
        "metric": {"name": "requests"}, "target": {"type": "Value", "value": "10"}}}])],
     "policies[0].metrics[0].object.describedObject"),
    ([with_policy(metrics=[{"type": "Resource", "resource": {"name": "memory"}}])],
     "policies[0].metrics[0].resource.target"),
    ([], "policies"),
    # int32 fields beyond int32
    ([with_policy(max_replicas=2 ** 31)], "policies[0].max_replicas"),
    ([with_policy(min_replicas=2 ** 31)], "policies[0].min_replicas"),
    ([with_policy(cpu_utilization=2 ** 40)], "policies[0].cpu_utilization"),
    ([with_policy(memory_utilization=2 ** 31)], "policies[0].memory_utilization"),
    ([with_policy(scale_up={"policies": [{"type": "Pods", "value": 2 ** 31, "period_seconds": 15}]})],
     "policies[0].scale_up.policies[0].value"),
    ([with_policy(metrics=[{"type": "ContainerResource", "containerResource": {
        "name": "memory", "container": "app",
        "target": {"type": "Utilization", "averageUtilization": 2 ** 31}}}])],
     "policies[0].metrics[0].containerResource.target.averageUtilization"),
    # names exactly in their form
    ([with_policy(name="web\n")], "policies[0].name"),
    ([with_policy(target={"name": "web\n"})], "policies[0].target.name"),
    ([with_policy(target={"name": "web", "kind": "Deployment\n"})], "policies[0].target.kind"),
    ([with_policy(target={"name": "web", "api_version": "apps/v1\n"})],
     "policies[0].target.api_version"),
]

# Raw metrics the API server refuses (422) or stores as another value: each fails before any write.
RPS_TARGET = {"type": "AverageValue", "averageValue": "100"}
BAD_METRICS = [
    # fields MetricSpec does not declare, at every level
    ({"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": RPS_TARGET, "extra": 1}},
     "pods.extra"),
    ({"type": "Pods", "pods": {"metric": {"name": "rps", "labels": {"a": "b"}}, "target": RPS_TARGET}},
     "pods.metric.labels"),
    ({"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {**RPS_TARGET, "bogus": 1}}},
     "pods.target.bogus"),
    ({"type": "Resource", "resource": {"name": "memory", "container": "app", "target": {
        "type": "Utilization", "averageUtilization": 50}}}, "resource.container"),
    ({"type": "Object", "object": {"metric": {"name": "rps"}, "target": {"type": "Value", "value": "1"},
                                   "describedObject": {"kind": "Ingress", "name": "main",
                                                       "namespace": "shop"}}},
     "object.describedObject.namespace"),
    # malformed selectors
    ({"type": "External", "external": {"metric": {"name": "queue", "selector": {
        "matchLabels": {"a b": "c"}}}, "target": RPS_TARGET}}, "external.metric.selector.matchLabels.a b"),
    ({"type": "External", "external": {"metric": {"name": "queue", "selector": {
        "matchLabels": {"queue": "jobs\n"}}}, "target": RPS_TARGET}},
     "external.metric.selector.matchLabels.queue"),
    ({"type": "External", "external": {"metric": {"name": "queue", "selector": "queue=jobs"},
                                       "target": RPS_TARGET}}, "external.metric.selector"),
    ({"type": "External", "external": {"metric": {"name": "queue", "selector": {"matchExpressions": [
        {"key": "queue", "operator": "In"}]}}, "target": RPS_TARGET}},
     "external.metric.selector.matchExpressions[0].values"),
    ({"type": "External", "external": {"metric": {"name": "queue", "selector": {"matchExpressions": [
        {"key": "queue", "operator": "Equals", "values": ["a"]}]}}, "target": RPS_TARGET}},
     "external.metric.selector.matchExpressions[0].operator"),
    ({"type": "External", "external": {"metric": {"name": "queue", "selector": {"matchExpressions": [
        {"key": "queue", "operator": "Exists", "values": ["a"]}]}}, "target": RPS_TARGET}},
     "external.metric.selector.matchExpressions[0].values"),
    # names the API server refuses or a metrics adapter cannot look up
    ({"type": "Pods", "pods": {"metric": {"name": "a/b"}, "target": RPS_TARGET}}, "pods.metric.name"),
    ({"type": "Pods", "pods": {"metric": {"name": ".."}, "target": RPS_TARGET}}, "pods.metric.name"),
    ({"type": "Pods", "pods": {"metric": {"name": "rps\n"}, "target": RPS_TARGET}}, "pods.metric.name"),
    ({"type": "Pods", "pods": {"metric": {"name": 5}, "target": RPS_TARGET}}, "pods.metric.name"),
    ({"type": "Pods", "pods": {"metric": "rps", "target": RPS_TARGET}}, "pods.metric"),
    ({"type": "Object", "object": {"metric": {"name": "rps"}, "target": {"type": "Value", "value": "1"},
                                   "describedObject": {"kind": "Ingress", "name": "main/x"}}},
     "object.describedObject.name"),
    ({"type": "Object", "object": {"metric": {"name": "rps"}, "target": {"type": "Value", "value": "1"},
                                   "describedObject": {"kind": "ingress", "name": "main"}}},
     "object.describedObject.kind"),
    ({"type": "Object", "object": {"metric": {"name": "rps"}, "target": {"type": "Value", "value": "1"},
                                   "describedObject": {"kind": "Ingress", "name": "main",
                                                       "apiVersion": "networking.k8s.io/v1\n"}}},
     "object.describedObject.apiVersion"),
    ({"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "App",
                                                         "target": {"type": "Utilization",
                                                                    "averageUtilization": 60}}},
     "containerResource.container"),
    ({"type": "ContainerResource", "containerResource": {"name": "gpu", "container": "app",
                                                         "target": {"type": "Utilization",
                                                                    "averageUtilization": 60}}},
     "containerResource.name"),
    ({"type": "Resource", "resource": {"name": "memory\n", "target": {
        "type": "Utilization", "averageUtilization": 50}}}, "resource.name"),
    # target values
    ({"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue",
                                                                     "averageValue": "100\n"}}},
     "pods.target.averageValue"),
    ({"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue",
                                                                     "averageValue": "1e19"}}},
     "pods.target.averageValue"),
    ({"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue",
                                                                     "averageValue": True}}},
     "pods.target.averageValue"),
    ({"type": "External", "external": {"metric": {"name": "queue"}, "target": {
        "type": "Value", "value": "1", "averageValue": "1"}}}, "external.target.averageValue"),
    ({"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "Utilization", "averageUtilization": 50, "averageValue": "1Gi"}}},
     "resource.target.averageValue"),
    ({"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "Utilization", "averageUtilization": "50"}}}, "resource.target.averageUtilization"),
    ({"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": "100"}}, "pods.target"),
]


@pytest.mark.parametrize(("metric", "path"), BAD_METRICS, ids=[path for _metric, path in BAD_METRICS])
def test_raw_metrics_are_checked_against_the_metric_spec_schema(metric, path):
    message = validate({"namespace": "shop", "policies": [with_policy(metrics=[RPS_METRIC, metric])],
                        "state": "present", "parallelism": 8})
    assert message is not None
    assert f"policies[0].metrics[1].{path}: expected " in message, message
    assert message.count(": expected ") == 1, message


def test_int32_edges_pass():
    assert validate({"namespace": "shop", "state": "present", "parallelism": 8, "policies": [with_policy(
        min_replicas=2 ** 31 - 1, max_replicas=2 ** 31 - 1, cpu_utilization=2 ** 31 - 1,
        scale_up={"policies": [{"type": "Pods", "value": 2 ** 31 - 1, "period_seconds": 1800}]})]}) is None


@pytest.mark.parametrize(("policies", "path"), BAD_POLICIES, ids=[p for _policies, p in BAD_POLICIES])
def test_bad_policies_are_reported_naming_the_option_path(policies, path):
    message = validate({"namespace": "shop", "policies": policies, "state": "present",
                        "parallelism": 8})
    assert message is not None
    assert message.startswith("Invalid options (nothing was changed): ")
    assert f"{path}: expected " in message, message
    assert message.count(": expected ") == 1, f"one problem, one message: {message}"


def test_every_problem_of_a_call_is_reported_at_once():
    policies = [with_policy(min_replicas=0),
                with_policy(name="api", scale_down={"policies": [
                    {"type": "Pods", "value": 1, "period_seconds": 0}]})]
    message = validate({"namespace": "Shop", "policies": policies, "state": "present",
                        "parallelism": 0})
    for path in ("namespace", "policies[0].min_replicas",
                 "policies[1].scale_down.policies[0].period_seconds", "parallelism"):
        assert f"{path}: expected " in message, message


def test_messages_say_what_is_expected():
    message = validate({"namespace": "shop", "parallelism": 8, "state": "present", "policies": [
        with_policy(scale_down={"policies": [{"type": "Pods", "value": 1, "period_seconds": 0}]})]})
    assert "policies[0].scale_down.policies[0].period_seconds: expected an integer 1 to 1800, got 0" \
        in message
    message = validate({"namespace": "shop", "parallelism": 8, "state": "present",
                        "policies": [with_policy(min_replicas=5, max_replicas=4)]})
    assert "policies[0].max_replicas: expected an integer at least min_replicas (5), got 4" in message


def test_absent_needs_only_names():
    params = {"namespace": "shop", "parallelism": 8, "state": "absent",
              "policies": [{"name": "api"}, {"target": {"name": "web"}}]}
    assert validate(params) is None
    params["policies"].append({"target": {}})
    assert "policies[2].target.name: expected the name of the workload" in validate(params)


def test_valid_raw_metrics_pass_the_shape_check():
    metrics = [
        RPS_METRIC,
        {"type": "Object", "object": {"metric": {"name": "requests-per-second"},
                                      "describedObject": {"apiVersion": "networking.k8s.io/v1",
                                                          "kind": "Ingress", "name": "main-route"},
                                      "target": {"type": "Value", "value": "2k"}}},
        {"type": "External", "external": {"metric": {"name": "queue_messages_ready",
                                                     "selector": {"matchLabels": {"queue": "jobs"}}},
                                          "target": {"type": "AverageValue", "averageValue": 30}}},
        {"type": "ContainerResource", "containerResource": {
            "name": "cpu", "container": "application",
            "target": {"type": "Utilization", "averageUtilization": 60}}},
        {"type": "Resource", "resource": {"name": "memory", "target": {
            "type": "AverageValue", "averageValue": "500Mi"}}},
    ]
    for index, metric in enumerate(metrics):
        assert check_metric(f"metrics[{index}]", metric, {"cpu": "cpu_utilization"}) is metric
    assert validate({"namespace": "shop", "parallelism": 8, "state": "present",
                     "policies": [with_policy(metrics=metrics)]}) is None


def test_check_metric_raises_invalid_option():
    with pytest.raises(InvalidOption) as caught:
        check_metric("m", "cpu")
    assert caught.value.path == "m"


def test_v1_only_cluster_message_names_behavior_when_asked():
    message = v2_required_message([{"name": "a"}, with_policy(scale_up=None)], serves_v1=True)
    assert "policies[1].scale_down" in message
    assert "policies[1].scale_up" not in message
    assert "autoscaling/v2" in message and "serves only autoscaling/v1" in message
    assert "no behavior field" in message and "Kubernetes 1.23" in message
    plain = v2_required_message([{"name": "a", "cpu_utilization": 50}], serves_v1=True)
    assert "behavior" not in plain
    assert "needs autoscaling/v2" in plain and "Kubernetes 1.23 or newer" in plain
    assert "serves no autoscaling API" in v2_required_message([], serves_v1=False)
