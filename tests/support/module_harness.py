"""Run a module's main() in this process, as Ansible would, and return its result."""

from __future__ import annotations

import contextlib
import io
import json
from unittest import mock

# The two private pieces of ansible-core this harness needs, used here and nowhere else: its
# public testing helper (patch_module_args) sets a module's arguments, but has no switch for
# "this process is a module, not the controller" (_internal.is_controller) and no way to drop
# the warnings an earlier module call left in the process (_global_warnings/_deprecations).
# Without them, warnings go to the controller's display instead of the result, or leak between
# calls. If ansible-core gains public ways to do either, use them here.
from ansible.module_utils import _internal as ansible_internal
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args


def call_module(main, args: dict, check_mode: bool = False, diff: bool = False) -> dict:
    """The module's result dict (with `failed` when it failed); never raises for a failed module.

    Runs as a module process would: not as the controller (tests that template with Ansible make
    this process one, which would send warnings to the display instead of the result), and with
    no warnings left over from earlier calls.
    """
    args = {**args, "_ansible_check_mode": check_mode, "_ansible_diff": diff}
    output = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(output), \
            contextlib.suppress(SystemExit), \
            mock.patch.object(ansible_internal, "is_controller", False), \
            mock.patch.dict(ansible_warnings._global_warnings, clear=True), \
            mock.patch.dict(ansible_warnings._global_deprecations, clear=True):
        main()
    return json.loads(output.getvalue())
