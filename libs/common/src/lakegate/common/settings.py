"""Settings every service shares; each service adds its own class with its own env prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from lakegate.common.subjects import Topology
from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _comma_list(value: object) -> object:
    # Lists come from the environment as `a,b,c`; JSON would be unfriendly for one-line settings.
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


#: A list setting written `a,b,c` in the environment.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_list)]


class NatsSettings(BaseSettings):
    """`LAKEGATE_NATS_*`: how to reach NATS, and the prefix of every subject and stream."""

    model_config = SettingsConfigDict(env_prefix="LAKEGATE_NATS_", extra="ignore")

    url: str = Field(default="nats://127.0.0.1:4222", description="Comma-separated NATS server URLs.")
    prefix: str = Field(default="lakegate", pattern=r"^[a-z][a-z0-9_]*$", description="Prefix of subjects and streams.")
    user: str | None = Field(
        default=None, description="The service's own NATS user (lakegate.common.nats_users); none: connect anonymously."
    )
    password: SecretStr | None = Field(default=None, description="The password of `user`.")
    password_file: Path | None = Field(
        default=None,
        description=(
            "A file holding the password of `user` (a mounted secret, or the local stack's keys/nats/<user>.password)."
        ),
    )
    request_timeout: float = Field(default=15.0, gt=0, description="Seconds to wait for a request/reply answer.")

    @model_validator(mode="after")
    def _read_password_file(self) -> NatsSettings:
        if self.password is None and self.password_file is not None:
            try:
                self.password = SecretStr(self.password_file.read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise ValueError(
                    f"LAKEGATE_NATS_PASSWORD_FILE={self.password_file} cannot be read ({exc.strerror}): "
                    "point it at the file that holds the NATS password of LAKEGATE_NATS_USER"
                ) from None
        if self.password is not None and not self.user:
            raise ValueError("LAKEGATE_NATS_PASSWORD is set but LAKEGATE_NATS_USER is not: set the user it belongs to")
        return self

    @property
    def topology(self) -> Topology:
        return Topology(self.prefix)

    @property
    def servers(self) -> list[str]:
        return [u.strip() for u in self.url.split(",") if u.strip()]


class TelemetrySettings(BaseSettings):
    """`LAKEGATE_OTEL_*`: where traces go (and the standard `OTEL_EXPORTER_OTLP_ENDPOINT`).

    `auto` (the default) exports by OTLP/HTTP when an endpoint is configured and to nothing when
    not; `file` writes one JSON line per finished span (tests, or a quick look without a collector).
    """

    model_config = SettingsConfigDict(env_prefix="LAKEGATE_OTEL_", extra="ignore", populate_by_name=True)

    exporter: Literal["auto", "none", "console", "otlp", "file"] = "auto"
    endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("LAKEGATE_OTEL_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT", "endpoint"),
        description="OTLP/HTTP endpoint, e.g. http://collector:4318 (`/v1/traces` is added).",
    )
    file: str | None = Field(
        default=None,
        description="With exporter `file`: the JSON-lines file of finished spans; `{service}` is replaced by the "
        "service's name, e.g. /var/log/lakegate/{service}.spans.jsonl.",
    )

    @property
    def chosen(self) -> Literal["none", "console", "otlp", "file"]:
        """The exporter in effect once `auto` is resolved."""
        if self.exporter == "auto":
            return "otlp" if self.endpoint else "none"
        return self.exporter


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set `env_prefix`, e.g. `LAKEGATE_CATALOG_`."""

    model_config = SettingsConfigDict(extra="ignore")

    nats: NatsSettings = Field(default_factory=NatsSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`json`: one JSON object per line with the trace, run and tenant ids (for a log pipeline).",
    )
    health_host: str = "127.0.0.1"
    health_port: int | None = Field(default=None, description="Serve /healthz and /readyz here when set.")
    # Fair concurrency (`lakegate.common.lanes`): many requests at once, bounded per tenant and per source.
    request_workers: int = Field(
        default=64, ge=1, description="Requests one replica handles at the same time, per request subject."
    )
    lane_per_tenant: int = Field(default=4, ge=1, description="Requests of one tenant that run at the same time.")
    lane_per_source: int = Field(
        default=2, ge=1, description="Requests on one source database that run at the same time."
    )
    lane_waiting: int = Field(
        default=16,
        ge=0,
        description="Requests of one tenant (or on one source) that may wait for a place; more are refused at once.",
    )
    ack_wait_seconds: float = Field(
        default=30.0,
        gt=0,
        description="JetStream redelivers a message its worker has not acknowledged (or kept in progress) "
        "for this long; workers heartbeat at a third of it.",
    )
