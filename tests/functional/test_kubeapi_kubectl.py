"""The real kubectl against the test API server: apply, get, patch, delete, validation."""

from __future__ import annotations

import json

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          ports: [{containerPort: 80}]
        - name: helper
          image: busybox:1.36
"""

DESTINATION_RULE = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 30ms}
      http: {http1MaxPendingRequests: 64, maxRequestsPerConnection: 10}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
"""


def get_json(kubeapi, *args) -> dict:
    return json.loads(kubeapi.kubectl("get", *args, "-o", "json").stdout)


def test_deployment_apply_get_patch_delete(kubeapi):
    created = kubeapi.kubectl("apply", "-f", "-", input=DEPLOYMENT)
    assert "deployment.apps/web created" in created.stdout

    again = kubeapi.kubectl("apply", "-f", "-", input=DEPLOYMENT)
    assert "deployment.apps/web unchanged" in again.stdout

    scaled = kubeapi.kubectl("apply", "-f", "-", input=DEPLOYMENT.replace("replicas: 2",
                                                                          "replicas: 4"))
    assert "configured" in scaled.stdout
    live = get_json(kubeapi, "deployment", "web")
    assert live["spec"]["replicas"] == 4
    # Strategic merge: patching one container by name keeps the other one.
    kubeapi.kubectl("patch", "deployment", "web", "-p",
                    '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}')
    containers = {c["name"]: c["image"] for c in
                  get_json(kubeapi, "deployment", "web")["spec"]["template"]["spec"]["containers"]}
    assert containers == {"web": "nginx:1.28", "helper": "busybox:1.36"}

    rollout = kubeapi.kubectl("rollout", "status", "deployment/web", "--timeout=20s")
    assert "successfully rolled out" in rollout.stdout

    kubeapi.kubectl("delete", "deployment", "web")
    missing = kubeapi.kubectl("get", "deployment", "web", check=False)
    assert missing.returncode != 0
    assert 'deployments.apps "web" not found' in missing.stderr


def test_destination_rule_apply_get_patch_delete(kubeapi):
    assert "destinationrule.networking.istio.io/reviews created" in \
        kubeapi.kubectl("apply", "-f", "-", input=DESTINATION_RULE).stdout
    live = get_json(kubeapi, "destinationrules.networking.istio.io", "reviews")
    assert live["spec"]["trafficPolicy"]["connectionPool"]["tcp"]["maxConnections"] == 100
    short = kubeapi.kubectl("get", "dr", "-o", "name").stdout
    assert "destinationrule.networking.istio.io/reviews" in short

    kubeapi.kubectl("patch", "dr", "reviews", "--type=merge", "-p",
                    '{"spec":{"trafficPolicy":{"loadBalancer":{"simple":"LEAST_REQUEST"}}}}')
    patched = get_json(kubeapi, "dr", "reviews")
    assert patched["spec"]["trafficPolicy"]["loadBalancer"] == {"simple": "LEAST_REQUEST"}
    assert patched["metadata"]["generation"] == 2

    kubeapi.kubectl("delete", "-f", "-", input=DESTINATION_RULE)
    assert kubeapi.kubectl("get", "dr", "reviews", check=False).returncode != 0


def test_kubectl_reports_invalid_destination_rule(kubeapi):
    bad = DESTINATION_RULE.replace("interval: 10s", "interval: 10 seconds")
    result = kubeapi.kubectl("apply", "-f", "-", input=bad, check=False)
    assert result.returncode != 0
    assert "spec.trafficPolicy.outlierDetection.interval" in result.stderr
    assert "is invalid" in result.stderr


def test_kubectl_server_side_apply_and_dry_run(kubeapi):
    config = DEPLOYMENT.replace("name: web", "name: api", 1)
    dry = kubeapi.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", input=config)
    assert "serverside-applied" in dry.stdout
    assert kubeapi.kubectl("get", "deployment", "api", check=False).returncode != 0

    kubeapi.kubectl("apply", "--server-side", "-f", "-", input=config)
    without_helper = config.replace("        - name: helper\n          image: busybox:1.36\n", "")
    kubeapi.kubectl("apply", "--server-side", "-f", "-", input=without_helper)
    names = [c["name"] for c in
             get_json(kubeapi, "deployment", "api")["spec"]["template"]["spec"]["containers"]]
    assert names == ["web"]
