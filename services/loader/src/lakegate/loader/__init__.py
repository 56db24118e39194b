"""The loader: Arrow batches into the warehouse (one atomic commit per run), and SQL over it.

Rooms: `config` (settings), `app` (wiring), `handlers` (subscribers), `worker` (the load of one run),
`warehouses` (the `Warehouse` interface and the local Delta lakehouse), `sqlguard` (what SQL may
run), `results` (query results as JSON values), `tablenames` (table names callers write).
"""
