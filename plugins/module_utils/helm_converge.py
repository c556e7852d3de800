# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""One Helm release brought to the wanted state: installed, upgraded, left alone or uninstalled.

Reads first (the release history and the deployed revision's values: a few small requests), and
acts only when the deployed chart, chart version or user-supplied values differ, so a re-run
writes nothing to the API server.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshtune.mesh.plugins.module_utils.helm import (
    PENDING_STATES,
    ChartSource,
    HelmFailure,
    Releases,
    deployed,
    deployed_now,
    plain,
    summary,
    timeout_seconds,
    yaml_text,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.redact import hide_secrets, redact_text


def _yaml(data):
    return yaml_text(data) if data else ""


def _diff(name, before_values, after_values, before_manifest, after_manifest):
    return [
        {"before_header": f"{name} values (deployed)", "after_header": f"{name} values (wanted)",
         "before": _yaml(before_values), "after": _yaml(after_values)},
        {"before_header": f"{name} manifest (deployed)", "after_header": f"{name} manifest (wanted)",
         "before": before_manifest, "after": after_manifest},
    ]


def _action_options(params, check_mode):
    return {
        "timeout": timeout_seconds(params["wait_timeout"]),
        "wait": "watcher" if params["wait"] and not check_mode else None,
        "rollback_on_failure": params["atomic"] or None,
        "dry_run": "server" if check_mode else None,
    }


def _present(module, releases):
    params = module.params
    name = params["release_name"]
    history = releases.history(name)
    latest = history[-1] if history else None
    if latest and latest["status"] in PENDING_STATES:
        raise HelmFailure("check the release state",
                          f"revision {latest['revision']} is {latest['status']}: another Helm "
                          "action on this release is in progress or was interrupted; resolve it "
                          "(roll back or uninstall) before running again")
    source = ChartSource(params["chart_ref"], params["chart_repo_url"], params["chart_version"])
    chart_name, chart_version = source.identify()
    wanted = plain(params["values"])
    current = deployed(history)
    stored = releases.user_values(name, current["revision"]) if current else None
    if current is not None and current is latest and stored == wanted and \
            (current["chart_name"], current["chart_version"]) == (chart_name, chart_version):
        return {"changed": False, "action": "unchanged", "release": summary(current)}

    options = _action_options(params, module.check_mode)
    if history:
        action = "upgraded"
        result = releases.upgrade(name, source, wanted, **options)
    else:
        action = "installed"
        options["create_namespace"] = params["create_namespace"] or None
        result = _dry_run_install(releases, name, source, wanted, options) if module.check_mode \
            else releases.install(name, source, wanted, **options)
    outcome = {"changed": True, "action": action, "release": summary(result)}
    if module._diff:
        before_manifest = releases.manifest(name, current["revision"]) if current else ""
        outcome["diff"] = _diff(name, stored, wanted, before_manifest, result.get("manifest", ""))
    return outcome


def _dry_run_install(releases, name, source, values, options):
    """A server dry run; a client one when the namespace is yet to be created (the server would
    reject every namespaced object of the dry run)."""
    try:
        return releases.install(name, source, values, **options)
    except HelmFailure as failure:
        if options.get("create_namespace") and f'namespaces "{releases.namespace}" not found' in \
                failure.helm_message:
            return releases.install(name, source, values, **{**options, "dry_run": "client"})
        raise


def _absent(module, releases):
    params = module.params
    name = params["release_name"]
    history = releases.history(name)
    if not history:
        return {"changed": False, "action": "absent", "release": None}
    outcome = {"changed": True, "action": "uninstalled", "release": None}
    if module._diff:
        current = deployed(history) or history[-1]
        outcome["diff"] = _diff(name, releases.user_values(name, current["revision"]), None,
                                releases.manifest(name, current["revision"]), "")
    if not module.check_mode:
        releases.uninstall(name, wait="watcher" if params["wait"] else None,
                           timeout=timeout_seconds(params["wait_timeout"]))
    return outcome


def converge_release(module):
    """The module's result; fails the module with the release, the Helm step and the deployed
    revision when a Helm step fails."""
    params = module.params
    name, namespace = params["release_name"], params["release_namespace"]
    hide_secrets(module, urls=[params["chart_repo_url"] or ""])
    releases = failure = None
    deployed_text = ""
    try:
        releases = Releases(params, namespace)
        outcome = _present(module, releases) if params["state"] == "present" \
            else _absent(module, releases)
    except HelmFailure as error:
        failure = error
        if releases is not None:
            deployed_text = deployed_now(releases, name)
    if releases is not None:
        for warning in releases.warnings.messages:
            module.warn(warning)
        releases.close()
    if failure is not None:
        message = f"{failure.step} failed: {failure.helm_message.strip()}. {deployed_text}"
        module.fail_json(msg=f"Helm release {name} (namespace {namespace}): "
                             f"{redact_text(message).strip()}",
                         step=failure.step, release_name=name, release_namespace=namespace)
    return outcome
