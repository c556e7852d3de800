# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What a load_test task reports: its progress lines, and the return values of a local run."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
from collections import OrderedDict

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.engine import schedule_figures
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.errors import (
    CLIENT_ERROR_KINDS,
    LOCAL_ERROR_KINDS,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.redact import redact_url
from ansible_collections.meshtune.mesh.plugins.module_utils.run_result import result_from_run, summarize


def load_text(params, spec):
    """The load asked for, in words: `100 qps, 8 connections, 30s after 5s warm-up`."""
    measured = f"{params['requests']} requests" if spec.requests is not None else params["duration"]
    return (f"{'max' if spec.qps == 0 else f'{spec.qps:g}'} qps, {spec.connections} connections, "
            f"{measured} after {params['warmup']} warm-up")


class ProgressLog:
    """Progress lines to the progress file (when given) and to the module's debug log."""

    def __init__(self, module, path, url):
        self.module = module
        self.path = path
        self.url = url
        self.failed = None

    def write(self, text):
        stamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        line = f"{stamp} load_test {redact_url(self.url)}: {text}"
        self.module.debug(line)
        if self.path is None or self.failed is not None:
            return
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        except OSError as err:
            # Progress is a convenience: losing it must not end the load test.
            self.failed = str(err)

    def report(self, figures):
        self.write("{elapsed:.1f}s {phase} sent={sent} rate={rate:.1f}/s p99={p99_ms:.3f}ms "
                   "errors={errors}".format(**figures))


def local_output(run, labels, max_not_sent):
    """The output of a local engine run: fortio's result plus meshtune's fields (ClientErrors,
    NotSent), the summary with client and server errors apart, errors by kind with the first
    error of each kind, and how the schedule was kept."""
    result = result_from_run(run, labels=labels)
    result["ClientErrors"] = OrderedDict(sorted(
        (kind, run.error_kinds[kind]) for kind in CLIENT_ERROR_KINDS if run.error_kinds.get(kind)))
    result["NotSent"] = run.not_sent
    summary = summarize(result)
    summary["client_errors"] = run.client_errors
    summary["server_errors"] = run.server_errors
    summary["not_sent"] = run.not_sent
    return {"changed": False, "result": result, "summary": summary,
            "errors": {kind: run.error_kinds.get(kind, 0) for kind in LOCAL_ERROR_KINDS},
            "first_errors": run.first_error_messages(),
            "schedule": schedule_figures(run, max_not_sent)}
