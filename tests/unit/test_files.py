"""Result and report files: written whole, with the mode Ansible would give them."""

from __future__ import annotations

import os

import pytest

from ansible_collections.meshtune.mesh.plugins.module_utils.files import write_atomically
from ansible_collections.meshtune.mesh.plugins.module_utils.run_result import (
    loads,
    write_result_file,
)
from tests.support.fortio_samples import fortio_result


@pytest.fixture
def umask():
    """Set the process umask for one test and put the old one back."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_mask(mask):
        os.umask(mask)

    yield set_mask
    os.umask(previous)


@pytest.mark.parametrize(("mask", "mode"), [(0o077, 0o600), (0o027, 0o640), (0o022, 0o644), (0o002, 0o664)])
def test_a_new_result_file_gets_0666_minus_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    path = tmp_path / "mesh.json"
    write_result_file(str(path), fortio_result())
    assert path.stat().st_mode & 0o777 == mode
    assert loads(path.read_text())["Labels"] == "mesh"
    assert [p.name for p in tmp_path.iterdir()] == ["mesh.json"]


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "mesh.json"
    path.write_text("old")
    path.chmod(0o600)
    write_result_file(str(path), fortio_result())
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().startswith("{\n")


def test_nothing_is_left_behind_when_writing_fails(tmp_path):
    with pytest.raises(TypeError):
        write_atomically(str(tmp_path / "x"), "not bytes")
    assert list(tmp_path.iterdir()) == []
