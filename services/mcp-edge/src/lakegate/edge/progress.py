"""MCP progress of a sync run: five phases, a value that only increases, and words for the client.

    0 queued → 1 extracting → 2 loading → 3 recording → 4 done      (the total is 4)

Rows move the value within a phase without ever reaching the next one: as a share of the rows
to load when that is known, otherwise on a curve that approaches the next phase slowly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

#: Reports progress to the MCP client: (progress, total, message), like `Context.report_progress`.
ReportProgress = Callable[[float, float | None, str | None], Awaitable[None]]

QUEUED, EXTRACTING, LOADING, FINISHING, DONE = range(5)
TOTAL = float(DONE)
#: Rows of unknown total move progress along rows / (rows + scale).
_ROWS_SCALE = 100_000
#: A known share never takes the value to the next phase: the phase ends when its step says so.
_MOST_OF_A_PHASE = 0.99


@dataclass(frozen=True)
class Signal:
    """Something a run reported: which phase it is in, and words for the client."""

    phase: int
    message: str
    rows: int | None = None
    of: int | None = None  # the rows `rows` is a share of, when known
    settles: bool = False  # the run may be terminal now: re-read it from the catalog

    @property
    def share(self) -> float:
        """How far into its phase the signal is, from 0 to below 1."""
        rows = self.rows or 0
        if self.phase >= DONE or rows <= 0:
            return 0.0
        if self.of:
            return min(rows / self.of, _MOST_OF_A_PHASE)
        return rows / (rows + _ROWS_SCALE)


class ProgressMeter:
    """Turns a run's signals into MCP progress notifications whose value only increases."""

    def __init__(self, report: ReportProgress) -> None:
        self._report = report
        self._phase = QUEUED
        self._last = -1.0
        self._said = ""

    async def show(self, signal: Signal) -> None:
        """Report one signal, unless it is behind what was shown already or says nothing new."""
        if signal.phase < self._phase:
            return  # e.g. a re-read that lags behind the steps already seen
        value = signal.phase + signal.share
        if value <= self._last:
            if signal.message == self._said:
                return
            value = self._last + 1e-4  # a new message within the same phase still moves forward
        if value >= signal.phase + 1 or value > TOTAL:
            return
        self._phase, self._last, self._said = signal.phase, value, signal.message
        await self._report(round(value, 6), TOTAL, signal.message)


class CombinedProgress:
    """One progress stream for several runs: the sum of their values, out of `TOTAL` per run.

    Each run's value only increases (its own `ProgressMeter`), so the sum does too; reports are
    sent one at a time, so a later, larger sum never overtakes an earlier one on the wire.
    """

    def __init__(self, report: ReportProgress, runs: int) -> None:
        self._report = report
        self._values = [0.0] * runs
        self._total = TOTAL * runs
        self._last = -1.0
        self._lock = asyncio.Lock()

    def part(self, index: int, label: str) -> ReportProgress:
        """The progress callback of run `index`; its messages are prefixed with `label`."""

        async def report(progress: float, total: float | None, message: str | None) -> None:
            async with self._lock:
                self._values[index] = max(self._values[index], progress)
                value = round(sum(self._values), 6)
                if value <= self._last:
                    return
                self._last = value
                await self._report(value, self._total, f"{label}: {message}" if message else label)

        return report

    async def finish(self, index: int, label: str, message: str) -> None:
        """Count run `index` as done (a run that ended or never started)."""
        await self.part(index, label)(TOTAL, TOTAL, message)
