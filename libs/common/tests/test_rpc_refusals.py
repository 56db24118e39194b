"""A request with a NUL byte anywhere is refused by name before its handler runs, never an internal error."""

from __future__ import annotations

import pytest
from lakegate.common.contracts.rpc import Reply
from lakegate.common.contracts.sources import SourceRef
from lakegate.common.contracts.warehouse import QueryResult
from lakegate.common.errors import NotFound
from lakegate.common.rpc import answers, encoded


async def test_a_nul_byte_in_an_id_is_refused_naming_the_field_and_the_handler_never_runs() -> None:
    ran: list[SourceRef] = []

    @answers
    async def lookup(request: SourceRef) -> QueryResult:
        ran.append(request)
        return QueryResult(columns=[], rows=[], row_count=0, truncated=False)

    reply = await lookup(SourceRef(tenant_id="t1", connection_id="src_\x00abc"))
    fine = await lookup(SourceRef(tenant_id="t1", connection_id="src_abc"))

    assert reply.error is not None
    assert reply.error.code == "invalid_input"
    assert reply.error.message.startswith("connection_id contains a NUL byte")
    assert fine.error is None
    assert [request.connection_id for request in ran] == ["src_abc"]


async def test_a_nul_byte_deep_in_a_request_is_refused_with_its_path() -> None:
    @answers
    async def echo(request: QueryResult) -> QueryResult:
        return request

    reply = await echo(QueryResult(columns=[], rows=[["fine", "bad\x00"]], row_count=1, truncated=False))

    assert reply.error is not None
    assert reply.error.message.startswith("rows[0][1] contains a NUL byte")


async def test_an_encoded_handler_writes_the_same_reply_bytes_as_the_reply_envelope_for_answers_and_errors() -> None:
    @answers
    async def lookup(request: SourceRef) -> QueryResult:
        if request.connection_id == "src_gone":
            raise NotFound("source 'src_gone' not found for this tenant")
        return QueryResult(columns=[], rows=[[1, "ü", None, 2.5]], row_count=1, truncated=False)

    fast = encoded(lookup)
    for connection_id in ("src_abc", "src_gone", "src_\x00"):
        request = SourceRef(tenant_id="t1", connection_id=connection_id)
        assert await fast(request) == (await lookup(request)).model_dump_json().encode()
    gone = Reply.model_validate_json(await fast(SourceRef(tenant_id="t1", connection_id="src_gone")))
    assert gone.error is not None
    assert gone.error.code == "not_found"


def test_only_a_handler_made_with_answers_can_be_encoded() -> None:
    async def bare(request: SourceRef) -> QueryResult:
        return QueryResult(columns=[], rows=[], row_count=0, truncated=False)

    with pytest.raises(TypeError, match="not a request handler made with `answers`"):
        encoded(bare)  # type: ignore[arg-type]
