"""DuckDB as the SQL engine of the local lakehouse: one sealed connection per query, stopped on time.

Each query gets a fresh in-memory DuckDB connection that sees only the tables the query names
(registered as Arrow datasets), cannot read files or Python variables, cannot load extensions and
cannot change its own configuration. A timer interrupts it when the timeout passes. Calls block:
run them in a worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
from lakegate.common.contracts.runs import TableRef
from lakegate.common.errors import WarehouseError


@dataclass(frozen=True)
class EngineLimits:
    """What one query may use of the machine."""

    threads: int = 4
    memory_limit: str = "2GB"


def _connect(limits: EngineLimits) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(
        ":memory:",
        config={
            "enable_external_access": False,
            "python_enable_replacements": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "threads": limits.threads,
            "memory_limit": limits.memory_limit,
        },
    )


def _readable(message: str, sources: Mapping[str, TableRef]) -> str:
    """DuckDB's message with engine names turned back into the names the caller wrote."""
    for name, ref in sources.items():
        message = message.replace(name, f"{ref.schema_name}.{ref.name}")
    return message


def execute(
    sql: str,
    datasets: Mapping[str, ds.Dataset],
    sources: Mapping[str, TableRef],
    *,
    timeout: float,
    limits: EngineLimits,
) -> pa.Table:
    """Run DuckDB SQL over the given datasets; a query still running after `timeout` seconds is stopped."""
    con = _connect(limits)
    try:
        for name, dataset in datasets.items():
            con.register(name, dataset)
        # Databricks evaluates zoned timestamps in UTC by default; so must DuckDB, whatever the host's zone.
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET lock_configuration = true")
        timer = threading.Timer(timeout, con.interrupt)
        timer.daemon = True
        timer.start()
        try:
            return con.sql(sql).to_arrow_table()
        except duckdb.InterruptException as exc:
            raise WarehouseError(
                f"the query ran longer than {timeout:g}s and was stopped; filter or aggregate more, or add a LIMIT"
            ) from exc
        except duckdb.Error as exc:
            raise WarehouseError(f"the query failed: {_readable(str(exc), sources)}") from exc
        finally:
            timer.cancel()
    finally:
        con.close()
