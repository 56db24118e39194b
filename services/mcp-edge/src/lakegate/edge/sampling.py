"""Asking the client's own model through MCP sampling: lakegate holds no model key.

How the question travels depends on the protocol revision the client speaks:

    2026-07-28 and later   the tool returns an `InputRequiredResult` carrying one sampling request;
                           the client asks its model and calls the tool again with the answer
                           (and the question's digest echoed in `request_state`)
    handshake era          a `sampling/createMessage` request on the call's back-channel

No answer is an outcome, not an error: a client that did not declare `sampling`, a connection
without a back-channel (stateless HTTP in the handshake era), a refusal or a timeout each give a
`NoAnswer` whose reason the tool reports next to the context it gathered.

The handshake-era request is sent with `session.send_request(CreateMessageRequest(...))`, the same
request `session.create_message(...)` sends: in mcp 2.3 `create_message` is marked deprecated and
warns on every call, which this project's `filterwarnings = error` would turn into a failure.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import (
    ClientCapabilities,
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    InputRequiredResult,
    InputResponse,
    SamplingCapability,
    SamplingMessage,
    TextContent,
)
from mcp_types.version import is_version_at_least
from pydantic import ValidationError

#: The key of lakegate's sampling request in `input_requests` / `input_responses`.
ANSWER_KEY = "lakegate.sampling"
#: The first revision that carries sampling inside `InputRequiredResult` instead of a back-channel request.
INPUT_REQUIRED_REVISION = "2026-07-28"


@dataclass(frozen=True)
class Question:
    """What the client's model is asked: a system prompt and one user message."""

    system: str
    text: str
    max_tokens: int

    @property
    def digest(self) -> str:
        """Identifies the question, so an answer counts only for the exact question it answers."""
        material = f"{self.max_tokens}\n{self.system}\n{self.text}".encode()
        return hashlib.sha256(material).hexdigest()

    def request(self) -> CreateMessageRequest:
        """The `sampling/createMessage` request for this question."""
        message = SamplingMessage(role="user", content=TextContent(type="text", text=self.text))
        return CreateMessageRequest(
            params=CreateMessageRequestParams(
                messages=[message], system_prompt=self.system, max_tokens=self.max_tokens, temperature=0.2
            )
        )


@dataclass(frozen=True)
class Answer:
    """The client's model answered."""

    text: str
    model: str


@dataclass(frozen=True)
class NoAnswer:
    """No model answered, and why."""

    reason: str


async def ask_client_model(
    ctx: Context, question: Question, *, timeout: float
) -> Answer | NoAnswer | InputRequiredResult:
    """Ask the client's model; an `InputRequiredResult` must be returned from the tool as it is."""
    if _asks_by_input_required(ctx):
        capabilities = ctx.client_capabilities
        if capabilities is None or capabilities.sampling is None:
            return NoAnswer(_NOT_DECLARED)
        answer = (ctx.input_responses or {}).get(ANSWER_KEY)
        if answer is not None and ctx.request_state == question.digest:
            return _read(answer)
        return InputRequiredResult(input_requests={ANSWER_KEY: question.request()}, request_state=question.digest)
    session = ctx.session
    if session.client_capabilities is None or not session.can_send_request:
        return NoAnswer(_NO_BACK_CHANNEL)
    if not session.check_client_capability(ClientCapabilities(sampling=SamplingCapability())):
        return NoAnswer(_NOT_DECLARED)
    try:
        result = await session.send_request(
            question.request(),
            CreateMessageResult,
            request_read_timeout_seconds=timeout,
            metadata=ServerMessageMetadata(related_request_id=ctx.request_id),
        )
    except MCPError as exc:
        return NoAnswer(f"the client did not sample: {exc.error.message}")
    except ValidationError:
        return NoAnswer("the client answered the sampling request with something that is not a message")
    return _read(result)


_NOT_DECLARED = "the client did not declare the MCP sampling capability"
_NO_BACK_CHANNEL = (
    "this connection gives the server no way to ask the client (stateless HTTP before protocol 2026-07-28); "
    "a client on protocol 2026-07-28, or on stdio, can be asked"
)


def _asks_by_input_required(ctx: Context) -> bool:
    version = ctx.protocol_version
    return version is not None and is_version_at_least(version, INPUT_REQUIRED_REVISION)


def _read(answer: InputResponse | CreateMessageResult) -> Answer | NoAnswer:
    try:
        result = (
            answer
            if isinstance(answer, CreateMessageResult)
            else CreateMessageResult.model_validate(answer.model_dump(mode="json", by_alias=True, exclude_none=True))
        )
    except ValidationError:
        return NoAnswer("the client answered the sampling request with something that is not a message")
    blocks = result.content if isinstance(result.content, list) else [result.content]
    text = "\n".join(block.text for block in blocks if isinstance(block, TextContent)).strip()
    if not text:
        return NoAnswer(f"the client's model ({result.model}) answered without any text")
    return Answer(text=text, model=result.model)
