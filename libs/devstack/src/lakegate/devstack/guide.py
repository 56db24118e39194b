"""What `up` prints once the stack is ready: where MCP clients connect, and where the logs are."""

from __future__ import annotations

import json
from pathlib import Path

from lakegate.devstack.stack import StackUrls


def claude_desktop_config(repo: Path, nats_url: str) -> dict[str, object]:
    """An `mcpServers` entry that runs the edge over stdio against the running stack's NATS."""
    return {
        "mcpServers": {
            "lakegate": {
                "command": "uv",
                "args": ["run", "--directory", str(repo), "python", "-m", "lakegate.edge", "--transport", "stdio"],
                "env": {"LAKEGATE_NATS_URL": nats_url},
            }
        }
    }


def connection_guide(urls: StackUrls, repo: Path, logs: Path) -> str:
    """The text `up` prints when every service is ready."""
    desktop = json.dumps(claude_desktop_config(repo, urls.nats), indent=2)
    return (
        "\nlakegate is up.\n\n"
        f"  MCP endpoint (streamable HTTP): {urls.mcp}\n\n"
        "Claude Code:\n\n"
        f"  claude mcp add --transport http lakegate {urls.mcp}\n\n"
        "Claude Desktop (Settings > Developer > Edit Config, merge into claude_desktop_config.json):\n\n"
        f"{_indent(desktop)}\n\n"
        f"Logs: {logs}/<process>.log (nats, postgres, catalog, extractor, loader, edge)\n"
        "Press Ctrl-C to stop everything.\n"
    )


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
