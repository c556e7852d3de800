# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Plain-text tables for messages and reports, and the numbers in them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math


def text_table(header, rows, limit=None):
    """`rows` (tuples of cells) under `header`, columns padded to the widest cell.

    With `limit`, only the first `limit` rows are shown and a last line says how many were left
    out, so that a message about thousands of objects stays readable.
    """
    shown = [tuple(str(cell) for cell in row) for row in rows[:limit]]
    widths = [max(len(row[i]) for row in [tuple(header), *shown]) for i in range(len(header))]

    def line(cells):
        return " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)).rstrip()

    lines = [line(header), "-+-".join("-" * width for width in widths)] + [line(r) for r in shown]
    if limit is not None and len(rows) > limit:
        lines.append(f"... and {len(rows) - limit} more")
    return "\n".join(lines)


def format_number(value):
    """Six significant digits, no exponent for ordinary magnitudes, NaN/+Inf spelt out."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = f"{value:.6g}"
    if "e" in text:
        text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text
