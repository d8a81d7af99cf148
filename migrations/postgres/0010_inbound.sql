-- Rosters pushed to a district (a signed webhook or a bearer POST): one row per delivery, written
-- with its processing job before the push is acknowledged. The body itself is a file under
-- `data_dir/inbound/` (`body_path`): bodies run to tens of megabytes, and the CSV importer reads
-- a path. A sender's `webhook-id` makes a repeated push the same delivery.
CREATE TABLE inbound_deliveries (
    district_id BIGINT NOT NULL REFERENCES districts(id),
    id TEXT NOT NULL,
    webhook_id TEXT,
    kind TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body_path TEXT NOT NULL,
    body_bytes BIGINT NOT NULL,
    -- received, processing, applied, held, failed, dead
    status TEXT NOT NULL,
    run_id TEXT,
    -- JSON array of the problems that failed it (the run's errors, or the gateway's own trouble).
    errors TEXT NOT NULL DEFAULT '[]',
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (district_id, id)
);
-- NULL webhook ids are all distinct: only pushes that carry one are deduplicated.
CREATE UNIQUE INDEX inbound_deliveries_webhook_idx ON inbound_deliveries (district_id, webhook_id);
-- The API's listing, newest first.
CREATE INDEX inbound_deliveries_created_idx ON inbound_deliveries (district_id, created_at);
