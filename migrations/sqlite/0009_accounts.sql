-- Accounts: the person in the learning platform. The one record no district owns (a grassroots
-- account belongs to none), so it is keyed by its id, kept for life. A district user reaches its
-- account through a link; links are never deleted, so a user who leaves and comes back finds
-- the same account (and its progress).
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    role_family TEXT NOT NULL,
    email TEXT,
    -- Trimmed and lower-cased: what identity matching compares.
    email_normalized TEXT,
    given_name TEXT,
    family_name TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- Matching looks for grassroots accounts by e-mail within a role family.
CREATE INDEX accounts_grassroots_email_idx ON accounts (email_normalized, role_family)
    WHERE state = 'grassroots';

CREATE TABLE account_links (
    district_id INTEGER NOT NULL REFERENCES districts(id),
    user_sourced_id TEXT NOT NULL,
    -- No foreign key: links are only written by provisioning, right after their accounts, and
    -- accounts are never deleted; a per-row check cost a 100k-user first import about 2 %.
    account_id TEXT NOT NULL,
    linked_at TEXT NOT NULL,
    roster_status TEXT NOT NULL,
    -- How the link was made: `new` (a provisioned account), `sis_id` or `email`.
    matched_by TEXT NOT NULL,
    PRIMARY KEY (district_id, user_sourced_id)
);
CREATE INDEX account_links_account_idx ON account_links (account_id);

-- One run's provisioning decisions, made set-based before they are applied.
CREATE TABLE stage_accounts (
    run_id TEXT NOT NULL,
    user_sourced_id TEXT NOT NULL,
    role_family TEXT NOT NULL,
    email TEXT,
    email_normalized TEXT,
    given_name TEXT,
    family_name TEXT,
    new_account_id TEXT NOT NULL,
    candidates INTEGER NOT NULL,
    match_account_id TEXT,
    -- Users of this run whose single candidate is the same account.
    claimants INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX stage_accounts_run_idx ON stage_accounts (run_id, user_sourced_id);
CREATE INDEX stage_accounts_match_idx ON stage_accounts (run_id, match_account_id)
    WHERE match_account_id IS NOT NULL;
