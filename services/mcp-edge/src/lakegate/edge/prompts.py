"""MCP prompts, filled with real context fetched when the prompt is asked for.

analyze_schema(table_name)            the table's columns, statistics, sample rows and lineage
troubleshoot_connection(connection_id) the source checked now, its error and concrete next steps
generate_query(question)               the lakehouse's tables and columns, and the rules a query follows
"""

from __future__ import annotations

from typing import Annotated

from lakegate.edge.backend import Backend
from lakegate.edge.briefings import as_context, lakehouse_briefing, source_status, table_briefing
from lakegate.edge.tasks import ANALYZE_SCHEMA, SUGGEST_QUERY, TROUBLESHOOT_CONNECTION
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from pydantic import Field


def add_prompts(server: MCPServer, backend: Backend) -> None:
    """Register analyze_schema, troubleshoot_connection and generate_query."""
    guard = backend.failures.prompt_errors

    @server.prompt(name="analyze_schema", title="Analyze a table's schema")
    @guard
    async def analyze_schema_prompt(
        table_name: Annotated[
            str, Field(description="`layer.table` or `<catalog>.<layer>.<table>`, e.g. bronze.orders.")
        ],
    ) -> list[UserMessage]:
        """Analyze one lakehouse table: its grain, key, quality problems and the silver steps that would clean it."""
        briefing = await table_briefing(backend, table_name)
        name = briefing.description.table_name
        return [
            UserMessage(
                f"{ANALYZE_SCHEMA}\n\nHere is what lakegate knows about `{name}` right now: columns with "
                f"statistics, the first rows, and its lineage.\n\n{as_context(briefing)}"
            )
        ]

    @server.prompt(name="troubleshoot_connection", title="Troubleshoot a source connection")
    @guard
    async def troubleshoot_connection_prompt(
        connection_id: Annotated[str, Field(description="Id of a registered source, as list_sources shows it.")],
    ) -> list[UserMessage]:
        """Find out why a PostgreSQL source does not work, from a check made now, and what to do about it."""
        status = await source_status(backend, connection_id)
        steps = "\n".join(f"{n}. {step}" for n, step in enumerate(status.next_steps, 1))
        outcome = (
            f"lakegate logged in just now (PostgreSQL {status.server_version}, {status.latency_ms} ms)."
            if status.reachable
            else f"The check failed just now [{status.error_code}]: {status.error}"
        )
        return [
            UserMessage(
                f"{TROUBLESHOOT_CONNECTION}\n\nSource `{status.name}` ({status.connection_id}): "
                f"{status.user}@{status.host}:{status.port}/{status.database}.\n{outcome}\n\nNext steps:\n{steps}\n\n"
                "When it is fixed, test_connection confirms it.\n\n"
                f"The check in full:\n{as_context(status)}"
            )
        ]

    @server.prompt(name="generate_query", title="Write SQL for a question")
    @guard
    async def generate_query_prompt(
        question: Annotated[str, Field(description="What you want to know, in plain words.")],
    ) -> list[UserMessage]:
        """Write Databricks SQL that answers a question, from the tables and columns the lakehouse has now."""
        briefing = await lakehouse_briefing(backend)
        return [
            UserMessage(
                f"{SUGGEST_QUERY} Then run it with the query_sql tool and answer the question from its rows.\n\n"
                f"Question: {question}\n\nTables in the lakehouse now:\n{as_context(briefing)}"
            )
        ]
