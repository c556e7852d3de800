#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: istio_precheck
short_description: Check a cluster before a canary upgrade of Istio to a new revision
version_added: 0.1.0
description:
  - Read-only checks that playbooks/upgrade.yml runs before it changes anything. Each finding
    names the object and the fix; any finding fails the task with a table of them.
  - B(Version skew) - O(previous_version) (or the version read from the C(istiod-<previous_revision>)
    Deployment's labels or image, or a revision named after its version such as C(1-29-6)) and
    O(version) must be at most two minor versions apart, as Istio supports for canary upgrades.
  - B(Deprecated API versions and fields) - every stored DestinationRule, VirtualService, Gateway,
    ServiceEntry, Sidecar, WorkloadEntry, WorkloadGroup, AuthorizationPolicy, PeerAuthentication,
    RequestAuthentication and Telemetry, read with one cluster-wide list per kind. An object written
    as C(networking.istio.io/v1alpha3) or C(v1beta1), C(security.istio.io/v1beta1) or
    C(telemetry.istio.io/v1alpha1) (from Istio 1.22 on, as its C(managedFields) or the
    C(kubectl.kubernetes.io/last-applied-configuration) annotation record it) is listed, and so is
    each use of C(outlierDetection.consecutiveErrors), C(loadBalancer.simple=LEAST_CONN) and
    C(mirrorPercent).
  - B(Injection labels) - namespaces labelled both C(istio-injection) and C(istio.io/rev); the
    first wins and the revision label is ignored.
  - B(Revision tags) - a tag of O(tags) whose injector webhook (C(istio.io/tag) label) already
    points at a revision other than O(revision).
author:
  - meshtune maintainers (@meshtune)
options:
  revision:
    description: The new revision, a DNS label such as C(1-30-3).
    type: str
    required: true
  version:
    description: Istio version of the new revision, such as C(1.30.3).
    type: str
    required: true
  previous_revision:
    description: The revision in use now.
    type: str
    required: true
  previous_version:
    description:
      - Istio version of O(previous_revision). Read from the cluster when left out (see above); a
        finding asks for it when it cannot be read.
    type: str
  tags:
    description: Revision tags the new revision will serve.
    type: list
    elements: str
    default: []
  istio_namespace:
    description: Namespace of istiod.
    type: str
    default: istio-system
notes:
  - Read-only; check mode runs the same reads.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshtune.mesh.auth
"""

EXAMPLES = r"""
- name: Check the cluster before upgrading 1-29-6 to 1-30-3 with the tag prod-canary
  meshtune.mesh.istio_precheck:
    revision: 1-30-3
    version: 1.30.3
    previous_revision: 1-29-6
    tags: [prod-canary]
"""

RETURN = r"""
findings:
  description: What stands in the way of the upgrade, one entry per object and problem.
  returned: always
  type: list
  elements: dict
  contains:
    check:
      description:
        - V(version skew), V(deprecated API version), V(deprecated field), V(injection labels) or
          V(revision tag).
      type: str
    object:
      description: The object, e.g. C(DestinationRule shop/cart).
      type: str
    problem:
      description: What is wrong.
      type: str
    fix:
      description: What to do about it.
      type: str
  sample:
    - check: deprecated field
      object: DestinationRule shop/cart
      problem: spec.trafficPolicy.outlierDetection.consecutiveErrors is deprecated
      fix: use consecutive5xxErrors (consecutiveErrors also counted 5xx as errors)
table:
  description: The findings as a text table.
  returned: when there are findings
  type: str
versions:
  description: The versions compared, and where the previous one was read.
  returned: always
  type: dict
  sample:
    new: 1.30.3
    previous: 1.29.6
    previous_from: label app.kubernetes.io/version of Deployment istiod-1-29-6
"""

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import (
    KubeClient,
    KubeError,
    auth_argument_spec,
    fail_read,
    validated_module,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.upgrade import (
    REV_LABEL,
    TAG_LABEL,
    deployed_version,
    deprecation_findings,
    finding,
    findings_table,
    label_clash_findings,
    parse_version,
    served_istio_resources,
    skew_findings,
    tag_findings,
    version_text,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import Problems, check_name


def argument_spec():
    spec = auth_argument_spec()
    spec.update(
        revision={"type": "str", "required": True},
        version={"type": "str", "required": True},
        previous_revision={"type": "str", "required": True},
        previous_version={"type": "str"},
        tags={"type": "list", "elements": "str", "default": []},
        istio_namespace={"type": "str", "default": "istio-system"},
    )
    return spec


def validate(params):
    problems = Problems()
    for option in ("revision", "previous_revision", "istio_namespace"):
        problems.check(check_name, option, params[option], label=True)
    for index, tag in enumerate(params["tags"]):
        problems.check(check_name, f"tags[{index}]", tag, label=True)
    if params["revision"] == params["previous_revision"]:
        problems.add("previous_revision", "a revision other than revision", params["previous_revision"])
    problems.check(parse_version, "version", params["version"])
    if params["previous_version"] is not None:
        problems.check(parse_version, "previous_version", params["previous_version"])
    return problems.message()


def previous(client, params):
    """(version or None, where it was read)."""
    if params["previous_version"]:
        return parse_version("previous_version", params["previous_version"]), "option previous_version"
    istiod = client.get(client.resource("apps/v1", "Deployment"), params["istio_namespace"],
                        f"istiod-{params['previous_revision']}")
    return deployed_version(istiod, params["previous_revision"])


def run_checks(client, params):
    new = parse_version("version", params["version"])
    old, source = previous(client, params)
    findings = []
    if old is None:
        findings.append(finding("version skew", f"revision {params['previous_revision']}",
                                f"its Istio version is unknown: {source}",
                                "set previous_version (istio_previous_version)"))
    else:
        findings += skew_findings(new, old, params["previous_revision"], params["revision"])
    for group, current, deprecated, kind, resource in served_istio_resources(client):
        for obj in client.list(resource):
            findings += deprecation_findings(kind, group, current, deprecated, obj, new)
    findings += label_clash_findings(client.list(client.resource("v1", "Namespace")))
    if params["tags"]:
        webhooks = client.resource("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
        hooks = client.list(webhooks, label_selector=TAG_LABEL)
        findings += tag_findings(hooks, params["tags"], params["revision"])
    versions = {"new": version_text(new), "previous": version_text(old) if old else None,
                "previous_from": source}
    return findings, versions


def main():
    module = validated_module(argument_spec(), validate)
    client = KubeClient.from_module(module)
    try:
        findings, versions = run_checks(client, module.params)
    except KubeError as error:
        fail_read(module, error, "the cluster for the upgrade precheck")
    result = {"changed": False, "findings": findings, "versions": versions}
    if findings:
        result["table"] = findings_table(findings)
        module.fail_json(msg=f"Upgrade precheck: {len(findings)} finding(s), nothing was changed. "
                             f"Fix them, then run the upgrade again ({REV_LABEL} "
                             f"{module.params['previous_revision']} -> {module.params['revision']}):\n"
                             f"{result['table']}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
