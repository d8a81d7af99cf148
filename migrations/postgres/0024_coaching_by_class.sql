-- Coaching is re-derived for the classes a run touches alone (when the cut-off date is the one
-- it was last derived with): their sources are found through this index.
CREATE INDEX coaching_sources_class_idx ON coaching_sources (district_id, source_id);

-- The classes whose coaching a run may move (their enrollments, their users or they themselves
-- come, go or change). Written and emptied inside the applying transaction.
CREATE UNLOGGED TABLE stage_coaching_classes (
    run_id TEXT NOT NULL,
    class_sourced_id TEXT NOT NULL,
    PRIMARY KEY (run_id, class_sourced_id)
);
