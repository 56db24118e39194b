"""A `tools/list` that fits one 64 KiB line, as some stdio clients read it, without losing what a model needs.

pydantic's JSON schemas carry much that tells a model nothing. `compact` keeps every tool's name,
description, annotations, types, enums, required fields, constraints and input descriptions, and
drops the rest:

- `title` inside schemas (pydantic derives it from the field or class name: `run_id` → "Run Id");
- `default` inside output schemas (an answer has values, not defaults), and there the descriptions
  of whole objects (model docstrings: the tool's description says what it returns; the fields keep
  theirs);
- `anyOf: [{type: X}, {type: null}]` becomes the equivalent `type: [X, "null"]`;
- docstring indentation in descriptions.

And every result shape is described once: the first tool (in `tools/list` order) whose output is
a model, or holds it in `$defs`, keeps its descriptions; every later tool that returns or embeds
the same model (get_sync_run, cancel_sync and list_sync_runs return sync_table_to_bronze's run;
analyze_schema embeds describe_table's and query_sql's results) lists its types only.
"""

from __future__ import annotations

import inspect
from typing import Any

from mcp_types import Tool

_NULL = {"type": "null"}


def compact(tools: list[Tool]) -> list[Tool]:
    """The tools with compact schemas, each output model described by the first tool that returns it."""
    described: set[str] = set()
    listed: list[Tool] = []
    for tool in tools:
        update: dict[str, Any] = {"input_schema": _schema(tool.input_schema, drop=frozenset({"title"}))}
        if tool.description:
            update["description"] = inspect.cleandoc(tool.description)
        if tool.output_schema is not None:
            update["output_schema"] = _output(tool.output_schema, described)
        listed.append(tool.model_copy(update=update))
    return listed


def _output(schema: dict[str, Any], described: set[str]) -> dict[str, Any]:
    """An output schema; the models already described by an earlier tool lose their descriptions."""
    drop = frozenset({"title", "default"})
    bare = drop | {"description"}
    name = schema.get("title")
    seen = isinstance(name, str) and name in described
    defs = schema.get("$defs") or {}
    top = {key: value for key, value in schema.items() if key not in ("$defs", "description")}
    compacted: dict[str, Any] = _schema(top, drop=bare if seen else drop)
    if defs:
        compacted["$defs"] = {
            key: _schema(
                {field: value for field, value in model.items() if field != "description"},
                drop=bare if (seen or key in described) else drop,
            )
            for key, model in defs.items()
        }
    described.update(defs)
    if isinstance(name, str):
        described.add(name)
    return compacted


def _schema(node: Any, *, drop: frozenset[str]) -> Any:
    if isinstance(node, list):
        return [_schema(item, drop=drop) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in drop:
            continue
        if key in ("properties", "$defs") and isinstance(value, dict):  # keys here are names, not keywords
            out[key] = {name: _schema(sub, drop=drop) for name, sub in value.items()}
        else:
            out[key] = _schema(value, drop=drop)
    alternatives = out.get("anyOf")
    if isinstance(alternatives, list) and len(alternatives) == 2 and _NULL in alternatives:
        other = alternatives[0] if alternatives[1] == _NULL else alternatives[1]
        if isinstance(other, dict) and set(other) == {"type"} and isinstance(other["type"], str):
            del out["anyOf"]
            out["type"] = [other["type"], "null"]
    if isinstance(out.get("description"), str):
        out["description"] = inspect.cleandoc(out["description"])
    return out
