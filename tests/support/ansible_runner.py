"""Run ansible-playbook from the virtual environment, with this repository's ansible.cfg."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_playbook(playbook: Path, extra_vars: dict | None = None, *args: str,
                 inventory: str = "localhost,", env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a playbook on the controller; returns the finished process (output captured)."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", **(env or {})}
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", inventory,
               "-e", f"ansible_python_interpreter={sys.executable}"]
    if inventory == "localhost,":
        command += ["-c", "local"]
    if extra_vars:
        command += ["-e", json.dumps(extra_vars)]
    return subprocess.run([*command, *args, str(playbook)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


MODULE_PLAYBOOK = """
- name: Run one module
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the module under test
      {module}: "{{{{ module_args }}}}"
      register: outcome
      ignore_errors: true

    - name: Keep the result
      ansible.builtin.copy:
        content: "{{{{ outcome | to_json }}}}"
        dest: "{{{{ result_file }}}}"
        mode: "0644"
      check_mode: false
      diff: false
"""


def run_module(tmp_path: Path, module: str, args: dict, *flags: str) -> dict:
    """Run one module task (flags such as --check, --diff) and return its registered result."""
    playbook = tmp_path / "module.yml"
    playbook.write_text(MODULE_PLAYBOOK.format(module=module))
    result_file = tmp_path / "result.json"
    result_file.unlink(missing_ok=True)
    process = run_playbook(playbook, {"module_args": args, "result_file": str(result_file)}, *flags)
    assert result_file.exists(), process.stdout + process.stderr
    return json.loads(result_file.read_text())
