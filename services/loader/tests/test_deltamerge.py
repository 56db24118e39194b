"""The lakehouse's own MERGE: which files it rewrites, which rows win, and one commit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from lakegate.common import datafiles
from lakegate.loader.mergekeys import MergeColumns
from lakegate.loader.warehouses import deltalog, deltamerge

SCHEMA = pa.schema(
    [
        pa.field("region", pa.string(), nullable=False),
        pa.field("id", pa.int64(), nullable=False),
        pa.field("note", pa.string()),
        pa.field("version", pa.int64()),
    ]
)
KEYS = MergeColumns(keys=("region", "id"), cursor="version")


def rows(*values: tuple[str, int, str, int | None]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([dict(zip(SCHEMA.names, value, strict=True)) for value in values], schema=SCHEMA)


def incoming(*values: tuple[str, int, str, int | None]) -> Iterator[pa.RecordBatch]:
    yield rows(*values)


def table_rows(path: Path) -> list[tuple[str, int, str, int | None]]:
    found = DeltaTable(str(path)).to_pyarrow_table().sort_by([("region", "ascending"), ("id", "ascending")])
    return [tuple(row.values()) for row in found.to_pylist()]  # type: ignore[misc]


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three data files: eu 1-2, eu 3-4, us 1-2."""
    monkeypatch.setattr(datafiles, "FILE_BYTES", 1)  # a file per row group
    monkeypatch.setattr(datafiles, "ROW_GROUP_ROWS", 2)
    first = rows(
        ("eu", 1, "a", 1),
        ("eu", 2, "b", 1),
        ("eu", 3, "c", 1),
        ("eu", 4, "d", 5),
        ("us", 1, "e", None),
        ("us", 2, "f", 1),
    )
    deltalog.write(tmp_path, pa.RecordBatchReader.from_batches(SCHEMA, [first]), mode="overwrite", metadata={})
    return tmp_path


def test_only_files_holding_replaced_rows_are_rewritten_and_new_keys_are_added(table: Path) -> None:
    before = set(DeltaTable(str(table)).file_uris())

    deltamerge.merge(
        table,
        lambda: incoming(("eu", 2, "b2", 2), ("ca", 1, "new", 1)),
        KEYS,
        cursor_in_target=True,
        metadata={"lakegate.run_id": "r2"},
    )

    after = DeltaTable(str(table))
    assert table_rows(table) == [
        ("ca", 1, "new", 1), ("eu", 1, "a", 1), ("eu", 2, "b2", 2), ("eu", 3, "c", 1), ("eu", 4, "d", 5),
        ("us", 1, "e", None), ("us", 2, "f", 1),
    ]  # fmt: skip
    assert len(before & set(after.file_uris())) == 2, "the eu 3-4 and us files are kept as they were"
    assert (after.version(), after.history()[0]["lakegate.run_id"]) == (1, "r2")


def test_a_newer_stored_row_wins_a_null_stored_cursor_loses_and_equal_cursors_go_to_the_incoming_row(
    table: Path,
) -> None:
    deltamerge.merge(
        table,
        lambda: incoming(
            ("eu", 4, "older", 3), ("us", 1, "any", 0), ("eu", 1, "same", 1), ("us", 2, "no cursor", None)
        ),
        KEYS,
        cursor_in_target=True,
        metadata={},
    )

    assert table_rows(table) == [
        ("eu", 1, "same", 1), ("eu", 2, "b", 1), ("eu", 3, "c", 1), ("eu", 4, "d", 5),
        ("us", 1, "any", 0), ("us", 2, "f", 1),
    ]  # fmt: skip


def test_without_a_cursor_in_the_table_every_incoming_row_wins(table: Path) -> None:
    deltamerge.merge(table, lambda: incoming(("eu", 4, "older", 3)), KEYS, cursor_in_target=False, metadata={})

    assert ("eu", 4, "older", 3) in table_rows(table)


def test_a_failed_commit_leaves_the_table_as_it_was(table: Path) -> None:
    version, kept = DeltaTable(str(table)).version(), table_rows(table)

    def broken() -> Iterator[pa.RecordBatch]:
        yield rows(("eu", 2, "b2", 2))
        raise OSError("the spool went away")

    with pytest.raises(OSError, match="spool went away"):
        deltamerge.merge(table, broken, KEYS, cursor_in_target=True, metadata={})

    assert (DeltaTable(str(table)).version(), table_rows(table)) == (version, kept)


@pytest.mark.parametrize(
    "text",
    [pa.string_view(), pa.large_string(), pa.dictionary(pa.int16(), pa.string())],
    ids=["string_view", "large_string", "dictionary"],
)
def test_files_whose_writer_chose_another_physical_type_for_text_merge_like_any_other(
    tmp_path: Path, text: pa.DataType
) -> None:
    deltalog.write(
        tmp_path, pa.RecordBatchReader.from_batches(SCHEMA, [rows(("eu", 0, "x", 1))]), mode="overwrite", metadata={}
    )
    # A second file written by another writer: the same columns, text in `text`.
    physical = pa.schema([field.with_type(text) if field.type == pa.string() else field for field in SCHEMA])
    other = pa.table(
        {"region": ["eu", "eu", "us"], "id": [1, 2, 1], "note": ["a", "b", "c"], "version": [1, 1, 1]}
    ).cast(physical)
    deltalog.write(
        tmp_path, pa.RecordBatchReader.from_batches(physical, other.to_batches()), mode="append", metadata={}
    )
    assert any(
        pa.parquet.read_schema(uri).field("note").type == text for uri in DeltaTable(str(tmp_path)).file_uris()
    ), "the table holds a file in the other physical type"

    deltamerge.merge(
        tmp_path, lambda: incoming(("eu", 2, "b2", 2), ("us", 1, "c2", 2)), KEYS, cursor_in_target=True, metadata={}
    )

    assert table_rows(tmp_path) == [("eu", 0, "x", 1), ("eu", 1, "a", 1), ("eu", 2, "b2", 2), ("us", 1, "c2", 2)]
