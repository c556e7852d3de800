"""Pure parts of the upgrade checks: where the old revision's version is read, the skew rule, the
deprecated-field walk, and which revision injected a pod."""

from __future__ import annotations

import json

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils import upgrade


def istiod(labels=None, image="docker.io/istio/pilot:1.28.1"):
    return {"metadata": {"labels": labels or {}},
            "spec": {"template": {"spec": {"containers": [{"name": "discovery", "image": image}]}}}}


@pytest.mark.parametrize(("deployment", "revision", "expected"), [
    (istiod({"app.kubernetes.io/version": "1.29.6"}), "stable",
     ((1, 29, 6), "label app.kubernetes.io/version")),
    (istiod({"helm.sh/chart": "istiod-1.27.0"}), "stable", ((1, 27, 0), "label helm.sh/chart")),
    (istiod(), "stable", ((1, 28, 1), "image of Deployment istiod-stable")),
    (istiod(image="istio/pilot@sha256:abc"), "1-26-2", ((1, 26, 2), "the revision name 1-26-2")),
    (None, "1-30-3-b", ((1, 30, 3), "the revision name 1-30-3-b")),
    (None, "canary", (None, "no Deployment istiod-canary tells its version")),
])
def test_the_previous_version_is_read_where_it_is_recorded(deployment, revision, expected):
    version, source = upgrade.deployed_version(deployment, revision)
    assert version == expected[0]
    assert source.startswith(expected[1])


@pytest.mark.parametrize(("old", "new", "findings"), [
    ((1, 28, 0), (1, 30, 3), 0), ((1, 30, 3), (1, 28, 9), 0), ((1, 27, 9), (1, 30, 0), 1),
    ((1, 30, 0), (2, 0, 0), 1), ((1, 30, 3), (1, 30, 3), 0),
])
def test_canary_upgrades_span_at_most_two_minor_versions(old, new, findings):
    found = upgrade.skew_findings(new, old, "old", "new")
    assert len(found) == findings
    if found:
        assert f"{upgrade.version_text(old)} -> {upgrade.version_text(new)}" in found[0]["problem"]


def test_deprecated_fields_are_found_wherever_they_nest():
    spec = {"trafficPolicy": {"outlierDetection": {"consecutiveErrors": 3},
                              "portLevelSettings": [{"loadBalancer": {"simple": "LEAST_CONN"}}]},
            "subsets": [{"name": "v1", "trafficPolicy": {"outlierDetection": {"consecutiveErrors": 1}}},
                        {"name": "v2", "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}}]}
    paths = [path for path, _fix in upgrade.field_uses("DestinationRule", spec)]
    assert sorted(paths) == sorted([
        "spec.trafficPolicy.outlierDetection.consecutiveErrors",
        "spec.trafficPolicy.portLevelSettings[0].loadBalancer.simple",
        "spec.subsets[0].trafficPolicy.outlierDetection.consecutiveErrors"])
    # The same key in another kind is not a finding.
    assert upgrade.field_uses("Sidecar", spec) == []


@pytest.mark.parametrize(("metadata", "expected"), [
    ({"labels": {"istio.io/rev": "1-29-6"}}, ("1-29-6", "label istio.io/rev")),
    ({"annotations": {upgrade.SIDECAR_STATUS: json.dumps({"revision": "default"})}},
     ("default", "annotation sidecar.istio.io/status")),
    ({"annotations": {upgrade.SIDECAR_STATUS: "{not json"}}, (None, None)),
    ({}, (None, None)),
])
def test_the_injecting_revision_comes_from_the_label_or_the_status(metadata, expected):
    assert upgrade.injected_revision({"metadata": metadata}) == expected


def test_written_versions_come_from_managed_fields_and_last_applied():
    obj = {"metadata": {"managedFields": [{"manager": "helm", "apiVersion": "networking.istio.io/v1beta1"}],
                        "annotations": {upgrade.LAST_APPLIED: json.dumps(
                            {"apiVersion": "networking.istio.io/v1alpha3"})}}}
    assert upgrade.written_versions(obj) == ["networking.istio.io/v1alpha3", "networking.istio.io/v1beta1"]
