"""How large a statement a SQL guard agrees to read, measured before anything parses or runs it.

The loader's `sqlguard` (query_sql, explain_data, gold views) and the extractor's `guard`
(query_source) both bound a statement here, each with limits named as its own settings
(`lakegate.loader.sqlsize`, `lakegate.extractor.sqlsize`). Three walls, in the order they are met:

1. the text: at most `chars` characters (before tokenizing);
2. the tokens: brackets (`(`, `[`, `{`) and `CASE … END` nested at most `nesting` deep, counted
   on the token stream before parsing, because sqlglot's parser recurses twenty to forty Python
   frames per level and reaches the interpreter's recursion limit between 20 and 45 levels; what
   still recurses too far (a long run of `NOT NOT …`, `NOT EXISTS (… NOT …)` nested 20 deep) raises
   `RecursionError`, which the guards turn into a refusal too;
3. the parse tree: at most `set_operations` UNION / INTERSECT / EXCEPT, `ctes` WITH entries,
   `joins` joins, `depth` levels and `nodes` nodes in all. Every later step (qualifying, rendering,
   translating to DuckDB, the engines' own planners, PostgreSQL's parser for a source query) walks
   this tree or the text it came from, some recursively, so the tree is bounded where it is made. A
   chain of set operations counts as one level: sqlglot parses and renders it iteratively, DuckDB
   and PostgreSQL flatten it, and `set_operations` bounds its length.

A refusal names the limit, the measured value and the setting to raise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings
from sqlglot import Token, TokenType, exp

_OPENS = frozenset({TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE, TokenType.CASE})
_CLOSES = frozenset({TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE, TokenType.END})


@dataclass(frozen=True)
class SizeLimits:
    """The largest statement a guard reads; each field is the setting `<settings_prefix><FIELD>`.

    Each service subclasses it with its own prefix, so that a refusal names the setting to raise.
    """

    settings_prefix: ClassVar[str] = "LAKEGATE_QUERY_MAX_"

    chars: int = 100_000
    nesting: int = 24
    depth: int = 100
    nodes: int = 10_000
    set_operations: int = 256
    ctes: int = 128
    joins: int = 64

    def setting(self, limit: str) -> str:
        """The environment variable that sets `limit`."""
        return f"{self.settings_prefix}{limit.upper()}"


L = TypeVar("L", bound=SizeLimits)


class QuerySizeSettings(BaseSettings):
    """A service's `…_QUERY_MAX_*` settings: the `SizeLimits` of its guard, read with the service's prefix.

    The defaults are `SizeLimits`'s own, so a guard made without settings reads the same statements.
    """

    query_max_chars: int = Field(
        default=SizeLimits.chars,
        ge=100,
        description="Longest SQL text read, in characters; checked before anything parses it.",
    )
    query_max_nesting: int = Field(
        default=SizeLimits.nesting,
        ge=1,
        le=32,
        description="How deep brackets and CASE expressions may nest, counted before parsing. The "
        "parser recurses twenty to forty frames a level, so more would reach Python's recursion limit instead "
        "(which is refused too, less precisely).",
    )
    query_max_depth: int = Field(
        default=SizeLimits.depth,
        ge=1,
        le=200,
        description="How deep a statement's parse tree may be (`a + b + c` is two levels, a chain of UNIONs one); "
        "rendering and translating the tree recurse, so more than 200 is not accepted.",
    )
    query_max_nodes: int = Field(
        default=SizeLimits.nodes,
        ge=1,
        description="Most nodes (expressions, names, literals) in a statement's parse tree.",
    )
    query_max_set_operations: int = Field(
        default=SizeLimits.set_operations,
        ge=0,
        description="Most UNION, INTERSECT and EXCEPT operations in one statement.",
    )
    query_max_ctes: int = Field(default=SizeLimits.ctes, ge=0, description="Most WITH entries (CTEs) in one statement.")
    query_max_joins: int = Field(default=SizeLimits.joins, ge=0, description="Most joins in one statement.")

    def size_limits(self, limits: type[L]) -> L:
        """These settings as the service's `SizeLimits` (whose refusals name the service's settings)."""
        return limits(
            chars=self.query_max_chars,
            nesting=self.query_max_nesting,
            depth=self.query_max_depth,
            nodes=self.query_max_nodes,
            set_operations=self.query_max_set_operations,
            ctes=self.query_max_ctes,
            joins=self.query_max_joins,
        )


@dataclass(frozen=True)
class TreeSize:
    """What a parse tree holds, in the units of `SizeLimits`."""

    depth: int
    nodes: int
    set_operations: int
    ctes: int
    joins: int


def nesting(tokens: Iterable[Token]) -> int:
    """How deep brackets and `CASE … END` nest in a token stream."""
    deepest = depth = 0
    for token in tokens:
        if token.token_type in _OPENS:
            depth += 1
            deepest = max(deepest, depth)
        elif token.token_type in _CLOSES:
            depth = max(depth - 1, 0)
    return deepest


def measure(tree: exp.Expr) -> TreeSize:
    """Depth, node count, set operations, CTEs and joins of a parse tree, walked without recursion."""
    deepest = nodes = set_operations = ctes = joins = 0
    stack: list[tuple[exp.Expr, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        deepest = max(deepest, depth)
        if isinstance(node, exp.SetOperation):
            set_operations += 1
        elif isinstance(node, exp.CTE):
            ctes += 1
        elif isinstance(node, exp.Join):
            joins += 1
        for child in node.iter_expressions():
            chained = isinstance(node, exp.SetOperation) and isinstance(child, exp.SetOperation)
            stack.append((child, depth if chained else depth + 1))
    return TreeSize(deepest, nodes, set_operations, ctes, joins)


def too_many_chars(length: int, limits: SizeLimits) -> str | None:
    """Why a text of `length` characters is refused, or None when it may be read."""
    if length <= limits.chars:
        return None
    return (
        f"the SQL is {length} characters long, more than the {limits.chars} accepted "
        f"({limits.setting('chars')}): shorten the query"
    )


def too_deeply_nested(tokens: Iterable[Token], limits: SizeLimits) -> str | None:
    """Why a token stream is refused for its nesting, or None when it may be parsed."""
    deepest = nesting(tokens)
    if deepest <= limits.nesting:
        return None
    return (
        f"the SQL nests brackets and CASE expressions {deepest} levels deep, more than the {limits.nesting} "
        f"accepted ({limits.setting('nesting')}): flatten it, e.g. name inner queries in a WITH clause"
    )


def too_large(tree: exp.Expr, limits: SizeLimits) -> str | None:
    """Why a parse tree is refused for its size, or None when it may be checked further."""
    size = measure(tree)
    counted = [
        ("set_operations", size.set_operations, "UNION / INTERSECT / EXCEPT operations", "combine fewer queries"),
        ("ctes", size.ctes, "WITH entries (CTEs)", "use fewer named subqueries"),
        ("joins", size.joins, "joins", "join fewer tables in one query"),
        ("nodes", size.nodes, "nodes in its parse tree", "split it into smaller queries"),
        ("depth", size.depth, "levels of expressions inside expressions", "write shallower expressions"),
    ]
    for limit, measured, what, fix in counted:
        allowed = getattr(limits, limit)
        if measured > allowed:
            return (
                f"the query has {measured} {what}, more than the {allowed} accepted ({limits.setting(limit)}): "
                f"{fix}, or ask the operator to raise the limit"
            )
    return None


def recursion_refusal(limits: SizeLimits) -> str:
    """The refusal of a statement the parser could not read without recursing too deeply."""
    return (
        "the SQL is nested too deeply to check (e.g. a long run of NOT or unary minus, or brackets and CASE "
        f"nested close to the {limits.nesting} accepted by {limits.setting('nesting')}): simplify the query"
    )
