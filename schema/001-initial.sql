-- 001-initial.sql: the first schema of migd's store.
--
-- Applied once, inside a transaction, by mig_store_open when the database's
-- user_version is below 1.  A migration file is never edited once released:
-- changes go into a new schema/NNN-name.sql.  Times are milliseconds since the
-- epoch (UTC).

-- One row per job.  record is the job's full form (mig_job_to_record JSON),
-- the source of truth; the other columns copy what queries filter and sort on.
CREATE TABLE jobs (
    uuid    TEXT PRIMARY KEY NOT NULL,
    vm_uuid TEXT NOT NULL,
    state   TEXT NOT NULL,
    phase   TEXT NOT NULL,
    mode    TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    record  TEXT NOT NULL
);
-- "Is there an unfinished job for this VM?" is asked before every migrate.
CREATE INDEX jobs_vm_state ON jobs (vm_uuid, state);
CREATE INDEX jobs_state_created ON jobs (state, created);

-- The history of each job's steps: one row each time a step reaches a status
-- (started, done, failed).  id keeps the order stable (VACUUM may renumber an
-- implicit rowid, never an INTEGER PRIMARY KEY).
CREATE TABLE steps (
    id       INTEGER PRIMARY KEY,
    job_uuid TEXT NOT NULL REFERENCES jobs (uuid) ON DELETE CASCADE,
    step     TEXT NOT NULL,
    status   TEXT NOT NULL,
    time     INTEGER NOT NULL
);
CREATE INDEX steps_job ON steps (job_uuid, id);

-- Events streamed to watchers (GET /jobs/:uuid/watch); data is JSON text.
CREATE TABLE events (
    id       INTEGER PRIMARY KEY,
    job_uuid TEXT NOT NULL REFERENCES jobs (uuid) ON DELETE CASCADE,
    time     INTEGER NOT NULL,
    type     TEXT NOT NULL,
    data     TEXT
);
CREATE INDEX events_job ON events (job_uuid, id);

-- The job's log records (migctl log); level is the bunyan number.
CREATE TABLE job_log (
    id       INTEGER PRIMARY KEY,
    job_uuid TEXT NOT NULL REFERENCES jobs (uuid) ON DELETE CASCADE,
    time     INTEGER NOT NULL,
    level    INTEGER NOT NULL,
    msg      TEXT NOT NULL
);
CREATE INDEX job_log_job ON job_log (job_uuid, id);
