"""What an audit record keeps of a tool call's arguments: no secrets, no file contents, nothing long.

password, secret, token, credential, private/api key  →  "[redacted]", at any depth
file_content                                         →  "[<n> base64 characters]"
anything else                                        →  its text (JSON for non-strings), cut at
                                                        `MAX_ARGUMENT_CHARS` with the full length noted
arguments that are not an object                      →  one entry, `[arguments]`, with their JSON
NUL characters and lone surrogates                    →  written out as escapes by `AuditRecord` itself
                                                        (`contracts.audit.storable`), for every sender
more than `MAX_ARGUMENTS` names                       →  the first ones and `[more]` with the count
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

#: Argument names whose values never leave the edge, matched anywhere in the name, any case.
SECRET_NAME = re.compile(r"password|passwd|secret|token|credential|private_key|api_key|apikey", re.IGNORECASE)
#: Arguments that carry file contents: recorded by size only.
CONTENT_NAMES = frozenset({"file_content", "content_base64"})
MAX_ARGUMENT_CHARS = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
REDACTED = "[redacted]"


MAX_ARGUMENTS = 50
WHOLE = "[arguments]"


def redact_arguments(arguments: object) -> dict[str, str]:
    """The arguments of one call as an audit record may keep them, whatever the client sent."""
    if arguments is None:
        return {}
    if not isinstance(arguments, Mapping):
        return {WHOLE: shortened(json.dumps(_without_secrets(arguments), ensure_ascii=False, default=str))}
    items = list(arguments.items())
    kept = {shortened(str(name), 100): _shown(str(name), value) for name, value in items[:MAX_ARGUMENTS]}
    if len(items) > MAX_ARGUMENTS:
        kept["[more]"] = f"{len(items) - MAX_ARGUMENTS} more arguments not recorded"
    return kept


def _secret(name: str) -> bool:
    # Control characters (a NUL in "pass\x00word") must not hide a secret's name.
    return bool(SECRET_NAME.search(_CONTROL.sub("", name)))


def _shown(name: str, value: Any) -> str:
    if _secret(name):
        return REDACTED
    if name in CONTENT_NAMES:
        return f"[{len(value) if isinstance(value, str) else 0} base64 characters]"
    text = value if isinstance(value, str) else json.dumps(_without_secrets(value), ensure_ascii=False, default=str)
    return shortened(text)


def _without_secrets(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: REDACTED if _secret(str(k)) else _without_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_secrets(item) for item in value]
    return value


def shortened(text: str, limit: int = MAX_ARGUMENT_CHARS) -> str:
    """`text`, or its first `limit` characters with the full length noted."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"
