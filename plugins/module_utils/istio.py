# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Builders and validators for Istio objects (Sidecar, DestinationRule): options in, objects out."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption, check_name

NETWORKING_GROUP = "networking.istio.io"
# Newest first: the first one the cluster serves is used.
NETWORKING_VERSIONS = ("v1", "v1beta1", "v1alpha3")
OUTBOUND_POLICIES = ("ALLOW_ANY", "REGISTRY_ONLY")
DEFAULT_EGRESS_HOSTS = ["./*", "istio-system/*"]


def check_egress_host(path, host):
    """Sidecar egress hosts are `namespace/dnsName`: `./*`, `istio-system/*`, `*/foo.example.com`."""
    namespace, _slash, dns_name = host.partition("/") if isinstance(host, str) else ("", "", "")
    if not namespace or not dns_name or (namespace not in (".", "*", "~") and
                                         not _is_namespace(namespace)):
        raise InvalidOption(path, "a host in namespace/dnsName form, e.g. ./* or istio-system/*",
                            host)
    return host


def _is_namespace(value):
    try:
        check_name("namespace", value, label=True)
        return True
    except InvalidOption:
        return False


def sidecar_objects(api_version, namespaces, name, egress_hosts, outbound_traffic_policy,
                    workload_selector):
    """One Sidecar per namespace, limiting what its proxies are told about."""
    spec = {"egress": [{"hosts": list(egress_hosts)}]}
    if outbound_traffic_policy:
        spec["outboundTrafficPolicy"] = {"mode": outbound_traffic_policy}
    if workload_selector:
        spec["workloadSelector"] = {"labels": dict(workload_selector)}
    return [{"apiVersion": f"{NETWORKING_GROUP}/{api_version}", "kind": "Sidecar",
             "metadata": {"name": name, "namespace": namespace}, "spec": spec}
            for namespace in namespaces]
