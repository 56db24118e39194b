"""The MCP tools, one module per noun: sources, sync runs, the warehouse, transforms, the catalog, AI assists."""

#: Longest SQL text a tool forwards: the loader's own fixed limit, and the extractor's default
#: (its setting can lower it). Refused at the edge, a longer text never has to fit in one NATS message.
SQL_MAX_CHARS = 100_000
#: Longest question suggest_query takes.
QUESTION_MAX_CHARS = 10_000
