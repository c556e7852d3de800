"""The shared option checks (plugins/module_utils/validate.py): exact forms and API ranges."""

from __future__ import annotations

import ast
import re
from decimal import Decimal
from pathlib import Path

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils import validate
from ansible_collections.meshtune.mesh.plugins.module_utils.validate import (
    DNS1123_LABEL_RE,
    DNS1123_SUBDOMAIN_RE,
    DURATION_RE,
    INT32_MAX,
    INT32_MIN,
    QUANTITY_RE,
    InvalidOption,
    canonical_quantity,
    check_duration,
    check_http_token,
    check_label_key,
    check_label_selector_object,
    check_label_value,
    check_name,
    check_range,
    check_visible_text,
    duration_nanoseconds,
    parse_quantity,
)

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"

# ------------------------------------------------------------------ class 1: exact form, no trimming

WRAPPINGS = [" {}", "{} ", "\n{}", "{}\n", "{}\r\n", "\r\n{}", "\t{}", "{}\u00a0", "\u2003{}"]
# (check, a valid value): each check must refuse the value with anything around it.
EXACT_FORM_CHECKS = [
    (parse_quantity, "128Mi"),
    (parse_quantity, "100m"),
    (check_duration, "10s"),
    (lambda path, value: check_name(path, value, label=True), "shop"),
    (check_name, "reviews.shop"),
    (check_label_key, "example.com/tier"),
    (check_label_value, "v1"),
    (lambda path, value: check_http_token(path, value, "a header name"), "x-user"),
    (lambda path, value: check_visible_text(path, value, "a name"), "requests-per-second"),
]


@pytest.mark.parametrize("wrapping", WRAPPINGS)
@pytest.mark.parametrize(("check", "valid"), EXACT_FORM_CHECKS)
def test_a_valid_value_with_anything_around_it_is_refused_not_trimmed(check, valid, wrapping):
    assert check("opt", valid) is not None
    with pytest.raises(InvalidOption) as caught:
        check("opt", wrapping.format(valid))
    assert caught.value.path == "opt"
    assert "no spaces or line breaks" in str(caught.value)


def test_quantities_are_written_in_canonical_form_of_exactly_what_was_checked():
    assert canonical_quantity("0.5") == "500m"
    assert canonical_quantity(2) == "2"
    with pytest.raises(InvalidOption):
        canonical_quantity(" 0.5")


@pytest.mark.parametrize("value", ["\u0661\u0660\u0660m", "\uff11\uff10\uff10m", "1\u0661", "10\u0660s"])
def test_digits_of_other_scripts_are_not_digits(value):
    pattern = DURATION_RE if value.endswith("s") else QUANTITY_RE
    assert pattern.match(value) is None


# ------------------------------------------------------------------ class 2: what the API server holds


@pytest.mark.parametrize(("value", "ok"), [
    (INT32_MAX, True), (INT32_MIN, True), (0, True),
    (INT32_MAX + 1, False), (INT32_MIN - 1, False), (2 ** 40, False), (2 ** 63, False),
    (True, False), (1.0, False), ("1", False),
])
def test_integers_are_int32_unless_a_range_says_otherwise(value, ok):
    if ok:
        assert check_range("n", value) == value
    else:
        with pytest.raises(InvalidOption, match="2147483647"):
            check_range("n", value)


def test_a_minimum_alone_still_caps_at_int32():
    assert check_range("n", INT32_MAX, 1) == INT32_MAX
    with pytest.raises(InvalidOption, match=r"n: expected an integer 1 to 2147483647, got 2147483648"):
        check_range("n", INT32_MAX + 1, 1)
    assert check_range("n", 2 ** 32 - 1, 0, 2 ** 32 - 1) == 2 ** 32 - 1


@pytest.mark.parametrize(("value", "ok"), [
    ("2562047h47m16.854775807s", True),
    ("9223372036854775807ns", True),
    ("9223372036854775808ns", False),
    ("2562047h47m16.854775808s", False),
    ("2562048h", False),
    ("99999999999h", False),
    ("315576000000s", False),
    ("1h30m", True),
    ("0s", True),
])
def test_durations_end_at_what_go_and_protobuf_durations_hold(value, ok):
    if ok:
        assert check_duration("d", value) == value
    else:
        with pytest.raises(InvalidOption, match=re.escape("at most 2562047h47m16.854775807s")):
            check_duration("d", value)


def test_duration_nanoseconds_are_exact():
    assert duration_nanoseconds("d", "1h30m") == 5400 * 10 ** 9
    assert duration_nanoseconds("d", "2562047h47m16.854775807s") == 2 ** 63 - 1


@pytest.mark.parametrize("value", ["9223372036854775807", "7Ei", "1E", "-9223372036854775807"])
def test_quantities_up_to_the_servers_cap_pass(value):
    assert abs(parse_quantity("q", value)) <= Decimal(2 ** 63 - 1)


@pytest.mark.parametrize("value", ["9223372036854775808", "8Ei", "10E", "1e19", "1e999999999", 1e30])
def test_quantities_beyond_the_servers_silent_cap_are_refused(value):
    with pytest.raises(InvalidOption, match="at most 9223372036854775807"):
        parse_quantity("q", value)


@pytest.mark.parametrize("name", ["web\n", "web\r\n", "\nweb", "web\n\n", "we\nb"])
def test_names_ending_in_a_newline_are_not_names(name):
    for label in (True, False):
        with pytest.raises(InvalidOption):
            check_name("name", name, label=label)
    assert DNS1123_LABEL_RE.match(name) is None
    assert DNS1123_SUBDOMAIN_RE.match(name) is None


@pytest.mark.parametrize(("key", "ok"), [
    ("app", True), ("app.kubernetes.io/name", True), ("Example_Key.v1", True),
    ("a" * 63, True), ("a" * 64, False),
    ("x" * 63 + "." + "y" * 63 + "." + "z" * 63 + "." + "w" * 61 + "/app", True),  # prefix of 253
    ("x" * 63 + "." + "y" * 63 + "." + "z" * 63 + "." + "w" * 62 + "/app", False),  # prefix of 254
    ("a b", False), ("app\n", False), ("", False), ("/app", False), ("example.com/", False),
    ("Example.com/app", False), ("a/b/c", False), ("-app", False), ("app-", False), (5, False),
])
def test_label_keys_are_qualified_names(key, ok):
    if ok:
        assert check_label_key("key", key) == key
    else:
        with pytest.raises(InvalidOption, match="label key"):
            check_label_key("key", key)


@pytest.mark.parametrize(("value", "ok"), [
    ("", True), ("v1", True), ("a" * 63, True), ("a" * 64, False), ("v 1", False), ("v1\n", False),
    ("-v1", False), (1, False), (None, False),
])
def test_label_values(value, ok):
    if ok:
        assert check_label_value("value", value) == value
    else:
        with pytest.raises(InvalidOption, match="label value"):
            check_label_value("value", value)


@pytest.mark.parametrize(("selector", "path"), [
    ({"matchLabels": {"a b": "x"}}, "s.matchLabels.a b"),
    ({"matchLabels": {"app": "x y"}}, "s.matchLabels.app"),
    ({"matchLabels": ["app=x"]}, "s.matchLabels"),
    ({"matchLabel": {"app": "x"}}, "s.matchLabel"),
    ({"matchExpressions": [{"key": "app", "operator": "In"}]}, "s.matchExpressions[0].values"),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": []}]},
     "s.matchExpressions[0].values"),
    ({"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["a"]}]},
     "s.matchExpressions[0].values"),
    ({"matchExpressions": [{"key": "app", "operator": "in", "values": ["a"]}]},
     "s.matchExpressions[0].operator"),
    ({"matchExpressions": [{"key": "app\n", "operator": "Exists"}]}, "s.matchExpressions[0].key"),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["a", "b c"]}]},
     "s.matchExpressions[0].values[1]"),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": "a"}]},
     "s.matchExpressions[0].values"),
    ({"matchExpressions": [{"key": "app", "operator": "Exists", "value": "a"}]},
     "s.matchExpressions[0].value"),
    ({"matchExpressions": {"key": "app"}}, "s.matchExpressions"),
    ("app=web", "s"),
])
def test_malformed_selector_objects_name_the_field(selector, path):
    with pytest.raises(InvalidOption) as caught:
        check_label_selector_object("s", selector)
    assert caught.value.path == path


def test_well_formed_selector_objects_pass():
    selector = {"matchLabels": {"queue": "jobs", "example.com/tier": ""},
                "matchExpressions": [{"key": "app", "operator": "In", "values": ["a", "b"]},
                                     {"key": "legacy", "operator": "DoesNotExist"}]}
    assert check_label_selector_object("s", selector) is selector
    assert check_label_selector_object("s", {}) == {}


# ------------------------------------------------------------------ every pattern anchored at the end


def _regex_literals(path: Path):
    """(line, pattern) of each string literal passed to re.compile/match/fullmatch/search."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                isinstance(node.func.value, ast.Name) and node.func.value.id == "re" and \
                node.func.attr in ("compile", "match", "fullmatch", "search") and node.args:
            pattern = node.args[0]
            parts = pattern.values if isinstance(pattern, ast.JoinedStr) else [pattern]
            text = "".join(p.value if isinstance(p, ast.Constant) and isinstance(p.value, str)
                           else "{}" for p in parts)
            yield node.lineno, text


# Modules whose patterns their own checks cover (loadgen, Prometheus, Helm, reports, redaction);
# their `$` anchors are listed for their owners, not fixed from here.
# Patterns that format or find text rather than validate a whole value.
CHECKED_ELSEWHERE = ("module_utils/report.py", "module_utils/redact.py")
_CHARACTER_CLASS = re.compile(r"\[(?:\\.|[^\]\\])*\]")


def test_no_pattern_is_anchored_with_dollar():
    """`$` also matches before a trailing newline, so a `$`-anchored pattern passes "web\\n"."""
    found = []
    for path in sorted(PLUGINS.rglob("*.py")):
        relative = path.relative_to(PLUGINS).as_posix()
        if relative.startswith(CHECKED_ELSEWHERE):
            continue
        for line, pattern in _regex_literals(path):
            if re.search(r"(?<!\\)\$", _CHARACTER_CLASS.sub("", pattern)):
                found.append(f"plugins/{relative}:{line}: {pattern}")
    assert not found, "anchor with \\Z instead of $:\n" + "\n".join(found)


def test_the_shared_patterns_refuse_a_trailing_newline():
    for name in dir(validate):
        pattern = getattr(validate, name)
        if isinstance(pattern, re.Pattern) and pattern.pattern.startswith("\\A"):
            assert pattern.pattern.endswith("\\Z"), name
