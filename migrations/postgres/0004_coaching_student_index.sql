-- A student's coaches are read through this index: with the whole key in it, the rows come
-- from the index alone and already in the answer's order, so no planner is tempted to walk
-- the district's whole primary key instead (SQLite without statistics did).
DROP INDEX coaching_sources_student_idx;
CREATE INDEX coaching_sources_student_idx
    ON coaching_sources (district_id, student_sourced_id, teacher_sourced_id, source_type, source_id);
