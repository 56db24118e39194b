"""A commit's data files: written as the rows stream in (`lakegate.common.datafiles`), then `add` actions.

If the commit is never reached (a failed read, a crash), the files stay unreferenced: no reader sees
them, and `written` removes them when it can.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
from deltalake.transaction import AddAction
from lakegate.common.datafiles import DataFile, DataFileWriter


def add_action(file: DataFile) -> AddAction:
    """The Delta `add` action of one data file of the table's directory."""
    return AddAction(file.name, file.size, {}, file.modified_ms, True, file.stats)


@contextlib.contextmanager
def written(directory: Path, reader: pa.RecordBatchReader) -> Iterator[tuple[list[AddAction], int]]:
    """Write every row of `reader` into data files under `directory`; yields their add actions and
    the rows written. The files are removed again if the writing or the body (the commit) fails."""
    writer = DataFileWriter(directory, reader.schema)
    try:
        for batch in reader:
            writer.write(batch)
        files = writer.close()
        yield [add_action(file) for file in files], writer.rows
    except BaseException:
        writer.abandon()
        raise
