"""Whole-table reads as syntax trees: per-column statistics in one pass, counts, and `SELECT *`.

One SELECT of aggregates over the table (built as a syntax tree, so any warehouse can render it):

    SELECT COUNT(*) AS n, COUNT(*) - COUNT(`a`) AS c0_nulls, APPROX_COUNT_DISTINCT(`a`) AS c0_distinct,
           MIN(`a`) AS c0_min, MAX(`a`) AS c0_max, ... FROM <table>

Lists, structs, maps and binary columns get NULL counts only: they have no useful order. Min and
max come back as JSON values by the same rules as query results.
"""

from __future__ import annotations

import pyarrow as pa
from lakegate.common.contracts.runs import TableRef
from lakegate.common.contracts.warehouse import WarehouseColumn
from lakegate.loader.results import column_values
from lakegate.loader.sqlguard import ReadQuery, qualified_table
from lakegate.loader.sqltypes import is_nested
from sqlglot import exp


def _ordered(type_: pa.DataType) -> bool:
    return not (is_nested(type_) or pa.types.is_binary(type_) or pa.types.is_large_binary(type_))


def stats_query(ref: TableRef, schema: pa.Schema) -> ReadQuery:
    """One aggregate SELECT over `ref` computing every column's statistics."""
    outputs: list[exp.Expr] = [exp.alias_(exp.Count(this=exp.Star()), "n")]
    for index, field in enumerate(schema):
        column = exp.column(exp.to_identifier(field.name, quoted=True))
        nulls = exp.Sub(this=exp.Count(this=exp.Star()), expression=exp.Count(this=column.copy()))
        outputs.append(exp.alias_(nulls, f"c{index}_nulls"))
        if _ordered(field.type):
            outputs += [
                exp.alias_(exp.ApproxDistinct(this=column.copy()), f"c{index}_distinct"),
                exp.alias_(exp.Min(this=column.copy()), f"c{index}_min"),
                exp.alias_(exp.Max(this=column.copy()), f"c{index}_max"),
            ]
    return ReadQuery(exp.select(*outputs).from_(qualified_table(ref)), frozenset({ref}))


def select_all(ref: TableRef) -> ReadQuery:
    """`SELECT * FROM <ref>`."""
    return ReadQuery(exp.select("*").from_(qualified_table(ref)), frozenset({ref}))


def count_all(ref: TableRef) -> ReadQuery:
    """`SELECT COUNT(*) AS n FROM <ref>`."""
    counted = exp.select(exp.alias_(exp.Count(this=exp.Star()), "n")).from_(qualified_table(ref))
    return ReadQuery(counted, frozenset({ref}))


def read_stats(schema: pa.Schema, result: pa.Table) -> tuple[int, list[WarehouseColumn]]:
    """The row count and described columns from the one row `stats_query` returned."""
    row = {name: column_values(result.column(name))[0] for name in result.column_names}
    columns = [
        WarehouseColumn(
            name=field.name,
            type=str(field.type),
            nullable=field.nullable,
            null_count=int(row[f"c{index}_nulls"]),
            distinct_estimate=row.get(f"c{index}_distinct"),
            min=row.get(f"c{index}_min"),
            max=row.get(f"c{index}_max"),
        )
        for index, field in enumerate(schema)
    ]
    return int(row["n"]), columns
