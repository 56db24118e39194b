"""The run state machine's rule, step by step: status only moves forward."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from lakegate.catalog.lifecycle import Step, advance, cancelled, parse_step, tracked
from lakegate.catalog.runs import RunRecord
from lakegate.common.contracts.runs import (
    ColumnMapping,
    ErrorInfo,
    Extracted,
    Extracting,
    Failed,
    Loaded,
    Loading,
    RunStatus,
    StagedParts,
    TableRef,
)
from lakegate.common.errors import Conflict, InvalidInput

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
TARGET = TableRef(catalog="tenant_t", schema_name="bronze", name="shop_orders")
COLUMNS = [ColumnMapping(name="id", source_type="bigint", arrow_type="int64", mapped=True)]
STEPS: dict[str, Step] = {
    "extracting": Extracting(tenant_id="t", run_id="run_1", attempt="a1"),
    "extracted": Extracted(
        tenant_id="t",
        run_id="run_1",
        target=TARGET,
        sync_mode="full",
        arrow_schema="",
        columns=COLUMNS,
        row_count=5,
        staged=StagedParts(location="x", parts=1, bytes=10),
    ),
    "loading": Loading(tenant_id="t", run_id="run_1"),
    "loaded": Loaded(tenant_id="t", run_id="run_1", target=TARGET, row_count=5, bytes=100),
    "failed": Failed(tenant_id="t", run_id="run_1", step="load", error=ErrorInfo(code="warehouse_error", message="x")),
}


def _run(status: RunStatus) -> RunRecord:
    recorded = status not in ("queued",)
    return RunRecord(
        run_id="run_1",
        tenant_id="t",
        connection_id="src_1",
        source_table="public.orders",
        target=TARGET,
        sync_mode="full",
        status=status,
        created_at=NOW,
        attempt="a1" if recorded else None,
        columns=COLUMNS if recorded else None,
        finished_at=NOW if status in ("succeeded", "failed") else None,
    )


@pytest.mark.parametrize(
    ("status", "step", "after"),
    [
        ("queued", "extracting", "extracting"),
        ("queued", "extracted", "extracting"),
        ("queued", "loading", "loading"),
        ("queued", "failed", "failed"),
        ("extracting", "extracting", "extracting"),
        ("extracting", "extracted", "extracting"),
        ("extracting", "loading", "loading"),
        ("extracting", "loaded", "succeeded"),
        ("extracting", "failed", "failed"),
        ("loading", "extracting", "loading"),
        ("loading", "extracted", "loading"),
        ("loading", "loading", "loading"),
        ("loading", "loaded", "succeeded"),
        ("loading", "failed", "failed"),
        *[(done, step, done) for done in ("succeeded", "failed") for step in STEPS],
    ],
)
def test_a_step_moves_a_run_forward_or_leaves_it_as_it_is(status: RunStatus, step: str, after: RunStatus) -> None:
    assert advance(_run(status), STEPS[step], NOW).status == after


@pytest.mark.parametrize("status", ["succeeded", "failed"])
@pytest.mark.parametrize("step", list(STEPS))
def test_a_finished_run_is_not_changed_by_any_step(status: RunStatus, step: str) -> None:
    run = _run(status)
    assert advance(run, STEPS[step], NOW) is run


def test_a_duplicate_extracting_of_the_same_attempt_changes_nothing() -> None:
    run = advance(_run("queued"), STEPS["extracting"], NOW)
    assert advance(run, STEPS["extracting"], NOW) is run


def test_a_new_extraction_attempt_is_counted() -> None:
    run = advance(_run("queued"), STEPS["extracting"], NOW)
    retried = advance(run, Extracting(tenant_id="t", run_id="run_1", attempt="a2"), NOW)
    assert (retried.attempt, retried.attempts) == ("a2", 2)


def test_loaded_before_extracted_is_recorded_is_a_transient_conflict() -> None:
    with pytest.raises(Conflict, match="before the catalog recorded its `extracted` step"):
        advance(_run("queued"), STEPS["loaded"], NOW)


def test_a_step_published_on_another_runs_subject_is_refused() -> None:
    body = STEPS["loading"].model_dump_json().encode()
    assert parse_step("p.run.run_1.loading", body) == STEPS["loading"]
    with pytest.raises(InvalidInput, match="is about run run_1"):
        parse_step("p.run.run_2.loading", body)
    with pytest.raises(InvalidInput, match="names no run step"):
        parse_step("p.run.run_1.exploded", body)
    with pytest.raises(InvalidInput, match="not a valid Loaded message"):
        parse_step("p.run.run_1.loaded", body)


@pytest.mark.parametrize("step", [name for name in STEPS if name != "loaded"])
def test_a_cancelled_run_stays_cancelled_whatever_a_late_worker_reports(step: str) -> None:
    run = cancelled(_run("extracting"), NOW)
    assert advance(run, STEPS[step], NOW).status == "cancelled"


def test_a_load_committed_before_the_cancel_was_heard_makes_the_run_succeeded() -> None:
    run = replace(cancelled(_run("loading"), NOW), event_published_at=NOW)
    later = NOW + timedelta(seconds=2)

    done = advance(run, STEPS["loaded"], later)

    assert (done.status, done.error, done.failed_step, done.finished_at) == ("succeeded", None, None, later)
    assert (done.cancelled_at, done.event_published_at) == (NOW, None)  # the completion is announced too


def test_cancelling_records_where_the_run_stopped_and_cancelling_again_changes_nothing() -> None:
    run = cancelled(_run("loading"), NOW)
    assert (run.status, run.failed_step, run.finished_at, run.cancelled_at) == ("cancelled", "loading", NOW, NOW)
    assert run.error is not None
    assert run.error.code == "cancelled"
    assert cancelled(run, NOW) is run


@pytest.mark.parametrize("status", ["succeeded", "failed"])
def test_a_finished_run_cannot_be_cancelled(status: RunStatus) -> None:
    with pytest.raises(InvalidInput, match=f"already finished: it {status} at 2025-01-02 03:04:05 UTC"):
        cancelled(_run(status), NOW)


def test_a_range_step_is_not_tracked_but_every_other_step_is() -> None:
    assert not tracked("p.run.run_1.range")
    assert all(tracked(f"p.run.run_1.{name}") for name in STEPS)
