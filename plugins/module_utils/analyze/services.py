# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Rules on Services and the configuration every proxy is sent: protocols, Sidecar scoping."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.base import Finding, rule, task

# Protocols Istio takes from a port name (`<protocol>[-<suffix>]`) or `appProtocol`.
DECLARED_PROTOCOLS = ("grpc-web", "grpc", "http2", "https", "http", "mongo", "mysql", "redis", "tcp",
                      "tls", "udp")
APP_PROTOCOLS = (*DECLARED_PROTOCOLS, "kubernetes.io/h2c", "kubernetes.io/ws", "kubernetes.io/wss")


def declares_protocol(port):
    """Whether Istio knows a Service port's protocol without sniffing it."""
    if str(port.get("appProtocol") or "").lower() in APP_PROTOCOLS:
        return True
    name = str(port.get("name") or "").lower()
    return any(name == protocol or name.startswith(protocol + "-") for protocol in DECLARED_PROTOCOLS)


@rule("MT001", "warning", "Service port without a declared protocol",
      why="""Istio cannot tell the protocol, so every proxy sniffs the first bytes of each new
      connection to this port (waiting up to the protocol detection timeout for server-first
      protocols) before it can route it: latency and CPU on every connection, and no HTTP
      routing, retries or metrics when sniffing guesses TCP.""",
      fix="""Name the port <protocol>[-<suffix>] (http-web, grpc, tcp-db) or set its appProtocol
      (http, http2, grpc, tcp, tls, ...).""")
def undeclared_protocol(inventory, settings):
    for namespace in inventory.analyzed:
        if inventory.namespace_revision(namespace) is None:
            continue
        for service in inventory.of("Service", namespace):
            ports = [port for port in (service.get("spec") or {}).get("ports") or []
                     if port.get("protocol", "TCP") == "TCP" and not declares_protocol(port)]
            if ports:
                listed = ", ".join(f"{port.get('port')} ({port['name']!r})" if port.get("name")
                                   else f"{port.get('port')} (unnamed)" for port in ports)
                yield Finding("MT001", "Service", namespace, service["metadata"]["name"],
                              f"ports without a declared protocol: {listed}")


@rule("MT002", "warning", "Injected namespace without a Sidecar scope",
      why="""Without a Sidecar, each proxy in the namespace is sent the listeners, clusters and
      endpoints of every Service in the mesh: proxy memory and istiod push work grow with the
      whole mesh instead of with what the namespace calls.""",
      fix="""Give the namespace a default Sidecar that lists the hosts its workloads reach
      (meshtune.mesh.sidecar_scope, or the tune role's sidecar_scope entries).""")
def unscoped_namespace(inventory, settings):
    services = sum(len(inventory.of("Service", namespace)) for namespace in inventory.analyzed)
    if services <= settings["min_services_for_scope"] or \
            _has_default_sidecar(inventory, inventory.istio_namespace):
        return
    for namespace in inventory.analyzed:
        revision = inventory.namespace_revision(namespace)
        if revision is None or _has_default_sidecar(inventory, namespace):
            continue
        yield Finding("MT002", "Namespace", None, namespace,
                      f"injected (revision {revision}) with no Sidecar scope, in a mesh of {services} "
                      f"Services (more than {settings['min_services_for_scope']})",
                      task("sidecar_scope", namespaces=[namespace]))


def _has_default_sidecar(inventory, namespace):
    """A Sidecar without workloadSelector: the namespace's default (in the root namespace, the
    mesh's default)."""
    return any(not (sidecar.get("spec") or {}).get("workloadSelector")
               for sidecar in inventory.of("Sidecar", namespace))
