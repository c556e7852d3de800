"""Kubernetes quantities as the API server stores them: parsed, then written in canonical form."""

from __future__ import annotations

import re
from fractions import Fraction

from . import builtin_schemas as schemas

_FORM = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|([KMGTPE]i)|([numkMGTPE]))?$")
_DECIMAL_POWER = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_POWER = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}


def canonical(text: str) -> str | None:
    """`"0.5"` -> `"500m"`, `"1.5Gi"` -> `"1536Mi"`, `"1e3"` -> `"1e3"`; None when malformed."""
    match = _FORM.match(text.strip())
    if not match:
        return None
    number, exponent, binary, decimal = match.groups()
    value = Fraction(number)
    if binary:
        value *= 1024 ** _BINARY_POWER[binary]
    elif exponent:
        value *= Fraction(10) ** int(exponent[1:])
    else:
        value *= Fraction(10) ** _DECIMAL_POWER[decimal or ""]
    if value == 0:
        return "0"
    if binary and abs(value) >= 1024 and value.denominator == 1:
        power, mantissa = 0, value.numerator
        while mantissa % 1024 == 0 and power < 6:
            mantissa //= 1024
            power += 1
        return str(mantissa) + ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")[power]
    nanos = -((-value * 10 ** 9) // 1)  # rounded up to nano units
    scale = -9
    while nanos % 1000 == 0 and scale < 18:
        nanos //= 1000
        scale += 3
    if exponent:
        return f"{nanos}e{scale}" if scale else str(nanos)
    suffix = {v: k for k, v in _DECIMAL_POWER.items()}[scale]
    return f"{nanos}{suffix}"


def canonicalize(value, schema: dict | None):
    """A copy of `value` with every Quantity field (per the kind's schema) in canonical form."""
    if schema is None:
        return value
    if schemas.is_quantity(schema):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = repr(value) if isinstance(value, float) else str(value)
        return canonical(value) or value if isinstance(value, str) else value
    if isinstance(value, dict):
        return {key: canonicalize(child, schemas.property_schema(schema, key))
                for key, child in value.items()}
    if isinstance(value, list):
        item = schemas.items_schema(schema)
        return [canonicalize(child, item) for child in value]
    return value
