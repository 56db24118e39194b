"""Results of the AI-assisted tools: the client's model's answer, or the context and what to do with it."""

from __future__ import annotations

from lakegate.edge.results.base import ToolResult
from lakegate.edge.results.catalog import TableMetadata
from lakegate.edge.results.warehouse import SqlQueryResult, TableDescriptionResult
from pydantic import Field


class TableBriefing(ToolResult):
    """What lakegate knows about one table: columns with statistics, a few rows, and its lineage."""

    description: TableDescriptionResult
    sample_rows: SqlQueryResult
    lineage: TableMetadata | None = Field(default=None, description="None when the catalog holds no record of it.")


class SketchColumn(ToolResult):
    name: str
    type: str


class TableSketch(ToolResult):
    """One table as a query writer needs it: name, columns, keys."""

    table_name: str = Field(description="`<catalog>.<layer>.<name>`, as written in SQL.")
    kind: str
    row_count: int | None = None
    keys: list[str] = Field(default_factory=list)
    columns: list[SketchColumn]
    upstream: list[str] = Field(default_factory=list)


class LakehouseBriefing(ToolResult):
    """The tables a query may use."""

    catalog: str
    tables: list[TableSketch]
    omitted: int = Field(default=0, description="Tables left out to keep the context small; name them to include.")


class Assisted(ToolResult):
    sampled: bool = Field(
        description=(
            "True when your MCP client's model answered through sampling. False when it could not be asked: "
            "then `instructions` say how to answer from `context` yourself."
        )
    )
    answer: str | None = Field(default=None, description="The model's answer, when sampled.")
    model: str | None = Field(default=None, description="The model that answered, as the client named it.")
    not_sampled_because: str | None = Field(default=None, description="Why no model was asked.")
    instructions: str | None = Field(default=None, description="When not sampled: what to do with `context`.")


class SchemaAnalysis(Assisted):
    """An analysis of one table's structure and quality."""

    table_name: str
    context: TableBriefing


class QuerySuggestion(Assisted):
    """SQL that answers a question in plain words."""

    question: str
    suggested_sql: str | None = Field(
        default=None, description="The SQL from the answer, ready for query_sql; None when not sampled or none given."
    )
    context: LakehouseBriefing


class DataExplanation(Assisted):
    """A plain-words explanation of a query's result."""

    sql: str
    context: SqlQueryResult = Field(description="The rows the explanation is about.")
