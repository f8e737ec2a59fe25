-- 007-cleanup-timer.sql: when a switched job's source copy is deleted by itself.
--
-- Applied once, inside a transaction, by mig_store_open when the database's
-- user_version is below 7.  Never edited once released (see 001-initial.sql).

-- The job's record holds cleanup_at (job.h); this column copies it for the
-- engine's timer while the job is switched (NULL otherwise: no timer, or
-- canceled, or the job moved on), kept by every save of the job.
ALTER TABLE jobs ADD COLUMN cleanup_due INTEGER;
CREATE INDEX jobs_cleanup_due ON jobs (cleanup_due) WHERE cleanup_due IS NOT NULL;
