-- 006-drop-steps-events.sql: two tables nothing writes.
--
-- Applied once, inside a transaction, by mig_store_open when the database's
-- user_version is below 6.  Never edited once released (see 001-initial.sql).

-- A job's course is its action journal (002-actions.sql) and its log; the
-- step history and the watchers' events of 001 were never written by migd
-- (watch follows the job record), so their rows, if any, go with them.
DROP INDEX IF EXISTS steps_job;
DROP TABLE IF EXISTS steps;
DROP INDEX IF EXISTS events_job;
DROP TABLE IF EXISTS events;
