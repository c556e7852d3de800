"""mesh_analyze as a task: options checked before any request, the report files, check mode, the
fail_on gate, and playbooks/analyze.yml."""

from __future__ import annotations

import importlib
import json

import pytest
import yaml

from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.rules import RULES
from ansible_collections.meshtune.mesh.plugins.modules import mesh_analyze
from tests.functional.test_mesh_analyze import (
    ISTIO_NAMESPACE,
    apply,
    control_plane,
    cpu_metric,
    deployment,
    hpa,
    injected,
    limit_range,
    namespace,
    service,
)
from tests.support.ansible_runner import REPO_ROOT, run_playbook
from tests.support.module_harness import call_module

UNNAMED_PORT = 5000
STALE_REVISION = "1-20-0"
REPORT_FILES = ["report.json", "report.md", "report.html"]


@pytest.fixture(scope="module")
def mesh(kubeapi):
    """One warning (MT001 in shop) and one error (MT012: legacy is labelled for a gone revision)."""
    apply(kubeapi, *control_plane(ISTIO_NAMESPACE), injected("shop"),
          namespace("legacy", **{"istio.io/rev": STALE_REVISION}),
          service("shop", "web", [{"port": UNNAMED_PORT}]))
    return kubeapi


def run(server, check_mode=False, **options) -> dict:
    return call_module(mesh_analyze.main, {"kubeconfig": str(server.kubeconfig),
                                           "namespaces": ["shop", "legacy"], **options},
                       check_mode=check_mode)


@pytest.mark.parametrize(("override", "option"), [
    ({"namespaces": ["Shop"]}, "namespaces[0]"),
    ({"namespaces": ["shop", "shop"]}, "namespaces"),
    ({"namespaces": []}, "namespaces"),
    ({"istio_namespace": "istio_system"}, "istio_namespace"),
    ({"min_services_for_scope": -1}, "min_services_for_scope"),
    ({"skip_rules": ["MT999"]}, "skip_rules[0]"),
    ({"skip_rules": ["MT001", "MT001"]}, "skip_rules"),
    ({"fail_on": "critical"}, "fail_on"),
    ({"title": " "}, "title"),
    ({"output_dir": "/proc/version"}, "output_dir"),
])
def test_bad_input_fails_naming_the_option_before_any_request(mesh, override, option):
    mesh.reset_stats()
    result = run(mesh, **override)
    assert result["failed"] is True
    assert option in result["msg"]
    assert "Traceback" not in result["msg"]
    assert mesh.stats()["requests"]["total"] == 0


def test_a_missing_namespace_fails_naming_it(mesh):
    result = call_module(mesh_analyze.main, {"kubeconfig": str(mesh.kubeconfig),
                                             "namespaces": ["shop", "nowhere"]})
    assert result["failed"] is True
    assert result["msg"] == "Namespaces not found: nowhere"


def test_findings_table_and_rules(mesh):
    result = run(mesh)
    assert result["changed"] is False
    assert [(f["code"], f["severity"], f["object"]) for f in result["findings"]] == [
        ("MT012", "error", "Namespace legacy"), ("MT001", "warning", "Service shop/web")]
    assert result["summary"] == {"error": 1, "warning": 1, "info": 0, "total": 2,
                                 "by_code": {"MT012": 1, "MT001": 1}}
    header, _rule, *rows = result["table"]
    assert header.split() == ["code", "|", "severity", "|", "object", "|", "finding"]
    assert rows[1].split()[:6] == ["MT001", "|", "warning", "|", "Service", "shop/web"]
    assert rows[1].endswith(f"ports without a declared protocol: {UNNAMED_PORT} (unnamed)")
    assert [rule["code"] for rule in result["rules"]] == [rule.code for rule in RULES]
    assert result["namespaces"] == 2

    skipped = run(mesh, skip_rules=["MT012"])
    assert [f["code"] for f in skipped["findings"]] == ["MT001"]
    assert "MT012" not in [rule["code"] for rule in skipped["rules"]]


def test_report_files_are_written_once_and_not_in_check_mode(mesh, tmp_path):
    output = tmp_path / "analyze"
    planned = run(mesh, check_mode=True, output_dir=str(output))
    assert planned["changed"] is True
    assert planned["changed_files"] == [str(output / name) for name in REPORT_FILES]
    assert not output.exists()

    mesh.reset_stats()
    written = run(mesh, output_dir=str(output))
    assert written["changed"] is True
    assert mesh.stats()["requests"]["by_verb"].keys() == {"list"}, "the analysis only reads"
    report = json.loads((output / "report.json").read_text())
    assert report["findings"] == written["findings"]
    assert report["summary"] == written["summary"]
    assert [rule["code"] for rule in report["rules"]] == [rule.code for rule in RULES]
    markdown = (output / "report.md").read_text()
    assert "| MT001 | warning | Service shop/web |" in markdown
    assert "<td>MT012</td>" in (output / "report.html").read_text()

    again = run(mesh, output_dir=str(output))
    assert again["changed"] is False
    assert again["changed_files"] == []


def test_fail_on_gates_on_the_severity_or_worse(mesh, tmp_path):
    passed = run(mesh, skip_rules=["MT012"], fail_on="error")
    assert passed.get("failed") is not True

    output = tmp_path / "gate"
    failed = run(mesh, fail_on="warning", output_dir=str(output))
    assert failed["failed"] is True
    assert failed["msg"].startswith("2 finding(s) of severity warning or worse: MT012 Namespace legacy: ")
    unnamed = f"MT001 Service shop/web: ports without a declared protocol: {UNNAMED_PORT} (unnamed)"
    assert unnamed in failed["msg"]
    assert failed["findings"], "the findings come with the failure"
    assert (output / "report.json").exists(), "the report is written before the gate"


def test_analyze_playbook_reports_beside_verify_and_gates(mesh, tmp_path):
    reports = tmp_path / "reports"
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"cluster-a": {
        "ansible_connection": "local", "meshtune_kubeconfig": str(mesh.kubeconfig),
        "meshtune_report_dir": str(reports), "analyze_namespaces": ["shop", "legacy"]}}}}))
    playbook = REPO_ROOT / "playbooks" / "analyze.yml"

    shown = run_playbook(playbook, inventory=str(inventory))
    assert shown.returncode == 0, shown.stdout[-4000:]
    assert "MT012" in shown.stdout and "Service shop/web" in shown.stdout
    report = json.loads((reports / "cluster-a" / "analyze" / "report.json").read_text())
    assert report["summary"]["total"] == 2
    assert report["title"] == "cluster-a: mesh performance analysis"

    gated = run_playbook(playbook, {"analyze_fail_on": "error"}, inventory=str(inventory))
    assert gated.returncode != 0
    assert "1 finding(s) of severity error or worse: MT012 Namespace legacy" in gated.stdout
    assert "Service shop/web" in gated.stdout, "the table is shown before the gate fails"


def test_the_fix_tasks_run_as_given_and_fix_their_findings(kubeapi_factory):
    """Every fix_task, run through its module unchanged, removes the finding it was given for."""
    server = kubeapi_factory()
    gateway = deployment("fixes", "ingress", replicas=2, labels={"istio": "ingressgateway"})
    apply(server, *control_plane(ISTIO_NAMESPACE), injected("fixes"),
          namespace("moved", **{"istio.io/rev": STALE_REVISION}),
          service("fixes", "web", [{"name": "http", "port": 80}]),
          deployment("fixes", "web", annotations={"proxy.istio.io/config": "concurrency: 0"}),
          hpa("fixes", "web", "web", [cpu_metric(70)]),
          limit_range("fixes", "containers", default={"memory": "256Mi"}),
          deployment("fixes", "api", annotations={"sidecar.istio.io/proxyCPU": "100m"}), gateway)
    options = {"kubeconfig": str(server.kubeconfig), "namespaces": ["fixes", "moved"],
               "min_services_for_scope": 0}
    before = call_module(mesh_analyze.main, options)
    fixable = [f for f in before["findings"] if f["fix_task"]]
    assert {f["code"] for f in fixable} == {"MT002", "MT003", "MT004", "MT008", "MT010", "MT012"}
    for finding in fixable:
        name = finding["fix_task"]["module"].rpartition(".")[2]
        module = importlib.import_module(f"ansible_collections.meshtune.mesh.plugins.modules.{name}")
        outcome = call_module(module.main, {"kubeconfig": str(server.kubeconfig),
                                            **finding["fix_task"]["args"]})
        assert outcome.get("failed") is not True, (finding["code"], outcome.get("msg"))
        assert outcome["changed"] is True, finding["code"]
    after = {(f["code"], f["object"]) for f in call_module(mesh_analyze.main, options)["findings"]}
    assert after.isdisjoint((f["code"], f["object"]) for f in fixable), after


def test_an_unreachable_server_is_named(kubeapi_factory):
    server = kubeapi_factory()
    server.stop()
    result = call_module(mesh_analyze.main, {"kubeconfig": str(server.kubeconfig)})
    assert result["failed"] is True
    assert result["msg"].startswith(f"Cannot reach the Kubernetes API server {server.url}")


def test_a_kind_the_cluster_does_not_serve_is_noted_not_fatal(kubeapi_factory):
    server = kubeapi_factory("--disable", "autoscaling/v2,policy/v1")
    apply(server, *control_plane(ISTIO_NAMESPACE), injected("shop"))
    result = call_module(mesh_analyze.main, {"kubeconfig": str(server.kubeconfig)})
    assert result.get("failed") is not True, result.get("msg")
    assert result["notes"] == [f"the cluster serves no {kind} API: its rules found nothing"
                               for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget")]
    assert result["objects"]["HorizontalPodAutoscaler"] == result["objects"]["PodDisruptionBudget"] == 0
