-- Tenants, API clients, sync runs, the outbox and coaching. Roster tables follow in 0002.

CREATE TABLE districts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    timezone TEXT NOT NULL,
    settings TEXT NOT NULL,
    sync_lock TEXT,
    sync_locked_at TIMESTAMPTZ,
    -- The day coaching was last derived for: re-derivation is skipped when nothing changed since.
    coaching_cutoff DATE,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_clients (
    client_id TEXT PRIMARY KEY,
    district_id BIGINT NOT NULL REFERENCES districts(id),
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

CREATE TABLE sync_runs (
    id TEXT PRIMARY KEY,
    district_id BIGINT NOT NULL REFERENCES districts(id),
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    dry_run BOOLEAN NOT NULL,
    plan TEXT NOT NULL,
    staged_rows BIGINT NOT NULL DEFAULT 0,
    report TEXT,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ
);
CREATE INDEX sync_runs_district_idx ON sync_runs (district_id, started_at);

CREATE TABLE outbox_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    district_id BIGINT NOT NULL REFERENCES districts(id),
    run_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    payload TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    delivered_at TIMESTAMPTZ
);
CREATE INDEX outbox_events_district_idx ON outbox_events (district_id, id);

CREATE TABLE coaching_sources (
    district_id BIGINT NOT NULL REFERENCES districts(id),
    teacher_sourced_id TEXT NOT NULL,
    student_sourced_id TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (district_id, teacher_sourced_id, student_sourced_id, source_type, source_id)
);
CREATE INDEX coaching_sources_student_idx ON coaching_sources (district_id, student_sourced_id);

CREATE UNLOGGED TABLE stage_coaching (
    run_id TEXT NOT NULL,
    teacher_sourced_id TEXT NOT NULL,
    student_sourced_id TEXT NOT NULL,
    class_sourced_id TEXT NOT NULL
);
CREATE INDEX stage_coaching_run_idx ON stage_coaching (run_id, teacher_sourced_id, student_sourced_id, class_sourced_id);
