-- What each kind's input was when a run last applied it in bulk (the SHA-256 of a CSV file's
-- bytes): an import whose file has the same digest carries the kind over without reading it.
-- Any other run that changes the kind (a delta, a pull, a push) deletes its row. `records` is how
-- many records of the kind are in effect after that run (what a carried kind counts unchanged).
CREATE TABLE applied_digests (
    district_id INTEGER NOT NULL REFERENCES districts(id),
    kind TEXT NOT NULL,
    digest TEXT NOT NULL,
    records INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (district_id, kind)
);
