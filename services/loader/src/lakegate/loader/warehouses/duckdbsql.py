"""A guarded query as DuckDB SQL for the local lakehouse: engine names for tables, gold views inlined.

The guard hands over a tree whose tables are `<catalog>.<layer>.<name>`. Here each table becomes
the name the engine registers it under (`_lg_<layer>__<name>`, a name no caller can spell into
another table), each gold view becomes a parenthesized copy of its own checked definition
(recursively; a view that reaches itself is refused), and sqlglot writes the tree as DuckDB SQL
without comments.

Each view passed the guard's size limits alone, but views inlined into views multiply: a view that
reads another one 100 times, stacked three deep, would copy the first a million times. So the
nodes inlined are counted against the same `SizeLimits.nodes` as the query before each copy is
made, and a tree that had views written in is held to `SizeLimits.depth`. Only view bodies count:
the query itself passed the guard already, or is one lakegate built (a transform over a wide table,
statistics of every column), which the caller's limits are not for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lakegate.common.contracts.runs import TableRef
from lakegate.common.errors import InvalidInput
from lakegate.loader.sqlguard import ReadQuery
from lakegate.loader.sqlsize import SizeLimits, measure
from lakegate.loader.warehouses.decimalavg import SchemaLookup, exact_decimal_averages
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

ENGINE_DIALECT = "duckdb"
#: How deep views may stack on views; deeper is almost surely a mistake.
MAX_VIEW_DEPTH = 16

#: The checked definition of a gold view, or None when the table is not a view.
ViewLookup = Callable[[TableRef], ReadQuery | None]


@dataclass(frozen=True)
class EngineQuery:
    sql: str
    #: Engine name → the table it stands for; the engine registers exactly these.
    sources: dict[str, TableRef]


def engine_name(ref: TableRef) -> str:
    """The name a table is registered under in the engine."""
    return f"_lg_{ref.schema_name}__{ref.name}"


def _ref(table: exp.Table) -> TableRef | None:
    if not table.catalog:  # a CTE
        return None
    return TableRef(catalog=table.catalog, schema_name=table.db, name=table.name)


@dataclass
class _Budget:
    """Nodes of view bodies that may still be written into a query."""

    limits: SizeLimits
    root: TableRef | None
    nodes: int = field(init=False)

    def __post_init__(self) -> None:
        self.nodes = self.limits.nodes

    @property
    def spent(self) -> bool:
        """True once any view was written in."""
        return self.nodes < self.limits.nodes

    def spend(self, tree: exp.Expr) -> None:
        self.nodes -= measure(tree).nodes
        if self.nodes < 0:
            what = (
                f"view {self.root} with the views it reads" if self.root else "the query with the gold views it reads"
            )
            raise InvalidInput(
                f"{what} would expand to more than {self.limits.nodes} parse-tree nodes once each view is written "
                f"in ({self.limits.setting('nodes')}): read fewer views, or views that read fewer views, in one query"
            )


def _inline(
    tree: exp.Expr, views: ViewLookup, sources: dict[str, TableRef], path: tuple[TableRef, ...], budget: _Budget
) -> exp.Expr:
    for table in list(tree.find_all(exp.Table)):
        ref = _ref(table)
        if ref is None:
            continue
        alias = table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(ref.name))
        view = views(ref) if ref.schema_name == "gold" else None
        if view is None:
            sources[engine_name(ref)] = ref
            table.set("this", exp.to_identifier(engine_name(ref)))
            table.set("db", None)
            table.set("catalog", None)
            table.set("alias", alias)
            continue
        if ref in path:
            cycle = " → ".join(str(r) for r in (*path[path.index(ref) :], ref))
            raise InvalidInput(f"gold views refer to each other in a cycle: {cycle}; redefine one of them")
        if len(path) >= MAX_VIEW_DEPTH:
            raise InvalidInput(f"gold view {path[0]} stacks more than {MAX_VIEW_DEPTH} views deep; flatten it")
        budget.spend(view.statement)
        body = _inline(view.statement.copy(), views, sources, (*path, ref), budget)
        table.replace(exp.Subquery(this=body, alias=alias))
    return tree


def to_engine(
    query: ReadQuery,
    views: ViewLookup,
    *,
    limit: int | None,
    root: TableRef | None = None,
    schema_of: SchemaLookup | None = None,
    limits: SizeLimits | None = None,
) -> EngineQuery:
    """DuckDB SQL for a guarded query, at most `limit` rows when given.

    With `schema_of`, `avg` of a decimal column stays a decimal, as on Databricks (`decimalavg`).
    """
    sources: dict[str, TableRef] = {}
    budget = _Budget(limits or SizeLimits(), root)
    body = _inline(query.statement.copy(), views, sources, (root,) if root else (), budget)
    if budget.spent and (depth := measure(body).depth) > budget.limits.depth:
        raise InvalidInput(
            f"with the gold views it reads written in, the query is {depth} levels deep, more than the "
            f"{budget.limits.depth} accepted ({budget.limits.setting('depth')}): read views that nest less deeply"
        )
    if schema_of is not None:
        body = exact_decimal_averages(body, sources.values(), schema_of)
    wrapped = exp.select("*").from_(exp.Subquery(this=body, alias=exp.TableAlias(this=exp.to_identifier("_lg_result"))))
    if limit is not None:
        wrapped = wrapped.limit(limit)
    try:
        sql = wrapped.sql(dialect=ENGINE_DIALECT, comments=False, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInput(f"the SQL uses something the local lakehouse cannot run: {first}") from exc
    return EngineQuery(sql, sources)
