"""hpa.check_metric against the real autoscaling/v2 schema: whatever it lets through, the API server takes.

The module cannot depend on kubernetes-validate (it runs on managed hosts), so module_utils holds a
compact structural check of MetricSpec. This test holds that check to the schema the test API
server validates with (kubernetes-validate's strict OpenAPI schema, plus its quantity checks):
hypothesis draws metric specs from the whole MetricSpec grammar with faults mixed in (undeclared
fields, wrong types, missing parts, malformed names, selectors and quantities), and every spec the
check accepts must build an HPA that the server's validation accepts too.
"""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.meshtune.mesh.plugins.module_utils.hpa import check_metric, hpa_objects
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption
from tests.kubeapi import validation
from tests.kubeapi.catalog import Catalog

HPA_TYPE = Catalog().find("autoscaling", "v2", "horizontalpodautoscalers")


def mostly(good, bad, odds=12):
    """`good` most of the time, `bad` about once in `odds` draws."""
    return rare(odds).flatmap(lambda fault: bad if fault else good)


def rare(odds):
    """True about once in `odds` draws (not at an end of the range, which hypothesis favours)."""
    return st.integers(0, odds - 1).map(lambda roll: roll == odds // 2)


names = mostly(
    st.sampled_from(["rps", "queue_messages_ready", "example.com/gpu", "cpu", "memory", "app",
                     "ephemeral-storage", "hugepages-2Mi", "Ingress", "main-route"]),
    st.text(alphabet=string.ascii_letters + string.digits + "-_./% \n\t", min_size=0, max_size=12),
)
junk = st.one_of(st.integers(), st.booleans(), st.none(), st.lists(st.integers(), max_size=2),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
quantities = mostly(
    st.sampled_from(["1", "100", "0.5", "500m", "2k", "1Gi", "1e3", "7Ei"]) | st.integers(1, 2 ** 62),
    st.sampled_from(["0", "-1", "lots", "1 ", "\n1", "9223372036854775808", "8Ei"])
    | st.integers(min_value=-5, max_value=2 ** 64) | st.floats(allow_nan=True, allow_infinity=True),
    odds=4,
)
utilizations = mostly(st.integers(min_value=1, max_value=2 ** 31 - 1),
                      st.integers(min_value=-2, max_value=2 ** 32) | st.sampled_from(["50", 50.5]), odds=4)


def maybe(strategy):
    """A value that is usually well formed, sometimes junk of another type."""
    return mostly(strategy, junk, odds=25)


@st.composite
def with_faults(draw, base: dict):
    """`base` (a dict of field -> strategy) drawn, then perhaps a field dropped or one added."""
    drawn = {field: draw(strategy) for field, strategy in base.items()}
    if drawn and draw(rare(25)):
        drawn.pop(draw(st.sampled_from(sorted(drawn))))
    if draw(rare(25)):
        drawn[draw(st.sampled_from(["extra", "labels", "namespace", "container", "selector"]))] = \
            draw(junk)
    return drawn


label_keys = mostly(st.sampled_from(["app", "example.com/tier", "queue"]),
                    st.sampled_from(["a b", "app\n", "-x", "k" * 64, "", "A/b"])
                    | st.text(alphabet=string.ascii_lowercase + "./- ", min_size=0, max_size=8))
label_values = mostly(st.sampled_from(["jobs", "", "v1"]),
                      st.sampled_from(["x y", "v1\n", "v" * 64]) | st.integers())
requirements = with_faults({
    "key": label_keys,
    "operator": mostly(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]), st.just("Equals")),
    "values": mostly(st.lists(label_values, max_size=3), st.none() | label_values),
})
selectors = mostly(
    with_faults({"matchLabels": st.dictionaries(label_keys, label_values, max_size=2),
                 "matchExpressions": st.lists(requirements, max_size=2)}),
    st.text(max_size=8) | junk,
)
identifiers = maybe(with_faults({"name": maybe(names), "selector": mostly(st.none(), selectors, 2)}))
targets = maybe(mostly(
    st.one_of(with_faults({"type": st.just("Utilization"), "averageUtilization": utilizations}),
              with_faults({"type": st.just("AverageValue"), "averageValue": quantities}),
              with_faults({"type": st.just("Value"), "value": quantities})),
    with_faults({"type": st.sampled_from(["Utilization", "AverageValue", "Value", "Percent"]),
                 "averageUtilization": utilizations, "averageValue": quantities, "value": quantities}),
))
described = maybe(with_faults({
    "kind": maybe(names), "name": maybe(names),
    "apiVersion": mostly(st.sampled_from(["networking.k8s.io/v1", "v1"]),
                         st.sampled_from(["v", "apps/v1\n"]))}))
SOURCES = {
    "Resource": ("resource", {"name": maybe(names), "target": targets}),
    "ContainerResource": ("containerResource", {"name": maybe(names), "container": maybe(names),
                                                "target": targets}),
    "Pods": ("pods", {"metric": identifiers, "target": targets}),
    "Object": ("object", {"metric": identifiers, "describedObject": described, "target": targets}),
    "External": ("external", {"metric": identifiers, "target": targets}),
}


@st.composite
def metric_specs(draw):
    metric_type = draw(st.sampled_from(sorted(SOURCES)))
    key, fields = SOURCES[metric_type]
    if draw(rare(20)):  # the source of another type
        key, fields = SOURCES[draw(st.sampled_from(sorted(SOURCES)))]
    metric = {"type": metric_type, key: draw(maybe(with_faults(fields)))}
    if draw(rare(20)):
        metric[draw(st.sampled_from(["resource", "pods", "extra"]))] = draw(junk)
    return metric


def hpa_with(metric: dict) -> dict:
    [hpa] = hpa_objects("v2", "shop", [{"target": {"name": "web", "kind": "Deployment",
                                                   "api_version": "apps/v1"},
                                        "min_replicas": 1, "max_replicas": 5, "metrics": [metric]}])
    hpa["metadata"]["name"] = "web"
    return hpa


outcomes = {"accepted": 0, "refused": 0}


@settings(max_examples=600, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(metric_specs())
def test_every_metric_the_check_accepts_the_api_schema_accepts(metric):
    try:
        check_metric("metrics[0]", metric)
    except InvalidOption as error:
        assert str(error).startswith("metrics[0]")
        outcomes["refused"] += 1
        return
    outcomes["accepted"] += 1
    causes = validation.validate(HPA_TYPE, hpa_with(metric))
    assert not causes, (metric, [cause.message for cause in causes])


def test_the_property_saw_both_outcomes():
    """The generated space is not all-bad or all-good: the property above says something."""
    if not any(outcomes.values()):
        test_every_metric_the_check_accepts_the_api_schema_accepts()
    assert outcomes["accepted"] >= 20, outcomes
    assert outcomes["refused"] >= 200, outcomes
