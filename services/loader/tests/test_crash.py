"""A loader process killed with SIGKILL in the middle of a load: no commit, and the redelivery commits once.

The load is made to stop mid-way deterministically: the run announces four parts but only two are
staged, so the loader has read (and handed its writer) two parts and waits for the third when it
is killed. The test then stages the rest and starts a fresh loader, which gets the message again
once JetStream's ack wait has passed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from lakegate.common.contracts.runs import Loaded, SyncMode
from lakegate.loader.app import serve
from lakegate.loader.config import LoaderSettings

if TYPE_CHECKING:
    from conftest import Extractor, LoaderProcess

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string())])
ROWS_PER_PART = 1000


def part(index: int) -> pa.RecordBatch:
    ids = range(index * ROWS_PER_PART, (index + 1) * ROWS_PER_PART)
    return pa.record_batch({"id": pa.array(ids, pa.int64()), "name": pa.array([f"row {i}" for i in ids])}, SCHEMA)


@pytest.mark.parametrize("mode", ["incremental", "merge"])
async def test_a_loader_killed_mid_load_leaves_no_commit_and_the_redelivery_commits_exactly_once(
    mode: SyncMode,
    loader_settings: LoaderSettings,
    lone_extractor: Extractor,
    tmp_path: Path,
    loader_process: LoaderProcess,
) -> None:
    extractor = lone_extractor
    # A short acknowledgement deadline, so the message the killed loader held comes back in seconds.
    loader_settings = loader_settings.model_copy(update={"ack_wait_seconds": 4.0})
    target = extractor.target(f"crash_{mode}")
    path = loader_settings.lakehouse / target.catalog / target.schema_name / target.name
    process = await loader_process(loader_settings, tmp_path / "loader.log")
    # A first run through the process: the table exists, so the crashed run appends or merges into it.
    await extractor.sync(target, [part(0)], timeout=60.0)

    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    progress = await extractor.rows_loaded(run_id)
    writer = await extractor.staging.writer(run_id, "a1")
    await writer.write(part(0))  # merge: these rows update the first run's; incremental: they repeat
    await writer.write(part(1))
    staged = (await writer.close()).model_copy(update={"parts": 4})
    extracted = extractor.extracted(
        run_id, target, SCHEMA, staged, 4 * ROWS_PER_PART, mode, primary_key=["id"], cursor="id"
    )
    await extractor.announce(extracted)
    await progress.reach(2 * ROWS_PER_PART)

    process.kill()
    await process.wait()

    assert DeltaTable(str(path)).version() == 0
    assert not any(entry.get("lakegate.run_id") == run_id for entry in DeltaTable(str(path)).history())

    await writer.write(part(2))
    await writer.write(part(3))
    async with serve(loader_settings):
        loaded = await steps.next(Loaded, timeout=loader_settings.ack_wait_seconds + 60)

    table = DeltaTable(str(path))
    assert [entry.get("lakegate.run_id") for entry in table.history()].count(run_id) == 1
    assert (table.version(), loaded.table_version, loaded.row_count) == (1, 1, 4 * ROWS_PER_PART)
    ids = table.to_pyarrow_table(columns=["id"]).column("id").to_pylist()
    if mode == "merge":
        assert sorted(ids) == list(range(4 * ROWS_PER_PART))
    else:
        assert sorted(ids) == sorted([*range(ROWS_PER_PART), *range(4 * ROWS_PER_PART)])
    assert not (loader_settings.lakehouse / "_scratch" / run_id).exists()
