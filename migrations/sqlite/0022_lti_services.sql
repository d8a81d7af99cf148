-- The LTI services a launch offers for its course (NRPS memberships, AGS line items), the
-- last score timestamp sent per line item and user, and the deep linking requests answered.

-- A course context a platform launched from: the rostered class its course section named,
-- and the service URLs its latest launch carried (opaque: never constructed).
CREATE TABLE lti_contexts (
    platform_id INTEGER NOT NULL REFERENCES lti_platforms(id) ON DELETE CASCADE,
    context_id TEXT NOT NULL,
    district_id INTEGER NOT NULL REFERENCES districts(id) ON DELETE CASCADE,
    title TEXT,
    class_sourced_id TEXT,
    memberships_url TEXT,
    lineitems_url TEXT,
    lineitem_url TEXT,
    -- The AGS scopes the launch granted, space-separated: only these are requested.
    ags_scopes TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (platform_id, context_id)
);
CREATE INDEX lti_contexts_class_idx ON lti_contexts (district_id, class_sourced_id);

-- AGS ignores a score not newer than the last one for its line item and user, so every
-- score sent is stamped after the one before it.
CREATE TABLE lti_score_clock (
    platform_id INTEGER NOT NULL REFERENCES lti_platforms(id) ON DELETE CASCADE,
    line_item_url TEXT NOT NULL,
    sub TEXT NOT NULL,
    last_timestamp TEXT NOT NULL,
    PRIMARY KEY (platform_id, line_item_url, sub)
);

-- A deep linking request is answered once: its session's jti, kept until the session expires.
CREATE TABLE lti_deep_link_answers (
    jti TEXT PRIMARY KEY,
    platform_id INTEGER NOT NULL REFERENCES lti_platforms(id) ON DELETE CASCADE,
    answered_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX lti_deep_link_answers_expires_idx ON lti_deep_link_answers (expires_at);

-- The audience a platform's token endpoint wants in a client assertion, when it is not the
-- token URL itself (Canvas names its `authorization_server`).
ALTER TABLE lti_platforms ADD COLUMN token_audience TEXT;
