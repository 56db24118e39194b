"""AI-assisted tools: gather the real context, then ask the client's own model through MCP sampling.

A client that cannot sample gets the context back with `sampled: false` and `instructions`, so the
calling model can do the same work itself. An `InputRequiredResult` is a sampling request for the
client (protocol 2026-07-28): the client answers it and calls the tool again.
"""

from __future__ import annotations

from typing import Annotated, Any

from lakegate.common.contracts.warehouse import QueryResult, RunQuery
from lakegate.edge.backend import Backend
from lakegate.edge.briefings import as_context, lakehouse_briefing, table_briefing
from lakegate.edge.results.assist import DataExplanation, QuerySuggestion, SchemaAnalysis
from lakegate.edge.results.warehouse import SqlQueryResult
from lakegate.edge.sampling import Answer, NoAnswer, Question, ask_client_model
from lakegate.edge.tasks import ANALYZE_SCHEMA, EXPLAIN_DATA, SUGGEST_QUERY, SYSTEM, sql_in
from lakegate.edge.tools import QUESTION_MAX_CHARS, SQL_MAX_CHARS
from lakegate.edge.tools.warehouse import READS_LAKEHOUSE, TableName
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import InputRequiredResult
from pydantic import Field


def add_assist_tools(server: MCPServer, backend: Backend) -> None:
    """Register analyze_schema, suggest_query and explain_data."""
    topology, settings, guard = backend.topology, backend.settings, backend.failures.tool_errors
    wait = settings.sampling_timeout_seconds

    @server.tool(annotations=READS_LAKEHOUSE.model_copy(update={"title": "Analyze a table's schema (AI)"}))
    @guard
    async def analyze_schema(ctx: Context, table_name: TableName) -> SchemaAnalysis | InputRequiredResult:
        """Have your model analyze one lakehouse table: what a row is, its key, quality problems, and the
        transform_to_silver steps that would clean it. lakegate gathers columns, statistics, sample rows and
        lineage, and asks your client's model through MCP sampling; without sampling you get that context
        and instructions instead."""
        briefing = await table_briefing(backend, table_name)
        name = briefing.description.table_name
        question = Question(SYSTEM, f"{ANALYZE_SCHEMA}\n\nTable `{name}`:\n{as_context(briefing)}", 1500)
        reply = await ask_client_model(ctx, question, timeout=wait)
        if isinstance(reply, InputRequiredResult):
            return reply
        return SchemaAnalysis(table_name=name, context=briefing, **_assisted(reply, ANALYZE_SCHEMA))

    @server.tool(annotations=READS_LAKEHOUSE.model_copy(update={"title": "Suggest SQL for a question (AI)"}))
    @guard
    async def suggest_query(
        ctx: Context,
        question: Annotated[
            str,
            Field(
                description="What you want to know, in plain words, e.g. 'revenue per month in 2025'.",
                max_length=QUESTION_MAX_CHARS,
            ),
        ],
        tables: Annotated[
            list[str] | None,
            Field(
                description="Tables to use (`layer.table` or full names); every table in the lakehouse when omitted."
            ),
        ] = None,
    ) -> QuerySuggestion | InputRequiredResult:
        """Have your model write the Databricks SQL that answers a question, from the real tables and columns.

        The query is in `suggested_sql`; check it, then run it with query_sql. Without sampling you get the
        tables and instructions to write it yourself.
        """
        briefing = await lakehouse_briefing(backend, tables)
        text = f"{SUGGEST_QUERY}\n\nQuestion: {question}\n\nTables:\n{as_context(briefing)}"
        reply = await ask_client_model(ctx, Question(SYSTEM, text, 1200), timeout=wait)
        if isinstance(reply, InputRequiredResult):
            return reply
        suggested = sql_in(reply.text) if isinstance(reply, Answer) else None
        return QuerySuggestion(
            question=question, suggested_sql=suggested, context=briefing, **_assisted(reply, SUGGEST_QUERY)
        )

    @server.tool(annotations=READS_LAKEHOUSE.model_copy(update={"title": "Explain a query's result (AI)"}))
    @guard
    async def explain_data(
        ctx: Context,
        sql: Annotated[
            str,
            Field(
                description="One read-only Databricks SQL query over your tables, as for query_sql.",
                min_length=1,
                max_length=SQL_MAX_CHARS,
            ),
        ],
        max_rows: Annotated[int, Field(description="Most rows to read and explain.", ge=1, le=500)] = 100,
    ) -> DataExplanation | InputRequiredResult:
        """Run a read-only query and have your model explain its result in plain words: what the rows show,
        notable values and caveats. Without sampling you get the rows and instructions instead."""
        query = RunQuery(tenant_id=backend.tenant(), sql=sql, max_rows=max_rows)
        rows = SqlQueryResult.of(
            await backend.call(
                topology.warehouse_query, query, QueryResult, timeout=settings.query_timeout_seconds, cancels=True
            )
        )
        text = f"{EXPLAIN_DATA}\n\nQuery:\n```sql\n{sql}\n```\n\nResult:\n{as_context(rows)}"
        reply = await ask_client_model(ctx, Question(SYSTEM, text, 1200), timeout=wait)
        if isinstance(reply, InputRequiredResult):
            return reply
        return DataExplanation(sql=sql, context=rows, **_assisted(reply, EXPLAIN_DATA))


def _assisted(reply: Answer | NoAnswer, task: str) -> dict[str, Any]:
    """The fields every assisted result has, for an answer or for none."""
    if isinstance(reply, Answer):
        return {"sampled": True, "answer": reply.text, "model": reply.model}
    return {
        "sampled": False,
        "not_sampled_because": reply.reason,
        "instructions": f"lakegate could not ask your model: {reply.reason}. Do this yourself with `context`: {task}",
    }
