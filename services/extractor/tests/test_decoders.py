"""The vectorised decoders on arrays shaped as ADBC hands them over: slices, nulls, sentinels."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest
from lakegate.extractor import decoders


@pytest.mark.parametrize("storage", [pa.binary(16), pa.binary()], ids=["fixed", "variable"])
def test_uuids_become_their_canonical_text_in_slices_and_around_nulls(storage: pa.DataType) -> None:
    """The driver sends 16 fixed bytes from 1.9 on, and variable binary (nulls zero bytes long) before."""
    values = [uuid.uuid4() for _ in range(9)]
    raw = pa.array([None if i % 3 == 1 else v.bytes for i, v in enumerate(values)], storage)

    for offset in (0, 1, 4):
        got = decoders.uuid_text(raw.slice(offset, 5)).to_pylist()
        want = [None if (offset + i) % 3 == 1 else str(v) for i, v in enumerate(values[offset : offset + 5])]
        assert got == want


def test_uuids_read_as_an_extension_type_keep_their_nulls() -> None:
    ids = [uuid.UUID(int=0), None, uuid.UUID(int=2**128 - 1)]
    storage = pa.array([None if v is None else v.bytes for v in ids], pa.binary(16))

    got = decoders.uuid_text(pa.ExtensionArray.from_storage(pa.uuid(), storage))

    assert got.type == pa.string()
    assert got.to_pylist() == ["00000000-0000-0000-0000-000000000000", None, "ffffffff-ffff-ffff-ffff-ffffffffffff"]


@pytest.mark.parametrize("kind", [pa.timestamp("us"), pa.timestamp("us", tz="UTC")])
def test_infinite_instants_are_clamped_and_real_ones_kept(kind: pa.DataType) -> None:
    real = [decoders.TS_LOW, 0, decoders.TS_HIGH, -210_863_520_000_000_000]  # the last: 4713 BC
    raw = pa.array([decoders._TS_INFINITY, None, *real, decoders._TS_MINUS_INFINITY], pa.int64()).view(kind)

    got = decoders.timestamp_clamp(raw.slice(0)).view(pa.int64()).to_pylist()

    assert got == [decoders.TS_HIGH, None, *real, decoders.TS_LOW]


def test_a_wrapped_far_future_instant_is_refused() -> None:
    wrapped = pa.array([-9_222_426_057_709_551_617], pa.int64()).view(pa.timestamp("us"))

    with pytest.raises(pa.ArrowInvalid, match="year 262143"):
        decoders.timestamp_clamp(wrapped)


def test_infinite_dates_are_clamped() -> None:
    raw = pa.array([decoders._DATE_INFINITY, decoders._DATE_MINUS_INFINITY, 0, None], pa.int32()).view(pa.date32())

    got = decoders.date_clamp(raw).view(pa.int32()).to_pylist()

    assert got == [decoders.DATE_HIGH, decoders.DATE_LOW, 0, None]
