"""The coordinator's side of a parallel extraction: hand out the ranges, wait until every one is staged.

    coordinator (keeps its snapshot open)         range workers (every replica, `range_worker.py`)
    ─ a consumer on run.<id>.range, from its start
    ─ K commands on cmd.extract_range  ─────────▶  adopt the snapshot, read the range, stage it
                                       ◀─────────  run.<id>.range: RangeExtracted or RangeFailed
    ─ every range staged: their parts, in range order

Each command has the message id `<run_id>.range.<index>.<attempt>`, so a retried publish is stored
once. Reports of another attempt (an earlier coordinator that stopped, with another snapshot) are
ignored; when a range is staged twice (its command was redelivered), the first report counts. A
`RangeFailed` fails the run. The consumer is durable while the coordinator waits (and removed
after), so a NATS restart loses no report; a coordinator that dies leaves it to expire.

While it waits, the coordinator uses only its snapshot session, so it lends its reader's place in
the source's connection limit (`SourceConnections`) to the ranges: however many coordinators of a
source wait at once, a range of theirs can always be read.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from lakegate.common.contracts.runs import Cursor, ExtractRange, ExtractTable, RangeExtracted, RangeFailed
from lakegate.common.errors import LakegateError, TerminalError, error_from_code
from lakegate.common.service import Runtime
from lakegate.common.subjects import RunStep
from lakegate.extractor.connections import CURRENT
from lakegate.extractor.cursors import CursorColumn
from lakegate.extractor.ranges import RangeBounds
from lakegate.extractor.transfer import data_files_for
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import TypeAdapter

log = logging.getLogger(__name__)

#: The durable consumer every replica takes `cmd.extract_range` from.
RANGES_DURABLE = "extractor_ranges"
#: Seconds one wait for range reports lasts before it is asked again.
FETCH_WAIT = 5.0
#: Seconds a consumer nobody fetches from lives on (its coordinator died).
ABANDONED_AFTER = 600.0

_REPORT: TypeAdapter[RangeExtracted | RangeFailed] = TypeAdapter(RangeExtracted | RangeFailed)


async def ready_range_readers(rt: Runtime) -> int:
    """Replicas ready to read a range now, this one included: the pull requests waiting on the ranges' consumer.

    Each replica keeps one waiting while its range slot is free (`WorkPuller`). 0 when JetStream cannot say.
    """
    js = rt.broker.connection.jetstream()
    durable = rt.topology.durable(RANGES_DURABLE)
    try:
        info = await js.consumer_info(rt.topology.cmd_stream.name, durable, timeout=2.0)
    except Exception as exc:  # NATS away: read the table as one stream, which is always correct
        log.warning("cannot ask JetStream how many replicas read ranges (%s); reading as one stream", exc)
        return 0
    return info.num_waiting or 0


async def extract_in_ranges(
    rt: Runtime,
    command: ExtractTable,
    attempt: str,
    snapshot: str,
    ranges: Sequence[RangeBounds],
    *,
    cursor: CursorColumn | None,
    since: Cursor | None,
) -> list[RangeExtracted]:
    """Have the ranges of `command`'s table extracted in `snapshot`; their reports in range order."""
    async with _reports(rt, command.run_id, attempt) as reports:
        for index, bounds in enumerate(ranges):
            order = ExtractRange(
                tenant_id=command.tenant_id,
                run_id=command.run_id,
                connection_id=command.connection_id,
                source_schema=command.source_schema,
                source_table=command.source_table,
                snapshot=snapshot,
                index=index,
                count=len(ranges),
                predicate=bounds.sql,
                since=since,
                cursor_column=cursor.name if cursor else None,
                attempt=attempt,
                data_files_for=data_files_for(command),
            )
            await rt.broker.publish(
                order,
                rt.topology.cmd_extract_range,
                stream=rt.topology.cmd_stream.name,
                headers={"Nats-Msg-Id": f"{command.run_id}.range.{index}.{attempt}"},
            )
        log.info("run %s: %d ranges of %s.%s handed out", command.run_id, len(ranges), *_table(command))
        held = CURRENT.get()
        async with held.lend(1) if held is not None else contextlib.nullcontext():
            return await _collect(reports, command, attempt, len(ranges))


async def _collect(
    reports: JetStreamContext.PullSubscription, command: ExtractTable, attempt: str, count: int
) -> list[RangeExtracted]:
    staged: dict[int, RangeExtracted] = {}
    while len(staged) < count:
        try:
            messages = await reports.fetch(count - len(staged), timeout=FETCH_WAIT)
        except TimeoutError:
            continue
        for message in messages:
            report = _REPORT.validate_json(message.data)
            if report.attempt != attempt or report.index in staged:
                continue
            if isinstance(report, RangeFailed):
                raise _range_error(report, command, count)
            staged[report.index] = report
            log.info("run %s: range %d of %d staged (%d rows)", command.run_id, report.index, count, report.row_count)
    return [staged[index] for index in range(count)]


def _range_error(report: RangeFailed, command: ExtractTable, count: int) -> LakegateError:
    schema, table = _table(command)
    message = f"range {report.index + 1} of {count} of {schema}.{table} failed: {report.error.message}"
    error = error_from_code(report.error.code, message)
    # The range worker has given up on it, so the run cannot finish, whatever the cause was.
    return error if isinstance(error, TerminalError) else TerminalError(message)


def _table(command: ExtractTable) -> tuple[str, str]:
    return command.source_schema, command.source_table


@contextlib.asynccontextmanager
async def _reports(rt: Runtime, run_id: str, attempt: str) -> AsyncIterator[JetStreamContext.PullSubscription]:
    js = rt.broker.connection.jetstream()
    stream = rt.topology.run_stream.name
    name = rt.topology.durable(f"ranges_{run_id}_{attempt}")
    subscription = await js.pull_subscribe(
        rt.topology.run_step(run_id, RunStep.RANGE),
        durable=name,
        stream=stream,
        config=ConsumerConfig(
            ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=ABANDONED_AFTER
        ),
    )
    try:
        yield subscription
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, name)
