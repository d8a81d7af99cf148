-- The gateway as an LTI 1.3 tool: the platforms (LMSs) a district registered, their
-- deployments, the logins in flight, who launched, and the tool's own signing keys.

-- A platform registration. A login names only (issuer, client_id), and every hosted Canvas
-- shares one issuer, so that pair is unique across all districts.
CREATE TABLE lti_platforms (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    district_id BIGINT NOT NULL REFERENCES districts(id) ON DELETE CASCADE,
    issuer TEXT NOT NULL,
    client_id TEXT NOT NULL,
    auth_login_url TEXT NOT NULL,
    token_url TEXT NOT NULL,
    jwks_url TEXT NOT NULL,
    -- What a launch from a deployment not listed gets: refused, or recorded pending a claim.
    unknown_deployments TEXT NOT NULL CHECK (unknown_deployments IN ('refuse', 'pending')),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (issuer, client_id)
);
CREATE INDEX lti_platforms_district_idx ON lti_platforms (district_id, id);

-- A platform's deployments (Canvas makes one per sub-account or course install).
CREATE TABLE lti_deployments (
    platform_id BIGINT NOT NULL REFERENCES lti_platforms(id) ON DELETE CASCADE,
    deployment_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'pending')),
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform_id, deployment_id)
);

-- A login in flight: state → nonce and what the launch is checked against; single use, short-lived.
CREATE TABLE lti_states (
    state TEXT PRIMARY KEY,
    platform_id BIGINT NOT NULL REFERENCES lti_platforms(id) ON DELETE CASCADE,
    nonce TEXT NOT NULL,
    target_link_uri TEXT NOT NULL,
    deployment_id TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
-- Sweeping expired states.
CREATE INDEX lti_states_expires_idx ON lti_states (expires_at);

-- Who launched: the platform's `sub`, and the district user it resolved to, when one did.
CREATE TABLE lti_links (
    platform_id BIGINT NOT NULL REFERENCES lti_platforms(id) ON DELETE CASCADE,
    sub TEXT NOT NULL,
    district_id BIGINT NOT NULL REFERENCES districts(id) ON DELETE CASCADE,
    user_sourced_id TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    last_launch_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform_id, sub)
);

-- The tool's two live signing keys (current signs, next is published ahead), private keys
-- sealed with the master key and bound to their kid.
CREATE TABLE lti_tool_keys (
    kid TEXT PRIMARY KEY,
    sealed_key TEXT NOT NULL,
    position TEXT NOT NULL UNIQUE CHECK (position IN ('current', 'next')),
    created_at TIMESTAMPTZ NOT NULL
);
