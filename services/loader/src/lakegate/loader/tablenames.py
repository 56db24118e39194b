"""Warehouse table names as callers write them, and the checks that keep them inside a tenant's catalog."""

from __future__ import annotations

import re

from lakegate.common.contracts.runs import TableRef
from lakegate.common.errors import InvalidInput
from lakegate.common.names import LAYERS

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
#: Longest name a caller may choose for a new table or view; longer ones are refused, never cut.
MAX_NEW_NAME = 128
_NEW_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HINT = "name a table as `table`, `layer.table` or `catalog.layer.table`, e.g. `bronze.shop_orders`"


def check_layer(layer: str) -> str:
    """A layer is one of bronze, silver, gold (any case)."""
    folded = layer.strip().lower()
    if folded not in LAYERS:
        raise InvalidInput(f"layer {layer!r} does not exist: use bronze, silver or gold")
    return folded


def check_new_name(argument: str, text: str) -> str:
    """A name the caller chooses for a table or view, taken as written (only its case is folded), never rewritten.

    Rewriting a name like `../x` into `x` would write a table the caller did not name, so anything
    that is not already an identifier is refused with the nearest valid spelling as a hint.
    """
    if len(text) > MAX_NEW_NAME:
        raise InvalidInput(f"{argument} is {len(text)} characters long: use at most {MAX_NEW_NAME}")
    if _NEW_NAME.match(text):
        return text.lower()
    folded = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    hint = f", e.g. `{folded if folded[:1].isalpha() else 't_' + folded}`" if folded else ""
    raise InvalidInput(f"{argument} {text!r} is not valid: use a-z, 0-9 and _, starting with a letter or _{hint}")


def check_ref(ref: TableRef) -> TableRef:
    """Refuse a reference whose parts could step outside the lakehouse directory."""
    check_layer(ref.schema_name)
    for part in (ref.catalog, ref.name):
        if not _NAME.match(part):
            raise InvalidInput(f"{part!r} in {ref} is not a valid warehouse name: use a-z, 0-9 and _")
    return ref


def parse_table_name(catalog: str, table_name: str) -> TableRef:
    """Read `table`, `layer.table` or `catalog.layer.table` (layer defaults to bronze) inside `catalog`."""
    text = table_name.strip().strip("`").lower()
    parts = [part.strip("`") for part in text.split(".")]
    if not text or not all(parts) or len(parts) > 3:
        raise InvalidInput(f"table name {table_name!r} is not valid: {_HINT}")
    if len(parts) == 3:
        if parts[0] != catalog:
            raise InvalidInput(f"catalog `{parts[0]}` is not yours: you can see only `{catalog}`")
        parts = parts[1:]
    layer, name = ("bronze", parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return check_ref(TableRef(catalog=catalog, schema_name=check_layer(layer), name=name))
