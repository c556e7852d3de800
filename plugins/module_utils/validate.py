# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Input checks that Ansible's argument spec cannot express, each naming the option path.

Every check raises InvalidOption; modules collect them all before touching a cluster and fail
with one message, so nothing is half-applied.

One rule for every quantity, duration, name, label and host: the value must be exactly in its
form. Nothing is trimmed or otherwise repaired, so what passes a check is, byte for byte, what is
written (quantities the API server would rewrite are written in its canonical form instead).
Patterns are anchored with \\A and \\Z (`$` would also match before a trailing newline) and use
ASCII classes ([0-9], not \\d, which takes other scripts' digits too).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, localcontext

QUANTITY_RE = re.compile(
    r"\A([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?\Z")
# Go / protobuf durations as Istio accepts them: 10s, 1.5s, 100ms, 1h30m.
DURATION_RE = re.compile(r"\A(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|μs|ms|s|m|h))+\Z")
_DURATION_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|μs|ms|s|m|h)")
DNS1123_LABEL_RE = re.compile(r"\A[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
DNS1123_SUBDOMAIN_RE = re.compile(r"\A[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
# The name part of a qualified name (label keys, resource names) and a label value.
QUALIFIED_NAME_PART_RE = re.compile(r"\A[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z")
LABEL_VALUE_RE = re.compile(r"\A([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?\Z")
# An HTTP token (RFC 9110): header and cookie names.
HTTP_TOKEN_RE = re.compile(r"\A[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
# Anything that is not a visible ASCII character: spaces, line breaks, control characters, and
# every non-ASCII character (Unicode spaces among them).
_NOT_VISIBLE_ASCII_RE = re.compile(r"[^\x21-\x7e]")

# Integers in the Kubernetes and Istio APIs are int32 unless a field says otherwise (uint32 for a
# few Istio counters): a bigger number is rejected, or silently wrapped by a protobuf decoder.
INT32_MIN, INT32_MAX = -2 ** 31, 2 ** 31 - 1
UINT32_MAX = 2 ** 32 - 1
# The API server caps quantities at the largest int64 without saying so; a bigger one would be
# stored as another value than the one written.
MAX_QUANTITY = Decimal(2 ** 63 - 1)
# Durations: Istio's CRDs check them with CEL's duration(), which parses like Go's
# time.ParseDuration: at most int64 nanoseconds (about 292 years, 2562047h47m16.854775807s). That is
# below the protobuf Duration maximum (315,576,000,000 s), so every duration that passes fits both.
MAX_DURATION_NANOSECONDS = 2 ** 63 - 1
_NANOSECONDS = {"ns": 1, "us": 10 ** 3, "µs": 10 ** 3, "μs": 10 ** 3, "ms": 10 ** 6, "s": 10 ** 9,
                "m": 60 * 10 ** 9, "h": 3600 * 10 ** 9}
# Enough digits for any quantity up to MAX_QUANTITY in nano units, with room to spare.
_PRECISION = 60
_SUFFIX_SCALE = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
WRAPPED_NOTE = "with nothing around it (no spaces or line breaks)"


class InvalidOption(ValueError):
    """A bad option value: which option, what was expected, what was given.

    A string with spaces or line breaks around it gets a note saying so, as they are easy to miss
    (a YAML block scalar ends in a newline).
    """

    def __init__(self, path, expected, value):
        self.path = path
        self.expected = expected
        self.value = value
        if isinstance(value, str) and value != value.strip():
            expected = f"{expected}, {WRAPPED_NOTE}"
        super().__init__(f"{path}: expected {expected}, got {value!r}")


QUANTITY_EXPECTED = "a Kubernetes quantity such as 100m, 0.5, 128Mi or 1Gi"


def parse_quantity(path, value):
    """A Kubernetes quantity ("100m", "1.5", "128Mi") as a Decimal; InvalidOption when malformed.

    Numbers (YAML `0.5`) are taken in their decimal form. A string must be the quantity and nothing
    else. Magnitudes beyond the largest int64 are refused: the API server would cap them silently.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidOption(path, QUANTITY_EXPECTED, value)
    match = QUANTITY_RE.match(str(value))
    if not match:
        raise InvalidOption(path, QUANTITY_EXPECTED, value)
    number, suffix = match.group(1), match.group(2) or ""
    try:
        with _decimal_context():
            if suffix not in _SUFFIX_SCALE:  # an exponent: 1e3 (while E and Ei are exa and exbi)
                amount = Decimal(number + suffix)
            else:
                amount = Decimal(number) * _SUFFIX_SCALE[suffix]
            too_large = amount.copy_abs() > MAX_QUANTITY
    except ArithmeticError as err:  # an exponent beyond what Decimal holds
        too_large = True
        if suffix in _SUFFIX_SCALE or suffix[1:2] == "-":
            raise InvalidOption(path, QUANTITY_EXPECTED, value) from err
    if too_large:
        raise InvalidOption(path, f"a quantity of at most {MAX_QUANTITY} (the API server's limit)",
                            value)
    return amount


def _decimal_context():
    """Decimal arithmetic with enough digits and exponent range for any quantity or duration."""
    return localcontext(Context(prec=_PRECISION, Emax=MAX_EMAX, Emin=MIN_EMIN))


_DECIMAL_SUFFIXES = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P",
                     18: "E"}
_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


def canonical_quantity(value):
    """The form the API server stores a quantity in ("0.5" -> "500m", "1.5Gi" -> "1536Mi").

    Writing quantities this way keeps a re-run equal to what the cluster returns. The value must
    already be valid (parse_quantity).
    """
    amount = parse_quantity("quantity", value)
    if amount == 0:
        return "0"
    suffix = QUANTITY_RE.match(str(value)).group(2) or ""
    binary = suffix.endswith("i")
    if binary and abs(amount) >= 1024 and amount == amount.to_integral_value():
        mantissa, power = int(amount), 0
        while mantissa % 1024 == 0 and power < len(_BINARY_SUFFIXES) - 1:
            mantissa, power = mantissa // 1024, power + 1
        return f"{mantissa}{_BINARY_SUFFIXES[power]}"
    # Decimal: nano precision (rounded up, as the API server does), exponent a multiple of 3.
    with _decimal_context():
        nanos = int((amount * 10 ** 9).to_integral_value(rounding="ROUND_CEILING"))
    exponent = -9
    while nanos % 1000 == 0 and exponent < 18:
        nanos, exponent = nanos // 1000, exponent + 3
    if suffix not in _SUFFIX_SCALE:
        return f"{nanos}e{exponent}" if exponent else str(nanos)
    return f"{nanos}{_DECIMAL_SUFFIXES[exponent]}"


def check_quantity_pair(request_path, request, limit_path, limit):
    """Both well-formed, and the limit not below the request."""
    request_value = parse_quantity(request_path, request) if request is not None else None
    limit_value = parse_quantity(limit_path, limit) if limit is not None else None
    if request_value is not None and limit_value is not None and limit_value < request_value:
        raise InvalidOption(limit_path, f"a quantity at least {request_path} ({request})", limit)


DURATION_EXPECTED = "a duration such as 10s, 100ms, 1m or 1h30m"


def duration_nanoseconds(path, value):
    """A Go/protobuf duration ("1h30m", "1.5s") in nanoseconds (a Decimal).

    InvalidOption when malformed or longer than a Go duration holds (MAX_DURATION_NANOSECONDS).
    """
    if not isinstance(value, str) or not DURATION_RE.match(value):
        raise InvalidOption(path, DURATION_EXPECTED, value)
    with _decimal_context():
        nanoseconds = sum(Decimal(number) * _NANOSECONDS[unit]
                          for number, unit in _DURATION_PART_RE.findall(value))
    if nanoseconds > MAX_DURATION_NANOSECONDS:
        raise InvalidOption(path, f"{DURATION_EXPECTED}, at most 2562047h47m16.854775807s "
                            "(about 292 years)", value)
    return nanoseconds


def check_duration(path, value):
    """A duration in Go/protobuf syntax within the range Istio accepts; None passes."""
    if value is None:
        return None
    duration_nanoseconds(path, value)
    return value


def check_range(path, value, minimum=INT32_MIN, maximum=INT32_MAX):
    """An integer within [minimum, maximum]; None passes.

    Both bounds default to int32's: every integer field of the APIs meshtune writes is an int32
    unless stated otherwise, so there is no unbounded integer option.
    """
    if value is None:
        return None
    if minimum is None:
        minimum = INT32_MIN
    if maximum is None:
        maximum = INT32_MAX
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidOption(path, f"an integer {minimum} to {maximum}", value)
    return value


def check_name(path, value, label=False):
    """A Kubernetes object name: a DNS-1123 subdomain (or label, for namespaces)."""
    pattern, limit = (DNS1123_LABEL_RE, 63) if label else (DNS1123_SUBDOMAIN_RE, 253)
    if not isinstance(value, str) or len(value) > limit or not pattern.match(value):
        kind = "label" if label else "subdomain"
        raise InvalidOption(path, f"a DNS-1123 {kind} of at most {limit} characters: lower-case "
                            "letters, digits and '-'" + ("" if label else " ('.' between parts)"),
                            value)
    return value


def check_label_key(path, key):
    """A label key (a qualified name): `[prefix/]name`, the prefix a DNS-1123 subdomain of at
    most 253 characters, the name at most 63 letters, digits, '-', '_' or '.' that starts and ends
    with a letter or digit."""
    prefix, slash, name = key.rpartition("/") if isinstance(key, str) else ("", "", None)
    if name is None or len(name) > 63 or not QUALIFIED_NAME_PART_RE.match(name) or \
            (slash and (len(prefix) > 253 or not DNS1123_SUBDOMAIN_RE.match(prefix))):
        raise InvalidOption(path, "a label key such as app, version or example.com/tier (a name of "
                            "at most 63 letters, digits, '-', '_' or '.', optionally after a DNS "
                            "subdomain prefix and '/')", key)
    return key


def check_label_value(path, value):
    """A label value: a string of at most 63 letters, digits, '-', '_' or '.' (or empty)."""
    if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE_RE.match(value):
        raise InvalidOption(path, "a label value string of up to 63 letters, digits, '-', '_' or "
                            "'.' that starts and ends with a letter or digit", value)
    return value


def check_label(path, key, value):
    """One label: a valid key and a valid value (both reported under `path`)."""
    check_label_key(path, key)
    return check_label_value(path, value)


def check_labels(path, labels):
    """A dict of labels (a selector's matchLabels, a Sidecar's workloadSelector); each entry is
    reported under `path.key`."""
    if not isinstance(labels, dict):
        raise InvalidOption(path, "a dict of label keys and string values", labels)
    for key, value in labels.items():
        check_label(f"{path}.{key}", key, value)
    return labels


LABEL_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def check_label_selector_object(path, selector):
    """A metav1 LabelSelector object: only `matchLabels` and `matchExpressions`, each well formed,
    as the API server validates them (In/NotIn need values, Exists/DoesNotExist take none)."""
    if not isinstance(selector, dict):
        raise InvalidOption(path, "a label selector (a dict with matchLabels and/or matchExpressions)",
                            selector)
    check_known_fields(path, selector, ("matchLabels", "matchExpressions"))
    if selector.get("matchLabels") is not None:
        check_labels(f"{path}.matchLabels", selector["matchLabels"])
    expressions = selector.get("matchExpressions")
    if expressions is None:
        return selector
    if not isinstance(expressions, list):
        raise InvalidOption(f"{path}.matchExpressions", "a list of {key, operator, values}", expressions)
    for index, requirement in enumerate(expressions):
        where = f"{path}.matchExpressions[{index}]"
        if not isinstance(requirement, dict):
            raise InvalidOption(where, "a requirement {key, operator, values}", requirement)
        check_known_fields(where, requirement, ("key", "operator", "values"))
        check_label_key(f"{where}.key", requirement.get("key"))
        operator, values = requirement.get("operator"), requirement.get("values")
        if operator not in LABEL_SELECTOR_OPERATORS:
            raise InvalidOption(f"{where}.operator", "one of " + ", ".join(LABEL_SELECTOR_OPERATORS),
                                operator)
        if values is not None and not isinstance(values, list):
            raise InvalidOption(f"{where}.values", "a list of label values", values)
        if operator in ("In", "NotIn") and not values:
            raise InvalidOption(f"{where}.values", f"at least one value with operator {operator}", values)
        if operator in ("Exists", "DoesNotExist") and values:
            raise InvalidOption(f"{where}.values", f"no values with operator {operator}", values)
        for value_index, value in enumerate(values or []):
            check_label_value(f"{where}.values[{value_index}]", value)
    return selector


def check_known_fields(path, obj, known):
    """No field beyond `known` in `obj` (a dict sent as is): the API server would refuse it."""
    extra = sorted(str(field) for field in obj if field not in known)
    if extra:
        raise InvalidOption(f"{path}.{extra[0]}", f"only the fields {', '.join(known)} in {path}",
                            obj[extra[0]] if extra[0] in obj else extra[0])
    return obj


def check_visible_text(path, value, expected, maximum=None):
    """A name-like string sent as is (a header or cookie name, an SNI, a metric name): not empty,
    printable ASCII with no spaces or control characters, at most `maximum` characters."""
    if not isinstance(value, str) or not value or _NOT_VISIBLE_ASCII_RE.search(value) or \
            (maximum is not None and len(value) > maximum):
        limit = f" of at most {maximum} characters" if maximum is not None else ""
        raise InvalidOption(path, f"{expected}{limit}, without spaces or control characters", value)
    return value


def check_unique(path, items, key="name"):
    seen = set()
    for index, item in enumerate(items):
        value = item.get(key)
        if value in seen:
            raise InvalidOption(f"{path}[{index}].{key}", f"a {key} not used twice in {path}", value)
        seen.add(value)


def check_http_token(path, value, expected):
    """An HTTP header or cookie name: letters, digits and !#$%&'*+-.^_`|~, nothing else."""
    if not isinstance(value, str) or not HTTP_TOKEN_RE.match(value):
        raise InvalidOption(path, f"{expected} (letters, digits and !#$%&'*+-.^_`|~ only)", value)
    return value


class Problems:
    """Collects every bad option of a call, so the task fails once with all of them."""

    def __init__(self):
        self.messages = []

    def check(self, func, *args, **kwargs):
        """Run one check; remember its message when it fails. Returns the check's result."""
        try:
            return func(*args, **kwargs)
        except InvalidOption as err:
            self.messages.append(str(err))
            return None

    def add(self, path, expected, value):
        self.messages.append(str(InvalidOption(path, expected, value)))

    def message(self):
        """One line for fail_json, or None when every option is valid."""
        if not self.messages:
            return None
        return "Invalid options (nothing was changed): " + "; ".join(self.messages)
