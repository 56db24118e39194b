"""SQL expressions that write a value's JSON as pydantic writes it, for the listings PostgreSQL answers.

Each returns SQL text for an expression of type text. jsonb's own text puts a space after each
comma and colon, pydantic none, so a jsonb array is rebuilt element by element (`array_json`).
"""

from __future__ import annotations

#: A timestamptz as pydantic writes an aware UTC datetime: `2026-12-03T12:00:00.123456Z`, no fraction when it is 0.
_INSTANT = """
    to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
    || CASE WHEN to_char({0}, 'US') = '000000' THEN '' ELSE to_char({0}, '.US') END || 'Z'
"""


def instant_json(column: str) -> str:
    """The JSON string pydantic writes for the timestamptz `column` (NULL when it is NULL)."""
    return "('\"' || " + _INSTANT.format(column) + " || '\"')"


def or_null(expression: str) -> str:
    """The JSON `expression` writes, or `null` when it is NULL."""
    return f"coalesce({expression}, 'null')"


def value_json(expression: str) -> str:
    """The JSON of `expression`'s value (`to_json` escapes text as pydantic does), `null` for NULL."""
    return or_null(f"to_json({expression})::text")


def array_json(column: str, element: str, *, of_text: bool = False) -> str:
    """The JSON array of the jsonb array `column`, each element `x` written by the SQL `element` (NULL: `[]`).

    With `of_text`, `x` is each element as text (`jsonb_array_elements_text`), else as jsonb.
    """
    elements = "jsonb_array_elements_text" if of_text else "jsonb_array_elements"
    return f"""(
    SELECT '[' || coalesce(string_agg({element}, ',' ORDER BY i), '') || ']'
    FROM {elements}({column}) WITH ORDINALITY AS e(x, i)
)"""


def columns_array_json(column: str) -> str:
    """The JSON pydantic writes for a `list[ColumnMapping]` stored in the jsonb `column` (NULL: `[]`)."""
    return array_json(
        column,
        """'{"version":' || coalesce(x->>'version', '1') || ',"name":' || to_json(x->>'name')
        || ',"source_type":' || to_json(x->>'source_type') || ',"arrow_type":' || to_json(x->>'arrow_type')
        || ',"mapped":' || (x->'mapped')::text || '}'""",
    )
