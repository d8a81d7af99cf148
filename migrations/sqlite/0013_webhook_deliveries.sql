-- Outbound webhook deliveries: one row per (subscription, event), made by the fan-out, claimed
-- by a delivery worker with a lease, and finished as delivered or failed. Events about one
-- subject reach a subscription in order: a delivery is only claimed when no earlier delivery of
-- the same subscription and subject is still unfinished.
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    district_id INTEGER NOT NULL REFERENCES districts(id),
    subscription_id TEXT NOT NULL,
    -- The outbox row (`evt_<event_seq>`); no foreign key, so that outbox housekeeping never
    -- waits on the delivery log.
    event_seq INTEGER NOT NULL,
    subject_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivering', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_owner TEXT,
    lease_until TEXT,
    last_status_code INTEGER,
    last_error TEXT,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    FOREIGN KEY (district_id, subscription_id) REFERENCES subscriptions(district_id, id)
        ON DELETE CASCADE
);
-- The claim: due pending deliveries in time order, and leases that ran out.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at, id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_lease_idx ON webhook_deliveries (lease_until)
    WHERE status = 'delivering';
-- The head-of-line check: an earlier unfinished delivery of the same subscription and subject.
CREATE INDEX webhook_deliveries_line_idx
    ON webhook_deliveries (district_id, subscription_id, subject_id, id)
    WHERE status IN ('pending', 'delivering');
-- No index on (district_id, subscription_id, id) for the delivery log: the planner would take
-- it for the head-of-line check on a freshly filled table and scan every earlier delivery. The
-- log reads the primary key backwards instead.

-- Every attempt of a delivery: when, the answer's status or the error, how long it took, and a
-- short excerpt of the answer. Request bodies are never kept.
CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    attempted_at TEXT NOT NULL,
    status_code INTEGER,
    duration_ms INTEGER NOT NULL,
    error TEXT,
    response_excerpt TEXT
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

-- How far each district's outbox has been fanned out into deliveries. One transaction at a time
-- holds a district's row, so concurrent workers never fan an event out twice; a district's
-- events are written by one sync at a time, so its ids are committed in order.
CREATE TABLE webhook_fanout_cursors (
    district_id INTEGER PRIMARY KEY REFERENCES districts(id),
    last_event_seq INTEGER NOT NULL
);
