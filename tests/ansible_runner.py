"""Run ansible-playbook from the virtual environment, with this repository's ansible.cfg."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


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
