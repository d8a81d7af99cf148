-- A district's webhook subscriptions: where its provisioning events are delivered, which
-- event types (a JSON array of names; empty: every type), and the secrets deliveries are
-- signed with (Standard Webhooks). Secrets are stored sealed (AES-256-GCM, bound to district
-- and id); during a rotation the previous one stays live until `previous_secret_expires_at`.
-- A subscription failing for long enough is disabled, with the reason; `failing_since` is when
-- its current run of failures began.
CREATE TABLE subscriptions (
    district_id BIGINT NOT NULL REFERENCES districts(id),
    id TEXT NOT NULL,
    url TEXT NOT NULL,
    event_types TEXT NOT NULL,
    description TEXT NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_expires_at TIMESTAMPTZ,
    status TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
    disabled_reason TEXT,
    failing_since TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (district_id, id)
);
