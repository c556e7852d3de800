#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: k8s_objects
short_description: Make Kubernetes objects have at least the given fields, writing only what differs
version_added: 0.2.0
description:
  - Creates each object of O(definitions) that is missing. Merge-patches one whose live state
    lacks a given field or holds another value. Leaves one alone, with no write request at all,
    when every given field already has the given value.
  - Fields a definition leaves out are not touched, so shared objects keep what others set (a
    Namespace its other labels, a ConfigMap its other keys). Lists are compared and replaced
    whole.
  - Reads each object once. Every definition is checked, and every kind resolved against the
    cluster's API discovery, before the first write.
  - Check mode writes nothing. Diff mode shows each change; a Secret's data values are hidden.
author:
  - meshtune maintainers (@meshtune)
options:
  definitions:
    description:
      - The objects. A list of mappings, one mapping, or YAML text with one or more documents
        (for example from a template lookup). Empty documents are skipped.
      - Each needs C(apiVersion), C(kind) and C(metadata.name), and C(metadata.namespace) when
        the kind is namespaced.
    type: raw
    required: true
  parallelism:
    description: How many writes may run at once.
    type: int
    default: 8
  dry_run_first:
    description:
      - Send every create and patch first as a server-side dry run (C(dryRun=All)), so the API
        server validates the whole batch (against the CRD schemas it serves, for custom
        resources) before the first write. If it rejects any object, the task fails naming each
        one with the server's reason, and nothing is written.
      - Also in check mode, where only the dry runs are sent.
    type: bool
    default: false
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshtune.mesh.auth
"""

EXAMPLES = r"""
- name: Create the namespaces and label the injected one, keeping the labels others set
  meshtune.mesh.k8s_objects:
    definitions:
      - {apiVersion: v1, kind: Namespace, metadata: {name: istio-system}}
      - {apiVersion: v1, kind: Namespace, metadata: {name: shop, labels: {istio.io/rev: 1-30-3}}}

- name: Apply custom resources only when the server accepts every one of them
  meshtune.mesh.k8s_objects:
    definitions: "{{ lookup('ansible.builtin.template', 'monitors.yml.j2') }}"
    dry_run_first: true

- name: Apply the objects a template renders
  meshtune.mesh.k8s_objects:
    definitions: "{{ lookup('ansible.builtin.template', 'objects.yml.j2') }}"
"""

RETURN = r"""
results:
  description: One entry per object.
  returned: always
  type: list
  elements: dict
  sample:
    - {kind: Namespace, namespace: null, name: shop, api_version: v1, action: updated}
summary:
  description: How many objects were created, updated, unchanged or failed.
  returned: always
  type: dict
  sample: {created: 0, updated: 1, unchanged: 1, deleted: 0, skipped: 0, failed: 0, total: 2}
retries:
  description: API calls that were retried (conflicts, throttling, server errors).
  returned: success
  type: int
  sample: 0
diff:
  description: Before and after of every changed object (diff mode).
  returned: diff mode
  type: list
  elements: dict
"""

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import (
    KUBERNETES_IMPORT_ERROR,
    auth_argument_spec,
    validated_module,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.objects import check_definition
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption, Problems

try:
    import yaml

    YAML_IMPORT_ERROR = None
except ImportError as err:
    YAML_IMPORT_ERROR = err

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import (
    KubeClient,
    KubeError,
    fail_read,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.objects import (
    dry_run_rejections,
    plan_present,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.reconcile import (
    add_option_problems,
    apply_changes,
)

if KUBERNETES_IMPORT_ERROR is None:
    from kubernetes.dynamic.exceptions import ResourceNotFoundError


def argument_spec():
    spec = auth_argument_spec()
    spec.update(
        definitions={"type": "raw", "required": True},
        parallelism={"type": "int", "default": 8},
        dry_run_first={"type": "bool", "default": False},
    )
    return spec


def definitions_of(value):
    """The definitions as a list; InvalidOption for anything but mappings or YAML documents."""
    if isinstance(value, str):
        try:
            value = list(yaml.safe_load_all(value))
        except yaml.YAMLError as error:
            raise InvalidOption("definitions", "YAML documents", str(error).splitlines()[0]) \
                from error
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise InvalidOption("definitions", "a list of Kubernetes objects", value)
    return [obj for obj in value if obj is not None]


def validate(params):
    """Every problem with the options, as one message; None when all is well."""
    problems = Problems()
    try:
        definitions = definitions_of(params["definitions"])
    except InvalidOption as error:
        problems.add(error.path, error.expected, error.value)
        return problems.message()
    for index, obj in enumerate(definitions):
        problems.check(check_definition, f"definitions[{index}]", obj)
    add_option_problems(problems, params)
    return problems.message()


def resolve(module, client, definitions):
    """(resource, namespace, definition) for each definition; fails the module, before any
    write, on a kind the cluster does not serve or a namespaced object without a namespace."""
    targets = []
    for index, obj in enumerate(definitions):
        try:
            resource = client.resource(obj["apiVersion"], obj["kind"])
        except (ResourceNotFoundError, KubeError) as error:
            module.fail_json(msg=f"definitions[{index}]: the cluster does not serve {obj['kind']} "
                                 f"in {obj['apiVersion']} ({error}); nothing was changed")
        namespace = obj["metadata"].get("namespace") if resource.namespaced else None
        if resource.namespaced and not namespace:
            module.fail_json(msg=f"definitions[{index}].metadata.namespace: expected the namespace "
                                 f"of this {obj['kind']}, got None; nothing was changed")
        targets.append((resource, namespace, obj))
    return targets


def main():
    module = validated_module(argument_spec(), validate,
                              missing_libraries=(("PyYAML", YAML_IMPORT_ERROR),))
    client = KubeClient.from_module(module)
    targets = resolve(module, client, definitions_of(module.params["definitions"]))
    try:
        changes = plan_present(client, targets)
        rejected = dry_run_rejections(client, targets, changes) \
            if module.params["dry_run_first"] else []
    except KubeError as error:
        fail_read(module, error, "the objects")
    if rejected:
        module.fail_json(msg=f"the API server rejects {len(rejected)} of {len(targets)} objects in a "
                             f"dry run; nothing was written: {'; '.join(rejected)}")
    module.exit_json(**apply_changes(module, client, changes, module.params["parallelism"]))


if __name__ == "__main__":
    main()
