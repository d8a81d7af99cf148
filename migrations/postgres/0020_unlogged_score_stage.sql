-- A score import's staged rows live only inside its own transaction (cleared before it commits),
-- as the roster's stage tables do: unlogged like them, so that staging and matching hundreds of
-- thousands of rows writes no WAL. A crash empties them, which loses nothing.
ALTER TABLE stage_assessment_results SET UNLOGGED;
ALTER TABLE stage_score_student_ids SET UNLOGGED;
