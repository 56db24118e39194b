-- Incremental cursors, schedules, cancelled runs and one active run per target.
-- Additive: every row written under 0001/0002 stays valid (see the one exception for stuck runs below).

ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('queued', 'extracting', 'loading', 'succeeded', 'failed', 'cancelled'));

ALTER TABLE runs
    -- The cursor column the caller asked for (or the stored cursor's); NULL lets the extractor infer one.
    ADD COLUMN cursor_column  text,
    -- The stored cursor the run was sent with (`ExtractTable.since`), as {column, value, source_type}.
    ADD COLUMN since          jsonb,
    -- The greatest cursor value the run extracted (`Extracted.cursor`); stored as the table's cursor
    -- only when the run succeeds.
    ADD COLUMN cursor         jsonb,
    ADD COLUMN schema_changes jsonb       NOT NULL DEFAULT '[]',
    ADD COLUMN schedule_id    text,
    -- When the run was cancelled; kept when a load that raced the cancel commits and the run succeeds.
    ADD COLUMN cancelled_at   timestamptz;

-- One active run per target from now on. Runs the first slice left active side by side on one target
-- (in practice: runs stuck `queued`) are cancelled, all but the newest, so the index can exist.
WITH active AS (
    SELECT run_id,
           first_value(run_id) OVER per_target AS newest,
           row_number() OVER per_target AS position
      FROM runs
     WHERE status IN ('queued', 'extracting', 'loading')
    WINDOW per_target AS (PARTITION BY tenant_id, target_catalog, target_schema, target_name
                          ORDER BY created_at DESC, run_id DESC)
)
UPDATE runs AS r
   SET status = 'cancelled', finished_at = now(), cancelled_at = now(), error_code = 'cancelled',
       error_message = 'cancelled when the catalog began allowing one active run per table: run '
                       || active.newest || ' for the same target was started later',
       error_transient = false
  FROM active
 WHERE r.run_id = active.run_id AND active.position > 1;

CREATE UNIQUE INDEX runs_one_active_per_target ON runs (tenant_id, target_catalog, target_schema, target_name)
    WHERE status IN ('queued', 'extracting', 'loading');

-- Finished runs whose public event has not gone out yet, for the scheduler's sweep.
CREATE INDEX runs_unannounced ON runs (finished_at)
    WHERE event_published_at IS NULL AND status IN ('succeeded', 'failed', 'cancelled');

CREATE INDEX runs_by_schedule ON runs (schedule_id, created_at DESC) WHERE schedule_id IS NOT NULL;

-- The high-water mark of each synced table: the cursor of its last succeeded run. Written in the
-- transaction that marks that run succeeded, never earlier.
CREATE TABLE cursors (
    tenant_id      text        NOT NULL,
    connection_id  text        NOT NULL REFERENCES sources (id),
    source_table   text        NOT NULL,
    target_catalog text        NOT NULL,
    target_schema  text        NOT NULL,
    target_name    text        NOT NULL,
    "column"       text        NOT NULL,
    -- Canonical text (timestamptz in UTC with '+00:00'); see `Cursor.value`.
    value          text        NOT NULL,
    source_type    text        NOT NULL,
    run_id         text        NOT NULL REFERENCES runs (run_id),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, connection_id, source_table, target_catalog, target_schema, target_name)
);

CREATE TABLE schedules (
    schedule_id   text        PRIMARY KEY,
    tenant_id     text        NOT NULL,
    connection_id text        NOT NULL REFERENCES sources (id),
    -- `schema.table` in the source, as the runs it starts record it.
    table_name    text        NOT NULL,
    sync_mode     text        NOT NULL CHECK (sync_mode IN ('full', 'incremental', 'merge')),
    cursor_column text,
    every_seconds integer     CHECK (every_seconds >= 1),
    cron          text,
    next_run_at   timestamptz NOT NULL,
    last_run_id   text,
    last_run_at   timestamptz,
    created_at    timestamptz NOT NULL,
    CONSTRAINT schedules_every_or_cron CHECK ((every_seconds IS NULL) <> (cron IS NULL))
);

CREATE INDEX schedules_due ON schedules (next_run_at);
CREATE INDEX schedules_by_tenant ON schedules (tenant_id, created_at, schedule_id);
