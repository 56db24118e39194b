"""The first wall in front of the warehouse: only one read-only query over the caller's own catalog.

A query is parsed with sqlglot as Databricks SQL, then

1. it must be exactly one statement, a SELECT (WITH ... SELECT and UNION / INTERSECT / EXCEPT too);
2. every node is checked against `RULES`, small functions that each refuse one kind of danger
   (writes anywhere in the tree, SELECT INTO, file-reading functions, parameters);
3. every table reference must resolve inside the tenant's catalog: `t` (bronze), `layer.t` or
   `<tenant catalog>.<layer>.t`; a table function, a file path, another catalog or an unknown
   layer is refused, and an unknown table is reported with the tables that do exist;
4. table references are rewritten in the syntax tree to the names the engine registers, the tree is
   transpiled to DuckDB by sqlglot, and the whole query is wrapped with a row cap of max_rows + 1
   so that the caller can tell when rows were cut.

Parsing is not the only wall: the engine registers only the tables a query names, with file access
and Python variable lookups turned off. New rules go into `RULES`; each returns why it refuses a
node, or None.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlglot
from lakegate.common.contracts.runs import TableRef
from lakegate.common.errors import InvalidInput, NotFound
from lakegate.common.names import LAYERS
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, TokenError

READ_DIALECT = "databricks"
ENGINE_DIALECT = "duckdb"
MAX_SQL_CHARS = 100_000
DEFAULT_LAYER = "bronze"
_TABLE_HINT = "name a table as `table` (bronze), `layer.table` or `catalog.layer.table`"

#: Spark/Databricks `format.`path`` prefixes that read files instead of tables.
FILE_FORMATS = frozenset({"parquet", "csv", "json", "delta", "text", "orc", "avro", "binaryfile", "cloud_files"})
#: Functions that read files or run SQL of their own; refused anywhere in a query.
FILE_FUNCTIONS = frozenset(
    {
        "read_files",
        "query",
        "query_table",
        "glob",
        "sniff_csv",
        "parquet_scan",
        "parquet_metadata",
        "parquet_schema",
        "parquet_file_metadata",
        "delta_scan",
        "iceberg_scan",
        "csv_scan",
        "json_scan",
        "cloud_files",
        "getenv",
    }
)
_WRITES = (
    exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Copy, exp.LoadData, exp.TruncateTable, exp.DDL,
    exp.Drop, exp.Alter, exp.Command, exp.Set, exp.Cache, exp.Uncache, exp.Use, exp.Describe, exp.Pragma,
    exp.Transaction, exp.Commit, exp.Rollback, exp.Grant, exp.Revoke, exp.Analyze, exp.Show, exp.Refresh,
    exp.Kill, exp.Export, exp.Attach, exp.Detach, exp.Install, exp.Summarize,
)  # fmt: skip
_QUERIES = (exp.Select, exp.SetOperation, exp.Subquery)

Rule = Callable[[exp.Expr], str | None]
TablesIn = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class GuardedQuery:
    """A query that passed the guard, ready for the engine."""

    sql: str
    #: Engine name → the table it stands for; the engine registers exactly these.
    sources: dict[str, TableRef]


def _statement_kind(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    return node.key.upper()


def _no_writes(node: exp.Expr) -> str | None:
    if isinstance(node, _WRITES):
        return f"{_statement_kind(node)} is not allowed: queries are read-only, use SELECT only"
    return None


def _no_select_into(node: exp.Expr) -> str | None:
    if isinstance(node, exp.Into):
        return "SELECT ... INTO is not allowed: queries are read-only, drop the INTO clause"
    return None


def function_name(node: exp.Func) -> str:
    """The name a function is called by, in lower case."""
    return node.name.lower() if isinstance(node, exp.Anonymous) else node.sql_name().lower()


def _no_file_functions(node: exp.Expr) -> str | None:
    if isinstance(node, exp.Func):
        name = function_name(node)
        if name in FILE_FUNCTIONS or name.startswith("read_"):
            return f"function {name}() is not allowed: it reads files; query tables of your catalog by name"
    return None


def _no_parameters(node: exp.Expr) -> str | None:
    if isinstance(node, exp.Placeholder | exp.Parameter):
        return "query parameters (?, :name, ${name}) are not supported: write the values into the SQL"
    return None


RULES: tuple[Rule, ...] = (_no_writes, _no_select_into, _no_file_functions, _no_parameters)


def _parse_one(sql: str) -> exp.Expr:
    if len(sql) > MAX_SQL_CHARS:
        raise InvalidInput(f"the SQL is {len(sql)} characters long; send at most {MAX_SQL_CHARS}")
    try:
        statements = [s for s in sqlglot.parse(sql, read=READ_DIALECT) if s is not None]
    except (ParseError, TokenError) as exc:
        raise InvalidInput(f"the SQL could not be parsed as Databricks SQL: {_first_line(exc)}") from exc
    except RecursionError as exc:
        raise InvalidInput("the SQL is nested too deeply to check; simplify it") from exc
    if not statements:
        raise InvalidInput("the SQL is empty: send one SELECT statement")
    if len(statements) > 1:
        raise InvalidInput(f"the SQL holds {len(statements)} statements; send exactly one SELECT statement")
    statement = statements[0]
    if not isinstance(statement, _QUERIES):
        kind = _statement_kind(statement) if isinstance(statement, _WRITES) else f"`{sql.split()[0][:40]}`"
        raise InvalidInput(f"only SELECT queries are allowed (also WITH ... SELECT and UNION); this is {kind}")
    return statement


def _first_line(exc: SqlglotError) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _check_rules(statement: exp.Expr) -> None:
    for node in statement.walk():
        for rule in RULES:
            reason = rule(node)
            if reason is not None:
                raise InvalidInput(reason)


def engine_name(layer: str, table: str) -> str:
    """The name a table is registered under in the engine; no query can spell it into another table."""
    return f"_lg_{layer}__{table}"


@dataclass(frozen=True)
class _Resolver:
    catalog: str
    tables_in: TablesIn
    ctes: frozenset[str]

    def resolve(self, table: exp.Table) -> tuple[str, TableRef] | None:
        """The engine name and table a reference stands for; None for a reference to a CTE."""
        name = self._plain_name(table)
        layer, catalog = table.db.lower(), table.catalog.lower()
        if layer in FILE_FORMATS or any(ch in name for ch in "/\\:."):
            raise InvalidInput(
                f"file paths such as {table.sql(READ_DIALECT)} are not allowed; query tables of your catalog by name"
            )
        if not layer and name.lower() in self.ctes:
            return None
        if catalog and catalog != self.catalog:
            raise InvalidInput(
                f"catalog `{table.catalog}` is not yours: you can query only `{self.catalog}`; {_TABLE_HINT}"
            )
        layer = layer or DEFAULT_LAYER
        if layer not in LAYERS:
            raise InvalidInput(f"schema `{table.db}` does not exist in `{self.catalog}`: use bronze, silver or gold")
        name = name.lower()
        existing = sorted(self.tables_in(layer))
        if name not in existing:
            raise NotFound(_unknown_table(self.catalog, layer, name, existing))
        return engine_name(layer, name), TableRef(catalog=self.catalog, schema_name=layer, name=name)

    @staticmethod
    def _plain_name(table: exp.Table) -> str:
        if isinstance(table.this, exp.Func):
            name = function_name(table.this)
            raise InvalidInput(f"table function {name}() is not allowed; query tables of your catalog by name")
        if not isinstance(table.this, exp.Identifier):
            raise InvalidInput(f"`{table.sql(READ_DIALECT)}` is not a plain table name; {_TABLE_HINT}")
        if table.args.get("version") is not None:
            raise InvalidInput("time travel (VERSION AS OF / TIMESTAMP AS OF) is not supported; query the table")
        alias = table.args.get("alias")
        if alias is not None and not isinstance(alias.this, exp.Identifier):
            raise InvalidInput(f"`{table.sql(READ_DIALECT)}` is not a plain table reference; {_TABLE_HINT}")
        return table.name


def _unknown_table(catalog: str, layer: str, name: str, existing: Sequence[str]) -> str:
    if not existing:
        return f"table {catalog}.{layer}.{name} does not exist: the {layer} layer has no tables yet"
    shown = ", ".join(existing[:50]) + (f" and {len(existing) - 50} more" if len(existing) > 50 else "")
    return f"table {catalog}.{layer}.{name} does not exist; tables in {layer}: {shown}"


def _rewrite_tables(statement: exp.Expr, resolver: _Resolver) -> dict[str, TableRef]:
    sources: dict[str, TableRef] = {}
    for table in list(statement.find_all(exp.Table)):
        resolved = resolver.resolve(table)
        if resolved is None:
            continue
        registered, ref = resolved
        sources[registered] = ref
        if table.args.get("alias") is None:
            # Keep the name the query uses, so `orders.id` still resolves after the rewrite.
            table.set("alias", exp.TableAlias(this=exp.to_identifier(ref.name)))
        table.set("this", exp.to_identifier(registered))
        table.set("db", None)
        table.set("catalog", None)
    for column in statement.find_all(exp.Column):
        # `bronze.orders.id` → `orders.id`: the table alias carries the qualification now.
        column.set("db", None)
        column.set("catalog", None)
    return sources


def guard(sql: str, catalog: str, tables_in: TablesIn, max_rows: int) -> GuardedQuery:
    """Check one Databricks SQL query for `catalog` and translate it to capped DuckDB SQL."""
    statement = _parse_one(sql)
    _check_rules(statement)
    ctes = frozenset(cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE))
    sources = _rewrite_tables(statement, _Resolver(catalog.lower(), tables_in, ctes))
    result = exp.Subquery(this=statement, alias=exp.TableAlias(this=exp.to_identifier("_lg_result")))
    capped = exp.select("*").from_(result).limit(max_rows + 1)
    try:
        engine_sql = capped.sql(dialect=ENGINE_DIALECT, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise InvalidInput(f"the SQL uses something the local lakehouse cannot run: {_first_line(exc)}") from exc
    return GuardedQuery(engine_sql, sources)
