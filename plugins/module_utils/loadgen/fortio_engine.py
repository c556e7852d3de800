# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The load_test module's side of the fortio engine: the auth options it passes on, and one run
with its cleanup turned into return values and a failure message."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import (
    KUBERNETES_IMPORT_ERROR,
    KubeClient,
    KubeError,
    auth_argument_spec,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.fortio_run import FortioError, FortioRun


def auth_option_names():
    """kubernetes.core's auth options that load_test takes: all but validate_certs.

    load_test's validate_certs is about the target's certificate. Passing it on would turn off
    (or force) verification of the API server's certificate as well, so the API server's is
    left to the kubeconfig or K8S_AUTH_VERIFY_SSL.
    """
    return [name for name in auth_argument_spec() if name != "validate_certs"]


class _AuthView:
    """The module as kubernetes.core's client factory sees it: the auth options only."""

    server_side_dry_run = False

    def __init__(self, module):
        self._module = module
        self.params = {name: module.params.get(name) for name in auth_option_names()}

    def requires(self, dependency, minimum=None, reason=None):
        from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import requires

        try:
            requires(dependency, minimum, reason=reason)
        except Exception as error:  # noqa: BLE001 - kubernetes.core raises a bare Exception
            self._module.fail_json(msg=str(error))

    def fail_json(self, **kwargs):
        self._module.fail_json(**kwargs)


def execute(module, spec, progress=None, work=None):
    """Run the fortio engine for load_test: (return values, failure message or None).

    `work(runner)` does the measuring and returns return values: one run by default
    (FortioRun.run), or the steps of a capacity search. Objects are deleted again whatever
    happens after the first one was created (unless cleanup is off); in check mode only reads
    are made. `work` may raise FortioError, KubeError or ValueError (a step that measured
    nothing) to fail the task.
    """
    settings = spec.fortio
    if KUBERNETES_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(KUBERNETES_IMPORT_ERROR))
    kube = KubeClient.from_module(_AuthView(module))
    runner = FortioRun(kube, settings, spec, progress)
    output = {"changed": False, "url": spec.url}
    failure = None
    try:
        if module.check_mode:
            runner.preflight()
            output["objects"] = runner.planned()
            output["msg"] = "check mode: options are valid, nothing was created"
            return output, None
        try:
            output.update(runner.run() if work is None else work(runner))
        finally:
            if settings.cleanup:
                problems = runner.cleanup()
                if problems:
                    module.warn("cleanup: could not delete " + "; ".join(problems))
                    output["changed"] = True
            elif runner.created:
                output["changed"] = True
            output["objects"] = runner.object_states()
    except (FortioError, KubeError, ValueError) as error:
        failure = f"fortio engine: {error}"
        if progress is not None:
            progress(f"failed: {error}")
    return output, failure
