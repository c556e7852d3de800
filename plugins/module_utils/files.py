# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Writing the files people keep (load-test results, reports): whole, and with the usual mode.

A file is written to a temporary name in its directory and renamed over the target, so a reader
never sees half of it. Its mode is the one Ansible's own file handling gives (atomic_move): an
existing file keeps its mode, a new one gets 0666 minus the umask. A restrictive umask (0077 for
results that name internal services) is therefore respected, as it is for the progress file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat
import tempfile

DEFAULT_MODE = 0o666


def current_umask():
    """The process umask (reading it means setting it: it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode(path):
    """The mode `path` should get: the existing file's, else DEFAULT_MODE minus the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return DEFAULT_MODE & ~current_umask()


def write_atomically(path, content, prefix=".meshtune-", suffix=""):
    """Replace `path` with the bytes `content` in one rename; nothing is left behind on failure."""
    directory = os.path.dirname(os.path.abspath(path))
    mode = new_file_mode(path)
    handle, temporary = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    try:
        with os.fdopen(handle, "wb") as output:
            output.write(content)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
