#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cluster_check
short_description: Check that a Kubernetes cluster is reachable and serves the APIs a play needs
version_added: 0.1.0
description:
  - Connects to the Kubernetes API server named by the auth options, reads its version and the
    group/versions it serves, and fails with one line naming the server when it cannot be reached
    or lacks a required API.
  - Plays run it first, so a wrong kube context stops the run before anything is changed.
author:
  - meshtune maintainers (@meshtune)
options:
  required_api_versions:
    description:
      - Group/versions the cluster must serve, for example C(networking.istio.io/v1) or
        C(autoscaling/v2). Core API versions are written without a group (C(v1)).
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshtune.mesh.auth
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is no diff.
"""

EXAMPLES = r"""
- name: Stop early when the cluster is unreachable or Istio's APIs are missing
  meshtune.mesh.cluster_check:
    kubeconfig: "{{ meshtune_kubeconfig | default(omit) }}"
    context: "{{ meshtune_kube_context | default(omit) }}"
    required_api_versions:
      - networking.istio.io/v1
      - autoscaling/v2
  register: cluster

- name: Show the server version
  ansible.builtin.debug:
    msg: "{{ cluster.server }} runs Kubernetes {{ cluster.server_version }}"
"""

RETURN = r"""
server:
  description: URL of the API server that answered.
  returned: always
  type: str
  sample: https://10.0.0.1:6443
server_version:
  description: The server's git version.
  returned: always
  type: str
  sample: v1.33.2
api_versions:
  description: Every group/version the server serves, sorted.
  returned: always
  type: list
  elements: str
  sample: [apps/v1, autoscaling/v2, networking.istio.io/v1, v1]
missing_api_versions:
  description: The O(required_api_versions) the server does not serve (empty on success).
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import (
    POINT_ELSEWHERE,
    KubeClient,
    KubeError,
    auth_argument_spec,
    fail_read,
    validated_module,
)


def served_api_versions(client):
    """Group/versions from the discovery documents `/api` and `/apis`."""
    core = client.call(client.dynamic.request, "GET", "/api")
    groups = client.call(client.dynamic.request, "GET", "/apis")
    versions = list(core.versions)
    for group in groups.groups:
        versions.extend(version.groupVersion for version in group.versions)
    return sorted(versions)


def main():
    argument_spec = auth_argument_spec()
    argument_spec["required_api_versions"] = {"type": "list", "elements": "str", "default": []}
    module = validated_module(argument_spec, lambda params: None)
    client = KubeClient.from_module(module)
    # The client read the server's version when it connected.
    server_version = client.dynamic.version["kubernetes"]["gitVersion"]
    try:
        api_versions = served_api_versions(client)
    except KubeError as error:
        fail_read(module, error, "the API server's version and discovery documents")
    missing = [v for v in module.params["required_api_versions"] if v not in api_versions]
    result = {"changed": False, "server": client.dynamic.configuration.host,
              "server_version": server_version, "api_versions": api_versions,
              "missing_api_versions": missing}
    if missing:
        module.fail_json(msg=f"The Kubernetes API server {result['server']} does not serve "
                             f"{', '.join(missing)}. Install what provides it, or: {POINT_ELSEWHERE}",
                         **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
