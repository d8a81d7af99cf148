-- What each kind's input was when a run last applied it in bulk (the SHA-256 of a CSV file's
-- bytes): an import whose file has the same digest carries the kind over without reading it.
-- Any other run that changes the kind (a delta, a pull, a push) deletes its row.
CREATE TABLE applied_digests (
    district_id INTEGER NOT NULL REFERENCES districts(id),
    kind TEXT NOT NULL,
    digest TEXT NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (district_id, kind)
);
