-- The classes whose coaching a run may change (their enrollments, their users or themselves
-- changed): an applying run re-derives coaching for these alone when the cut-off date is the
-- same as the last derivation's. Written and emptied inside the applying transaction.
CREATE TABLE stage_coaching_classes (
    run_id TEXT NOT NULL,
    class_sourced_id TEXT NOT NULL,
    PRIMARY KEY (run_id, class_sourced_id)
);
