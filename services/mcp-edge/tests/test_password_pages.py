"""connect_postgres without a password: the user types it into a one-time page of the edge (MCP URL-mode
elicitation), so it never passes through the client or the model.

The first test drives the page in headless Chromium (Playwright over the system's `chromium`; it is
skipped, saying so, where none is installed). The others drive the page with a real HTTP client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal

import httpx2 as httpx
import nats
import pytest
from lakegate.common.contracts.sources import SourceAddress
from lakegate.common.errors import InvalidInput
from lakegate.common.sealing import Unsealer, new_private_key, public_key_of
from lakegate.devstack.toolresults import error_text, structured
from lakegate.edge import password_pages
from lakegate.edge.app import EdgeState, serve
from lakegate.edge.config import EdgeSettings
from lakegate.edge.password_pages import ELICITATION_KEY, PasswordPages, PasswordSeal
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.types import (
    CallToolResult,
    ElicitRequestParams,
    ElicitRequestURLParams,
    ElicitResult,
    ErrorData,
    InputRequiredResult,
)
from nats.aio.msg import Msg
from pydantic import SecretStr

from .conftest import Fakes
from .processes import EdgeProcess, serving

TYPED = "typed-in-the-Browser-7"
ADDRESS = {"host": "db.internal", "database": "shop", "user": "reader"}
User = Callable[[ElicitRequestURLParams], Awaitable[ElicitResult]]


@pytest.fixture
def sealing_key() -> str:
    return new_private_key()


@pytest.fixture
def edge_settings(edge_settings: EdgeSettings, sealing_key: str) -> EdgeSettings:
    return edge_settings.model_copy(update={"seal_public_key": public_key_of(sealing_key)})


def as_client(user: User) -> Callable[[ClientRequestContext, ElicitRequestParams], Awaitable[ElicitResult | ErrorData]]:
    """An elicitation callback that hands URL elicitations to `user`."""

    async def callback(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult | ErrorData:
        if not isinstance(params, ElicitRequestURLParams):
            return ErrorData(code=-1, message="only URL elicitations are expected here")
        return await user(params)

    return callback


async def connect(edge_url: str, user: User, name: str = "shop") -> CallToolResult:
    async with Client(edge_url, elicitation_callback=as_client(user)) as client:
        return await client.call_tool("connect_postgres", {"name": name, **ADDRESS})


def typed_password(fakes: Fakes, sealing_key: str, tenant_id: str) -> str:
    """The password the extractor received to check, opened with its private key."""
    [checked] = fakes.extractor.checked
    sealed = checked.login.sealed_password
    assert sealed is not None
    assert TYPED not in sealed
    address = SourceAddress(**ADDRESS)
    return Unsealer([sealing_key]).open(sealed, tenant_id=tenant_id, address=address, source="shop").get_secret_value()


async def test_without_a_password_the_user_types_it_into_a_one_time_page_in_headless_chromium(
    edge_url: str, fakes: Fakes, sealing_key: str, tenant_id: str, browser: object
) -> None:
    from playwright.async_api import Browser

    assert isinstance(browser, Browser)
    shown: list[str] = []

    async def user(params: ElicitRequestURLParams) -> ElicitResult:
        shown.append(params.url)
        page = await browser.new_page()
        await page.goto(params.url)
        assert "reader@db.internal:5432/shop" in await page.inner_text("body")
        await page.fill("#password", TYPED)
        await page.click("#submit")
        await page.wait_for_selector("#done")
        await page.goto(params.url)  # the link works once
        assert "expired or was already used" in await page.inner_text("body")
        await page.close()
        return ElicitResult(action="accept")

    result = await connect(edge_url, user)

    connection = structured(result)
    assert connection["connection_id"] in fakes.catalog.sources
    assert typed_password(fakes, sealing_key, tenant_id) == TYPED
    assert TYPED not in json.dumps(result.model_dump(mode="json"))
    [url] = shown
    assert url.startswith(edge_url.removesuffix("/mcp") + "/lakegate/password/")


async def test_the_page_refuses_other_origins_and_empty_passwords_and_works_only_once(
    edge_url: str, fakes: Fakes, sealing_key: str, tenant_id: str
) -> None:
    answers: list[int] = []

    async def user(params: ElicitRequestURLParams) -> ElicitResult:
        async with httpx.AsyncClient() as http:
            form = await http.get(params.url)
            assert form.status_code == 200
            assert form.headers["cache-control"] == "no-store"
            assert form.headers["referrer-policy"] == "same-origin"
            assert "type='password'" in form.text
            foreign = await http.post(params.url, data={"password": TYPED}, headers={"Origin": "http://evil.example"})
            empty = await http.post(params.url, data={"password": ""})
            sent = await http.post(params.url, data={"password": TYPED})
            again = await http.post(params.url, data={"password": "a second try"})
            guessed = await http.get(params.url.rsplit("/", 1)[0] + "/not-a-token")
        answers.extend(answer.status_code for answer in (foreign, empty, sent, again, guessed))
        assert TYPED not in sent.text
        return ElicitResult(action="accept")

    result = await connect(edge_url, user)

    assert answers == [403, 400, 200, 404, 404]
    structured(result)
    assert typed_password(fakes, sealing_key, tenant_id) == TYPED, "the second submission changed nothing"


async def test_a_declined_page_registers_nothing_and_its_link_stops_working(edge_url: str, fakes: Fakes) -> None:
    shown: list[str] = []

    async def user(params: ElicitRequestURLParams) -> ElicitResult:
        shown.append(params.url)
        return ElicitResult(action="decline")

    message = error_text(await connect(edge_url, user))

    assert "declined" in message
    assert "password_ref" in message
    assert fakes.extractor.checked == []
    async with httpx.AsyncClient() as http:
        assert (await http.get(shown[0])).status_code == 404


async def test_a_client_without_url_elicitation_is_told_to_pass_a_secret_reference(edge_url: str, fakes: Fakes) -> None:
    async with Client(edge_url) as client:
        message = error_text(await client.call_tool("connect_postgres", {"name": "shop", **ADDRESS}))

    assert "does not support URL elicitation" in message
    assert "password_ref" in message
    assert fakes.extractor.checked == []


async def test_a_handshake_era_client_on_stateless_http_is_told_to_pass_a_secret_reference(edge_url: str) -> None:
    async def user(params: ElicitRequestURLParams) -> ElicitResult:
        raise AssertionError("a client without a back-channel is never asked")

    async with Client(edge_url, elicitation_callback=as_client(user), mode="legacy") as client:
        message = error_text(await client.call_tool("connect_postgres", {"name": "shop", **ADDRESS}))

    assert "password_ref" in message


async def test_an_edge_on_stdio_serves_no_pages_and_says_what_to_pass(
    edge_settings: EdgeSettings, fakes: Fakes
) -> None:
    stdio = edge_settings.model_copy(update={"transport": "stdio"})
    async with serve(stdio) as state:
        await state.link.ready()
        assert state.password_pages is None
        await assert_no_pages(state)


async def assert_no_pages(state: EdgeState) -> None:
    async with Client(state.server) as client:
        message = error_text(await client.call_tool("connect_postgres", {"name": "shop", **ADDRESS}))
    assert "password_ref" in message
    assert "serves no password pages" in message


async def test_an_expired_page_is_gone_and_the_call_says_to_ask_again(
    edge_settings: EdgeSettings, fakes: Fakes
) -> None:
    brief = edge_settings.model_copy(update={"password_page_seconds": 0.001})
    statuses: list[int] = []

    async def user(params: ElicitRequestURLParams) -> ElicitResult:
        async with httpx.AsyncClient() as http:
            statuses.append((await http.post(params.url, data={"password": TYPED})).status_code)
        return ElicitResult(action="accept")

    async with process(brief) as edge:
        message = error_text(await connect(edge.url, user))

    assert statuses == [404]
    assert "call connect_postgres again" in message
    assert fakes.extractor.checked == []


async def test_behind_a_proxy_the_link_starts_with_the_edges_public_url(
    edge_settings: EdgeSettings, fakes: Fakes
) -> None:
    proxied = edge_settings.model_copy(update={"public_url": "https://lakegate.example.com/mcp"})
    shown: list[str] = []

    async def user(params: ElicitRequestURLParams) -> ElicitResult:
        shown.append(params.url)
        return ElicitResult(action="cancel")

    async with process(proxied) as edge:
        message = error_text(await connect(edge.url, user))

    [url] = shown
    assert url.startswith("https://lakegate.example.com/lakegate/password/")
    assert "cancelled by the user" in message


async def test_a_client_that_accepts_before_the_user_types_gets_its_answer_once_the_page_is_sent(
    edge: EdgeState, edge_url: str, fakes: Fakes, sealing_key: str, tenant_id: str
) -> None:
    pages = edge.password_pages
    assert pages is not None
    typing: list[asyncio.Task[int]] = []

    async def type_later(url: str) -> int:
        # The user types only once the client has answered and the repeated call waits for the page.
        async with asyncio.timeout(10):
            while pages.waiting == 0:  # noqa: ASYNC110 - a count the edge keeps, not an event it sets
                await asyncio.sleep(0.01)
        async with httpx.AsyncClient() as http:
            return (await http.post(url, data={"password": TYPED})).status_code

    async def user(params: ElicitRequestURLParams) -> ElicitResult:
        # A real client answers "accept" once the user agrees to open the link, before anything is typed.
        typing.append(asyncio.create_task(type_later(params.url)))
        return ElicitResult(action="accept")

    result = await connect(edge_url, user)

    structured(result)
    assert [await task for task in typing] == [200]
    assert pages.waiting == 0
    assert typed_password(fakes, sealing_key, tenant_id) == TYPED


# Across processes: a page made by one edge process (A), its GET and POST served by another (B), the
# repeated call that collects the password made on a third (C). They are three edges of this test process,
# each with its own NATS connection and instance id, on one NATS server under one prefix, as `processes`
# or replicas are.

CONNECT = {"name": "shop", **ADDRESS}


class Process(EdgeProcess):
    """One edge process serving HTTP, with the ways these tests visit its pages and call it."""

    @property
    def pages(self) -> PasswordPages:
        assert self.state.password_pages is not None
        return self.state.password_pages

    def link_here(self, url: str) -> str:
        """A page's link as it reaches this process (the load balancer's choice)."""
        path = url.split("/lakegate/", 1)[1]
        return self.url.removesuffix(self.state.settings.path) + "/lakegate/" + path

    def client(self) -> Client:
        """A client that declares URL elicitation and answers it by hand (`collect`)."""

        async def refuse(params: ElicitRequestURLParams) -> ElicitResult:
            raise AssertionError("these calls answer the elicitation themselves")

        return Client(self.url, elicitation_callback=as_client(refuse))

    async def connect(self) -> InputRequiredResult:
        """connect_postgres without a password, on this process: the page's input request."""
        async with self.client() as client:
            made = await client.session.call_tool("connect_postgres", CONNECT, allow_input_required=True)
        assert isinstance(made, InputRequiredResult)
        return made

    async def collect(
        self, made: InputRequiredResult, action: Literal["accept", "decline"] = "accept"
    ) -> CallToolResult:
        """The repeated call of `made`, with the client's answer, on this process."""
        async with self.client() as client:
            return await client.call_tool(
                "connect_postgres",
                CONNECT,
                input_responses={ELICITATION_KEY: ElicitResult(action=action)},
                request_state=made.request_state,
            )


def process(settings: EdgeSettings) -> contextlib.AbstractAsyncContextManager[Process]:
    return serving(settings, Process)


@pytest.fixture
async def processes(edge_settings: EdgeSettings, fakes: Fakes) -> AsyncIterator[tuple[Process, Process, Process]]:
    async with process(edge_settings) as a, process(edge_settings) as b, process(edge_settings) as c:
        yield a, b, c


async def page_link(a: Process) -> tuple[InputRequiredResult, str]:
    """A call on `a` that needs the password: its input request, and the link it shows the user."""
    made = await a.connect()
    assert made.input_requests is not None
    params = made.input_requests[ELICITATION_KEY].params
    assert isinstance(params, ElicitRequestURLParams)
    return made, params.url


async def test_a_page_made_by_one_process_is_served_by_another_and_collected_on_a_third(
    processes: tuple[Process, Process, Process], fakes: Fakes, sealing_key: str, tenant_id: str
) -> None:
    a, b, c = processes
    overheard: list[Msg] = []

    async def overhear(msg: Msg) -> None:
        overheard.append(msg)

    watcher = await nats.connect(a.state.settings.nats.servers)
    await watcher.subscribe(">", cb=overhear)
    await watcher.flush()
    made, url = await page_link(a)
    on_b = b.link_here(url)
    async with httpx.AsyncClient() as http:
        form = await http.get(on_b)
        foreign = await http.post(on_b, data={"password": TYPED}, headers={"Origin": "http://evil.example"})
        empty = await http.post(on_b, data={"password": ""})
        sent = await http.post(on_b, data={"password": TYPED}, headers={"Origin": on_b.split("/lakegate/")[0]})
        again = await http.post(on_b, data={"password": "a second try"})
        guessed = await http.get(on_b.rsplit(".", 1)[0] + ".not-the-secret")
        local = await http.get(url)  # on its owner, A, the used page is gone too

    assert [r.status_code for r in (form, foreign, empty, sent, again, guessed, local)] == [
        200,
        403,
        400,
        200,
        404,
        404,
        404,
    ]
    assert "reader@db.internal:5432/shop" in form.text
    assert form.headers["content-security-policy"].startswith("default-src 'none'")
    assert {k: form.headers[k] for k in ("cache-control", "referrer-policy", "x-frame-options")} == {
        "cache-control": "no-store",
        "referrer-policy": "same-origin",
        "x-frame-options": "DENY",
    }
    assert TYPED not in sent.text
    structured(await c.collect(made))
    assert typed_password(fakes, sealing_key, tenant_id) == TYPED
    second = error_text(await c.collect(made))
    assert "expired or was already used" in second, "a second wait finds nothing"
    await watcher.drain()
    topology = a.state.settings.nats.topology
    handed = {topology.edge_peer(a.pages.instance, verb) for verb in ("pagevisit", "pagewait")}
    assert len([m for m in overheard if m.subject in handed]) == 8, "six visits and two waits were handed"
    assert not [m.subject for m in overheard if TYPED.encode() in m.data], "the password crossed NATS in clear"


async def test_a_password_sealed_by_an_edge_with_another_secret_does_not_open() -> None:
    ours, theirs = (PasswordSeal(SecretStr(secrets.token_urlsafe(32))) for _ in range(2))
    sealed = theirs.seal(SecretStr(TYPED), bound_to="pw_1")

    with pytest.raises(InvalidInput, match="LAKEGATE_EDGE_SHARED_SECRET"):
        ours.open(sealed, bound_to="pw_1")
    with pytest.raises(InvalidInput):
        theirs.open(sealed, bound_to="pw_2")
    assert theirs.open(sealed, bound_to="pw_1").get_secret_value() == TYPED


async def test_a_call_waiting_on_another_process_gets_the_password_once_the_page_is_sent_there(
    processes: tuple[Process, Process, Process], fakes: Fakes, sealing_key: str, tenant_id: str
) -> None:
    a, b, c = processes
    made, url = await page_link(a)
    collecting = asyncio.create_task(c.collect(made))
    async with asyncio.timeout(10):
        while a.pages.waiting == 0:  # noqa: ASYNC110 - a count the edge keeps, not an event it sets
            await asyncio.sleep(0.01)
    async with httpx.AsyncClient() as http:
        assert (await http.post(b.link_here(url), data={"password": TYPED})).status_code == 200

    structured(await collecting)
    assert typed_password(fakes, sealing_key, tenant_id) == TYPED
    assert a.pages.waiting == 0


async def test_another_tenant_cannot_collect_a_page_and_a_declined_one_stops_working_everywhere(
    processes: tuple[Process, Process, Process], edge_settings: EdgeSettings, fakes: Fakes
) -> None:
    a, b, c = processes
    made, url = await page_link(a)
    async with process(edge_settings.model_copy(update={"default_tenant": "someone_else"})) as other:
        refused = error_text(await other.collect(made))
    declined = error_text(await c.collect(made, "decline"))
    async with httpx.AsyncClient() as http:
        gone = await http.get(b.link_here(url))

    assert "expired or was already used" in refused
    assert "declined" in declined
    assert gone.status_code == 404
    assert fakes.extractor.checked == []


async def test_a_page_of_another_process_expires_and_the_waiting_call_says_to_ask_again(
    edge_settings: EdgeSettings, fakes: Fakes
) -> None:
    brief = edge_settings.model_copy(update={"password_page_seconds": 0.5})
    async with process(brief) as a, process(brief) as b:
        made, url = await page_link(a)
        message = error_text(await b.collect(made))
        async with httpx.AsyncClient() as http:
            gone = await http.get(b.link_here(url))

    assert "not submitted in time" in message
    assert "call connect_postgres again" in message
    assert gone.status_code == 404
    assert fakes.extractor.checked == []


async def test_when_the_process_that_made_a_page_is_gone_its_link_is_a_404_and_the_call_says_to_ask_again(
    edge_settings: EdgeSettings, fakes: Fakes
) -> None:
    async with process(edge_settings) as b:
        async with process(edge_settings) as a:
            made, url = await page_link(a)
        # Nobody answers for a stopped owner: NATS says so at once, and the asker tries again for ~3 s
        # (as for any request, in case a responder is restarting) before it answers the 404.
        async with httpx.AsyncClient(timeout=30) as http:
            gone = await http.get(b.link_here(url))
        message = error_text(await b.collect(made))

    assert gone.status_code == 404
    assert "expired or was already used" in gone.text
    assert "has stopped" in message
    assert "call connect_postgres again" in message


async def test_a_call_waiting_on_a_process_that_stops_meanwhile_is_told_so_within_one_turn(
    edge_settings: EdgeSettings, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(password_pages, "WAIT_TURN_SECONDS", 0.5)  # the turn the asker waits at most for the owner
    async with process(edge_settings) as b:
        async with process(edge_settings) as a:
            made, _ = await page_link(a)
            collecting = asyncio.create_task(b.collect(made))
            async with asyncio.timeout(10):
                while a.pages.waiting == 0:  # noqa: ASYNC110 - a count the edge keeps, not an event it sets
                    await asyncio.sleep(0.01)
        async with asyncio.timeout(30):  # the page would have waited for 600 s
            message = error_text(await collecting)

    assert "has stopped" in message
    assert fakes.extractor.checked == []
