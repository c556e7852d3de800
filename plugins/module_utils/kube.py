# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Reaching a cluster: kubernetes.core's client built from its standard auth options.

Every meshtune module takes kubernetes.core's auth options (`kubeconfig`, `context`, `host`,
`api_key`, ...) so one `module_defaults` entry serves both collections.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os
import re

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC

try:
    import urllib3
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
    from kubernetes import client as kube_client
    from kubernetes import config as kube_config

    # What failing to reach or to authenticate to an API server raises.
    CONNECTION_ERRORS = (CoreException, kube_config.ConfigException, kube_client.ApiException,
                         urllib3.exceptions.HTTPError, OSError)
    KUBERNETES_IMPORT_ERROR = None
except ImportError as err:  # reported by the module through missing_required_lib
    KUBERNETES_IMPORT_ERROR = err

POINT_ELSEWHERE = ("Point meshtune at a cluster with the inventory variables meshtune_kubeconfig / "
                   "meshtune_kube_context (module options kubeconfig / context), or set KUBECONFIG.")


def auth_argument_spec():
    """A copy of kubernetes.core's auth options, to merge into a module's argument spec."""
    return copy.deepcopy(AUTH_ARG_SPEC)


def api_server_url(params):
    """The API server URL the auth options point at, for messages; None when it cannot be told."""
    if params.get("host"):
        return params["host"]
    if KUBERNETES_IMPORT_ERROR is not None:
        return None
    configuration = kube_client.Configuration()
    kubeconfig = params.get("kubeconfig")
    try:
        if isinstance(kubeconfig, dict):
            kube_config.load_kube_config_from_dict(kubeconfig, context=params.get("context"),
                                                   client_configuration=configuration)
        else:
            kube_config.load_kube_config(config_file=kubeconfig or os.environ.get("KUBECONFIG"),
                                         context=params.get("context"),
                                         client_configuration=configuration,
                                         persist_config=False)
    except (kube_config.ConfigException, OSError, TypeError, ValueError):
        return None
    return configuration.host


def connection_reason(error):
    """The part of a connection error a person acts on, e.g. 'Connection refused'."""
    text = str(error)
    errno_reason = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if errno_reason:
        return errno_reason.group(1).strip()
    for hint in ("timed out", "certificate verify failed", "Unauthorized", "Forbidden"):
        if hint.lower() in text.lower():
            return hint
    return text.splitlines()[0][:200] if text else type(error).__name__


def unreachable_message(params, error):
    """One line naming the server, why it is unreachable and how to point meshtune elsewhere."""
    server = api_server_url(params) or "(no API server configured)"
    context = f" (context {params['context']})" if params.get("context") else ""
    reason = connection_reason(error)
    return f"Cannot reach the Kubernetes API server {server}{context}: {reason}. {POINT_ELSEWHERE}"
