"""apps/v1 rules the test API server enforces beyond the OpenAPI schemas, as kube-apiserver does."""

from __future__ import annotations

import pytest

from tests.kubeapi.catalog import BUILTIN_TYPES
from tests.kubeapi.validation import validate

TYPES = {(t.group, t.kind): t for t in BUILTIN_TYPES}


def workload(kind: str, **spec) -> dict:
    labels = {"app": "w"}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w"},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "c:1"}]}},
                     **spec}}


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "ReplicaSet"])
def test_negative_replicas_are_invalid(kind):
    causes = validate(TYPES[("apps", kind)], workload(kind, replicas=-1))
    assert [(c.field, c.message) for c in causes] == [
        ("spec.replicas", "spec.replicas: Invalid value: -1: must be greater than or equal to 0")]


def test_zero_replicas_and_history_are_valid():
    assert validate(TYPES[("apps", "Deployment")],
                    workload("Deployment", replicas=0, revisionHistoryLimit=0)) == []


def test_negative_history_limit_is_invalid():
    causes = validate(TYPES[("apps", "DaemonSet")], workload("DaemonSet", revisionHistoryLimit=-2))
    assert [c.field for c in causes] == ["spec.revisionHistoryLimit"]
