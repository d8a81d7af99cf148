-- The sync lock names the process holding it (SQLite: host, pid and start time, so a lock whose
-- holder died is taken over at once), and a run remembers the spooled upload it reads, so that the
-- run after a crash can delete it.
ALTER TABLE districts ADD COLUMN sync_lock_owner TEXT;
ALTER TABLE sync_runs ADD COLUMN input_file TEXT;
