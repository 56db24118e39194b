"""Password references: `env:NAME` or `file:/path`, resolved by the extractor when it logs in.

The model and the edge only ever see the reference; the password stays on the server. Each tenant
has its own namespace, so no tenant can point a reference at the extractor's own settings or at
another tenant's secret: `env:` names start with `<secret_env_prefix><TENANT>_`, `file:` paths lie
below `<one of secret_dirs>/<tenant>/` (after symbolic links are resolved). A file is resolved and
read in a worker thread, so a slow mount (NFS, a CSI secret driver) never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from lakegate.common.errors import InvalidInput
from lakegate.extractor.config import ExtractorSettings
from pydantic import SecretStr

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
#: Longest secret file read: a password, not a data file.
MAX_FILE_BYTES = 64 * 1024


async def resolve_reference(reference: str, *, tenant_id: str, settings: ExtractorSettings, source: str) -> SecretStr:
    """The password a reference names, or an error that says which reference and what to fix."""
    kind, _, target = reference.partition(":")
    if kind == "env":
        return _from_env(target, tenant_id, settings, source)
    if kind == "file":
        return await asyncio.to_thread(_from_file, target, tenant_id, settings, source)
    raise InvalidInput(f"password_ref {reference!r} of {source}: write `env:NAME` or `file:/path`")


def _from_env(name: str, tenant_id: str, settings: ExtractorSettings, source: str) -> SecretStr:
    prefix = f"{settings.secret_env_prefix}{tenant_id.upper()}_"
    if not _ENV_NAME.match(name) or not name.startswith(prefix) or name == prefix:
        raise InvalidInput(
            f"password_ref env:{name} of {source}: this tenant may only name environment variables starting with "
            f"{prefix}, e.g. env:{prefix}SHOP"
        )
    value = os.environ.get(name)
    if value is None:
        raise InvalidInput(
            f"password_ref env:{name} of {source}: the extractor has no environment variable {name}; set it in the "
            "extractor's environment (e.g. from a Kubernetes secret) and restart it, or pass the password instead"
        )
    return SecretStr(value)


def _from_file(path_text: str, tenant_id: str, settings: ExtractorSettings, source: str) -> SecretStr:
    path = Path(path_text)
    if not path.is_absolute():
        raise InvalidInput(f"password_ref file:{path_text} of {source}: the path must be absolute")
    if not settings.secret_dirs:
        raise InvalidInput(
            f"password_ref file:{path_text} of {source}: this extractor reads no secret files; set "
            "LAKEGATE_EXTRACTOR_SECRET_DIRS to the directory the secrets are mounted in"
        )
    allowed = [Path(directory).resolve() / tenant_id for directory in settings.secret_dirs]
    resolved = path.resolve()
    if not any(resolved.is_relative_to(directory) for directory in allowed):
        raise InvalidInput(
            f"password_ref file:{path_text} of {source}: this tenant may only read files below "
            f"{', '.join(str(directory) for directory in allowed)}"
        )
    try:
        with resolved.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise InvalidInput(
            f"password_ref file:{path_text} of {source}: there is no such file on the extractor; mount or create it"
        ) from None
    except OSError as exc:
        raise InvalidInput(f"password_ref file:{path_text} of {source}: cannot read it ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput(f"password_ref file:{path_text} of {source}: longer than {MAX_FILE_BYTES} bytes")
    try:
        # One trailing newline is how `echo` and most secret tools write a file; it is not part of the password.
        return SecretStr(data.decode().removesuffix("\n").removesuffix("\r"))
    except UnicodeDecodeError:
        raise InvalidInput(f"password_ref file:{path_text} of {source}: not UTF-8 text") from None
