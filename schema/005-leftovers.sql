-- 005-leftovers.sql: what jobs could not remove, and when to try again.
--
-- Applied once, inside a transaction, by mig_store_open when the database's
-- user_version is below 5.  Never edited once released (see 001-initial.sql).

-- The job's record holds its leftovers (job.h struct mig_leftover); these
-- columns copy what the engine's timer and /metrics ask of every job:
-- how many it has, and the earliest time one is due for a retry (NULL:
-- none).  Both are kept by every save of the job.
ALTER TABLE jobs ADD COLUMN leftovers INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN leftover_due INTEGER;
-- "Which jobs have a leftover due?" is asked every few seconds: only the
-- few rows with leftovers are in this index.
CREATE INDEX jobs_leftover_due ON jobs (leftover_due) WHERE leftover_due IS NOT NULL;
