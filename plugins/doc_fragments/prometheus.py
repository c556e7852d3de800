# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """How meshtune modules reach a Prometheus server (module_utils.prometheus.connection_argument_spec).

    Each module documents its own URL option.
    """

    DOCUMENTATION = r"""
options:
  timeout:
    description:
      - Seconds to wait for each answer, at most 86400 (a day). Also sent to Prometheus as the
        query evaluation timeout.
    type: float
    default: 30
  bearer_token:
    description:
      - Token sent as C(Authorization) C(Bearer) header, for example a service account token.
      - Cannot be combined with O(username).
    type: str
  username:
    description: User name for HTTP basic authentication.
    type: str
  password:
    description: Password for HTTP basic authentication.
    type: str
  ca_cert:
    description: Path of a CA certificate bundle to verify the server with (HTTPS).
    type: path
  client_cert:
    description: Path of a client certificate (PEM) for mutual TLS.
    type: path
  client_key:
    description: Path of the key of O(client_cert), when the certificate file does not hold it.
    type: path
  validate_certs:
    description: Verify the server's TLS certificate. Turn off only for test servers.
    type: bool
    default: true
  headers:
    description:
      - Extra HTTP headers, for example a tenant header of a multi-tenant Prometheus.
      - Values of headers whose names suggest credentials (C(Authorization), C(Cookie), names
        containing C(token), C(key), C(secret), C(auth), C(password), C(session)) are hidden from
        the output like O(password). Other header values show in the recorded arguments at
        C(-vvv); pass a credential under such a name, as O(bearer_token), or set C(no_log) on the
        task.
    type: dict
"""

    # The same options named prometheus_*, for modules that also take kubernetes.core's auth
    # options (whose ca_cert, client_cert, client_key, validate_certs, username and password reach
    # the Kubernetes API server): module_utils.prometheus.connection_argument_spec(prefix="prometheus_").
    PREFIXED = r"""
options:
  prometheus_timeout:
    description:
      - Seconds to wait for each answer of Prometheus, at most 86400 (a day). Also sent to
        Prometheus as the query evaluation timeout.
    type: float
    default: 30
  prometheus_bearer_token:
    description:
      - Token sent as C(Authorization) C(Bearer) header, for example a service account token.
      - Cannot be combined with O(prometheus_username).
    type: str
  prometheus_username:
    description: User name for HTTP basic authentication.
    type: str
  prometheus_password:
    description: Password for HTTP basic authentication.
    type: str
  prometheus_ca_cert:
    description: Path of a CA certificate bundle to verify the server with (HTTPS).
    type: path
  prometheus_client_cert:
    description: Path of a client certificate (PEM) for mutual TLS.
    type: path
  prometheus_client_key:
    description:
      - Path of the key of O(prometheus_client_cert), when the certificate file does not hold it.
    type: path
  prometheus_validate_certs:
    description: Verify the server's TLS certificate. Turn off only for test servers.
    type: bool
    default: true
  prometheus_headers:
    description:
      - Extra HTTP headers, for example a tenant header of a multi-tenant Prometheus.
      - Values of headers whose names suggest credentials (C(Authorization), C(Cookie), names
        containing C(token), C(key), C(secret), C(auth), C(password), C(session)) are hidden from
        the output like O(prometheus_password). Other header values show in the recorded
        arguments at C(-vvv); pass a credential under such a name, as O(prometheus_bearer_token),
        or set C(no_log) on the task.
    type: dict
"""
