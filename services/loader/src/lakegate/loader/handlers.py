"""The loader's FastStream subscribers: the load worker's consumer and the warehouse request handlers.

`app.py` registers each one on the broker; a handler is a few lines that call the domain. The
tenant's catalog always comes from the request's `tenant_id`, never from anything a caller wrote.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from faststream.nats.annotations import NatsMessage
from lakegate.common.contracts.runs import Extracted
from lakegate.common.contracts.warehouse import (
    DescribeTable,
    ListTables,
    QueryResult,
    RunQuery,
    TableDescription,
    TableList,
)
from lakegate.common.delivery import settle
from lakegate.common.errors import LakegateError
from lakegate.common.names import tenant_catalog
from lakegate.common.rpc import answers
from lakegate.loader.config import LoaderSettings
from lakegate.loader.warehouses.base import Warehouse
from lakegate.loader.worker import LoadWorker
from pydantic import ValidationError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoaderHandlers:
    """Handlers bound to the warehouse and the load worker."""

    settings: LoaderSettings
    warehouse: Warehouse
    worker: LoadWorker

    async def on_extracted(self, msg: NatsMessage) -> None:
        """`run.<id>.extracted`: load the run; acked, retried or terminated by `settle`."""
        try:
            extracted = Extracted.model_validate_json(msg.body)
        except ValidationError as exc:
            # Redelivering a message that cannot be read would only fail again.
            log.error("dropping unreadable message on %s: %s", msg.raw_message.subject, exc)
            await msg.reject()
            return

        async def on_terminal(error: LakegateError) -> None:
            await self.worker.fail(extracted, error)

        await settle(msg, lambda: self.worker.load(extracted), on_terminal=on_terminal)

    @answers
    async def query(self, request: RunQuery) -> QueryResult:
        """`query`: one read-only Databricks SQL statement over the tenant's catalog."""
        asked = request.max_rows if "max_rows" in request.model_fields_set else self.settings.default_max_rows
        return await self.warehouse.query(
            tenant_catalog(request.tenant_id),
            request.sql,
            min(asked, self.settings.max_rows_limit),
            self.settings.query_timeout_seconds,
        )

    @answers
    async def list_tables(self, request: ListTables) -> TableList:
        """`tables.list`: the tenant's tables in one layer."""
        return await self.warehouse.list_tables(tenant_catalog(request.tenant_id), request.layer)

    @answers
    async def describe_table(self, request: DescribeTable) -> TableDescription:
        """`tables.describe`: columns, size, version and properties of one of the tenant's tables."""
        return await self.warehouse.describe(tenant_catalog(request.tenant_id), request.table_name)
