"""A silver spec, checked against its bronze table and built into one SELECT as a syntax tree.

Each step becomes one CTE over the previous one, so every step sees exactly what the steps before it
produced, and the statement reads in the order the spec was written:

    WITH s0_rename AS (SELECT `id`, `name` AS `customer` FROM `tenant_a`.`bronze`.`customers`),
         s1_dedupe AS (SELECT * FROM s0_rename QUALIFY ROW_NUMBER() OVER (PARTITION BY `id`
                       ORDER BY `updated_at` DESC NULLS LAST, ...) = 1)
    SELECT `id`, `customer` FROM s1_dedupe

Without steps the statement is `SELECT DISTINCT * FROM <bronze>`: types kept, exact duplicates gone.
Nothing here is pasted as text: names become quoted identifiers and values typed literals, and every
mistake is an `InvalidInput` that names the step (`steps[2]`) and the column. The tree is
warehouse-neutral; each warehouse renders it in its own dialect.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
from lakegate.common.contracts.runs import TableRef
from lakegate.common.contracts.transforms import (
    Cast,
    Dedupe,
    DropNull,
    FillNull,
    Filter,
    Rename,
    SilverSpec,
    SilverStep,
    Trim,
)
from lakegate.common.errors import InvalidInput
from lakegate.loader.sqlguard import ReadQuery, qualified_table
from lakegate.loader.sqltypes import CAST_HINT, cast_target, databricks_type, is_nested, is_text
from sqlglot import exp

_NEW_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class PlannedColumn:
    name: str
    type: pa.DataType
    source_type: str = ""  # the bronze column's type, kept through renames and casts
    expression: exp.Expr | None = None  # None: the column passes through unchanged


@dataclass(frozen=True)
class SilverPlan:
    """The statement that builds a silver table, and the columns it produces."""

    query: ReadQuery
    columns: list[PlannedColumn]


class _Columns:
    """The columns as the steps so far left them, looked up without regard to case (as Databricks does)."""

    def __init__(self, columns: list[PlannedColumn]) -> None:
        self.items = columns

    def find(self, where: str, name: str) -> PlannedColumn:
        matches = [c for c in self.items if c.name == name] or [c for c in self.items if c.name.lower() == name.lower()]
        if not matches:
            raise InvalidInput(f"{where}: column {name!r} does not exist; columns: {', '.join(self.names())}")
        if len(matches) > 1:
            raise InvalidInput(f"{where}: column {name!r} is ambiguous; write it as one of {matches[0].name!r}, ...")
        return matches[0]

    def names(self) -> list[str]:
        return [c.name for c in self.items]

    def passed_through(self) -> _Columns:
        return _Columns([replace(c, expression=None) for c in self.items])


def _ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def _col(name: str) -> exp.Column:
    return exp.column(_ident(name))


def _projection(columns: Sequence[PlannedColumn]) -> list[exp.Expr]:
    return [_col(c.name) if c.expression is None else exp.alias_(c.expression, _ident(c.name)) for c in columns]


def _literal(where: str, column: PlannedColumn, value: Any) -> exp.Expr:
    """`value` as a SQL literal of the column's type; refused when it cannot be one."""
    type_ = column.type
    shown = f"{where}: value {value!r} does not fit column {column.name!r} ({databricks_type(type_)})"
    if value is None or isinstance(value, list | dict) or is_nested(type_) or pa.types.is_binary(type_):
        raise InvalidInput(f"{shown}; give a single value of that type")
    if isinstance(value, bool) != pa.types.is_boolean(type_):
        raise InvalidInput(f"{shown}; booleans go only with boolean columns")
    try:
        typed = pa.scalar(value).cast(type_).as_py()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError) as exc:
        raise InvalidInput(f"{shown}: {exc}") from exc
    if isinstance(typed, bool):
        return exp.Boolean(this=typed)
    if isinstance(typed, int | float) and not isinstance(typed, bool):
        if typed != typed or typed in (float("inf"), float("-inf")):
            raise InvalidInput(f"{shown}; NaN and infinities cannot be written as literals")
        return exp.Literal.number(repr(typed))
    if isinstance(typed, str):
        return exp.Literal.string(typed)
    if isinstance(typed, decimal.Decimal | dt.date | dt.datetime):
        text = typed.isoformat() if isinstance(typed, dt.date) else format(typed, "f")
        if isinstance(typed, dt.datetime) and typed.tzinfo is not None:
            text = typed.astimezone(dt.UTC).replace(tzinfo=None).isoformat()
        return exp.cast(exp.Literal.string(text), _sql_type(type_))
    raise InvalidInput(f"{shown}; this column type takes no literal here")


def _sql_type(type_: pa.DataType) -> exp.DataType:
    return exp.DataType.build(databricks_type(type_), dialect="databricks")


def _rename(where: str, step: Rename, columns: _Columns) -> exp.Select:
    column = columns.find(where, step.column)
    if not _NEW_NAME.match(step.to):
        raise InvalidInput(f"{where}: new name {step.to!r} is not valid: use letters, digits and _, not first a digit")
    taken = [c.name for c in columns.items if c is not column and c.name.lower() == step.to.lower()]
    if taken:
        raise InvalidInput(f"{where}: cannot rename {column.name!r} to {step.to!r}: column {taken[0]!r} exists")
    renamed = [
        replace(c, name=step.to, expression=_col(c.name)) if c is column else replace(c, expression=None)
        for c in columns.items
    ]
    columns.items = renamed
    return exp.select(*_projection(renamed))


def _cast(where: str, step: Cast, columns: _Columns) -> exp.Select:
    column = columns.find(where, step.column)
    target = cast_target(step.to)
    if target is None:
        raise InvalidInput(f"{where}: {step.to!r} is not a type a cast may target: {CAST_HINT}")
    if (is_nested(column.type) or pa.types.is_binary(column.type)) and not is_text(target.arrow):
        raise InvalidInput(
            f"{where}: column {column.name!r} is {databricks_type(column.type)}, which casts only to string"
        )
    caster = exp.TryCast if step.on_error == "null" else exp.Cast
    cast = caster(this=_col(column.name), to=target.sql_type)
    return _replace_column(columns, column, replace(column, type=target.arrow, expression=cast))


def _replace_column(columns: _Columns, old: PlannedColumn, new: PlannedColumn) -> exp.Select:
    columns.items = [new if c is old else replace(c, expression=None) for c in columns.items]
    return exp.select(*_projection(columns.items))


def _trim(where: str, step: Trim, columns: _Columns) -> exp.Select:
    if step.columns is None:
        chosen = [c for c in columns.items if is_text(c.type)]
    else:
        if not step.columns:
            raise InvalidInput(f"{where}: `columns` is empty; name the columns to trim, or omit it to trim all")
        chosen = [columns.find(where, name) for name in step.columns]
    for column in chosen:
        if not is_text(column.type):
            raise InvalidInput(
                f"{where}: column {column.name!r} is {databricks_type(column.type)}; trim works on strings "
                "(cast it to string first)"
            )
    ids = {id(c) for c in chosen}

    def trimmed(c: PlannedColumn) -> PlannedColumn:
        if id(c) not in ids:
            return replace(c, expression=None)
        value: exp.Expr = exp.Trim(this=_col(c.name))
        if step.empty_as_null:
            value = exp.Nullif(this=value, expression=exp.Literal.string(""))
        return replace(c, expression=value)

    columns.items = [trimmed(c) for c in columns.items]
    return exp.select(*_projection(columns.items))


def _fill_null(where: str, step: FillNull, columns: _Columns) -> exp.Select:
    column = columns.find(where, step.column)
    filled = exp.Coalesce(this=_col(column.name), expressions=[_literal(where, column, step.value)])
    return _replace_column(columns, column, replace(column, expression=filled))


def _all_of(conditions: Sequence[exp.Expr]) -> exp.Expr:
    combined = conditions[0]
    for condition in conditions[1:]:
        combined = exp.and_(combined, condition)
    return combined


def _drop_null(where: str, step: DropNull, columns: _Columns) -> exp.Select:
    if not step.columns:
        raise InvalidInput(f"{where}: `columns` is empty; name the columns that must not be NULL")
    chosen = [columns.find(where, name) for name in step.columns]
    kept = [exp.not_(exp.Is(this=_col(c.name), expression=exp.Null())) for c in chosen]
    return exp.select("*").where(_all_of(kept))


_COMPARISONS: dict[str, Callable[[exp.Expr, exp.Expr], exp.Expr]] = {
    "=": lambda a, b: exp.EQ(this=a, expression=b),
    "!=": lambda a, b: exp.NEQ(this=a, expression=b),
    "<": lambda a, b: exp.LT(this=a, expression=b),
    "<=": lambda a, b: exp.LTE(this=a, expression=b),
    ">": lambda a, b: exp.GT(this=a, expression=b),
    ">=": lambda a, b: exp.GTE(this=a, expression=b),
}


def _condition(where: str, step: Filter, column: PlannedColumn) -> exp.Expr:
    ref = _col(column.name)
    if step.op in ("is_null", "is_not_null"):
        if step.value is not None:
            raise InvalidInput(f"{where}: `{step.op}` takes no value; remove `value`")
        is_null = exp.Is(this=ref, expression=exp.Null())
        return is_null if step.op == "is_null" else exp.not_(is_null)
    if step.op in ("in", "not_in"):
        if not isinstance(step.value, list) or not step.value:
            raise InvalidInput(f"{where}: `{step.op}` needs a non-empty list of values")
        inside = exp.In(this=ref, expressions=[_literal(where, column, v) for v in step.value])
        return inside if step.op == "in" else exp.not_(inside)
    if step.op == "like":
        if not is_text(column.type) or not isinstance(step.value, str):
            raise InvalidInput(f"{where}: `like` needs a string column and a string pattern such as 'A%'")
        return exp.Like(this=ref, expression=exp.Literal.string(step.value))
    if is_nested(column.type):
        raise InvalidInput(f"{where}: column {column.name!r} is {databricks_type(column.type)} and cannot be compared")
    return _COMPARISONS[step.op](ref, _literal(where, column, step.value))


def _filter(where: str, step: Filter, columns: _Columns) -> exp.Select:
    return exp.select("*").where(_condition(where, step, columns.find(where, step.column)))


def _dedupe(where: str, step: Dedupe, columns: _Columns) -> exp.Select:
    if not step.keys:
        raise InvalidInput(f"{where}: dedupe needs `keys`, the columns that identify a row")
    keys = [columns.find(where, name) for name in step.keys]
    if len({k.name for k in keys}) != len(keys):
        raise InvalidInput(f"{where}: `keys` names a column twice")
    order: list[exp.Ordered] = []
    if step.latest_by is not None:
        latest = columns.find(where, step.latest_by)
        if is_nested(latest.type):
            raise InvalidInput(f"{where}: `latest_by` column {latest.name!r} has no order; pick a scalar column")
        order.append(exp.Ordered(this=_col(latest.name), desc=True, nulls_first=False))
    # The remaining scalar columns break ties, so the same input always keeps the same row.
    chosen = {k.name for k in keys} | ({order[0].this.name} if order else set())
    order += [
        exp.Ordered(this=_col(c.name), desc=False, nulls_first=False)
        for c in columns.items
        if c.name not in chosen and not is_nested(c.type) and not pa.types.is_binary(c.type)
    ]
    rank = exp.Window(
        this=exp.RowNumber(),
        partition_by=[_col(k.name) for k in keys],
        order=exp.Order(expressions=order) if order else None,
    )
    return exp.select("*").qualify(exp.EQ(this=rank, expression=exp.Literal.number(1)))


_STEPS: dict[type[Any], Callable[[str, Any, _Columns], exp.Select]] = {
    Rename: _rename,
    Cast: _cast,
    Trim: _trim,
    FillNull: _fill_null,
    DropNull: _drop_null,
    Filter: _filter,
    Dedupe: _dedupe,
}


def silver_target(source: TableRef, spec: SilverSpec | None) -> TableRef:
    """The silver table a transform writes: `spec.target_name`, or the bronze table's name."""
    name = spec.target_name if spec is not None and spec.target_name else source.name
    if not re.match(r"^[a-z_][a-z0-9_]*$", name):
        raise InvalidInput(f"target_name {name!r} is not a valid table name: use a-z, 0-9 and _, not first a digit")
    return TableRef(catalog=source.catalog, schema_name="silver", name=name)


def plan_silver(source: TableRef, schema: pa.Schema, spec: SilverSpec | None) -> SilverPlan:
    """Check the spec against the bronze schema and build the statement that makes the silver table."""
    bronze = qualified_table(source)
    planned = [PlannedColumn(f.name, f.type, databricks_type(f.type)) for f in schema]
    steps: list[SilverStep] = spec.steps if spec is not None else []
    if not steps:
        statement = exp.select("*").distinct().from_(bronze)
        return SilverPlan(ReadQuery(statement, frozenset({source})), planned)
    columns = _Columns(planned)
    previous: exp.Expr = bronze
    ctes: list[tuple[str, exp.Select]] = []
    for index, step in enumerate(steps):
        where = f"steps[{index}] ({step.kind})"
        select = _STEPS[type(step)](where, step, columns).from_(previous)
        name = f"s{index}_{step.kind}"
        ctes.append((name, select))
        previous = exp.to_table(name)
        columns = columns.passed_through()
    statement = exp.select(*_projection(columns.items)).from_(previous)
    for name, select in ctes:
        statement = statement.with_(name, as_=select)
    return SilverPlan(ReadQuery(statement, frozenset({source})), columns.items)
