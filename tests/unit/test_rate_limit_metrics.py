"""The local rate limiter's statistics, from the stat prefix rate_limit writes to the dashboard.

Envoy names the filter's counters <stat_prefix>.http_local_rate_limit.<name>; every profile's
proxyStatsMatcher must let them through (Envoy matches the whole stat name), and the recording
rules must read them under the name Envoy's Prometheus output gives them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.meshtune.mesh.plugins.module_utils.rate_limit import STAT_PREFIX
from tests.observability import content

ROOT = Path(__file__).resolve().parents[2]
PROFILES = sorted((ROOT / "roles" / "istio" / "vars" / "profiles").glob("*.yml"))
COUNTERS = ("enabled", "enforced", "rate_limited", "ok")


@pytest.mark.parametrize("profile", PROFILES, ids=lambda path: path.stem)
def test_every_profile_keeps_the_rate_limit_counters(profile):
    values = yaml.safe_load(profile.read_text(encoding="utf-8"))["istio_profile_defaults"]
    patterns = values["meshConfig"]["defaultConfig"]["proxyStatsMatcher"]["inclusionRegexps"]
    for counter in COUNTERS:
        stat = f"{STAT_PREFIX}.http_local_rate_limit.{counter}"
        assert any(re.fullmatch(pattern, stat) for pattern in patterns), (profile.stem, stat)


def test_the_recording_rules_read_the_counters_by_their_prometheus_names():
    exprs = {rule["record"]: rule["expr"] for rule in content.recording_rules()}
    for counter in ("rate_limited", "enforced"):
        # Envoy's Prometheus names: envoy_ and the stat name with '.' turned into '_'.
        name = "envoy_" + f"{STAT_PREFIX}.http_local_rate_limit.{counter}".replace(".", "_")
        assert re.search(rf"\b{name}\b", exprs[f"meshtune:envoy_http_local_rate_limit_{counter}:rate1m"])
