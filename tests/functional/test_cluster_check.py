"""meshtune.mesh.cluster_check and the site playbook's first step, against the test API server."""

from __future__ import annotations

import json

from tests.support.ansible_runner import REPO_ROOT, run_playbook

CHECK = """
- name: Check a cluster
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/meshtune.mesh.meshtune:
      kubeconfig: "{{ kubeconfig }}"
  tasks:
    - name: Check
      meshtune.mesh.cluster_check:
        required_api_versions: "{{ required }}"
      register: cluster

    - name: Keep the result
      ansible.builtin.copy:
        content: "{{ cluster | to_json }}"
        dest: "{{ out }}"
        mode: "0644"
"""


def check(tmp_path, kubeconfig, required) -> tuple:
    playbook = tmp_path / "check.yml"
    playbook.write_text(CHECK)
    out = tmp_path / "cluster.json"
    result = run_playbook(playbook, {"kubeconfig": str(kubeconfig), "required": required,
                                     "out": str(out)})
    return result, out


def test_reports_version_and_served_apis(kubeapi, tmp_path):
    result, out = check(tmp_path, kubeapi.kubeconfig, ["networking.istio.io/v1", "autoscaling/v2"])
    assert result.returncode == 0, result.stdout
    cluster = json.loads(out.read_text())
    assert cluster["server"] == kubeapi.url
    assert cluster["server_version"].startswith("v1.")
    assert {"v1", "apps/v1", "networking.istio.io/v1beta1"} <= set(cluster["api_versions"])
    assert cluster["changed"] is False


def test_fails_clearly_when_an_api_is_missing(kubeapi_factory, tmp_path):
    server = kubeapi_factory("--disable", "autoscaling/v2")
    result = check(tmp_path, server.kubeconfig, ["autoscaling/v2"])[0]
    assert result.returncode != 0
    assert f"The Kubernetes API server {server.url} does not serve autoscaling/v2" in result.stdout


def test_site_playbook_stops_at_first_task_when_unreachable(kubeapi_factory):
    server = kubeapi_factory()
    server.stop()  # its kubeconfig now points at a port nobody listens on
    result = run_playbook(REPO_ROOT / "playbooks" / "site.yml",
                          inventory=str(REPO_ROOT / "inventories" / "local"),
                          env={"KUBECONFIG": str(server.kubeconfig)})
    assert result.returncode != 0
    assert f"Cannot reach the Kubernetes API server {server.url}: Connection refused." \
        in " ".join(result.stdout.split())
    assert "ok=0" in result.stdout, "nothing may run before the reachability check"
