"""The local lakehouse's data files as `lakegate.common.datafiles` writes them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from lakegate.common.datafiles import DataFileWriter


def test_only_string_and_binary_columns_are_dictionary_encoded_and_every_value_reads_back(tmp_path: Path) -> None:
    rows = 5000
    batch = pa.record_batch(
        {
            "id": pa.array(range(rows), pa.int64()),
            "status": pa.array(["open", "closed"] * (rows // 2)),
            "blob": pa.array([b"\x00\x01"] * rows, pa.binary()),
            "at": pa.array(range(rows), pa.timestamp("us", tz="UTC")),
        }
    )
    writer = DataFileWriter(tmp_path, batch.schema)
    writer.write(batch)
    [file] = writer.close()

    metadata = pq.read_metadata(tmp_path / file.name)
    encoded = {
        metadata.schema.column(i).name: "RLE_DICTIONARY" in metadata.row_group(0).column(i).encodings
        for i in range(metadata.num_columns)
    }
    assert encoded == {"id": False, "status": True, "blob": True, "at": False}
    assert pq.read_table(tmp_path / file.name).equals(pa.Table.from_batches([batch]))
    assert file.rows == rows
