# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""VirtualService routes: request timeouts, retries, weighted routes and mirroring.

Options in, objects out, with the checks istiod applies (validateHTTPRetry, validateDestination,
percentages, durations) and those it leaves to run time: weights that do not add up to 100, and
subsets that no DestinationRule defines (Envoy then answers 503 with no healthy upstream).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from http import HTTPStatus

from ansible_collections.meshtune.mesh.plugins.module_utils.istio import (
    NETWORKING_GROUP,
    check_destination_host,
    check_export_to,
    check_proxy_duration,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.kube import KubeError, fail_read
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import (
    INT32_MAX,
    InvalidOption,
    check_http_token,
    check_labels,
    check_name,
    check_range,
    check_visible_text,
    duration_nanoseconds,
)

try:
    import re2

    RE2_IMPORT_ERROR = None
except ImportError as err:  # reported by the module through missing_required_lib
    RE2_IMPORT_ERROR = err

# Envoy's retry conditions as istiod accepts them in retryOn: x-envoy-retry-on (HTTP) and
# x-envoy-retry-grpc-on (gRPC); an HTTP status code is also accepted (a retriable status code).
HTTP_RETRY_ON = ("5xx", "gateway-error", "reset", "reset-before-request", "connect-failure",
                 "retriable-4xx", "refused-stream", "retriable-status-codes", "retriable-headers",
                 "envoy-ratelimited", "http3-post-connect-failure")
GRPC_RETRY_ON = ("cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable")
RETRY_ON = HTTP_RETRY_ON + GRPC_RETRY_ON
STRING_MATCH_KINDS = ("exact", "prefix", "regex")
MESH_GATEWAY = "mesh"
MAX_PORT = 65535
# Istio takes a percentage of 0, or one from 0.0001 to 100.
MIN_PERCENTAGE = 0.0001
CLUSTER_DOMAIN = "cluster.local"
_NO_RE2_LOG = None
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _re2_options():
    """RE2 options that keep its parse errors out of stderr (they are reported as options)."""
    global _NO_RE2_LOG
    if _NO_RE2_LOG is None:
        _NO_RE2_LOG = re2.Options()
        _NO_RE2_LOG.log_errors = False
    return _NO_RE2_LOG


def check_re2(path, value):
    """A regular expression in RE2 syntax, as Envoy and istiod compile it (no look-around, no
    back-references)."""
    if not isinstance(value, str) or not value:
        raise InvalidOption(path, "an RE2 regular expression such as ^/api/v[0-9]+", value)
    try:
        re2.compile(value, _re2_options())
    except re2.error as err:
        reason = err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else str(err)
        raise InvalidOption(path, f"an RE2 regular expression ({reason})", value) from err
    return value


def check_string_match(path, match):
    """Exactly one of exact, prefix or regex, each a non-empty string (regex in RE2 syntax)."""
    if not isinstance(match, dict):
        raise InvalidOption(path, "a match such as {prefix: /api}: one of exact, prefix or regex", match)
    given = [kind for kind in match if match[kind] is not None]
    unknown = [kind for kind in given if kind not in STRING_MATCH_KINDS]
    if unknown or len(given) != 1:
        raise InvalidOption(path, "exactly one of exact, prefix or regex", {k: match[k] for k in given})
    kind = given[0]
    if kind == "regex":
        return check_re2(f"{path}.regex", match["regex"])
    value = match[kind]
    if not isinstance(value, str) or not value or value != value.strip() or _CONTROL_RE.search(value):
        raise InvalidOption(f"{path}.{kind}", f"the {kind} text to match, not empty, without control "
                            "characters", value)
    return value


def check_gateway(path, gateway):
    """`mesh` (the sidecars), or a Gateway as `name` or `namespace/name`, both DNS-1123 labels as
    istiod requires."""
    namespace, slash, name = gateway.rpartition("/") if isinstance(gateway, str) else ("", "", None)
    try:
        if gateway != MESH_GATEWAY:
            check_name(path, name, label=True)
            if slash:
                check_name(path, namespace, label=True)
    except InvalidOption:
        raise InvalidOption(path, "mesh, or a Gateway as name or namespace/name", gateway) from None
    return gateway


def check_retry_on(path, conditions):
    """Envoy's retry conditions (RETRY_ON) or HTTP status codes, each once."""
    for index, condition in enumerate(conditions):
        if condition in RETRY_ON or _is_status_code(condition):
            continue
        raise InvalidOption(f"{path}[{index}]", "one of Envoy's retry conditions (" + ", ".join(RETRY_ON)
                            + ") or an HTTP status code such as 503", condition)
    if len(set(conditions)) != len(conditions):
        raise InvalidOption(path, "each condition once", conditions)
    return conditions


def _is_status_code(value):
    return isinstance(value, str) and value.isdigit() and value.isascii() and \
        int(value) in {status.value for status in HTTPStatus}


def check_percentage(path, value):
    """0, or 0.0001 to 100 (a double in Istio's Percent)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not (value == 0 or MIN_PERCENTAGE <= value <= 100):
        raise InvalidOption(path, "a percentage 0 to 100 (0, or at least 0.0001)", value)
    return value


def _check_destination(problems, path, destination):
    host = destination.get("host")
    if host == "*":
        problems.add(f"{path}.host", "a service host (not '*')", host)
    else:
        problems.check(check_destination_host, f"{path}.host", host)
    if destination.get("subset") is not None:
        problems.check(check_name, f"{path}.subset", destination["subset"], label=True)
    problems.check(check_range, f"{path}.port", destination.get("port"), 1, MAX_PORT)


def _check_match(problems, path, match):
    if match.get("uri") is not None:
        problems.check(check_string_match, f"{path}.uri", match["uri"])
    headers = match.get("headers") or {}
    if not isinstance(headers, dict):
        problems.add(f"{path}.headers", "a dict of header names and matches", headers)
        headers = {}
    for name, header_match in headers.items():
        if problems.check(check_http_token, f"{path}.headers.{name}", name, "an HTTP header name such as "
                          "x-user") is not None:
            problems.check(check_string_match, f"{path}.headers.{name}", header_match)
    if match.get("source_labels") is not None:
        problems.check(check_labels, f"{path}.source_labels", match["source_labels"])
    problems.check(check_range, f"{path}.port", match.get("port"), 1, MAX_PORT)


def _check_weights(problems, path, destinations):
    weights = [d.get("weight") for d in destinations]
    for index, weight in enumerate(weights):
        problems.check(check_range, f"{path}[{index}].weight", weight, 0, 100)
    if len(destinations) == 1 and weights[0] is None:
        return
    total = sum(w or 0 for w in weights)
    if total != 100:
        problems.add(f"{path}", f"weights that add up to 100 (these add up to {total})", weights)


def _check_retries(problems, path, retries):
    attempts = problems.check(check_range, f"{path}.attempts", retries.get("attempts"), 0, INT32_MAX)
    problems.check(check_proxy_duration, f"{path}.per_try_timeout", retries.get("per_try_timeout"))
    retry_on = retries.get("retry_on")
    if retry_on is not None:
        problems.check(check_retry_on, f"{path}.retry_on", retry_on)
    if attempts == 0 and (retries.get("per_try_timeout") is not None or retry_on):
        problems.add(f"{path}.attempts", "at least 1 with per_try_timeout or retry_on (0 turns retries off)",
                     attempts)


def check_http_route(problems, path, route):
    """Every problem of one HTTP route (`services[0].http[1]`)."""
    if route.get("name") is not None:
        problems.check(check_visible_text, f"{path}.name", route["name"], "a route name such as ratings-v2")
    for index, match in enumerate(route.get("match") or []):
        _check_match(problems, f"{path}.match[{index}]", match)
    destinations = route.get("route") or []
    if not destinations:
        problems.add(f"{path}.route", "at least one destination", destinations)
    for index, destination in enumerate(destinations):
        _check_destination(problems, f"{path}.route[{index}]", destination)
    if destinations:
        _check_weights(problems, f"{path}.route", destinations)
    problems.check(check_proxy_duration, f"{path}.timeout", route.get("timeout"))
    if route.get("retries") is not None:
        _check_retries(problems, f"{path}.retries", route["retries"])
    mirror = route.get("mirror")
    if mirror is not None:
        _check_destination(problems, f"{path}.mirror", mirror)
        problems.check(check_percentage, f"{path}.mirror.percentage", mirror.get("percentage"))


def check_virtual_service(problems, prefix, service, state):
    """Every problem of one VirtualService; hosts and routes are required with state=present."""
    problems.check(check_name, _join(prefix, "name"), service.get("name"))
    if state != "present":
        return
    hosts, gateways = service.get("hosts") or [], service.get("gateways") or []
    if not hosts:
        problems.add(_join(prefix, "hosts"), "at least one host, such as reviews", hosts)
    for index, host in enumerate(hosts):
        if host == "*" and (not gateways or MESH_GATEWAY in gateways):
            problems.add(f"{_join(prefix, 'hosts')}[{index}]", "a host other than '*' for routes in the "
                         "mesh ('*' only with gateways other than mesh)", host)
        else:
            problems.check(check_destination_host, f"{_join(prefix, 'hosts')}[{index}]", host)
    if len(set(hosts)) != len(hosts):
        problems.add(_join(prefix, "hosts"), "each host once", hosts)
    for index, gateway in enumerate(gateways):
        problems.check(check_gateway, f"{_join(prefix, 'gateways')}[{index}]", gateway)
    if service.get("export_to"):
        problems.check(check_export_to, _join(prefix, "export_to"), service["export_to"])
    routes = service.get("http") or []
    if not routes:
        problems.add(_join(prefix, "http"), "at least one HTTP route", routes)
    for index, route in enumerate(routes):
        check_http_route(problems, f"{_join(prefix, 'http')}[{index}]", route)
    names = [route.get("name") for route in routes]
    for index, name in enumerate(names):
        if name is not None and name in names[:index]:
            problems.add(f"{_join(prefix, 'http')}[{index}].name", "a route name not used twice", name)


def _seconds(value):
    return duration_nanoseconds("duration", value) / 10 ** 9


def route_warnings(prefix, service):
    """Retry settings that work against the route timeout (checked options only)."""
    warnings = []
    for index, route in enumerate(service.get("http") or []):
        path = f"{_join(prefix, 'http')}[{index}]"
        retries = route.get("retries") or {}
        attempts, per_try = retries.get("attempts"), retries.get("per_try_timeout")
        if not attempts:
            continue
        timeout = route.get("timeout")
        if timeout is None:
            warnings.append(f"{path} retries without a timeout: a request may take up to {attempts + 1} "
                            "tries with no overall bound; set a timeout (about the measured p99 times "
                            "the tries you allow).")
        elif per_try is not None and attempts * _seconds(per_try) > _seconds(timeout):
            warnings.append(f"{path}.retries: attempts x per_try_timeout ({attempts} x {per_try}) exceeds "
                            f"the route timeout ({timeout}): the last retries are cut off by the timeout.")
    return warnings


# Subsets and DestinationRules ---------------------------------------------------------------------

def service_fqdn(host, namespace, domain=CLUSTER_DOMAIN):
    """A short host (`reviews`) as the FQDN istiod resolves it to in `namespace`."""
    return host if "." in host or host.startswith("*") else f"{host}.{namespace}.svc.{domain}"


def _host_matches(rule_host, host):
    if rule_host == host:
        return True
    return rule_host == "*" or (rule_host.startswith("*.") and host.endswith(rule_host[1:]))


def referenced_subsets(prefix, service, namespace):
    """(option path, destination FQDN, subset) of every subset the service's routes name."""
    found = []
    for index, route in enumerate(service.get("http") or []):
        path = f"{_join(prefix, 'http')}[{index}]"
        targets = [(f"{path}.route[{i}]", d) for i, d in enumerate(route.get("route") or [])]
        if route.get("mirror") is not None:
            targets.append((f"{path}.mirror", route["mirror"]))
        for where, destination in targets:
            if destination.get("subset") is not None:
                found.append((f"{where}.subset", service_fqdn(destination["host"], namespace),
                              destination["subset"]))
    return found


def destination_rule_namespaces(namespace, references):
    """The namespaces whose DestinationRules can define the referenced subsets: the routes' own,
    and that of each destination named as <service>.<namespace>.svc.<domain>."""
    namespaces = {namespace}
    for _path, host, _subset in references:
        parts = host.split(".")
        if len(parts) > 3 and parts[2] == "svc":
            namespaces.add(parts[1])
    return sorted(namespaces)


def subset_problems(references, rules):
    """Problems for subsets that no DestinationRule of the destination host defines.

    `rules` are live DestinationRules. The most specific rule for a host decides, as in istiod:
    an exact host before the longest wildcard.
    """
    by_host = {}
    for rule in rules:
        spec = rule.get("spec") or {}
        if spec.get("host"):
            host = service_fqdn(spec["host"], rule["metadata"]["namespace"])
            subsets = {s.get("name") for s in spec.get("subsets") or []}
            by_host.setdefault(host, set()).update(subsets)
    problems = []
    for path, host, subset in references:
        matching = sorted((h for h in by_host if _host_matches(h, host)),
                          key=lambda h: (h != host, -len(h)))
        if not matching:
            problems.append(str(InvalidOption(path, f"a subset defined by a DestinationRule for {host} "
                                              "(there is none; create it first)", subset)))
        elif subset not in by_host[matching[0]]:
            known = ", ".join(sorted(by_host[matching[0]])) or "none"
            problems.append(str(InvalidOption(path, f"a subset of the DestinationRule for {host} "
                                              f"(host {matching[0]}; its subsets: {known})", subset)))
    return problems


def check_subsets(module, client, version):
    """Fail, naming the route, when a subset is not defined by a DestinationRule for its host.

    Reads the DestinationRules of each namespace concerned once; writes nothing.
    """
    namespace = module.params["namespace"]
    references = [reference for index, service in enumerate(module.params["services"])
                  for reference in referenced_subsets(f"services[{index}]", service, namespace)]
    if not references:
        return
    try:
        resource = client.resource(f"{NETWORKING_GROUP}/{version}", "DestinationRule")
        rules = [rule for ns in destination_rule_namespaces(namespace, references)
                 for rule in client.list(resource, namespace=ns)]
    except KubeError as error:
        fail_read(module, error, "DestinationRules")
    problems = subset_problems(references, rules)
    if problems:
        module.fail_json(msg="Invalid options (nothing was changed): " + "; ".join(problems))


# Builders -------------------------------------------------------------------------------------

def _given(options, keys):
    return {key: options[key] for key in keys if options.get(key) is not None}


def _destination(options):
    destination = {"host": options["host"]}
    if options.get("subset") is not None:
        destination["subset"] = options["subset"]
    if options.get("port") is not None:
        destination["port"] = {"number": options["port"]}
    return destination


def _match(options):
    match = {}
    if options.get("uri") is not None:
        match["uri"] = _given(options["uri"], STRING_MATCH_KINDS)
    if options.get("headers"):
        match["headers"] = {name: _given(value, STRING_MATCH_KINDS)
                            for name, value in options["headers"].items()}
    if options.get("source_labels"):
        match["sourceLabels"] = dict(options["source_labels"])
    if options.get("port") is not None:
        match["port"] = options["port"]
    return match


def http_route(options):
    """One `http` entry of a VirtualService from a route's options."""
    route = {}
    if options.get("name") is not None:
        route["name"] = options["name"]
    if options.get("match"):
        route["match"] = [_match(match) for match in options["match"]]
    route["route"] = []
    for destination in options["route"]:
        entry = {"destination": _destination(destination)}
        if destination.get("weight") is not None:
            entry["weight"] = destination["weight"]
        route["route"].append(entry)
    if options.get("timeout") is not None:
        route["timeout"] = options["timeout"]
    retries = options.get("retries")
    if retries is not None:
        route["retries"] = {"attempts": retries.get("attempts") or 0}
        if retries.get("per_try_timeout") is not None:
            route["retries"]["perTryTimeout"] = retries["per_try_timeout"]
        if retries.get("retry_on"):
            route["retries"]["retryOn"] = ",".join(retries["retry_on"])
    mirror = options.get("mirror")
    if mirror is not None:
        route["mirror"] = _destination(mirror)
        if mirror.get("percentage") is not None:
            route["mirrorPercentage"] = {"value": mirror["percentage"]}
    return route


def virtual_service_object(api_version, namespace, service):
    """One VirtualService from a service's options (hosts, gateways, export_to, http routes)."""
    spec = {}
    if service.get("hosts"):
        spec["hosts"] = list(service["hosts"])
    if service.get("gateways"):
        spec["gateways"] = list(service["gateways"])
    if service.get("http"):
        spec["http"] = [http_route(route) for route in service["http"]]
    if service.get("export_to"):
        spec["exportTo"] = list(service["export_to"])
    return {"apiVersion": f"{NETWORKING_GROUP}/{api_version}", "kind": "VirtualService",
            "metadata": {"name": service["name"], "namespace": namespace}, "spec": spec}
