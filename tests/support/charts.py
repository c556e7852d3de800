"""The chart mirror the tests install real charts from (MESHTUNE_CHART_MIRROR)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

MIRROR_VARIABLE = "MESHTUNE_CHART_MIRROR"


def chart_mirror() -> Path:
    """The mirror directory; a test that needs charts fails, naming the variable, without one."""
    value = os.environ.get(MIRROR_VARIABLE, "")
    if not value:
        pytest.fail(f"{MIRROR_VARIABLE} is not set: point it at a chart mirror (a directory with "
                    "the pinned chart packages and their index.yaml; .ci/run sets it)")
    mirror = Path(value).expanduser().resolve()
    if not (mirror / "index.yaml").is_file():
        pytest.fail(f"{MIRROR_VARIABLE}={value} holds no index.yaml: it must be a chart mirror "
                    "(the pinned chart packages and their index.yaml)")
    return mirror


def chart_package(mirror: Path, chart: str, version: str) -> Path:
    """The packaged chart of `chart` `version` in the mirror, as its index.yaml names it."""
    index = yaml.safe_load((mirror / "index.yaml").read_text())
    for entry in index["entries"][chart]:
        if entry["version"] == version:
            return mirror / entry["urls"][0]
    pytest.fail(f"{chart} {version} is not in the chart mirror {mirror}")
