"""Over-long tool calls answered as tool errors, not as the SDK's bare HTTP 413.

The SDK's body limit answers a POST past `max_request_bytes` with `413 Request body too large`,
which an MCP client reports as "Server returned an error response": the model cannot tell which
argument to shrink. `OversizeCalls` sits in front of that limit (and behind authentication). It
buffers the body up to the limit, as the limit itself does; past it, when the first bytes show a
`tools/call` with its id (clients write `id` and `method` before `params`), it answers that call
with a tool error result that names the tool, the size and the limit. Anything else past the
limit (no id in sight, another method) still gets the SDK's 413.
"""

from __future__ import annotations

import re

from mcp.types import CallToolResult, TextContent
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_PREFIX_BYTES = 4096
_ID = re.compile(rb'"id"\s*:\s*("(?:[^"\\]|\\.){0,200}"|-?\d{1,20})')
_TOOLS_CALL = re.compile(rb'"method"\s*:\s*"tools/call"')
_NAME = re.compile(rb'"name"\s*:\s*"([A-Za-z0-9_]{1,64})"')


class OversizeCalls:
    """Answer a tool call whose body is past `limit` bytes with a tool error the model can act on."""

    def __init__(self, app: ASGIApp, limit: int, max_upload_bytes: int) -> None:
        self._app, self._limit, self._max_upload = app, limit, max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self._app(scope, receive, send)
            return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self._limit:
                prefix = b"".join(m.get("body", b"") for m in buffered)[:_PREFIX_BYTES]
                if await self._answer(prefix, size, send):
                    return
                break
            if not message.get("more_body", False):
                break
        await self._app(scope, _replay(buffered, receive), send)

    async def _answer(self, prefix: bytes, size: int, send: Send) -> bool:
        found = _ID.search(prefix)
        if found is None or _TOOLS_CALL.search(prefix) is None:
            return False
        name = _NAME.search(prefix)
        tool = name.group(1).decode() if name else "the tool"
        text = f"the call to {tool} is over {size} bytes, more than the {self._limit} bytes one call may carry; " + (
            f"upload_file's file_content must decode to at most {self._max_upload / 1_048_576:.1f} MiB: split "
            "the file, save it as compressed Parquet, or load it into PostgreSQL and use sync_table_to_bronze"
            if tool == "upload_file"
            else "send shorter arguments"
        )
        body = (
            b'{"jsonrpc":"2.0","id":'
            + found.group(1)
            + b',"result":'
            + CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
            .model_dump_json(by_alias=True, exclude_none=True)
            .encode()
            + b"}"
        )
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True


def _replay(buffered: list[Message], receive: Receive) -> Receive:
    pending = list(buffered)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
