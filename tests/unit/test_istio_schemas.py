"""The Istio `spec` JSON Schemas under tests/kubeapi/schemas/istio.

Every schema must be a valid draft 2020-12 schema; realistic objects (adapted from the examples
in Istio's API reference) must pass, and typical mistakes must be rejected with an error whose
path names the offending field.
"""

from __future__ import annotations

import functools
import json
import re
import textwrap
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator, ValidationError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "kubeapi" / "schemas" / "istio"
INDEX_KEYS = {"group", "kind", "plural", "singular", "shortNames", "versions", "storage_version",
              "schema"}
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


def load_index() -> list[dict]:
    return json.loads((SCHEMA_DIR / "index.json").read_text(encoding="utf-8"))


INDEX = load_index()
BY_KIND = {entry["kind"]: entry for entry in INDEX}


def load_schema(kind: str) -> dict:
    return json.loads((SCHEMA_DIR / BY_KIND[kind]["schema"]).read_text(encoding="utf-8"))


@functools.cache
def validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(kind))


def spec_of(text: str) -> dict:
    return yaml.safe_load(textwrap.dedent(text))


def dotted(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def error_fields(err: ValidationError) -> list[str]:
    """Dotted paths of the fields an error is about (an unknown or missing field included)."""
    path = list(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = err.schema.get("properties") or {}
        return [dotted([*path, name]) for name in err.instance if name not in known]
    if err.validator == "required" and isinstance(err.instance, dict):
        return [dotted([*path, name]) for name in err.validator_value if name not in err.instance]
    return [dotted(path)]


def rejected_fields(kind: str, spec: dict) -> list[str]:
    return [field for err in validator(kind).iter_errors(spec) for field in error_fields(err)]


# --------------------------------------------------------------------------- the files


def test_index_lists_every_schema_file():
    listed = {entry["schema"] for entry in INDEX}
    on_disk = {p.relative_to(SCHEMA_DIR).as_posix() for p in SCHEMA_DIR.rglob("*.json")}
    assert on_disk - {"index.json"} == listed
    assert len(INDEX) == 11


@pytest.mark.parametrize("entry", INDEX, ids=lambda e: e["kind"])
def test_index_entry(entry):
    assert set(entry) == INDEX_KEYS
    assert entry["schema"] == f"{entry['group']}/{entry['kind'].lower()}.json"
    assert entry["singular"] == entry["kind"].lower()
    assert entry["storage_version"] in entry["versions"]
    assert entry["versions"] == sorted(entry["versions"], key=version_rank)
    assert entry["group"].endswith(".istio.io")


def version_rank(version: str) -> tuple[int, int, int]:
    """Kubernetes version priority: GA before beta before alpha, higher numbers first."""
    major, stage, minor = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version).groups()
    return ({None: 0, "beta": 1, "alpha": 2}[stage], -int(major), -int(minor or 0))


def test_index_names_and_versions():
    expected = {
        "DestinationRule": ("destinationrules", ["dr"], ["v1", "v1beta1", "v1alpha3"], "v1"),
        "VirtualService": ("virtualservices", ["vs"], ["v1", "v1beta1", "v1alpha3"], "v1"),
        "Gateway": ("gateways", ["gw"], ["v1", "v1beta1", "v1alpha3"], "v1"),
        "ServiceEntry": ("serviceentries", ["se"], ["v1", "v1beta1", "v1alpha3"], "v1"),
        "Sidecar": ("sidecars", [], ["v1", "v1beta1", "v1alpha3"], "v1"),
        "WorkloadEntry": ("workloadentries", ["we"], ["v1", "v1beta1", "v1alpha3"], "v1"),
        "EnvoyFilter": ("envoyfilters", [], ["v1alpha3"], "v1alpha3"),
        "PeerAuthentication": ("peerauthentications", ["pa"], ["v1", "v1beta1"], "v1"),
        "AuthorizationPolicy": ("authorizationpolicies", ["ap"], ["v1", "v1beta1"], "v1"),
        "RequestAuthentication": ("requestauthentications", ["ra"], ["v1", "v1beta1"], "v1"),
        "Telemetry": ("telemetries", ["telemetry"], ["v1", "v1alpha1"], "v1alpha1"),
    }
    actual = {e["kind"]: (e["plural"], e["shortNames"], e["versions"], e["storage_version"])
              for e in INDEX}
    assert actual == expected


@pytest.mark.parametrize("kind", sorted(BY_KIND))
def test_schema_is_valid_draft_2020_12(kind):
    schema = load_schema(kind)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == DRAFT_2020_12
    assert schema["type"] == "object"
    assert re.search(r"\b(networking|security|telemetry)\.istio\.io/v1(alpha3)?\b",
                     schema["description"])


def walk(node, path="#"):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}/{i}")


@pytest.mark.parametrize("kind", sorted(BY_KIND))
def test_schema_is_strict(kind):
    """Every object schema with declared properties forbids undeclared ones."""
    loose = [path for path, node in walk(load_schema(kind))
             if node.get("type") == "object" and "properties" in node
             and node.get("additionalProperties") is not False]
    assert loose == []


# ------------------------------------------------------------------------- durations

DURATION = re.compile(load_schema("DestinationRule")["$defs"]["duration"]["pattern"])


@pytest.mark.parametrize("value", ["10s", "1m", "100ms", "1.5s", "1h30m", "500us", "2µs", "30ns",
                                   "7200s", "0.25h"])
def test_duration_accepts_go_syntax(value):
    assert DURATION.search(value)


@pytest.mark.parametrize("value", ["10 seconds", "10", "s", "-1s", "1d", "1.s", "10S", " 10s",
                                   "10s ", "PT10S", ""])
def test_duration_rejects_other_syntax(value):
    assert not DURATION.search(value)


# ---------------------------------------------------------------------- valid objects

VALID = {
    "destinationrule-subsets": ("DestinationRule", """
        host: ratings.prod.svc.cluster.local
        trafficPolicy:
          loadBalancer:
            simple: LEAST_REQUEST
        subsets:
        - name: testversion
          labels:
            version: v3
          trafficPolicy:
            loadBalancer:
              simple: ROUND_ROBIN
        """),
    "destinationrule-circuit-breaker": ("DestinationRule", """
        host: reviews.prod.svc.cluster.local
        subsets:
        - name: v1
          labels:
            version: v1
          trafficPolicy:
            connectionPool:
              tcp:
                maxConnections: 100
                connectTimeout: 30ms
                tcpKeepalive:
                  time: 7200s
                  interval: 75s
                  probes: 9
              http:
                http2MaxRequests: 1000
                maxRequestsPerConnection: 10
            outlierDetection:
              consecutive5xxErrors: 7
              interval: 5m
              baseEjectionTime: 15m
        """),
    "destinationrule-full-traffic-policy": ("DestinationRule", """
        host: payments.shop.svc.cluster.local
        exportTo: [".", "istio-system"]
        workloadSelector:
          matchLabels:
            app: checkout
        trafficPolicy:
          connectionPool:
            tcp:
              maxConnections: 500
              connectTimeout: 1.5s
              maxConnectionDuration: 1h30m
              idleTimeout: 1h
            http:
              http1MaxPendingRequests: 64
              http2MaxRequests: 2048
              maxRequestsPerConnection: 0
              maxRetries: 3
              idleTimeout: 300s
              h2UpgradePolicy: UPGRADE
              useClientProtocol: false
              maxConcurrentStreams: 256
          outlierDetection:
            splitExternalLocalOriginErrors: true
            consecutiveLocalOriginFailures: 5
            consecutiveGatewayErrors: 3
            consecutive5xxErrors: 5
            interval: 10s
            baseEjectionTime: 30s
            maxEjectionPercent: 100
            minHealthPercent: 0
          loadBalancer:
            consistentHash:
              httpCookie:
                name: session
                path: /
                ttl: 0s
                attributes:
                - name: SameSite
                  value: Strict
              ringHash:
                minimumRingSize: 1024
            localityLbSetting:
              enabled: true
              failover:
              - from: us-east
                to: us-west
            warmup:
              duration: 60s
              minimumPercent: 10
              aggression: 1.0
          tls:
            mode: MUTUAL
            clientCertificate: /etc/certs/myclientcert.pem
            privateKey: /etc/certs/client_private_key.pem
            caCertificates: /etc/certs/rootcacerts.pem
            subjectAltNames: [payments.example.com]
            sni: payments.example.com
            insecureSkipVerify: false
          portLevelSettings:
          - port:
              number: 8443
            loadBalancer:
              consistentHash:
                useSourceIp: true
            tls:
              mode: ISTIO_MUTUAL
          proxyProtocol:
            version: V2
          tunnel:
            protocol: CONNECT
            targetHost: 192.168.1.2
            targetPort: 443
        """),
    "destinationrule-locality-distribute": ("DestinationRule", """
        host: helloworld.sample.svc.cluster.local
        trafficPolicy:
          loadBalancer:
            simple: ROUND_ROBIN
            warmupDurationSecs: 30s
            localityLbSetting:
              distribute:
              - from: us-west/zone1/*
                to:
                  "us-west/zone1/*": 80
                  "us-west/zone2/*": 20
          outlierDetection:
            consecutive5xxErrors: 1
            interval: 1s
            baseEjectionTime: 1m
        """),
    "virtualservice-routes": ("VirtualService", """
        hosts:
        - reviews.prod.svc.cluster.local
        gateways: [mesh, istio-system/public-gateway]
        http:
        - name: reviews-v2-routes
          match:
          - headers:
              end-user:
                exact: jason
            uri:
              prefix: /wpcatalog
            ignoreUriCase: true
          rewrite:
            uri: /newcatalog
          route:
          - destination:
              host: reviews.prod.svc.cluster.local
              subset: v2
            weight: 80
            headers:
              request:
                set:
                  x-canary: "true"
          - destination:
              host: reviews.prod.svc.cluster.local
              subset: v1
              port:
                number: 9080
            weight: 20
          timeout: 10s
          retries:
            attempts: 3
            perTryTimeout: 2s
            retryOn: gateway-error,connect-failure,refused-stream
          fault:
            delay:
              percentage:
                value: 0.1
              fixedDelay: 5s
          corsPolicy:
            allowOrigins:
            - exact: https://example.com
            allowMethods: [POST, GET]
            maxAge: 24h
            allowCredentials: false
        - route:
          - destination:
              host: reviews.prod.svc.cluster.local
              subset: v1
          mirror:
            host: reviews.prod.svc.cluster.local
            subset: v3
          mirrorPercentage:
            value: 50.0
        tcp:
        - match:
          - port: 27017
          route:
          - destination:
              host: mongo.backup.svc.cluster.local
              port:
                number: 5555
        tls:
        - match:
          - port: 443
            sniHosts: [login.bookinfo.com]
          route:
          - destination:
              host: login.prod.svc.cluster.local
        """),
    "virtualservice-redirect-direct-response": ("VirtualService", """
        hosts: [ratings.prod.svc.cluster.local]
        http:
        - match:
          - uri:
              exact: /v1/getProductRatings
          redirect:
            uri: /v1/bookRatings
            authority: newratings.default.svc.cluster.local
            redirectCode: 301
        - match:
          - uri:
              regex: "^/v[0-9]+/unsupported"
          directResponse:
            status: 503
            body:
              string: "unknown error"
        """),
    "gateway-https": ("Gateway", """
        selector:
          app: my-gateway-controller
        servers:
        - port:
            number: 80
            name: http
            protocol: HTTP
          hosts: [uk.bookinfo.com, eu.bookinfo.com]
          tls:
            httpsRedirect: true
        - port:
            number: 443
            name: https-443
            protocol: HTTPS
          hosts: [uk.bookinfo.com, eu.bookinfo.com]
          tls:
            mode: SIMPLE
            credentialName: bookinfo-secret
            minProtocolVersion: TLSV1_2
        - port:
            number: 9443
            name: https-9443
            protocol: HTTPS
          hosts: ["bookinfo-namespace/*.bookinfo.com"]
          tls:
            mode: MUTUAL
            serverCertificate: /etc/certs/servercert.pem
            privateKey: /etc/certs/privatekey.pem
            caCertificates: /etc/certs/caCertificates.pem
        """),
    "serviceentry-dns": ("ServiceEntry", """
        hosts: [api.dropboxapi.com, www.googleapis.com]
        location: MESH_EXTERNAL
        ports:
        - number: 443
          name: https
          protocol: TLS
        resolution: DNS
        """),
    "serviceentry-static-endpoints": ("ServiceEntry", """
        hosts: [mymongodb.somedomain]
        addresses: [192.192.192.192/24]
        ports:
        - number: 27018
          name: mongodb
          protocol: MONGO
        location: MESH_INTERNAL
        resolution: STATIC
        endpoints:
        - address: 2.2.2.2
        - address: 3.3.3.3
          ports:
            mongodb: 27019
          labels:
            app: mongo
        """),
    "sidecar-ingress-egress": ("Sidecar", """
        workloadSelector:
          labels:
            app: ratings
        ingress:
        - port:
            number: 9080
            protocol: HTTP
            name: somename
          defaultEndpoint: unix:///var/run/someuds.sock
          captureMode: NONE
        egress:
        - port:
            number: 9080
            protocol: HTTP
            name: egresshttp
          hosts: ["prod-us1/*"]
        - hosts: ["istio-system/*", "~prod-us2/*"]
        outboundTrafficPolicy:
          mode: REGISTRY_ONLY
        inboundConnectionPool:
          http:
            http1MaxPendingRequests: 1024
            http2MaxRequests: 1024
            maxRequestsPerConnection: 1024
            maxRetries: 100
        """),
    "sidecar-egress-proxy": ("Sidecar", """
        egress:
        - hosts: ["./*"]
        outboundTrafficPolicy:
          mode: ALLOW_ANY
          egressProxy:
            host: foo.bar
            subset: shiny
            port:
              number: 5000
        """),
    "workloadentry": ("WorkloadEntry", """
        serviceAccount: details-legacy
        address: 2.2.2.2
        labels:
          app: details-legacy
          instance-id: vm1
        ports:
          http: 8080
        network: vm-network
        locality: us-east1/us-east1-b
        weight: 10
        """),
    "envoyfilter-lua": ("EnvoyFilter", """
        workloadSelector:
          labels:
            app: reviews
        priority: 10
        configPatches:
        - applyTo: HTTP_FILTER
          match:
            context: SIDECAR_INBOUND
            listener:
              portNumber: 8080
              filterChain:
                filter:
                  name: envoy.filters.network.http_connection_manager
                  subFilter:
                    name: envoy.filters.http.router
          patch:
            operation: INSERT_BEFORE
            value:
              name: envoy.lua
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
                defaultSourceCode:
                  inlineString: |
                    function envoy_on_request(request_handle) end
        - applyTo: CLUSTER
          match:
            context: SIDECAR_OUTBOUND
            cluster:
              service: reviews.default.svc.cluster.local
          patch:
            operation: MERGE
            value:
              connect_timeout: 0.5s
        """),
    "peerauthentication-port-level": ("PeerAuthentication", """
        selector:
          matchLabels:
            app: finance
        mtls:
          mode: STRICT
        portLevelMtls:
          "8080":
            mode: DISABLE
        """),
    "authorizationpolicy-allow": ("AuthorizationPolicy", """
        selector:
          matchLabels:
            app: httpbin
            version: v1
        action: ALLOW
        rules:
        - from:
          - source:
              principals: ["cluster.local/ns/default/sa/sleep"]
          - source:
              namespaces: ["dev"]
          to:
          - operation:
              methods: ["GET"]
              paths: ["/info*"]
              ports: ["8080"]
          when:
          - key: request.auth.claims[iss]
            values: ["https://accounts.google.com"]
        """),
    "authorizationpolicy-custom": ("AuthorizationPolicy", """
        targetRefs:
        - kind: Gateway
          group: gateway.networking.k8s.io
          name: waypoint
        action: CUSTOM
        provider:
          name: my-ext-authz
        rules:
        - to:
          - operation:
              notPaths: ["/healthz"]
        """),
    "requestauthentication-jwt": ("RequestAuthentication", """
        selector:
          matchLabels:
            app: httpbin
        jwtRules:
        - issuer: issuer-foo
          jwksUri: https://example.com/.well-known/jwks.json
          audiences: [bookstore_android.apps.example.com]
          fromHeaders:
          - name: x-jwt-assertion
            prefix: "Bearer "
          outputClaimToHeaders:
          - header: x-jwt-claim-foo
            claim: foo
          forwardOriginalToken: true
          timeout: 5s
        """),
    "telemetry-all-signals": ("Telemetry", """
        selector:
          matchLabels:
            service.istio.io/canonical-name: frontend
        tracing:
        - providers:
          - name: zipkin
          randomSamplingPercentage: 10.5
          customTags:
            my_new_foo_tag:
              literal:
                value: foo
            cluster_id:
              environment:
                name: ISTIO_META_CLUSTER_ID
                defaultValue: unknown
        metrics:
        - providers:
          - name: prometheus
          overrides:
          - match:
              metric: REQUEST_COUNT
              mode: CLIENT_AND_SERVER
            tagOverrides:
              request_method:
                value: request.method
              request_host:
                operation: REMOVE
          reportingInterval: 15s
        accessLogging:
        - providers:
          - name: envoy
          filter:
            expression: response.code >= 400
        """),
}


@pytest.mark.parametrize("case", sorted(VALID))
def test_valid_object_passes(case):
    kind, text = VALID[case]
    errors = [f"{dotted(e.absolute_path)}: {e.message}" for e in validator(kind).iter_errors(
        spec_of(text))]
    assert errors == []


# -------------------------------------------------------------------- invalid objects

BASE_DR = """
    host: reviews.prod.svc.cluster.local
    trafficPolicy:
      connectionPool:
        tcp:
          maxConnections: 100
          connectTimeout: 30ms
      outlierDetection:
        consecutive5xxErrors: 7
        interval: 5m
      loadBalancer:
        simple: ROUND_ROBIN
    """


def dr_with(**changes) -> dict:
    """The base DestinationRule with fields replaced; `a__b` addresses spec.a.b, None deletes."""
    spec = spec_of(BASE_DR)
    for dotted_path, value in changes.items():
        *parents, leaf = dotted_path.split("__")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return spec


INVALID = {
    "dr-unknown-field": (
        "DestinationRule",
        dr_with(trafficPolicy__connectionPool__tcp__maxConnectionz=100),
        "trafficPolicy.connectionPool.tcp.maxConnectionz",
    ),
    "dr-bad-lb-enum": (
        "DestinationRule",
        dr_with(trafficPolicy__loadBalancer__simple="ROUND_ROBBIN"),
        "trafficPolicy.loadBalancer.simple",
    ),
    "dr-enum-as-integer": (
        "DestinationRule",
        dr_with(trafficPolicy__loadBalancer__simple=3),
        "trafficPolicy.loadBalancer.simple",
    ),
    "dr-duration-in-words": (
        "DestinationRule",
        dr_with(trafficPolicy__connectionPool__tcp__connectTimeout="10 seconds"),
        "trafficPolicy.connectionPool.tcp.connectTimeout",
    ),
    "dr-duration-without-unit": (
        "DestinationRule",
        dr_with(trafficPolicy__outlierDetection__interval="30"),
        "trafficPolicy.outlierDetection.interval",
    ),
    "dr-max-ejection-percent-150": (
        "DestinationRule",
        dr_with(trafficPolicy__outlierDetection__maxEjectionPercent=150),
        "trafficPolicy.outlierDetection.maxEjectionPercent",
    ),
    "dr-min-health-percent-negative": (
        "DestinationRule",
        dr_with(trafficPolicy__outlierDetection__minHealthPercent=-1),
        "trafficPolicy.outlierDetection.minHealthPercent",
    ),
    "dr-deprecated-consecutive-errors-not-a-number": (
        "DestinationRule",
        dr_with(trafficPolicy__outlierDetection__consecutiveErrors="five"),
        "trafficPolicy.outlierDetection.consecutiveErrors",
    ),
    "dr-simple-and-consistent-hash": (
        "DestinationRule",
        dr_with(trafficPolicy__loadBalancer__consistentHash={"httpHeaderName": "x-user"}),
        "trafficPolicy.loadBalancer.consistentHash",
    ),
    "dr-two-hash-keys": (
        "DestinationRule",
        dr_with(trafficPolicy__loadBalancer__simple=None,
                trafficPolicy__loadBalancer__consistentHash={"httpHeaderName": "x-user",
                                                             "useSourceIp": True}),
        "trafficPolicy.loadBalancer.consistentHash.useSourceIp",
    ),
    "dr-missing-host": ("DestinationRule", dr_with(host=None), "host"),
    "dr-string-for-int": (
        "DestinationRule",
        dr_with(trafficPolicy__connectionPool__tcp__maxConnections="100"),
        "trafficPolicy.connectionPool.tcp.maxConnections",
    ),
    "dr-int32-overflow": (
        "DestinationRule",
        dr_with(trafficPolicy__connectionPool__tcp__maxConnections=2**31),
        "trafficPolicy.connectionPool.tcp.maxConnections",
    ),
    "dr-bad-tls-mode": (
        "DestinationRule",
        dr_with(trafficPolicy__tls={"mode": "STRICT"}),
        "trafficPolicy.tls.mode",
    ),
    "dr-bad-h2-upgrade-policy": (
        "DestinationRule",
        dr_with(trafficPolicy__connectionPool__http={"h2UpgradePolicy": "ALWAYS"}),
        "trafficPolicy.connectionPool.http.h2UpgradePolicy",
    ),
    "dr-subset-without-name": (
        "DestinationRule",
        dr_with(subsets=[{"labels": {"version": "v1"}}]),
        "subsets[0].name",
    ),
    "dr-tunnel-not-port-level": (
        "DestinationRule",
        dr_with(trafficPolicy__portLevelSettings=[
            {"port": {"number": 80}, "tunnel": {"targetHost": "a", "targetPort": 80}}]),
        "trafficPolicy.portLevelSettings[0].tunnel",
    ),
    "dr-port-number-negative": (
        "DestinationRule",
        dr_with(trafficPolicy__portLevelSettings=[{"port": {"number": -80}}]),
        "trafficPolicy.portLevelSettings[0].port.number",
    ),
    "vs-timeout-in-words": (
        "VirtualService",
        spec_of("""
            hosts: [reviews]
            http:
            - route:
              - destination: {host: reviews}
              timeout: 10 seconds
            """),
        "http[0].timeout",
    ),
    "vs-weight-as-string": (
        "VirtualService",
        spec_of("""
            hosts: [reviews]
            http:
            - route:
              - destination: {host: reviews, subset: v1}
                weight: "50"
            """),
        "http[0].route[0].weight",
    ),
    "vs-exact-and-prefix": (
        "VirtualService",
        spec_of("""
            hosts: [reviews]
            http:
            - match:
              - uri: {exact: /a, prefix: /b}
              route:
              - destination: {host: reviews}
            """),
        "http[0].match[0].uri.prefix",
    ),
    "vs-destination-without-host": (
        "VirtualService",
        spec_of("""
            hosts: [reviews]
            http:
            - route:
              - destination: {subset: v1}
            """),
        "http[0].route[0].destination.host",
    ),
    "gw-port-without-protocol": (
        "Gateway",
        spec_of("""
            selector: {istio: ingressgateway}
            servers:
            - port: {number: 80, name: http}
              hosts: ["*"]
            """),
        "servers[0].port.protocol",
    ),
    "gw-bad-tls-mode": (
        "Gateway",
        spec_of("""
            servers:
            - port: {number: 443, name: https, protocol: HTTPS}
              hosts: ["*"]
              tls: {mode: AUTO, credentialName: cert}
            """),
        "servers[0].tls.mode",
    ),
    "se-bare-wildcard-host": (
        "ServiceEntry",
        spec_of("""
            hosts: ["*"]
            ports: [{number: 443, name: https, protocol: TLS}]
            """),
        "hosts[0]",
    ),
    "se-endpoints-with-resolution-none": (
        "ServiceEntry",
        spec_of("""
            hosts: [db.example.com]
            resolution: NONE
            endpoints: [{address: 10.0.0.1}]
            """),
        "endpoints",
    ),
    "se-port-out-of-range": (
        "ServiceEntry",
        spec_of("""
            hosts: [db.example.com]
            ports: [{number: 70000, name: tcp}]
            """),
        "ports[0].number",
    ),
    "sidecar-egress-without-hosts": (
        "Sidecar",
        spec_of("""
            egress:
            - port: {number: 9080, protocol: HTTP, name: http}
            """),
        "egress[0].hosts",
    ),
    "sidecar-bad-outbound-mode": (
        "Sidecar",
        spec_of("""
            egress:
            - hosts: ["./*"]
            outboundTrafficPolicy: {mode: DENY_ALL}
            """),
        "outboundTrafficPolicy.mode",
    ),
    "sidecar-selector-uses-labels": (
        "Sidecar",
        spec_of("""
            workloadSelector:
              matchLabels: {app: ratings}
            egress:
            - hosts: ["./*"]
            """),
        "workloadSelector.matchLabels",
    ),
    "we-without-address": ("WorkloadEntry", spec_of("labels: {app: vm}"), "address"),
    "envoyfilter-bad-operation": (
        "EnvoyFilter",
        spec_of("""
            configPatches:
            - applyTo: HTTP_FILTER
              patch: {operation: PATCH, value: {name: x}}
            """),
        "configPatches[0].patch.operation",
    ),
    "pa-bad-mode": ("PeerAuthentication", spec_of("mtls: {mode: ENABLED}"), "mtls.mode"),
    "pa-port-level-without-selector": (
        "PeerAuthentication",
        spec_of("""
            portLevelMtls:
              "8080": {mode: DISABLE}
            """),
        "selector",
    ),
    "ap-bad-action": (
        "AuthorizationPolicy",
        spec_of("action: REJECT\nrules: [{}]"),
        "action",
    ),
    "ap-selector-and-target-ref": (
        "AuthorizationPolicy",
        spec_of("""
            selector: {matchLabels: {app: web}}
            targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gw}
            """),
        "targetRef",
    ),
    "ra-jwks-uri-not-http": (
        "RequestAuthentication",
        spec_of("jwtRules: [{issuer: foo, jwksUri: 'ftp://example.com/jwks'}]"),
        "jwtRules[0].jwksUri",
    ),
    "telemetry-sampling-over-100": (
        "Telemetry",
        spec_of("tracing: [{randomSamplingPercentage: 101}]"),
        "tracing[0].randomSamplingPercentage",
    ),
    "telemetry-bad-metric": (
        "Telemetry",
        spec_of("metrics: [{overrides: [{match: {metric: REQUEST_COUNTS}}]}]"),
        "metrics[0].overrides[0].match.metric",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_object_is_rejected(case):
    kind, spec, field = INVALID[case]
    fields = rejected_fields(kind, spec)
    assert fields, f"{case}: accepted"
    assert field in fields


def test_error_for_unknown_field_is_reported_at_its_parent():
    """jsonschema reports an unknown field at the enclosing object, naming it in the message."""
    spec = dr_with(trafficPolicy__connectionPool__tcp__maxConnectionz=100)
    (err,) = validator("DestinationRule").iter_errors(spec)
    assert err.validator == "additionalProperties"
    assert dotted(err.absolute_path) == "trafficPolicy.connectionPool.tcp"
    assert "maxConnectionz" in err.message


def test_mutually_exclusive_fields_name_both_sides():
    spec = dr_with(trafficPolicy__loadBalancer__consistentHash={"useSourceIp": True})
    errors = list(validator("DestinationRule").iter_errors(spec))
    assert sorted(dotted(e.absolute_path) for e in errors) == [
        "trafficPolicy.loadBalancer.consistentHash",
        "trafficPolicy.loadBalancer.simple",
    ]
    assert all("cannot be set together with" in e.message for e in errors)


def test_same_schema_applies_to_subsets_and_port_level_settings():
    spec = spec_of("""
        host: reviews
        subsets:
        - name: v1
          trafficPolicy:
            portLevelSettings:
            - port: {number: 80}
              connectionPool:
                tcp: {maxConnectionz: 1}
        """)
    assert rejected_fields("DestinationRule", spec) == [
        "subsets[0].trafficPolicy.portLevelSettings[0].connectionPool.tcp.maxConnectionz"]
