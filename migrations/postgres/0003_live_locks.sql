-- The sync lock itself is a session advisory lock (it dies with its connection); these columns say
-- which run and process hold it, and which spooled upload a run reads, so that the run after a
-- crash can delete it.
ALTER TABLE districts ADD COLUMN sync_lock_owner TEXT;
ALTER TABLE sync_runs ADD COLUMN input_file TEXT;
