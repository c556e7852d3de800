# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The read-only performance analyzer behind meshtune.mesh.mesh_analyze.

inventory.py reads the cluster (one list call per kind and namespace); base.py holds what a rule
is and finds; one file per group of rules (services, traffic, proxies, scaling, control_plane)
holds the rules themselves; rules.py collects them and runs them; output.py turns findings into
the console table and the report files.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type
