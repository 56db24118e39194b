"""The bronze → silver steps as a model fills them in: a documented, discriminated union on `kind`.

They mirror `lakegate.common.contracts.transforms` field for field (without the message
`version`), with the descriptions and examples a model needs; `to_spec` turns them into the
contract's `SilverSpec`. The loader checks every column and type against the bronze table.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from lakegate.common.contracts.transforms import CAST_TYPES, SilverSpec
from pydantic import BaseModel, ConfigDict, Field

Column = Annotated[str, Field(description="A column of the table as it is at this step (after earlier renames).")]


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RenameStep(_Step):
    """Rename one column."""

    kind: Literal["rename"]
    column: Column
    to: str = Field(description="New name: letters, digits and _, starting with a letter or _.", examples=["order_id"])


class CastStep(_Step):
    """Change a column's type."""

    kind: Literal["cast"]
    column: Column
    to: str = Field(description=f"One of {', '.join(CAST_TYPES)}, or decimal(p,s).", examples=["decimal(12,2)"])
    on_error: Literal["fail", "null"] = Field(
        default="fail", description="`fail` stops the transform on a value that does not cast; `null` keeps NULL."
    )


class TrimStep(_Step):
    """Strip leading and trailing whitespace from string columns."""

    kind: Literal["trim"]
    columns: list[str] | None = Field(default=None, description="String columns to trim; all of them when omitted.")
    empty_as_null: bool = Field(default=False, description="Also turn strings that are empty after trimming to NULL.")


class FillNullStep(_Step):
    """Replace NULL in one column by a value."""

    kind: Literal["fill_null"]
    column: Column
    value: str | int | float | bool = Field(description="The value NULL becomes; it must fit the column's type.")


class DropNullStep(_Step):
    """Remove rows where any of the columns is NULL."""

    kind: Literal["drop_null"]
    columns: list[str] = Field(description="Rows with NULL in any of these columns are removed.", min_length=1)


class FilterStep(_Step):
    """Keep only the rows where `column op value` holds."""

    kind: Literal["filter"]
    column: Column
    op: Literal["=", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "is_not_null", "like"] = Field(
        description="`in`/`not_in` take a list; `is_null`/`is_not_null` take no value; `like` uses % and _."
    )
    value: Any = Field(default=None, description="A literal, or a list of literals for `in` / `not_in`.")


class DedupeStep(_Step):
    """Keep one row per key."""

    kind: Literal["dedupe"]
    keys: list[str] = Field(description="Columns that identify a row; one row per key is kept.", min_length=1)
    latest_by: str | None = Field(
        default=None, description="Keep the row with the greatest value here, e.g. an updated_at column."
    )


TransformStep = Annotated[
    RenameStep | CastStep | TrimStep | FillNullStep | DropNullStep | FilterStep | DedupeStep,
    Field(discriminator="kind"),
]


def to_spec(steps: list[TransformStep] | None, target_name: str | None) -> SilverSpec | None:
    """The contract's spec for these steps; None (the loader's default: dedupe exact rows) when there are none."""
    if not steps and target_name is None:
        return None
    return SilverSpec.model_validate({"steps": [step.model_dump() for step in steps or []], "target_name": target_name})
