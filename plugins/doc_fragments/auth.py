# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """How meshtune modules reach a cluster (the options come from kubernetes.core.k8s_auth_options)."""

    DOCUMENTATION = r"""
options: {}
notes:
  - Set the auth options once for every meshtune and kubernetes.core module of a play with
    C(module_defaults) and the action group C(group/meshtune.mesh.meshtune).
  - The playbooks and roles of this collection pass the inventory variables
    C(meshtune_kubeconfig) and C(meshtune_kube_context) as O(kubeconfig) and O(context).
requirements:
  - kubernetes >= 24.2.0 (Python)
"""
