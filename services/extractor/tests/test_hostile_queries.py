"""Hostile and malformed SQL sent to `source_query`, through NATS like the edge sends it.

Every case of `corpus/source_query_hostile.txt` (and a few too big to write there) must be refused
with its reason, or come back capped; afterwards the source database must be exactly as before.
The login is a superuser, so the walls are tested against the most powerful login there is.
"""

from __future__ import annotations

import importlib.resources
import re
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import asyncpg
import pytest
from lakegate.common.contracts.explore import QuerySource
from lakegate.common.contracts.warehouse import QueryResult
from lakegate.common.errors import LakegateError
from lakegate.common.settings import NatsSettings
from lakegate.extractor.config import ExtractorSettings

from .conftest import FakeCatalog, harness_settings, login_for
from .hostile_source import MARKER, SCHEMA, fingerprint, sessions_of_the_extractor, until_the_extractor_left

CORPUS = Path(__file__).parent / "corpus" / "source_query_hostile.txt"
MAX_ROWS = 100
QUERY_TIMEOUT = 2.0
MAX_BYTES = 256 * 1024
MAX_CHARS = 20_000
MAX_NODES = 5_000

#: Each reason: the error code and a phrase its message must contain.
REASONS: dict[str, tuple[str, str]] = {
    "multiple_statements": ("invalid_input", "statements; send exactly one read-only query"),
    "not_a_query": ("invalid_input", "statements are not allowed"),
    "data_modifying": ("invalid_input", "data-modifying or schema-changing statement"),
    "explain_analyze": ("invalid_input", "EXPLAIN ANALYZE runs the statement"),
    "explain_option": ("invalid_input", "EXPLAIN option"),
    "explain_without_query": ("invalid_input", "EXPLAIN needs a query"),
    "blocked_function": ("invalid_input", "is not allowed in a source query"),
    "select_into": ("invalid_input", "SELECT ... INTO creates a table"),
    "locking": ("invalid_input", "FOR UPDATE / FOR SHARE lock rows"),
    "parameter": ("invalid_input", "source queries take no parameters"),
    "unicode_escape": ("invalid_input", "Unicode escapes"),
    "syntax": ("invalid_input", "the SQL could not be"),
    "empty": ("invalid_input", "no SQL statement was given"),
    "comments_only": ("invalid_input", "holds no statement"),
    "nul": ("invalid_input", "NUL byte"),
    "too_long": ("invalid_input", f"more than the {MAX_CHARS} accepted"),
    "nested": ("invalid_input", "nested too deeply to check"),
    "too_large": ("invalid_input", "accepted (LAKEGATE_EXTRACTOR_QUERY_MAX_"),
    "read_only": ("source_error", "source queries run in a read-only transaction"),
    "allow_list": ("invalid_input", "is not allowed in a source query"),
    "sensitive": ("invalid_input", "holds credentials, other sessions' queries or the server's configuration"),
    "timeout": ("source_error", f"ran longer than {QUERY_TIMEOUT:g}s and was cancelled"),
}
#: Cases that succeed, but with the rows cut at `MAX_ROWS` or `MAX_BYTES`.
CAPPED = "capped"


@dataclass(frozen=True)
class Case:
    reason: str
    sql: str
    where: str

    def __str__(self) -> str:
        return f"{self.where} [{self.reason}] {self.sql[:80]!r}"


def corpus() -> list[Case]:
    """The cases of the corpus file, in order."""
    text = CORPUS.read_text(encoding="utf-8")
    cases = []
    for match in re.finditer(r"^==== (\w+)\n?(.*?)(?=^==== |\Z)", text, flags=re.M | re.S):
        line = text.count("\n", 0, match.start()) + 1
        sql = match.group(2).rstrip("\n").replace("{NUL}", "\x00")
        cases.append(Case(match.group(1), sql, f"{CORPUS.name}:{line}"))
    return cases


def generated() -> list[Case]:
    """Cases too big to keep in the file."""
    return [
        Case("too_long", "SELECT " + " + ".join(["1"] * MAX_CHARS), "generated"),
        Case("too_long", " " * 1_000_000 + "DROP TABLE accounts", "generated"),
        Case("too_long", "SELECT 1; " * 5_000, "generated"),
        Case("too_large", "SELECT " + "(" * 3_000 + "1" + ")" * 3_000, "generated"),
        Case("nested", "SELECT " + "NOT " * 2_000 + "true", "generated"),
        Case("too_large", "SELECT 1 " + "UNION ALL SELECT 1 " * 1_000, "generated"),
        Case("too_large", "WITH " + ", ".join(f"t{i} AS (SELECT 1)" for i in range(200)) + " SELECT 1", "generated"),
        Case(
            "too_large",
            "SELECT 1 FROM accounts a0 " + " ".join(f"JOIN accounts a{i} ON true" for i in range(1, 100)),
            "generated",
        ),
        Case("too_large", "SELECT 1 WHERE 1 IN (" + ",".join(["1"] * 9_000) + ")", "generated"),
        Case("too_large", "SELECT '{}'::jsonb" + "->'k'" * 300, "generated"),
        Case("too_large", "SELECT " + "CASE WHEN true THEN " * 30 + "1" + " END" * 30, "generated"),
        Case("too_large", "EXPLAIN SELECT 1 " + "UNION ALL SELECT 1 " * 1_000, "generated"),
        Case("multiple_statements", "SELECT 1; " * 500, "generated"),
        Case("not_a_query", "/*" + " padding " * 1_000 + "*/ DELETE FROM accounts", "generated"),
        Case(
            "capped",
            "SELECT " + ", ".join(f"repeat('v', 100) AS c{i}" for i in range(150)) + " FROM generate_series(1, 1000)",
            "generated",
        ),
    ]


def test_the_corpus_holds_more_than_200_cases_each_with_a_known_reason() -> None:
    cases = corpus()

    assert len(cases) >= 200
    assert {case.reason for case in cases} <= {*REASONS, CAPPED}
    assert {case.reason for case in cases} >= {*REASONS, CAPPED} - {"too_long", "nested", "too_large"}


@pytest.fixture
def settings(nats_settings: NatsSettings) -> ExtractorSettings:
    return harness_settings(
        nats_settings,
        query_timeout=QUERY_TIMEOUT,
        query_lock_timeout=1.0,
        query_max_bytes=MAX_BYTES,
        query_max_chars=MAX_CHARS,
        query_max_nodes=MAX_NODES,
    )


async def outcome_of(catalog: FakeCatalog, connection_id: str, case: Case) -> str | None:
    """None when the case was refused or capped as it should be, else what happened instead."""
    request = QuerySource(tenant_id=catalog.tenant_id, connection_id=connection_id, sql=case.sql, max_rows=MAX_ROWS)
    try:
        result = await catalog.rpc.call(catalog.topology.source_query, request, QueryResult)
    except LakegateError as exc:
        if case.reason == CAPPED:
            return f"refused ({exc.code}: {exc.message}) instead of capped"
        code, phrase = REASONS[case.reason]
        if exc.code != code or phrase not in exc.message:
            return f"refused with {exc.code}: {exc.message}"
        return None
    if case.reason != CAPPED:
        return f"ran and returned {result.row_count} rows (truncated={result.truncated})"
    if not result.truncated or result.row_count > MAX_ROWS:
        return f"returned {result.row_count} rows with truncated={result.truncated}"
    return None


async def test_every_hostile_query_is_refused_or_capped_with_its_reason_and_the_source_is_left_unchanged(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute(SCHEMA)
    MARKER.unlink(missing_ok=True)
    database = source_dsn.rsplit("/", 1)[1]
    before = await fingerprint(source)
    connection_id = catalog.add_source(login_for(source_dsn), name="victim")

    cases = [*corpus(), *generated()]
    wrong = [f"{case}: {problem}" for case in cases if (problem := await outcome_of(catalog, connection_id, case))]

    assert wrong == [], "\n".join(wrong)
    await until_the_extractor_left(source, database)
    assert await fingerprint(source) == before
    assert not MARKER.exists()
    assert await sessions_of_the_extractor(source, database) == []
    assert await source.fetchval("SELECT 1") == 1  # the test's own session was not terminated


def sqlmap_payloads() -> list[str]:
    """Every payload of sqlmap's payload files (the installed package's, read at test time), filled in."""
    base = importlib.resources.files("sqlmap") / "data" / "xml" / "payloads"
    payloads = []
    for file in sorted(base.iterdir(), key=lambda f: f.name):
        if file.name.endswith(".xml"):
            tree = ElementTree.fromstring(file.read_text(encoding="utf-8"))
            payloads.extend(e.text for e in tree.iter("payload") if e.text)
    fills = {"SLEEPTIME": "0", "DELIMITER_START": "qq", "DELIMITER_STOP": "qq", "RANDSTR": "abc"}
    return [re.sub(r"\[([A-Z_]+)\d*\]", lambda m: fills.get(m.group(1), "7"), p) for p in payloads]


async def test_every_sqlmap_payload_is_refused_or_only_reads_and_the_source_is_left_unchanged(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute(SCHEMA)
    database = source_dsn.rsplit("/", 1)[1]
    before = await fingerprint(source)
    connection_id = catalog.add_source(login_for(source_dsn), name="victim")
    payloads = sqlmap_payloads()

    internal = []
    for payload in payloads:
        for sql in (f"SELECT id FROM accounts WHERE id = 1 {payload}", f"SELECT {payload}"):
            request = QuerySource(tenant_id=catalog.tenant_id, connection_id=connection_id, sql=sql, max_rows=MAX_ROWS)
            try:
                await catalog.rpc.call(catalog.topology.source_query, request, QueryResult)
            except LakegateError as exc:
                if exc.code == "internal":
                    internal.append(f"{sql[:100]!r}: {exc.message}")

    assert len(payloads) >= 300
    assert internal == []
    await until_the_extractor_left(source, database)
    assert await fingerprint(source) == before
    answer = await catalog.rpc.call(
        catalog.topology.source_query,
        QuerySource(tenant_id=catalog.tenant_id, connection_id=connection_id, sql="SELECT 1 AS up", max_rows=1),
        QueryResult,
    )
    assert answer.rows == [[1]]
