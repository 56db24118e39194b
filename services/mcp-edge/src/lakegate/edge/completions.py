"""Completions for the arguments of resource templates and prompts, from the caller's own objects.

datasource://{id}/…, prompt connection_id   connection ids of the tenant's sources
run://{id}                                   ids of the tenant's latest runs
schedule://{id}                              ids of the tenant's schedules
table://{catalog}/…                          the tenant's catalog
table://…/{schema}/…                         bronze, silver, gold
table://…/{name}/…                           tables of the chosen schema (or of every layer)
prompt table_name                            `layer.table` of every table
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping

from lakegate.common.contracts.catalog import ListRuns, RunList
from lakegate.common.errors import LakegateError
from lakegate.common.names import LAYERS, tenant_catalog
from lakegate.edge.backend import Backend
from lakegate.edge.metadata import all_schedules, all_sources, all_tables
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    Completion,
    CompletionArgument,
    CompletionContext,
    PromptReference,
    ResourceTemplateReference,
)

log = logging.getLogger(__name__)

#: The protocol allows at most this many values in one completion.
MAX_VALUES = 100


def add_completions(server: MCPServer, backend: Backend) -> None:
    """Register the completion handler."""

    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion:
        await check_reference(server, ref, argument.name)
        known = context.arguments if context and context.arguments else {}
        try:
            values = await candidates(backend, ref, argument.name, known)
        except LakegateError as exc:
            # A completion is a convenience: an unreachable service means no suggestions, not an error.
            log.info("no completions for %s: %s", argument.name, exc)
            values = []
        typed = argument.value.lower()
        matching = sorted(v for v in set(values) if v.lower().startswith(typed))
        return Completion(values=matching[:MAX_VALUES], total=len(matching), has_more=len(matching) > MAX_VALUES)

    # mcp 2.3 leaves this decorator factory unannotated.
    register = server.completion()  # type: ignore[no-untyped-call]
    register(complete)


async def check_reference(server: MCPServer, ref: PromptReference | ResourceTemplateReference, argument: str) -> None:
    """An unknown prompt or template, or an argument it does not have, is invalid params (-32602)."""
    if isinstance(ref, PromptReference):
        prompts = {prompt.name: prompt for prompt in await server.list_prompts()}
        prompt = prompts.get(ref.name)
        if prompt is None:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"unknown prompt {ref.name!r}; the prompts are {', '.join(sorted(prompts))}",
            )
        names = [arg.name for arg in prompt.arguments or []]
        where = f"prompt {ref.name!r}"
    else:
        templates = [template.uri_template for template in await server.list_resource_templates()]
        if ref.uri not in templates:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"unknown resource template {ref.uri!r}; the templates are {', '.join(sorted(templates))}",
            )
        names = re.findall(r"{(\w+)}", ref.uri)
        where = f"template {ref.uri!r}"
    if argument not in names:
        raise MCPError(
            code=INVALID_PARAMS, message=f"{where} has no argument {argument!r}; its arguments are {', '.join(names)}"
        )


async def candidates(
    backend: Backend, ref: PromptReference | ResourceTemplateReference, argument: str, known: Mapping[str, str]
) -> list[str]:
    """Every value that fits the argument, before matching what the user typed."""
    tenant = backend.tenant()
    where = ref.uri if isinstance(ref, ResourceTemplateReference) else ref.name
    if argument == "connection_id" or (argument == "id" and where.startswith("datasource://")):
        return [source.connection_id for source in await all_sources(backend, tenant)]
    if argument == "id" and where.startswith("run://"):
        listing = await backend.call(backend.topology.runs_list, ListRuns(tenant_id=tenant, limit=MAX_VALUES), RunList)
        return [run.run_id for run in listing.runs]
    if argument == "id" and where.startswith("schedule://"):
        return [schedule.schedule_id for schedule in await all_schedules(backend, tenant)]
    if argument == "catalog":
        return [tenant_catalog(tenant)]
    if argument == "schema":
        return list(LAYERS)
    if argument == "name":
        chosen = known.get("schema")
        layers = [chosen] if chosen in LAYERS else list(LAYERS)
        listings = await asyncio.gather(*(all_tables(backend, tenant, layer) for layer in layers))
        return [table.ref.name for listing in listings for table in listing]
    if argument == "table_name":
        listings = await asyncio.gather(*(all_tables(backend, tenant, layer) for layer in LAYERS))
        return [f"{table.ref.schema_name}.{table.ref.name}" for listing in listings for table in listing]
    return []
