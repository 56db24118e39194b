"""The local lakehouse's query caches: plans (guard + translation) and answers, both keyed on table state.

A plan is what the guard and the translation made of one statement's text for one tenant and row
cap: the DuckDB SQL, the tables and gold views it reads at any depth, the state of each when it was
made (`tablestate`), and whether it is deterministic (`determinism`). It is reused while every one
of those is in the same state, so a table dropped, a view redefined or a commit that changes a schema
makes it again; text that the guard refuses is never kept.

An answer is kept for a deterministic plan under (tenant catalog, DuckDB SQL, row cap, state of every
table read), so two spellings of one statement share it and a commit to any table read is a miss.
An answer is kept as its JSON, written once when it is kept (`rpc.Encoded`): a hit is replied as
those bytes, with no model to build or serialize again. Answers are bounded by their JSON bytes
(`LAKEGATE_LOADER_QUERY_CACHE_BYTES`), least recently used out first; an answer bigger than an
eighth of the bound is not kept, so one answer cannot flush the rest. The catalog is part of every
key: a tenant never gets another's answer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from lakegate.common.contracts.runs import TableRef
from lakegate.common.contracts.warehouse import QueryResult
from lakegate.common.rpc import Encoded
from lakegate.loader.warehouses.duckdbsql import EngineQuery

#: The state of every table and view a plan reads, in a fixed order; None marks one that is gone.
State = tuple[Hashable, ...]
StateOf = Callable[[TableRef], Hashable]

#: Plans kept; a plan is a few KiB (its DuckDB SQL), so this bounds them to a few MiB.
PLANS = 1024
#: Statements longer than this are planned every time rather than kept.
PLAN_SQL_CHARS = 64 * 1024
#: Bytes an entry costs besides its JSON: the key, the result's objects.
ENTRY_OVERHEAD = 512


@dataclass(frozen=True)
class Plan:
    """A guarded, translated statement and what it depends on."""

    engine: EngineQuery
    reads: tuple[TableRef, ...]
    state: State
    deterministic: bool


def state_of(reads: tuple[TableRef, ...], state: StateOf) -> State | None:
    """The state of every table read now; None when one of them is gone."""
    states = tuple(state(ref) for ref in reads)
    return None if any(found is None for found in states) else states


class Plans:
    """Plans by (catalog, statement text, row cap), least recently used out first."""

    def __init__(self, state: StateOf, most: int = PLANS) -> None:
        self._state = state
        self._most = most
        self._plans: OrderedDict[tuple[str, str, int], Plan] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, catalog: str, sql: str, max_rows: int) -> Plan | None:
        """The kept plan, when every table it reads is as it was; None otherwise."""
        key = (catalog, sql, max_rows)
        with self._lock:
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
        if plan is None:
            return None
        if state_of(plan.reads, self._state) != plan.state:
            with self._lock:
                if self._plans.get(key) is plan:
                    del self._plans[key]
            return None
        return plan

    def put(self, catalog: str, sql: str, max_rows: int, plan: Plan) -> None:
        if len(sql) > PLAN_SQL_CHARS:
            return
        with self._lock:
            self._plans[(catalog, sql, max_rows)] = plan
            self._plans.move_to_end((catalog, sql, max_rows))
            while len(self._plans) > self._most:
                self._plans.popitem(last=False)


AnswerKey = tuple[str, str, int, State]


class Answers:
    """Answers of deterministic plans as their JSON, bounded by bytes; `most_bytes` 0 keeps none."""

    def __init__(self, most_bytes: int) -> None:
        self.most_bytes = most_bytes
        self._answers: OrderedDict[AnswerKey, tuple[Encoded[QueryResult], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.most_bytes > 0

    @property
    def held_bytes(self) -> int:
        """Bytes the kept answers count for."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, catalog: str, plan: Plan, max_rows: int) -> Encoded[QueryResult] | None:
        key = (catalog, plan.engine.sql, max_rows, plan.state)
        with self._lock:
            found = self._answers.get(key)
            if found is None:
                return None
            self._answers.move_to_end(key)
            return found[0]

    def put(self, catalog: str, plan: Plan, max_rows: int, answer: QueryResult) -> None:
        if not self.enabled or not plan.deterministic:
            return
        written = Encoded.of(answer)  # what the responder writes for `answer`: a hit replies the same bytes
        size = len(written.json) + len(plan.engine.sql) + ENTRY_OVERHEAD
        if size > self.most_bytes // 8:
            return
        key = (catalog, plan.engine.sql, max_rows, plan.state)
        with self._lock:
            old = self._answers.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._answers[key] = (written, size)
            self._bytes += size
            while self._bytes > self.most_bytes:
                _, (_, dropped) = self._answers.popitem(last=False)
                self._bytes -= dropped
