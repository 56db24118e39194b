"""Where a source may point: never at lakegate's own infrastructure, and not at private networks unless allowed.

Every connection to a source (asyncpg sessions and the ADBC reader alike) first resolves the
source's host here and then connects to the address this module returned, not to the name, so a
DNS answer that changes after the check cannot send the connection elsewhere. Refused, in order:

    a host that is a path ('/…', a unix socket directory)        always
    an address:port of the deployment (catalog database, NATS,
    the edge, LAKEGATE_EXTRACTOR_INFRASTRUCTURE)                  always
    loopback, link-local, private, unspecified (0.0.0.0, ::),
    multicast and reserved addresses                              unless LAKEGATE_EXTRACTOR_ALLOW_PRIVATE_SOURCES

A name that resolves to several addresses is refused when any of them is refused, so which one a
connection would pick does not matter; the first accepted address is the one connected to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from lakegate.common.contracts.sources import SourceAddress
from lakegate.common.errors import InvalidInput, PermissionDenied, SourceError
from lakegate.extractor.config import ExtractorSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ALLOW_SETTING = "LAKEGATE_EXTRACTOR_ALLOW_PRIVATE_SOURCES"
INFRASTRUCTURE_SETTING = "LAKEGATE_EXTRACTOR_INFRASTRUCTURE"


@dataclass(frozen=True)
class Endpoint:
    """One host:port of the deployment itself."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """`host:port`, `[v6]:port` or a URL such as `nats://host:4222`."""
        parts = urlsplit(text if "//" in text else f"//{text}")
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"{text!r} is not host:port")
        return cls(parts.hostname, parts.port)


def infrastructure(settings: ExtractorSettings) -> list[Endpoint]:
    """The deployment's own endpoints: the configured ones and the NATS servers the extractor uses."""
    return [*(Endpoint.parse(item) for item in settings.infrastructure), *map(Endpoint.parse, settings.nats.servers)]


def _private_kind(ip: IPAddress) -> str | None:
    if ip.is_unspecified:
        return "an unspecified address (it means this machine)"
    if ip.is_loopback:
        return "a loopback address (this machine)"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private-network address"
    if ip.is_reserved:
        return "a reserved address"
    return None


def _local(ip: IPAddress) -> bool:
    return ip.is_loopback or ip.is_unspecified


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise SourceError(f"could not resolve host '{host}': check the host name") from exc
    except UnicodeError as exc:  # the IDNA codec refuses a label over 63 characters before any lookup
        raise InvalidInput(
            f"host {host[:80]!r} is not a host name: each dot-separated part is at most 63 characters"
        ) from exc
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip not in addresses:
            addresses.append(ip)
    return addresses


async def _endpoint_addresses(endpoints: Iterable[Endpoint]) -> list[tuple[IPAddress, int, Endpoint]]:
    known: list[tuple[IPAddress, int, Endpoint]] = []
    for endpoint in endpoints:
        try:
            resolved = await _resolve(endpoint.host, endpoint.port)
        except SourceError:
            continue  # an endpoint that does not resolve here cannot be reached through a source either
        known.extend((ip, endpoint.port, endpoint) for ip in resolved)
    return known


def _is_endpoint(ip: IPAddress, port: int, known: list[tuple[IPAddress, int, Endpoint]]) -> Endpoint | None:
    for other, other_port, endpoint in known:
        # A service bound to 0.0.0.0 or loopback answers on every loopback address of this machine.
        if port == other_port and (ip == other or (_local(ip) and _local(other)) or other.is_unspecified):
            return endpoint
    return None


async def destination(address: SourceAddress, settings: ExtractorSettings) -> str:
    """The IP address to connect to for `address`, after checking every address its host resolves to."""
    host = address.host.strip()
    if host.startswith("/") or "/" in host or "\\" in host:
        raise PermissionDenied(
            f"source host '{address.host}' is a path: lakegate connects to sources over TCP only, never through a "
            "unix socket. Give the server's host name or IP address."
        )
    resolved = await _resolve(host.strip("[]"), address.port)
    known = await _endpoint_addresses(infrastructure(settings))
    for ip in resolved:
        own = _is_endpoint(ip, address.port, known)
        if own is not None:
            raise PermissionDenied(
                f"source host '{address.host}' port {address.port} is {ip}:{address.port}, one of this lakegate "
                f"deployment's own services ({own.host}:{own.port}, from {INFRASTRUCTURE_SETTING} or the NATS "
                "servers): a source may never point at lakegate's infrastructure. Register the database you mean "
                "to read."
            )
        kind = _private_kind(ip)
        if kind is not None and not settings.allow_private_sources:
            resolves = "is" if host.strip("[]") == str(ip) else f"resolves to {ip},"
            raise PermissionDenied(
                f"source host '{address.host}' {resolves} {kind}: this extractor does not connect to loopback, "
                f"link-local or private addresses unless {ALLOW_SETTING}=true (set it when your sources are on "
                "this machine or a private network)."
            )
    return str(resolved[0])
