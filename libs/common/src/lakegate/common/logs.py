"""Logging setup: one line per record on stderr, as text or JSON, never a secret.

`json` lines carry `ts`, `level`, `service`, `logger`, `message`, the current span's `trace_id`
and `span_id` (so a log line leads to its trace), and the `run_id` and `tenant_id` of the work
being done (set with `log_context` by the delivery policy and the edge), plus `exc` with the
traceback. Both formats pass every line through `redact`, a last wall behind the rule that no
message is built with a secret in it: passwords in DSNs, `password=`/`token=`/`secret=` pairs and
bearer tokens are masked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

from opentelemetry import trace

_RUN: ContextVar[str | None] = ContextVar("lakegate_log_run_id", default=None)
_TENANT: ContextVar[str | None] = ContextVar("lakegate_log_tenant_id", default=None)

_SECRETS = (
    # scheme://user:password@host
    (re.compile(r"(?P<keep>[a-z][a-z0-9+.-]{0,31}://[^:/@\s]+:)[^@\s]+(?=@)", re.IGNORECASE), r"\g<keep>***"),
    # password=..., "token": "...", secret: ...
    (
        re.compile(
            r"(?P<keep>\b(?:password|passwd|pwd|token|secret|api[_-]?key|client[_-]?secret)\b[\"']?\s*[=:]\s*[\"']?)"
            r"[^\s\"',;&}]+",
            re.IGNORECASE,
        ),
        r"\g<keep>***",
    ),
    (re.compile(r"(?P<keep>\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\g<keep>***"),
)


def redact(text: str) -> str:
    """`text` with anything that looks like a secret masked."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


@contextlib.contextmanager
def log_context(*, run_id: str | None = None, tenant_id: str | None = None) -> Iterator[None]:
    """Name the run and tenant of the work in every log line the body writes."""
    run, tenant = _RUN.set(run_id or _RUN.get()), _TENANT.set(tenant_id or _TENANT.get())
    try:
        yield
    finally:
        _RUN.reset(run)
        _TENANT.reset(tenant)


class TextFormatter(logging.Formatter):
    """`<time> <LEVEL> <service> <logger>: <message>`, redacted."""

    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the trace, run and tenant ids when there are any."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            line["trace_id"], line["span_id"] = f"{context.trace_id:032x}", f"{context.span_id:016x}"
        if (run := _RUN.get()) is not None:
            line["run_id"] = run
        if (tenant := _TENANT.get()) is not None:
            line["tenant_id"] = tenant
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def setup_logging(service: str, level: str = "INFO", form: Literal["text", "json"] = "text") -> None:
    """Log to stderr (stdout may carry the MCP stdio protocol)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if form == "json" else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "deltalake", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
