-- 004-evacuations.sql: evacuations of a CN, and the rates measured between CNs.
--
-- Applied once, inside a transaction, by mig_store_open when the database's
-- user_version is below 4.  Never edited once released (see 001-initial.sql).

-- One row per evacuation (migctl evacuate CN).  record is its JSON (the
-- options, the plan with each VM's target or the reason it stays, the
-- estimate, and once it ends the estimate's error); the columns copy what
-- queries filter on.  state: running, done.
CREATE TABLE evacuations (
    uuid        TEXT PRIMARY KEY NOT NULL,
    server_uuid TEXT NOT NULL,
    state       TEXT NOT NULL,
    created     INTEGER NOT NULL,
    updated     INTEGER NOT NULL,
    record      TEXT NOT NULL
);
-- "Is this CN being evacuated?" is asked at every `migctl evacuate`.
CREATE INDEX evacuations_server ON evacuations (server_uuid, state);

-- GET /jobs pages every job in creation order: without an index each page
-- sorts the whole table (20,000 jobs: 23 ms even for one row).
CREATE INDEX jobs_created ON jobs (created);

-- The jobs an evacuation queued (a job belongs to at most one).
ALTER TABLE jobs ADD COLUMN evacuation_uuid TEXT;
CREATE INDEX jobs_evacuation ON jobs (evacuation_uuid);

-- What jobs between two CNs achieved: the sums of the bytes their first
-- rounds sent and of the time those took (the rate is bytes * 1000 / ms),
-- and of the rest of full jobs (the time from start to switched but the
-- first round) over their count.  Estimates use both.
CREATE TABLE rates (
    source_uuid TEXT NOT NULL,
    target_uuid TEXT NOT NULL,
    bytes       INTEGER NOT NULL,
    ms          INTEGER NOT NULL,
    jobs        INTEGER NOT NULL DEFAULT 0,
    other_ms    INTEGER NOT NULL DEFAULT 0,
    updated     INTEGER NOT NULL,
    PRIMARY KEY (source_uuid, target_uuid)
);
