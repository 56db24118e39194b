"""The lakegate error taxonomy.

Every error a service raises on purpose is a `LakegateError`, and every one is either terminal
(retrying cannot help: fix the input, the grant, the configuration) or transient (the same
request may succeed later). One place, `lakegate.common.delivery`, maps that to JetStream:
transient → nack with backoff, terminal → reject and mark the run failed.

    LakegateError
    ├── TerminalError
    │   ├── InvalidInput          the caller sent something we cannot act on
    │   ├── NotFound              a source, run, table or column does not exist (for this tenant)
    │   ├── PermissionDenied      the tenant or the credentials may not do this
    │   ├── SourceError           the source database refused (wrong password, unknown host, ...)
    │   ├── WarehouseError        the warehouse refused (bad SQL, type mismatch, ...)
    │   ├── Unsupported           a feature this deployment does not have
    │   └── Cancelled             the run was cancelled
    └── TransientError
        ├── Unavailable           a service, the source or the warehouse did not answer in time
        └── Conflict              someone else holds what we need; try again

Messages say what went wrong and how to fix it, name the object, and never carry a secret.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import ValidationError


class LakegateError(Exception):
    """Base of every error lakegate raises on purpose."""

    code: ClassVar[str] = "error"
    transient: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class TerminalError(LakegateError):
    """Retrying cannot help; something must be changed first."""


class TransientError(LakegateError):
    """The same request may succeed later."""

    transient = True


class InvalidInput(TerminalError):
    code = "invalid_input"


class NotFound(TerminalError):
    code = "not_found"


class PermissionDenied(TerminalError):
    code = "permission_denied"


class SourceError(TerminalError):
    code = "source_error"


class WarehouseError(TerminalError):
    code = "warehouse_error"


class Unsupported(TerminalError):
    code = "unsupported"


class Cancelled(TerminalError):
    code = "cancelled"


class Unavailable(TransientError):
    code = "unavailable"


class Conflict(TransientError):
    code = "conflict"


ERRORS_BY_CODE: dict[str, type[LakegateError]] = {
    cls.code: cls
    for cls in (
        InvalidInput,
        NotFound,
        PermissionDenied,
        SourceError,
        WarehouseError,
        Unsupported,
        Cancelled,
        Unavailable,
        Conflict,
    )
}


def error_from_code(code: str, message: str, *, transient: bool = False) -> LakegateError:
    """Rebuild an error received over the wire; an unknown code keeps only its transience."""
    cls = ERRORS_BY_CODE.get(code) or (TransientError if transient else TerminalError)
    return cls(message)


def first_invalid(exc: ValidationError) -> str:
    """Where a body failed its model and why, without the values it held (a message body may carry a secret)."""
    errors = exc.errors(include_url=False, include_input=False)
    where = ".".join(str(part) for part in errors[0]["loc"]) or "the body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {errors[0]['msg']}{more}"
