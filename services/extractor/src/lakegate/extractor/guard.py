"""The first wall around `source_query`: a parser that lets through one read-only query and nothing else.

The SQL is tokenized and parsed with sqlglot's `postgres` dialect, and refused unless it is exactly
one SELECT, WITH … SELECT, VALUES, TABLE or EXPLAIN (without ANALYZE) that

- holds no data-modifying statement anywhere (not in a CTE, not in a subquery),
- has no `SELECT … INTO` and no `FOR UPDATE` / `FOR SHARE` locking clause,
- names no function known to write, to reach outside the database, to signal other sessions or
  to run SQL text of its own (`BLOCKED_FUNCTIONS`, `BLOCKED_PREFIXES`, `BLOCKED_SUFFIXES`),
- has no bind parameters (`$1`) and no `U&"…"` identifiers (PostgreSQL decodes those escapes,
  sqlglot does not, so a name could hide behind them).

It also refuses, by name anywhere in the text, the relations that expose credentials or the
server's configuration (`allowlist.SENSITIVE_RELATIONS`), and `calls_in` reads off what the query
calls, for the allow-list (`allowlist.py`) to check against the source's own `pg_proc`: the
deny-lists here are a quick first look, the allow-list decides.

Before any of that, the statement's size is bounded (`sqlsize`): its length before tokenizing, its
nesting before parsing, and its parse tree (depth, nodes, set operations, CTEs, joins) after; each
refusal names the `LAKEGATE_EXTRACTOR_QUERY_MAX_*` setting it hit.

Parsing is the first wall, not the only one: `exploration.py` runs what passes as a single
statement in a READ ONLY transaction with timeouts, and rolls it back. Every refusal is an
`InvalidInput` whose message says what was refused and what is accepted instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence

from lakegate.common.errors import InvalidInput
from lakegate.extractor.allowlist import Calls, is_sensitive_relation, operator_runs
from lakegate.extractor.sqlsize import SizeLimits, recursion_refusal, too_deeply_nested, too_large, too_many_chars
from sqlglot import Token, TokenType, exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import SqlglotError

#: sqlglot logs every statement it cannot parse fully ("falling back to a Command"), with its text;
#: refusing it is our job, and user SQL does not belong in the log.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

ACCEPTED = "send exactly one read-only query: SELECT, WITH … SELECT, VALUES, TABLE or EXPLAIN (without ANALYZE)"

#: Functions that write, reach outside the database, signal other sessions or run SQL text of their own.
BLOCKED_FUNCTIONS = frozenset(
    {
        "set_config",
        "nextval",
        "setval",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_signal_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_notify",
        "pg_current_xact_id",
        "pg_export_snapshot",
        "pg_import_system_collations",
        "pg_promote",
        "pg_start_backup",
        "pg_stop_backup",
        "pg_log_backend_memory_contexts",
        "pg_stat_file",
        "pg_logdir_ls",
        "pg_truncate_visibility_map",
        "pg_prewarm",
        "ts_stat",
        "loread",
        "lowrite",
    }
)
BLOCKED_PREFIXES = (
    "pg_read_",  # pg_read_file, pg_read_binary_file
    "pg_ls_",  # pg_ls_dir, pg_ls_logdir, pg_ls_waldir, pg_ls_tmpdir, ...
    "pg_file_",  # adminpack: pg_file_write, pg_file_rename, pg_file_unlink
    "lo_",  # large objects: lo_import, lo_export, lo_create, lo_unlink, lo_put, ...
    "dblink",  # dblink, dblink_exec, dblink_connect, ...
    "pg_advisory",
    "pg_try_advisory",
    "txid_",  # txid_current assigns a transaction id
    "pg_replication_",
    "pg_logical_",
    "pg_create_",
    "pg_drop_",
    "pg_copy_",
    "pg_stat_reset",
    "pg_stat_statements_reset",
    "pg_wal_replay_",
    "pg_backup_",
    "pg_switch_",
)
#: query_to_xml and friends run SQL text given as a string, out of the parser's sight.
BLOCKED_SUFFIXES = ("_to_xml", "_to_xmlschema", "_to_xml_and_xmlschema")

#: EXPLAIN options that only change how the plan is shown; ANALYZE would run the statement.
EXPLAIN_OPTIONS = frozenset(
    {"VERBOSE", "COSTS", "SETTINGS", "GENERIC_PLAN", "BUFFERS", "WAL", "TIMING", "SUMMARY", "MEMORY", "SERIALIZE"}
    | {"FORMAT"}
)

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_OPERATOR = re.compile(r"[+\-*/<>=~!@#%^&|`?]+")
_QUERY_ROOTS = (exp.Select, exp.SetOperation, exp.Values)
_NAMES = (TokenType.VAR, TokenType.IDENTIFIER)


def is_blocked_function(name: str) -> bool:
    """True when `name` is a function the guard refuses (any schema, any case)."""
    folded = name.lower()
    return folded in BLOCKED_FUNCTIONS or folded.startswith(BLOCKED_PREFIXES) or folded.endswith(BLOCKED_SUFFIXES)


def check_query(sql: str, limits: SizeLimits | None = None) -> str:
    """Refuse anything but one read-only query of at most `limits`; returns the SQL to run, unchanged."""
    limits = limits or SizeLimits()
    if "\x00" in sql:
        raise InvalidInput(f"the SQL contains a NUL byte, which PostgreSQL never accepts in a statement: {ACCEPTED}")
    if (refusal := too_many_chars(len(sql), limits)) is not None:
        raise InvalidInput(refusal)
    if not sql.strip():
        raise InvalidInput(f"no SQL statement was given: {ACCEPTED}")
    _check(sql, limits)
    return sql


def calls_in(sql: str) -> Calls:
    """The functions, attribute-notation names and operators a query (that `check_query` passed) calls."""
    tokens = _tokens(sql)
    functions: set[str] = set()
    attributes: set[str] = set()
    operators: list[tuple[str, int, int]] = []
    for i, token in enumerate(tokens):
        if _OPERATOR.fullmatch(token.text) and token.token_type not in _NAMES and token.token_type != TokenType.STRING:
            operators.append((token.text, token.start, token.end))
            continue
        if not _WORD.fullmatch(token.text) and token.token_type != TokenType.IDENTIFIER:
            continue
        # PostgreSQL folds unquoted names to lower case and keeps quoted ones as written.
        name = token.text if token.token_type == TokenType.IDENTIFIER else token.text.lower()
        following = tokens[i + 1].token_type if i + 1 < len(tokens) else None
        if following == TokenType.L_PAREN:
            functions.add(name)
        elif i > 0 and tokens[i - 1].token_type == TokenType.DOT:
            attributes.add(name)
    return Calls(frozenset(functions), frozenset(attributes), operator_runs(operators))


def _check(sql: str, limits: SizeLimits) -> None:
    tokens = _tokens(sql)
    if (refusal := too_deeply_nested(tokens, limits)) is not None:
        raise InvalidInput(refusal)
    statements = _split(tokens)
    if not statements:
        raise InvalidInput(f"the SQL holds no statement, only comments or semicolons: {ACCEPTED}")
    if len(statements) > 1:
        raise InvalidInput(
            f"the SQL holds {len(statements)} statements; {ACCEPTED}, without other statements after a semicolon"
        )
    statement = statements[0]
    _refuse_unicode_identifiers(statement)
    _refuse_blocked_names(statement)
    first = statement[0]
    if first.token_type == TokenType.COMMAND and first.text.upper() == "EXPLAIN":
        _check_explain(statement[1].text if len(statement) > 1 else "", limits)
        return
    tree = _parse(sql, tokens, limits)
    if (refusal := too_large(tree, limits)) is not None:
        raise InvalidInput(refusal)
    _check_tree(tree, statement[0])


def _tokens(sql: str) -> list[Token]:
    try:
        return list(Postgres().tokenize(sql))
    except SqlglotError as exc:
        raise InvalidInput(
            f"the SQL could not be read ({_first_line(exc)}): check that quotes and comments are closed"
        ) from exc


def _split(tokens: Sequence[Token]) -> list[list[Token]]:
    """Tokens per statement; empty statements (`;;`) do not count."""
    statements: list[list[Token]] = [[]]
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            statements.append([])
        else:
            statements[-1].append(token)
    return [statement for statement in statements if statement]


def _refuse_unicode_identifiers(tokens: Sequence[Token]) -> None:
    # `U&"…"` is one identifier to PostgreSQL, which decodes its escapes; sqlglot reads `U & "…"`.
    for before, amp, after in zip(tokens, tokens[1:], tokens[2:], strict=False):
        if (
            before.text.upper() == "U"
            and amp.token_type == TokenType.AMP
            and after.token_type == TokenType.IDENTIFIER
            and before.end + 1 == amp.start
            and amp.end + 1 == after.start
        ):
            raise InvalidInput(
                'identifiers with Unicode escapes (U&"...") are not accepted: write the name plainly, e.g. "name"'
            )


def _refuse_blocked_names(tokens: Sequence[Token]) -> None:
    """A blocked function named anywhere (a call, attribute notation, or even a comment) is refused."""
    for token in tokens:
        names: Iterable[str] = [token.text] if token.token_type in _NAMES else []
        for comment in token.comments or []:
            names = [*names, *_WORD.findall(comment)]
        for name in names:
            if is_sensitive_relation(name):
                raise InvalidInput(
                    f"{name.lower()} holds credentials, other sessions' queries or the server's configuration "
                    "and is not readable through a source query: query your own tables"
                )
            if is_blocked_function(name):
                raise InvalidInput(
                    f"the function {name.lower()} is not allowed in a source query: it can write, reach outside "
                    "the database, signal other sessions or run SQL of its own; explore with plain SELECTs"
                )


def _parse(sql: str, tokens: list[Token], limits: SizeLimits) -> exp.Expr:
    try:
        parsed = [statement for statement in Postgres().parser().parse(tokens, sql) if statement is not None]
    except SqlglotError as exc:
        raise InvalidInput(f"the SQL could not be parsed as PostgreSQL ({_first_line(exc)}): {ACCEPTED}") from exc
    except RecursionError as exc:
        raise InvalidInput(recursion_refusal(limits)) from exc
    if len(parsed) != 1:  # the token split already counted statements; this is a second look
        raise InvalidInput(f"the SQL holds {len(parsed)} statements: {ACCEPTED}")
    return parsed[0]


def _check_tree(root: exp.Expr, first: Token) -> None:
    query = root
    while isinstance(query, exp.Subquery):  # `(SELECT 1)`
        query = query.this
    if not isinstance(query, _QUERY_ROOTS):
        raise InvalidInput(f"{_statement_kind(query, first)} statements are not allowed: {ACCEPTED}")
    for node in root.walk():
        _check_node(node)


def _statement_kind(root: exp.Expr, first: Token) -> str:
    """What the statement is, in the words a user wrote: DELETE, COPY, VACUUM, ..."""
    if isinstance(root, exp.Command):
        return str(root.this).upper()
    if isinstance(root, exp.DML | exp.DDL | exp.Drop | exp.Alter | exp.TruncateTable | exp.Merge):
        return "TRUNCATE" if isinstance(root, exp.TruncateTable) else root.key.upper()
    return first.text.upper()


def _check_node(node: exp.Expr) -> None:
    if isinstance(node, exp.DML | exp.DDL | exp.Drop | exp.Alter | exp.TruncateTable):
        kind = node.key.upper()
        raise InvalidInput(
            f"the query contains a data-modifying or schema-changing statement ({kind}), e.g. in a WITH clause; "
            f"{ACCEPTED}"
        )
    if isinstance(node, exp.Command | exp.Transaction | exp.Commit | exp.Rollback | exp.Set | exp.Grant):
        raise InvalidInput(f"the query contains a {node.key.upper()} statement: {ACCEPTED}")
    if isinstance(node, exp.Into) or (isinstance(node, exp.Select) and node.args.get("into") is not None):
        raise InvalidInput("SELECT ... INTO creates a table and is not allowed: drop the INTO clause")
    if isinstance(node, exp.Lock) or (isinstance(node, exp.Select) and node.args.get("locks")):
        raise InvalidInput("FOR UPDATE / FOR SHARE lock rows and are not allowed: drop the locking clause")
    if isinstance(node, exp.Placeholder | exp.Parameter | exp.SessionParameter):
        raise InvalidInput(
            f"the query has a parameter ({node.sql(dialect='postgres')}); source queries take no parameters: "
            "write the value into the query as a literal"
        )


def _check_explain(rest: str, limits: SizeLimits) -> None:
    """EXPLAIN [VERBOSE] query, or EXPLAIN (option, ...) query, without ANALYZE; then check the query."""
    tokens = _tokens(rest)
    if not tokens:
        raise InvalidInput(f"EXPLAIN needs a query to explain: {ACCEPTED}")
    if tokens[0].token_type == TokenType.L_PAREN:
        depth, close = 0, None
        for i, token in enumerate(tokens):
            depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(token.token_type, 0)
            if depth == 0:
                close = i
                break
        if close is None:
            raise InvalidInput("the EXPLAIN option list is not closed: write EXPLAIN (FORMAT JSON) SELECT ...")
        group_starts = [1] + [i + 1 for i in range(1, close) if tokens[i].token_type == TokenType.COMMA]
        for start in group_starts:
            _explain_option(tokens[start].text.upper() if start < close else "")
        remainder = _after(rest, tokens[close])
    else:
        skip = 0
        for token in tokens:
            if token.text.upper() not in {"ANALYZE", "ANALYSE", "VERBOSE"}:
                break
            _explain_option(token.text.upper())
            skip += 1
        remainder = rest if skip == 0 else _after(rest, tokens[skip - 1])
    if not remainder.strip():
        raise InvalidInput(f"EXPLAIN needs a query to explain: {ACCEPTED}")
    _check(remainder, limits)


def _explain_option(name: str) -> None:
    if name in {"ANALYZE", "ANALYSE"}:
        raise InvalidInput(
            "EXPLAIN ANALYZE runs the statement it explains and is not allowed: use plain EXPLAIN to see the plan"
        )
    if name not in EXPLAIN_OPTIONS:
        raise InvalidInput(
            f"EXPLAIN option {name or '(empty)'} is not accepted; use some of {', '.join(sorted(EXPLAIN_OPTIONS))}"
        )


def _after(text: str, token: Token) -> str:
    """The text after `token` (positions are inclusive character offsets into `text`)."""
    return text[token.end + 1 :]


def _first_line(exc: BaseException) -> str:
    line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"\x1b\[[0-9;]*m", "", line)[:200]
