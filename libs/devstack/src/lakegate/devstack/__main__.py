"""`python -m lakegate.devstack up|status`: run the whole stack on this machine, or say how it is doing."""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
from pathlib import Path
from types import FrameType

from lakegate.common.api_tokens import check_scopes, mint
from lakegate.common.errors import InvalidInput
from lakegate.common.subjects import Topology
from lakegate.devstack.guide import connection_guide, token_guide
from lakegate.devstack.keys import ensure_fernet_key
from lakegate.devstack.layout import StackHome
from lakegate.devstack.leftovers import ChildRecords
from lakegate.devstack.lock import holder
from lakegate.devstack.nats_auth import render_with_env_refs, write_auth
from lakegate.devstack.ports import accepts_connections
from lakegate.devstack.processes import StartupError
from lakegate.devstack.settings import StackSettings
from lakegate.devstack.stack import LOOPBACK, Stack, StackConfig
from lakegate.devstack.supervisor import answers_ready
from pydantic import ValidationError

log = logging.getLogger("lakegate.devstack")


def up(config: StackConfig) -> int:
    """Start the stack, print how to connect, and run until Ctrl-C or SIGTERM; then stop it all."""
    _stop_on_signals()
    stack = Stack(config)
    try:
        stack.start()
    except StartupError as exc:
        print(f"lakegate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lakegate: interrupted while starting; everything started has been stopped", file=sys.stderr)
        return 130
    requires_token = stack.home.api_tokens.exists()
    print(
        connection_guide(
            stack.urls,
            config.repo,
            stack.home.logs,
            requires_token,
            nats_password_file=stack.home.nats_password("edge"),
        ),
        flush=True,
    )
    try:
        while True:
            signal.pause()
    except KeyboardInterrupt:
        log.info("stopping lakegate: services, then PostgreSQL, then NATS")
    finally:
        stack.stop()
    log.info("lakegate stopped")
    return 0


def _stop_on_signals() -> None:
    """First SIGINT/SIGTERM stops the stack; more of them while it stops are acknowledged, not obeyed."""

    def patience(signum: int, frame: FrameType | None) -> None:
        print("lakegate: still stopping, please wait", file=sys.stderr, flush=True)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, patience)
        signal.signal(signal.SIGTERM, patience)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def status(config: StackConfig) -> int:
    """Print whether a stack runs from this home and whether each of its processes answers; 0 when all do."""
    home = StackHome(config.home)
    pid = holder(home.run / "up.lock")
    if pid is None:
        print(f"lakegate is not running from {home.root} (start it with `make up`)")
        return 1
    described = json.loads((home.run / "stack.json").read_text()) if (home.run / "stack.json").exists() else {}
    ports = {**_ports_dict(config), **described.get("ports", {})}
    pids = {leftover.name: leftover.pid for leftover, _ in ChildRecords(home.run).alive()}
    checks = {
        "nats": accepts_connections(ports["nats"], LOOPBACK),
        "postgres": accepts_connections(ports["postgres"], LOOPBACK),
        **{name: answers_ready(LOOPBACK, ports[f"{name}_health"]) for name in ("catalog", "extractor", "loader")},
        "edge": answers_ready(LOOPBACK, ports["edge_health"]) and accepts_connections(ports["edge"], LOOPBACK),
    }
    print(f"lakegate is running from {home.root} (supervisor pid {pid})")
    for name, ok in checks.items():
        print(f"  {name:<10} {'ready' if ok else 'NOT READY':<10} pid {pids.get(name, '-')}")
    mcp = described.get("urls", {}).get("mcp")
    if mcp:
        print(f"  MCP endpoint: {mcp}")
    print(f"  logs: {home.logs}")
    return 0 if all(checks.values()) else 1


def _ports_dict(config: StackConfig) -> dict[str, int]:
    return {name: getattr(config.ports, name) for name in config.ports.__dataclass_fields__}


def _create_token(home: Path | None, tenant: str, scopes: str, name: str) -> int:
    """Mint a token into the home's tokens file and print it with the Claude Code / Desktop configuration."""
    try:
        settings = StackSettings() if home is None else StackSettings(home=home)
        config = settings.config()
        stack_home = StackHome(config.home)
        stack_home.create()
        chosen = check_scopes(part.strip() for part in scopes.split(",") if part.strip())
        token = mint(stack_home.api_tokens, tenant, chosen, name)
    except (ValidationError, InvalidInput) as exc:
        print(f"lakegate: {exc}", file=sys.stderr)
        return 2
    described = stack_home.run / "stack.json"
    urls = json.loads(described.read_text()).get("urls", {}) if described.exists() else {}
    mcp_url = urls.get("mcp") or f"http://{LOOPBACK}:{config.ports.edge}/mcp"
    print(token_guide(mcp_url, token, tenant, chosen), flush=True)
    return 0


def _nats_auth(directory: Path | None, prefix: str, tenants: list[str], env_refs: bool) -> int:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", prefix):
        print(f"lakegate: --prefix {prefix!r}: use lower-case letters, digits and _, then a letter", file=sys.stderr)
        return 2
    if bad := [t for t in tenants if not re.fullmatch(r"[A-Za-z0-9_-]+", t)]:
        print(f"lakegate: --tenant {bad[0]!r}: a tenant id is letters, digits, _ and -", file=sys.stderr)
        return 2
    if env_refs:
        print(render_with_env_refs(Topology(prefix), tenants), end="")
        return 0
    if directory is None:
        print("lakegate: nats-auth needs a DIRECTORY, or --env-refs to print the block", file=sys.stderr)
        return 2
    try:
        print(write_auth(directory, Topology(prefix), tenants))
    except StartupError as exc:
        print(f"lakegate: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser(
        prog="python -m lakegate.devstack",
        description="Run lakegate (NATS, PostgreSQL, catalog, extractor, loader, MCP edge) on this machine.",
    )
    parser.add_argument("--home", type=Path, help="state directory (default: $LAKEGATE_HOME or .lakegate/)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start everything and run until Ctrl-C")
    commands.add_parser("status", help="say whether the stack runs and whether each process is ready")
    key = commands.add_parser("key", help="create the catalog's Fernet key file if it is missing (Docker uses this)")
    key.add_argument("path", type=Path)
    auth = commands.add_parser(
        "nats-auth", help="generate NATS users' passwords and the server's authorization block (Docker, k8s use this)"
    )
    auth.add_argument("directory", type=Path, nargs="?", help="where auth.conf and users/<user>/password go")
    auth.add_argument("--prefix", default="lakegate", help="the deployment's subject prefix (LAKEGATE_NATS_PREFIX)")
    auth.add_argument("--tenant", action="append", default=[], help="a tenant whose events get a subscriber user")
    auth.add_argument("--env-refs", action="store_true", help="print the block with $VARIABLE passwords instead")
    token = commands.add_parser("token", help="mint a static API token for the HTTP edge and print client configs")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="mint one token, bound to one tenant and its scopes")
    create.add_argument("--tenant", default="default", help="the tenant every call with it acts for")
    create.add_argument("--scopes", default="read,write,admin", help="comma-separated: read, write, admin")
    create.add_argument("--name", default="local", help="what the token is for (kept beside its hash)")
    args = parser.parse_args(argv)
    if args.command == "token":
        return _create_token(args.home, args.tenant, args.scopes, args.name)
    if args.command == "nats-auth":
        return _nats_auth(args.directory, args.prefix, args.tenant, args.env_refs)
    if args.command == "key":
        try:
            print(ensure_fernet_key(args.path))
        except StartupError as exc:
            print(f"lakegate: {exc}", file=sys.stderr)
            return 1
        return 0

    logging.basicConfig(level=logging.INFO, format="%(asctime)s lakegate: %(message)s", datefmt="%H:%M:%S")
    try:
        settings = StackSettings() if args.home is None else StackSettings(home=args.home)
    except ValidationError as exc:
        problems = "; ".join(f"LAKEGATE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        print(f"lakegate: invalid setting: {problems}", file=sys.stderr)
        return 2
    config = settings.config()
    return up(config) if args.command == "up" else status(config)


if __name__ == "__main__":
    sys.exit(main())
