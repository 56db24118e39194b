"""`avg` of a decimal column stays an exact decimal in the local lakehouse, as on Databricks.

DuckDB's `avg` of a DECIMAL is a DOUBLE, so `avg(price)` over `decimal(12,3)` answers
2.2916666666666665 where Databricks answers the decimal(16,7) 2.2916667 (its rule: `avg` of
decimal(p,s) is decimal(min(38, p+4), min(38, s+4)), rounded half up). The engine has no typed
overload to ask for, so the tree is rewritten before it is written as DuckDB SQL: `avg(c)` of a bare
column `c` that is `decimal(p,s)` in every table of the query that has a column of that name becomes

    CAST(sign(U) * ((2*abs(U) + n) // (2*n)) AS DECIMAL(38,0)) * 1e-t   (exact, half up)

with U the sum scaled to an integer of t = s+4 digits and n the count. Window averages
(`avg(c) OVER (...)`) and averages of expressions are left to DuckDB (a double): docs/type-semantics.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pyarrow as pa
from lakegate.common.contracts.runs import TableRef
from sqlglot import exp

#: The Arrow schema of a table the query reads, or None when it has none (a view).
SchemaLookup = Callable[[TableRef], pa.Schema | None]

MAX_PRECISION = 38


def _decimal_of(name: str, schemas: Iterable[pa.Schema]) -> tuple[int, int] | None:
    """(p, s) when every schema holding a column `name` (any case) holds it as the same decimal."""
    found: set[tuple[int, int] | None] = set()
    for schema in schemas:
        for field in schema:
            if field.name.lower() == name.lower():
                kind = field.type
                found.add((kind.precision, kind.scale) if pa.types.is_decimal(kind) else None)
    return found.pop() if len(found) == 1 else None


def _exact(column: exp.Expr, distinct: bool, precision: int, scale: int) -> exp.Expr:
    scaled = min(scale + 4, MAX_PRECISION)
    wrap = (lambda e: exp.Distinct(expressions=[e])) if distinct else (lambda e: e)
    total = exp.Sum(this=wrap(column.copy()))
    count = exp.Count(this=wrap(column.copy()))
    as_scaled = exp.cast(total, exp.DataType.build(f"DECIMAL(38, {scaled})"))
    unscaled = exp.cast(exp.Mul(this=as_scaled, expression=exp.Literal.number(10**scaled)), "HUGEINT")
    n = exp.Nullif(this=exp.cast(count, "HUGEINT"), expression=exp.Literal.number(0))
    twice = exp.Add(
        this=exp.Mul(this=exp.Literal.number(2), expression=exp.Abs(this=unscaled.copy())), expression=n.copy()
    )
    halves = exp.IntDiv(
        this=exp.Paren(this=twice), expression=exp.Paren(this=exp.Mul(this=exp.Literal.number(2), expression=n))
    )
    rounded = exp.Mul(this=exp.Anonymous(this="sign", expressions=[unscaled]), expression=exp.Paren(this=halves))
    unit = exp.cast(
        exp.Literal.string(f"{10**-scaled:.{scaled}f}" if scaled else "1"), f"DECIMAL({scaled + 1}, {scaled})"
    )
    value = exp.Mul(this=exp.cast(rounded, "DECIMAL(38, 0)"), expression=unit)
    return exp.cast(value, exp.DataType.build(f"DECIMAL({min(precision + 4, MAX_PRECISION)}, {scaled})"))


def exact_decimal_averages(tree: exp.Expr, tables: Iterable[TableRef], schema_of: SchemaLookup) -> exp.Expr:
    """`tree` with each plain `avg(<decimal column>)` rewritten to an exact decimal average."""
    averages = [avg for avg in tree.find_all(exp.Avg) if not isinstance(avg.parent, exp.Window)]
    if not averages:
        return tree
    schemas = [schema for schema in (schema_of(ref) for ref in tables) if schema is not None]
    for avg in averages:
        argument, distinct = avg.this, False
        if isinstance(argument, exp.Distinct) and len(argument.expressions) == 1:
            argument, distinct = argument.expressions[0], True
        if not isinstance(argument, exp.Column):
            continue
        shape = _decimal_of(argument.name, schemas)
        if shape is not None:
            avg.replace(_exact(argument, distinct, *shape))
    return tree
