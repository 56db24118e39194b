"""The public sync events: a finished run as a CloudEvents 1.0 envelope around a `SyncOutcome`.

A succeeded run is announced on `sync.completed`; a failed or a cancelled one on `sync.failed`
(`data.status` tells which). The event id is `<run_id>.<completed|failed>`, so the same
announcement published twice is one event to JetStream's deduplication and to any subscriber.
"""

from __future__ import annotations

from typing import Literal

from lakegate.catalog.runs import RunRecord
from lakegate.common.contracts.events import SYNC_COMPLETED, SYNC_FAILED, SyncEvent, SyncOutcome

SOURCE = "/lakegate/catalog"


def outcome_of(run: RunRecord) -> Literal["completed", "failed"]:
    """Which public subject a finished run is announced on."""
    if run.status == "succeeded":
        return "completed"
    if run.status in ("failed", "cancelled"):
        return "failed"
    raise ValueError(f"run {run.run_id} is {run.status}, not finished")


def sync_event(run: RunRecord) -> SyncEvent:
    """The event of a finished run; built only from the stored row, so a re-publish is identical."""
    outcome = outcome_of(run)
    assert run.finished_at is not None  # a finished run always has its finish time
    status: Literal["succeeded", "failed", "cancelled"] = (
        "succeeded" if outcome == "completed" else "cancelled" if run.status == "cancelled" else "failed"
    )
    data = SyncOutcome(
        run_id=run.run_id,
        tenant_id=run.tenant_id,
        connection_id=run.connection_id,
        source_table=run.source_table,
        target=run.target,
        sync_mode=run.sync_mode,
        status=status,
        row_count=run.row_count,
        bytes=run.bytes,
        deleted_rows=run.deleted_rows,
        duration_seconds=run.duration(),
        columns=run.columns or [],
        error=run.error,
        schema_changes=run.schema_changes,
        cursor=run.cursor if status == "succeeded" else None,  # only a committed load moves the cursor
        schedule_id=run.schedule_id,
    )
    return SyncEvent(
        id=f"{run.run_id}.{outcome}",
        source=SOURCE,
        type=SYNC_COMPLETED if outcome == "completed" else SYNC_FAILED,
        subject=run.run_id,
        time=run.finished_at,
        data=data,
    )
