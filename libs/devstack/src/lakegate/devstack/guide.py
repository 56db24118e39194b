"""What `up` prints once the stack is ready: where MCP clients connect, and where the logs are."""

from __future__ import annotations

import json
from pathlib import Path

from lakegate.devstack.stack import StackUrls


def claude_desktop_config(repo: Path, nats_url: str, nats_password_file: Path | None = None) -> dict[str, object]:
    """An `mcpServers` entry that runs the edge over stdio against the running stack's NATS, as its `edge` user."""
    login = {"LAKEGATE_NATS_USER": "edge", "LAKEGATE_NATS_PASSWORD_FILE": str(nats_password_file)}
    return {
        "mcpServers": {
            "lakegate": {
                "command": "uv",
                "args": ["run", "--directory", str(repo), "python", "-m", "lakegate.edge", "--transport", "stdio"],
                "env": {"LAKEGATE_NATS_URL": nats_url, **(login if nats_password_file else {})},
            }
        }
    }


def claude_desktop_remote_config(mcp_url: str, token: str) -> dict[str, object]:
    """An `mcpServers` entry that reaches the HTTP edge with a bearer token, through `mcp-remote` (npx)."""
    return {
        "mcpServers": {
            "lakegate": {
                "command": "npx",
                # No space inside an argument: Claude Desktop on Windows splits them there.
                "args": ["-y", "mcp-remote", mcp_url, "--header", "Authorization:${LAKEGATE_AUTHORIZATION}"],
                "env": {"LAKEGATE_AUTHORIZATION": f"Bearer {token}"},
            }
        }
    }


def token_guide(mcp_url: str, token: str, tenant_id: str, scopes: list[str]) -> str:
    """What `token create` prints: the token, once, and the client configurations that carry it."""
    desktop = json.dumps(claude_desktop_remote_config(mcp_url, token), indent=2)
    return (
        f"\nA token for tenant {tenant_id!r} with {', '.join(scopes)} (shown only now; the stack keeps its hash):\n\n"
        f"  {token}\n\n"
        "Claude Code:\n\n"
        f'  claude mcp add --transport http lakegate {mcp_url} --header "Authorization: Bearer {token}"\n\n'
        "Claude Desktop (Settings > Developer > Edit Config, merge into claude_desktop_config.json;\n"
        "it needs Node's npx):\n\n"
        f"{_indent(desktop)}\n\n"
        "Any other MCP client: send the header `Authorization: Bearer <token>`.\n"
        "A running `make up` reads new tokens at once; if it started before the first token was minted, restart it:\n"
        "from then on every HTTP caller needs a token.\n"
    )


def connection_guide(
    urls: StackUrls, repo: Path, logs: Path, requires_token: bool = False, nats_password_file: Path | None = None
) -> str:
    """The text `up` prints when every service is ready."""
    desktop = json.dumps(claude_desktop_config(repo, urls.nats, nats_password_file), indent=2)
    code = (
        "  the endpoint requires a bearer token: `python -m lakegate.devstack token create` prints the\n"
        "  Claude Code and Claude Desktop configuration with one\n\n"
        if requires_token
        else f"  claude mcp add --transport http lakegate {urls.mcp}\n\n"
    )
    return (
        "\nlakegate is up.\n\n"
        f"  MCP endpoint (streamable HTTP): {urls.mcp}\n\n"
        "Claude Code:\n\n"
        f"{code}"
        "Claude Desktop over stdio (Settings > Developer > Edit Config, merge into claude_desktop_config.json):\n\n"
        f"{_indent(desktop)}\n\n"
        f"Logs: {logs}/<process>.log (nats, postgres, catalog, extractor, loader, edge)\n"
        "Press Ctrl-C to stop everything.\n"
    )


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
