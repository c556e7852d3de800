"""Canonical quantities: the module side and the test server agree with Kubernetes' own examples."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.meshtune.mesh.plugins.module_utils.validate import canonical_quantity
from tests.kubeapi.quantities import canonical

# (written, as a kube-apiserver stores it)
KUBERNETES_EXAMPLES = [
    ("0.5", "500m"), ("1.5Gi", "1536Mi"), ("100", "100"), ("1000m", "1"), ("2000m", "2"),
    ("1500", "1500"), ("1.5k", "1500"), ("1e3", "1e3"), ("128Mi", "128Mi"), ("1024", "1024"),
    ("2048Ki", "2Mi"), ("0.1", "100m"), ("100m", "100m"), ("0", "0"), ("512Ki", "512Ki"),
    ("0.5Ki", "512"), ("1.0001", "1000100u"), ("12e6", "12e6"),
]


@pytest.mark.parametrize(("written", "stored"), KUBERNETES_EXAMPLES)
def test_both_sides_match_kubernetes(written, stored):
    assert canonical_quantity(written) == stored
    assert canonical(written) == stored


quantities = st.builds(
    lambda number, fraction, suffix: f"{number}{fraction}{suffix}",
    st.integers(min_value=0, max_value=10**7),
    st.sampled_from(["", ".5", ".25", ".125", ".001"]),
    st.sampled_from(["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "u", "n"]),
)


@given(quantities)
def test_module_writes_what_the_server_stores(quantity):
    assert canonical_quantity(quantity) == canonical(quantity)
    assert canonical(canonical(quantity)) == canonical(quantity), "canonical form is stable"
