"""The analyzer's pure logic: the rule registry and its documentation, hosts,
protocols, admission of sidecar resources, the console table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.base import SEVERITIES
from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.inventory import service_key
from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.output import console_table
from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.proxies import admitted_problems
from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.rules import RULES, check_codes
from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.services import declares_protocol
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption

DOCS = Path(__file__).resolve().parents[2] / "docs" / "analyze.md"


def test_rule_codes_are_stable_numbered_and_complete():
    codes = [rule.code for rule in RULES]
    assert codes == [f"MT{index:03d}" for index in range(1, len(RULES) + 1)]
    for rule in RULES:
        assert rule.severity in SEVERITIES
        assert rule.title and rule.why.endswith(".") and rule.fix.endswith(".")
        assert "  " not in rule.why + rule.fix


def test_every_rule_is_documented_with_its_severity_and_title():
    text = DOCS.read_text()
    for rule in RULES:
        assert f"| {rule.code} | {rule.severity} | {rule.title} |" in text, rule.code
        assert f"### {rule.code} {rule.title} ({rule.severity})" in text, rule.code
    documented = set(re.findall(r"^### (MT[0-9]{3}) ", text, re.MULTILINE))
    assert documented == {rule.code for rule in RULES}


def test_check_codes():
    assert check_codes("skip_rules", ["MT001", "MT012"]) == ["MT001", "MT012"]
    with pytest.raises(InvalidOption, match=r"skip_rules\[1\]: expected a rule code"):
        check_codes("skip_rules", ["MT001", "mt002"])
    with pytest.raises(InvalidOption, match="each rule code once"):
        check_codes("skip_rules", ["MT003", "MT003"])


@pytest.mark.parametrize(("host", "key"), [
    ("reviews", ("shop", "reviews")),
    ("reviews.bookinfo.svc.cluster.local", ("bookinfo", "reviews")),
    ("Reviews.Bookinfo.svc.cluster.local", ("bookinfo", "reviews")),
    ("reviews.bookinfo", None),  # Istio takes a name with dots as it is: no Service has it
    ("reviews.bookinfo.svc.example.org", None),
    ("*.bookinfo.svc.cluster.local", None),
    ("api.example.com", None),
    (None, None),
])
def test_service_key(host, key):
    assert service_key(host, "shop") == key


@pytest.mark.parametrize(("port", "declared"), [
    ({"name": "http"}, True), ({"name": "http-web"}, True), ({"name": "grpc-web"}, True),
    ({"name": "HTTP2-api"}, True), ({"name": "tcp-db"}, True), ({"name": "httpbin"}, False),
    ({"name": "web"}, False), ({}, False), ({"name": "web", "appProtocol": "http"}, True),
    ({"appProtocol": "kubernetes.io/h2c"}, True), ({"name": "web", "appProtocol": "example.com/x"}, False),
])
def test_declares_protocol(port, declared):
    assert declares_protocol(port) is declared


def test_admitted_problems_apply_limit_range_defaults_first():
    item = {"type": "Container", "default": {"memory": "256Mi"}, "min": {"cpu": "50m"},
            "maxLimitRequestRatio": {"memory": "2"}}
    ranges = [("bounds", item)]
    assert admitted_problems({"requests": {"cpu": "100m", "memory": "128Mi"}}, ranges) == []
    # The default limit (256Mi) is below the request.
    assert admitted_problems({"requests": {"cpu": "100m", "memory": "512Mi"}}, ranges) == [
        "memory request 512Mi above its limit 256Mi"]
    # A request defaults to the limit; 10m is below the minimum.
    assert admitted_problems({"limits": {"cpu": "10m"}, "requests": {"memory": "64Mi"}}, ranges) == [
        "cpu request 10m below the minimum 50m of LimitRange bounds",
        "memory limit/request 256Mi/64Mi above the maxLimitRequestRatio 2 of LimitRange bounds"]
    # max stands in for the default limit, as the API server defaults it.
    assert admitted_problems({"requests": {"memory": "1Gi"}}, [("cap", {"max": {"memory": "512Mi"}})]) == [
        "memory request 1Gi above its limit 512Mi"]


def test_console_table_aligns_columns():
    findings = [{"code": "MT001", "severity": "warning", "object": "Service shop/web", "message": "one"},
                {"code": "MT012", "severity": "error", "object": "Namespace legacy", "message": "two"}]
    header, rule, *rows = console_table(findings)
    assert header.startswith("code ") and set(rule) <= {"-", "+"}
    starts = {row.index(finding["message"]) for row, finding in zip(rows, findings, strict=True)}
    assert starts == {header.index("finding")}
    assert console_table([]) == ["no findings"]
