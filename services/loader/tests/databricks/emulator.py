"""A small Databricks for tests: a recording DB-API connection over DuckDB, and a Volume on a directory.

`Workspace` keeps Unity Catalog's three-level names as DuckDB catalogs and schemas, Volumes as
directories, and each table's properties and history beside them. Every statement the warehouse
sends is recorded, must parse as Databricks SQL (sqlglot's `databricks` dialect), and is then
answered: most by running it on DuckDB after sqlglot translates it, the rest (`COPY INTO`,
`SHOW TBLPROPERTIES`, `DESCRIBE HISTORY`, `CREATE CATALOG`, `CREATE VOLUME`, table properties) from
the state kept here. Failures are raised as the connector raises them (`ServerOperationError` with a
Databricks error class), so the warehouse's error handling is exercised too.

It is a real implementation of the DB-API surface lakegate uses, not a mock: nothing here asserts
which calls happened; tests read `Workspace.statements` and the tables.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from databricks.sql.exc import ServerOperationError
from lakegate.common.errors import NotFound
from sqlglot import exp
from sqlglot.errors import ParseError

_MISSING = re.compile(r"does not exist|not found", re.IGNORECASE)


def _name(table: exp.Table) -> str:
    return ".".join(part.lower() for part in (table.catalog, table.db, table.name) if part)


@dataclass
class Workspace:
    """Catalogs, schemas, tables, views, Volumes, table properties and history; every statement recorded."""

    volumes: Path
    statements: list[str] = field(default_factory=list)
    properties: dict[str, dict[str, str]] = field(default_factory=dict)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: (text in a statement, error): the next statement containing the text fails with the error, once.
    failures: list[tuple[str, Exception]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.db = duckdb.connect(":memory:")
        self.db.execute("SET TimeZone = 'UTC'")
        self.lock = threading.Lock()

    def close(self) -> None:
        self.db.close()

    def connect(self) -> RecordingConnection:
        """A new connection, as `databricks.sql.connect(...)` returns one."""
        return RecordingConnection(self)

    def create_catalog(self, name: str) -> None:
        if name.lower() not in {
            r[0] for r in self.db.execute("SELECT database_name FROM duckdb_databases()").fetchall()
        }:
            self.db.execute(f"ATTACH ':memory:' AS \"{name.lower()}\"")

    def volume_directory(self, path: str) -> Path:
        """The directory behind `/Volumes/<catalog>/<schema>/<volume>/...`."""
        assert path.startswith("/Volumes/"), path
        return self.volumes / path.removeprefix("/Volumes/")

    # answering

    def execute(self, sql: str) -> pa.Table | None:
        with self.lock:
            self.statements.append(sql)
            for index, (text, error) in enumerate(self.failures):
                if text in sql:
                    del self.failures[index]
                    raise error
            try:
                tree = sqlglot.parse_one(sql, read="databricks")
            except ParseError as exc:
                raise ServerOperationError(f"[PARSE_SYNTAX_ERROR] {exc}") from exc
            try:
                return self._answer(tree, sql)
            except duckdb.Error as exc:
                kind = "TABLE_OR_VIEW_NOT_FOUND" if _MISSING.search(str(exc)) else "INTERNAL_ERROR"
                raise ServerOperationError(f"[{kind}] {exc}") from exc

    def _answer(self, tree: exp.Expr, sql: str) -> pa.Table | None:
        if isinstance(tree, exp.Command):
            return self._command(sql)
        if isinstance(tree, exp.Copy):
            return self._copy(tree)
        if isinstance(tree, exp.Describe) and str(tree.args.get("style") or "").upper() == "HISTORY":
            return self._history(tree.this)
        if isinstance(tree, exp.Describe):
            return self._describe(tree.this)
        if isinstance(tree, exp.Create) and str(tree.args.get("kind")).upper() == "TABLE":
            return self._create_table(tree)
        if isinstance(tree, exp.Alter) and any(isinstance(a, exp.AlterSet) for a in tree.args.get("actions") or []):
            return self._set_properties(tree)
        if isinstance(tree, exp.Select) and self._catalog_views(tree) is not None:
            return self._catalog_views(tree)
        if isinstance(tree, exp.Select):
            self._information_schema(tree)
        if isinstance(tree, exp.Alter):
            for column in tree.find_all(exp.ColumnDef):  # DuckDB adds one column per statement
                self.db.execute(f"ALTER TABLE {tree.this.sql('duckdb')} ADD COLUMN {self._duckdb(column)}")
            self._commit(_name(tree.this), "ADD COLUMNS", {}, {})
            return None
        if isinstance(tree, exp.Select | exp.Union):
            return self.db.sql(self._duckdb(tree)).to_arrow_table()
        result = self.db.execute(self._duckdb(tree))
        if isinstance(tree, exp.Insert | exp.Merge):
            target = tree.this if isinstance(tree.this, exp.Table) else tree.this.this
            changed = int(result.fetchall()[0][0])
            operation = "MERGE" if isinstance(tree, exp.Merge) else "WRITE"
            metric = "numSourceRows" if operation == "MERGE" else "numOutputRows"
            self._commit(_name(target), operation, {}, {metric: str(changed)})
            return None
        if isinstance(tree, exp.Drop):
            dropped = tree.find(exp.Table)
            assert dropped is not None
            self.properties.pop(_name(dropped), None)
            self.history.pop(_name(dropped), None)
            return None
        return None

    def _duckdb(self, tree: exp.Expr) -> str:
        tree = tree.copy()
        for data_type in tree.find_all(exp.DataType):
            if data_type.this == exp.DataType.Type.VARIANT:
                data_type.replace(exp.DataType.build("JSON"))
        return tree.sql("duckdb")

    def _commit(self, name: str, operation: str, parameters: dict[str, str], metrics: dict[str, str]) -> None:
        entries = self.history.setdefault(name, [])
        entries.insert(
            0,
            {
                "version": len(entries),
                "timestamp": dt.datetime.now(dt.UTC),
                "operation": operation,
                "operationParameters": parameters,
                "operationMetrics": metrics,
            },
        )

    def _command(self, sql: str) -> pa.Table | None:
        words = sql.split()
        head = " ".join(words[:2]).upper()
        name = words[-1].replace("`", "")
        if head == "CREATE CATALOG":
            self.create_catalog(name)
            return None
        if head == "CREATE VOLUME":
            self.volume_directory("/Volumes/" + name.replace(".", "/")).mkdir(parents=True, exist_ok=True)
            return None
        if head == "SHOW TBLPROPERTIES":
            self._exists(name)
            found = self.properties.get(name.lower(), {})
            return pa.table({"key": list(found), "value": list(found.values())}, schema=_KEY_VALUE)
        raise ServerOperationError(f"[PARSE_SYNTAX_ERROR] the emulator does not answer {head}")

    def _exists(self, name: str) -> None:
        catalog, schema, table = name.lower().split(".")
        found = self.db.execute(
            "SELECT 1 FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND table_name = ? "
            "UNION ALL SELECT 1 FROM duckdb_views() WHERE database_name = ? AND schema_name = ? AND view_name = ?",
            [catalog, schema, table] * 2,
        ).fetchall()
        if not found:
            raise ServerOperationError(f"[TABLE_OR_VIEW_NOT_FOUND] The table or view `{name}` cannot be found.")

    def _copy(self, tree: exp.Copy) -> pa.Table:
        stage = tree.this
        directory = self.volume_directory(tree.args["files"][0].name)
        files = sorted(str(p) for p in directory.glob("*.parquet"))
        before = int(self.db.execute(f"SELECT COUNT(*) FROM {stage.sql('duckdb')}").fetchall()[0][0])
        if files:
            self.db.execute(f"INSERT INTO {stage.sql('duckdb')} BY NAME SELECT * FROM read_parquet(?)", [files])
        after = int(self.db.execute(f"SELECT COUNT(*) FROM {stage.sql('duckdb')}").fetchall()[0][0])
        self._commit(_name(stage), "COPY INTO", {}, {"numOutputRows": str(after - before)})
        return pa.table({"num_affected_rows": [after - before], "num_inserted_rows": [after - before]})

    def _history(self, table: exp.Table) -> pa.Table:
        self._exists(_name(table))
        return pa.Table.from_pylist(self.history.get(_name(table), []), schema=_HISTORY)

    def _describe(self, table: exp.Table) -> pa.Table:
        self._exists(_name(table))
        rows = self.db.execute(f"DESCRIBE {table.sql('duckdb')}").fetchall()
        described = [{"col_name": r[0], "data_type": str(r[1]).lower(), "comment": None} for r in rows]
        described.append({"col_name": "Statistics", "data_type": "1024 bytes", "comment": None})
        return pa.Table.from_pylist(described)

    def _create_table(self, tree: exp.Create) -> None:
        name = _name(tree.this if isinstance(tree.this, exp.Table) else tree.this.this)
        existed = name in self.properties
        given: dict[str, str] = {}
        properties = tree.args.get("properties")
        if properties is not None:
            for prop in list(properties.expressions):
                if isinstance(prop, exp.Property):
                    given[prop.this.name] = prop.args["value"].name
                    prop.pop()
        if existed and tree.args.get("exists") and not tree.args.get("replace"):
            return None
        self.db.execute(self._duckdb(tree))
        self.properties[name] = given
        if tree.expression is not None:
            rows = int(self.db.execute(f"SELECT COUNT(*) FROM {tree.this.sql('duckdb')}").fetchall()[0][0])
            self.history[name] = self.history.get(name, []) if tree.args.get("replace") else []
            self._commit(name, "CREATE OR REPLACE TABLE AS SELECT", {}, {"numOutputRows": str(rows)})
        else:
            self.history[name] = []
            self._commit(name, "CREATE TABLE", {}, {})
        return None

    def _set_properties(self, tree: exp.Alter) -> None:
        name = _name(tree.this)
        self._exists(name)
        given = {}
        for action in tree.args["actions"]:
            for prop in action.find_all(exp.Property):
                given[prop.this.name] = prop.args["value"].name
        self.properties.setdefault(name, {}).update(given)
        self._commit(name, "SET TBLPROPERTIES", {"properties": json.dumps(given)}, {})

    def _information_schema(self, tree: exp.Select) -> None:
        """`<catalog>.information_schema.tables` as DuckDB's global one, limited to that catalog."""
        for table in tree.find_all(exp.Table):
            if table.db.lower() == "information_schema" and table.catalog:
                catalog = table.catalog.lower()
                table.set("catalog", None)
                tree.where(exp.EQ(this=exp.column("table_catalog"), expression=exp.Literal.string(catalog)), copy=False)

    def _catalog_views(self, tree: exp.Select) -> pa.Table | None:
        tables = [t for t in tree.find_all(exp.Table) if t.db.lower() == "information_schema" and t.name == "views"]
        if not tables:
            return None
        where = {
            eq.this.name: eq.expression.name for eq in tree.find_all(exp.EQ) if isinstance(eq.expression, exp.Literal)
        }
        rows = self.db.execute(
            "SELECT sql FROM duckdb_views() WHERE database_name = ? AND schema_name = ? AND view_name = ?",
            [tables[0].catalog.lower(), where.get("table_schema"), where.get("table_name")],
        ).fetchall()
        return pa.table({"view_definition": [r[0] for r in rows]}, schema=pa.schema([("view_definition", pa.string())]))


_KEY_VALUE = pa.schema([("key", pa.string()), ("value", pa.string())])
_HISTORY = pa.schema(
    [
        ("version", pa.int64()),
        ("timestamp", pa.timestamp("us", tz="Etc/UTC")),
        ("operation", pa.string()),
        ("operationParameters", pa.map_(pa.string(), pa.string())),
        ("operationMetrics", pa.map_(pa.string(), pa.string())),
    ]
)


class RecordingCursor:
    """A DB-API cursor whose statements the workspace records and answers."""

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace
        self._result: pa.Table | None = None
        self._offset = 0

    @property
    def description(self) -> list[tuple[Any, ...]] | None:
        if self._result is None:
            return None
        return [(f.name, str(f.type), None, None, None, None, None) for f in self._result.schema]

    def execute(self, operation: str, parameters: Any = None) -> RecordingCursor:
        assert parameters is None, "lakegate writes values into the statement, escaped; it sends no parameters"
        self._result, self._offset = self._workspace.execute(operation), 0
        return self

    def fetchall_arrow(self) -> pa.Table:
        assert self._result is not None, "the statement returned no result"
        rest = self._result.slice(self._offset)
        self._offset = self._result.num_rows
        return rest

    def fetchmany_arrow(self, size: int) -> pa.Table:
        assert self._result is not None, "the statement returned no result"
        part = self._result.slice(self._offset, size)
        self._offset += part.num_rows
        return part

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        self._result = None


class RecordingConnection:
    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace
        self.closed = False

    def cursor(self) -> RecordingCursor:
        return RecordingCursor(self._workspace)

    def close(self) -> None:
        self.closed = True


class DirectoryVolume:
    """`VolumeFiles` on the workspace's Volume directories."""

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace
        #: (path, rows) of every file put, in order.
        self.uploads: list[tuple[str, int]] = []

    def put(self, path: str, data: bytes) -> None:
        target = self._workspace.volume_directory(path)
        volume = self._workspace.volume_directory("/".join(path.split("/")[:5]))
        if not volume.is_dir():
            raise NotFound(f"Volume {path.split('/')[2:5]} does not exist; create it first")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        self.uploads.append((path, pq.read_metadata(target).num_rows))

    def remove_tree(self, path: str) -> None:
        shutil.rmtree(self._workspace.volume_directory(path), ignore_errors=True)
