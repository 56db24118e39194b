"""What a merge matches rows on and how it picks the newer of two, checked before anything is written.

Warehouse-neutral: every warehouse refuses the same impossible merges with the same words.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
from lakegate.common.errors import InvalidInput
from lakegate.loader.warehouses.base import LoadPlan


@dataclass(frozen=True)
class MergeColumns:
    """The key columns of a merge, and the cursor column that says which version of a row is newer."""

    keys: tuple[str, ...]
    cursor: str | None

    def spelled_as(self, schema: pa.Schema) -> MergeColumns:
        """The same columns as `schema` spells them (names match without regard to case)."""
        spelling: dict[str, str] = {str(name).lower(): str(name) for name in schema.names}

        def spelled(name: str) -> str:
            return spelling.get(name.lower(), name)

        return MergeColumns(tuple(map(spelled, self.keys)), spelled(self.cursor) if self.cursor else None)


def merge_columns(plan: LoadPlan) -> MergeColumns:
    """The plan's keys and cursor, each present in the run's schema; `InvalidInput` when a merge cannot work."""
    if not plan.keys:
        raise InvalidInput(
            f"cannot merge into {plan.target}: the source table has no primary key to match rows on; add a primary "
            "key to the source table, or sync it in full or incremental mode"
        )
    names = {str(name).lower() for name in plan.schema.names}
    missing = [key for key in plan.keys if key.lower() not in names]
    if missing:
        raise InvalidInput(
            f"cannot merge into {plan.target}: the key columns {missing} are not among the extracted columns "
            f"{plan.schema.names}; sync the table again so the extraction includes its whole primary key"
        )
    if plan.cursor is not None and plan.cursor.lower() not in names:
        raise InvalidInput(
            f"cannot merge into {plan.target}: the cursor column {plan.cursor!r} is not among the extracted columns "
            f"{plan.schema.names}; choose a cursor column the table has"
        )
    return MergeColumns(plan.keys, plan.cursor)
