"""Names lakegate derives: tenant catalogs, bronze tables, and how a source table is written."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lakegate.common.errors import InvalidInput

TENANT_ID = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
LAYERS = ("bronze", "silver", "gold")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def check_tenant_id(tenant_id: str) -> str:
    """A tenant id is a lower-case slug, because it becomes part of catalog names and subjects."""
    if not TENANT_ID.match(tenant_id):
        raise InvalidInput(
            f"tenant id {tenant_id!r} is not valid: use 1-48 characters of a-z, 0-9 and _, starting with a letter"
        )
    return tenant_id


def tenant_catalog(tenant_id: str) -> str:
    """The warehouse catalog that holds everything of one tenant."""
    return f"tenant_{check_tenant_id(tenant_id)}"


@dataclass(frozen=True)
class SourceTableName:
    """A table in a source database, as `schema.table`."""

    schema: str
    table: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}"


#: PostgreSQL's longest identifier (NAMEDATALEN - 1), in bytes.
MAX_SOURCE_NAME_BYTES = 63
_SOURCE_NAME_PUNCTUATION = frozenset("_$-")


def parse_source_table(name: str) -> SourceTableName:
    """Read `table` or `schema.table`; the schema defaults to `public`.

    Names are matched against the source's catalog exactly and never pasted into SQL unquoted.
    Each part is letters (any script), digits, `_`, `$` or `-`, at most 63 bytes as PostgreSQL
    allows: a quoted PostgreSQL name could hold `/`, `%` or `:` too, but a name that looks like a
    path or URL is far likelier a mistake or an attack than a table, so it is refused before a run
    is recorded for it.
    """
    text = name.strip()
    hint = "name the table as `table` or `schema.table`, e.g. `orders` or `sales.orders`"
    if not text:
        raise InvalidInput(f"table_name is empty: {hint}")
    if any(ch in text for ch in "\"'`;\\") or any(ch.isspace() for ch in text):
        raise InvalidInput(f"table_name {name!r} contains quotes, semicolons or spaces: {hint}")
    parts = text.split(".")
    if len(parts) > 2 or not all(parts):
        raise InvalidInput(f"table_name {name!r} has too many or empty dotted parts: {hint}")
    for part in parts:
        if len(part.encode()) > MAX_SOURCE_NAME_BYTES:
            raise InvalidInput(
                f"table_name has a part of {len(part.encode())} bytes: PostgreSQL names are at most "
                f"{MAX_SOURCE_NAME_BYTES} bytes; {hint}"
            )
        if not all(ch.isalnum() or ch in _SOURCE_NAME_PUNCTUATION for ch in part):
            raise InvalidInput(
                f"table_name {name!r} is not a table name: use letters, digits, _, $ and - in each part; {hint}"
            )
    if len(parts) == 1:
        return SourceTableName("public", parts[0])
    return SourceTableName(parts[0], parts[1])


def warehouse_identifier(text: str) -> str:
    """Fold any name into a lower-case warehouse identifier (a-z, 0-9, _)."""
    folded = _NOT_WORD.sub("_", text.lower()).strip("_")
    if not folded:
        raise InvalidInput(f"{text!r} has no letters or digits to build a table name from")
    return folded if folded[0].isalpha() else f"t_{folded}"


def bronze_table_name(source_name: str, table: SourceTableName) -> str:
    """`<source>_<table>`, or `<source>_<schema>_<table>` outside the `public` schema."""
    parts = [source_name, table.table] if table.schema == "public" else [source_name, table.schema, table.table]
    return warehouse_identifier("_".join(parts))


def is_plain_identifier(text: str) -> bool:
    return bool(_IDENT.match(text))
