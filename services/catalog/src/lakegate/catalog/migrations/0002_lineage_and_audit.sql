-- Datasets learn their kind, lineage, keys and definition; runs keep the source's primary key;
-- the audit log of tool calls. Additive only: every row written under 0001 stays valid.

-- The source table's primary key as the `extracted` step reported it; NULL until then.
ALTER TABLE runs ADD COLUMN primary_key jsonb;

CREATE INDEX runs_by_connection ON runs (tenant_id, connection_id, created_at DESC);

ALTER TABLE datasets
    ADD COLUMN kind           text        NOT NULL DEFAULT 'synced'
                                          CHECK (kind IN ('synced', 'silver', 'gold', 'upload')),
    -- Warehouse tables it was built from, as a list of {catalog, schema_name, name}.
    ADD COLUMN upstream       jsonb       NOT NULL DEFAULT '[]',
    ADD COLUMN keys           jsonb       NOT NULL DEFAULT '[]',
    ADD COLUMN definition     text,
    ADD COLUMN file_name      text,
    ADD COLUMN last_synced_at timestamptz;

-- Under 0001 only succeeded syncs wrote datasets, stamped with the run's finish time.
UPDATE datasets SET last_synced_at = updated_at WHERE last_run_id IS NOT NULL;

CREATE TABLE audit (
    id          text             PRIMARY KEY,
    tenant_id   text             NOT NULL,
    actor       text             NOT NULL,
    tool        text             NOT NULL,
    -- Arguments as the edge sent them: secrets already removed, long values shortened.
    arguments   jsonb            NOT NULL DEFAULT '{}',
    outcome     text             NOT NULL CHECK (outcome IN ('ok', 'error')),
    error_code  text,
    duration_ms double precision NOT NULL,
    at          timestamptz      NOT NULL,
    recorded_at timestamptz      NOT NULL DEFAULT now()
);

CREATE INDEX audit_by_tenant ON audit (tenant_id, at DESC, id DESC);
