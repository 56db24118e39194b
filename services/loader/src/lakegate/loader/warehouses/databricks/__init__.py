"""The Databricks warehouse: Unity Catalog tables fed through a Volume, queried on a SQL warehouse.

layout.py      tenant → catalog / schemas, and the statements that create them
typemap.py     Arrow → Databricks column types, and the staged Parquet schema
statements.py  every statement a load sends
parts.py       batches → bounded Parquet parts in the Volume
volumes.py     the Volume's files (Files API)
loads.py       the commit protocol: COPY INTO a staging table, then replace / append / MERGE, exactly once
drift.py       schema drift between a run and its table
client.py      pooled connections, worker threads, deadlines, retries
errors.py      connector failures → lakegate's errors
connect.py     the real connector and SDK clients
warehouse.py   `DatabricksWarehouse`
"""

from lakegate.loader.warehouses.databricks.warehouse import DatabricksWarehouse, Limits

__all__ = ["DatabricksWarehouse", "Limits"]
