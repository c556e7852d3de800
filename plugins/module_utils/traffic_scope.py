# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Sidecar egress hosts from the traffic Istio's proxies reported to Prometheus.

Two instant queries, whatever the number of namespaces: the requests (HTTP, gRPC) and the TCP
connections each source workload opened to each destination service over a window, as the
source proxies counted them (`reporter="source"`). A destination becomes the egress host
`destination_service_namespace/destination_service`. Calls Istio routed to PassthroughCluster or
BlackHoleCluster had no host in the registry: they are reported, never turned into hosts.

The effect of a scope is counted the way istiod builds a proxy's clusters: the Services in the
namespaces istiod watches (the mesh config's `discoverySelectors`), exported to the proxy's
namespace, that one of the Sidecar's egress hosts matches.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time
from collections import OrderedDict, namedtuple

from ansible_collections.meshtune.mesh.plugins.module_utils.istio import (
    NETWORKING_GROUP,
    check_egress_host,
    sidecar_object,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.kube import KubeError, fail_read
from ansible_collections.meshtune.mesh.plugins.module_utils.label_selectors import selector_matches
from ansible_collections.meshtune.mesh.plugins.module_utils.prometheus import (
    CONNECTION_MODULE_OPTIONS,
    PrometheusError,
    add_connection_problems,
    client_from_params,
    connection_argument_spec,
    parse_duration,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.reconcile import live_objects
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption
from ansible_collections.meshtune.mesh.plugins.module_utils.workloads import (
    API_VERSION as WORKLOAD_API_VERSION,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.workloads import (
    KINDS as WORKLOAD_KINDS,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.workloads import read_workloads

try:
    import yaml

    YAML_IMPORT_ERROR = None
except ImportError as err:  # reported by the module through missing_required_lib
    YAML_IMPORT_ERROR = err

OPTION = "from_prometheus"
# Where istiod sends calls it has no registry host for (Istio's "outside the mesh" clusters).
OUTSIDE_CLUSTERS = ("PassthroughCluster", "BlackHoleCluster")
# Label values Istio reports when it cannot tell a destination.
UNKNOWN = ("", "unknown")
# (count name, counter): what one source proxy counted per destination.
COUNTERS = (("requests", "istio_requests_total"),
            ("connections", "istio_tcp_connections_opened_total"))
GROUPING = ("source_workload_namespace", "source_workload", "destination_service_namespace",
            "destination_service", "destination_service_name")
MIN_WINDOW_SECONDS = 60
CLUSTER_DOMAIN = "svc.cluster.local"
EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"
MESH_CONFIG_KEY = "mesh"
REVISION_LABEL = "istio.io/rev"

# One destination as seen from one source workload, with what was counted over the window.
Edge = namedtuple("Edge", "namespace workload service_namespace service cluster requests connections")


def argument_spec():
    """The from_prometheus option: the Prometheus connection options, the window and the floor."""
    options = connection_argument_spec("url")
    options.update(window={"type": "str", "default": "7d"},
                   min_requests={"type": "int", "default": 1})
    return {OPTION: {"type": "dict", "options": options,
                     "required_together": CONNECTION_MODULE_OPTIONS["required_together"]}}


class _Prefixed:
    """validate.Problems that names every option inside the from_prometheus dict by its path."""

    def __init__(self, problems, prefix):
        self.problems = problems
        self.prefix = prefix

    def check(self, func, path, *args, **kwargs):
        return self.problems.check(func, f"{self.prefix}.{path}", *args, **kwargs)

    def add(self, path, expected, value):
        self.problems.add(f"{self.prefix}.{path}", expected, value)


def check_window(path, value):
    """Seconds of the window: a Prometheus duration of at least a minute, in whole seconds."""
    seconds = parse_duration(path, value)
    if seconds < MIN_WINDOW_SECONDS or seconds != int(seconds):
        raise InvalidOption(path, "a duration of at least 1m in whole seconds, such as 1h, 1d or 7d",
                            value)
    return int(seconds)


def add_problems(problems, params):
    """Add to validate.Problems what is wrong with from_prometheus and the options that go with it."""
    options = params.get(OPTION)
    if options is None:
        if params.get("allow_cutting"):
            problems.add("allow_cutting", "true only with from_prometheus (the check needs the "
                                          "observed traffic)", True)
        return
    if params.get("state") == "absent":
        problems.add(OPTION, "no from_prometheus with state=absent (nothing is derived for a "
                             "deletion)", "(given)")
    prefixed = _Prefixed(problems, OPTION)
    add_connection_problems(prefixed, options, url_option="url")
    prefixed.check(check_window, "window", options.get("window"))
    minimum = options.get("min_requests")
    if minimum is None or minimum < 1:
        prefixed.add("min_requests", "an integer of at least 1", minimum)


def traffic_queries(namespaces, window_seconds):
    """{count name: PromQL}: what each source workload of `namespaces` sent to each destination."""
    sources = "|".join(sorted(namespaces))
    grouping = ", ".join(GROUPING)
    return OrderedDict(
        (name, f'sum by ({grouping}) (increase({counter}{{reporter="source", '
               f'source_workload_namespace=~"{sources}"}}[{window_seconds}s]))')
        for name, counter in COUNTERS)


def edges(results):
    """Edges from the converted query results (prometheus.read_answer), merged per destination."""
    merged = OrderedDict()
    for name, _counter in COUNTERS:
        for sample in results[name]["result"]:
            value = sample.get("value")
            if value is None or not value > 0:
                continue
            metric = sample["metric"]
            key = tuple(metric.get(label, "") for label in GROUPING)
            counts = merged.setdefault(key, {"requests": 0.0, "connections": 0.0})
            counts[name] += value
    return [Edge(*key, requests=round(counts["requests"]), connections=round(counts["connections"]))
            for key, counts in merged.items()]


def registry_host(edge):
    """The egress host `namespace/host` of an edge, or None when the call left the registry."""
    if edge.cluster in OUTSIDE_CLUSTERS or edge.service_namespace in UNKNOWN or \
            edge.service in UNKNOWN:
        return None
    host = f"{edge.service_namespace}/{edge.service}"
    try:
        return check_egress_host("host", host)
    except InvalidOption:
        return None


def host_matches(egress_host, sidecar_namespace, service_namespace, hostname):
    """Whether a Sidecar egress host (`ns/dnsName`) of a Sidecar in `sidecar_namespace` admits
    the registry host `hostname` of `service_namespace`, as istiod matches them."""
    namespace, _slash, dns_name = egress_host.partition("/")
    if namespace == "~" or namespace not in ("*", ".", service_namespace):
        return False
    if namespace == "." and service_namespace != sidecar_namespace:
        return False
    if dns_name == "*":
        return True
    if dns_name.startswith("*."):
        return hostname.lower().endswith(dns_name[1:].lower())
    return hostname.lower() == dns_name.lower()


def admitted(egress_hosts, sidecar_namespace, host):
    """Whether any of `egress_hosts` admits the egress host `host` (`namespace/hostname`)."""
    service_namespace, _slash, hostname = host.partition("/")
    return any(host_matches(entry, sidecar_namespace, service_namespace, hostname)
               for entry in egress_hosts)


def sidecar_hosts(sidecar):
    """Every egress host of a live Sidecar (all its egress listeners)."""
    return [host for listener in (sidecar.get("spec") or {}).get("egress") or []
            for host in listener.get("hosts") or []]


# ---- which Services istiod tells a proxy about ---------------------------------------------------

def watched(discovery_selectors, labels):
    """Whether istiod watches a namespace: no selectors means every namespace, else any match."""
    return not discovery_selectors or any(selector_matches(s, labels) for s in discovery_selectors)


def exported_to(service, namespace, default_export_to):
    """Whether a Service is visible to proxies in `namespace` (its exportTo annotation, else the
    mesh-wide defaultServiceExportTo, else every namespace)."""
    annotation = ((service.get("metadata") or {}).get("annotations") or {}).get(EXPORT_TO_ANNOTATION)
    targets = [part.strip() for part in annotation.split(",")] if annotation is not None else \
        list(default_export_to or ["*"])
    own = service["metadata"]["namespace"]
    return "*" in targets or namespace in targets or ("." in targets and own == namespace)


def registry_services(services, namespace_labels, mesh):
    """(namespace, hostname, Service) of every Service in a namespace istiod watches (the mesh
    config's discoverySelectors)."""
    selectors = mesh.get("discoverySelectors") or []
    return [(svc["metadata"]["namespace"],
             f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.{CLUSTER_DOMAIN}", svc)
            for svc in services
            if watched(selectors, namespace_labels.get(svc["metadata"]["namespace"]))]


def services_told(registry, namespace, egress_hosts, mesh):
    """How many of the registry's Services a proxy in `namespace` is told about under a Sidecar
    with `egress_hosts` (None: no Sidecar, so every Service exported to it)."""
    default_export_to = mesh.get("defaultServiceExportTo")
    return sum(1 for service_namespace, hostname, svc in registry
               if exported_to(svc, namespace, default_export_to) and
               (egress_hosts is None or any(host_matches(entry, namespace, service_namespace, hostname)
                                            for entry in egress_hosts)))


def pick_mesh_config(config_maps, revision, istio_namespace):
    """(ConfigMap name or None, mesh config text) of the control plane in use; ValueError (one
    line) when it cannot be told which one, or the named revision has none.

    The istiod chart writes its mesh config to the ConfigMap `istio` or `istio-<revision>`, key
    `mesh`, labelled istio.io/rev=<revision or default>.
    """
    meshes = {(cm["metadata"].get("labels") or {}).get(REVISION_LABEL): cm for cm in config_maps
              if MESH_CONFIG_KEY in (cm.get("data") or {})}
    if revision is not None:
        if revision not in meshes:
            raise ValueError(f"istio_revision: no mesh config of revision {revision!r} in namespace "
                             f"{istio_namespace} (a ConfigMap labelled {REVISION_LABEL}={revision} with "
                             f"a '{MESH_CONFIG_KEY}' key); found revisions: "
                             f"{', '.join(sorted(meshes)) or 'none'}")
        chosen = meshes[revision]
    elif not meshes:
        return None, ""
    elif len(meshes) > 1:
        raise ValueError(f"istio_revision: namespace {istio_namespace} holds the mesh configs of "
                         f"several control planes ({', '.join(sorted(meshes))}); name the one whose "
                         "discoverySelectors count")
    else:
        chosen = next(iter(meshes.values()))
    return chosen["metadata"]["name"], chosen["data"][MESH_CONFIG_KEY]


# ---- scopes --------------------------------------------------------------------------------------

def base_hosts(static_hosts, istio_namespace):
    """The hosts every derived scope keeps: the static ones and `<istio namespace>/*`."""
    hosts = list(static_hosts)
    if f"{istio_namespace}/*" not in hosts:
        hosts.append(f"{istio_namespace}/*")
    return hosts


def plan_scopes(namespaces, edge_list, static_hosts, istio_namespace, min_requests, workloads=None):
    """Per namespace: {namespace, egress_hosts, observed: [{host, requests, connections}]}, and the
    calls that left the registry. The egress hosts are base_hosts, then each observed host
    (sorted) seen at least `min_requests` times that those do not admit already.

    `workloads` maps a namespace to the names of the source workloads that count (workload
    selector mode); None counts every workload of the namespace.
    """
    wanted = set(namespaces)
    observed = {namespace: OrderedDict() for namespace in namespaces}
    outside = []
    for edge in sorted(edge_list):
        if edge.namespace not in wanted or \
                (workloads is not None and edge.workload not in workloads.get(edge.namespace, ())):
            continue
        host = registry_host(edge)
        if host is None:
            outside.append({"namespace": edge.namespace, "workload": edge.workload,
                            "destination": edge.service or "unknown",
                            "cluster": edge.cluster or "unknown",
                            "requests": edge.requests, "connections": edge.connections})
            continue
        counts = observed[edge.namespace].setdefault(host, {"requests": 0, "connections": 0})
        counts["requests"] += edge.requests
        counts["connections"] += edge.connections
    scopes = []
    for namespace in namespaces:
        base = base_hosts(static_hosts, istio_namespace)
        seen = [{"host": host, **counts} for host, counts in sorted(observed[namespace].items())]
        kept = [entry["host"] for entry in seen
                if entry["requests"] + entry["connections"] >= min_requests and
                not admitted(base, namespace, entry["host"])]
        scopes.append({"namespace": namespace, "egress_hosts": base + kept, "observed": seen})
    return scopes, outside


def selected_workloads(workloads, selector):
    """{namespace: names} of the (kind, workload) pairs whose pod template has every selector label."""
    names = {}
    for _kind, workload in workloads:
        template = (((workload.get("spec") or {}).get("template") or {}).get("metadata") or {})
        labels = template.get("labels") or {}
        if all(labels.get(key) == value for key, value in selector.items()):
            meta = workload["metadata"]
            names.setdefault(meta["namespace"], set()).add(meta["name"])
    return names


def _default_sidecar(sidecars):
    """The Sidecar without workloadSelector that istiod applies among several: the oldest."""
    defaults = [obj for obj in sidecars if not (obj.get("spec") or {}).get("workloadSelector")]
    return min(defaults, key=lambda obj: (str(obj["metadata"].get("creationTimestamp") or ""),
                                          obj["metadata"]["name"]), default=None)


def current_sidecars(live, namespaces, name, root_namespace):
    """{namespace: the live Sidecar that scopes the proxies now, or None}: the one named `name`,
    else the namespace's default Sidecar, else the root namespace's default (mesh-wide) one."""
    by_namespace = {}
    for (namespace, _name), obj in live.items():
        by_namespace.setdefault(namespace, []).append(obj)
    mesh_wide = _default_sidecar(by_namespace.get(root_namespace, []))
    return {namespace: live.get((namespace, name)) or _default_sidecar(by_namespace.get(namespace, []))
            or mesh_wide for namespace in namespaces}


def _label(sidecar):
    return f"{sidecar['metadata']['namespace']}/{sidecar['metadata']['name']}"


def add_effect(scopes, registry, current, mesh):
    """Add to each scope the Sidecar that scopes its proxies now (`current_sidecar`), how many
    Services they are told about now (`services_before`: every one exported to them without a
    Sidecar) and under the new Sidecar (`services_after`)."""
    for scope in scopes:
        namespace = scope["namespace"]
        sidecar = current.get(namespace)
        scope["current_sidecar"] = _label(sidecar) if sidecar else None
        scope["services_before"] = services_told(registry, namespace,
                                                 sidecar_hosts(sidecar) if sidecar else None, mesh)
        scope["services_after"] = services_told(registry, namespace, scope["egress_hosts"], mesh)


def cut_hosts(scopes, current):
    """Observed hosts that a Sidecar would cut off: the one that scopes the proxies now (`current`,
    see current_sidecars; `sidecar` is its namespace/name) or the new one (`sidecar` "new")."""
    cuts = []
    for scope in scopes:
        namespace = scope["namespace"]
        live = current.get(namespace)
        candidates = [(_label(live), sidecar_hosts(live))] if live else []
        for sidecar, hosts in [*candidates, ("new", scope["egress_hosts"])]:
            cuts.extend({"namespace": namespace, "host": entry["host"], "sidecar": sidecar,
                         "requests": entry["requests"], "connections": entry["connections"]}
                        for entry in scope["observed"] if not admitted(hosts, namespace, entry["host"]))
    return cuts


def cut_message(cuts, window):
    """One line naming every host a Sidecar would cut off."""
    shown = "; ".join(
        f"{cut['namespace']} -> {cut['host']} ({cut['requests']} requests, {cut['connections']} "
        "connections) by " + ("the new Sidecar" if cut["sidecar"] == "new" else
                              f"the Sidecar {cut['sidecar']} in the cluster")
        for cut in cuts[:20])
    more = f" (and {len(cuts) - 20} more)" if len(cuts) > 20 else ""
    return (f"{len(cuts)} host(s) called in the last {window} would be cut off (nothing was changed): "
            f"{shown}{more}. Raise from_prometheus.window, lower from_prometheus.min_requests, add "
            "the hosts to egress_hosts, or set allow_cutting: true. Every cut is in 'would_cut'.")


# ---- the whole derivation, for the module --------------------------------------------------------

def _query(module, params, namespaces, window_seconds):
    """The converted results of the traffic queries, all evaluated at one instant."""
    client = client_from_params(params[OPTION], url_option="url")
    at = time.time()
    results = OrderedDict()
    for name, query in traffic_queries(namespaces, window_seconds).items():
        try:
            results[name], notes = client.instant(name, query, at)
        except PrometheusError as error:
            module.fail_json(msg=f"{OPTION}.url: {error}. Nothing was changed.")
        for note in notes:
            module.warn(f"Prometheus, query {name!r}: {note}")
    return results


def _read_cluster(module, client, version):
    """(namespace labels, live Sidecars (of the namespaces and the root namespace), Services,
    (mesh ConfigMap name, mesh config), workloads or None); fails the task when one is unreadable."""
    params = module.params
    try:
        namespace_labels = {ns["metadata"]["name"]: ns["metadata"].get("labels") or {}
                            for ns in client.list(client.resource("v1", "Namespace"))}
        missing = sorted(set(params["namespaces"]) - set(namespace_labels))
        if missing:
            module.fail_json(msg=f"Namespaces not found (nothing was changed): {', '.join(missing)}")
        config_maps = client.list(client.resource("v1", "ConfigMap"), namespace=params["istio_namespace"],
                                  label_selector=REVISION_LABEL)
        mesh = _mesh_config(module, config_maps)
        root = mesh[1].get("rootNamespace") or params["istio_namespace"]
        live = live_objects(client, client.resource(f"{NETWORKING_GROUP}/{version}", "Sidecar"),
                            [*params["namespaces"], root])
        services = client.list(client.resource("v1", "Service"))
        workloads = None
        if params["workload_selector"]:
            resources = {kind: client.resource(WORKLOAD_API_VERSION, kind) for kind in WORKLOAD_KINDS}
            workloads = selected_workloads(read_workloads(client, resources, params["namespaces"],
                                                          WORKLOAD_KINDS), params["workload_selector"])
    except KubeError as error:
        fail_read(module, error, "the Namespaces, Sidecars, Services, workloads and mesh config")
    return namespace_labels, live, services, mesh, workloads


def _mesh_config(module, config_maps):
    """(ConfigMap name or None, mesh config dict) of the control plane whose discoverySelectors count."""
    params = module.params
    try:
        name, text = pick_mesh_config(config_maps, params["istio_revision"], params["istio_namespace"])
        mesh = yaml.safe_load(text) if text else {}
    except ValueError as error:  # yaml.YAMLError is a ValueError too
        module.fail_json(msg=f"{error} (nothing was changed)")
    if not isinstance(mesh, dict):
        module.fail_json(msg=f"The mesh config in ConfigMap {params['istio_namespace']}/{name} is not a "
                             "YAML mapping (nothing was changed)")
    return name, mesh


def derive(module, client, version):
    """(desired Sidecars, live Sidecars, extra result keys) from the traffic in Prometheus; fails
    the task, before any write, when Prometheus or the cluster cannot be read, or when an
    observed host would be cut off and allow_cutting is not set."""
    params = module.params
    options = params[OPTION]
    namespaces = params["namespaces"]
    window_seconds = check_window(f"{OPTION}.window", options["window"])
    results = _query(module, params, namespaces, window_seconds)
    namespace_labels, live, services, (config_map, mesh), workloads = _read_cluster(module, client, version)
    scopes, outside = plan_scopes(namespaces, edges(results), params["egress_hosts"],
                                  params["istio_namespace"], options["min_requests"], workloads)
    current = current_sidecars(live, namespaces, params["name"],
                               mesh.get("rootNamespace") or params["istio_namespace"])
    add_effect(scopes, registry_services(services, namespace_labels, mesh), current, mesh)
    cuts = cut_hosts(scopes, current)
    extra = {"scopes": scopes, "outside_registry": outside, "would_cut": cuts,
             "prometheus_queries": len(results),
             "mesh_config": {"config_map": config_map,
                             "discovery_selectors": mesh.get("discoverySelectors") or []}}
    if outside:
        calls = ", ".join(f"{call['namespace']}/{call['workload']} -> {call['destination']} "
                          f"({call['cluster']})" for call in outside[:10])
        module.warn(f"{len(outside)} call(s) went outside the service registry, which "
                    f"outbound_traffic_policy REGISTRY_ONLY would block: {calls}. See 'outside_registry'.")
    if cuts and not params["allow_cutting"]:
        module.fail_json(msg=cut_message(cuts, options["window"]), changed=False, **extra)
    desired = [sidecar_object(version, scope["namespace"], params["name"], scope["egress_hosts"],
                              params["outbound_traffic_policy"], params["workload_selector"])
               for scope in scopes]
    return desired, live, extra
