"""Label and field selector parsing of the test API server."""

from __future__ import annotations

import pytest

from tests.kubeapi.selectors import (
    SelectorError,
    field_selected_name,
    parse_field_selector,
    parse_label_selector,
)


def obj(name="x", namespace="default", **labels) -> dict:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels},
            "status": {"phase": "Running"}}


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("app=web", {"app": "web"}, True),
    ("app==web", {"app": "db"}, False),
    ("app!=web", {}, True),
    ("tier in (a, b),app", {"tier": "b", "app": "x"}, True),
    ("tier notin (a,b)", {"tier": "a"}, False),
    ("!canary", {"canary": "true"}, False),
    ("!canary,app=web", {"app": "web"}, True),
    ("", {"anything": "goes"}, True),
])
def test_label_selectors(selector, labels, expected):
    assert parse_label_selector(selector)(obj(**labels)) is expected


def test_field_selectors():
    match = parse_field_selector("metadata.name=a,metadata.namespace!=kube-system")
    assert match(obj("a"))
    assert not match(obj("a", namespace="kube-system"))
    assert parse_field_selector("status.phase=Running")(obj())
    assert field_selected_name("metadata.namespace=x,metadata.name=a") == "a"
    assert field_selected_name("metadata.name!=a") is None


@pytest.mark.parametrize("selector", ["app in web", "!app in (a)", "app=(x"])
def test_bad_selectors_raise(selector):
    with pytest.raises(SelectorError):
        parse_label_selector(selector)
