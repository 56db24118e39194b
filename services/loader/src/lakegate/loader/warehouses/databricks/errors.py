"""What a Databricks failure means for lakegate: retry it, or explain what to grant or configure.

    connector / warehouse says                                  lakegate raises
    the warehouse is starting, throttled (429), unavailable     `Unavailable`   (retried with backoff)
    (503), or the connection dropped mid-request
    a concurrent Delta commit won (DELTA_CONCURRENT_*, ...)     `Conflict`      (retried)
    PERMISSION_DENIED, INSUFFICIENT_PERMISSIONS, HTTP 403       `PermissionDenied`, naming the privilege to grant
    HTTP 401                                                    `PermissionDenied`: check the credentials
    the SQL warehouse does not exist (HTTP 404)                 `WarehouseError`: check the warehouse id / HTTP path
    TABLE_OR_VIEW_NOT_FOUND, SCHEMA_NOT_FOUND, ...              `NotFound`
    anything else the server refused                            `WarehouseError` with the server's first line

Messages name the object and what to do, never a token or secret.
"""

from __future__ import annotations

import re

from databricks.sql import exc as dbexc
from lakegate.common.errors import (
    Conflict,
    LakegateError,
    NotFound,
    PermissionDenied,
    Unavailable,
    WarehouseError,
)

GRANTS_HINT = (
    "the principal needs USE CATALOG, USE SCHEMA, CREATE SCHEMA, CREATE TABLE, MODIFY, SELECT, READ VOLUME and "
    "WRITE VOLUME on the tenant's catalog (CREATE CATALOG on the metastore for per-tenant catalogs, or set "
    "LAKEGATE_LOADER_DATABRICKS_LAYOUT=schema_per_tenant); docs/databricks.md lists the GRANT statements"
)
_TRANSIENT = re.compile(
    r"TEMPORARILY_UNAVAILABLE|WAREHOUSE_(?:STARTING|NOT_RUNNING)|is starting|RESOURCE_EXHAUSTED|"
    r"REQUEST_LIMIT_EXCEEDED|Too Many Requests|Service Unavailable|try again later",
    re.IGNORECASE,
)
_CONFLICT = re.compile(
    r"DELTA_CONCURRENT_|Concurrent(?:Append|DeleteRead|DeleteDelete|Transaction)Exception|"
    r"ConcurrentModification|MetadataChangedException|ProtocolChangedException",
    re.IGNORECASE,
)
_DENIED = re.compile(r"PERMISSION_DENIED|INSUFFICIENT_PERMISSIONS|does not have .* privilege|User does not have",
                     re.IGNORECASE)  # fmt: skip
_MISSING = re.compile(r"TABLE_OR_VIEW_NOT_FOUND|SCHEMA_NOT_FOUND|CATALOG_NOT_FOUND|VOLUME_NOT_FOUND|"
                      r"TABLE_OR_VIEW_DOES_NOT_EXIST|NO_SUCH_CATALOG_EXCEPTION", re.IGNORECASE)  # fmt: skip
_NO_WAREHOUSE = re.compile(r"RESOURCE_DOES_NOT_EXIST|warehouse .* (?:does not exist|not found)|"
                           r"endpoint .* does not exist", re.IGNORECASE)  # fmt: skip


class Stopped(WarehouseError):
    """A statement ran past its timeout and was cancelled."""


def first_line(error: BaseException) -> str:
    """The server's message without the stack trace it appends."""
    text = str(error).strip()
    return text.splitlines()[0][:500] if text else type(error).__name__


def _http_code(error: dbexc.Error) -> int | None:
    code = (error.context or {}).get("http-code")
    try:
        return int(code) if code is not None else None
    except (TypeError, ValueError):
        return None


def is_missing(error: BaseException) -> bool:
    """True when the server said a table, schema, catalog or volume does not exist."""
    return bool(_MISSING.search(str(error)))


def translate(error: BaseException, doing: str) -> LakegateError:
    """The lakegate error for a connector failure while `doing` (e.g. 'loading tenant_a.bronze.orders')."""
    if isinstance(error, LakegateError):
        return error
    text = str(error)
    code = _http_code(error) if isinstance(error, dbexc.Error) else None
    where = f"Databricks refused {doing}"
    if code == 401:
        return PermissionDenied(
            f"{where}: the credentials were not accepted; check DATABRICKS_TOKEN or DATABRICKS_CLIENT_ID and "
            "DATABRICKS_CLIENT_SECRET (or the SDK profile) for this workspace"
        )
    if code == 403 or _DENIED.search(text):
        return PermissionDenied(f"{where}: {first_line(error)}; {GRANTS_HINT}")
    if code == 404 or _NO_WAREHOUSE.search(text):
        return WarehouseError(
            f"{where}: the SQL warehouse was not found ({first_line(error)}); check DATABRICKS_WAREHOUSE_ID or "
            "DATABRICKS_HTTP_PATH, and that the principal has CAN USE on the warehouse"
        )
    if _CONFLICT.search(text):
        return Conflict(f"{where}: another writer committed at the same time ({first_line(error)}); retrying")
    if code in (429, 502, 503, 504) or _TRANSIENT.search(text):
        return Unavailable(f"{where}: the SQL warehouse is busy or starting ({first_line(error)}); retrying")
    if is_missing(error):
        return NotFound(f"{where}: {first_line(error)}")
    if isinstance(error, dbexc.ServerOperationError | dbexc.ProgrammingError):
        return WarehouseError(f"{where}: {first_line(error)}")
    if isinstance(error, dbexc.Error | OSError | TimeoutError):
        return Unavailable(f"{where}: the SQL warehouse did not answer ({first_line(error)}); retrying")
    return WarehouseError(f"{where}: {first_line(error)}")
