-- Assessment results and the learning plans made from them.

-- One import of results (a CDF file, a processed push): its counts and problems, and the id its
-- events carry.
CREATE TABLE score_imports (
    id TEXT PRIMARY KEY,
    district_id INTEGER NOT NULL REFERENCES districts(id),
    source TEXT NOT NULL,
    label TEXT NOT NULL,
    status TEXT NOT NULL,
    report TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL
);
CREATE INDEX score_imports_district_idx ON score_imports (district_id, started_at);

-- One test event, keyed by the source's own id or a synthetic one, so that sending it again
-- changes nothing. `student_sourced_id` is NULL until a rostered student matches the ids the
-- result carries (`ref_*`); a roster sync that brings the student matches it then.
CREATE TABLE assessment_results (
    district_id INTEGER NOT NULL REFERENCES districts(id),
    result_key TEXT NOT NULL,
    student_sourced_id TEXT,
    ref_sourced_id TEXT,
    ref_identifier TEXT,
    ref_state_id TEXT,
    subject TEXT NOT NULL,
    course TEXT,
    term TEXT NOT NULL,
    test_date TEXT NOT NULL,
    test_start_time TEXT,
    test_id TEXT,
    test_name TEXT,
    test_type TEXT,
    growth_event INTEGER,
    duration_minutes INTEGER,
    rit INTEGER NOT NULL,
    standard_error REAL,
    percentile INTEGER,
    rapid_guessing_percentage REAL,
    norms_reference TEXT,
    -- The goal areas as the source named them, JSON.
    goals TEXT NOT NULL,
    -- SHA-256 of every score value: a restated result has the same key and another hash.
    row_hash TEXT NOT NULL,
    source TEXT NOT NULL,
    -- The import or roster sync that last stored or matched it (whose students it places).
    import_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (district_id, result_key)
);
CREATE INDEX assessment_results_student_idx
    ON assessment_results (district_id, student_sourced_id, test_date);
-- Placing reads the students an import touched in pages, from the last one read on.
CREATE INDEX assessment_results_import_idx
    ON assessment_results (district_id, import_id, student_sourced_id);
CREATE INDEX assessment_results_unmatched_idx
    ON assessment_results (district_id) WHERE student_sourced_id IS NULL;

-- One import's results as read, keyed and matched, before they are compared with the stored
-- ones and applied set-based; cleared in the same transaction.
CREATE TABLE stage_assessment_results (
    import_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    result_key TEXT NOT NULL,
    student_sourced_id TEXT,
    ref_sourced_id TEXT,
    ref_identifier TEXT,
    ref_state_id TEXT,
    subject TEXT NOT NULL,
    course TEXT,
    term TEXT NOT NULL,
    test_date TEXT NOT NULL,
    test_start_time TEXT,
    test_id TEXT,
    test_name TEXT,
    test_type TEXT,
    growth_event INTEGER,
    duration_minutes INTEGER,
    rit INTEGER NOT NULL,
    standard_error REAL,
    percentile INTEGER,
    rapid_guessing_percentage REAL,
    norms_reference TEXT,
    goals TEXT NOT NULL,
    row_hash TEXT NOT NULL
);
CREATE INDEX stage_assessment_results_import_idx
    ON stage_assessment_results (import_id, result_key, line);

-- For a district matching on a userIds entry: that entry's id → the one student who carries it,
-- written by the run that matches (the entries are a list in one text column, which SQL cannot
-- index).
CREATE TABLE stage_score_student_ids (
    run_id TEXT NOT NULL,
    id_value TEXT NOT NULL,
    student_sourced_id TEXT NOT NULL
);
CREATE INDEX stage_score_student_ids_idx ON stage_score_student_ids (run_id, id_value);

-- The proposed placement per student, subject (learning-plan key) and goal area: what the latest
-- result places, and what placed it.
CREATE TABLE placements (
    district_id INTEGER NOT NULL REFERENCES districts(id),
    student_sourced_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    goal_area TEXT NOT NULL,
    unit TEXT NOT NULL,
    rit REAL NOT NULL,
    basis TEXT NOT NULL,
    result_key TEXT NOT NULL,
    plan_version TEXT NOT NULL,
    placed_at TEXT NOT NULL,
    PRIMARY KEY (district_id, student_sourced_id, subject, goal_area)
);

-- A teacher's placement, which wins over every proposed one until it is cleared.
CREATE TABLE placement_overrides (
    district_id INTEGER NOT NULL REFERENCES districts(id),
    student_sourced_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    goal_area TEXT NOT NULL,
    unit TEXT NOT NULL,
    teacher_sourced_id TEXT NOT NULL,
    reason TEXT,
    -- The unit in effect when the override was set.
    previous_unit TEXT,
    set_at TEXT NOT NULL,
    PRIMARY KEY (district_id, student_sourced_id, subject, goal_area)
);

-- Every override set or cleared: who, when, from what, to what.
CREATE TABLE placement_override_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    district_id INTEGER NOT NULL REFERENCES districts(id),
    student_sourced_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    goal_area TEXT NOT NULL,
    action TEXT NOT NULL,
    unit TEXT,
    previous_unit TEXT,
    teacher_sourced_id TEXT NOT NULL,
    reason TEXT,
    at TEXT NOT NULL
);
CREATE INDEX placement_override_history_student_idx
    ON placement_override_history (district_id, student_sourced_id, id);

-- Results are matched to students by the district's local id.
CREATE INDEX users_identifier_idx ON users (district_id, identifier);
