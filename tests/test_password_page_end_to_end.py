"""The whole stack, with the password typed into the edge's one-time page in headless Chromium: the
source is registered with it, checked and synced by the real extractor, and no NATS message, tool
result or page the model could read carries it."""

from __future__ import annotations

import json

import nats
from lakegate.devstack.stack import Stack
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitRequestURLParams, ElicitResult, ErrorData
from nats.aio.msg import Msg

from tests.conftest import Source
from tests.mcp_calls import call
from tests.sources import create_orders_table
from tests.spellings import spellings


async def test_a_password_typed_into_the_one_time_page_registers_and_syncs_a_source_and_never_travels_in_clear(
    stack: Stack, source: Source, unique: str, browser: object
) -> None:
    from playwright.async_api import Browser

    assert isinstance(browser, Browser)
    await create_orders_table(source.admin_dsn, rows=200)
    captured: list[tuple[str, bytes]] = []
    pages: list[str] = []

    async def capture(msg: Msg) -> None:
        captured.append((msg.subject, msg.data + b"\n" + json.dumps(msg.headers or {}).encode()))

    async def user(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult | ErrorData:
        if not isinstance(params, ElicitRequestURLParams):
            return ErrorData(code=-1, message="only the password page is expected")
        page = await browser.new_page()
        await page.goto(params.url)
        pages.append(await page.content())
        await page.fill("#password", source.password)
        await page.click("#submit")
        await page.wait_for_selector("#done")
        pages.append(await page.content())
        await page.close()
        return ElicitResult(action="accept")

    arguments = {key: value for key, value in source.connect_arguments(f"typed{unique}").items() if key != "password"}
    watcher = await nats.connect(stack.urls.nats, **stack.nats_credentials("admin"))
    try:
        await watcher.subscribe(">", cb=capture)
        await watcher.flush()
        async with Client(stack.urls.mcp, elicitation_callback=user) as client:
            result = await client.call_tool("connect_postgres", arguments)
            assert not result.is_error, result.content
            connection = result.structured_content
            assert connection is not None
            ref = {"connection_id": connection["connection_id"]}
            checked = await call(client, "test_connection", ref)
            run = await call(client, "sync_table_to_bronze", {**ref, "table_name": "orders"})
        await watcher.flush()
    finally:
        await watcher.drain()

    assert checked["connection_id"] == connection["connection_id"]
    assert run["status"] == "succeeded", run
    assert len(pages) == 2, "the page was shown and submitted once"
    assert any(subject.endswith("rpc.catalog.sources.register") for subject, _ in captured)
    readable = [json.dumps(result.model_dump(mode="json")).encode(), *(page.encode() for page in pages)]
    for form in spellings(source.password):
        assert not [subject for subject, data in captured if form in data], "a NATS message carried the password"
        assert not [text for text in readable if form in text], "a tool result or page carried the password"
