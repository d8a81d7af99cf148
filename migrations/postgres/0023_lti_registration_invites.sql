-- LTI Dynamic Registration (lti13 reference §13): an administrator's single-use invitation, the
-- URL pasted into the LMS. Only the token's SHA-256 is kept: a leaked database registers nothing.
CREATE TABLE lti_registration_invites (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    district_id BIGINT NOT NULL REFERENCES districts(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    -- The registration's policy for deployments it does not list (as lti_platforms).
    unknown_deployments TEXT NOT NULL CHECK (unknown_deployments IN ('refuse', 'pending')),
    -- Accept a configuration URL that is not under its issuer (Moodle's is not).
    allow_foreign_configuration BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    -- Set in the transaction that stores the registration: a used invite registers nothing more.
    used_at TIMESTAMPTZ,
    platform_id BIGINT REFERENCES lti_platforms(id) ON DELETE SET NULL
);
CREATE INDEX lti_registration_invites_district_idx ON lti_registration_invites (district_id, id);
