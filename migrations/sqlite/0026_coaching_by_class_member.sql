-- Coaching is re-derived for the (class, user) pairs a run touches, not for whole classes: a
-- student's enrollment moves only that student's coaching in the class, a teacher's only the
-- coaching that teacher gives there. A class that comes or goes is marked whole, with ''.
-- Written and emptied inside the applying transaction, so nothing is carried over.
DROP TABLE stage_coaching_classes;
CREATE TABLE stage_coaching_marks (
    run_id TEXT NOT NULL,
    class_sourced_id TEXT NOT NULL,
    -- '' for every user of the class.
    user_sourced_id TEXT NOT NULL,
    PRIMARY KEY (run_id, class_sourced_id, user_sourced_id)
);

-- The teachers and aides of a class, found without reading its students: a marked student's
-- coaches are looked up here (about one row a class, where the index by class holds 26).
CREATE INDEX enrollments_coaches_idx ON enrollments (district_id, class_sourced_id)
    WHERE role IN ('teacher', 'aide');

-- The class sources a derivation found stale: read once from the sources in scope, then both
-- ended (their pairs' events) and deleted by key from here. Emptied like the marks.
CREATE TABLE stage_coaching_stale (
    run_id TEXT NOT NULL,
    teacher_sourced_id TEXT NOT NULL,
    student_sourced_id TEXT NOT NULL,
    class_sourced_id TEXT NOT NULL,
    PRIMARY KEY (run_id, teacher_sourced_id, student_sourced_id, class_sourced_id)
);
