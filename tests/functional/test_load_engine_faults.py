"""The local load engine when the client side fails: nothing listening, a certificate that does
not verify, the sending process out of file descriptors, a target that stalls. Each failure is
counted as what it is (client error, server error, unsent request) and judged by `assess`.

Only servers on 127.0.0.1 are loaded, at most a few hundred requests each; nothing here asserts
a time or a rate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.engine import (
    SOCKET_ERROR,
    LoadSpec,
    RunResult,
    assess,
    run_load,
)
from tests.functional.test_load_engine import self_signed
from tests.support.load_targets import running as load_target
from tests.support.local_nginx import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
REPOSITORY = Path(__file__).resolve().parents[2]


def run(url: str, **options) -> RunResult:
    return run_load(LoadSpec(url, **options))


def test_refused_connections_are_client_errors_and_fail_the_run():
    result = run(f"http://127.0.0.1:{free_port()}/", qps=200, connections=2, requests=100,
                 timeout=1.0)
    assert result.error_kinds == {"connection_refused": 100}
    assert result.client_errors == 100 and result.server_errors == 0
    assert list(result.first_error_messages()) == ["connection_refused"]
    assert "Connection refused" in result.first_error_messages()["connection_refused"]
    failure, warnings = assess(result)
    assert failure.startswith("every measured request that was sent (100) failed before "
                              "reaching the server: connection_refused: 100 (first: Connection "
                              "refused"), failure
    assert warnings == []


def test_a_certificate_that_does_not_verify_is_a_client_error(tmp_path):
    cert, key = self_signed(tmp_path)
    with load_target("delay", "--tls-cert", cert, "--tls-key", key) as url:
        result = run(url, qps=50, connections=2, requests=10)
    assert result.error_kinds == {"tls": 10}
    assert result.client_errors == 10 and result.server_errors == 0 and result.ok == 0
    assert "certificate verification failed: self-signed certificate" in \
        result.first_error_messages()["tls"].lower()
    failure, _warnings = assess(result)
    assert "tls: 10 (first: TLS certificate verification failed" in failure


def test_server_errors_stay_apart_from_client_errors():
    with load_target("reset") as url:
        result = run(url, qps=100, connections=2, requests=40, timeout=1.0)
    assert result.error_kinds == {"connection_reset": 40}
    assert result.server_errors == 40 and result.client_errors == 0
    assert assess(result) == (None, [])


FILE_LIMIT_RUN = """
import json, resource, sys
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.engine import (
    LoadSpec, assess, run_load)
url, limit = sys.argv[1], int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
result = run_load(LoadSpec(url, qps=100, connections=60, requests=100, timeout=2.0, workers=1))
failure, warnings = assess(result)
print(json.dumps({"codes": result.codes, "kinds": result.error_kinds, "sockets": result.sockets,
                  "client": result.client_errors, "server": result.server_errors,
                  "first": result.first_error_messages(), "failure": failure}))
"""


def test_connections_beyond_the_file_limit_are_counted_as_client_exhaustion():
    """The sending process may hold 40 descriptors and is asked for 60 connections (the module
    refuses that up front; the engine is called directly here): the connections it cannot open
    fail with EMFILE, counted as client_exhausted, not as the server's errors."""
    with load_target("delay") as url:
        outcome = subprocess.run(
            [sys.executable, "-c", FILE_LIMIT_RUN, url, "40"], capture_output=True, text=True,
            timeout=60, cwd=REPOSITORY, check=False, env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                [str(REPOSITORY), *filter(None, [os.environ.get("PYTHONPATH")])])))
    assert outcome.returncode == 0, outcome.stderr
    figures = json.loads(outcome.stdout.splitlines()[-1])
    exhausted = figures["kinds"].get("client_exhausted", 0)
    assert exhausted > 0, figures
    assert set(figures["kinds"]) == {"client_exhausted"}, figures
    assert figures["codes"].get(str(SOCKET_ERROR)) == exhausted
    assert figures["codes"].get("200", 0) + exhausted == 100
    assert 0 < figures["sockets"] < 60
    assert figures["client"] == exhausted and figures["server"] == 0
    assert "(errno EMFILE)" in figures["first"]["client_exhausted"]
    assert "ran out of its own resources" in figures["failure"]
    assert f"client_exhausted: {exhausted}" in figures["failure"]


def test_a_stalled_target_ends_the_run_with_the_slipped_schedule_marked():
    """A server that never answers, 100 requests due over one second on two connections with a
    0.2 s timeout: the run ends by itself after its schedule; the requests sent time out (server
    errors), the others were due more than the timeout earlier when a connection came free and
    were never sent."""
    with load_target("hang") as url:
        result = run(url, qps=100, connections=2, duration=1.0, timeout=0.2)
    assert result.planned == 100
    assert result.sent + result.not_sent == 100
    assert result.error_kinds == {"timeout": result.sent, "not_sent": result.not_sent}
    assert result.not_sent > 50
    assert result.not_sent_share == result.not_sent / 100
    assert result.server_errors == result.sent and result.client_errors == 0
    assert "more than the timeout (0.2 s) late" in result.first_error_messages()["not_sent"]
    failure, _warnings = assess(result)
    assert failure.startswith(f"the schedule slipped: {result.not_sent} of 100 measured requests")
    slipped_within, warnings = assess(result, max_not_sent=1.0)
    assert slipped_within is None
    assert warnings == [f"{result.not_sent} of 100 measured requests "
                        f"({result.not_sent / 100:.2%}) were due but never sent, more than the "
                        "timeout (0.2 s) late (max_not_sent 100.00%)"]
