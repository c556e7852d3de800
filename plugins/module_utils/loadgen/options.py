# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The load_test module's options turned into a LoadSpec, with every problem found up front.

No request may leave before all options are known to be good: a typo in a header or a duration
must not cost a half-run load test against someone's service. So everything is checked here,
problems are collected (validate.Problems) and reported in one message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import os
import re

from ansible.module_utils.parsing.convert_bool import boolean

try:
    import resource  # POSIX only: the open-file limit
except ImportError:  # pragma: no cover - not on the platforms Ansible modules run on
    resource = None

from ansible_collections.meshtune.mesh.plugins.module_utils.kube import add_auth_option_problems
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen import fortio_engine, fortio_objects
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.engine import (
    DEFAULT_MAX_NOT_SENT,
    MAX_QPS_PER_WORKER,
    MAX_REQUESTS,
    LoadSpec,
    planned_requests,
    rate_bound,
    usable_cpus,
    worker_count,
)
from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.http1 import parse_url
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import (
    DNS1123_SUBDOMAIN_RE,
    InvalidOption,
    Problems,
    check_name,
    check_quantity_pair,
    check_range,
    duration_nanoseconds,
    parse_quantity,
)

ENGINES = ("local", "fortio")
MAX_CONNECTIONS = 10000
# File descriptors a worker process needs besides its connections: its selector or event loop,
# the socket pair to the parent, and what the interpreter keeps open.
FD_RESERVE = 16
# RFC 9110 token: what a method or a header name may contain.
_TOKEN_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def duration_seconds(path, value, minimum=0.0, allow_zero=False):
    """Seconds of a Go duration string such as 30s, 1m30s or 250ms; InvalidOption otherwise."""
    seconds = float(duration_nanoseconds(path, value)) / 1e9
    if seconds < minimum or (seconds == 0 and not allow_zero):
        expected = "a duration of at least 0s" if allow_zero else "a duration longer than 0s"
        raise InvalidOption(path, expected, value)
    return seconds


def _check_url(value):
    try:
        parse_url(value)
    except ValueError as err:
        raise InvalidOption("url", str(err), value) from err
    return value


def _check_headers(headers):
    """Header values as strings; names must be tokens, values single lines."""
    checked = {}
    seen = set()
    for name, value in (headers or {}).items():
        path = f"headers.{name}"
        if not isinstance(name, str) or not _TOKEN_RE.match(name):
            raise InvalidOption(path, "a header name of letters, digits and -", name)
        if name.lower() in seen:
            raise InvalidOption(path, "each header name once (names are case-insensitive)", name)
        seen.add(name.lower())
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidOption(path, "a string header value", value)
        text = str(value)
        if "\r" in text or "\n" in text:
            raise InvalidOption(path, "a header value on one line", value)
        checked[name] = text
    return checked


def _check_file(path, value):
    """A file the module may create or replace: its directory must exist and be writable."""
    if value is None:
        return None
    directory = os.path.dirname(os.path.abspath(value)) or "."
    if os.path.isdir(value):
        raise InvalidOption(path, "a file path, not a directory", value)
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise InvalidOption(path, "a path in an existing, writable directory", value)
    return value


def _open_files():
    """(soft limit, hard limit or "unlimited", descriptors open now) of this process, or None
    when the limit is unknown or unlimited."""
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    if hard == resource.RLIM_INFINITY:
        hard = "unlimited"
    try:
        in_use = len(os.listdir("/proc/self/fd")) - 1  # the listing's own descriptor
    except OSError:
        in_use = 3
    return soft, hard, in_use


def _check_local_load(problems, qps, connections, workers, duration, requests, warmup,
                      given_duration):
    """What the local engine on this host can send: the rate (MAX_QPS_PER_WORKER per worker
    process that can run at once), the requests of one run (MAX_REQUESTS) and the connections
    (file descriptors under the process's open-file limit)."""
    if qps is None or connections is None or workers is None:
        return
    bound, running = rate_bound(connections, workers)
    if qps > bound:
        if workers and running == workers:
            reason = f"workers {workers}"
        elif running == connections:
            reason = f"one per connection, {connections}"
        else:
            reason = f"one per usable CPU, {usable_cpus()}"
        problems.add("qps", f"at most {bound} requests per second ({MAX_QPS_PER_WORKER} per worker "
                     f"process, {running} worker{'s' if running > 1 else ''}: {reason}): a faster "
                     "schedule cannot be kept and would only pile up requests that are never "
                     "sent", qps)
    elif (duration is not None or requests is not None) and warmup is not None:
        planned = planned_requests(qps, duration, requests, warmup)
        if planned is not None and planned > MAX_REQUESTS:
            path = "requests" if requests is not None else "duration"
            problems.add(path, f"at most {MAX_REQUESTS} requests per run, warm-up included "
                         f"(this run would send {planned}); send a longer load test as several "
                         "runs", requests if requests is not None else given_duration)
    limits = _open_files()
    if limits is not None:
        soft, hard, in_use = limits
        count = worker_count(workers, connections, qps)
        per_worker = -(-connections // count)
        room = soft - in_use - FD_RESERVE
        if per_worker > room:
            problems.add("connections", f"at most {max(0, room) * count} with this host's open-file "
                         f"limit (RLIMIT_NOFILE soft limit {soft}, {in_use} open already, hard "
                         f"limit {hard}): each connection is a file descriptor of its worker "
                         f"process ({per_worker} for each of {count}); raise the limit (ulimit -n) "
                         "or give fewer connections", connections)


def _check_max_not_sent(value, engine):
    """A share from 0 to 1 (default DEFAULT_MAX_NOT_SENT); engine local only."""
    if value is None:
        return DEFAULT_MAX_NOT_SENT
    if engine == "fortio":
        raise InvalidOption("max_not_sent", "no max_not_sent with engine fortio (fortio does not "
                            "report requests it did not send)", value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= 1:
        raise InvalidOption("max_not_sent", "a share from 0 to 1, such as 0.01 for 1 %", value)
    return float(value)


def spec_from_params(params, progress=None):
    """(LoadSpec, None) when every option is good, else (None, one message with all problems).

    With engine fortio the spec's `fortio` attribute holds the engine's FortioSettings (and
    its url the deployed server's when no url was given); with engine local it is None.
    """
    problems = Problems()
    fortio = _engine_options(params, problems)
    if fortio is not None:  # the fortio engine reaches a cluster with the auth options
        add_auth_option_problems(problems, params)
    url = None
    if params.get("url") is not None:
        url = problems.check(_check_url, params["url"])
    elif fortio is not None:
        url = fortio.default_url()
    method = params["method"]
    if not isinstance(method, str) or not _TOKEN_RE.match(method):
        problems.add("method", "an HTTP method such as GET, POST or HEAD", method)
    headers = problems.check(_check_headers, params.get("headers"))
    qps = params["qps"]
    if isinstance(qps, bool) or not isinstance(qps, (int, float)) or not math.isfinite(qps) or qps < 0:
        problems.add("qps", "a number of requests per second, at least 0 (0 = as fast as possible)",
                     qps)
        qps = None
    connections = problems.check(check_range, "connections", params["connections"], 1,
                                 MAX_CONNECTIONS)
    workers = problems.check(check_range, "workers", params.get("workers", 0), 0, MAX_CONNECTIONS)
    if workers and connections is not None and workers > connections:
        problems.add("workers", f"at most connections ({connections}): each worker process needs "
                     "a connection of its own, or 0 to let the engine choose", workers)
    if workers and fortio is not None:
        problems.add("workers", "0 with engine fortio (client_pods spreads its load)", workers)
    duration = requests = None
    if (params.get("duration") is None) == (params.get("requests") is None):
        problems.add("duration", "exactly one of duration (such as 30s) and requests (a count)",
                     {"duration": params.get("duration"), "requests": params.get("requests")})
    elif params.get("duration") is not None:
        duration = problems.check(duration_seconds, "duration", params["duration"])
        if duration is not None and qps and duration * qps < 1:
            problems.add("duration", f"long enough for one request at qps {qps:g}",
                         params["duration"])
    else:
        requests = problems.check(check_range, "requests", params["requests"], 1)
    warmup = problems.check(duration_seconds, "warmup", params["warmup"], allow_zero=True)
    timeout = problems.check(duration_seconds, "timeout", params["timeout"])
    interval = problems.check(duration_seconds, "progress_interval", params["progress_interval"])
    engine = params.get("engine") or "local"
    max_not_sent = problems.check(_check_max_not_sent, params.get("max_not_sent"), engine)
    if engine == "local":
        _check_local_load(problems, qps, connections, workers, duration, requests, warmup,
                          params.get("duration"))
    if params.get("engine", "local") not in ENGINES:
        problems.add("engine", "local or fortio", params["engine"])
    if fortio is not None:
        _check_split(problems, fortio, connections, requests, qps, duration, params.get("duration"))
        if requests is not None and qps == 0 and fortio.job_timeout is None:
            problems.add("job_timeout", "a duration such as 10m with requests and qps 0 (how long "
                         "the run takes cannot be known beforehand)", None)
    problems.check(_check_file, "result_file", params.get("result_file"))
    problems.check(_check_file, "progress_file", params.get("progress_file"))
    message = problems.message()
    if message:
        return None, message
    spec = LoadSpec(url, method=method.upper(), headers=headers, body=params.get("body") or "",
                    qps=qps, connections=connections, duration=duration, requests=requests,
                    warmup=warmup, timeout=timeout,
                    validate_certs=params.get("validate_certs", True),
                    progress_interval=interval, progress=progress, workers=workers)
    spec.fortio = fortio
    spec.max_not_sent = max_not_sent
    return spec, None


# The in-cluster fortio engine's options: used with engine fortio only, where None means the
# default, so that giving one with engine local can be told apart from leaving it out.
FORTIO_ONLY_OPTIONS = ("namespace", "name", "fortio_image", "fortio_version", "client_pods",
                       "sidecar", "revision", "cleanup", "start_timeout", "job_timeout",
                       "fortio_args", "client_resources", "server_resources", "pod_annotations",
                       "histogram_resolution")
MAX_CLIENT_PODS = 1000
# The name prefixes `<name>-client` and `<name>-server`; the Job's pods are named
# `<name>-client-<index>-<suffix>` and their host names `<name>-client-<index>` must stay labels.
MAX_NAME_LENGTH = 50
_DNS1035_LABEL_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?\Z")
_IMAGE_RE = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._/-][a-z0-9]+)*)*\Z")
_IMAGE_HOST_RE = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]+)?\Z")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}\Z")
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)\Z")
_RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")
_SECRET_OPTIONS = ("kubeconfig", "api_key", "password", "proxy_headers")


def _fortio_only_given(params):
    """The fortio-only options (and Kubernetes auth options) given a value."""
    names = list(FORTIO_ONLY_OPTIONS) + fortio_engine.auth_option_names()
    return [name for name in names if params.get(name) not in (None, [], {})]


def _check_load_test_name(value):
    if not isinstance(value, str) or len(value) > MAX_NAME_LENGTH or not _DNS1035_LABEL_RE.match(value):
        raise InvalidOption("name", f"a DNS-1035 label of at most {MAX_NAME_LENGTH} characters "
                            "(lower-case letters, digits and '-', starting with a letter)", value)
    return value


def _check_image(value):
    """An image repository without tag or digest (those come from fortio_version)."""
    if not isinstance(value, str) or not value:
        raise InvalidOption("fortio_image", "an image name such as fortio/fortio", value)
    first, _slash, rest = value.partition("/")
    path = rest if rest and ("." in first or ":" in first or first == "localhost") else value
    if (path is rest and not _IMAGE_HOST_RE.match(first)) or not _IMAGE_RE.match(path) or \
            "@" in value:
        raise InvalidOption("fortio_image", "an image name without tag or digest, such as "
                            "fortio/fortio or registry.example.com:5000/mirror/fortio "
                            "(the tag is fortio_version)", value)
    return value


def _check_version(value):
    if not isinstance(value, str) or not (_TAG_RE.match(value) or _DIGEST_RE.match(value)):
        raise InvalidOption("fortio_version", "an image tag such as 1.77.0, or a digest "
                            "sha256:<64 hex digits>", value)
    return value


def _check_resources(path, value):
    """{requests: {...}, limits: {...}} with cpu, memory and ephemeral-storage quantities."""
    if not isinstance(value, dict) or not value or set(value) - {"requests", "limits"}:
        raise InvalidOption(path, "a dict with requests and/or limits", value)
    checked = {}
    for part in ("requests", "limits"):
        amounts = value.get(part)
        if amounts is None:
            continue
        if not isinstance(amounts, dict) or set(amounts) - set(_RESOURCE_NAMES):
            raise InvalidOption(f"{path}.{part}", "a dict of cpu, memory and ephemeral-storage "
                                "quantities", amounts)
        for resource, amount in amounts.items():
            parse_quantity(f"{path}.{part}.{resource}", amount)
        checked[part] = {resource: str(amount) for resource, amount in amounts.items()}
    for resource in _RESOURCE_NAMES:
        check_quantity_pair(f"{path}.requests.{resource}",
                            (checked.get("requests") or {}).get(resource),
                            f"{path}.limits.{resource}", (checked.get("limits") or {}).get(resource))
    return checked


def _check_annotations(value):
    """Annotation keys (an optional DNS subdomain prefix, a name) to string values."""
    checked = {}
    for key, text in (value or {}).items():
        path = f"pod_annotations.{key}"
        prefix, _slash, name = key.rpartition("/") if isinstance(key, str) else ("", "", None)
        if name is None or len(name) > 63 or not _QUALIFIED_NAME_RE.match(name) or \
                (prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN_RE.match(prefix))):
            raise InvalidOption(path, "an annotation key such as proxy.istio.io/config", key)
        if isinstance(text, bool) or not isinstance(text, (str, int, float)):
            raise InvalidOption(path, "a string value (quote true, false and numbers)", text)
        checked[key] = str(text)
    return checked


def _check_fortio_args(value):
    """Extra fortio flags: each flag starts with '-'; the flags meshtune sets are refused."""
    args = list(value or [])
    for index, arg in enumerate(args):
        path = f"fortio_args[{index}]"
        if not isinstance(arg, str):
            raise InvalidOption(path, "a string", arg)
        if index == 0 and not arg.startswith("-"):
            raise InvalidOption(path, "a fortio flag such as -uniform", arg)
        if arg.startswith("-"):
            flag = arg.lstrip("-").split("=", 1)[0]
            if flag in fortio_objects.RESERVED_FLAGS:
                raise InvalidOption(path, f"a flag meshtune does not set itself (-{flag} is set "
                                    f"{fortio_objects.RESERVED_FLAGS[flag]})", arg)
    return args


# fortio's -r: from 1 microsecond (buckets up to 0.1 s) to 10 ms (buckets up to 1000 s).
MIN_RESOLUTION = 1e-6
MAX_RESOLUTION = 0.01


def _check_resolution(value):
    """fortio's histogram resolution in seconds, such as 0.0001 for 0.1 ms buckets."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not MIN_RESOLUTION <= value <= MAX_RESOLUTION:
        raise InvalidOption("histogram_resolution", f"seconds from {MIN_RESOLUTION:g} to "
                            f"{MAX_RESOLUTION:g}, such as 0.0001 for 0.1 ms buckets up to 10 s", value)
    return float(value)


def _check_sidecar(value):
    """The sidecar mode: true (both), server (the server's only) or false (none)."""
    if value in fortio_objects.SIDECAR_MODES[:2]:
        return value
    try:
        return "both" if boolean(value, strict=True) else "none"
    except TypeError as err:
        raise InvalidOption("sidecar", "true (client and server sidecars), server (the server's "
                            "sidecar only) or false (no sidecar, the baseline)", value) from err


def _given_or(params, name, default):
    """An option's value, or its default when not given (an empty string is a value)."""
    value = params.get(name)
    return default if value is None else value


def _fortio_settings(params, problems):
    """FortioSettings from the fortio engine's options, or None when one of them is bad."""
    before = len(problems.messages)
    name = _given_or(params, "name", fortio_objects.DEFAULT_NAME)
    namespace = _given_or(params, "namespace", fortio_objects.DEFAULT_NAMESPACE)
    problems.check(_check_load_test_name, name)
    problems.check(check_name, "namespace", namespace, label=True)
    image = _given_or(params, "fortio_image", fortio_objects.DEFAULT_IMAGE)
    problems.check(_check_image, image)
    version = _given_or(params, "fortio_version", fortio_objects.DEFAULT_VERSION)
    problems.check(_check_version, version)
    client_pods = _given_or(params, "client_pods", 1)
    problems.check(check_range, "client_pods", client_pods, 1, MAX_CLIENT_PODS)
    sidecar = problems.check(_check_sidecar, _given_or(params, "sidecar", True))
    revision = params.get("revision")
    if revision is not None:
        problems.check(check_name, "revision", revision, label=True)
        if sidecar == "none":
            problems.add("revision", "no revision with sidecar false (the baseline runs without "
                         "sidecars)", revision)
    start_timeout = problems.check(duration_seconds, "start_timeout",
                                   _given_or(params, "start_timeout", fortio_objects.DEFAULT_START_TIMEOUT))
    job_timeout = None
    if params.get("job_timeout") is not None:
        job_timeout = problems.check(duration_seconds, "job_timeout", params["job_timeout"])
    fortio_args = problems.check(_check_fortio_args, params.get("fortio_args"))
    resources = {}
    for role in ("client", "server"):
        value = params.get(f"{role}_resources")
        if value is not None:
            resources[role] = problems.check(_check_resources, f"{role}_resources", value)
    annotations = problems.check(_check_annotations, params.get("pod_annotations"))
    resolution = problems.check(_check_resolution, _given_or(params, "histogram_resolution",
                                                             fortio_objects.DEFAULT_RESOLUTION))
    if len(problems.messages) > before:
        return None
    return fortio_objects.FortioSettings(
        namespace=namespace, name=name, image=image, version=version, client_pods=client_pods,
        sidecar=sidecar, revision=revision, cleanup=_given_or(params, "cleanup", True),
        start_timeout=start_timeout, job_timeout=job_timeout, fortio_args=fortio_args,
        resources=resources, pod_annotations=annotations, deploy_server=params.get("url") is None,
        labels=params.get("labels") or "", resolution=resolution)


def _check_split(problems, settings, connections, requests, qps, duration, given_duration):
    """The load divides evenly over the client pods, and each pod has at least one request."""
    pods = settings.client_pods
    if pods == 1:
        return
    if connections is not None and connections % pods:
        problems.add("connections", f"a multiple of client_pods ({pods}), such as "
                     f"{max(1, connections // pods) * pods} or {(connections // pods + 1) * pods}: "
                     "each client pod opens connections / client_pods", connections)
    if requests is not None and requests % pods:
        problems.add("requests", f"a multiple of client_pods ({pods}), such as "
                     f"{max(1, requests // pods) * pods} or {(requests // pods + 1) * pods}: "
                     "each client pod sends requests / client_pods", requests)
    if duration is not None and qps and duration * qps / pods < 1:
        problems.add("duration", f"long enough for one request per client pod at qps {qps:g} "
                     f"over {pods} pods", given_duration)


def _engine_options(params, problems):
    """The fortio engine's settings (None for engine local); problems for misplaced options."""
    engine = params.get("engine") or "local"
    if engine == "fortio":
        return _fortio_settings(params, problems)
    for name in _fortio_only_given(params):
        shown = "(not shown)" if name in _SECRET_OPTIONS else params[name]
        problems.add(name, f"no {name} with engine local (it is an option of engine fortio)", shown)
    if params.get("url") is None:
        problems.add("url", "a URL to load (required with engine local)", None)
    return None
