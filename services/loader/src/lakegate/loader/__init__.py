"""The loader: Arrow batches into the warehouse (one atomic commit per run), SQL over it, and what is built on it.

Rooms: `config` (settings), `app` (wiring), `handlers` (subscribers), `worker` (the load of one run),
`curation` (silver transforms, gold views and uploads, with `lineage` records for the catalog),
`warehouses` (the `Warehouse` / `Builder` interfaces and the local Delta lakehouse).
Warehouse-neutral, shared by every warehouse: `sqlguard` (what SQL may run), `silver` (a spec as a
syntax tree), `tablestats` (statistics queries), `metastatements` (SHOW / DESCRIBE answers),
`uploads` (files → Arrow), `sqltypes` (Arrow ↔ Databricks types), `results` (query results as JSON
values), `tablenames` (table names callers write).
"""
