"""A cancelled query_sql tells the loader to stop it: a CancelCall for the call id its request carried."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from lakegate.common.contracts.rpc import CancelCall
from lakegate.edge.app import EdgeState
from mcp import Client
from nats.aio.msg import Msg

if TYPE_CHECKING:
    from conftest import Fakes


async def test_a_query_whose_tool_call_the_client_cancels_is_cancelled_at_the_loader(
    edge: EdgeState, fakes: Fakes
) -> None:
    nats = edge.runtime.broker.connection
    heard: asyncio.Queue[CancelCall] = asyncio.Queue()

    async def on_cancel(msg: Msg) -> None:
        heard.put_nowait(CancelCall.model_validate_json(msg.data))

    watch = await nats.subscribe(edge.runtime.topology.call_cancel("*"), cb=on_cancel)
    try:
        async with Client(edge.server) as client:
            call = asyncio.create_task(client.call_tool("query_sql", {"sql": "SELECT slow FROM shop_orders"}))
            await asyncio.wait_for(fakes.loader.running.wait(), 10)
            call.cancel()  # the client sends notifications/cancelled
            cancel = await asyncio.wait_for(heard.get(), 10)
            fakes.loader.release.set()
            quick = await client.call_tool("query_sql", {"sql": "SELECT id FROM shop_orders"})
    finally:
        await watch.unsubscribe()

    [slow_request, quick_request] = fakes.loader.queries
    assert slow_request.call_id is not None
    assert cancel.call_id == slow_request.call_id
    assert quick_request.call_id not in (None, slow_request.call_id)
    assert quick.structured_content is not None
    assert quick.structured_content["row_count"] == 2
