"""Render the roles' Jinja templates the way Ansible's template module does.

Ansible's own Templar is used (not plain Jinja) so that the role defaults resolve lazily and
Ansible's filters and lookups (`combine`, `lookup('file')`) behave as in a real run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

try:  # ansible-core >= 2.19 only templates strings marked as trusted templates
    from ansible.template import trust_as_template
except ImportError:  # pragma: no cover - older ansible-core templates every string

    def trust_as_template(value: str) -> str:
        return value


ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"


def role_defaults(role: str) -> dict[str, Any]:
    """The role's defaults/main.yml as data (templated values stay strings)."""
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text(encoding="utf-8"))


def _trusted(value: Any) -> Any:
    """Mark strings inside variables as templates, as Ansible does for vars files it loads."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: _trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_trusted(item) for item in value]
    return value


def render_template(role: str, template: str, extra_vars: dict[str, Any] | None = None) -> str:
    """Render roles/<role>/templates/<template> with the role defaults plus inventory vars."""
    role_path = ROLES / role
    variables = _trusted(role_defaults(role))
    variables.update(extra_vars or {})
    variables.update({"role_path": str(role_path), "ansible_search_path": [str(role_path)]})
    loader = DataLoader()
    loader.set_basedir(str(role_path))
    templar = Templar(loader=loader, variables=variables)
    source = (role_path / "templates" / template).read_text(encoding="utf-8")
    return templar.template(trust_as_template(source))
