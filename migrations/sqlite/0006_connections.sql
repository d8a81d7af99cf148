-- A district's connections to its source systems (OneRoster REST): where, how to authenticate,
-- how fast, when to pull, and how far the last delta pull got. The secret is stored sealed
-- (AES-256-GCM, bound to this row); `auth` holds everything else about authentication.
CREATE TABLE connections (
    district_id INTEGER NOT NULL REFERENCES districts(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    version TEXT NOT NULL,
    base_url TEXT NOT NULL,
    page_size INTEGER NOT NULL,
    auth TEXT NOT NULL,
    secret TEXT NOT NULL,
    limits TEXT NOT NULL,
    delta_schedule TEXT,
    full_schedule TEXT,
    -- RFC 3339: the source's own clock, as its dateLastModified values said it.
    delta_cursor TEXT,
    last_full_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (district_id, name)
);

-- A pull run remembers its connection, and the cursor the connection moves to when it is applied.
ALTER TABLE sync_runs ADD COLUMN connection TEXT;
ALTER TABLE sync_runs ADD COLUMN cursor_after TEXT;
