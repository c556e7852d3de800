"""roles/verify's own lists agree with the modules and with its documentation.

The role checks target names, load options and Prometheus options before any load (a typo must
not cost minutes of load first), so it keeps its own lists of them; these tests keep the lists in
step with slo_check, load_test and prometheus_query. Every default must be in the argument spec.
"""

from __future__ import annotations

import yaml

from ansible_collections.meshtune.mesh.plugins.module_utils.slo import PROXY_FIGURES, TARGETS
from ansible_collections.meshtune.mesh.plugins.modules import load_test, prometheus_query
from tests.support.ansible_runner import REPO_ROOT

ROLE = REPO_ROOT / "roles" / "verify"


def load(path: str) -> dict:
    return yaml.safe_load((ROLE / path).read_text())


def test_target_names_are_slo_checks():
    role_vars = load("vars/main.yml")
    names = (role_vars["verify_latency_target_names"] + ["success_rate", "min_qps_ratio"]
             + role_vars["verify_baseline_target_names"] + role_vars["verify_proxy_target_names"]
             + ["min_capacity_ratio"])
    assert sorted(names) == sorted(TARGETS)
    assert sorted(role_vars["verify_baseline_target_names"]) == sorted(
        name for name, target in TARGETS.items() if target.source == "baseline")
    assert role_vars["verify_proxy_figure_targets"] == dict(PROXY_FIGURES)


def test_proxy_queries_cover_every_proxy_figure():
    assert sorted(load("defaults/main.yml")["verify_proxy_queries"]) == sorted(PROXY_FIGURES)


def test_option_lists_are_module_options():
    role_vars = load("vars/main.yml")
    load_options = set(load_test.argument_spec())
    assert set(role_vars["verify_load_option_names"]) <= load_options
    assert set(role_vars["verify_load_run_option_names"]) <= load_options
    assert set(role_vars["verify_prometheus_option_names"]) <= set(prometheus_query.argument_spec())


def test_load_tasks_pass_the_options_the_role_builds_as_they_are():
    tasks = load("tasks/load.yml")
    check = tasks[0]["block"][0]
    assert check["meshtune.mesh.load_test"] is None
    assert check["module_defaults"] == {"meshtune.mesh.load_test": "{{ verify_load_args }}"}
    run = next(task for task in tasks if task.get("name", "").startswith("Send the load"))
    assert run["meshtune.mesh.load_test"] is None
    assert run["module_defaults"] == check["module_defaults"]
    role_vars = load("vars/main.yml")
    built = (set(role_vars["verify_load_option_names"]) | set(role_vars["verify_load_run_option_names"])
             | set(role_vars["verify_load_common_args"]) | {"kubeconfig", "context"})
    assert built <= set(load_test.argument_spec())


def test_every_default_is_in_the_argument_spec():
    defaults = load("defaults/main.yml")
    options = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(defaults) <= set(options)
    proxy = load("meta/argument_specs.yml")["argument_specs"]["proxy"]["options"]
    assert {name for name in defaults if name.startswith(("verify_proxy", "verify_prometheus"))} <= set(proxy)
