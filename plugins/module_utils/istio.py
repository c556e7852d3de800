# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Builders and validators for Istio objects (Sidecar, DestinationRule): options in, objects out."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import require_served_version
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import (
    INT32_MAX,
    UINT32_MAX,
    InvalidOption,
    check_http_token,
    check_label,
    check_name,
    check_range,
    check_unique,
    check_visible_text,
    duration_nanoseconds,
)

NETWORKING_GROUP = "networking.istio.io"
# Newest first: the first one the cluster serves is used.
NETWORKING_VERSIONS = ("v1", "v1beta1", "v1alpha3")
OUTBOUND_POLICIES = ("ALLOW_ANY", "REGISTRY_ONLY")
DEFAULT_EGRESS_HOSTS = ["./*", "istio-system/*"]


def served_networking_version(module, client, kind):
    """The networking.istio.io version the cluster serves for `kind`, newest first; fails the
    task (Istio is probably not installed) when discovery says it serves none, and with the
    unreachable message when the cluster could not be asked."""
    return require_served_version(module, client, NETWORKING_GROUP, kind, NETWORKING_VERSIONS,
                                  "is Istio installed?")


# A DNS label as Istio takes it in hosts (any case), and the longest host name.
DNS_LABEL_RE = re.compile(r"\A[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?\Z")
_ALL_DIGITS_RE = re.compile(r"\A[0-9]+\Z")
MAX_DNS_LABEL_LENGTH = 63
MAX_HOST_LENGTH = 253
# The namespace part of a Sidecar egress host besides namespace names: the Sidecar's own
# namespace, any namespace, and no namespace (`~/*` leaves the proxy no outbound configuration).
EGRESS_NAMESPACE_WORDS = (".", "*", "~")
EGRESS_HOST_EXPECTED = (
    "a host in namespace/dnsName form such as ./*, istio-system/* or */api.example.com: the "
    "namespace '.', '*', '~' or a namespace name, the dnsName '*', '*.' and a DNS name, or a fully "
    f"qualified DNS name (labels of at most {MAX_DNS_LABEL_LENGTH} letters, digits or '-', at most "
    f"{MAX_HOST_LENGTH} characters)")


def is_host(host, fully_qualified=False):
    """Whether `host` is `*`, `*.` and a DNS name, or a DNS name, as istiod validates hosts.

    Each label is at most 63 letters, digits or '-' (not at either end), the whole at most 253
    characters; a name of several labels may not end in an all-digit label (so no IP addresses).
    `fully_qualified` also refuses short names such as `reviews` (Sidecar egress hosts).
    """
    if not isinstance(host, str) or len(host) > MAX_HOST_LENGTH:
        return False
    if host == "*":
        return True
    labels = (host[2:] if host.startswith("*.") else host).split(".")
    if not all(len(label) <= MAX_DNS_LABEL_LENGTH and DNS_LABEL_RE.match(label) for label in labels):
        return False
    several = len(labels) > 1 or host.startswith("*.")
    if several and _ALL_DIGITS_RE.match(labels[-1]):
        return False
    return several or not fully_qualified


def check_egress_host(path, host):
    """Sidecar egress hosts are `namespace/dnsName`: `./*`, `istio-system/*`, `*/foo.example.com`."""
    namespace, slash, dns_name = host.partition("/") if isinstance(host, str) else ("", "", "")
    if not slash or not (namespace in EGRESS_NAMESPACE_WORDS or _is_namespace(namespace)) or \
            not is_host(dns_name, fully_qualified=True):
        raise InvalidOption(path, EGRESS_HOST_EXPECTED, host)
    return host


def _is_namespace(value):
    try:
        check_name("namespace", value, label=True)
        return True
    except InvalidOption:
        return False


def sidecar_object(api_version, namespace, name, egress_hosts, outbound_traffic_policy,
                   workload_selector):
    """One Sidecar, limiting what the proxies of its namespace (or selected workloads) are told about."""
    spec = {"egress": [{"hosts": list(egress_hosts)}]}
    if outbound_traffic_policy:
        spec["outboundTrafficPolicy"] = {"mode": outbound_traffic_policy}
    if workload_selector:
        spec["workloadSelector"] = {"labels": dict(workload_selector)}
    return {"apiVersion": f"{NETWORKING_GROUP}/{api_version}", "kind": "Sidecar",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def sidecar_objects(api_version, namespaces, name, egress_hosts, outbound_traffic_policy,
                    workload_selector):
    """One Sidecar per namespace, all with the same egress hosts."""
    return [sidecar_object(api_version, namespace, name, egress_hosts, outbound_traffic_policy,
                           workload_selector)
            for namespace in namespaces]


# DestinationRule ---------------------------------------------------------------------------------
#
# Options are Istio's fields in snake_case (`max_connections` -> `maxConnections`), so the builder
# converts names mechanically and leaves unset (None) options out. The checks below follow what
# istiod's validation and its translation to Envoy accept; each names the option path the user
# wrote, such as `rules[2].outlier_detection.interval`.

TLS_MODES = ("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL")
SIMPLE_LOAD_BALANCERS = ("RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST", "LEAST_CONN")
H2_UPGRADE_POLICIES = ("DEFAULT", "DO_NOT_UPGRADE", "UPGRADE")
CONSISTENT_HASH_KEYS = ("http_header_name", "http_cookie", "use_source_ip", "http_query_parameter_name")
# Envoy circuit-breaker limits that istiod only applies when above 0: it cannot tell 0 from unset,
# so 0 would silently mean "no limit" instead of "nothing allowed".
ZERO_IGNORED_LIMITS = (("tcp", "max_connections"), ("http", "http1_max_pending_requests"),
                       ("http", "http2_max_requests"), ("http", "max_retries"))
MILLISECOND, SECOND = 10 ** 6, 10 ** 9


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _camel(option):
    """`consecutive_5xx_errors` -> `consecutive5xxErrors`: Istio's JSON name of an option."""
    head, *rest = option.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _fields(options):
    """Options (nested dicts of snake_case names) as Istio fields; unset options are left out."""
    return {_camel(key): _fields(value) if isinstance(value, dict) else
            (list(value) if isinstance(value, list) else value)
            for key, value in options.items() if value is not None}


def check_proxy_duration(path, value):
    """Timeouts and intervals: istiod rejects durations below 1ms or finer than a millisecond."""
    if value is None:
        return None
    nanoseconds = duration_nanoseconds(path, value)
    if nanoseconds < MILLISECOND or nanoseconds % MILLISECOND:
        raise InvalidOption(path, "a duration of at least 1ms in whole milliseconds, such as 10s or 100ms",
                            value)
    return value


def check_keepalive_duration(path, value):
    """TCP keepalive times reach the kernel in whole seconds; less than 1s would mean the OS default."""
    if value is None:
        return None
    nanoseconds = duration_nanoseconds(path, value)
    if nanoseconds < SECOND or nanoseconds % SECOND:
        raise InvalidOption(path, "a duration in whole seconds of at least 1s, such as 300s or 5m", value)
    return value


def check_limit(path, value):
    """A circuit-breaker limit from ZERO_IGNORED_LIMITS: 1 or more."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= INT32_MAX:
        raise InvalidOption(path, f"an integer 1 to {INT32_MAX} (Istio ignores 0, which means no limit)",
                            value)
    return value


def check_destination_host(path, host):
    """A service host: a short name, an FQDN, or a wildcard such as *.example.com."""
    if not is_host(host):
        raise InvalidOption(path, "a service host such as reviews, reviews.shop.svc.cluster.local or "
                                  f"*.example.com (labels of at most {MAX_DNS_LABEL_LENGTH} letters, "
                                  f"digits or '-', at most {MAX_HOST_LENGTH} characters)", host)
    return host


def check_export_to(path, namespaces):
    """`.` (own namespace), `*` (all) or namespace names, each once; `*` only alone."""
    for index, namespace in enumerate(namespaces):
        if namespace not in (".", "*") and not _is_namespace(namespace):
            raise InvalidOption(f"{path}[{index}]", "'.', '*' or a namespace name", namespace)
    if "*" in namespaces and len(namespaces) > 1:
        raise InvalidOption(path, "'*' alone, as it already means every namespace", namespaces)
    if len(set(namespaces)) != len(namespaces):
        raise InvalidOption(path, "each namespace once", namespaces)
    return namespaces


def _given(options):
    """The options that were set, for messages (Ansible fills the others in as None)."""
    return {key: value for key, value in options.items() if value is not None}


def _hash_keys(consistent_hash):
    """The consistent-hash keys that are set (`use_source_ip: false` is no key)."""
    return [key for key in CONSISTENT_HASH_KEYS
            if consistent_hash.get(key) is not None and consistent_hash.get(key) is not False]


def traffic_policies(prefix, rule):
    """(option path, options) of a rule's own traffic policy and of each of its subsets'."""
    yield prefix, rule
    for index, subset in enumerate(rule.get("subsets") or []):
        yield f"{_join(prefix, 'subsets')}[{index}]", subset


def _check_connection_pool(problems, path, pool):
    if pool.get("tcp") is None and pool.get("http") is None:
        problems.add(path, "at least one of tcp or http", _given(pool))
    for section, option in ZERO_IGNORED_LIMITS:
        problems.check(check_limit, f"{path}.{section}.{option}", (pool.get(section) or {}).get(option))
    tcp, http = pool.get("tcp") or {}, pool.get("http") or {}
    problems.check(check_proxy_duration, f"{path}.tcp.connect_timeout", tcp.get("connect_timeout"))
    keepalive = tcp.get("tcp_keepalive") or {}
    problems.check(check_range, f"{path}.tcp.tcp_keepalive.probes", keepalive.get("probes"), 1, UINT32_MAX)
    for option in ("time", "interval"):
        problems.check(check_keepalive_duration, f"{path}.tcp.tcp_keepalive.{option}", keepalive.get(option))
    problems.check(check_range, f"{path}.http.max_requests_per_connection",
                   http.get("max_requests_per_connection"), 0, INT32_MAX)
    problems.check(check_proxy_duration, f"{path}.http.idle_timeout", http.get("idle_timeout"))


def _check_outlier_detection(problems, path, outlier):
    for option, maximum in (("consecutive_5xx_errors", UINT32_MAX),
                            ("consecutive_gateway_errors", UINT32_MAX), ("consecutive_errors", INT32_MAX)):
        problems.check(check_range, f"{path}.{option}", outlier.get(option), 0, maximum)
    if outlier.get("consecutive_errors") is not None and outlier.get("consecutive_5xx_errors") is not None:
        problems.add(f"{path}.consecutive_errors",
                     "either consecutive_errors (deprecated) or consecutive_5xx_errors, not both",
                     outlier["consecutive_errors"])
    for option in ("interval", "base_ejection_time"):
        problems.check(check_proxy_duration, f"{path}.{option}", outlier.get(option))
    for option in ("max_ejection_percent", "min_health_percent"):
        problems.check(check_range, f"{path}.{option}", outlier.get(option), 0, 100)


def _check_load_balancer(problems, path, balancer):
    hashing = balancer.get("consistent_hash")
    if balancer.get("simple") is not None and hashing is not None:
        problems.add(path, "either simple or consistent_hash, not both", ["simple", "consistent_hash"])
    elif balancer.get("simple") is None and hashing is None:
        problems.add(path, "one of simple or consistent_hash", _given(balancer))
    if hashing is None:
        return
    keys = _hash_keys(hashing)
    if len(keys) != 1:
        problems.add(f"{path}.consistent_hash", "exactly one hash key of " + ", ".join(CONSISTENT_HASH_KEYS),
                     keys)
    if hashing.get("http_header_name") is not None:
        problems.check(check_http_token, f"{path}.consistent_hash.http_header_name",
                       hashing["http_header_name"], "an HTTP header name such as x-user")
    if hashing.get("http_query_parameter_name") is not None:
        problems.check(check_visible_text, f"{path}.consistent_hash.http_query_parameter_name",
                       hashing["http_query_parameter_name"], "a query parameter name such as user")
    cookie = hashing.get("http_cookie")
    if cookie is not None:
        problems.check(check_http_token, f"{path}.consistent_hash.http_cookie.name", cookie.get("name"),
                       "a cookie name such as session")
        if cookie.get("path") is not None:
            problems.check(check_visible_text, f"{path}.consistent_hash.http_cookie.path", cookie["path"],
                           "a cookie path such as /")
        if cookie.get("ttl") is None:
            problems.add(f"{path}.consistent_hash.http_cookie.ttl",
                         "a cookie lifetime such as 1h (0s for a session cookie)", None)
        if cookie.get("ttl") is not None:
            problems.check(duration_nanoseconds, f"{path}.consistent_hash.http_cookie.ttl", cookie["ttl"])


def _check_tls(problems, path, tls):
    mode = tls.get("mode")
    if mode not in TLS_MODES:
        problems.add(f"{path}.mode", "one of " + ", ".join(TLS_MODES), mode)
    if tls.get("credential_name") is not None and mode not in ("SIMPLE", "MUTUAL"):
        problems.add(f"{path}.credential_name", "no credential_name unless mode is SIMPLE or MUTUAL",
                     tls["credential_name"])
    elif mode == "MUTUAL" and not tls.get("credential_name"):
        problems.add(f"{path}.credential_name",
                     "the Secret with the client certificate and key, as mode is MUTUAL", None)
    if tls.get("credential_name") is not None:
        problems.check(check_visible_text, f"{path}.credential_name", tls["credential_name"],
                       "the name of a Secret", 253)
    if tls.get("sni") is not None:
        problems.check(check_visible_text, f"{path}.sni", tls["sni"], "a server name such as "
                       "api.example.com", MAX_HOST_LENGTH)
    for index, name in enumerate(tls.get("subject_alt_names") or []):
        problems.check(check_visible_text, f"{path}.subject_alt_names[{index}]", name,
                       "a subject alternative name such as api.example.com or spiffe://...")


POLICY_CHECKS = (("connection_pool", _check_connection_pool), ("outlier_detection", _check_outlier_detection),
                 ("load_balancer", _check_load_balancer), ("tls", _check_tls))


def check_destination_rule(problems, prefix, rule, state, host_option="host"):
    """Record every problem of one rule in `problems`; `prefix` is its option path (`rules[2]`).

    The host is only required with state=present: deleting needs nothing but the name.
    """
    problems.check(check_name, _join(prefix, "name"), rule.get("name"))
    host = rule.get("host")
    if host is not None and host != "":
        problems.check(check_destination_host, _join(prefix, host_option), host)
    elif state == "present":
        problems.add(_join(prefix, host_option), "the service host, e.g. reviews.shop.svc.cluster.local",
                     host)
    subsets = rule.get("subsets") or []
    for path, options in traffic_policies(prefix, rule):
        for option, check in POLICY_CHECKS:
            if options.get(option) is not None:
                check(problems, _join(path, option), options[option])
        if options is rule:
            continue
        problems.check(check_name, f"{path}.name", options.get("name"), label=True)
        for key, value in (options.get("labels") or {}).items():
            problems.check(check_label, f"{path}.labels.{key}", key, value)
    problems.check(check_unique, _join(prefix, "subsets"), subsets)
    if rule.get("export_to"):
        problems.check(check_export_to, _join(prefix, "export_to"), rule["export_to"])


def destination_rule_warnings(prefix, rule):
    """Deprecated Istio settings in a rule that are sent in their current form instead."""
    warnings = []
    for path, options in traffic_policies(prefix, rule):
        outlier = options.get("outlier_detection") or {}
        if outlier.get("consecutive_errors") is not None:
            warnings.append(
                f"{_join(path, 'outlier_detection.consecutive_errors')} is deprecated in Istio and is sent "
                "as consecutive5xxErrors, which counts every 5xx response; set consecutive_5xx_errors "
                "instead, or consecutive_gateway_errors to count only 502, 503 and 504.")
        if (options.get("load_balancer") or {}).get("simple") == "LEAST_CONN":
            warnings.append(f"{_join(path, 'load_balancer.simple')} LEAST_CONN is deprecated in Istio "
                            "and is sent as LEAST_REQUEST; set LEAST_REQUEST instead.")
    return warnings


def traffic_policy(options):
    """The `trafficPolicy` of a rule or subset, or None when it sets no policy option.

    Deprecated settings are translated: `consecutive_errors` to `consecutive5xxErrors`,
    `LEAST_CONN` to `LEAST_REQUEST`; `use_source_ip: false` is left out.
    """
    policy = {}
    if options.get("connection_pool") is not None:
        policy["connectionPool"] = _fields(options["connection_pool"])
    if options.get("load_balancer") is not None:
        balancer = dict(options["load_balancer"])
        if balancer.get("simple") == "LEAST_CONN":
            balancer["simple"] = "LEAST_REQUEST"
        if balancer.get("consistent_hash") is not None:
            hashing = dict(balancer["consistent_hash"])
            if hashing.get("use_source_ip") is False:
                hashing["use_source_ip"] = None
            balancer["consistent_hash"] = hashing
        policy["loadBalancer"] = _fields(balancer)
    if options.get("outlier_detection") is not None:
        outlier = dict(options["outlier_detection"])
        deprecated = outlier.pop("consecutive_errors", None)
        if deprecated is not None and outlier.get("consecutive_5xx_errors") is None:
            outlier["consecutive_5xx_errors"] = deprecated
        policy["outlierDetection"] = _fields(outlier)
    if options.get("tls") is not None:
        policy["tls"] = _fields(options["tls"])
    return policy or None


def _subset(options):
    subset = {"name": options["name"]}
    if options.get("labels"):
        subset["labels"] = dict(options["labels"])
    policy = traffic_policy(options)
    if policy is not None:
        subset["trafficPolicy"] = policy
    return subset


def destination_rule_object(api_version, namespace, rule):
    """One DestinationRule from a rule's options (host, traffic policy, subsets, export_to)."""
    spec = {}
    if rule.get("host"):
        spec["host"] = rule["host"]
    policy = traffic_policy(rule)
    if policy is not None:
        spec["trafficPolicy"] = policy
    if rule.get("subsets"):
        spec["subsets"] = [_subset(subset) for subset in rule["subsets"]]
    if rule.get("export_to"):
        spec["exportTo"] = list(rule["export_to"])
    return {"apiVersion": f"{NETWORKING_GROUP}/{api_version}", "kind": "DestinationRule",
            "metadata": {"name": rule["name"], "namespace": namespace}, "spec": spec}
