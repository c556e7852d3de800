# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Kubernetes label selectors (metav1.LabelSelector) matched against an object's labels."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def selector_matches(selector, labels):
    """Whether a LabelSelector ({matchLabels, matchExpressions}) selects `labels`, as the API
    server decides: every matchLabels entry and every expression must hold. None selects nothing,
    an empty selector everything."""
    if selector is None:
        return False
    labels = labels or {}
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        present = key in labels
        if (operator == "In" and not (present and labels[key] in values)) or \
                (operator == "NotIn" and present and labels[key] in values) or \
                (operator == "Exists" and not present) or \
                (operator == "DoesNotExist" and present):
            return False
    return True
