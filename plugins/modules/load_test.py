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
  - The V(fortio) engine runs the load inside the cluster, through the mesh, as Istio's own
    benchmarks do. It creates a ServiceAccount, a fortio server Deployment and Service (only
    when O(url) is not given), a Secret with the O(headers) (only when given) and a Job of
    O(client_pods) fortio client pods in O(namespace), all named after O(name), waits for the
    Job, reads each pod's result from its log and merges the histograms exactly (the merged
    percentiles are those of one histogram of all requests). Then it deletes what it created,
    also when the run fails, unless O(cleanup=false).
  - The fortio pods need no Kubernetes API access; their ServiceAccount mounts no token and has
    no Role or RoleBinding. They run under the C(restricted) Pod Security Standard (not root,
    no privilege escalation, all capabilities dropped, C(RuntimeDefault) seccomp profile,
    read-only root file system). The task's own credentials need create, get, list and delete on
    ServiceAccounts, Deployments, Services, Jobs and (with O(headers)) Secrets, get and list on
    Pods and get on C(pods/log) in O(namespace), and, to check beforehand that the namespace
    exists, get on it.
  - Every option is checked before the first request is sent; a bad option fails the task
    with one message that names each problem. With O(engine=local) that includes the load this
    host can send (see O(qps), O(requests) and O(connections)).
  - A run fails the task, with its figures still returned, when it did not measure the
    target. With O(engine=local) that is when every measured request it sent failed before
    reaching the server (client errors, such as nothing listening or a certificate that does
    not verify; the message names the first and its count), when this host ran out of file
    descriptors, local ports or socket memory (C(client_exhausted)), or when more than
    O(max_not_sent) of the measured requests were due but never sent (the schedule slipped).
    Fewer client errors or unsent requests are warnings. Errors of the server (timeouts,
    resets, non-2xx answers) are results, for M(meshtune.mesh.slo_check) to judge.
  - Ansible modules cannot stream output while they run. For long runs set O(progress_file)
    and follow it (for example C(tail -f)) while the task runs, or run the task with C(async)
    and C(poll). With C(ANSIBLE_DEBUG=1) the same lines also go to the module's debug log (the
    system log of the host that runs the module).
  - The local engine changes nothing, so it reports C(changed=false). The fortio engine
    reports C(changed=false) when it removed everything it created, and C(changed=true) when
    objects are left (O(cleanup=false), or a deletion failed; then a warning names them).
  - In check mode it validates the options and sends no load. The fortio engine also checks
    that O(namespace) exists and that no object of the run's names exists, and returns the
    objects it would create in RV(objects).
author:
  - meshtune maintainers (@meshtune)
options:
  url:
    description:
      - The URL to load, V(http://) or V(https://). HTTPS verifies certificates unless
        O(validate_certs=false).
      - Required with O(engine=local).
      - With O(engine=fortio) the URL as the client pods reach it, usually a Service's cluster
        name such as V(http://productpage.shop.svc:9080/). When not given, meshtune deploys a
        fortio server (Deployment and Service C(<name>-server), port 8080) and loads
        C(http://<name>-server.<namespace>.svc:8080/echo).
      - A URL with C(user:password@) is refused, without showing the password; send credentials
        in O(headers). Query values, which may hold a token, are masked wherever the URL is
        shown or stored (RV(url), the result's C(URL), O(result_file), O(progress_file)), and
        those of parameters named like credentials (C(token), C(key), ...) are hidden from the
        task's output, also at C(-vvv). With O(engine=fortio) the URL is an argument of the client
        containers, readable by whoever may read the Job or its pods.
    type: str
  method:
    description: HTTP method of every request.
    type: str
    default: GET
  headers:
    description:
      - Extra request headers, name to value. C(Host) and C(User-Agent) replace the defaults.
      - Values of headers whose names suggest credentials (C(Authorization), C(Cookie), names
        containing C(token), C(key), C(secret), C(auth), C(password) or C(session)) are hidden
        from the task's output, also at C(-vvv). Other header values show in the recorded
        arguments at C(-vvv); set C(no_log) on the task when they carry credentials.
      - With O(engine=fortio) the headers go into a Secret C(<name>-headers), created before the
        Job and deleted with it (kept with O(cleanup=false)). The client containers read each
        header from it into an environment variable that their arguments refer to, so header
        values are not in the Job's or the pods' specs. Whoever may read Secrets in
        O(namespace), or exec into the client pods, can still read them.
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
      - With O(engine=local) at most 100000 per worker process that can run at once, that is one
        per CPU the module may run on, at most one per connection, and at most O(workers) when set.
        One worker spends about 8 microseconds of CPU time on each request at best, so no
        worker keeps a faster schedule, and the requests it cannot send would only pile up.
    type: float
    default: 100
  connections:
    description:
      - Keep-alive connections, each carrying one request at a time. Give enough for the rate
        times the latency; requests wait for a free connection and that wait counts as latency.
      - With O(engine=fortio) the connections over all client pods; it must be a multiple of
        O(client_pods). O(qps) is split evenly over the pods too.
      - With O(engine=local) each connection is a file descriptor of its worker process, so the
        connections per worker must fit under the open-file limit (C(ulimit -n),
        C(RLIMIT_NOFILE)) of the host that runs the module, less the descriptors open already
        and a few for the engine itself.
    type: int
    default: 8
  workers:
    description:
      - Worker processes of the local engine, each with its own share of O(connections) and of
        the requests. Together they send exactly the constant-rate schedule (worker k of n takes
        requests k, k+n, k+2n, ...), and their histograms and counts merge exactly.
      - V(0) lets the engine choose one worker per 2000 requests per second of O(qps) (for
        O(qps=0), no limit), at most one per CPU the module may run on and at most
        O(connections).
      - Not used with O(engine=fortio), where O(client_pods) spreads the load.
    type: int
    default: 0
  duration:
    description:
      - How long to send the measured load, such as V(30s), V(2m) or V(1m30s). Give exactly one
        of O(duration) and O(requests).
      - Every request due within the duration is sent, late if all connections are busy; the
        wait counts as latency. A request more than O(timeout) late is not sent and counts as
        a C(not_sent) error, with the latency it had reached (see O(max_not_sent)).
      - With O(engine=local) the run ends by itself at the latest about twice O(timeout) after
        the last request was due, whatever the target does (a request may be sent up to
        O(timeout) late and then takes at most O(timeout)); with O(qps=0), about O(timeout)
        after the duration.
    type: str
  requests:
    description:
      - How many measured requests to send. Give exactly one of O(duration) and O(requests).
      - With O(engine=fortio) the requests over all client pods; it must be a multiple of
        O(client_pods).
      - With O(engine=local) a run sends at most 100000000 requests, warm-up included; this,
        or O(duration) times O(qps) plus the warm-up's, may not be more. That is about half an
        hour of one worker process at its best rate; send a longer load test as several runs,
        whose separate results also show drift.
    type: int
  warmup:
    description:
      - Load sent before the measured part, at the same rate, and left out of every figure,
        such as V(5s). Lets caches, connection pools and autoscalers settle.
      - With O(engine=fortio) an init container of each client pod sends the warm-up load (the
        fortio image has no shell to chain two runs), so the measured run starts on new
        connections after it.
    type: str
    default: 0s
  timeout:
    description:
      - Limit for each request from its actual send, connecting included, such as V(3s).
        A request that takes longer counts as a C(timeout) error.
      - Also how late a request may be sent (see O(duration)).
    type: str
    default: 3s
  max_not_sent:
    description:
      - With O(engine=local), the largest share of the measured requests (from V(0) to V(1))
        that may be due but never sent, being more than O(timeout) late, before the task
        fails. Beyond it the schedule slipped, and the run measured less load than asked for.
        Requests go unsent when every connection is busy for longer than O(timeout) (the target
        answers too slowly for O(connections)) or when this host cannot keep the rate.
      - Any unsent request is a warning and is counted in RV(schedule). Set V(1) to measure an
        overloaded target without failing; the latency figures include the unsent requests.
      - Defaults to V(0.01), 1 %. Not used with O(engine=fortio), which does not report
        requests it did not send.
    type: float
  engine:
    description:
      - V(local) sends the load from the host that runs the module.
      - V(fortio) runs fortio client pods as a Job inside the cluster (see the description).
        The options from O(namespace) to O(pod_annotations) and the Kubernetes auth options
        belong to this engine; giving one of them with V(local) is an error.
      - fortio counts latency from each request's actual send, while the local engine counts it
        from the intended send time; under overload fortio's high percentiles are therefore
        lower than the local engine's for the same server.
    type: str
    choices: [local, fortio]
    default: local
  labels:
    description:
      - Free text stored as the result's C(Labels), as fortio's C(-labels) does.
      - With O(engine=fortio) an empty value stores O(name) (fortio itself would store the
        URL and each pod's host name).
    type: str
    default: ""
  result_file:
    description:
      - Write the result to this path as fortio writes its C(-json) output. The directory must
        exist; an existing file is replaced.
      - A new file gets mode 0666 minus the umask, as files Ansible writes do; a replaced file
        keeps its mode.
    type: path
  progress_file:
    description:
      - Append a progress line to this file every O(progress_interval) while the load runs
        (elapsed time, phase, requests sent, current rate, p99 so far, errors so far), plus a
        first and a last line.
      - With O(engine=fortio) a line per phase instead, objects created, server ready, how
        many client pods run and are done, the result or the failure.
    type: path
  progress_interval:
    description: How often to write a progress line, such as V(10s).
    type: str
    default: 10s
  validate_certs:
    description:
      - Verify the server certificate of V(https://) URLs (fortio's C(-k) when false).
      - This is about the load's target. Unlike kubernetes.core modules, this option does not
        control the verification of the Kubernetes API server's certificate; that follows the
        kubeconfig or the E(K8S_AUTH_VERIFY_SSL) environment variable.
    type: bool
    default: true
    # Replaces kubernetes.core's option of this name, alias verify_ssl included.
    aliases: []
  namespace:
    description:
      - With O(engine=fortio), the namespace of the load test's objects. It must exist (the
        module does not create namespaces); label it for sidecar injection as your mesh needs.
      - Defaults to V(meshtune-load).
    type: str
  name:
    description:
      - With O(engine=fortio), the name of the run's objects, at most 50 characters, a DNS-1035
        label. The ServiceAccount is C(<name>), the server Deployment and Service
        C(<name>-server), the Job C(<name>-client).
      - Every object has the labels C(app.kubernetes.io/managed-by=meshtune) and
        C(meshtune.io/load-test=<name>). If objects of these names exist (left by an earlier
        run with O(cleanup=false), or someone else's), the task fails before creating anything
        and says how to delete them. Use different names for load tests that run at once.
      - Defaults to V(meshtune-load).
    type: str
  fortio_image:
    description:
      - With O(engine=fortio), the fortio image without tag, for example a mirror in your own
        registry. Defaults to V(fortio/fortio).
    type: str
  fortio_version:
    description:
      - With O(engine=fortio), the image tag such as V(1.77.0), or a digest
        V(sha256:<64 hex digits>) to pin the exact image.
      - Defaults to V(1.77.0), the newest fortio release when this engine was written. The
        engine uses fortio's C(load) and C(server) commands and its JSON result, which have
        been stable for many releases.
    type: str
  client_pods:
    description:
      - With O(engine=fortio), how many fortio client pods run the load at once, each with
        O(qps), O(connections) and O(requests) divided by this number. Several pods spread the
        load over nodes and past one pod's CPU. Defaults to V(1).
    type: int
  sidecar:
    description:
      - With O(engine=fortio), V(true) labels the client and server pods
        C(sidecar.istio.io/inject=true) and asks for Istio's native sidecar
        (C(sidecar.istio.io/nativeSidecar=true)), so the proxy is up before the warm-up and
        stops when fortio is done. Native sidecars need Kubernetes 1.29 or newer.
      - V(false) runs the same load without any proxy, the baseline, labelling the client and
        server pods C(sidecar.istio.io/inject=false) and C(istio.io/dataplane-mode=none)
        (ambient mode). The mesh's added latency is the difference of the two runs.
      - V(server) injects only the server Deployment's pods, as Istio's benchmark does in its
        server-sidecar mode; the client pods run without proxy. With V(true) minus V(server)
        and V(server) minus V(false), the added latency splits into the client side's and the
        server side's share. The server must accept plain-text calls then (Istio's default
        C(PERMISSIVE) mutual TLS does; C(STRICT) refuses them). With O(url) given, V(server)
        only keeps the client out of the mesh.
      - Defaults to V(true).
    type: raw
  revision:
    description:
      - With O(engine=fortio) and a sidecar, the Istio revision (or revision tag) whose proxy
        the pods get. The pods are labelled C(istio.io/rev=<revision>) instead of
        C(sidecar.istio.io/inject=true).
    type: str
  cleanup:
    description:
      - With O(engine=fortio), delete every object the run created when it ends, also when it
        fails. The Job is deleted with C(propagationPolicy=Background), so its pods go too.
      - V(false) keeps them for debugging (read the pods' logs, describe the Job) and returns
        their names in RV(objects); delete them before the next run with the same O(name).
      - Defaults to V(true).
    type: bool
  start_timeout:
    description:
      - With O(engine=fortio), how long the pods may take to be scheduled and to pull the image,
        such as V(5m). The server must be available, and every client pod running, within this
        time; otherwise the task fails with the pods' waiting reasons.
      - Defaults to V(5m).
    type: str
  job_timeout:
    description:
      - With O(engine=fortio), how long to wait for the Job, also its C(activeDeadlineSeconds).
      - Defaults to O(start_timeout) + O(warmup) + the measured time + 2 x O(timeout), where the
        measured time is O(duration) or O(requests) / O(qps). Required with O(requests) and
        O(qps=0), whose run time cannot be known beforehand.
    type: str
  fortio_args:
    description:
      - With O(engine=fortio), extra arguments for C(fortio load), such as V(-uniform),
        V(-nocatchup), V(-h2) or V(-stdclient). They come after meshtune's own and before the
        URL.
      - Flags that meshtune sets from other options (C(-qps), C(-c), C(-t), C(-n), C(-timeout),
        C(-json), C(-p), C(-labels), C(-H), C(-X), C(-payload), C(-k), C(-r)) and C(-offset),
        which would stop the histograms from merging exactly, are refused.
    type: list
    elements: str
  client_resources:
    description:
      - With O(engine=fortio), the fortio client containers' resources, as in a pod spec, a
        dict with the keys C(requests) and C(limits), each a dict of C(cpu), C(memory) and
        C(ephemeral-storage) quantities (see the examples).
      - Defaults to requests C(cpu=1), C(memory=256Mi) and limit C(memory=1Gi). There is no CPU
        limit by default, because a throttled load generator adds latency that is not the
        mesh's; set one where a LimitRange or ResourceQuota requires it.
      - The sidecar's resources are the mesh's defaults; set them with O(pod_annotations).
    type: dict
  server_resources:
    description:
      - With O(engine=fortio), the fortio server container's resources, in the form of
        O(client_resources).
      - Defaults to requests C(cpu=500m), C(memory=128Mi) and limit C(memory=512Mi).
    type: dict
  pod_annotations:
    description:
      - With O(engine=fortio), annotations for the client and server pods, for example
        C(sidecar.istio.io/proxyCPU) or C(proxy.istio.io/config) to size or tune their
        sidecars. They may override C(sidecar.istio.io/nativeSidecar).
    type: dict
  histogram_resolution:
    description:
      - With O(engine=fortio), the width in seconds of fortio's finest latency buckets (fortio's
        C(-r)). fortio's buckets are a fixed table, 0, 1, 2, ... 11, 12, 14, ... 20, 25, ... 100,
        120, ... 1000, 2000, ... 100000, times this value, so the range ends at 100000 times it;
        everything slower falls into one last bucket that ends at the maximum.
      - Defaults to V(0.0001), which gives 0.1 ms buckets up to 1.2 ms, 0.2 ms ones up to 2 ms,
        0.5 ms up to 5 ms, 1 ms up to 10 ms, 2 ms up to 20 ms and so on, up to 10 s. A sidecar
        adds a few tenths of a millisecond at p50, which fortio's own
        default of 1 ms puts inside one bucket and interpolates; added-latency targets then see
        nothing. V(0.001) reaches 100 s but its percentiles below 1 ms are guesses; V(0.00001)
        resolves 10 microseconds but ends at 1 s.
      - A percentile is exact only to the width of the bucket it falls in;
        M(meshtune.mesh.perf_report) shows that width beside each percentile.
      - Every client pod records with it, so their histograms still merge exactly. From
        V(0.000001) to V(0.01).
    type: float
  search:
    description:
      - Search the capacity instead of sending one load, the highest rate at which every one
        of O(search.targets) still holds. Each step is a run of O(search.step_duration) at a
        constant rate after O(warmup), with the other load options of the task.
      - With O(engine=fortio) each step is a Job of the client pods; the ServiceAccount, the
        fortio server and its pods are created once and serve every step, and each step's Job
        is deleted before the next one is created.
      - The rate grows from O(search.start_qps) by O(search.growth) until a target is missed or
        O(search.max_qps) held, then is bisected until the lowest rate that missed is within
        O(search.resolution) of the highest that held. The rate found is then run
        O(search.confirm) more times and counts only when every run holds; otherwise the
        search bisects below it. A miss is never repeated, so noise can lower the capacity
        found by a step, never raise it.
      - With O(engine=local) a step whose schedule slipped counts as a miss (its unsent requests
        count as errors with their lateness), not as a failure. The task fails when every
        request of a step failed before reaching the server.
      - O(duration), O(requests) and O(result_file) are not used with a search, and O(qps) is
        replaced by each step's rate; the local engine's bounds apply to O(search.max_qps).
    type: dict
    suboptions:
      targets:
        description:
          - Targets in M(meshtune.mesh.slo_check)'s names that one run measures, of C(p50_ms),
            C(p90_ms), C(p99_ms), C(p999_ms), C(success_rate) and C(min_qps_ratio).
          - Added latency and proxy cost need a baseline or Prometheus; judge them with a
            verification at the rate found.
        type: dict
        required: true
      start_qps:
        description: The first rate, requests per second. It must hold, else the search says so.
        type: float
        default: 10
      max_qps:
        description: The highest rate the search sends.
        type: float
        required: true
      resolution:
        description: How close the bracket must be, relative, V(0.05) for 5 %.
        type: float
        default: 0.05
      step_duration:
        description: The measured time of each step, such as V(30s).
        type: str
        default: 10s
      cooldown:
        description:
          - A pause between steps, such as V(10s), so a step does not start on the previous
            one's queue.
        type: str
        default: 0s
      confirm:
        description: How many more times the rate found is run; each must hold (0 to 10).
        type: int
        default: 2
      growth:
        description: The factor by which the rate grows until a target is missed (1.1 to 10).
        type: float
        default: 2.0
notes:
  - Latency figures are in seconds in RV(result), as in fortio's files, and in milliseconds in
    RV(summary).
  - C(result.ActualQPS) is the number of measured requests sent divided by the time they were
    sent over (C(result.ActualDuration)), from the first intended send to the last actual one.
    It falls below the requested rate when the engine or the connections could not keep up.
  - One worker process of the local engine sends up to a few ten thousand requests per second
    on one core; O(workers) adds processes, up to the host's CPUs. For more, run several tasks
    on several hosts and merge their result files. The local engine refuses a O(qps) above
    100000 per worker process that can run, and more than 100000000 requests in one run.
  - With O(engine=fortio) and classic (not native) sidecars, the client pods keep running after
    fortio exits, and the Job never completes; the module still treats a pod whose fortio
    container exited 0 as done. The warm-up init container, however, runs before a classic
    sidecar starts, so use native sidecars (or O(warmup=0s)) there.
  - Pods under the C(restricted) Pod Security Standard need Istio's CNI plugin (or ambient
    mode), because the classic C(istio-init) container needs the C(NET_ADMIN) capability.
seealso:
  - name: fortio
    description: The load tool whose JSON result format this module writes.
    link: https://github.com/fortio/fortio
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshtune.mesh.auth
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

- name: Find the highest rate at which p99 stays under 50 ms and 99.9 % succeed, to 5 %
  meshtune.mesh.load_test:
    url: http://shop.example.internal:8080/
    connections: 64
    warmup: 5s
    search:
      targets: {p99_ms: 50, success_rate: 0.999}
      start_qps: 50
      max_qps: 5000
      resolution: 0.05
      step_duration: 30s
      cooldown: 10s
      confirm: 2
    progress_file: /tmp/shop-capacity.progress
  delegate_to: localhost
  register: shop_capacity

- name: Show the capacity and the target that broke first
  ansible.builtin.debug:
    msg: "{{ shop_capacity.capacity.capacity_qps }} qps; {{ shop_capacity.capacity.broken }}"

- name: Measure the mesh, 1000 requests/s from 4 fortio pods through their sidecars
  meshtune.mesh.load_test:
    engine: fortio
    namespace: load
    client_pods: 4
    qps: 1000
    connections: 32
    duration: 2m
    warmup: 15s
    labels: mesh
    result_file: /tmp/mesh.json
    progress_file: /tmp/mesh.progress
  register: mesh_load

- name: The same load without sidecars, the baseline
  meshtune.mesh.load_test:
    engine: fortio
    namespace: load
    name: baseline
    sidecar: false
    client_pods: 4
    qps: 1000
    connections: 32
    duration: 2m
    warmup: 15s
    labels: baseline
    result_file: /tmp/baseline.json
  register: baseline_load

- name: Added p90 latency of the mesh
  ansible.builtin.debug:
    msg: "{{ (mesh_load.summary.p90_ms - baseline_load.summary.p90_ms) | round(3) }} ms"

- name: Load an existing service from inside the mesh, via revision canary, keeping the objects
  meshtune.mesh.load_test:
    engine: fortio
    url: http://productpage.shop.svc:9080/productpage
    namespace: shop
    name: productpage-load
    revision: canary
    qps: 200
    connections: 8
    duration: 60s
    fortio_args: [-uniform]
    client_resources:
      requests: {cpu: "2", memory: 256Mi}
      limits: {memory: 1Gi}
    pod_annotations:
      sidecar.istio.io/proxyCPU: "1"
      proxy.istio.io/config: "concurrency: 2"
    cleanup: false
    kubeconfig: ~/.kube/config
    context: staging
"""

RETURN = r"""
result:
  description:
    - The run in fortio's JSON result shape (C(RunType), C(Labels), C(StartTime),
      C(RequestedQPS), C(RequestedDuration), C(ActualQPS), C(ActualDuration) in nanoseconds,
      C(NumThreads), C(DurationHistogram) and C(ErrorsDurationHistogram) with C(Count), C(Min),
      C(Max), C(Sum), C(Avg), C(StdDev), C(Data) buckets and C(Percentiles) in seconds,
      C(RetCodes), C(URL), ...), plus C(ErrorTypes).
    - C(RetCodes) counts responses by status code; C(-1) counts requests that got no response,
      client errors and unsent requests included, as in fortio.
    - With O(engine=local) also meshtune's C(ClientErrors), the requests that failed before
      reaching the server by kind (only kinds that occurred, see RV(errors)), and C(NotSent),
      the measured requests that were due but never sent. fortio's readers ignore both.
  returned: success, not in check mode; with O(engine=local) also when the run failed the task
  type: dict
  sample:
    RunType: HTTP
    RequestedQPS: "500"
    RequestedDuration: 1m0s
    ActualQPS: 500.0
    ActualDuration: 60000000000
    RetCodes: {"200": 30000}
    ClientErrors: {}
    NotSent: 0
summary:
  description:
    - Latency percentiles in milliseconds (C(p50_ms), C(p90_ms), C(p99_ms), C(p999_ms),
      C(max_ms)), C(requested_qps) (0 for as fast as possible), C(achieved_qps), C(requests),
      C(errors) and C(success_rate), the share of 2xx responses.
    - With O(engine=local) C(errors) is split into C(client_errors) (requests that failed before
      reaching the server), C(server_errors) (answered with another code than 2xx, or too late,
      not in HTTP, or reset) and C(not_sent) (due but never sent).
  returned: success, not in check mode; with O(engine=local) also when the run failed the task
  type: dict
  sample: {p50_ms: 1.2, p90_ms: 2.1, p99_ms: 4.8, p999_ms: 9.7, max_ms: 12.0, requested_qps: 500.0,
           achieved_qps: 500.0, requests: 30000, errors: 0, success_rate: 1.0, client_errors: 0,
           server_errors: 0, not_sent: 0}
errors:
  description:
    - Requests that got no HTTP response, by kind, C(timeout), C(connection_refused),
      C(connection_reset) (reset, or closed before the response ended), C(protocol) (not an
      HTTP/1.x response), C(tls) (TLS handshake or certificate check failed),
      C(client_exhausted) (with O(engine=local), the host sending the load ran out of file
      descriptors, local ports or socket memory), C(not_sent) (more than O(timeout) late, never
      sent) and C(other) (another error of the connection, such as an unreachable network).
    - C(connection_refused), C(tls), C(client_exhausted) and C(other) are client errors, the
      request never reached the target's HTTP server. C(timeout), C(connection_reset) and
      C(protocol) are the server's.
    - fortio does not tell these kinds apart; with O(engine=fortio) every call that got no
      HTTP response (C(RetCodes) C(-1)) counts as C(other).
  returned: success, not in check mode; with O(engine=local) also when the run failed the task
  type: dict
  sample: {timeout: 3, connection_refused: 0, connection_reset: 0, protocol: 0, tls: 0,
           client_exhausted: 0, not_sent: 0, other: 0}
first_errors:
  description:
    - With O(engine=local), the first measured request's error of each kind that occurred, in
      words, the earliest kind first.
  returned: when the run took place with O(engine=local), not in check mode
  type: dict
  sample: {connection_refused: Connection refused (errno ECONNREFUSED)}
schedule:
  description:
    - With O(engine=local), how the run kept its schedule. C(planned), the measured requests
      the schedule had (null for O(qps=0) with O(duration)); C(sent); C(not_sent), those due but
      never sent, being more than O(timeout) late; C(not_sent_share), C(not_sent) over all
      measured requests due; C(max_not_sent), the share allowed (O(max_not_sent)); C(slipped),
      true when C(not_sent_share) is above it, which fails the task.
  returned: when the run took place with O(engine=local), not in check mode
  type: dict
  sample: {planned: 30000, sent: 30000, not_sent: 0, not_sent_share: 0.0, max_not_sent: 0.01,
           slipped: false}
capacity:
  description:
    - With O(search), the outcome. C(capacity_qps), the highest rate that held in every run of
      it (null when O(search.start_qps) already missed, then C(below_start) is true);
      C(missed_qps), the lowest rate that missed above it (null when O(search.max_qps) held,
      then C(capped) is true); the two bracket the capacity within C(resolution).
    - C(broken), the target that broke first at C(missed_qps) (the one furthest past its limit,
      relative to it) with its C(measured) value, C(limit) and C(unit); C(steps), how many steps
      ran; C(load_seconds), the time under load (steps times O(search.step_duration) plus
      O(warmup)).
  returned: with O(search), not in check mode
  type: dict
  sample: {capacity_qps: 400.0, missed_qps: 417.7, capped: false, below_start: false,
           broken: {target: p99_ms, qps: 417.7, measured: 61.3, limit: 50.0, unit: ms},
           resolution: 0.05, steps: 9, load_seconds: 13.5}
steps:
  description:
    - With O(search), every step in the order run, with C(step) (from 1), C(qps), C(phase)
      (C(grow), C(bisect) or C(confirm)), C(holds), C(missed) (the target names missed),
      C(checks) (as M(meshtune.mesh.slo_check) returns them), C(summary) (as RV(summary)) and
      C(result), the step's result in fortio's shape, for M(meshtune.mesh.perf_report).
  returned: with O(search), not in check mode
  type: list
  elements: dict
result_file:
  description: Where the result was written.
  returned: when O(result_file) is set, not in check mode
  type: str
  sample: /tmp/shop-baseline.json
url:
  description: The URL the fortio pods loaded (the deployed server's when O(url) was not given).
  returned: with O(engine=fortio)
  type: str
  sample: http://meshtune-load-server.meshtune-load.svc:8080/echo
pods:
  description:
    - One entry per fortio client pod, by completion index, with its C(name), C(index), the
      C(node) it ran on and the C(summary) of its own result (as RV(summary)).
    - Shows whether one pod (or node) was slower than the others.
  returned: success with O(engine=fortio), not in check mode
  type: list
  elements: dict
  sample:
    - name: meshtune-load-client-0-x7k2p
      index: 0
      node: worker-1
      summary: {p50_ms: 1.1, p90_ms: 1.9, p99_ms: 4.2, p999_ms: 8.8, max_ms: 11.0,
                requested_qps: 500.0, achieved_qps: 499.8, requests: 30000, errors: 0,
                success_rate: 1.0}
objects:
  description:
    - The Kubernetes objects of the run, in creation order, each with C(kind), C(api_version),
      C(namespace), C(name) and C(state), which is V(deleted), V(kept) (O(cleanup=false)),
      V(created) (its deletion failed), V(planned) (not reached because the run failed first)
      or, in check mode, V(would create).
  returned: with O(engine=fortio), when the options were valid
  type: list
  elements: dict
  sample:
    - {kind: ServiceAccount, api_version: v1, namespace: meshtune-load, name: meshtune-load,
       state: deleted}
    - {kind: Deployment, api_version: apps/v1, namespace: meshtune-load,
       name: meshtune-load-server, state: deleted}
    - {kind: Service, api_version: v1, namespace: meshtune-load, name: meshtune-load-server,
       state: deleted}
    - {kind: Job, api_version: batch/v1, namespace: meshtune-load, name: meshtune-load-client,
       state: deleted}
"""

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import auth_argument_spec
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen import capacity, fortio_engine
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.engine import (
    LoadError,
    assess,
    run_load,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.options import (
    ENGINES,
    spec_from_params,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.task import (
    ProgressLog,
    load_text,
    local_output,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.redact import (
    SecretHidingModule,
    redact_fields,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.run_result import write_result_file


def argument_spec():
    spec = {
        "url": {"type": "str"},
        "method": {"type": "str", "default": "GET"},
        "headers": {"type": "dict", "default": {}},
        "body": {"type": "str"},
        "qps": {"type": "float", "default": 100},
        "connections": {"type": "int", "default": 8},
        "workers": {"type": "int", "default": 0},
        "duration": {"type": "str"},
        "requests": {"type": "int"},
        "warmup": {"type": "str", "default": "0s"},
        "timeout": {"type": "str", "default": "3s"},
        # engine local only: None stands for the default, so that engine fortio can refuse it
        "max_not_sent": {"type": "float"},
        "engine": {"type": "str", "choices": list(ENGINES), "default": "local"},
        # engine fortio only: None stands for the default, so that engine local can refuse them
        "namespace": {"type": "str"},
        "name": {"type": "str"},
        "fortio_image": {"type": "str"},
        "fortio_version": {"type": "str"},
        "client_pods": {"type": "int"},
        "sidecar": {"type": "raw"},
        "revision": {"type": "str"},
        "cleanup": {"type": "bool"},
        "start_timeout": {"type": "str"},
        "job_timeout": {"type": "str"},
        "fortio_args": {"type": "list", "elements": "str"},
        "client_resources": {"type": "dict"},
        "server_resources": {"type": "dict"},
        "pod_annotations": {"type": "dict"},
        "histogram_resolution": {"type": "float"},
        "labels": {"type": "str", "default": ""},
        "result_file": {"type": "path"},
        "progress_file": {"type": "path"},
        "progress_interval": {"type": "str", "default": "10s"},
        "validate_certs": {"type": "bool", "default": True},
        "search": {"type": "dict", "options": capacity.SEARCH_OPTIONS},
    }
    # kubernetes.core's auth options for engine fortio, except its validate_certs: here that
    # name is about the load's target (see fortio_engine.auth_option_names).
    auth = auth_argument_spec()
    for name in fortio_engine.auth_option_names():
        spec[name] = auth[name]
    return spec


SIDECAR_TEXT = {"both": "with sidecars", "server": "with the server's sidecar only",
                "none": "without sidecars"}


def run_fortio(module, params, spec, log):
    """The in-cluster engine: fortio_engine does the work, this reports it as the module."""
    settings = spec.fortio
    if not module.check_mode:
        log.write(f"start: fortio {settings.version}, {settings.client_pods} client pods, "
                  f"{load_text(params, spec)}, "
                  f"{SIDECAR_TEXT[settings.sidecar]}")
    output, failure = fortio_engine.execute(module, spec, log.write)
    redact_fields(output, "url", "result.URL")
    if failure:
        module.fail_json(msg=failure, **output)
    finish(module, params, log, output)


def finish(module, params, log, output, failure=None):
    """Write the result file when asked (and there is a result), then exit with `output`, or
    fail with `failure` and `output` when the run is not a measurement of the target."""
    redact_fields(output, "url", "result.URL")  # a token in the URL stays out of results and files
    if params["result_file"] and "result" in output:
        try:
            write_result_file(params["result_file"], output["result"])
        except OSError as err:
            module.fail_json(msg=f"result_file: cannot write {params['result_file']}: {err}",
                             **output)
        output["result_file"] = params["result_file"]
    if log.failed is not None:
        module.warn(f"progress_file: could not append progress lines: {log.failed}")
    if failure:
        module.fail_json(msg=failure, **output)
    module.exit_json(**output)


def run_search(module, params, log):
    """search: the capacity search over local-engine steps, reported as `capacity` and `steps`."""
    spec, settings, problem = capacity.spec_from_search(params, progress=log.report)
    if problem:
        module.fail_json(msg=problem)
    log.url = spec.url
    if spec.fortio is not None:
        run_fortio_search(module, params, spec, settings, log)
    if module.check_mode:
        module.exit_json(changed=False, msg="check mode: options are valid, no request was sent")
    log.write(f"start: capacity search from {settings.start_qps:g} to {settings.max_qps:g} qps, "
              f"{params['search']['step_duration']} steps after {params['warmup']} warm-up")
    evaluate = capacity.local_evaluator(spec, settings, params["labels"], progress=log.write)
    try:
        outcome = capacity.run_search(evaluate, settings)
    except (capacity.SearchError, LoadError) as err:
        log.write(f"failed: {err}")
        module.fail_json(msg=f"Capacity search failed: {err}")
    found, steps = capacity.outcome_output(outcome, settings, spec.warmup)
    finish_search(module, log, {"changed": False, "capacity": found, "steps": steps,
                                "msg": capacity.headline(found)})


def run_fortio_search(module, params, spec, settings, log):
    """search with engine fortio: the server once, then a Job per step; objects cleaned up."""
    if not module.check_mode:
        log.write(f"start: capacity search with fortio {spec.fortio.version}, "
                  f"{spec.fortio.client_pods} client pods, from {settings.start_qps:g} to "
                  f"{settings.max_qps:g} qps, {params['search']['step_duration']} steps after "
                  f"{params['warmup']} warm-up, {SIDECAR_TEXT[spec.fortio.sidecar]}")
    output, failure = fortio_engine.execute(module, spec, log.write,
                                            work=capacity.fortio_search(spec, settings, log.write))
    redact_fields(output, "url")
    if failure:
        module.fail_json(msg=f"Capacity search failed: {failure}", **output)
    finish_search(module, log, output)


def finish_search(module, log, output):
    """Exit with a search's output: step results without URL secrets, the outcome logged."""
    for step in output.get("steps") or []:
        redact_fields(step, "result.URL")
    if "capacity" in output:
        log.write(f"done: {output['msg']}")
    if log.failed is not None:
        module.warn(f"progress_file: could not append progress lines: {log.failed}")
    module.exit_json(**output)


def main():
    module = SecretHidingModule(argument_spec=argument_spec(), supports_check_mode=True,
                                url_options=["url"], header_options=["headers"])
    params = module.params
    log = ProgressLog(module, params["progress_file"], params["url"])
    if params["search"] is not None:
        run_search(module, params, log)
    spec, problem = spec_from_params(params, progress=log.report)
    if problem:
        module.fail_json(msg=problem)
    log.url = spec.url
    if spec.fortio is not None:
        run_fortio(module, params, spec, log)
    if module.check_mode:
        module.exit_json(changed=False, msg="check mode: options are valid, no request was sent")
    log.write(f"start: {load_text(params, spec)}")
    try:
        run = run_load(spec)
    except LoadError as err:
        log.write(f"failed: {err}")
        module.fail_json(msg=f"Load test failed: {err}")
    output = local_output(run, params["labels"], spec.max_not_sent)
    log.write("done: p50={p50_ms}ms p90={p90_ms}ms p99={p99_ms}ms p999={p999_ms}ms "
              "achieved={achieved_qps}/s errors={errors} (client {client_errors}, server "
              "{server_errors}, not sent {not_sent})".format(**output["summary"]))
    failure, warnings = assess(run, spec.max_not_sent)
    for warning in warnings:
        module.warn(warning)
    if failure:
        log.write(f"failed: {failure}")
        failure = f"Load test failed: {failure}"
    finish(module, params, log, output, failure=failure)


if __name__ == "__main__":
    main()
