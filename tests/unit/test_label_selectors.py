"""label_selectors.selector_matches: LabelSelectors as the API server applies them."""

from __future__ import annotations

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils.label_selectors import selector_matches


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ({"matchLabels": {"istio.io/rev": "1-30-3"}}, {"istio.io/rev": "1-30-3"}, True),
    ({"matchLabels": {"istio.io/rev": "1-30-3"}}, {"istio.io/rev": "canary"}, False),
    ({"matchExpressions": [{"key": "istio.io/rev", "operator": "Exists"}]}, {"istio.io/rev": "x"}, True),
    ({"matchExpressions": [{"key": "istio.io/rev", "operator": "Exists"}]}, {}, False),
    ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, {}, True),
    ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]}, {"team": "b"}, True),
    ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]}, {}, False),
    ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]}, {}, True),
    ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]}, {"team": "a"}, False),
    ({"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]}, {"a": "1"},
     False),
    ({}, {"any": "thing"}, True),
    (None, {"any": "thing"}, False),
    ({}, {}, True),
    ({"matchLabels": {"a": "b"}}, {"a": "b", "c": "d"}, True),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["b"]}]}, {"a": "b"}, False),
])
def test_label_selectors(selector, labels, expected):
    assert selector_matches(selector, labels) is expected
