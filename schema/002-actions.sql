-- 002-actions.sql: the action journal, and a row migd writes at every open.
--
-- Applied once, inside a transaction, by mig_store_open when the database's
-- user_version is below 2.  Never edited once released (see 001-initial.sql).
-- Times are milliseconds since the epoch (UTC).

-- One row per action a job takes on a CN or an API, keyed by (job, key).  The
-- executor writes "started" before it acts and "done" (or "failed") once it
-- has acted; the undo walk writes "undo_started" and "undone".  Each change
-- is written in the same transaction as the job's record (mig_store_action_save),
-- so a status read after a crash matches the ctx that carries its results.
-- seq is the order in which the actions were first journaled, the order an
-- undo walks backwards.  The limits on key, phase and side are the sizes of
-- struct mig_action_rec's fields: a row that could not be read back whole is
-- refused rather than stored.
CREATE TABLE actions (
    id           INTEGER PRIMARY KEY,
    job_uuid     TEXT NOT NULL REFERENCES jobs (uuid) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    key          TEXT NOT NULL CHECK (length(CAST(key AS BLOB)) BETWEEN 1 AND 127),
    phase        TEXT NOT NULL CHECK (length(CAST(phase AS BLOB)) BETWEEN 1 AND 15),
    side         TEXT NOT NULL CHECK (length(CAST(side AS BLOB)) BETWEEN 1 AND 15),
    status       TEXT NOT NULL
                 CHECK (status IN ('started', 'done', 'failed', 'undo_started', 'undone')),
    started      INTEGER,
    ended        INTEGER,
    undo_started INTEGER,
    undo_ended   INTEGER,
    error        TEXT,
    UNIQUE (job_uuid, key)
);
-- A job's journal is read, and its next seq found, in seq order.
CREATE INDEX actions_job_seq ON actions (job_uuid, seq);

-- Small facts about the database itself.  mig_store_open writes the "opened"
-- row (the time, ISO 8601) at every open: a database that cannot take that
-- write cannot take a journal entry either, and is refused before migd acts.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT
);
