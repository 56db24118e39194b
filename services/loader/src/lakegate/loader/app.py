"""Wires the loader together: settings → lakehouse, load worker, broker handlers; the only place that does."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakegate.common.broker import MAX_PART_BYTES
from lakegate.common.contracts.rpc import Reply
from lakegate.common.delivery import Subscription, subscribe
from lakegate.common.lanes import RequestLanes
from lakegate.common.service import Runtime, runtime, started
from lakegate.common.staging import DATA_FILES_DIR, DataFileStaging, JetStreamStaging, StagingStore
from lakegate.common.subjects import RunStep, Topology
from lakegate.loader.config import LoaderSettings
from lakegate.loader.curation import Curator
from lakegate.loader.handlers import LoaderHandlers, LoadSlots
from lakegate.loader.lineage import Lineage
from lakegate.loader.uploads import UploadLimits
from lakegate.loader.warehouses.delta import LocalLakehouse, Timeouts
from lakegate.loader.warehouses.sqlengine import EngineLimits
from lakegate.loader.worker import LoadWorker

if TYPE_CHECKING:
    # Imported only when a loader uses Databricks: the connector and SDK cost a local loader
    # two seconds of start-up and tens of MiB it would never use.
    from lakegate.loader.warehouses.databricks import DatabricksWarehouse

SERVICE = "loader"
#: Replicas answer requests as one queue group, so each request is handled exactly once.
QUEUE = "lakegate-loader"


@dataclass(frozen=True)
class LoaderState:
    """What a running loader holds."""

    settings: LoaderSettings
    runtime: Runtime
    warehouse: LocalLakehouse | DatabricksWarehouse
    handlers: LoaderHandlers
    health_port: int | None


def _register(rt: Runtime, handlers: LoaderHandlers, settings: LoaderSettings) -> None:
    topology, broker = rt.topology, rt.broker
    # `query_sql` is the loader's hot request: answered on core NATS without FastStream's per-message
    # machinery (`lakegate.common.responder`); the other requests are rare and long next to it.
    rt.requests.answer(topology.warehouse_query, handlers.query, queue=QUEUE, workers=settings.request_workers)
    answering: dict[str, Callable[..., Awaitable[Reply]]] = {
        topology.warehouse_tables_list: handlers.list_tables,
        topology.warehouse_tables_describe: handlers.describe_table,
        topology.warehouse_tables_preview: handlers.preview_table,
        topology.warehouse_transform: handlers.transform,
        topology.warehouse_gold_view: handlers.gold_view,
        topology.warehouse_upload: handlers.upload,
    }
    for subject, handler in answering.items():
        broker.subscriber(subject, queue=QUEUE, max_workers=settings.request_workers)(handler)
    subscribe(rt, _subscriptions(topology, handlers, settings), ack_wait=settings.ack_wait_seconds)


def _subscriptions(topology: Topology, handlers: LoaderHandlers, settings: LoaderSettings) -> list[Subscription]:
    """The loader's JetStream consumers; `lakegate.common.delivery` owns how each is consumed.

    `max_concurrent_loads` runs are loaded at once, so the tables of one call commit side by side.
    """
    return [
        Subscription(
            topology.run_steps(RunStep.EXTRACTED),
            topology.run_stream.name,
            topology.durable("loader"),
            "loader extracted runs",
            "Loads each extracted run into the warehouse in one commit; reports loading, loaded or failed.",
            handlers.extracted,
            workers=settings.max_concurrent_loads,
        ),
        Subscription(
            topology.run_streamings(),
            topology.run_stream.name,
            topology.durable("loader_streaming"),
            "loader streaming runs",
            "Loads a run while it is extracted: follows its staged parts, commits once `extracted` counts them.",
            handlers.streaming,
        ),
    ]


def databricks_warehouse(settings: LoaderSettings) -> DatabricksWarehouse:
    """The Databricks warehouse the settings name (connections open lazily, on first use)."""
    from lakegate.loader.warehouses.databricks import DatabricksWarehouse, Limits, connect
    from lakegate.loader.warehouses.databricks.client import Backoff, SqlClient
    from lakegate.loader.warehouses.databricks.layout import TenantLayout
    from lakegate.loader.warehouses.databricks.volumes import FilesApiVolume

    chosen = settings.databricks
    workspace = connect.Workspace(chosen)
    client = SqlClient(
        workspace.connect,
        connections=chosen.connections,
        backoff=Backoff(retries=chosen.retries),
    )
    layout = TenantLayout(chosen.layout, chosen.catalog, chosen.staging_schema, chosen.staging_volume)
    limits = Limits(
        query_seconds=settings.query_timeout_seconds,
        transform_seconds=settings.transform_timeout_seconds,
        max_result_bytes=settings.max_result_bytes,
        parquet_file_bytes=chosen.parquet_file_bytes,
        json_type=chosen.json_type,
        sql=settings.sql_limits,
    )
    return DatabricksWarehouse(client, FilesApiVolume(workspace.client), layout, limits)


def local_lakehouse(settings: LoaderSettings) -> LocalLakehouse:
    """The embedded Delta lakehouse under the loader's home."""
    settings.lakehouse.mkdir(parents=True, exist_ok=True)
    return LocalLakehouse(
        settings.lakehouse,
        limits=EngineLimits(
            threads=settings.query_threads,
            memory_limit=settings.query_memory_limit,
            process_memory=settings.query_process_bytes,
        ),
        timeouts=Timeouts(query=settings.query_timeout_seconds, transform=settings.transform_timeout_seconds),
        max_result_bytes=settings.max_result_bytes,
        queue_depth=settings.load_queue_depth,
        sql_limits=settings.sql_limits,
        # As many ready statement processes as statements may run at once: none waits for a fork.
        idle_processes=settings.query_slots,
        query_cache_bytes=settings.query_cache_bytes,
    )


@contextlib.asynccontextmanager
async def serve(settings: LoaderSettings) -> AsyncIterator[LoaderState]:
    """Run the loader: consume extracted runs and answer warehouse requests until exit."""
    rt = runtime(SERVICE, settings, answers_cancels=True)
    warehouse = databricks_warehouse(settings) if settings.warehouse_kind == "databricks" else local_lakehouse(settings)

    def staging() -> StagingStore:
        # The JetStream context exists only once the broker is connected, so it is taken per load.
        # Data files staged by an extractor that shares the lakehouse's filesystem are under the loader's home.
        parts = JetStreamStaging(rt.broker.connection.jetstream(), rt.topology, MAX_PART_BYTES)
        return DataFileStaging(parts, settings.lakehouse / DATA_FILES_DIR)

    worker = LoadWorker(
        rt.broker,
        rt.topology,
        staging,
        warehouse,
        fault_exit_while=settings.fault_exit_while,
        metrics=rt.metrics,
        stream_idle=settings.stream_idle_seconds,
    )
    curator = Curator(
        warehouse,
        Lineage(rt.broker, rt.topology),
        settings.upload_max_bytes,
        UploadLimits(settings.upload_max_rows, settings.upload_max_columns),
        settings.sql_limits,
    )
    handlers = LoaderHandlers(
        settings,
        warehouse,
        curator,
        worker,
        RequestLanes.from_settings(settings, shared=settings.query_slots),
        rt,
        LoadSlots.of(settings.max_concurrent_writes),
    )
    _register(rt, handlers, settings)
    if isinstance(warehouse, LocalLakehouse):
        # The fork server imports the engine (seconds): do it now, beside start-up, not in the first query.
        threading.Thread(target=warehouse.warm, daemon=True, name="lakegate-query-warm").start()
    try:
        async with started(rt, settings) as health_port:
            yield LoaderState(settings, rt, warehouse, handlers, health_port)
    finally:
        if isinstance(warehouse, LocalLakehouse):
            warehouse.close()
        else:
            await warehouse.close()
