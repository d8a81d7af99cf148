-- PostgreSQL's 0025 drops the district foreign keys of the tables a sync run writes a row per
-- record into (it checks each with a trigger per row). SQLite checks a foreign key inside the
-- insert itself (a first import of 100,000 students took the same time without them), so they
-- stay here. Both refuse to delete a district: it is kept for good.
CREATE TRIGGER districts_are_kept BEFORE DELETE ON districts
BEGIN
    SELECT RAISE(ABORT, 'districts are never deleted: their rosters, accounts and events refer to them');
END;
