# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Istio Telemetry resources: access logging, trace sampling and metric overrides.

The checks follow the Telemetry schema (telemetry.istio.io, Istio's CRD and API reference):
its enums, the sampling range, durations, selectors, and the access-log filter, a CEL expression
that istiod parses before it accepts the resource (parsed here with cel-python, before any write).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.meshtune.mesh.plugins.module_utils.istio import check_proxy_duration
from ansible_collections.meshtune.mesh.plugins.module_utils.kube import require_served_version
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import (
    InvalidOption,
    check_labels,
    check_name,
    check_visible_text,
)

try:
    import celpy

    CEL_IMPORT_ERROR = None
except ImportError as err:  # reported by the module through missing_required_lib
    CEL_IMPORT_ERROR = err

TELEMETRY_GROUP = "telemetry.istio.io"
# Newest first: the first one the cluster serves is used.
TELEMETRY_VERSIONS = ("v1", "v1alpha1")
MODES = ("CLIENT_AND_SERVER", "CLIENT", "SERVER")
METRICS = ("ALL_METRICS", "REQUEST_COUNT", "REQUEST_DURATION", "REQUEST_SIZE", "RESPONSE_SIZE",
           "TCP_OPENED_CONNECTIONS", "TCP_CLOSED_CONNECTIONS", "TCP_SENT_BYTES", "TCP_RECEIVED_BYTES",
           "GRPC_REQUEST_MESSAGES", "GRPC_RESPONSE_MESSAGES")
# Tags become Prometheus label names.
TAG_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")
SECTIONS = ("access_logging", "tracing", "metrics")
_parser = None


def served_telemetry_version(module, client):
    """The telemetry.istio.io version the cluster serves, newest first; fails the task when none."""
    return require_served_version(module, client, TELEMETRY_GROUP, "Telemetry", TELEMETRY_VERSIONS,
                                  "is Istio installed?")


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def check_cel(path, expression):
    """A CEL expression, parsed as istiod parses access-log filters (syntax, not attribute names)."""
    global _parser
    expected = "a CEL expression such as response.code >= 400"
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidOption(path, expected, expression)
    if _parser is None:
        _parser = celpy.CELParser()
    try:
        _parser.parse(expression)
    except celpy.CELParseError as err:
        raise InvalidOption(path, f"{expected} (it does not parse at column {err.column})"
                            if getattr(err, "column", None) else expected, expression) from err
    return expression


def check_tag(path, tag):
    if not isinstance(tag, str) or not TAG_RE.match(tag):
        raise InvalidOption(path, "a metric tag (label) name such as request_protocol", tag)
    return tag


def _check_providers(problems, path, providers):
    for index, provider in enumerate(providers or []):
        problems.check(check_visible_text, f"{path}[{index}]", provider, "a provider name such as envoy",
                       253)
    if providers is not None and len(set(providers)) != len(providers):
        problems.add(path, "each provider once", providers)


def _check_access_logging(problems, path, logging):
    _check_providers(problems, f"{path}.providers", logging.get("providers"))
    if logging.get("filter") is None:
        return
    if logging.get("enabled") is False:
        problems.add(f"{path}.filter", "no filter when access logging is off (enabled: false)",
                     logging["filter"])
    else:
        problems.check(check_cel, f"{path}.filter", logging["filter"])


def _check_tracing(problems, path, tracing):
    _check_providers(problems, f"{path}.providers", tracing.get("providers"))
    sampling = tracing.get("sampling")
    if sampling is not None and (isinstance(sampling, bool) or not 0 <= sampling <= 100):
        problems.add(f"{path}.sampling", "a percentage 0 to 100, such as 1 or 0.5", sampling)


def _check_metrics(problems, path, metrics):
    _check_providers(problems, f"{path}.providers", metrics.get("providers"))
    problems.check(check_proxy_duration, f"{path}.reporting_interval", metrics.get("reporting_interval"))
    for index, override in enumerate(metrics.get("overrides") or []):
        where = f"{path}.overrides[{index}]"
        tags = override.get("remove_tags") or []
        if not override.get("disabled") and not tags:
            problems.add(where, "disabled: true or tags in remove_tags (an override that changes "
                                "nothing)", {k: v for k, v in override.items() if v is not None})
        if override.get("disabled") and tags:
            problems.add(f"{where}.remove_tags", "no tags to remove from a disabled metric", tags)
        for tag_index, tag in enumerate(tags):
            problems.check(check_tag, f"{where}.remove_tags[{tag_index}]", tag)
        if len(set(tags)) != len(tags):
            problems.add(f"{where}.remove_tags", "each tag once", tags)


CHECKS = (("access_logging", _check_access_logging), ("tracing", _check_tracing),
          ("metrics", _check_metrics))


def check_policy(problems, prefix, policy, state):
    """Every problem of one Telemetry; its settings are only required with state=present."""
    problems.check(check_name, _join(prefix, "name"), policy.get("name"))
    if state != "present":
        return
    if all(policy.get(section) is None for section in SECTIONS):
        problems.add(prefix, "at least one of " + ", ".join(SECTIONS), policy.get("name"))
    if policy.get("workload_selector") is not None:
        problems.check(check_labels, _join(prefix, "workload_selector"), policy["workload_selector"])
        if not policy["workload_selector"]:
            problems.add(_join(prefix, "workload_selector"), "at least one label (leave it unset to "
                         "cover the whole namespace)", policy["workload_selector"])
    for section, check in CHECKS:
        if policy.get(section) is not None:
            check(problems, _join(prefix, section), policy[section])


def check_namespace_defaults(problems, path, policies):
    """At most one Telemetry per namespace without a workload selector: istiod applies only one
    of several, and which one is not defined."""
    defaults = [index for index, policy in enumerate(policies) if not policy.get("workload_selector")]
    if len(defaults) > 1:
        problems.add(f"{path}[{defaults[1]}].workload_selector", "a workload selector: "
                     f"{path}[{defaults[0]}] already covers the whole namespace", None)


# Builders -------------------------------------------------------------------------------------

def _providers(names):
    return [{"name": name} for name in names]


def _with_mode(entry, options):
    if options.get("mode") is not None:
        entry["match"] = {"mode": options["mode"]}
    if options.get("providers"):
        entry["providers"] = _providers(options["providers"])
    return entry


def access_logging(options):
    entry = {}
    if options.get("enabled") is False:
        entry["disabled"] = True
    if options.get("filter") is not None:
        entry["filter"] = {"expression": options["filter"]}
    return _with_mode(entry, options)


def tracing(options):
    entry = {}
    if options.get("sampling") is not None:
        entry["randomSamplingPercentage"] = options["sampling"]
    if options.get("disable_span_reporting") is not None:
        entry["disableSpanReporting"] = options["disable_span_reporting"]
    return _with_mode(entry, options)


def _override(options):
    match = {"metric": options.get("metric") or "ALL_METRICS"}
    if options.get("mode") is not None:
        match["mode"] = options["mode"]
    override = {"match": match}
    if options.get("disabled"):
        override["disabled"] = True
    if options.get("remove_tags"):
        override["tagOverrides"] = {tag: {"operation": "REMOVE"} for tag in options["remove_tags"]}
    return override


def metrics(options):
    entry = {}
    if options.get("providers"):
        entry["providers"] = _providers(options["providers"])
    if options.get("overrides"):
        entry["overrides"] = [_override(override) for override in options["overrides"]]
    if options.get("reporting_interval") is not None:
        entry["reportingInterval"] = options["reporting_interval"]
    return entry


BUILDERS = (("access_logging", "accessLogging", access_logging), ("tracing", "tracing", tracing),
            ("metrics", "metrics", metrics))


def telemetry_object(api_version, namespace, policy):
    """One Telemetry from a policy's options: one entry per section that is set."""
    spec = {}
    if policy.get("workload_selector"):
        spec["selector"] = {"matchLabels": dict(policy["workload_selector"])}
    for option, field, build in BUILDERS:
        if policy.get(option) is not None:
            spec[field] = [build(policy[option])]
    return {"apiVersion": f"{TELEMETRY_GROUP}/{api_version}", "kind": "Telemetry",
            "metadata": {"name": policy["name"], "namespace": namespace}, "spec": spec}
