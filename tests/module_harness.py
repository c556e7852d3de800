"""Run a module's main() in this process, as Ansible would, and return its result."""

from __future__ import annotations

import contextlib
import io
import json

from ansible.module_utils.testing import patch_module_args


def call_module(main, args: dict, check_mode: bool = False, diff: bool = False) -> dict:
    """The module's result dict (with `failed` when it failed); never raises for a failed module."""
    args = {**args, "_ansible_check_mode": check_mode, "_ansible_diff": diff}
    output = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(output), \
            contextlib.suppress(SystemExit):
        main()
    return json.loads(output.getvalue())
