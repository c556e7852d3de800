"""Requirement files (pip's and bindep's) read line by line, as ansible-builder reads them."""

from __future__ import annotations

from pathlib import Path


def requirement_lines(path: Path) -> list[str]:
    """The requirement lines of a file, comments and blank lines dropped."""
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]
