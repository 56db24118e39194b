"""One-time pages where the user types a source's password into the browser, never into the conversation.

connect_postgres without a password asks the client for MCP URL-mode elicitation: the client shows the
user a link to a page of the edge's own HTTP app. The link's path holds a random token (256 bits) that

    opens one page only     bound to the tenant and the source address of the call that made it
    expires                 after `password_page_seconds`; an expired, used or unknown token is a 404
    works once              the first submission consumes it, a second one finds nothing

The submitted password goes from the browser's POST to the waiting tool call in memory, and from there
the normal way (checked by the extractor, stored by the catalog): it never passes the client, the
model or the audit log. Pending pages live in the serving process, so the pages are offered only when
the edge runs one HTTP process (`processes = 1`, the default); otherwise the tool asks for
`password_ref`.

The client is asked the 2026-07-28 way: the tool returns an `InputRequiredResult` carrying the URL
elicitation (mode `url`); the client shows the link, and calls the tool again with its answer and the
elicitation id echoed in `request_state`; that call waits for the submission, then registers. A
handshake-era client would need a back-channel, which the stateless HTTP edge does not have: it is
told to pass `password_ref`.
"""

from __future__ import annotations

import asyncio
import html
import secrets
import time
import uuid
from dataclasses import dataclass, field

from lakegate.common.contracts.sources import SourceAddress
from lakegate.common.errors import InvalidInput, Unavailable
from mcp.server.mcpserver import Context
from mcp_types import (
    ClientCapabilities,
    ElicitRequest,
    ElicitRequestURLParams,
    ElicitResult,
    InputRequiredResult,
)
from mcp_types.version import is_version_at_least
from pydantic import SecretStr, ValidationError
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
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",  # never sent elsewhere; "no-referrer" would make the form's Origin "null"
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
}


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
        a = self.address
        return f"{a.user}@{a.host}:{a.port}/{a.database}"


class PasswordPages:
    """The pending pages of this edge process, and the HTTP route that serves them."""

    def __init__(self, lifetime_seconds: float, public_base: str | None = None) -> None:
        self._lifetime = lifetime_seconds
        #: The edge's root as browsers reach it (from `public_url`); else the host the MCP request came to.
        self.public_base = public_base
        self._by_token: dict[str, PasswordPage] = {}
        # Submitted pages wait here, by elicitation id, for the repeated call that collects the password.
        self._used: dict[str, PasswordPage] = {}
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """How many tool calls are waiting for their page to be submitted right now."""
        return self._waiting

    def open(self, tenant_id: str, address: SourceAddress) -> PasswordPage:
        """A new page for this tenant and address."""
        self._forget_expired()
        page = PasswordPage(
            token=secrets.token_urlsafe(32),
            elicitation_id=f"pw_{uuid.uuid4().hex}",
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

    async def wait(self, page: PasswordPage, timeout: float) -> SecretStr:
        """The password once the page is submitted; an error when it is not within `timeout`."""
        remaining = max(0.0, min(timeout, page.expires_at - time.monotonic()))
        self._waiting += 1
        try:
            return await asyncio.wait_for(asyncio.shield(page.submitted), remaining)
        except TimeoutError:
            self.close(page)
            raise Unavailable(
                f"the password page for {page.target} was not submitted in time: call connect_postgres again for a "
                "new link, or pass password_ref"
            ) from None
        finally:
            self._waiting -= 1
            if page.submitted.done():
                self.close(page)

    def routes(self) -> list[Route]:
        """The GET (form) and POST (submission) routes of the pages."""
        return [Route(PAGE_PATH, self._serve, methods=["GET", "POST"])]

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for page in [p for p in (*self._by_token.values(), *self._used.values()) if p.expires_at <= now]:
            self.close(page)

    async def _serve(self, request: Request) -> Response:
        self._forget_expired()
        page = self._by_token.get(request.path_params["token"])
        if page is None:
            return _page(
                "Link expired",
                "<p>This link has expired or was already used. Ask your assistant to call connect_postgres again "
                "for a new one.</p>",
                404,
            )
        if request.method == "GET":
            return _page("Enter the password", _form(page))
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            return _page("Refused", "<p>The form must be sent from this page itself.</p>", 403)
        form = await request.form()
        password = form.get("password")
        if not isinstance(password, str) or not password or len(password) > MAX_PASSWORD_CHARS:
            return _page(
                "Enter the password", f"<p>Type the password (1-{MAX_PASSWORD_CHARS} characters).</p>{_form(page)}", 400
            )
        del self._by_token[page.token]  # single use: the link is dead from here on
        self._used[page.elicitation_id] = page
        if not page.submitted.done():
            page.submitted.set_result(SecretStr(password))
        return _page(
            "Password received",
            f"<p id='done'>lakegate received the password for <b>{html.escape(page.target)}</b>. "
            "You can close this page and return to your assistant.</p>",
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
        page = pages.find(ctx.request_state or "", tenant_id, address)
        if page is None:
            raise InvalidInput(
                "the password page of this call has expired or was already used, so nothing was registered: call "
                "connect_postgres again for a new page, or pass password_ref"
            )
        _accepted(answer, page, pages)
        return await pages.wait(page, timeout)
    # A handshake-era client could be asked on a back-channel, but this edge's HTTP is stateless (no
    # back-channel) and stdio serves no pages: such a client passes password_ref instead.
    raise InvalidInput(_NO_BACK_CHANNEL)


def _params(page: PasswordPage, base: str) -> ElicitRequestURLParams:
    return ElicitRequestURLParams(
        message=f"Open this one-time page to type the password of {page.target}; it goes to lakegate, not the chat.",
        url=base.rstrip("/") + PAGE_PATH.format(token=page.token),
        elicitation_id=page.elicitation_id,
    )


def _accepted(answer: object, page: PasswordPage, pages: PasswordPages) -> None:
    try:
        result = (
            answer
            if isinstance(answer, ElicitResult)
            else ElicitResult.model_validate(
                answer.model_dump(mode="json", by_alias=True, exclude_none=True)  # type: ignore[attr-defined]
            )
        )
    except (ValidationError, AttributeError):
        pages.close(page)
        raise InvalidInput(
            "the client answered the password page request with something that is not a result"
        ) from None
    if result.action != "accept":
        pages.close(page)
        raise InvalidInput(
            f"the password page was {_DONE[result.action]} by the user, so nothing was registered: call "
            "connect_postgres again to get a new page, or pass password_ref"
        )


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
    "this edge serves no password pages (it serves them on HTTP with one process)"
)
_NOT_DECLARED = (
    "connect_postgres needs the password, and your client does not support URL elicitation (MCP 2025-11-25), so "
    "lakegate cannot show you a page to type it into: pass password_ref (a server-side secret) or password"
)
_NO_BACK_CHANNEL = (
    "connect_postgres needs the password: this connection gives the server no way to ask the client (stateless "
    "HTTP before protocol 2026-07-28): pass password_ref or password, or use a client on protocol 2026-07-28"
)
