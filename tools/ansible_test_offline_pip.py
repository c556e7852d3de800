#!/usr/bin/env python
"""Prepare ansible-test's pip bootstrap so that its virtual environments need no download host.

ansible-test bootstraps pip into every virtual environment it creates (sanity tests, units) with a
``get-pip`` script fetched from a dedicated download host, cached as
``~/.ansible/test/cache/get_pip_<version>.py``. Only the package index is needed otherwise, so this
tool fetches the ``pip==<version>`` wheel from the package index (with pip itself) and writes a
stand-in for that cache file which installs pip, and any further packages asked for, from that
wheel.

The wheel is kept beside the stand-in, so the cache does not depend on the checkout that wrote it.
An existing cache file that this tool did not write (for example a real ``get-pip`` script) is left
alone.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

MARKER = "# written by tools/ansible_test_offline_pip.py"

STAND_IN = '''\
{marker} (pip {version})
"""Install pip {version} from a local wheel, standing in for the get-pip bootstrap script."""

import os
import sys

WHEEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), {wheel!r})
DROPPED = {{"--no-setuptools", "--no-wheel"}}


def main():
    sys.path.insert(0, WHEEL)
    from pip._internal.cli.main import main as pip_main

    args = [arg for arg in sys.argv[1:] if arg not in DROPPED]
    find_links = ["--find-links", os.path.dirname(WHEEL)]
    return pip_main(["install", "--upgrade", "--force-reinstall", *find_links, *args])


if __name__ == "__main__":
    sys.exit(main())
'''


def ansible_test_pip_version() -> str:
    """Return the pip version that the installed ansible-test bootstraps into its environments."""
    try:
        from types import SimpleNamespace

        from ansible_test._internal.python_requirements import get_venv_packages

        python = SimpleNamespace(version=f"{sys.version_info.major}.{sys.version_info.minor}")
        return get_venv_packages(python)["pip"]
    except Exception:  # noqa: BLE001 - any failure: read the version from ansible-test's source
        import importlib.util

        spec = importlib.util.find_spec("ansible_test")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("ansible-test is not installed in this Python environment") from None
        source = Path(spec.submodule_search_locations[0], "_internal", "python_requirements.py")
        match = re.search(r"pip=['\"]([0-9][0-9.]*)['\"]", source.read_text(encoding="utf-8"))
        if not match:
            raise SystemExit(f"cannot find the bootstrap pip version in {source}") from None
        return match.group(1)


def download_wheel(version: str, cache_dir: Path) -> Path:
    """Return the pip wheel for ``version`` in ``cache_dir``, downloading it when missing."""
    name = f"pip-{version}-py3-none-any.whl"
    wheel = cache_dir / name
    if not wheel.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                str(cache_dir),
                f"pip=={version}",
            ],
            check=True,
        )
    if not wheel.is_file():
        raise SystemExit(f"pip download did not produce {wheel}")
    return wheel


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically unless it already holds it; return whether it wrote."""
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, path)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--download-dir",
        type=Path,
        default=Path("build/cache"),
        help="where the pip wheel is downloaded and kept (default: %(default)s)",
    )
    parser.add_argument(
        "--test-cache",
        type=Path,
        default=Path("~/.ansible/test/cache").expanduser(),
        help="ansible-test's cache directory (default: %(default)s)",
    )
    parser.add_argument("--pip-version", help="pip version (default: the one ansible-test uses)")
    args = parser.parse_args()

    version = args.pip_version or ansible_test_pip_version()
    stand_in = args.test_cache / f"get_pip_{version.replace('.', '_')}.py"

    if stand_in.is_file() and not stand_in.read_text(encoding="utf-8").startswith(MARKER):
        print(f"ansible-test pip {version} bootstrap: keeping existing {stand_in}")
        return 0

    wheel = download_wheel(version, args.download_dir)
    wheel_data = wheel.read_bytes()
    wheel_copy = args.test_cache / wheel.name
    changed = write_if_changed(wheel_copy, wheel_data)
    script = STAND_IN.format(marker=MARKER, version=version, wheel=wheel.name)
    changed = write_if_changed(stand_in, script.encode("utf-8")) or changed

    digest = hashlib.sha256(wheel_data).hexdigest()[:12]
    state = "written" if changed else "up to date"
    print(f"ansible-test pip {version} bootstrap {state}: {stand_in} (wheel sha256 {digest}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
