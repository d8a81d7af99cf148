-- PostgreSQL's 0020 makes the score import's stage tables unlogged. SQLite has no unlogged tables:
-- nothing changes here; the file keeps both backends' migrations numbered alike.
SELECT 1;
