-- A district's secrets for rosters pushed to it, signed as Standard Webhooks (`whsec_…`). Several
-- may be live at once (a rotation); a revoked one is kept, with the time, for the record. The
-- secret is stored sealed (AES-256-GCM, bound to district and id) and shown only when created.
CREATE TABLE push_secrets (
    district_id INTEGER NOT NULL REFERENCES districts(id),
    id TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    PRIMARY KEY (district_id, id)
);
