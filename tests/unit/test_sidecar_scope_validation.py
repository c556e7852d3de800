"""sidecar_scope's checks: egress hosts in Istio's namespace/dnsName form, workload selector labels."""

from __future__ import annotations

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.meshtune.mesh.plugins.module_utils.istio import check_egress_host
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption
from ansible_collections.meshtune.mesh.plugins.modules import sidecar_scope

LONG_NAME = ".".join(["a" * 63] * 3) + "." + "b" * 61  # 253 characters


def validate(**options) -> str | None:
    result = ArgumentSpecValidator(sidecar_scope.argument_spec()).validate(
        {"namespaces": ["shop"], **options})
    assert not result.error_messages, result.error_messages
    return sidecar_scope.validate(result.validated_parameters)


@pytest.mark.parametrize("host", [
    "./*", "istio-system/*", "*/*", "~/*", "*/api.example.com", "./reviews.shop.svc.cluster.local",
    "shop/*.example.com", "~/api.example.com", "prod/" + LONG_NAME, "a" * 63 + "/*",
    "./Api.Example.com",
])
def test_hosts_istio_accepts_pass(host):
    assert check_egress_host("egress_hosts[0]", host) == host


@pytest.mark.parametrize(("host", "why"), [
    ("no-slash", "no namespace/"),
    ("/*", "empty namespace"),
    ("./", "empty dnsName"),
    ("./reviews", "short name: Istio wants an FQDN"),
    ("./foo bar.example.com", "space in the dnsName"),
    ("./*foo.example.com", "partial wildcard"),
    ("./foo.*.example.com", "wildcard not first"),
    ("./*.", "nothing after *."),
    ("./example..com", "empty label"),
    ("./a." + "b" * 64, "label of 64 characters"),
    ("prod/" + LONG_NAME + "c", "254 characters"),
    ("./10.0.0.1", "IP address (all-digit last label)"),
    ("./*.123", "all-digit last label"),
    ("Shop/*", "namespace not a DNS-1123 label"),
    ("a" * 64 + "/*", "namespace of 64 characters"),
    ("shop\n/*", "line break in the namespace"),
    ("./*\n", "trailing line break"),
    ("\n./*", "leading line break"),
    ("./*\r\n", "trailing CRLF"),
    (" ./*", "leading space"),
    ("~~/*", "not a namespace word"),
    ("./*/x", "a second slash"),
    (5, "not a string"),
])
def test_hosts_istio_refuses_are_refused(host, why):
    with pytest.raises(InvalidOption) as caught:
        check_egress_host("egress_hosts[0]", host)
    assert caught.value.path == "egress_hosts[0]", why
    assert "namespace/dnsName" in str(caught.value)


@pytest.mark.parametrize(("selector", "path"), [
    ({"a b": "web"}, "workload_selector.a b"),
    ({"app\n": "web"}, "workload_selector.app\n"),
    ({"app": "web\n"}, "workload_selector.app"),
    ({"app": " web"}, "workload_selector.app"),
    ({"k" * 64: "web"}, "workload_selector." + "k" * 64),
    ({"app": "v" * 64}, "workload_selector.app"),
    ({"Example.com/app": "web"}, "workload_selector.Example.com/app"),
    ({"app": 5}, "workload_selector.app"),
])
def test_workload_selector_labels_are_checked_as_labels(selector, path):
    message = validate(workload_selector=selector)
    assert message is not None and f"{path}: expected " in message, message


def test_valid_workload_selector_passes():
    assert validate(workload_selector={"app": "web", "app.kubernetes.io/part-of": "shop",
                                       "tier": ""}) is None
    assert validate(workload_selector=None) is None
