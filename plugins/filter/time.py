# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Time filters of the roles: the parsing is module_utils.prometheus's, so a time a role reads
means what it means to prometheus_query. Each filter is documented in the YAML file of its name."""

import math

from ansible.errors import AnsibleFilterError

from ansible_collections.meshtune.mesh.plugins.module_utils.prometheus import NUMBER_RE, parse_rfc3339

_NOT_GIVEN = object()


def epoch_seconds(value, default=_NOT_GIVEN):
    """Unix seconds of an RFC3339 time or a number of seconds; `default` (when given) for
    anything else, else an error naming the value."""
    text = str(value).strip() if value is not None else ""
    seconds = float(text) if NUMBER_RE.match(text) else parse_rfc3339(text)
    if seconds is not None and math.isfinite(seconds):
        return seconds
    if default is not _NOT_GIVEN:
        return default
    raise AnsibleFilterError(f"epoch_seconds: expected an RFC3339 time such as 2024-05-01T12:00:00Z "
                             f"or unix seconds, got {value!r}")


class FilterModule:
    """meshtune.mesh's time filters."""

    def filters(self):
        return {"epoch_seconds": epoch_seconds}
