"""kubernetes.core modules, run by ansible-playbook, against the test API server."""

from __future__ import annotations

import json

from tests.support.ansible_runner import run_playbook

PLAYBOOK = """
- name: Drive the test API server with kubernetes.core
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/kubernetes.core.k8s:
      kubeconfig: "{{ kubeconfig }}"
  vars:
    rule:
      apiVersion: networking.istio.io/v1
      kind: DestinationRule
      metadata:
        name: reviews
      spec:
        host: reviews
        trafficPolicy:
          connectionPool:
            http: {http2MaxRequests: 1000}
  tasks:
    - name: Create a namespace
      kubernetes.core.k8s:
        api_version: v1
        kind: Namespace
        name: ansible-check
      register: namespace

    - name: Create a DestinationRule
      kubernetes.core.k8s:
        namespace: ansible-check
        definition: "{{ rule }}"
      register: rule_created

    - name: Apply the same DestinationRule again
      kubernetes.core.k8s:
        namespace: ansible-check
        definition: "{{ rule }}"
      register: rule_again

    - name: Create a Deployment and wait for it
      kubernetes.core.k8s:
        namespace: ansible-check
        wait: true
        wait_timeout: 30
        definition:
          apiVersion: apps/v1
          kind: Deployment
          metadata:
            name: web
            labels: {app: web}
          spec:
            replicas: 2
            selector: {matchLabels: {app: web}}
            template:
              metadata: {labels: {app: web}}
              spec:
                containers: [{name: web, image: "nginx:1.27"}]
      register: deployment

    - name: Try an invalid DestinationRule
      kubernetes.core.k8s:
        namespace: ansible-check
        definition:
          apiVersion: networking.istio.io/v1
          kind: DestinationRule
          metadata:
            name: broken
          spec:
            host: broken
            trafficPolicy:
              loadBalancer: {simple: FASTEST}
      register: invalid
      ignore_errors: true

    - name: Read what exists
      kubernetes.core.k8s_info:
        api_version: networking.istio.io/v1
        kind: DestinationRule
        namespace: ansible-check
      register: rules

    - name: Report
      ansible.builtin.copy:
        dest: "{{ report }}"
        content: "{{ {'namespace': namespace.changed, 'created': rule_created.changed,
                      'again': rule_again.changed, 'ready': deployment.result.status.readyReplicas,
                      'invalid_failed': invalid.failed, 'invalid_msg': invalid.msg | default(''),
                      'rules': rules.resources | map(attribute='metadata.name') | list} | to_json }}"
        mode: "0644"
"""


def test_kubernetes_core_modules(kubeapi, tmp_path):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    report = tmp_path / "report.json"
    result = run_playbook(playbook, {"kubeconfig": str(kubeapi.kubeconfig), "report": str(report)})
    assert result.returncode == 0, result.stdout + result.stderr
    outcome = json.loads(report.read_text())
    assert outcome["namespace"] is True
    assert outcome["created"] is True
    assert outcome["again"] is False, "re-applying an identical object must not report a change"
    assert outcome["ready"] == 2
    assert outcome["invalid_failed"] is True
    assert '"code":422' in outcome["invalid_msg"].replace(" ", "")
    assert "spec.trafficPolicy.loadBalancer.simple: Unsupported value" in outcome["invalid_msg"]
    assert outcome["rules"] == ["reviews"]
