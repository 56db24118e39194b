"""Cursor rules without a broker: canonical values, and where each mode starts."""

from __future__ import annotations

import pytest
from lakegate.catalog.cursors import Start, normalise, start_of
from lakegate.common.contracts.runs import Cursor
from lakegate.common.errors import InvalidInput

STORED = Cursor(column="updated_at", value="2025-01-02T03:04:05+00:00", source_type="timestamp with time zone")


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("2025-01-02T05:04:05+02:00", "2025-01-02T03:04:05+00:00"),
        ("2025-01-02T03:04:05.250000Z", "2025-01-02T03:04:05.250000+00:00"),
        ("2025-01-01T22:04:05-05:00", "2025-01-02T03:04:05+00:00"),
    ],
)
def test_a_timestamptz_cursor_is_kept_as_an_instant_in_utc(value: str, canonical: str) -> None:
    assert normalise(STORED.model_copy(update={"value": value})).value == canonical


def test_other_cursor_types_are_kept_as_the_extractor_wrote_them() -> None:
    naive = Cursor(column="seen", value="2025-01-02T05:04:05", source_type="timestamp without time zone")
    serial = Cursor(column="id", value="00042", source_type="bigint")
    assert (normalise(naive), normalise(serial)) == (naive, serial)


@pytest.mark.parametrize(
    ("value", "complaint"), [("yesterday", "not an ISO 8601 timestamp"), ("2025-01-02T03:04:05", "no UTC offset")]
)
def test_a_timestamptz_cursor_that_is_not_an_instant_is_refused_naming_the_column(value: str, complaint: str) -> None:
    with pytest.raises(InvalidInput, match=f"column 'updated_at'.*{complaint}|{complaint}.*'updated_at'"):
        normalise(STORED.model_copy(update={"value": value}))


def test_where_each_mode_starts() -> None:
    assert start_of("full", None, STORED, "public.t") == Start("updated_at", None)
    assert start_of("full", "id", STORED, "public.t") == Start("id", None)
    assert start_of("incremental", None, None, "public.t") == Start(None, None)
    assert start_of("incremental", None, STORED, "public.t") == Start("updated_at", STORED)
    assert start_of("merge", "updated_at", STORED, "public.t") == Start("updated_at", STORED)
    assert start_of("merge", "id", STORED, "public.t") == Start("id", None)
    with pytest.raises(InvalidInput, match=r"table public\.t is synced incrementally on column 'updated_at'"):
        start_of("incremental", "id", STORED, "public.t")
