"""Credentials masked in URLs, text and headers, and handed to Ansible's no_log masking."""

from __future__ import annotations

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils.redact import (
    MASK,
    header_secrets,
    hide_secrets,
    redact_headers,
    redact_text,
    redact_url,
    url_secrets,
)


@pytest.mark.parametrize(("url", "shown"), [
    ("http://prometheus:9090", "http://prometheus:9090"),
    ("http://alice:pw@host:80/p", f"http://alice:{MASK}@host:80/p"),
    ("https://ghp_token123@host/repo", f"https://{MASK}@host/repo"),
    ("http://:pw@host/", f"http://{MASK}@host/"),
    ("http://host/p?token=abc&page=2", f"http://host/p?token={MASK}&page={MASK}"),
    ("http://host/p?flag&empty=", f"http://host/p?{MASK}&empty="),
    ("http://host/cb#access_token=xyz", f"http://host/cb#access_token={MASK}"),
    ("http://a:b@[::1/x", f"http://{MASK}@[::1/x"),  # not parseable: masked by hand
    ("not a url", "not a url"),
    (None, None),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_redact_text_masks_every_url_in_it():
    text = "GET http://u:pw@a/x?k=v failed; retry at https://b/ok ('http://t@c')"
    assert redact_text(text) == (f"GET http://u:{MASK}@a/x?k={MASK} failed; retry at https://b/ok "
                                 f"('http://{MASK}@c')")


def test_url_secrets_are_the_password_and_credential_like_query_values():
    assert url_secrets("http://alice:p%40ss@host/?access_token=t1&page=2&api_key=k2") == [
        "p%40ss", "p@ss", "t1", "k2"]
    assert url_secrets("https://tok@host") == ["tok"]
    assert url_secrets("http://host/?page=1") == []


def test_header_secrets_include_the_credential_after_the_scheme():
    headers = {"Authorization": "Bearer abc.def", "X-Api-Key": "k-1", "X-Scope-OrgID": "1",
               "Cookie": "session=zz", "Accept": "application/json"}
    assert header_secrets(headers) == ["Bearer abc.def", "abc.def", "k-1", "session=zz"]
    assert redact_headers(headers) == {"Authorization": MASK, "X-Api-Key": MASK, "X-Scope-OrgID": "1",
                                       "Cookie": MASK, "Accept": "application/json"}


def test_hide_secrets_adds_them_to_the_module_no_log_values():
    class Module:
        def __init__(self):
            self.no_log_values = set()

    module = Module()
    hide_secrets(module, urls=["http://a:pw@h", None], headers={"Authorization": "Basic eHl6"})
    assert module.no_log_values == {"pw", "Basic eHl6", "eHl6"}


def test_headers_of_the_wrong_shape_hold_no_secrets_to_hide():
    assert header_secrets("Authorization: x") == []
    assert header_secrets(None) == []
    assert header_secrets({"Authorization": ["a"], "X-Token": None}) == []
