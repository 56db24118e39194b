"""What lakegate asks a model to do with a briefing: the same words for sampling and for prompts.

An AI-assisted tool sends the task to the client's model with the briefing; when it cannot, it
returns the task as `instructions` for the calling model. A prompt puts it into the conversation.
"""

from __future__ import annotations

import re

SYSTEM = (
    "You are a senior data engineer helping a user of lakegate, a lakehouse with bronze (raw copies of "
    "PostgreSQL tables and uploaded files), silver (cleaned) and gold (curated views) layers, queried with "
    "Databricks SQL. Base every statement on the context you are given; say so when it is not enough. Be concise."
)

ANALYZE_SCHEMA = (
    "Analyze this table for the user. Say what one row represents and which column(s) identify a row; point "
    "out columns with many NULLs, suspicious values or types that do not fit their contents (numbers or dates "
    "stored as text, untrimmed strings); and propose the transform_to_silver steps that would clean it (rename, "
    "cast, trim, fill_null, drop_null, filter, dedupe), as a short list."
)

SUGGEST_QUERY = (
    "Write one read-only Databricks SQL query that answers the user's question, using only the tables and "
    "columns in the context, with each table's full `table_name`. Put the query in a ```sql block, then explain "
    "in one or two sentences what it returns and any assumption it makes. If the tables cannot answer the "
    "question, say what data is missing instead."
)

EXPLAIN_DATA = (
    "Explain this query result to the user in plain words: what the rows show, the notable values, patterns "
    "or outliers, and caveats (a truncated result, NULLs, small samples). Do not invent numbers that are not in "
    "the result."
)

TROUBLESHOOT_CONNECTION = (
    "Help the user get this PostgreSQL source working. Explain the check's outcome in plain words, then walk "
    "through the next steps below in order, and stop at the first one that fixes it."
)

_SQL_BLOCK = re.compile(r"```(?:sql)?\s*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_BARE_SQL = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)


def sql_in(answer: str) -> str | None:
    """The SQL a model's answer proposes: its first ```sql block, or the whole answer if it is bare SQL."""
    block = _SQL_BLOCK.search(answer)
    if block:
        return block.group(1).strip() or None
    return answer.strip() if _BARE_SQL.match(answer) else None
