"""What `query` replies on the wire: a kept answer is the same bytes as the computed one, and cheap to reply."""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

import nats
import pyarrow as pa
import pytest
from lakegate.common.contracts.warehouse import QueryResult, RunQuery
from lakegate.common.errors import Unavailable
from lakegate.common.rpc import encoded
from lakegate.common.settings import NatsSettings
from lakegate.loader.app import LoaderState
from lakegate.loader.warehouses.delta import LocalLakehouse

if TYPE_CHECKING:
    from conftest import Extractor

Query = Callable[..., Coroutine[Any, Any, QueryResult]]
#: One request at a time per tenant and none waiting: a held lane refuses anything that needs one.
ONE_LANE = {"lane_per_tenant": 1, "lane_waiting": 0}
#: Python function calls the loader may make to reply a kept answer, request parsed to reply written (measured:
#: 30; a span and a runtime protocol check per call made it 126).
KEPT_REPLY_CALLS = 50


def mixed() -> pa.RecordBatch:
    """Values of every kind the JSON of an answer writes differently: text beyond ASCII, floats, decimals, NULLs."""
    return pa.record_batch(
        {
            "n": pa.array([1, 2, None], pa.int64()),
            "name": pa.array(["plain", 'é \u00e8 \u4e2d "quoted" \\ \n', None], pa.string()),
            "f": pa.array([0.1, float("nan"), -1e300], pa.float64()),
            "d": pa.array([None, 12345678901234567890, -1], pa.decimal128(38, 4)),
            "at": pa.array([0, 1_700_000_000_000_000, None], pa.timestamp("us", tz="UTC")),
            "raw": pa.array([b"\x00\xff", None, b""], pa.binary()),
        }
    )


@pytest.mark.parametrize("loader_settings", [ONE_LANE], indirect=True)
async def test_a_kept_answer_is_replied_byte_for_byte_as_the_computed_one(
    loader: LoaderState, extractor: Extractor, query: Query, nats_settings: NatsSettings, tenant_id: str
) -> None:
    await extractor.sync(extractor.target("mixed"), [mixed()])
    subject = loader.runtime.topology.warehouse_query
    sql = "SELECT *, n * 1.5 AS half, name || '✓' AS marked FROM mixed ORDER BY n NULLS LAST"
    request = RunQuery(tenant_id=tenant_id, sql=sql, max_rows=10).model_dump_json().encode()
    nc = await nats.connect(nats_settings.url)
    try:
        computed = (await nc.request(subject, request, timeout=30)).data
        async with loader.handlers.lanes.enter(tenant_id):  # the tenant's only lane is taken: only a kept answer
            kept = (await nc.request(subject, request, timeout=30)).data
            with pytest.raises(Unavailable, match="LANE_PER_TENANT"):
                await query(f"{sql} LIMIT 2")  # asked for the first time: it needs the lane
    finally:
        await nc.drain()

    assert b'"error":null' in computed
    assert "✓".encode() in computed
    assert kept == computed


@contextmanager
def python_calls() -> Iterator[list[int]]:
    """Count the Python function calls made in the block (C functions are not counted)."""
    counted = [0]

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            counted[0] += 1

    sys.setprofile(profile)
    try:
        yield counted
    finally:
        sys.setprofile(None)


async def test_a_kept_answer_is_replied_without_a_span_or_a_model_when_nothing_exports_spans(
    loader: LoaderState, tenant_id: str
) -> None:
    assert isinstance(loader.warehouse, LocalLakehouse)
    assert not loader.runtime.requests.traced  # the test settings export no spans
    reply = encoded(loader.handlers.query)
    request = RunQuery(tenant_id=tenant_id, sql="SELECT 1 AS one")
    first = await reply(request, True)
    await reply(request, True)  # kept now; this first hit also makes the metric's `cached` series

    with python_calls() as counted:
        again = await reply(request, True)

    assert again == first
    assert counted[0] <= KEPT_REPLY_CALLS, f"{counted[0]} Python calls to reply a kept answer"
