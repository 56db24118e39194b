"""One-time pages where the user types a source's password into the browser, never into the conversation.

connect_postgres without a password asks the client for MCP URL-mode elicitation: the client shows the
user a link to a page of the edge's own HTTP app. The link's path holds a token that

    opens one page only     bound to the tenant and the source address of the call that made it
    expires                 after `password_page_seconds`; an expired, used or unknown token is a 404
    works once              the first submission consumes it, a second one finds nothing

The submitted password goes from the browser's POST to the waiting tool call, and from there the normal
way (sealed for the extractor, which checks it; stored by the catalog): it never passes the client, the
model or the audit log.

Any number of edge processes, on one port (`processes`) or as replicas behind a load balancer, serve
the pages, though a page lives in the memory of the process that made it (its owner). The page's GET,
its form's POST and the repeated tool call that collects the password may each come to another
process, so each process has an instance id (random, 64 bits, made at start) that names its page
subjects, and

    the token               is `<instance>.<secret>` (the secret: 256 random bits, as before), and the
                            elicitation id `pw_<instance>_<random>`, so any process knows the owner
    a GET or POST           of another's page is handed to the owner over NATS request/reply
                            (`Topology.edge_peer(instance, "pagevisit")`): the token, the method, the
                            typed password (sealed), the Origin and the origin the request came to. The owner
                            decides exactly as for its own request and answers the status and the
                            page's HTML; the asker sends it with the pages' own security headers
    a repeated call         for another's page asks the owner (`"pagewait"`) to wait for the submission, in
                            turns of at most `WAIT_TURN_SECONDS` (never past the page's expiry); the
                            owner answers the password once submitted, and forgets the page, so a
                            second wait finds nothing
    an owner that is gone   (stopped, killed) has no responder: its link is a 404, and a repeated call
                            fails saying to call connect_postgres again, at once or after one turn

A page of the process itself costs no NATS round trip. The pages' subjects are under the deployment's
prefix, and only the edge's NATS user may publish or subscribe to them (`<prefix>.edges.*.*` in
`lakegate.common.nats_users`), so the typed password crosses NATS only between edge processes of one
deployment, and only sealed (`PasswordSeal`, under the `shared_secret` every process and replica has):
no NATS message, log line, span or error carries it in clear. The same secret keys the SDK's seal of the
`request_state` the repeated call echoes, which the process it comes to must open.

The client is asked the 2026-07-28 way: the tool returns an `InputRequiredResult` carrying the URL
elicitation (mode `url`); the client shows the link, and calls the tool again with its answer and the
elicitation id echoed in `request_state`; that call waits for the submission, then registers. A
handshake-era client would need a back-channel, which the stateless HTTP edge does not have: it is
told to pass `password_ref`.
"""

from __future__ import annotations

import asyncio
import base64
import html
import os
import re
import secrets
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from lakegate.common.contracts.sources import SourceAddress
from lakegate.common.errors import InvalidInput, Unavailable
from lakegate.common.rpc import answers
from lakegate.common.service import Runtime
from lakegate.edge.nats_link import NatsLink
from lakegate.edge.peers import WAIT_TURN_SECONDS, OwnerGone, ask_owner
from mcp.server.mcpserver import Context
from mcp_types import (
    ClientCapabilities,
    ElicitRequest,
    ElicitRequestURLParams,
    ElicitResult,
    InputRequiredResult,
)
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field, SecretStr, ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

#: Where the pages are served, below the edge's HTTP root.
PAGE_PATH = "/lakegate/password/{token}"
#: The key of the URL elicitation in `input_requests` / `input_responses`.
ELICITATION_KEY = "lakegate.password"
INPUT_REQUIRED_REVISION = "2026-07-28"
#: Longest password a page accepts, in characters.
MAX_PASSWORD_CHARS = 4096
#: Page requests (GET, POST) and waits an owner handles at once; a wait holds its worker for a turn.
VISITS_AT_ONCE = 16
WAITS_AT_ONCE = 256
_A = TypeVar("_A", bound=BaseModel)
_SEAL_INFO = b"lakegate edge password page hand-off v1"
_NONCE_BYTES = 12
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",  # never sent elsewhere; "no-referrer" would make the form's Origin "null"
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
}
#: An instance id (`secrets.token_hex(8)`); anything else in a token or elicitation id names no owner.
_INSTANCE = re.compile(r"[0-9a-f]{16}")
_ELICITATION = re.compile(r"pw_([0-9a-f]{16})_[0-9a-f]{32}")
#: The verbs of the owner's subjects, `Topology.edge_peer(owner, verb)`: a page's GET or POST, a call's wait.
_Verb = Literal["pagevisit", "pagewait"]


@dataclass
class PasswordPage:
    """One pending page: whom it is for, until when, and the password once submitted."""

    token: str
    elicitation_id: str
    tenant_id: str
    address: SourceAddress
    expires_at: float
    submitted: asyncio.Future[SecretStr] = field(repr=False)

    @property
    def target(self) -> str:
        return _target(self.address)


class PageVisit(BaseModel):
    """A GET or POST of a page, as the process it came to hands it to the page's owner."""

    token: str = Field(description="The token of the page's path.")
    method: Literal["GET", "POST"]
    origin: str | None = Field(description="The request's Origin header, if it had one.")
    own_origin: str = Field(description="The scheme and host the request came to: a form of the page itself has it.")
    sealed_password: str | None = Field(
        default=None,
        description="POST: the typed password when it is one to take (1 to MAX_PASSWORD_CHARS), sealed for the "
        "edge's processes and bound to the token.",
    )


class PageAnswer(BaseModel):
    """What the owner answers a visit with: the status and the page, sent with the pages' own headers."""

    status: int
    title: str
    body: str = Field(description="The page's HTML body, escaped where it shows the page's source.")


#: What the client answered the elicitation with, on the user's behalf.
Action = Literal["accept", "decline", "cancel"]


class PasswordWait(BaseModel):
    """A repeated call's request to the page's owner: the password once the page is submitted."""

    elicitation_id: str
    tenant_id: str
    address: SourceAddress
    action: Action = Field(description="The client's answer: anything but accept closes the page.")
    seconds: float = Field(gt=0, description="Longest the owner waits before it answers that nothing came yet.")


class PasswordCollected(BaseModel):
    """The owner's answer to a wait: the password, or None when the page was not submitted within the wait."""

    sealed_password: str | None = Field(
        description="The submitted password, sealed for the edge's processes and bound to the elicitation id."
    )


class PasswordSeal:
    """Seals a typed password that one edge process hands another, under the secret all of them share.

    AES-256-GCM with a random nonce under a key derived (HKDF-SHA256) from `shared_secret`, the
    password bound to the token or elicitation id it travels for, so a seal copied into another
    message opens to an error.
    """

    def __init__(self, shared_secret: SecretStr) -> None:
        key = HKDF(hashes.SHA256(), 32, salt=None, info=_SEAL_INFO).derive(shared_secret.get_secret_value().encode())
        self._aead = AESGCM(key)

    def seal(self, password: SecretStr, *, bound_to: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, password.get_secret_value().encode(), bound_to.encode())
        return base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, *, bound_to: str) -> SecretStr:
        try:
            raw = base64.urlsafe_b64decode(sealed)
            opened = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], bound_to.encode())
        except (InvalidTag, ValueError):
            raise InvalidInput(
                "a password handed between edge processes did not open: every process and replica of the edge "
                "needs the same LAKEGATE_EDGE_SHARED_SECRET"
            ) from None
        return SecretStr(opened.decode())


_GONE = PageAnswer(
    status=404,
    title="Link expired",
    body="<p>This link has expired or was already used. Ask your assistant to call connect_postgres again for a "
    "new one.</p>",
)
_NOT_NOW = PageAnswer(
    status=503,
    title="Try again",
    body="<p>lakegate cannot reach the part of it that holds this page right now. Reload the page in a moment.</p>",
)
_EXPIRED_OR_USED = (
    "the password page of this call has expired or was already used, so nothing was registered: call "
    "connect_postgres again for a new page, or pass password_ref"
)


class PasswordPages:
    """The pending pages of this edge process, the HTTP route that serves anyone's, and its answers to the others."""

    def __init__(
        self, rt: Runtime, link: NatsLink, lifetime_seconds: float, shared_secret: SecretStr, public_base: str | None
    ) -> None:
        self._lifetime = lifetime_seconds
        self._rt, self._link = rt, link
        self._seal = PasswordSeal(shared_secret)
        #: The edge's root as browsers reach it (from `public_url`); else the host the MCP request came to.
        self.public_base = public_base
        self.instance = link.instance
        self._by_token: dict[str, PasswordPage] = {}
        # Submitted pages wait here, by elicitation id, for the repeated call that collects the password.
        self._used: dict[str, PasswordPage] = {}
        self._waiting = 0
        visits, waits = (rt.topology.edge_peer(self.instance, verb) for verb in ("pagevisit", "pagewait"))
        rt.requests.answer(visits, self._answer_visit, queue=visits, workers=VISITS_AT_ONCE)
        rt.requests.answer(waits, self._answer_wait, queue=waits, workers=WAITS_AT_ONCE)

    @property
    def waiting(self) -> int:
        """How many calls (this process's own, or another's on its behalf) wait for one of its pages right now."""
        return self._waiting

    def open(self, tenant_id: str, address: SourceAddress) -> PasswordPage:
        """A new page for this tenant and address."""
        self._forget_expired()
        page = PasswordPage(
            token=f"{self.instance}.{secrets.token_urlsafe(32)}",
            elicitation_id=f"pw_{self.instance}_{uuid.uuid4().hex}",
            tenant_id=tenant_id,
            address=address,
            expires_at=time.monotonic() + self._lifetime,
            submitted=asyncio.get_running_loop().create_future(),
        )
        self._by_token[page.token] = page
        return page

    def find(self, elicitation_id: str, tenant_id: str, address: SourceAddress) -> PasswordPage | None:
        """The pending page a repeated call names, if it is this tenant's and for the same address."""
        self._forget_expired()
        for page in (*self._by_token.values(), *self._used.values()):
            if page.elicitation_id == elicitation_id and page.tenant_id == tenant_id and page.address == address:
                return page
        return None

    def close(self, page: PasswordPage) -> None:
        """Forget `page`: its link stops working."""
        self._by_token.pop(page.token, None)
        self._used.pop(page.elicitation_id, None)
        if not page.submitted.done():
            page.submitted.cancel()

    async def collect(
        self, elicitation_id: str, tenant_id: str, address: SourceAddress, action: Action, timeout: float
    ) -> SecretStr:
        """The password of the page a repeated call names, once submitted within `timeout`; whichever
        process made the page. An error when it was declined, used, or not submitted in time."""
        owner = _elicitation_owner(elicitation_id) or self.instance
        if owner == self.instance:
            turn = PasswordWait(
                elicitation_id=elicitation_id, tenant_id=tenant_id, address=address, action=action, seconds=timeout
            )
            password = await self._turn(turn)
            if password is None:
                raise _not_in_time(address)
            return password
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            turn = PasswordWait(
                elicitation_id=elicitation_id,
                tenant_id=tenant_id,
                address=address,
                action=action,
                seconds=min(left, WAIT_TURN_SECONDS),
            )
            try:
                collected = await self._ask(owner, "pagewait", turn, PasswordCollected, turn.seconds)
            except OwnerGone:
                raise InvalidInput(
                    "the edge process that made this call's password page has stopped, so the page is gone and "
                    "nothing was registered: call connect_postgres again for a new page, or pass password_ref"
                ) from None
            if collected.sealed_password is not None:
                return self._seal.open(collected.sealed_password, bound_to=elicitation_id)
        raise _not_in_time(address)

    def routes(self) -> list[Route]:
        """The GET (form) and POST (submission) routes of the pages."""
        return [Route(PAGE_PATH, self._serve, methods=["GET", "POST"])]

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for page in [p for p in (*self._by_token.values(), *self._used.values()) if p.expires_at <= now]:
            self.close(page)

    async def _turn(self, turn: PasswordWait) -> SecretStr | None:
        """One wait for one of this process's pages: the password once submitted, then the page is forgotten;
        None when `turn.seconds` pass first while the page lives on. An error when the page is not the
        caller's to wait for, the client did not accept, or the page expired unsubmitted (it is closed)."""
        page = self.find(turn.elicitation_id, turn.tenant_id, turn.address)
        if page is None:
            raise InvalidInput(_EXPIRED_OR_USED)
        if turn.action != "accept":
            self.close(page)
            raise InvalidInput(
                f"the password page was {_DONE[turn.action]} by the user, so nothing was registered: call "
                "connect_postgres again to get a new page, or pass password_ref"
            )
        remaining = max(0.0, min(turn.seconds, page.expires_at - time.monotonic()))
        self._waiting += 1
        try:
            return await asyncio.wait_for(asyncio.shield(page.submitted), remaining)
        except TimeoutError:
            if page.expires_at <= time.monotonic():
                self.close(page)
                raise _not_in_time(page.address) from None
            return None
        finally:
            self._waiting -= 1
            if page.submitted.done():
                self.close(page)

    async def _serve(self, request: Request) -> Response:
        token = request.path_params["token"]
        password = await _typed_password(request) if request.method == "POST" else None
        visit = PageVisit(
            token=token,
            method="POST" if request.method == "POST" else "GET",
            origin=request.headers.get("origin"),
            own_origin=f"{request.url.scheme}://{request.url.netloc}",
        )
        owner = _token_owner(token)
        if owner == self.instance:
            answer = self._visit(visit, password)
        elif owner is None:
            answer = _GONE
        else:
            if password is not None:
                visit.sealed_password = self._seal.seal(password, bound_to=token)
            try:
                answer = await self._ask(owner, "pagevisit", visit, PageAnswer)
            except OwnerGone:
                answer = _GONE
            except Unavailable:
                answer = _NOT_NOW
        return _page(answer.title, answer.body, answer.status)

    def _visit(self, visit: PageVisit, password: SecretStr | None) -> PageAnswer:
        """What one of this process's pages answers a GET or POST with, whichever process it came to."""
        self._forget_expired()
        page = self._by_token.get(visit.token)
        if page is None:
            return _GONE
        if visit.method == "GET":
            return PageAnswer(status=200, title="Enter the password", body=_form(page))
        if visit.origin is not None and visit.origin != visit.own_origin:
            return PageAnswer(status=403, title="Refused", body="<p>The form must be sent from this page itself.</p>")
        if password is None:
            return PageAnswer(
                status=400,
                title="Enter the password",
                body=f"<p>Type the password (1-{MAX_PASSWORD_CHARS} characters).</p>{_form(page)}",
            )
        del self._by_token[page.token]  # single use: the link is dead from here on
        self._used[page.elicitation_id] = page
        if not page.submitted.done():
            page.submitted.set_result(password)
        return PageAnswer(
            status=200,
            title="Password received",
            body=f"<p id='done'>lakegate received the password for <b>{html.escape(page.target)}</b>. "
            "You can close this page and return to your assistant.</p>",
        )

    @answers
    async def _answer_visit(self, visit: PageVisit) -> PageAnswer:
        sealed = visit.sealed_password
        return self._visit(visit, None if sealed is None else self._seal.open(sealed, bound_to=visit.token))

    @answers
    async def _answer_wait(self, turn: PasswordWait) -> PasswordCollected:
        password = await self._turn(turn)
        sealed = None if password is None else self._seal.seal(password, bound_to=turn.elicitation_id)
        return PasswordCollected(sealed_password=sealed)

    def _ask(self, owner: str, verb: _Verb, request: BaseModel, answer: type[_A], wait: float = 0.0) -> Awaitable[_A]:
        """The owner's answer; `OwnerGone` when no process answers for `owner` (it has stopped)."""
        subject = self._rt.topology.edge_peer(owner, verb)
        return ask_owner(self._rt, self._link, subject, request, answer, wait=wait, holds="this password page")


def _token_owner(token: str) -> str | None:
    """The instance id a page's token names, None when it names none."""
    instance, dot, _ = token.partition(".")
    return instance if dot and _INSTANCE.fullmatch(instance) else None


def _elicitation_owner(elicitation_id: str) -> str | None:
    """The instance id an elicitation id names, None when it names none."""
    match = _ELICITATION.fullmatch(elicitation_id)
    return None if match is None else match.group(1)


async def _typed_password(request: Request) -> SecretStr | None:
    """The form's password when it is one a page takes (1 to MAX_PASSWORD_CHARS characters), else None."""
    password = (await request.form()).get("password")
    if not isinstance(password, str) or not password or len(password) > MAX_PASSWORD_CHARS:
        return None
    return SecretStr(password)


def _target(address: SourceAddress) -> str:
    return f"{address.user}@{address.host}:{address.port}/{address.database}"


def _not_in_time(address: SourceAddress) -> Unavailable:
    return Unavailable(
        f"the password page for {_target(address)} was not submitted in time: call connect_postgres again for a "
        "new link, or pass password_ref"
    )


def _form(page: PasswordPage) -> str:
    return (
        f"<p>lakegate needs the password of <b>{html.escape(page.target)}</b> to register it as a source. "
        "It goes straight to lakegate, not to your assistant.</p>"
        "<form method='post'><label>Password <input type='password' name='password' id='password' required "
        f"maxlength='{MAX_PASSWORD_CHARS}' autocomplete='off' autofocus></label> "
        "<button type='submit' id='submit'>Send</button></form>"
    )


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='robots' content='noindex'>"
        f"<title>lakegate: {html.escape(title)}</title><style>body{{font-family:sans-serif;max-width:36em;"
        f"margin:3em auto}}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(document, status, headers=_HEADERS)


async def ask_password(
    ctx: Context, pages: PasswordPages | None, tenant_id: str, address: SourceAddress, *, timeout: float
) -> SecretStr | InputRequiredResult:
    """The password the user types into a one-time page; an `InputRequiredResult` must be returned as it is."""
    base = _base_url(ctx) if pages is None or pages.public_base is None else pages.public_base
    if pages is None or base is None:
        raise InvalidInput(_NO_PAGES.format(tenant=tenant_id.upper()))
    if _asks_by_input_required(ctx):
        capabilities = ctx.client_capabilities
        if not _declares_url(capabilities):
            raise InvalidInput(_NOT_DECLARED)
        answer = (ctx.input_responses or {}).get(ELICITATION_KEY)
        if answer is None:
            new = pages.open(tenant_id, address)
            request = ElicitRequest(params=_params(new, base))
            return InputRequiredResult(input_requests={ELICITATION_KEY: request}, request_state=new.elicitation_id)
        return await pages.collect(ctx.request_state or "", tenant_id, address, _action(answer), timeout)
    # A handshake-era client could be asked on a back-channel, but this edge's HTTP is stateless (no
    # back-channel) and stdio serves no pages: such a client passes password_ref instead.
    raise InvalidInput(_NO_BACK_CHANNEL)


def _params(page: PasswordPage, base: str) -> ElicitRequestURLParams:
    return ElicitRequestURLParams(
        message=f"Open this one-time page to type the password of {page.target}; it goes to lakegate, not the chat.",
        url=base.rstrip("/") + PAGE_PATH.format(token=page.token),
        elicitation_id=page.elicitation_id,
    )


def _action(answer: object) -> Action:
    """What the client answered the elicitation with; an error when it is not an elicitation result."""
    try:
        result = (
            answer
            if isinstance(answer, ElicitResult)
            else ElicitResult.model_validate(
                answer.model_dump(mode="json", by_alias=True, exclude_none=True)  # type: ignore[attr-defined]
            )
        )
    except (ValidationError, AttributeError):
        raise InvalidInput(
            "the client answered the password page request with something that is not a result"
        ) from None
    return result.action


_DONE = {"decline": "declined", "cancel": "cancelled", "accept": "accepted"}


def _declares_url(capabilities: ClientCapabilities | None) -> bool:
    return (
        capabilities is not None and capabilities.elicitation is not None and capabilities.elicitation.url is not None
    )


def _asks_by_input_required(ctx: Context) -> bool:
    version = ctx.protocol_version
    return version is not None and is_version_at_least(version, INPUT_REQUIRED_REVISION)


def _base_url(ctx: Context) -> str | None:
    request = ctx.request_context.request
    return str(request.base_url) if isinstance(request, Request) else None


_NO_PAGES = (
    "connect_postgres needs the password: pass password_ref (e.g. `env:LAKEGATE_SECRET_{tenant}_SHOP`), or password; "
    "this edge serves no password pages (it serves them on HTTP only)"
)
_NOT_DECLARED = (
    "connect_postgres needs the password, and your client does not support URL elicitation (MCP 2025-11-25), so "
    "lakegate cannot show you a page to type it into: pass password_ref (a server-side secret) or password"
)
_NO_BACK_CHANNEL = (
    "connect_postgres needs the password: this connection gives the server no way to ask the client (stateless "
    "HTTP before protocol 2026-07-28): pass password_ref or password, or use a client on protocol 2026-07-28"
)
