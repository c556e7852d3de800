#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: helm_release
short_description: Install, upgrade or uninstall a Helm release with Helm's Go SDK, no helm program
version_added: 0.2.0
description:
  - Installs or upgrades release O(release_name) from a chart with the given O(values), or
    uninstalls it. Helm runs in-process through its official Go SDK (the C(helm-python-sdk)
    package), so the C(helm) program is not needed on the controller.
  - Idempotent. A release that is deployed with the same chart, chart version and user-supplied
    values is left alone, with no upgrade and no write to the API server. The values are compared
    as Helm stores them.
  - Objects are applied the way Helm 4 does by default (server-side apply), after Helm's
    client-side validation against the cluster's OpenAPI schemas.
  - Check mode runs a server-side dry run and writes nothing. Diff mode shows the user-supplied
    values and the rendered manifests before and after.
  - A failure names the release, the Helm step that failed and Helm's message, and says which
    revision is deployed now.
author:
  - meshtune maintainers (@meshtune)
options:
  release_name:
    description: Name of the release (a DNS subdomain of at most 53 characters).
    type: str
    required: true
  release_namespace:
    description: Namespace of the release, where Helm keeps its records.
    type: str
    required: true
  chart_ref:
    description:
      - The chart. A chart name in O(chart_repo_url), a local packaged chart (C(.tgz)) or chart
        directory, or an C(oci://) reference.
      - Required with O(state=present).
    type: str
  chart_repo_url:
    description:
      - The chart repository that serves O(chart_ref). Either an C(http://) or C(https://) chart
        repository URL, or a local directory (or C(file://) URL) that holds the chart packages
        and their C(index.yaml). Such a local chart mirror serves installs where clusters cannot
        reach the internet.
    type: str
  chart_version:
    description:
      - Version of the chart to install, exactly as the repository lists it.
      - Required unless O(chart_ref) is a local chart, whose version is read from the chart.
    type: str
  values:
    description: User-supplied chart values; replace all values of the previous revision.
    type: dict
    default: {}
  state:
    description: V(present) installs or upgrades; V(absent) uninstalls.
    type: str
    choices: [present, absent]
    default: present
  wait:
    description:
      - Wait until every object of the release is ready (Helm's kstatus watcher), or is gone after
        an uninstall.
    type: bool
    default: false
  wait_timeout:
    description:
      - How long Helm may take for the action, including the wait. A Go duration such as
        C(10m0s) or C(300s), or a number of seconds.
    type: raw
    default: 5m0s
  atomic:
    description:
      - When the install or upgrade fails, roll back to the last good revision (an install is
        uninstalled), so that nothing half-applied stays behind.
    type: bool
    default: false
  create_namespace:
    description: Create O(release_namespace) when it does not exist.
    type: bool
    default: false
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshtune.mesh.auth
notes:
  - The auth options O(username), O(password), O(client_cert), O(client_key), O(proxy),
    O(no_proxy) and O(proxy_headers) are not supported. Put them in the kubeconfig instead.
  - Helm's warnings, such as deprecated APIs, are passed on as task warnings.
requirements:
  - helm-python-sdk >= 0.2.2 (Python)
"""

EXAMPLES = r"""
- name: Install istiod 1.30.3 from the official repository, rolled back if it is not ready in time
  meshtune.mesh.helm_release:
    release_name: istiod-1-30-3
    release_namespace: istio-system
    create_namespace: true
    chart_ref: istiod
    chart_repo_url: https://istio-release.storage.googleapis.com/charts
    chart_version: 1.30.3
    values:
      revision: 1-30-3
      pilot: {autoscaleMin: 2}
    atomic: true
    wait: true
    wait_timeout: 10m0s

- name: The same from a local chart mirror (a directory with the packages and index.yaml)
  meshtune.mesh.helm_release:
    release_name: istiod-1-30-3
    release_namespace: istio-system
    chart_ref: istiod
    chart_repo_url: /srv/chart-mirror
    chart_version: 1.30.3
    values: {revision: 1-30-3}

- name: Uninstall an old control-plane revision
  meshtune.mesh.helm_release:
    release_name: istiod-1-29-6
    release_namespace: istio-system
    state: absent
    wait: true
"""

RETURN = r"""
release:
  description: The release after the task; null when it is absent.
  returned: always
  type: dict
  contains:
    name: {description: Release name., type: str, sample: istiod-1-30-3}
    namespace: {description: Release namespace., type: str, sample: istio-system}
    revision: {description: Revision number., type: int, sample: 2}
    status: {description: Helm's status of the revision., type: str, sample: deployed}
    chart_name: {description: Chart name., type: str, sample: istiod}
    chart_version: {description: Chart version., type: str, sample: 1.30.3}
    app_version: {description: The chart's application version., type: str, sample: 1.30.3}
    deployed_at: {description: When the revision was deployed (UTC)., type: str}
action:
  description: What was done (or would be done, in check mode).
  returned: always
  type: str
  sample: upgraded
  choices: [installed, upgraded, unchanged, uninstalled, absent]
diff:
  description:
    - The user-supplied values and the rendered manifests before and after (diff mode).
  returned: diff mode, when something changes
  type: list
  elements: dict
"""

import os

from ansible_collections.meshtune.mesh.plugins.module_utils.helm import (
    HELM_IMPORT_ERROR,
    RELEASE_NAME_MAX,
    RELEASE_NAME_RE,
    UNSUPPORTED_AUTH,
    YAML_IMPORT_ERROR,
    is_local_chart,
    is_local_repository,
    mirror_index,
    timeout_seconds,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.kube import (
    auth_argument_spec,
    validated_module,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import Problems, check_name

if HELM_IMPORT_ERROR is None and YAML_IMPORT_ERROR is None:
    from ansible_collections.meshtune.mesh.plugins.module_utils.helm_converge import (
        converge_release,
    )


def argument_spec():
    spec = auth_argument_spec()
    spec.update(
        release_name={"type": "str", "required": True},
        release_namespace={"type": "str", "required": True},
        chart_ref={"type": "str"},
        chart_repo_url={"type": "str"},
        chart_version={"type": "str"},
        values={"type": "dict", "default": {}},
        state={"type": "str", "choices": ["present", "absent"], "default": "present"},
        wait={"type": "bool", "default": False},
        wait_timeout={"type": "raw", "default": "5m0s"},
        atomic={"type": "bool", "default": False},
        create_namespace={"type": "bool", "default": False},
    )
    return spec


def validate(params):
    """Every problem with the options, as one message; None when all is well."""
    problems = Problems()
    name = params["release_name"]
    if not RELEASE_NAME_RE.match(name) or len(name) > RELEASE_NAME_MAX:
        problems.add("release_name", f"a DNS subdomain of at most {RELEASE_NAME_MAX} characters "
                                     "(lowercase letters, digits, '-' and '.')", name)
    problems.check(check_name, "release_namespace", params["release_namespace"], label=True)
    if timeout_seconds(params["wait_timeout"]) is None:
        problems.add("wait_timeout", "a positive Go duration such as 10m0s or 300s, or seconds",
                     params["wait_timeout"])
    for option in UNSUPPORTED_AUTH:
        if params.get(option):
            problems.add(option, "unset: helm_release takes this from the kubeconfig only",
                         "(set)" if option in ("password", "proxy_headers") else params[option])
    if params["state"] == "present":
        _check_chart(params, problems)
    return problems.message()


def _check_chart(params, problems):
    chart_ref, repo, version = params["chart_ref"], params["chart_repo_url"], params["chart_version"]
    if not chart_ref:
        problems.add("chart_ref", "a chart name, a local chart path or an oci:// reference "
                                  "(required with state=present)", chart_ref)
        return
    if chart_ref.startswith("oci://") and repo:
        problems.add("chart_repo_url", "unset with an oci:// chart_ref", repo)
    if repo and is_local_repository(repo):
        if not os.path.isfile(mirror_index(repo)):
            problems.add("chart_repo_url", "an http(s):// chart repository URL or a local chart "
                                           "mirror directory with an index.yaml", repo)
    elif repo and not repo.startswith(("http://", "https://")):
        problems.add("chart_repo_url", "an http(s):// chart repository URL or a local chart mirror "
                                       "directory with an index.yaml", repo)
    local = is_local_chart(chart_ref) and not repo
    if not version and not local:
        problems.add("chart_version", "the chart version to install, e.g. 1.30.3 (required unless "
                                      "chart_ref is a local chart)", version)


def main():
    module = validated_module(argument_spec(), validate,
                              missing_libraries=(("helm-python-sdk", HELM_IMPORT_ERROR),
                                                 ("PyYAML", YAML_IMPORT_ERROR)))
    module.exit_json(**converge_release(module))


if __name__ == "__main__":
    main()
