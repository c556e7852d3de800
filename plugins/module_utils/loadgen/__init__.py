# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Load generation and fortio's result format, shared by the load and judging modules."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type
