"""Whether a DuckDB statement gives the same answer every time it runs over the same table versions.

DuckDB itself says: `duckdb_functions()` has a `stability` for every scalar, aggregate and window
function, and only `CONSISTENT` ones are the same on every run (`random()`, `uuid()`, `nextval` are
`VOLATILE`; `now()`, `current_date`, `current_setting` are `CONSISTENT_WITHIN_QUERY`). Macros, table
functions have no stability, so they count as not deterministic (the guard refuses table functions
anyway). The statement is read
by DuckDB's own parser (`json_serialize_sql`), so the names are the ones DuckDB will bind; a bare
name such as `current_date` or `current_user` parses as a column and binds to a function when no
column has it, so a bare column named like a function that is not `CONSISTENT` (or one of the SQL
keywords that read the clock or the session) counts too. `TABLESAMPLE` / `USING SAMPLE` draws rows
at random. Anything the parser does not read is not deterministic. Wrongly calling a statement not
deterministic only costs a cache miss; the other way round would serve a stale answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import duckdb

#: Keywords DuckDB reads as a column name, then binds to the clock or the session.
SESSION_KEYWORDS = frozenset(
    {
        "current_date", "current_time", "current_timestamp", "localtime", "localtimestamp", "current_user",
        "session_user", "user", "current_role", "current_catalog", "current_schema", "current_database",
    }
)  # fmt: skip


class Determinism:
    """Reads statements with DuckDB's parser and its functions' stability; one in-memory database, locked."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._con = duckdb.connect(":memory:", config={"enable_external_access": False})
        rows = self._con.execute("SELECT function_name, function_type, stability FROM duckdb_functions()").fetchall()
        consistent: set[str] = set()
        other: set[str] = set(SESSION_KEYWORDS)
        for name, kind, stability in rows:
            if kind in {"scalar", "aggregate", "window"} and stability == "CONSISTENT":
                consistent.add(name.lower())
            elif kind in {"scalar", "aggregate", "window", "macro"}:
                other.add(name.lower())
        # A function call in an expression binds to a scalar, aggregate or window function or a macro; table
        # functions (in FROM) are refused outright, so a table function sharing a name (`repeat`) is no matter.
        #: Names every overload of which is CONSISTENT.
        self.consistent = frozenset(consistent - other)
        #: Names some overload of which is not (or is a macro, which has no stability).
        self.inconsistent = frozenset(other)

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def deterministic(self, sql: str) -> bool:
        """True when every function `sql` calls is CONSISTENT and it samples no rows."""
        with self._lock:
            try:
                found = self._con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
            except duckdb.Error:
                return False
        if found is None:
            return False
        tree = json.loads(found[0])
        if tree.get("error", True):
            return False
        return all(self._fine(node) for node in _nodes(tree))

    def _fine(self, node: dict[str, Any]) -> bool:
        if node.get("sample") is not None or node.get("type") == "TABLE_FUNCTION":
            return False
        kind = node.get("class")
        if kind in {"FUNCTION", "WINDOW", "AGGREGATE"} or "function_name" in node:
            name = str(node.get("function_name", "")).lower()
            return name in self.consistent
        if kind == "COLUMN_REF":
            names = node.get("column_names") or []
            return not (len(names) == 1 and str(names[0]).lower() in self.inconsistent)
        return True


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in the parsed statement."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
