-- Background jobs (scheduled pulls, and later webhook deliveries, scores, term ends): one row per
-- job, leased by the process that runs it. A lease that runs out means its process died: the job
-- is claimed again, until it has used up its attempts.

CREATE TABLE jobs (
    district_id BIGINT NOT NULL REFERENCES districts(id),
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    -- What makes two enqueued jobs the same one (a schedule slot enqueued by two replicas).
    dedupe_key TEXT,
    status TEXT NOT NULL,
    run_after TIMESTAMPTZ NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    last_error TEXT,
    result TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    PRIMARY KEY (district_id, id)
);
-- NULL keys are all distinct: only keyed jobs are deduplicated.
CREATE UNIQUE INDEX jobs_dedupe_idx ON jobs (district_id, dedupe_key);
-- Claiming: the oldest due queued job, or a running one whose lease ran out.
CREATE INDEX jobs_due_idx ON jobs (run_after) WHERE status = 'queued';
CREATE INDEX jobs_lease_idx ON jobs (lease_until) WHERE status = 'running';
-- The API's listing, newest first.
CREATE INDEX jobs_district_created_idx ON jobs (district_id, created_at);
