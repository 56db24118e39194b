"""Wires the catalog together: settings → cipher, pool, stores, broker handlers, scheduler; the only place that does."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from lakegate.catalog.audit import AuditLog
from lakegate.catalog.cipher import PasswordCipher, cipher_from_settings
from lakegate.catalog.clock import Clock, SystemClock
from lakegate.catalog.config import CatalogSettings
from lakegate.catalog.cursors import CursorStore
from lakegate.catalog.database import open_pool, open_readers
from lakegate.catalog.datasets import DatasetListings, DatasetStore
from lakegate.catalog.handlers import CatalogHandlers
from lakegate.catalog.launcher import RunLauncher
from lakegate.catalog.lifecycle import RunLifecycle
from lakegate.catalog.publisher import Publisher, declare_sync_events
from lakegate.catalog.run_listings import RunListings
from lakegate.catalog.runs import RunStore
from lakegate.catalog.scheduler import Scheduler, scheduling
from lakegate.catalog.schedules import ScheduleStore
from lakegate.catalog.sources import SourceListings, SourceStore
from lakegate.common.contracts.rpc import Reply
from lakegate.common.delivery import Subscription, subscribe
from lakegate.common.service import Runtime, runtime, started
from lakegate.common.subjects import Topology

SERVICE = "catalog"
#: Replicas answer requests as one queue group, so each request is handled exactly once.
QUEUE = "lakegate-catalog"


@dataclass(frozen=True)
class CatalogState:
    """What a running catalog holds."""

    settings: CatalogSettings
    runtime: Runtime
    pool: asyncpg.Pool
    cipher: PasswordCipher
    handlers: CatalogHandlers
    scheduler: Scheduler
    health_port: int | None


def _register(rt: Runtime, handlers: CatalogHandlers, ack_wait: float, workers: int) -> None:
    topology = rt.topology
    answering: dict[str, Callable[..., Awaitable[Reply]]] = {
        topology.sources_register: handlers.register_source,
        topology.sources_get: handlers.get_source,
        topology.sources_list: handlers.list_sources,
        topology.sources_credentials: handlers.source_credentials,
        topology.runs_start: handlers.start_run,
        topology.runs_get: handlers.get_run,
        topology.runs_list: handlers.list_runs,
        topology.runs_cancel: handlers.cancel_run,
        topology.schedules_create: handlers.create_schedule,
        topology.schedules_list: handlers.list_schedules,
        topology.schedules_delete: handlers.delete_schedule,
        topology.datasets_list: handlers.list_datasets,
        topology.audit_list: handlers.list_audit,
    }
    for subject, handler in answering.items():
        rt.requests.answer(subject, handler, queue=QUEUE, workers=workers)
    subscribe(rt, _subscriptions(topology, handlers), ack_wait=ack_wait)


def _subscriptions(topology: Topology, handlers: CatalogHandlers) -> list[Subscription]:
    """The catalog's JetStream consumers; `lakegate.common.delivery` owns how each is consumed.

    The CMD stream is a work queue: each consumer filters its own subject, none overlapping another's.
    """
    runs, commands = topology.run_stream.name, topology.cmd_stream.name
    return [
        Subscription(
            topology.run_steps(),
            runs,
            topology.durable("catalog_runs"),
            "catalog run steps",
            "Moves each run's state machine; publishes the public sync event when a run finishes. "
            "`range` steps are acknowledged and otherwise ignored.",
            handlers.run_steps,
        ),
        Subscription(
            topology.cmd_record_dataset,
            commands,
            topology.durable("catalog_datasets"),
            "catalog datasets commands",
            "Records a silver, gold or uploaded table the loader wrote, with its lineage.",
            handlers.dataset_records,
        ),
        Subscription(
            topology.cmd_audit,
            commands,
            topology.durable("catalog_audit"),
            "catalog audit commands",
            "Stores one audit record per MCP tool call.",
            handlers.audit_records,
        ),
    ]


@contextlib.asynccontextmanager
async def serve(settings: CatalogSettings, *, clock: Clock | None = None) -> AsyncIterator[CatalogState]:
    """Run the catalog: migrate its database, answer requests, consume run steps and commands, and
    schedule runs, until exit. `clock` is the scheduler's time (the system's by default)."""
    cipher = cipher_from_settings(settings)  # first, so a missing key stops us before anything opens
    clock = clock or SystemClock()
    async with open_pool(settings) as pool, open_readers(settings) as readers:
        rt = runtime(SERVICE, settings)
        publisher = Publisher(
            rt.broker, rt.topology, settings.publish_timeout, declare_sync_events(rt.broker, rt.topology)
        )
        sources, runs = SourceStore(pool, cipher), RunStore(pool)
        lifecycle = RunLifecycle(pool, runs, publisher, rt.metrics)
        launcher = RunLauncher(sources, runs, CursorStore(pool), lifecycle, publisher)
        handlers = CatalogHandlers(
            sources=sources,
            runs=runs,
            datasets=DatasetStore(pool),
            audit=AuditLog(pool),
            launcher=launcher,
            lifecycle=lifecycle,
            schedules=ScheduleStore(pool, sources, clock, rt.rpc, rt.topology),
            listings=SourceListings(readers),
            dataset_listings=DatasetListings(readers),
            run_listings=RunListings(readers),
        )
        _register(rt, handlers, settings.ack_wait_seconds, settings.request_workers)
        scheduler = Scheduler(pool, settings.database_url.get_secret_value(), launcher, lifecycle, clock)
        async with (
            started(rt, settings) as health_port,
            scheduling(scheduler, settings.scheduler_tick, settings.scheduler_enabled),
        ):
            yield CatalogState(settings, rt, pool, cipher, handlers, scheduler, health_port)
