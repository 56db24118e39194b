-- Sources, runs and datasets: the catalog's system of record.

CREATE TABLE sources (
    id                 text        PRIMARY KEY,
    tenant_id          text        NOT NULL,
    name               text        NOT NULL,
    -- The name folded as bronze table names use it: 'Shop DB' and 'shop_db' would write the same tables.
    name_key           text        NOT NULL,
    host               text        NOT NULL,
    port               integer     NOT NULL CHECK (port BETWEEN 1 AND 65535),
    database           text        NOT NULL,
    "user"             text        NOT NULL,
    -- A Fernet token; the plaintext password is never stored.
    password_encrypted bytea       NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sources_name_unique_per_tenant UNIQUE (tenant_id, name_key)
);

CREATE TABLE runs (
    run_id             text        PRIMARY KEY,
    tenant_id          text        NOT NULL,
    connection_id      text        NOT NULL REFERENCES sources (id),
    source_table       text        NOT NULL,
    target_catalog     text        NOT NULL,
    target_schema      text        NOT NULL,
    target_name        text        NOT NULL,
    sync_mode          text        NOT NULL CHECK (sync_mode IN ('full', 'incremental', 'merge')),
    status             text        NOT NULL DEFAULT 'queued'
                                   CHECK (status IN ('queued', 'extracting', 'loading', 'succeeded', 'failed')),
    -- The latest extraction attempt, and how many attempts reported `extracting`.
    attempt            text,
    attempts           integer     NOT NULL DEFAULT 0,
    -- NULL until the `extracted` step is recorded; '[]' is a table without columns.
    columns            jsonb,
    staged_rows        bigint,
    staged_bytes       bigint,
    row_count          bigint,
    bytes              bigint,
    table_version      bigint,
    error_code         text,
    error_message      text,
    error_transient    boolean,
    failed_step        text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz,
    -- Set once the public sync event is accepted by JetStream, so a redelivered step publishes nothing.
    event_published_at timestamptz
);

CREATE INDEX runs_by_tenant ON runs (tenant_id, created_at DESC);

CREATE TABLE datasets (
    tenant_id      text        NOT NULL,
    target_catalog text        NOT NULL,
    target_schema  text        NOT NULL,
    target_name    text        NOT NULL,
    connection_id  text        REFERENCES sources (id),
    source_table   text,
    row_count      bigint,
    columns        jsonb       NOT NULL DEFAULT '[]',
    last_run_id    text        REFERENCES runs (run_id),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, target_catalog, target_schema, target_name)
);
