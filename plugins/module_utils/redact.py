# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Keep credentials out of what meshtune prints and stores.

A URL can carry credentials in two places: `user:password@` before the host and query values
(`?token=...`). Everything that shows a URL (messages, results, report and result files) shows it
through redact_url, which masks both. Options that carry secrets are marked `no_log` in the
argument specs; for secrets inside other options (a password in a URL, an `Authorization` header
among other headers) hide_secrets adds them to the module's `no_log_values`, so Ansible masks them
in everything the module returns, the recorded invocation at `-vvv` included.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from urllib.parse import unquote, urlsplit, urlunsplit

from ansible.module_utils.basic import AnsibleModule

# What Ansible shows instead of a no_log value inside a string.
MASK = "********"
# Header and query parameter names whose values are credentials.
SECRET_NAME_RE = re.compile(
    r"auth|token|secret|passw|pwd|key|cookie|session|credential|signature|sig$|jwt|bearer",
    re.IGNORECASE)
# A URL inside free text: a scheme, :// and everything up to white space or a quote.
_URL_IN_TEXT_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
# Authorization schemes whose credential follows the scheme name ("Bearer <token>").
_AUTH_SCHEME_RE = re.compile(r"^\s*[A-Za-z][A-Za-z0-9._~+/-]*\s+(\S.*)$")


def _masked_pairs(text, separator="&"):
    """Query or fragment text with every value masked (names kept, so the shape stays readable)."""
    parts = []
    for part in text.split(separator):
        name, equals, value = part.partition("=")
        if equals:
            parts.append(f"{name}={MASK}" if value else part)
        else:
            parts.append(MASK if name else part)
    return separator.join(parts)


def _split(url):
    try:
        return urlsplit(url)
    except ValueError:  # an invalid IPv6 host and the like: mask by hand below
        return None


def redact_url(url):
    """The URL with its password (or a lone user name, often a token) and query values masked.

    `http://alice:pw@host/p?token=abc&page=2` becomes
    `http://alice:********@host/p?token=********&page=********`. Anything else is returned as is.
    """
    if not isinstance(url, str) or "://" not in url:
        return url
    parts = _split(url)
    if parts is None:
        return re.sub(r"(://)[^/?#]*@", r"\1" + MASK + "@", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if colon and user else f"{MASK}@{host}"
    query = _masked_pairs(parts.query) if parts.query else parts.query
    fragment = _masked_pairs(parts.fragment) if parts.fragment else parts.fragment
    if (netloc, query, fragment) == (parts.netloc, parts.query, parts.fragment):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def redact_text(text):
    """Free text (an error from a library, a log line) with every URL in it redacted."""
    if not isinstance(text, str) or "://" not in text:
        return text
    return _URL_IN_TEXT_RE.sub(lambda match: redact_url(match.group(0)), text)


def url_secrets(url):
    """The credentials a URL carries that must never be shown: its password (or lone user
    name) and the values of query parameters named like credentials (token, key, ...)."""
    if not isinstance(url, str) or "://" not in url:
        return []
    parts = _split(url)
    if parts is None:
        return []
    secrets = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        user, colon, password = userinfo.partition(":")
        secrets.append(password if colon and user else userinfo)
    for pair in parts.query.split("&") if parts.query else []:
        name, equals, value = pair.partition("=")
        if equals and value and SECRET_NAME_RE.search(unquote(name)):
            secrets.append(value)
    return _with_decoded(secrets)


def is_secret_header(name):
    return isinstance(name, str) and bool(SECRET_NAME_RE.search(name))


def header_secrets(headers):
    """Values of the headers named like credentials (Authorization, Cookie, X-Api-Key, ...), and
    the credential alone after an authorization scheme ("Bearer <token>" gives the token too)."""
    secrets = []
    if not isinstance(headers, dict):
        return secrets
    for name, value in headers.items():
        if not is_secret_header(name) or value is None or isinstance(value, (dict, list)):
            continue
        text = str(value)
        secrets.append(text)
        scheme = _AUTH_SCHEME_RE.match(text)
        if scheme:
            secrets.append(scheme.group(1).strip())
    return _with_decoded(secrets)


def redact_headers(headers):
    """A copy of the headers for display: values of credential-like headers masked."""
    return {name: MASK if is_secret_header(name) else value for name, value in (headers or {}).items()}


def _with_decoded(secrets):
    """The secrets, with their percent-decoded forms, without empty strings or repeats."""
    found = []
    for secret in secrets:
        for form in (secret, unquote(secret)):
            if form and form not in found:
                found.append(form)
    return found


def hide_secrets(module, urls=(), headers=None):
    """Have Ansible mask the credentials inside these URLs and headers in all module output.

    Ansible replaces every no_log value wherever it appears in the returned data and in the
    recorded invocation (shown at -vvv), so a password given in a URL or a token in an
    Authorization header does not show even where a message quotes it verbatim.
    """
    # kubernetes.core's AnsibleK8SModule wraps the AnsibleModule that keeps the values.
    values = getattr(module, "_module", module).no_log_values
    for url in urls:
        values.update(url_secrets(url))
    values.update(header_secrets(headers))


def redact_fields(data, *paths):
    """Mask the URLs at these dotted paths of nested mappings in place ("url", "result.URL");
    paths that are absent or not strings are left alone. Returns `data`."""
    for path in paths:
        *parents, key = path.split(".")
        node = data
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(key), str):
            node[key] = redact_url(node[key])
    return data


class SecretHidingModule(AnsibleModule):
    """An AnsibleModule that hides the credentials inside its URL and header options from its
    first output on.

    hide_secrets after the module is built is too late when Ansible's own option checks fail the
    task (a type error, two exclusive options): that failure records the invocation, with the
    URLs and headers as given, before the module's code runs. Here they are read as the
    parameters are loaded, before any check.
    """

    def __init__(self, *args, url_options=(), header_options=(), **kwargs):
        self._secret_options = (tuple(url_options), tuple(header_options))
        super().__init__(*args, **kwargs)

    def _load_params(self):
        super()._load_params()
        params = self.params if isinstance(self.params, dict) else {}
        url_options, header_options = self._secret_options
        hide_secrets(self, urls=[params.get(option) for option in url_options])
        for option in header_options:
            hide_secrets(self, headers=params.get(option))
