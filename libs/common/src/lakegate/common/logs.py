"""Logging setup: one line per record, service name first, never a secret."""

from __future__ import annotations

import logging
import sys


def setup_logging(service: str, level: str = "INFO") -> None:
    """Log to stderr (stdout may carry the MCP stdio protocol)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "deltalake", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
