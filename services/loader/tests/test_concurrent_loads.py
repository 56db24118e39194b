"""Loads of different tables run side by side in one loader; two runs of one table commit one after the other."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pytest
from lakegate.common.contracts.runs import Loaded, Loading, StagedParts
from lakegate.common.staging import encode_part
from lakegate.common.subjects import RunStep
from lakegate.loader.app import LoaderState

if TYPE_CHECKING:
    from conftest import Extractor, Steps


def ints(values: list[int]) -> pa.RecordBatch:
    return pa.record_batch({"id": pa.array(values, pa.int64())})


async def held_load(extractor: Extractor, table: str) -> tuple[Steps, str]:
    """A run of 4 rows into `table` whose second part is not staged yet: its load waits for it.

    Returns the run's steps and where its second part goes (`put_raw_part(location, 1, ...)`).
    """
    run_id = extractor.new_run_id()
    steps = await extractor.watch(run_id)
    location = extractor.topology.stage(run_id, "a1")
    first = encode_part(ints([1, 2]))
    await extractor.put_raw_part(location, 0, first)
    staged = StagedParts(location=location, parts=2, bytes=len(first))
    await extractor.announce(extractor.extracted(run_id, extractor.target(table), ints([]).schema, staged, 4))
    await steps.next(Loading)
    return steps, location


@pytest.mark.parametrize("loader_settings", [{"max_concurrent_writes": 2}], indirect=True)
async def test_a_table_whose_load_waits_for_its_parts_does_not_hold_up_another_tables_load(
    loader: LoaderState, extractor: Extractor
) -> None:
    acks = await extractor.acks()
    slow, location = await held_load(extractor, "slow")

    _, quick = await extractor.sync(extractor.target("quick"), [ints([7])])

    assert quick.row_count == 1
    settled = [acks.get_nowait() for _ in range(acks.qsize())]
    # The held load is still on its first delivery (not given back to let the other one run).
    assert not [ack for ack in settled if ack.startswith(b"-NAK")], settled
    assert not [step for step in slow.drain() if isinstance(step, Loaded)]
    await extractor.put_raw_part(location, 1, encode_part(ints([3, 4])))
    assert (await slow.next(Loaded)).row_count == 4


@pytest.mark.parametrize("loader_settings", [{"max_concurrent_writes": 2}], indirect=True)
async def test_two_runs_of_one_table_load_one_after_the_other_in_the_order_they_came(
    loader: LoaderState, extractor: Extractor
) -> None:
    first, location = await held_load(extractor, "orders")
    later, second = await extractor.start(extractor.target("orders"), [ints([9])])

    await extractor.put_raw_part(location, 1, encode_part(ints([3, 4])))

    assert (await first.next(Loaded)).row_count == 4
    assert (await second.next(Loaded)).row_count == 1
    # The second run's load began (`loading`) only once the first had committed (`loaded`).
    earlier = first.seen[0]
    assert isinstance(earlier, Loading)
    assert await stored_at(extractor, later.run_id, RunStep.LOADING) > await stored_at(
        extractor, earlier.run_id, RunStep.LOADED
    )


async def stored_at(extractor: Extractor, run_id: str, step: RunStep) -> int:
    """The run stream's sequence number of one step of a run."""
    message = await extractor.js.get_last_msg(
        extractor.topology.run_stream.name, extractor.topology.run_step(run_id, step)
    )
    return int(message.seq or 0)
