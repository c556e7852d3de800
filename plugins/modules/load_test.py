#!/usr/bin/python
# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: load_test
short_description: Send constant-rate HTTP load to one URL and report latency in fortio's format
version_added: 0.1.0
description:
  - Sends HTTP/1.1 requests to O(url) at a constant rate (open loop) over keep-alive
    connections, and returns the latency histogram, percentiles, status codes and achieved rate
    in the JSON shape of fortio results, so that reports and M(meshtune.mesh.slo_check) read
    results of either engine alike.
  - Each request has an intended send time (start + i / O(qps)) and its latency is counted from
    that time, not from when it was actually sent. A server that stalls therefore shows up in
    the high percentiles instead of silently lowering the rate (no coordinated omission).
  - The local engine runs on the host that runs the module. Delegate the task to C(localhost)
    to load a service reachable from the controller. Requests go to O(url) only.
  - Every option is checked before the first request is sent; a bad option fails the task
    with one message that names each problem.
  - Ansible modules cannot stream output while they run. For long runs set O(progress_file)
    and follow it (for example C(tail -f)) while the task runs, or run the task with C(async)
    and C(poll). With C(ANSIBLE_DEBUG=1) the same lines also go to the module's debug log (the
    system log of the host that runs the module).
  - Changes nothing, so it always reports C(changed=false). In check mode it validates the
    options and sends no request.
author:
  - meshtune maintainers (@meshtune)
options:
  url:
    description:
      - The URL to load, V(http://) or V(https://). HTTPS verifies certificates unless
        O(validate_certs=false).
    type: str
    required: true
  method:
    description: HTTP method of every request.
    type: str
    default: GET
  headers:
    description:
      - Extra request headers, name to value. C(Host) and C(User-Agent) replace the defaults.
      - Header values appear in the task's recorded arguments; set C(no_log) on the task when
        they carry credentials.
    type: dict
    default: {}
  body:
    description:
      - Request body, sent as UTF-8 with a C(Content-Length) header. Give C(Content-Type) in
        O(headers).
    type: str
  qps:
    description:
      - Requests per second over all connections. V(0) sends as fast as the connections allow
        (closed loop), to find the maximum rate; latency is then counted from the actual send.
    type: float
    default: 100
  connections:
    description:
      - Keep-alive connections, each carrying one request at a time. Give enough for the rate
        times the latency; requests wait for a free connection and that wait counts as latency.
    type: int
    default: 8
  duration:
    description:
      - How long to send the measured load, such as V(30s), V(2m) or V(1m30s). Give exactly one
        of O(duration) and O(requests).
      - Every request due within the duration is sent, late if all connections are busy; the
        wait counts as latency. A request more than O(timeout) late is not sent and counts as
        a C(not_sent) error, with the latency it had reached.
    type: str
  requests:
    description:
      - How many measured requests to send. Give exactly one of O(duration) and O(requests).
    type: int
  warmup:
    description:
      - Load sent before the measured part, at the same rate, and left out of every figure,
        such as V(5s). Lets caches, connection pools and autoscalers settle.
    type: str
    default: 0s
  timeout:
    description:
      - Limit for each request from its actual send, connecting included, such as V(3s).
        A request that takes longer counts as a C(timeout) error.
      - Also how late a request may be sent (see O(duration)).
    type: str
    default: 3s
  engine:
    description:
      - V(local) sends the load from the host that runs the module.
      - An in-cluster V(fortio) engine (a fortio Job inside the mesh, writing the same result
        format) is planned and not available yet.
    type: str
    choices: [local]
    default: local
  labels:
    description: Free text stored as the result's C(Labels), as fortio's C(-labels) does.
    type: str
    default: ""
  result_file:
    description:
      - Write the result to this path as fortio writes its C(-json) output. The directory must
        exist; an existing file is replaced.
    type: path
  progress_file:
    description:
      - Append a progress line to this file every O(progress_interval) while the load runs
        (elapsed time, phase, requests sent, current rate, p99 so far, errors so far), plus a
        first and a last line.
    type: path
  progress_interval:
    description: How often to write a progress line, such as V(10s).
    type: str
    default: 10s
  validate_certs:
    description: Verify the server certificate of V(https://) URLs.
    type: bool
    default: true
notes:
  - Latency figures are in seconds in RV(result), as in fortio's files, and in milliseconds in
    RV(summary).
  - C(result.ActualQPS) is the number of measured requests sent divided by the time they were
    sent over (C(result.ActualDuration)), from the first intended send to the last actual one.
    It falls below the requested rate when the engine or the connections could not keep up.
  - One Python process reaches a few thousand requests per second on one core; for more, run
    several tasks on several hosts and merge their result files.
seealso:
  - name: fortio
    description: The load tool whose JSON result format this module writes.
    link: https://github.com/fortio/fortio
"""

EXAMPLES = r"""
- name: Load the shop's front page at 500 requests/s for a minute, after 10 s of warm-up
  meshtune.mesh.load_test:
    url: http://shop.example.internal:8080/
    qps: 500
    connections: 32
    duration: 60s
    warmup: 10s
    labels: shop baseline
    result_file: /tmp/shop-baseline.json
    progress_file: /tmp/shop-baseline.progress
  delegate_to: localhost
  register: shop_load

- name: Show the percentiles
  ansible.builtin.debug:
    var: shop_load.summary

- name: Find the maximum rate with 1000 POST requests
  meshtune.mesh.load_test:
    url: http://127.0.0.1:8080/api/orders
    method: POST
    headers:
      Content-Type: application/json
    body: '{"item": 1}'
    qps: 0
    connections: 16
    requests: 1000
  delegate_to: localhost
"""

RETURN = r"""
result:
  description:
    - The run in fortio's JSON result shape (C(RunType), C(Labels), C(StartTime),
      C(RequestedQPS), C(RequestedDuration), C(ActualQPS), C(ActualDuration) in nanoseconds,
      C(NumThreads), C(DurationHistogram) and C(ErrorsDurationHistogram) with C(Count), C(Min),
      C(Max), C(Sum), C(Avg), C(StdDev), C(Data) buckets and C(Percentiles) in seconds,
      C(RetCodes), C(URL), ...), plus C(ErrorTypes).
    - C(RetCodes) counts responses by status code; C(-1) counts requests that got no response.
  returned: success, not in check mode
  type: dict
  sample:
    RunType: HTTP
    RequestedQPS: "500"
    RequestedDuration: 1m0s
    ActualQPS: 500.0
    ActualDuration: 60000000000
    RetCodes: {"200": 30000}
summary:
  description:
    - Latency percentiles in milliseconds (C(p50_ms), C(p90_ms), C(p99_ms), C(p999_ms),
      C(max_ms)), C(requested_qps) (0 for as fast as possible), C(achieved_qps), C(requests),
      C(errors) and C(success_rate), the share of 2xx responses.
  returned: success, not in check mode
  type: dict
  sample: {p50_ms: 1.2, p90_ms: 2.1, p99_ms: 4.8, p999_ms: 9.7, max_ms: 12.0, requested_qps: 500.0,
           achieved_qps: 500.0, requests: 30000, errors: 0, success_rate: 1.0}
errors:
  description:
    - Requests that got no HTTP response, by kind, C(timeout), C(connection_refused),
      C(connection_reset) (reset, or closed before the response ended), C(protocol) (not an
      HTTP/1.x response), C(tls) (TLS handshake or certificate check failed), C(not_sent)
      (more than O(timeout) late, never sent) and C(other).
  returned: success, not in check mode
  type: dict
  sample: {timeout: 3, connection_refused: 0, connection_reset: 0, protocol: 0, tls: 0,
           not_sent: 0, other: 0}
result_file:
  description: Where the result was written.
  returned: when O(result_file) is set, not in check mode
  type: str
  sample: /tmp/shop-baseline.json
"""

import datetime

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.engine import (
    ERROR_KINDS,
    LoadError,
    run_load,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.fortio_format import (
    result_from_run,
    summarize,
    write_result_file,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.options import (
    ENGINES,
    spec_from_params,
)


def argument_spec():
    return {
        "url": {"type": "str", "required": True},
        "method": {"type": "str", "default": "GET"},
        "headers": {"type": "dict", "default": {}},
        "body": {"type": "str"},
        "qps": {"type": "float", "default": 100},
        "connections": {"type": "int", "default": 8},
        "duration": {"type": "str"},
        "requests": {"type": "int"},
        "warmup": {"type": "str", "default": "0s"},
        "timeout": {"type": "str", "default": "3s"},
        "engine": {"type": "str", "choices": list(ENGINES), "default": "local"},
        "labels": {"type": "str", "default": ""},
        "result_file": {"type": "path"},
        "progress_file": {"type": "path"},
        "progress_interval": {"type": "str", "default": "10s"},
        "validate_certs": {"type": "bool", "default": True},
    }


class ProgressLog:
    """Progress lines to the progress file (when given) and to the module's debug log."""

    def __init__(self, module, path, url):
        self.module = module
        self.path = path
        self.url = url
        self.failed = None

    def write(self, text):
        stamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        line = f"{stamp} load_test {self.url}: {text}"
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


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    log = ProgressLog(module, params["progress_file"], params["url"])
    spec, problem = spec_from_params(params, progress=log.report)
    if problem:
        module.fail_json(msg=problem)
    if module.check_mode:
        module.exit_json(changed=False, msg="check mode: options are valid, no request was sent")
    measured = f"{params['requests']} requests" if spec.requests is not None else params["duration"]
    log.write(f"start: {'max' if spec.qps == 0 else f'{spec.qps:g}'} qps, {spec.connections} "
              f"connections, {measured} after {params['warmup']} warm-up")
    try:
        run = run_load(spec)
    except LoadError as err:
        log.write(f"failed: {err}")
        module.fail_json(msg=f"Load test could not start: {err}")
    result = result_from_run(run, labels=params["labels"])
    summary = summarize(result)
    log.write("done: p50={p50_ms}ms p90={p90_ms}ms p99={p99_ms}ms p999={p999_ms}ms "
              "achieved={achieved_qps}/s errors={errors}".format(**summary))
    output = {"changed": False, "result": result, "summary": summary,
              "errors": {kind: run.error_kinds.get(kind, 0) for kind in ERROR_KINDS}}
    if params["result_file"]:
        try:
            write_result_file(params["result_file"], result)
        except OSError as err:
            module.fail_json(msg=f"result_file: cannot write {params['result_file']}: {err}",
                             **output)
        output["result_file"] = params["result_file"]
    if log.failed is not None:
        module.warn(f"progress_file: could not append progress lines: {log.failed}")
    module.exit_json(**output)


if __name__ == "__main__":
    main()
