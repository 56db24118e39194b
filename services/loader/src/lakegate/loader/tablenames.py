"""Warehouse table names as callers write them, and the checks that keep them inside a tenant's catalog."""

from __future__ import annotations

import re

from lakegate.common.contracts.runs import TableRef
from lakegate.common.errors import InvalidInput
from lakegate.common.names import LAYERS

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_HINT = "name a table as `table`, `layer.table` or `catalog.layer.table`, e.g. `bronze.shop_orders`"


def check_layer(layer: str) -> str:
    """A layer is one of bronze, silver, gold (any case)."""
    folded = layer.strip().lower()
    if folded not in LAYERS:
        raise InvalidInput(f"layer {layer!r} does not exist: use bronze, silver or gold")
    return folded


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
