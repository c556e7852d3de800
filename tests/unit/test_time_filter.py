"""meshtune.mesh.epoch_seconds: the times the verify role reads (fortio's StartTime, a window end)."""

import calendar
import datetime

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.meshtune.mesh.plugins.filter.time import FilterModule

epoch_seconds = FilterModule().filters()["epoch_seconds"]


def utc_seconds(*parts: int) -> int:
    return calendar.timegm(datetime.datetime(*parts).timetuple())


@pytest.mark.parametrize(("text", "expected"), [
    ("2022-03-19T15:34:23.279389575Z", utc_seconds(2022, 3, 19, 15, 34, 23) + 0.279389575),
    ("2022-03-19T15:34:23-07:00", utc_seconds(2022, 3, 19, 22, 34, 23)),
    ("2022-03-19 15:34:23+05:30", utc_seconds(2022, 3, 19, 10, 4, 23)),
    ("1714564800", 1714564800.0),
    (" 1714564800.5 ", 1714564800.5),
    (1714564800, 1714564800.0),
])
def test_times_become_unix_seconds(text, expected):
    assert epoch_seconds(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", ["", "yesterday", "2022-02-30T00:00:00Z", "2022-03-19T15:34:23", "inf",
                                  None])
def test_anything_else_is_named_or_gets_the_default(text):
    with pytest.raises(AnsibleFilterError, match="epoch_seconds: expected an RFC3339 time"):
        epoch_seconds(text)
    assert epoch_seconds(text, default=0) == 0
