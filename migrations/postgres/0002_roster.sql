-- OneRoster record tables (live, soft-deleted) and their staging twins (one run's rows each).

CREATE TABLE orgs (
    district_id BIGINT NOT NULL REFERENCES districts(id),
    sourced_id TEXT NOT NULL,
    name TEXT,
    org_type TEXT,
    identifier TEXT,
    parent_sourced_id TEXT,
    extra TEXT,
    hash BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ,
    deleted_reason TEXT,
    last_run_id TEXT NOT NULL,
    PRIMARY KEY (district_id, sourced_id)
);

CREATE UNLOGGED TABLE stage_orgs (
    run_id TEXT NOT NULL,
    line BIGINT NOT NULL,
    sourced_id TEXT NOT NULL,
    deleting BOOLEAN NOT NULL,
    hash BIGINT NOT NULL,
    name TEXT,
    org_type TEXT,
    identifier TEXT,
    parent_sourced_id TEXT,
    extra TEXT
);

CREATE INDEX stage_orgs_run_idx ON stage_orgs (run_id, sourced_id);

CREATE TABLE academic_sessions (
    district_id BIGINT NOT NULL REFERENCES districts(id),
    sourced_id TEXT NOT NULL,
    title TEXT,
    session_type TEXT,
    start_date DATE,
    end_date DATE,
    parent_sourced_id TEXT,
    school_year TEXT,
    extra TEXT,
    hash BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ,
    deleted_reason TEXT,
    last_run_id TEXT NOT NULL,
    PRIMARY KEY (district_id, sourced_id)
);

CREATE UNLOGGED TABLE stage_academic_sessions (
    run_id TEXT NOT NULL,
    line BIGINT NOT NULL,
    sourced_id TEXT NOT NULL,
    deleting BOOLEAN NOT NULL,
    hash BIGINT NOT NULL,
    title TEXT,
    session_type TEXT,
    start_date DATE,
    end_date DATE,
    parent_sourced_id TEXT,
    school_year TEXT,
    extra TEXT
);

CREATE INDEX stage_academic_sessions_run_idx ON stage_academic_sessions (run_id, sourced_id);

CREATE TABLE courses (
    district_id BIGINT NOT NULL REFERENCES districts(id),
    sourced_id TEXT NOT NULL,
    school_year_sourced_id TEXT,
    title TEXT,
    course_code TEXT,
    grades TEXT,
    org_sourced_id TEXT,
    subjects TEXT,
    subject_codes TEXT,
    extra TEXT,
    hash BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ,
    deleted_reason TEXT,
    last_run_id TEXT NOT NULL,
    PRIMARY KEY (district_id, sourced_id)
);

CREATE UNLOGGED TABLE stage_courses (
    run_id TEXT NOT NULL,
    line BIGINT NOT NULL,
    sourced_id TEXT NOT NULL,
    deleting BOOLEAN NOT NULL,
    hash BIGINT NOT NULL,
    school_year_sourced_id TEXT,
    title TEXT,
    course_code TEXT,
    grades TEXT,
    org_sourced_id TEXT,
    subjects TEXT,
    subject_codes TEXT,
    extra TEXT
);

CREATE INDEX stage_courses_run_idx ON stage_courses (run_id, sourced_id);

CREATE TABLE classes (
    district_id BIGINT NOT NULL REFERENCES districts(id),
    sourced_id TEXT NOT NULL,
    title TEXT,
    grades TEXT,
    course_sourced_id TEXT,
    class_code TEXT,
    class_type TEXT,
    location TEXT,
    school_sourced_id TEXT,
    term_sourced_ids TEXT,
    subjects TEXT,
    subject_codes TEXT,
    periods TEXT,
    origin TEXT NOT NULL DEFAULT 'district',
    used_at TIMESTAMPTZ,
    detached_at TIMESTAMPTZ,
    extra TEXT,
    hash BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ,
    deleted_reason TEXT,
    last_run_id TEXT NOT NULL,
    PRIMARY KEY (district_id, sourced_id)
);

CREATE INDEX classes_course_sourced_id_idx ON classes (district_id, course_sourced_id);

CREATE INDEX classes_school_sourced_id_idx ON classes (district_id, school_sourced_id);

CREATE UNLOGGED TABLE stage_classes (
    run_id TEXT NOT NULL,
    line BIGINT NOT NULL,
    sourced_id TEXT NOT NULL,
    deleting BOOLEAN NOT NULL,
    hash BIGINT NOT NULL,
    title TEXT,
    grades TEXT,
    course_sourced_id TEXT,
    class_code TEXT,
    class_type TEXT,
    location TEXT,
    school_sourced_id TEXT,
    term_sourced_ids TEXT,
    subjects TEXT,
    subject_codes TEXT,
    periods TEXT,
    extra TEXT
);

CREATE INDEX stage_classes_run_idx ON stage_classes (run_id, sourced_id);

CREATE TABLE users (
    district_id BIGINT NOT NULL REFERENCES districts(id),
    sourced_id TEXT NOT NULL,
    enabled_user BOOLEAN,
    org_sourced_ids TEXT,
    role TEXT,
    username TEXT,
    user_ids TEXT,
    given_name TEXT,
    family_name TEXT,
    middle_name TEXT,
    identifier TEXT,
    email TEXT,
    sms TEXT,
    phone TEXT,
    agent_sourced_ids TEXT,
    grades TEXT,
    user_master_identifier TEXT,
    preferred_given_name TEXT,
    preferred_middle_name TEXT,
    preferred_family_name TEXT,
    primary_org_sourced_id TEXT,
    pronouns TEXT,
    extra TEXT,
    hash BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ,
    deleted_reason TEXT,
    last_run_id TEXT NOT NULL,
    PRIMARY KEY (district_id, sourced_id)
);

CREATE UNLOGGED TABLE stage_users (
    run_id TEXT NOT NULL,
    line BIGINT NOT NULL,
    sourced_id TEXT NOT NULL,
    deleting BOOLEAN NOT NULL,
    hash BIGINT NOT NULL,
    enabled_user BOOLEAN,
    org_sourced_ids TEXT,
    role TEXT,
    username TEXT,
    user_ids TEXT,
    given_name TEXT,
    family_name TEXT,
    middle_name TEXT,
    identifier TEXT,
    email TEXT,
    sms TEXT,
    phone TEXT,
    agent_sourced_ids TEXT,
    grades TEXT,
    user_master_identifier TEXT,
    preferred_given_name TEXT,
    preferred_middle_name TEXT,
    preferred_family_name TEXT,
    primary_org_sourced_id TEXT,
    pronouns TEXT,
    extra TEXT
);

CREATE INDEX stage_users_run_idx ON stage_users (run_id, sourced_id);

CREATE TABLE user_profiles (
    district_id BIGINT NOT NULL REFERENCES districts(id),
    sourced_id TEXT NOT NULL,
    user_sourced_id TEXT,
    profile_type TEXT,
    vendor_id TEXT,
    application_id TEXT,
    description TEXT,
    credential_type TEXT,
    username TEXT,
    extra TEXT,
    hash BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ,
    deleted_reason TEXT,
    last_run_id TEXT NOT NULL,
    PRIMARY KEY (district_id, sourced_id)
);

CREATE INDEX user_profiles_user_sourced_id_idx ON user_profiles (district_id, user_sourced_id);

CREATE UNLOGGED TABLE stage_user_profiles (
    run_id TEXT NOT NULL,
    line BIGINT NOT NULL,
    sourced_id TEXT NOT NULL,
    deleting BOOLEAN NOT NULL,
    hash BIGINT NOT NULL,
    user_sourced_id TEXT,
    profile_type TEXT,
    vendor_id TEXT,
    application_id TEXT,
    description TEXT,
    credential_type TEXT,
    username TEXT,
    extra TEXT
);

CREATE INDEX stage_user_profiles_run_idx ON stage_user_profiles (run_id, sourced_id);

CREATE TABLE user_roles (
    district_id BIGINT NOT NULL REFERENCES districts(id),
    sourced_id TEXT NOT NULL,
    user_sourced_id TEXT,
    role_type TEXT,
    role TEXT,
    begin_date DATE,
    end_date DATE,
    org_sourced_id TEXT,
    user_profile_sourced_id TEXT,
    extra TEXT,
    hash BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ,
    deleted_reason TEXT,
    last_run_id TEXT NOT NULL,
    PRIMARY KEY (district_id, sourced_id)
);

CREATE INDEX user_roles_user_sourced_id_idx ON user_roles (district_id, user_sourced_id);

CREATE UNLOGGED TABLE stage_user_roles (
    run_id TEXT NOT NULL,
    line BIGINT NOT NULL,
    sourced_id TEXT NOT NULL,
    deleting BOOLEAN NOT NULL,
    hash BIGINT NOT NULL,
    user_sourced_id TEXT,
    role_type TEXT,
    role TEXT,
    begin_date DATE,
    end_date DATE,
    org_sourced_id TEXT,
    user_profile_sourced_id TEXT,
    extra TEXT
);

CREATE INDEX stage_user_roles_run_idx ON stage_user_roles (run_id, sourced_id);

CREATE TABLE enrollments (
    district_id BIGINT NOT NULL REFERENCES districts(id),
    sourced_id TEXT NOT NULL,
    class_sourced_id TEXT,
    school_sourced_id TEXT,
    user_sourced_id TEXT,
    role TEXT,
    is_primary BOOLEAN,
    begin_date DATE,
    end_date DATE,
    extra TEXT,
    hash BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ,
    deleted_reason TEXT,
    last_run_id TEXT NOT NULL,
    PRIMARY KEY (district_id, sourced_id)
);

CREATE INDEX enrollments_class_sourced_id_idx ON enrollments (district_id, class_sourced_id);

CREATE INDEX enrollments_user_sourced_id_idx ON enrollments (district_id, user_sourced_id);

CREATE UNLOGGED TABLE stage_enrollments (
    run_id TEXT NOT NULL,
    line BIGINT NOT NULL,
    sourced_id TEXT NOT NULL,
    deleting BOOLEAN NOT NULL,
    hash BIGINT NOT NULL,
    class_sourced_id TEXT,
    school_sourced_id TEXT,
    user_sourced_id TEXT,
    role TEXT,
    is_primary BOOLEAN,
    begin_date DATE,
    end_date DATE,
    extra TEXT
);

CREATE INDEX stage_enrollments_run_idx ON stage_enrollments (run_id, sourced_id);

