"""The first wall in front of any warehouse: one read-only statement over the caller's own catalog.

A statement is parsed with sqlglot as Databricks SQL and must be exactly one of

    SELECT / WITH ... SELECT / VALUES / UNION ...   → `ReadQuery`
    SHOW TABLES [IN layer] [[LIKE] 'pattern']       → `ShowTables`   (answered from metadata)
    SHOW SCHEMAS                                    → `ShowSchemas`  (answered from metadata)
    DESCRIBE [TABLE] [EXTENDED] name                → `DescribeTarget` (answered from metadata)

Every node of a query is checked against `RULES` (writes hidden anywhere in the tree, SELECT INTO,
functions that read files or reach the engine's host, parameters), and every table reference must
resolve inside the tenant's catalog: `t` (bronze), `layer.t` or `<tenant catalog>.<layer>.t`. Table
functions, file paths, other catalogs and unknown schemas are refused, each with a `Refusal`
category and a message that says what to write instead. An unknown table is `NotFound` and lists
the tables that exist.

What comes out is warehouse-neutral: a `ReadQuery` is the parsed tree with every table written
`<catalog>.<layer>.<name>`, so a warehouse renders it in its own dialect (see `render_databricks`
and `lakegate.loader.warehouses.duckdbsql`). Parsing is the first wall, not the only one: the local
engine also runs sealed (see `lakegate.loader.warehouses.sqlengine`).

Before any of that, the statement's size is bounded (`sqlsize`): its length before tokenizing, its
nesting before parsing, and its parse tree (depth, nodes, set operations, CTEs, joins) before any
rule or resolver walks it; what is too large is refused as `TOO_LARGE`, naming the setting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from lakegate.common.contracts.runs import TableRef
from lakegate.common.errors import InvalidInput, NotFound
from lakegate.common.names import LAYERS
from lakegate.loader.sqlsize import SizeLimits, recursion_refusal, too_deeply_nested, too_large, too_many_chars
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, SqlglotError, TokenError

READ_DIALECT = "databricks"
DEFAULT_LAYER = "bronze"
TABLE_HINT = "name a table as `table` (bronze), `layer.table` or `catalog.layer.table`"


class Refusal(StrEnum):
    """Why the guard refused a statement."""

    SYNTAX = "syntax"
    MULTIPLE_STATEMENTS = "multiple_statements"
    NOT_A_READ = "not_a_read"
    OTHER_CATALOG = "other_catalog"
    FILE_ACCESS = "file_access"
    FORBIDDEN_FUNCTION = "forbidden_function"
    UNSUPPORTED = "unsupported"
    TOO_LARGE = "too_large"


class Refused(InvalidInput):
    """A statement the guard will not let through; `category` says which wall it hit."""

    def __init__(self, category: Refusal, message: str) -> None:
        super().__init__(message)
        self.category = category


#: Spark/Databricks `format.`path`` prefixes that read files instead of tables.
FILE_FORMATS = frozenset(
    {"parquet", "csv", "json", "delta", "text", "orc", "avro", "binaryfile", "cloud_files", "xml", "image", "tsv"}
)
#: Functions that read files or URLs; refused anywhere in a query. `read_*` and `*_scan` are too.
FILE_FUNCTIONS = frozenset(
    {"read_files", "cloud_files", "glob", "sniff_csv", "input_file_name", "list_secrets", "from_avro", "load"}
)
_FILE_PREFIXES = ("read_", "parquet_", "iceberg_", "delta_", "csv_", "json_scan", "ndjson_")
#: Functions that reach the engine's host, configuration, secrets or other systems.
SYSTEM_FUNCTIONS = frozenset(
    {
        "getenv", "current_setting", "set_config", "which_secret", "load_extension", "install_extension",
        "checkpoint", "force_checkpoint", "query", "query_table", "secret", "reflect", "java_method",
        "try_reflect", "http_request", "enable_logging", "disable_logging", "enable_profiling",
        "disable_profiling", "pragma", "system", "shell", "export_state", "import_state",
    }
)  # fmt: skip
_SYSTEM_PREFIXES = ("duckdb_", "pragma_", "sqlite_", "postgres_", "mysql_", "http_", "ai_", "vector_search", "_lg_")
_WRITES = (
    exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Copy, exp.LoadData, exp.TruncateTable, exp.DDL,
    exp.Drop, exp.Alter, exp.Command, exp.Set, exp.Cache, exp.Uncache, exp.Use, exp.Describe, exp.Pragma,
    exp.Transaction, exp.Commit, exp.Rollback, exp.Grant, exp.Revoke, exp.Analyze, exp.Show, exp.Refresh,
    exp.Kill, exp.Export, exp.Attach, exp.Detach, exp.Install, exp.Summarize,
)  # fmt: skip
_QUERIES = (exp.Select, exp.SetOperation, exp.Subquery, exp.Values)
_SHOW_TABLES = re.compile(
    r"^\s*TABLES(?:\s+(?:IN|FROM)\s+(?P<where>[`\w]+(?:\s*\.\s*[`\w]+)?))?(?:\s+(?:LIKE\s+)?'(?P<pattern>[^']*)')?\s*$",
    re.IGNORECASE,
)
_SHOW_SCHEMAS = re.compile(r"^\s*(?:SCHEMAS|DATABASES)\s*$", re.IGNORECASE)

Rule = Callable[[exp.Expr], Refused | None]
TablesIn = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class ReadQuery:
    """A query that passed the guard: every table in `statement` is written `<catalog>.<layer>.<name>`.

    `statement` is a SELECT, a set operation, a parenthesized query or VALUES.
    """

    statement: exp.Expr
    tables: frozenset[TableRef]


@dataclass(frozen=True)
class ShowTables:
    layer: str
    pattern: str | None


@dataclass(frozen=True)
class ShowSchemas:
    pass


@dataclass(frozen=True)
class DescribeTarget:
    ref: TableRef


Checked = ReadQuery | ShowTables | ShowSchemas | DescribeTarget


def _statement_kind(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return f"{node.this} {node.text('expression').split(' ')[0]}".strip().upper()
    return node.key.upper()


def function_name(node: exp.Func) -> str:
    """The name a function is called by, in lower case."""
    return node.name.lower() if isinstance(node, exp.Anonymous) else node.sql_name().lower()


def _no_writes(node: exp.Expr) -> Refused | None:
    if isinstance(node, _WRITES):
        return Refused(
            Refusal.NOT_A_READ, f"{_statement_kind(node)} is not allowed: queries are read-only, use SELECT only"
        )
    return None


def _no_select_into(node: exp.Expr) -> Refused | None:
    if isinstance(node, exp.Into):
        return Refused(Refusal.NOT_A_READ, "SELECT ... INTO is not allowed: queries are read-only, drop INTO")
    return None


def _no_outside_functions(node: exp.Expr) -> Refused | None:
    if not isinstance(node, exp.Func):
        return None
    name = function_name(node)
    if name in FILE_FUNCTIONS or name.startswith(_FILE_PREFIXES) or name.endswith("_scan"):
        return Refused(
            Refusal.FILE_ACCESS, f"function {name}() is not allowed: it reads files; query tables of your catalog"
        )
    if name in SYSTEM_FUNCTIONS or name.startswith(_SYSTEM_PREFIXES):
        return Refused(
            Refusal.FORBIDDEN_FUNCTION,
            f"function {name}() is not allowed: it reaches outside your tables; use ordinary SQL functions",
        )
    return None


def _no_parameters(node: exp.Expr) -> Refused | None:
    if isinstance(node, exp.Placeholder | exp.Parameter | exp.SessionParameter):
        return Refused(
            Refusal.UNSUPPORTED, "query parameters (?, :name, ${name}, @var) are not supported: write the values in"
        )
    return None


RULES: tuple[Rule, ...] = (_no_writes, _no_select_into, _no_outside_functions, _no_parameters)


def _first_line(exc: SqlglotError) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _parse_one(sql: str, limits: SizeLimits) -> exp.Expr:
    if (refusal := too_many_chars(len(sql), limits)) is not None:
        raise Refused(Refusal.TOO_LARGE, refusal)
    if "\x00" in sql:
        raise Refused(Refusal.SYNTAX, "the SQL contains a NUL character; remove it")
    dialect = Dialect.get_or_raise(READ_DIALECT)
    try:
        tokens = dialect.tokenize(sql)
        if (refusal := too_deeply_nested(tokens, limits)) is not None:
            raise Refused(Refusal.TOO_LARGE, refusal)
        statements = [s for s in dialect.parser().parse(tokens, sql) if s is not None]
    except (ParseError, TokenError) as exc:
        raise Refused(Refusal.SYNTAX, f"the SQL could not be parsed as Databricks SQL: {_first_line(exc)}") from exc
    except RecursionError as exc:
        raise Refused(Refusal.TOO_LARGE, recursion_refusal(limits)) from exc
    if not statements:
        raise Refused(Refusal.SYNTAX, "the SQL is empty: send one SELECT statement")
    if len(statements) > 1:
        raise Refused(
            Refusal.MULTIPLE_STATEMENTS, f"the SQL holds {len(statements)} statements; send exactly one statement"
        )
    if (refusal := too_large(statements[0], limits)) is not None:
        raise Refused(Refusal.TOO_LARGE, refusal)
    return statements[0]


def _check_rules(statement: exp.Expr) -> None:
    for node in statement.walk():
        for rule in RULES:
            refused = rule(node)
            if refused is not None:
                raise refused


def _not_a_query(statement: exp.Expr, sql: str) -> Refused:
    if isinstance(statement, _WRITES):
        kind = _statement_kind(statement)
        return Refused(Refusal.NOT_A_READ, f"{kind} is not allowed: only read statements run here; this is {kind}")
    first = sql.split()[0][:40] if sql.split() else ""
    return Refused(
        Refusal.NOT_A_READ,
        f"only SELECT, WITH, VALUES, SHOW TABLES and DESCRIBE are allowed (also UNION); this is `{first}`",
    )


@dataclass(frozen=True)
class Resolver:
    """Resolves table names inside one catalog; `tables_in(layer)` names the tables that exist."""

    catalog: str
    tables_in: TablesIn

    def layer(self, written: exp.Table | None, catalog: str, layer: str) -> str:
        """The layer a `[catalog.]layer` qualifier names, refusing anything outside the catalog."""
        shown = written.sql(READ_DIALECT) if written is not None else f"{catalog}.{layer}".strip(".")
        if layer.lower() in FILE_FORMATS:
            raise Refused(Refusal.FILE_ACCESS, f"file paths such as {shown} are not allowed; query tables by name")
        if catalog and catalog.lower() != self.catalog:
            raise Refused(
                Refusal.OTHER_CATALOG,
                f"catalog `{catalog}` is not yours: you can query only `{self.catalog}`; {TABLE_HINT}",
            )
        folded = (layer or DEFAULT_LAYER).lower()
        if folded not in LAYERS:
            raise Refused(
                Refusal.OTHER_CATALOG,
                f"schema `{layer}` does not exist in `{self.catalog}`: use bronze, silver or gold "
                "(SHOW TABLES IN silver lists a layer)",
            )
        return folded

    def table(self, table: exp.Table) -> TableRef:
        """The table a reference names; refuses table functions, paths and names outside the catalog."""
        name = _plain_name(table)
        layer = self.layer(table, table.catalog, table.db)
        if any(ch in name for ch in "/\\:") or name.startswith("~"):
            raise Refused(
                Refusal.FILE_ACCESS,
                f"file paths such as {table.sql(READ_DIALECT)} are not allowed; query tables of your catalog by name",
            )
        if "." in name:
            raise Refused(
                Refusal.UNSUPPORTED,
                f"{table.sql(READ_DIALECT)} is one quoted name with dots in it; quote each part alone: {TABLE_HINT}",
            )
        name = name.lower()
        existing = sorted(self.tables_in(layer))
        if name not in existing:
            raise NotFound(unknown_table(self.catalog, layer, name, existing))
        return TableRef(catalog=self.catalog, schema_name=layer, name=name)


def _plain_name(table: exp.Table) -> str:
    if isinstance(table.this, exp.Func):
        name = function_name(table.this)
        raise Refused(
            Refusal.FORBIDDEN_FUNCTION, f"table function {name}() is not allowed; query tables of your catalog by name"
        )
    if not isinstance(table.this, exp.Identifier):
        raise Refused(Refusal.UNSUPPORTED, f"`{table.sql(READ_DIALECT)}` is not a plain table name; {TABLE_HINT}")
    if table.args.get("version") is not None or table.args.get("when") is not None:
        raise Refused(Refusal.UNSUPPORTED, "time travel (VERSION AS OF / TIMESTAMP AS OF) is not supported")
    alias = table.args.get("alias")
    if alias is not None and not isinstance(alias.this, exp.Identifier | None):
        raise Refused(Refusal.UNSUPPORTED, f"`{table.sql(READ_DIALECT)}` is not a plain table reference")
    return table.name


def unknown_table(catalog: str, layer: str, name: str, existing: Sequence[str]) -> str:
    """Says a table is missing and which ones exist in its layer."""
    if not existing:
        return f"table {catalog}.{layer}.{name} does not exist: the {layer} layer has no tables yet"
    shown = ", ".join(existing[:50]) + (f" and {len(existing) - 50} more" if len(existing) > 50 else "")
    return f"table {catalog}.{layer}.{name} does not exist; tables in {layer}: {shown}"


def _cte_names(statement: exp.Expr) -> frozenset[str]:
    return frozenset(cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE))


def _qualify(statement: exp.Expr, resolver: Resolver) -> frozenset[TableRef]:
    """Write every table reference as `<catalog>.<layer>.<name>`; returns the tables named."""
    ctes = _cte_names(statement)
    found: set[TableRef] = set()
    for table in list(statement.find_all(exp.Table)):
        if not table.db and not table.catalog and isinstance(table.this, exp.Identifier) and table.name.lower() in ctes:
            continue
        ref = resolver.table(table)
        found.add(ref)
        if table.args.get("alias") is None:
            # Keep the name the query uses, so `orders.id` still resolves once the name is qualified.
            table.set("alias", exp.TableAlias(this=exp.to_identifier(ref.name)))
        table.set("this", exp.to_identifier(ref.name, quoted=True))
        table.set("db", exp.to_identifier(ref.schema_name, quoted=True))
        table.set("catalog", exp.to_identifier(ref.catalog, quoted=True))
    for column in statement.find_all(exp.Column):
        if column.args.get("catalog") is not None:
            resolver.layer(None, column.text("catalog"), column.text("db"))
        # `bronze.orders.id` → `orders.id`: the table's alias carries the qualification.
        column.set("db", None)
        column.set("catalog", None)
    return frozenset(found)


def check_query(statement: exp.Expr, resolver: Resolver) -> ReadQuery:
    """Check a parsed query node and qualify its tables."""
    if not isinstance(statement, _QUERIES):
        raise _not_a_query(statement, statement.sql(READ_DIALECT))
    _check_rules(statement)
    return ReadQuery(statement, _qualify(statement, resolver))


def _show(statement: exp.Command, resolver: Resolver) -> Checked:
    text = statement.text("expression")
    if _SHOW_SCHEMAS.match(text):
        return ShowSchemas()
    shown = _SHOW_TABLES.match(text)
    if shown is None:
        raise Refused(
            Refusal.UNSUPPORTED,
            f"SHOW {text.split(' ')[0].upper()} is not supported: use SHOW TABLES [IN layer] or SHOW SCHEMAS",
        )
    where = [part.strip().strip("`") for part in (shown["where"] or "").split(".") if part.strip()]
    catalog, layer = (where[0], where[1]) if len(where) == 2 else ("", where[0] if where else "")
    return ShowTables(resolver.layer(None, catalog, layer), shown["pattern"])


def _describe(statement: exp.Describe, resolver: Resolver) -> DescribeTarget:
    style = str(statement.args.get("style") or "").upper()
    kind = str(statement.args.get("kind") or "TABLE").upper()
    if not isinstance(statement.this, exp.Table) or kind != "TABLE" or style not in {"", "EXTENDED", "FORMATTED"}:
        raise Refused(
            Refusal.UNSUPPORTED,
            f"{statement.sql(READ_DIALECT)[:60]} is not supported: use DESCRIBE [TABLE] name, or describe_table",
        )
    return DescribeTarget(resolver.table(statement.this))


def check(sql: str, catalog: str, tables_in: TablesIn, limits: SizeLimits | None = None) -> Checked:
    """Check one Databricks SQL statement for `catalog`: a read query, SHOW TABLES or DESCRIBE."""
    statement = _parse_one(sql, limits or SizeLimits())
    resolver = Resolver(catalog.lower(), tables_in)
    if isinstance(statement, exp.Command) and str(statement.this).upper() == "SHOW":
        return _show(statement, resolver)
    if isinstance(statement, exp.Describe):
        return _describe(statement, resolver)
    if not isinstance(statement, _QUERIES):
        raise _not_a_query(statement, sql)
    return check_query(statement, resolver)


def check_select(sql: str, catalog: str, tables_in: TablesIn, limits: SizeLimits | None = None) -> ReadQuery:
    """Check SQL that must be one read query (gold view definitions)."""
    checked = check(sql, catalog, tables_in, limits)
    if not isinstance(checked, ReadQuery):
        raise Refused(Refusal.NOT_A_READ, "a view is defined by one SELECT statement, not SHOW or DESCRIBE")
    return checked


def qualified_table(ref: TableRef) -> exp.Table:
    """`<catalog>.<layer>.<name>` as a reference node, aliased by its name, as in every `ReadQuery`."""
    return exp.table_(
        exp.to_identifier(ref.name, quoted=True),
        db=exp.to_identifier(ref.schema_name, quoted=True),
        catalog=exp.to_identifier(ref.catalog, quoted=True),
        alias=ref.name,
    )


def render_databricks(statement: exp.Expr) -> str:
    """The statement as Databricks SQL, without comments."""
    return statement.sql(dialect=READ_DIALECT, comments=False)
