"""What the messages about one sync run mean for a client waiting on it.

A run speaks on several subjects: its steps (`run.<id>.<step>`), lossy row counts
(`progress.<id>`), its cancellation (`cancel.<id>`) and the tenant's public sync events. `RunSignals`
reads each into a `Signal` and keeps the tallies a message alone cannot give: a large table is
extracted in parallel ranges that each count their own rows, so rows extracted are the sum over
ranges of the latest count of each; rows loaded are shown against rows extracted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from lakegate.common.contracts.events import SyncEvent
from lakegate.common.contracts.runs import (
    Extracted,
    Extracting,
    Failed,
    Loaded,
    Progress,
    RangeExtracted,
    RunView,
    SchemaChange,
)
from lakegate.common.subjects import RunStep, Topology
from lakegate.edge.progress import DONE, EXTRACTING, FINISHING, LOADING, QUEUED, Signal
from pydantic import ValidationError

log = logging.getLogger(__name__)

#: The key of rows extracted by a single stream (not a range).
_WHOLE = -1


def status_signal(run: RunView) -> Signal:
    """The signal a run's recorded status amounts to."""
    rows = f"{run.row_count:,} rows" if run.row_count is not None else "rows"
    if run.status == "queued":
        return Signal(QUEUED, f"run {run.run_id} queued: syncing {run.source_table} into {run.target}")
    if run.status == "extracting":
        return Signal(EXTRACTING, f"extracting {run.source_table}", run.rows_extracted)
    if run.status == "loading":
        extracted = run.rows_extracted if run.rows_extracted is not None else run.row_count
        shown = f"{extracted:,} rows" if extracted is not None else "rows"
        return Signal(LOADING, f"loading {shown} into {run.target}")
    if run.status == "succeeded":
        return Signal(DONE, f"succeeded: {rows} in {run.target}{_changes(run.schema_changes)}")
    if run.status == "cancelled":
        return Signal(DONE, f"cancelled: {run.target} is as it was before the run")
    return Signal(DONE, f"failed: {run.error.message if run.error else 'no reason recorded'}")


@dataclass
class RunSignals:
    """Reads the messages about one run, keeping its row tallies."""

    run: RunView
    topology: Topology
    extracted: dict[int, int] = field(default_factory=dict)  # rows so far, per range index (or _WHOLE)
    extracted_total: int | None = None  # from the `extracted` step: every range counted
    attempt: str | None = None

    @property
    def subjects(self) -> list[str]:
        """Every subject that says something about the run."""
        t, run_id = self.topology, self.run.run_id
        steps = [t.run_step(run_id, step) for step in RunStep]
        return [*steps, t.progress(run_id), t.cancel(run_id), t.sync_events(self.run.tenant_id)]

    def read(self, subject: str, data: bytes) -> Signal | None:
        """The signal of one message; None when it is about another run or cannot be read."""
        t, run_id = self.topology, self.run.run_id
        for step in RunStep:
            if subject == t.run_step(run_id, step):
                return self._step(step, data)
        if subject == t.cancel(run_id):
            return Signal(FINISHING, f"cancelling the sync of {self.run.source_table}", settles=True)
        try:
            if subject == t.progress(run_id):
                return self._progress(Progress.model_validate_json(data))
            event = SyncEvent.model_validate_json(data)
        except ValidationError as exc:
            log.debug("ignoring an unreadable message on %s: %s", subject, exc)
            return None
        return self._event(event)

    def _progress(self, update: Progress) -> Signal:
        run = self.run
        if update.step == "loading":
            total = self.extracted_total
            done = f"{update.rows:,} of {total:,} rows" if total is not None else f"{update.rows:,} rows so far"
            return Signal(LOADING, f"loading into {run.target}: {done}", update.rows, total)
        key = _WHOLE if update.range_index is None else update.range_index
        # Progress is lossy and may arrive out of order; a range's count only grows within an attempt.
        self.extracted[key] = max(self.extracted.get(key, 0), update.rows)
        return Signal(EXTRACTING, f"extracting {run.source_table}: {self._extracted_so_far()}", self._rows_extracted())

    def _step(self, step: RunStep, data: bytes) -> Signal:
        # A step's body only adds detail, so an unreadable one still counts.
        try:
            return self._read_step(step, data)
        except ValidationError as exc:
            log.debug("run %s step %s has an unreadable body: %s", self.run.run_id, step.value, exc)
        run = self.run
        plain = {
            RunStep.EXTRACTING: Signal(EXTRACTING, f"extracting {run.source_table}"),
            RunStep.RANGE: Signal(EXTRACTING, f"extracting {run.source_table}: a range is staged"),
            RunStep.EXTRACTED: Signal(LOADING, f"extracted {run.source_table}; waiting for the loader"),
            RunStep.LOADING: Signal(LOADING, f"loading into {run.target}"),
            RunStep.LOADED: Signal(FINISHING, f"loaded into {run.target}; recording the run", settles=True),
            RunStep.FAILED: Signal(FINISHING, "a step failed; reading the run", settles=True),
        }
        return plain[step]

    def _read_step(self, step: RunStep, data: bytes) -> Signal:
        run = self.run
        if step is RunStep.EXTRACTING:
            attempt = Extracting.model_validate_json(data).attempt
            again = self.attempt is not None and attempt != self.attempt
            if again:  # a redelivered extraction starts over: rows counted so far will be read again
                self.extracted.clear()
            self.attempt = attempt
            return Signal(EXTRACTING, f"extracting {run.source_table}{' again after an interruption' if again else ''}")
        if step is RunStep.RANGE:
            staged = RangeExtracted.model_validate_json(data)
            self.extracted[staged.index] = staged.row_count
            return Signal(
                EXTRACTING,
                f"extracting {run.source_table}: range {staged.index} staged with {staged.row_count:,} rows; "
                f"{self._extracted_so_far()}",
                self._rows_extracted(),
            )
        if step is RunStep.EXTRACTED:
            extracted = Extracted.model_validate_json(data)
            self.extracted_total = extracted.row_count
            ranges = f" in {len(extracted.ranges) + 1} ranges" if extracted.ranges else ""
            return Signal(
                LOADING,
                f"extracted {extracted.row_count:,} rows from {run.source_table}{ranges}; waiting for the loader",
            )
        if step is RunStep.LOADING:
            return Signal(LOADING, f"loading into {run.target}")
        if step is RunStep.LOADED:
            loaded = Loaded.model_validate_json(data)
            return Signal(
                FINISHING,
                f"loaded {loaded.row_count:,} rows into {run.target}{_changes(loaded.schema_changes)}; "
                "recording the run",
                settles=True,
            )
        failed = Failed.model_validate_json(data)
        return Signal(FINISHING, f"the {failed.step} step failed: {failed.error.message}", settles=True)

    def _event(self, event: SyncEvent) -> Signal | None:
        outcome = event.data
        if outcome.run_id != self.run.run_id:
            return None
        if outcome.status == "succeeded":
            return Signal(FINISHING, f"sync completed: {outcome.row_count or 0:,} rows", settles=True)
        if outcome.status == "cancelled":
            return Signal(FINISHING, "sync cancelled", settles=True)
        reason = outcome.error.message if outcome.error else "no reason recorded"
        return Signal(FINISHING, f"sync failed: {reason}", settles=True)

    def _rows_extracted(self) -> int:
        return sum(self.extracted.values())

    def _extracted_so_far(self) -> str:
        ranges = sorted(key for key in self.extracted if key != _WHOLE)
        shown = f"{self._rows_extracted():,} rows so far"
        return f"{shown} across {len(ranges)} ranges" if len(ranges) > 1 else shown


def _changes(changes: list[SchemaChange]) -> str:
    if not changes:
        return ""
    return " (schema changes: " + ", ".join(f"{c.column} {c.change.replace('_', ' ')}" for c in changes) + ")"
