"""Who may say what on NATS: one user per service, each with only the subjects it uses.

Every deployment (the local stack, docker-compose, Kubernetes, the test harness) renders its
nats-server `authorization` block from here, so the permissions are written once:

- the **edge** is the only user that may publish the requests a client's tool call turns into
  (every `<prefix>.rpc.*` subject except the credentials one), and the audit command; its processes
  alone ask and tell each other (`<prefix>.edges.>`: password pages, tasks, rate limits), so only
  edges see a typed password;
- the **extractor** may ask the catalog for exactly two things: a source's credentials and a run's
  state; the **catalog** may ask the extractor to describe a table (a schedule checks its table);
- workers publish only their own run steps, progress and commands, and consume only their own
  streams through the JetStream API of those streams;
- each user reads replies on an inbox of its own (`_INBOX_<user>.>`), so no client can read the
  catalog's answers to another; request handlers answer through `allow_responses`;
- a **tenant subscriber** sees only `<prefix>.events.<tenant>.>`, live or through its own durable
  consumer (docs/events.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from lakegate.common.subjects import StreamSpec, Topology

#: The services, each with a NATS user of the same name.
SERVICE_USERS: tuple[str, ...] = ("catalog", "extractor", "loader", "edge")

#: Requests a service other than the edge sends, by sender: the only tenant-scoped requests not from the edge.
INTERNAL_REQUESTS: Mapping[str, tuple[str, ...]] = {
    "extractor": ("sources_credentials", "runs_get"),
    "catalog": ("source_table_describe",),
}


def inbox_prefix(user: str | None) -> str:
    """The reply inbox of a user, which nobody else may subscribe to (`_INBOX` for an anonymous client)."""
    return f"_INBOX_{user}" if user else "_INBOX"


@dataclass(frozen=True)
class Permissions:
    """What one NATS user may publish and subscribe to."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    #: May publish to the reply subject of a request it received (a request handler's answer).
    responds: bool = False

    def config(self) -> dict[str, object]:
        rules: dict[str, object] = {
            "publish": {"allow": list(self.publish)},
            "subscribe": {"allow": list(self.subscribe)},
        }
        if self.responds:
            rules["allow_responses"] = {"max": 1, "expires": "5m"}
        return rules


def request_subjects(topology: Topology) -> dict[str, str]:
    """Every request/reply subject, by the name of its `Topology` property."""
    return {
        name: value
        for name in dir(Topology)
        if isinstance(getattr(Topology, name), property)
        and isinstance(value := getattr(topology, name), str)
        and value.startswith(f"{topology.prefix}.rpc.")
    }


def _streams_api(topology: Topology) -> list[str]:
    """Making sure the streams exist: every service does it at start (`ensure_streams`)."""
    api = ["$JS.API.INFO"]
    for spec in topology.streams:
        api += [f"$JS.API.STREAM.{verb}.{spec.name}" for verb in ("INFO", "CREATE", "UPDATE")]
    return api


def _consumes(stream: StreamSpec) -> list[str]:
    """The JetStream API of consumers on one stream, and acknowledging its messages."""
    name = stream.name
    return [
        f"$JS.API.CONSUMER.CREATE.{name}",
        f"$JS.API.CONSUMER.CREATE.{name}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{name}.>",
        f"$JS.API.CONSUMER.INFO.{name}.>",
        f"$JS.API.CONSUMER.MSG.NEXT.{name}.>",
        f"$JS.API.CONSUMER.DELETE.{name}.>",
        f"$JS.ACK.{name}.>",
    ]


def service_permissions(topology: Topology, service: str) -> Permissions:
    """The permissions of one service's user."""
    t = topology
    p = t.prefix
    requests = request_subjects(t)
    asks = [requests[name] for name in INTERNAL_REQUESTS.get(service, ())]
    inbox = f"{inbox_prefix(service)}.>"
    base = _streams_api(t)
    if service == "edge":
        client_facing = sorted(v for k, v in requests.items() if k != "sources_credentials")
        # Its processes ask or tell each other, one or all (`Topology.edge_peer`): what one holds for a client
        # (a password page, a task), admitted calls.
        peers = f"{p}.edges.*.*"
        return Permissions(
            publish=(*base, *client_facing, t.cmd_audit, f"{p}.callcancel.*", peers),
            subscribe=(inbox, f"{p}.run.*.*", f"{p}.progress.*", f"{p}.cancel.*", t.sync_events(), peers),
            responds=True,
        )
    if service == "catalog":
        return Permissions(
            publish=(
                *base,
                *asks,
                *_consumes(t.cmd_stream),
                *_consumes(t.run_stream),
                t.cmd_extract,
                f"{p}.cancel.*",
                t.sync_events(),
            ),
            subscribe=(inbox, f"{p}.rpc.catalog.>"),
            responds=True,
        )
    if service == "extractor":
        return Permissions(
            publish=(
                *base,
                *asks,
                *_consumes(t.cmd_stream),
                *_consumes(t.run_stream),
                f"$JS.API.STREAM.MSG.GET.{t.run_stream.name}",
                f"$JS.API.DIRECT.GET.{t.run_stream.name}",
                f"$JS.API.DIRECT.GET.{t.run_stream.name}.>",
                f"$JS.API.STREAM.PURGE.{t.stage_stream.name}",
                t.cmd_extract_range,
                f"{p}.run.*.*",
                f"{p}.progress.*",
                f"{p}.stage.>",
            ),
            subscribe=(inbox, f"{p}.rpc.extractor.>", f"{p}.cancel.*", f"{p}.callcancel.*"),
            responds=True,
        )
    if service == "loader":
        return Permissions(
            publish=(
                *base,
                *_consumes(t.run_stream),
                *_consumes(t.stage_stream),
                # An `extracted` run looks up its `streaming` step: whether a load is already following its parts.
                f"$JS.API.STREAM.MSG.GET.{t.run_stream.name}",
                f"$JS.API.DIRECT.GET.{t.run_stream.name}",
                f"$JS.API.DIRECT.GET.{t.run_stream.name}.>",
                f"$JS.API.STREAM.PURGE.{t.stage_stream.name}",
                t.cmd_record_dataset,
                f"{p}.run.*.*",
                f"{p}.progress.*",
            ),
            subscribe=(inbox, f"{p}.rpc.loader.>", f"{p}.cancel.*", f"{p}.callcancel.*"),
            responds=True,
        )
    raise ValueError(f"no NATS user for service {service!r}: use one of {', '.join(SERVICE_USERS)}")


def tenant_subscriber_permissions(topology: Topology, tenant_id: str, durable: str | None = None) -> Permissions:
    """One tenant's public events only: live, and through its own durable consumer (docs/events.md)."""
    stream, events = topology.events_stream.name, f"{topology.prefix}.events.{tenant_id}.>"
    durable = durable or f"{tenant_id}_events"
    return Permissions(
        publish=(
            f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.{events}",
            f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
            f"$JS.API.CONSUMER.DELETE.{stream}.{durable}",
            f"$JS.ACK.{stream}.{durable}.>",
        ),
        subscribe=(f"{inbox_prefix(tenant_subscriber(tenant_id))}.>", events),
    )


def tenant_subscriber(tenant_id: str) -> str:
    """The NATS user name of a tenant's events subscriber."""
    return f"{tenant_id}_events"


@dataclass(frozen=True)
class NatsUser:
    """A user of the rendered configuration; `password` may be a `$VARIABLE` nats-server reads from its environment."""

    name: str
    password: str
    permissions: Permissions | None = None  # None: everything (an operator's or a test's user)


@dataclass(frozen=True)
class NatsUsers:
    """The users of one deployment, rendered as a nats-server `authorization` block."""

    users: Sequence[NatsUser] = field(default_factory=tuple)

    def render(self) -> str:
        lines = ["authorization {", "  users: ["]
        for user in self.users:
            entry: dict[str, object] = {"user": user.name}
            password = user.password if user.password.startswith("$") else json.dumps(user.password)
            if user.permissions is not None:
                entry["permissions"] = user.permissions.config()
            body = json.dumps(entry)[1:-1]
            lines.append(f"    {{{body}, password: {password}}}")
        lines += ["  ]", "}"]
        return "\n".join(lines) + "\n"


def deployment_users(
    topology: Topology,
    passwords: Mapping[str, str],
    *,
    tenants: Iterable[str] = (),
) -> NatsUsers:
    """Every service's user, a tenant subscriber per tenant, and `admin` (all subjects) when it has a password."""
    users = [NatsUser(name, passwords[name], service_permissions(topology, name)) for name in SERVICE_USERS]
    for tenant in tenants:
        name = tenant_subscriber(tenant)
        users.append(NatsUser(name, passwords[name], tenant_subscriber_permissions(topology, tenant)))
    if "admin" in passwords:
        users.append(NatsUser("admin", passwords["admin"]))
    return NatsUsers(tuple(users))
