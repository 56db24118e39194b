"""`LAKEGATE_EDGE_*`: how the MCP edge listens and how long its tools wait."""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import Literal

from lakegate.common.errors import InvalidInput
from lakegate.common.names import check_tenant_id
from lakegate.common.settings import CommaList, ServiceSettings
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

LOOPBACK_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")
LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses, the only hosts served without authentication."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class EdgeSettings(ServiceSettings):
    """Settings of the MCP edge, read once at start."""

    model_config = SettingsConfigDict(env_prefix="LAKEGATE_EDGE_", extra="ignore")

    transport: Literal["http", "stdio"] = Field(
        default="http", description="`http` serves streamable HTTP; `stdio` talks MCP on stdin/stdout."
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP transport binds to.")
    port: int = Field(default=8085, ge=0, le=65535, description="Port of the HTTP transport (0 picks a free one).")
    path: str = Field(default="/mcp", pattern=r"^/", description="URL path of the MCP endpoint.")
    default_tenant: str = Field(
        default="default", description="Tenant of callers without an access token (stdio, loopback HTTP)."
    )
    sync_wait_seconds: float = Field(
        default=120.0,
        ge=0,
        description="How long sync_table_to_bronze waits for a run to finish before returning a run handle.",
    )
    sync_max_tables: int = Field(
        default=100,
        ge=1,
        description="Most tables one sync_table_to_bronze call starts runs for (a schema with more is refused).",
    )
    source_timeout_seconds: float = Field(
        default=60.0, gt=0, description="How long to wait for the extractor to reach a source database."
    )
    query_timeout_seconds: float = Field(
        default=120.0, gt=0, description="How long query_sql waits for the loader's answer."
    )
    transform_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long transform_to_silver, create_gold_view and upload_file wait for the loader.",
    )
    sampling_timeout_seconds: float = Field(
        default=120.0, gt=0, description="How long an AI-assisted tool waits for the client's model to answer."
    )
    answer_max_bytes: int = Field(
        default=900 * 1024,
        ge=16 * 1024,
        description=(
            "Largest answer of query_sql, query_source and preview_table, in bytes of JSON. Longer results are cut "
            "and say `truncated` with how to page. Keep it under 1 MiB: the official MCP client refuses larger "
            "server-sent events."
        ),
    )
    password_page_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long a one-time password page of connect_postgres stays open, and the call waits for it.",
    )
    shared_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_urlsafe(32)),
        min_length=32,
        description=(
            "A secret (32+ characters) all processes and replicas of this edge share: it seals the MCP request state "
            "a repeated call echoes (such as the password page it collects) and a typed password one edge process "
            "hands another. Unset: made at start, so the processes of `processes` share it; replicas behind one "
            "address need the same one set."
        ),
    )
    max_upload_bytes: int = Field(
        default=6 * 1024 * 1024,
        gt=0,
        description=(
            "Largest file upload_file accepts, decoded. Its base64 travels in one NATS message, so it must stay "
            "below about three quarters of the NATS max_payload."
        ),
    )
    audit_queue_size: int = Field(
        default=1000, ge=1, description="Audit records waiting to be published before new ones are dropped (logged)."
    )
    allowed_origins: CommaList = Field(
        default_factory=lambda: list(LOOPBACK_ORIGINS),
        description="Browser origins allowed to call the HTTP endpoint (comma-separated; `:*` matches any port).",
    )
    allowed_hosts: CommaList = Field(
        default_factory=list,
        description="Host header values accepted besides loopback ones, e.g. `lakegate.example.com:*`.",
    )
    allow_anonymous_remote: bool = Field(
        default=False,
        description=(
            "Serve HTTP on a non-loopback address without authentication; every caller then acts as "
            "default_tenant. Only behind a proxy that authenticates callers."
        ),
    )
    shutdown_grace_seconds: float = Field(
        default=30.0, ge=0, description="How long open HTTP requests may finish after a stop signal."
    )
    tokens_file: Path | None = Field(
        default=None,
        description="JSON file of hashed static API tokens (`python -m lakegate.devstack token create`); "
        "set, every HTTP caller needs a bearer token.",
    )
    oauth_issuer: str | None = Field(
        default=None,
        description="Issuer (`iss`) of the bearer JWTs the edge accepts, its authorization server; set, every "
        "HTTP caller needs a bearer token.",
    )
    oauth_audience: str | None = Field(
        default=None, description="Audience (`aud`) a JWT must name; default: public_url (RFC 8707)."
    )
    oauth_jwks_url: str | None = Field(default=None, description="Where the issuer publishes its signing keys.")
    oauth_public_key: str | None = Field(
        default=None, description="The issuer's public key as PEM text or the path of a PEM file, instead of a JWKS."
    )
    oauth_shared_secret: SecretStr | None = Field(
        default=None, description="A shared HMAC secret (HS256) instead of a public key; for tests and small setups."
    )
    oauth_algorithms: CommaList = Field(
        default_factory=lambda: ["RS256", "ES256", "PS256", "EdDSA"],
        description="JWT signature algorithms accepted (comma-separated); HS256 when a shared secret is set.",
    )
    public_url: str | None = Field(
        default=None,
        description="The MCP endpoint's URL as clients reach it (the OAuth resource identifier); default "
        "http://<host>:<port><path>.",
    )

    seal_public_key: str | None = Field(
        default=None,
        description="The extractor's sealing public key: connect_postgres seals each password with it, so no NATS "
        "subscriber (not even the catalog) reads one. `python -m lakegate.devstack seal-key` prints a pair.",
    )
    seal_public_key_file: Path | None = Field(
        default=None,
        description="File holding the extractor's sealing public key, read at start; used when seal_public_key is "
        "unset (`seal-key <private> --public <file>` writes it).",
    )

    processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "HTTP serving processes sharing the port (SO_REUSEPORT), each with its own NATS connection; "
            "one is enough below ~1,000 calls/s, about one per free core serves the most."
        ),
    )
    direct_tool_calls: bool = Field(
        default=True,
        description=(
            "Serve a plain tools/call answered as JSON without the SDK's runner and tool manager (the same "
            "middleware, validation and answers, precompiled per tool: direct_calls.py); false serves every "
            "call through the SDK."
        ),
    )
    fast_http: bool = Field(
        default=True,
        description=(
            "Answer a plain direct tools/call in the HTTP protocol itself, without uvicorn's request cycle and the "
            "ASGI layers (the same checks, authentication and answer bytes: fast_calls.py); needs direct_tool_calls, "
            "and is off while the access log is on. false: every request goes through uvicorn and ASGI."
        ),
    )
    access_log: bool = Field(default=False, description="Log one line per HTTP request (uvicorn's access log).")
    rate_limit_per_second: float = Field(
        default=100.0,
        ge=0,
        description="Tool calls per second each tenant may make on average, over all edge processes and replicas (a "
        "token bucket per tenant in each process, kept in step: ratelimits.py); a call past it is refused with "
        "retry_after. 0 turns the limit off.",
    )
    rate_limit_burst: int = Field(
        default=1000, ge=1, description="Tool calls a tenant may make at once before its rate limit applies."
    )
    rate_limit_report_seconds: float = Field(
        default=0.05,
        gt=0,
        le=10,
        description="How often each edge process tells the others how many tool calls it admitted per tenant, so "
        "that the rate limit holds for the whole edge; the edge admits at most what the others admitted within "
        "one such interval past the limit.",
    )

    @field_validator("default_tenant")
    @classmethod
    def _tenant_is_a_slug(cls, value: str) -> str:
        try:
            return check_tenant_id(value)
        except InvalidInput as exc:
            raise ValueError(f"LAKEGATE_EDGE_DEFAULT_TENANT: {exc}") from exc

    @model_validator(mode="after")
    def _remote_needs_authentication(self) -> EdgeSettings:
        if (
            self.transport == "http"
            and not is_loopback(self.host)
            and not self.authenticates
            and not self.allow_anonymous_remote
        ):
            raise ValueError(
                f"LAKEGATE_EDGE_HOST={self.host} would let anyone who can reach it act as tenant "
                f"{self.default_tenant!r}. Set LAKEGATE_EDGE_TOKENS_FILE (static API tokens) or "
                "LAKEGATE_EDGE_OAUTH_ISSUER (bearer JWTs), bind to 127.0.0.1, or set "
                "LAKEGATE_EDGE_ALLOW_ANONYMOUS_REMOTE=true when a proxy in front of the edge authenticates callers."
            )
        return self

    @model_validator(mode="after")
    def _issuer_needs_one_key(self) -> EdgeSettings:
        keys = [
            name
            for name, value in (
                ("LAKEGATE_EDGE_OAUTH_JWKS_URL", self.oauth_jwks_url),
                ("LAKEGATE_EDGE_OAUTH_PUBLIC_KEY", self.oauth_public_key),
                ("LAKEGATE_EDGE_OAUTH_SHARED_SECRET", self.oauth_shared_secret),
            )
            if value
        ]
        if self.oauth_issuer is not None and len(keys) != 1:
            raise ValueError(
                "LAKEGATE_EDGE_OAUTH_ISSUER needs exactly one way to check signatures: set one of "
                f"LAKEGATE_EDGE_OAUTH_JWKS_URL, LAKEGATE_EDGE_OAUTH_PUBLIC_KEY or LAKEGATE_EDGE_OAUTH_SHARED_SECRET"
                f"{' (set now: ' + ', '.join(keys) + ')' if keys else ''}"
            )
        if self.oauth_issuer is None and keys:
            raise ValueError(f"{keys[0]} is set but LAKEGATE_EDGE_OAUTH_ISSUER is not: set the issuer too")
        if self.tokens_file is not None and not self.tokens_file.is_file():
            raise ValueError(
                f"LAKEGATE_EDGE_TOKENS_FILE={self.tokens_file} does not exist: mint a token with "
                "`python -m lakegate.devstack token create`, or unset the setting"
            )
        if self.oauth_shared_secret is not None and "HS256" not in self.oauth_algorithms:
            self.oauth_algorithms = ["HS256"]
        return self

    @property
    def authenticates(self) -> bool:
        """Whether HTTP callers must show a bearer token."""
        return self.tokens_file is not None or self.oauth_issuer is not None

    @property
    def resource_url(self) -> str:
        """The MCP endpoint's public URL: the OAuth resource identifier and default JWT audience."""
        if self.public_url:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"

    @property
    def max_request_bytes(self) -> int:
        """Largest HTTP request body: an upload's base64 plus room for the JSON-RPC envelope."""
        return max(4 * 1024 * 1024, (self.max_upload_bytes + 2) // 3 * 4 + 64 * 1024)

    @property
    def trusted_hosts(self) -> list[str]:
        """Host header values the HTTP transport accepts (a guard against DNS rebinding)."""
        wildcard = self.host in ("0.0.0.0", "::")
        own = [] if wildcard else [f"[{self.host}]:*" if ":" in self.host else f"{self.host}:*"]
        return list(dict.fromkeys([*LOOPBACK_HOSTS, *own, *self.allowed_hosts]))
