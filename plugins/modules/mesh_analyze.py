#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: mesh_analyze
short_description: Find what costs performance in an Istio mesh, read-only
version_added: 0.2.0
description:
  - Reads the mesh and reports findings, each with a stable code (C(MT001) ...), a severity, the
    object, why it costs performance, and the fix, as a meshtune task where one exists. Changes
    nothing in the cluster. C(docs/analyze.md) lists every rule.
  - "Rules: C(MT001) Service ports without a declared protocol (sniffed on every connection);
    C(MT002) injected namespaces without a C(Sidecar) scope in a mesh of more than
    O(min_services_for_scope) Services; C(MT003) sidecar concurrency above the CPU limit, C(0), or
    unset with no CPU limit; C(MT004) HPAs of injected workloads on pod CPU utilization (sidecar
    included); C(MT005) DestinationRules with the same host in one namespace; C(MT006)
    DestinationRule subsets that match no pod; C(MT007) outlier detection with
    C(maxEjectionPercent) 100 on a service with fewer than 3 endpoints; C(MT008) gateways with 2 or
    more replicas and no PodDisruptionBudget; C(MT009) istiod with a CPU limit; C(MT010) sidecars
    without a memory limit in a namespace whose LimitRange gives them one; C(MT011) sidecar
    resources the API server refuses (request above limit, outside a LimitRange); C(MT012)
    namespaces, workloads and pods on an Istio revision that is not installed."
  - Reads each kind with one list call per namespace, or one cluster-wide list per kind from 10
    namespaces on (paged), never one call per object. Kinds read are Services, Pods,
    Deployments, StatefulSets, DaemonSets, HorizontalPodAutoscalers, PodDisruptionBudgets,
    LimitRanges, DestinationRules and Sidecars, plus the ConfigMaps of O(istio_namespace) (the
    sidecar defaults of each revision) and the revision-tag webhooks.
  - Istio revisions installed are those of the istiod Deployments (label C(app=istiod)) in
    O(istio_namespace), and the revision tags that point at them.
  - With O(output_dir), writes C(report.json), C(report.md) and C(report.html) there. A file is
    written only when its bytes differ, so the same cluster state reports no change.
  - With O(fail_on), fails after the report is written when a finding is that severe or worse,
    so the module can gate a CI pipeline.
author:
  - meshtune maintainers (@meshtune)
options:
  namespaces:
    description:
      - Namespaces to analyze. Unset analyzes every namespace.
      - O(istio_namespace) is read in any case (istiod, the sidecar defaults).
    type: list
    elements: str
  istio_namespace:
    description: Namespace of istiod, its ConfigMaps and the root C(Sidecar) of the mesh.
    type: str
    default: istio-system
  min_services_for_scope:
    description:
      - C(MT002) reports injected namespaces without a C(Sidecar) only when the analyzed
        namespaces hold more Services than this.
    type: int
    default: 50
  skip_rules:
    description: Codes of rules not to run, for example C(MT001).
    type: list
    elements: str
    default: []
  fail_on:
    description:
      - Fail when a finding is of this severity or worse (V(info) < V(warning) < V(error)).
      - V(never) only reports.
    type: str
    choices: [never, info, warning, error]
    default: never
  output_dir:
    description:
      - Directory to write the report into (created when missing); other files in it are left
        alone. Unset writes no report.
    type: path
  title:
    description: Title of the report.
    type: str
    default: Mesh performance analysis
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshtune.mesh.auth
attributes:
  check_mode:
    support: full
    description: Reads the same; the report files that would change are listed, not written.
  diff_mode:
    support: none
    description: Changes nothing in the cluster; report files are listed in RV(changed_files).
seealso:
  - module: meshtune.mesh.sidecar_scope
  - module: meshtune.mesh.sidecar_resources
  - module: meshtune.mesh.hpa_policy
"""

EXAMPLES = r"""
- name: Analyze the whole mesh and show the findings
  meshtune.mesh.mesh_analyze:
    output_dir: build/reports/cluster-a/analyze
  register: analysis

- name: Show the table
  ansible.builtin.debug:
    msg: "{{ analysis.table }}"

- name: Gate a pipeline on errors in three namespaces, without the protocol rule
  meshtune.mesh.mesh_analyze:
    namespaces: [shop, payments, catalog]
    skip_rules: [MT001]
    fail_on: error

- name: Apply the fixes that have a meshtune task (review them first)
  meshtune.mesh.sidecar_scope: "{{ item.fix_task.args }}"
  loop: "{{ analysis.findings | selectattr('code', 'equalto', 'MT002') | list }}"
  loop_control:
    label: "{{ item.object }}"
"""

RETURN = r"""
findings:
  description:
    - One entry per finding, most severe first, then by code, namespace, kind and name.
    - C(code), C(severity) (V(info), V(warning) or V(error)) and C(title) of the rule; C(kind),
      C(namespace) (null for a Namespace) and C(name) of the object, and C(object) as one text;
      C(message) saying what was found; C(why) it costs performance; C(fix) in words; and
      C(fix_task), the meshtune task that fixes it (C(module) and C(args)), or null.
  returned: success
  type: list
  elements: dict
  sample:
    - code: MT002
      severity: warning
      title: Injected namespace without a Sidecar scope
      kind: Namespace
      namespace: null
      name: shop
      object: Namespace shop
      message: injected (revision default) with no Sidecar scope, in a mesh of 312 Services (more than 50)
      why: Without a Sidecar, each proxy in the namespace is sent ...
      fix: Give the namespace a default Sidecar ...
      fix_task: {module: meshtune.mesh.sidecar_scope, args: {namespaces: [shop]}}
summary:
  description: Findings by severity, their C(total), and C(by_code).
  returned: success
  type: dict
  sample: {error: 0, warning: 3, info: 0, total: 3, by_code: {MT001: 2, MT002: 1}}
table:
  description: The findings as lines of a plain-text table (code, severity, object, finding).
  returned: success
  type: list
  elements: str
rules:
  description: The rules that ran (C(code), C(severity), C(title)).
  returned: success
  type: list
  elements: dict
objects:
  description: How many objects of each kind were read.
  returned: success
  type: dict
  sample: {Service: 120, Pod: 900, Deployment: 150}
namespaces:
  description: How many namespaces were analyzed.
  returned: success
  type: int
notes:
  description: What the analysis could not see, for example a kind the cluster does not serve.
  returned: success
  type: list
  elements: str
report_files:
  description: Paths of C(report.json), C(report.md) and C(report.html) (with O(output_dir)).
  returned: success
  type: list
  elements: str
changed_files:
  description: Report files written (or that would be, in check mode) because they differ.
  returned: success
  type: list
  elements: str
"""

import os

from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.inventory import (
    read_inventory,
    read_namespaces,
    resolve_resources,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.output import (
    DEFAULT_TITLE,
    console_table,
    render_files,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.analyze.rules import (
    RULES,
    at_or_above,
    check_codes,
    run_rules,
    summary,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.kube import (
    KubeClient,
    KubeError,
    auth_argument_spec,
    fail_read,
    validated_module,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.report import (
    check_output_dir,
    check_title,
    files_to_write,
    write_files,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import (
    Problems,
    check_name,
    check_range,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.workloads import YAML_IMPORT_ERROR


def argument_spec():
    spec = auth_argument_spec()
    spec.update(
        namespaces={"type": "list", "elements": "str"},
        istio_namespace={"type": "str", "default": "istio-system"},
        min_services_for_scope={"type": "int", "default": 50},
        skip_rules={"type": "list", "elements": "str", "default": []},
        fail_on={"type": "str", "choices": ["never", "info", "warning", "error"], "default": "never"},
        output_dir={"type": "path"},
        title={"type": "str", "default": DEFAULT_TITLE},
    )
    return spec


def validate(params):
    """Every problem with the options, as one message; None when all is well."""
    problems = Problems()
    namespaces = params["namespaces"]
    if namespaces is not None:
        if not namespaces:
            problems.add("namespaces", "at least one namespace, or the option left out", [])
        for index, namespace in enumerate(namespaces):
            problems.check(check_name, f"namespaces[{index}]", namespace, label=True)
        if len(set(namespaces)) != len(namespaces):
            problems.add("namespaces", "each namespace once", namespaces)
    problems.check(check_name, "istio_namespace", params["istio_namespace"], label=True)
    problems.check(check_range, "min_services_for_scope", params["min_services_for_scope"], 0)
    problems.check(check_codes, "skip_rules", params["skip_rules"])
    if params["output_dir"] is not None:
        problems.check(check_output_dir, params["output_dir"])
    problems.check(check_title, params["title"])
    return problems.message()


def main():
    module = validated_module(argument_spec(), validate, missing_libraries=(("PyYAML", YAML_IMPORT_ERROR),))
    params = module.params
    client = KubeClient.from_module(module)
    resources = resolve_resources(module, client)
    try:
        namespaces = read_namespaces(client, resources)
        missing = sorted(set(params["namespaces"] or ()) - set(namespaces))
        if missing:
            module.fail_json(msg=f"Namespaces not found: {', '.join(missing)}")
        analyzed = sorted(params["namespaces"] or namespaces)
        inventory = read_inventory(client, resources, namespaces, analyzed, params["istio_namespace"])
    except KubeError as error:
        fail_read(module, error, "the mesh")
    rules = [rule for rule in RULES if rule.code not in params["skip_rules"]]
    findings = run_rules(inventory, {"min_services_for_scope": params["min_services_for_scope"]},
                         params["skip_rules"])
    counts = summary(findings)
    result = {"changed": False, "findings": findings, "summary": counts, "table": console_table(findings),
              "rules": [{"code": r.code, "severity": r.severity, "title": r.title} for r in rules],
              "objects": inventory.counts(), "namespaces": len(analyzed),
              "notes": notes(inventory)}
    if params["output_dir"]:
        write_report(module, result, rules)
    gate(module, result)
    module.exit_json(**result)


def notes(inventory):
    """What the analysis could not see."""
    found = [f"the cluster serves no {kind} API: its rules found nothing" for kind in inventory.unserved]
    if not inventory.istiods:
        found.append(f"no istiod Deployment (label app=istiod) in {inventory.istio_namespace}: "
                     "revision checks (MT012) and istiod checks (MT009) found nothing")
    if not inventory.tags_read:
        found.append("revision tags could not be read (MutatingWebhookConfigurations forbidden)")
    return found


def write_report(module, result, rules):
    output_dir = module.params["output_dir"]
    files = render_files(module.params["title"], result["findings"], result["summary"], rules,
                         result["objects"])
    changed = files_to_write(output_dir, files)
    result["report_files"] = [os.path.join(output_dir, name) for name in files]
    result["changed_files"] = [os.path.join(output_dir, name) for name in changed]
    result["changed"] = bool(changed)
    if changed and not module.check_mode:
        try:
            write_files(output_dir, files, changed)
        except OSError as err:
            module.fail_json(msg=f"output_dir: could not write the report into {output_dir}: {err}", **result)


def gate(module, result):
    """Fail when fail_on is set and a finding is that severe or worse."""
    if module.params["fail_on"] == "never":
        return
    severe = at_or_above(result["findings"], module.params["fail_on"])
    if severe:
        shown = "; ".join(f"{f['code']} {f['object']}: {f['message']}" for f in severe[:20])
        more = f" (and {len(severe) - 20} more)" if len(severe) > 20 else ""
        module.fail_json(msg=f"{len(severe)} finding(s) of severity {module.params['fail_on']} or worse: "
                             f"{shown}{more}", **result)


if __name__ == "__main__":
    main()
