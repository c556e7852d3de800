# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Input checks that Ansible's argument spec cannot express, each naming the option path.

Every check raises InvalidOption; modules collect them all before touching a cluster and fail
with one message, so nothing is half-applied.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from decimal import Decimal, InvalidOperation

QUANTITY_RE = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?$")
# Go / protobuf durations as Istio accepts them: 10s, 1.5s, 100ms, 1h30m.
DURATION_RE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|μs|ms|s|m|h))+$")
DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SUFFIX_SCALE = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


class InvalidOption(ValueError):
    """A bad option value: which option, what was expected, what was given."""

    def __init__(self, path, expected, value):
        self.path = path
        self.expected = expected
        self.value = value
        super().__init__(f"{path}: expected {expected}, got {value!r}")


def parse_quantity(path, value):
    """A Kubernetes quantity ("100m", "1.5", "128Mi") as a Decimal; InvalidOption when malformed."""
    text = str(value).strip() if isinstance(value, (str, int, float)) else None
    match = QUANTITY_RE.match(text or "") if not isinstance(value, bool) else None
    if not match:
        raise InvalidOption(path, "a Kubernetes quantity such as 100m, 0.5, 128Mi or 1Gi", value)
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number + suffix)
        return Decimal(number) * _SUFFIX_SCALE[suffix]
    except (InvalidOperation, KeyError) as err:
        raise InvalidOption(path, "a Kubernetes quantity such as 100m, 0.5, 128Mi or 1Gi", value) from err


_DECIMAL_SUFFIXES = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P",
                     18: "E"}
_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


def canonical_quantity(value):
    """The form the API server stores a quantity in ("0.5" -> "500m", "1.5Gi" -> "1536Mi").

    Writing quantities this way keeps a re-run equal to what the cluster returns. The value must
    already be valid (parse_quantity).
    """
    text = str(value).strip()
    amount = parse_quantity("quantity", text)
    if amount == 0:
        return "0"
    suffix = QUANTITY_RE.match(text).group(2) or ""
    binary = suffix.endswith("i")
    if binary and abs(amount) >= 1024 and amount == amount.to_integral_value():
        mantissa, power = int(amount), 0
        while mantissa % 1024 == 0 and power < len(_BINARY_SUFFIXES) - 1:
            mantissa, power = mantissa // 1024, power + 1
        return f"{mantissa}{_BINARY_SUFFIXES[power]}"
    # Decimal: nano precision (rounded up, as the API server does), exponent a multiple of 3.
    nanos = int((amount * 10 ** 9).to_integral_value(rounding="ROUND_CEILING"))
    exponent = -9
    while nanos % 1000 == 0 and exponent < 18:
        nanos, exponent = nanos // 1000, exponent + 3
    if suffix[:1] in ("e", "E"):
        return f"{nanos}e{exponent}" if exponent else str(nanos)
    return f"{nanos}{_DECIMAL_SUFFIXES[exponent]}"


def check_quantity_pair(request_path, request, limit_path, limit):
    """Both well-formed, and the limit not below the request."""
    request_value = parse_quantity(request_path, request) if request is not None else None
    limit_value = parse_quantity(limit_path, limit) if limit is not None else None
    if request_value is not None and limit_value is not None and limit_value < request_value:
        raise InvalidOption(limit_path, f"a quantity at least {request_path} ({request})", limit)


def check_duration(path, value):
    if value is None:
        return None
    if not isinstance(value, str) or not DURATION_RE.match(value):
        raise InvalidOption(path, "a duration such as 10s, 100ms, 1m or 1h30m", value)
    return value


def check_range(path, value, minimum=None, maximum=None):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or \
            (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"{minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise InvalidOption(path, f"an integer {bounds}", value)
    return value


def check_name(path, value, label=False):
    """A Kubernetes object name: a DNS-1123 subdomain (or label, for namespaces)."""
    pattern, limit = (DNS1123_LABEL_RE, 63) if label else (DNS1123_SUBDOMAIN_RE, 253)
    if not isinstance(value, str) or len(value) > limit or not pattern.match(value):
        kind = "label" if label else "subdomain"
        raise InvalidOption(path, f"a DNS-1123 {kind}: lower-case letters, digits and '-'", value)
    return value


def check_unique(path, items, key="name"):
    seen = set()
    for index, item in enumerate(items):
        value = item.get(key)
        if value in seen:
            raise InvalidOption(f"{path}[{index}].{key}", f"a {key} not used twice in {path}", value)
        seen.add(value)


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
