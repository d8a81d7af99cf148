-- Bumped by every applied sync: what a district's listings hold can change only then, so a
-- listing's total is counted once per version instead of on every page.
ALTER TABLE districts ADD COLUMN roster_version INTEGER NOT NULL DEFAULT 0;
