# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What must hold before an Istio revision upgrade starts, and before the old revision goes.

Precheck (before anything changes): the version skew between the revisions, stored Istio objects
that use deprecated fields or API versions, namespaces labelled both istio-injection and
istio.io/rev, and revision tags that already point at another revision. Each finding names the
object and the fix. Every kind is read with one cluster-wide list.

Stale pods (before the old revision is removed): every pod, in any namespace, whose sidecar was
injected by the revision, found by its istio.io/rev label or the revision recorded in its
sidecar.istio.io/status annotation.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.meshtune.mesh.plugins.module_utils.tables import text_table
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import InvalidOption

try:
    from kubernetes.dynamic.exceptions import ResourceNotFoundError
except ImportError:  # the module reports the missing kubernetes client itself
    ResourceNotFoundError = LookupError

REV_LABEL = "istio.io/rev"
TAG_LABEL = "istio.io/tag"
INJECTION_LABEL = "istio-injection"
SIDECAR_STATUS = "sidecar.istio.io/status"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
VERSION_LABELS = ("app.kubernetes.io/version", "helm.sh/chart")
# Istio supports canary upgrades (and downgrades) across at most two minor versions, e.g.
# 1.28 -> 1.30; further apart, upgrade in steps.
MAX_MINOR_SKEW = 2
VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+][0-9A-Za-z.-]+)?\Z")
REVISION_VERSION_RE = re.compile(r"^(\d+)-(\d+)-(\d+)(?:-|\Z)")
# Pods whose containers have ended no longer talk to any control plane.
FINISHED_PHASES = ("Succeeded", "Failed")

# Istio kinds by group, their current version and the versions deprecated since Istio 1.22 (when
# networking, security and telemetry APIs reached v1).
ISTIO_KINDS = (
    ("networking.istio.io", "v1", ("v1alpha3", "v1beta1"),
     ("DestinationRule", "VirtualService", "Gateway", "ServiceEntry", "Sidecar", "WorkloadEntry",
      "WorkloadGroup")),
    ("security.istio.io", "v1", ("v1beta1",),
     ("AuthorizationPolicy", "PeerAuthentication", "RequestAuthentication")),
    ("telemetry.istio.io", "v1", ("v1alpha1",), ("Telemetry",)),
)
DEPRECATED_VERSIONS_SINCE = (1, 22)
# Deprecated fields: (kind, key of the enclosing mapping, field, value or None for any, fix).
DEPRECATED_FIELDS = (
    ("DestinationRule", "outlierDetection", "consecutiveErrors", None,
     "use consecutive5xxErrors (consecutiveErrors also counted 5xx as errors)"),
    ("DestinationRule", "loadBalancer", "simple", "LEAST_CONN", "use simple: LEAST_REQUEST"),
    ("VirtualService", None, "mirrorPercent", None, "use mirrorPercentage: {value: <percent>}"),
)


# ---- versions -------------------------------------------------------------------------------

def parse_version(path, value):
    """(major, minor, patch) of an Istio version such as 1.30.3; InvalidOption otherwise."""
    match = VERSION_RE.match(value) if isinstance(value, str) else None
    if not match:
        raise InvalidOption(path, "an Istio version such as 1.30.3", value)
    return tuple(int(part or 0) for part in match.groups())


def version_text(version):
    return ".".join(str(part) for part in version)


def deployed_version(istiod, revision):
    """(version, where it was read) of a revision: its istiod Deployment's labels or image tag,
    else a revision named after its version (1-29-6); (None, why) when neither tells."""
    if istiod is not None:
        labels = istiod["metadata"].get("labels") or {}
        for label in VERSION_LABELS:
            text = (labels.get(label) or "").rpartition("-")[2] if label == "helm.sh/chart" \
                else labels.get(label) or ""
            if VERSION_RE.match(text):
                return parse_version(label, text), f"label {label} of Deployment istiod-{revision}"
        for container in istiod["spec"]["template"]["spec"].get("containers") or []:
            tag = (container.get("image") or "").rpartition(":")[2]
            if VERSION_RE.match(tag):
                return parse_version("image", tag), f"image of Deployment istiod-{revision}"
    match = REVISION_VERSION_RE.match(revision)
    if match:
        return tuple(int(part) for part in match.groups()), f"the revision name {revision}"
    return None, f"no Deployment istiod-{revision} tells its version and the revision name does not"


def skew_findings(new, old, previous_revision, revision):
    """A finding when the two versions are further apart than a canary upgrade supports."""
    if new[0] == old[0] and abs(new[1] - old[1]) <= MAX_MINOR_SKEW:
        return []
    step = (old[0], old[1] + MAX_MINOR_SKEW if new > old else old[1] - MAX_MINOR_SKEW)
    return [finding(
        "version skew", f"revisions {previous_revision} -> {revision}",
        f"{version_text(old)} -> {version_text(new)} spans more than {MAX_MINOR_SKEW} minor "
        "versions, beyond what Istio supports for canary upgrades",
        f"upgrade in steps: first to {step[0]}.{step[1]}.x, then on")]


def finding(check, obj, problem, fix):
    return {"check": check, "object": obj, "problem": problem, "fix": fix}


def findings_table(findings, limit=None):
    return text_table(("check", "object", "problem", "fix"),
                      [(f["check"], f["object"], f["problem"], f["fix"]) for f in findings], limit)


# ---- stored objects -------------------------------------------------------------------------

def served_istio_resources(client):
    """(group, current version, deprecated versions, kind, resource) for each Istio kind served."""
    found = []
    for group, current, deprecated, kinds in ISTIO_KINDS:
        for kind in kinds:
            try:
                found.append((group, current, deprecated, kind, client.resource(f"{group}/{current}", kind)))
            except ResourceNotFoundError:
                continue
    return found


def written_versions(obj):
    """The API versions the object was written with: its managedFields entries and the
    last-applied configuration kubectl apply keeps."""
    meta = obj.get("metadata") or {}
    versions = {entry.get("apiVersion") for entry in meta.get("managedFields") or []}
    try:
        applied = json.loads((meta.get("annotations") or {}).get(LAST_APPLIED) or "{}")
    except ValueError:
        applied = {}
    if isinstance(applied, dict):
        versions.add(applied.get("apiVersion"))
    return sorted(version for version in versions if isinstance(version, str))


def _label(kind, obj):
    meta = obj["metadata"]
    return f"{kind} {meta.get('namespace')}/{meta['name']}" if meta.get("namespace") \
        else f"{kind} {meta['name']}"


def field_uses(kind, value, path="spec"):
    """(path, fix) of every deprecated field in a kind's spec."""
    uses = []
    if isinstance(value, dict):
        parent = path.rpartition(".")[2].partition("[")[0]
        for rule_kind, enclosing, field, bad, fix in DEPRECATED_FIELDS:
            if rule_kind == kind and enclosing in (None, parent) and field in value and \
                    (bad is None or value[field] == bad):
                uses.append((f"{path}.{field}", fix))
        for key, item in value.items():
            uses.extend(field_uses(kind, item, f"{path}.{key}"))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            uses.extend(field_uses(kind, item, f"{path}[{index}]"))
    return uses


def deprecation_findings(kind, group, current, deprecated, obj, new_version):
    found = []
    label = _label(kind, obj)
    if new_version[:2] >= DEPRECATED_VERSIONS_SINCE:
        for version in written_versions(obj):
            if version in (f"{group}/{old}" for old in deprecated):
                found.append(finding(
                    "deprecated API version", label,
                    f"written as {version}, deprecated since Istio "
                    f"{version_text(DEPRECATED_VERSIONS_SINCE)}",
                    f"apply it again as {group}/{current} (same fields)"))
    for path, fix in field_uses(kind, obj.get("spec")):
        found.append(finding("deprecated field", label, f"{path} is deprecated", fix))
    return found


# ---- namespaces and tags --------------------------------------------------------------------

def label_clash_findings(namespaces):
    """Namespaces with both injection labels: istio-injection wins and istio.io/rev is ignored."""
    return [finding("injection labels", f"Namespace {ns['metadata']['name']}",
                    f"labelled both {INJECTION_LABEL}={labels[INJECTION_LABEL]} and "
                    f"{REV_LABEL}={labels[REV_LABEL]}: {INJECTION_LABEL} wins, so the revision "
                    "label is ignored",
                    f"kubectl label namespace {ns['metadata']['name']} {INJECTION_LABEL}-")
            for ns in namespaces
            for labels in [(ns["metadata"].get("labels") or {})]
            if INJECTION_LABEL in labels and REV_LABEL in labels]


def tag_findings(webhooks, tags, revision):
    """Tags among `tags` whose injector webhook already points at another revision."""
    found = []
    for hook in webhooks:
        labels = hook["metadata"].get("labels") or {}
        tag, points_at = labels.get(TAG_LABEL), labels.get(REV_LABEL)
        if tag in tags and points_at != revision:
            found.append(finding(
                "revision tag", f"MutatingWebhookConfiguration {hook['metadata']['name']}",
                f"tag {tag} already points at revision {points_at}",
                f"use another tag for {revision}, or remove {tag} from the revision that serves it "
                "first"))
    return found


# ---- pods of a revision ---------------------------------------------------------------------

def injected_revision(pod):
    """(revision, how it was found) of a pod's sidecar, or (None, None)."""
    meta = pod.get("metadata") or {}
    label = (meta.get("labels") or {}).get(REV_LABEL)
    if label:
        return label, f"label {REV_LABEL}"
    try:
        status = json.loads((meta.get("annotations") or {}).get(SIDECAR_STATUS) or "{}")
    except ValueError:
        return None, None
    revision = status.get("revision") if isinstance(status, dict) else None
    return (revision, f"annotation {SIDECAR_STATUS}") if revision else (None, None)


def owner(pod):
    """What runs the pod: the kind and name of its controller, or 'bare pod'."""
    for reference in pod["metadata"].get("ownerReferences") or []:
        if reference.get("controller", True):
            return f"{reference.get('kind')} {reference.get('name')}"
    return "bare pod"


def revision_pods(pods, revision):
    """The pods injected by `revision`, as result entries sorted by namespace and name."""
    entries = []
    for pod in pods:
        found, how = injected_revision(pod)
        if found != revision:
            continue
        phase = (pod.get("status") or {}).get("phase") or "Unknown"
        entries.append({"namespace": pod["metadata"]["namespace"], "name": pod["metadata"]["name"],
                        "owner": owner(pod), "phase": phase, "found_by": how,
                        "active": phase not in FINISHED_PHASES})
    return sorted(entries, key=lambda e: (e["namespace"], e["name"]))


def pods_table(entries, limit=None):
    return text_table(("namespace", "pod", "owner", "phase", "found by"),
                      [(e["namespace"], e["name"], e["owner"], e["phase"], e["found_by"])
                       for e in entries], limit)
