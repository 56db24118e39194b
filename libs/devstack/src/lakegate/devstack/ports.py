"""Finding free ports and saying clearly when a wanted one is taken."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass

import psutil
from lakegate.devstack.processes import StartupError


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def accepts_connections(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclass(frozen=True)
class PortClaim:
    """A port the stack wants, and the environment variable that moves it elsewhere."""

    port: int
    env: str
    what: str
    host: str = "127.0.0.1"


class PortsTaken(StartupError):
    """Ports the stack needs are in use; nothing was started."""

    def __init__(self, taken: Sequence[PortClaim]) -> None:
        self.taken = tuple(taken)
        super().__init__("\n".join(_taken_message(claim) for claim in taken))


def _taken_message(claim: PortClaim) -> str:
    holder = _holder(claim.port)
    by = f"another program ({holder})" if holder else "another program"
    return f"port {claim.port} ({claim.what}) is already in use by {by}: stop it or set {claim.env}=<free port>"


def _holder(port: int) -> str | None:
    """Name the process listening on `port`, when the OS lets us see it."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            try:
                return f"pid {conn.pid}, {psutil.Process(conn.pid).name()}"
            except psutil.Error:
                return f"pid {conn.pid}"
    return None


def check_ports(claims: Sequence[PortClaim]) -> None:
    """Raise `PortsTaken` naming every claimed port that is in use (or claimed twice)."""
    seen: dict[int, PortClaim] = {}
    for claim in claims:
        if claim.port in seen:
            raise StartupError(
                f"port {claim.port} is wanted twice, by {seen[claim.port].what} and by {claim.what}: "
                f"set {claim.env} to another port"
            )
        seen[claim.port] = claim
    taken = [c for c in claims if not port_is_free(c.port, c.host) or accepts_connections(c.port, c.host)]
    if taken:
        raise PortsTaken(taken)
