"""Fault injection and request accounting of the test API server."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest


def _get(url: str) -> int | str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except (ConnectionError, urllib.error.URLError):
        return "reset"


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_injected_faults_appear_at_the_configured_rate(kubeapi_factory, rate):
    server = kubeapi_factory("--fault-rate", str(rate), "--faults", "409,429,500,reset",
                             "--seed", "7")
    url = f"{server.url}/api/v1/namespaces/default/configmaps"
    outcomes = [_get(url) for _request in range(1000)]
    failures = [o for o in outcomes if o != 200]
    # 1000 Bernoulli draws: the share stays within 4 standard deviations of the rate.
    tolerance = 4 * (rate * (1 - rate) / 1000) ** 0.5
    assert abs(len(failures) / 1000 - rate) < tolerance
    assert set(failures) == {409, 429, 500, "reset"}
    stats = server.stats()
    assert stats["faults"]["considered"] == 1000
    assert sum(stats["faults"]["injected"].values()) == len(failures)


def test_faults_change_at_run_time_and_skip_discovery(kubeapi_factory):
    server = kubeapi_factory()
    url = f"{server.url}/api/v1/namespaces/default/configmaps"
    assert {_get(url) for _request in range(20)} == {200}
    server.set_faults(1.0, faults=["429"])
    assert {_get(url) for _request in range(20)} == {429}
    assert _get(f"{server.url}/api/v1") == 200, "discovery is never faulted"
    server.set_faults(0.0)
    assert _get(url) == 200


def test_stats_count_requests_by_verb_and_resource(kubeapi_factory):
    server = kubeapi_factory()
    server.reset_stats()
    for _request in range(3):
        _get(f"{server.url}/api/v1/namespaces/default/configmaps")
    _get(f"{server.url}/api/v1/namespaces/default")
    stats = server.stats()["requests"]
    assert stats["by_resource"]["configmaps"] == {"list": 3}
    assert stats["by_resource"]["namespaces"] == {"get": 1}
    assert stats["total"] == 4
