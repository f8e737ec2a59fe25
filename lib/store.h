/*
 * store.h: the SQLite store (WAL mode, synchronous FULL, files 0600).  The schema lives in schema/NNN-*.sql,
 * embedded in the binary at build time and applied in order at open; the
 * database records its version (PRAGMA user_version) and a database newer
 * than this binary is refused.  Jobs, their log, their action journal,
 * evacuations and transfer rates live here.  Every statement uses bound
 * parameters.  Log records and actions belong to a saved job (foreign keys):
 * for a job_uuid that was never saved with mig_store_job_save they are
 * refused with MIG_EDB.  Implemented by store.c (open, schema, statements,
 * transactions, lock), store_jobs.c (jobs, log, journal, leftovers) and
 * store_evac.c (evacuations, rates), which share store_int.h.
 */
#ifndef MIG_STORE_H
#define MIG_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"

struct mig_store;

/* The newest schema version this binary knows. */
int mig_store_schema_latest(void);

/*
 * Opens (creating if needed, mode 0600) the database at path and migrates it
 * to the latest schema.  The database, its -wal and its -shm are made
 * private whatever their mode was (group and other access removed; logged),
 * and SQLite creates its files under umask 077 (the process's umask is
 * changed for the call: call it before starting threads).  Commits are
 * durable (synchronous = FULL: a journal entry survives a power loss) and
 * deleted content is zeroed (secure_delete).  A database that cannot be
 * written (read-only file system, read-only file, a WAL database whose
 * writes fail) is refused: a daemon that cannot journal must not act.
 * Returns 0, MIG_ESCHEMA for a newer database, or MIG_EDB; err gets one line
 * for the operator.
 */
int mig_store_open(const char *path, struct mig_store **out, char *err, size_t errsz);
/*
 * Copies the whole WAL into the database and truncates the WAL to nothing
 * (a TRUNCATE checkpoint), so that content deleted since (zeroed in the
 * database by secure_delete) survives in neither file.  The store does it by
 * itself at open and whenever a job saved with a direct-transfer private key
 * (ctx.direct_key) is saved without it (mig_store_job_save outside a
 * transaction, mig_store_action_save).  Waits up to the busy timeout (5 s)
 * for another process's readers.  0, -EBUSY (a reader kept it from
 * finishing; logged) or MIG_EDB.
 */
int mig_store_checkpoint(struct mig_store *st);
void mig_store_close(struct mig_store *st);
/*
 * The connection's synchronous level (PRAGMA synchronous: 1 NORMAL, 2 FULL,
 * as open sets it), or MIG_EDB.  The setter is for tests/bench/bench_store.c,
 * which measures what FULL costs: migd itself never lowers it.  0 or MIG_EDB.
 */
int mig_store_synchronous(struct mig_store *st);
int mig_store_set_synchronous(struct mig_store *st, int level);
/* The database's schema version (user_version). */
int mig_store_version(struct mig_store *st);

/* Inserts or replaces the job (its record form).  0 or MIG_EDB. */
int mig_store_job_save(struct mig_store *st, const struct mig_job *job);
/*
 * Loads one job; 0, -ENOENT, MIG_EPARSE (the row exists but its record is
 * unreadable, or is another job's; logged), or MIG_EDB.  *out is the caller's.
 */
int mig_store_job_load(struct mig_store *st, const char *uuid, struct mig_job **out);

struct mig_job_filter {
    const char *state;   /* NULL: any */
    const char *vm_uuid; /* NULL: any */
    int all;             /* 0: only jobs not final (ignored when state is set) */
    int64_t limit;       /* at most this many (a page); 0: no limit */
    int64_t offset;      /* skip this many first */
    const char *evacuation; /* NULL: any; else only that evacuation's jobs */
};
/*
 * Loads the jobs matching f, oldest first, into a malloc'd array of *n jobs
 * (caller frees each with mig_job_free and the array with free).  A row whose
 * record cannot be parsed is logged (at every call) and skipped; it never
 * hides the others (see mig_store_job_list_bad).
 */
int mig_store_job_list(struct mig_store *st, const struct mig_job_filter *f,
                       struct mig_job ***out, size_t *n);

/* A job row whose record cannot be read, from its plain columns. */
struct mig_bad_job {
    char uuid[MIG_UUID_LEN + 1];
    char vm_uuid[MIG_UUID_LEN + 1];
    char state[16];
    char error[256]; /* why the record is unreadable */
};
/*
 * The rows whose record cannot be parsed (any state), as a malloc'd array
 * of *n (caller frees with free).  0, or MIG_EDB.
 */
int mig_store_job_list_bad(struct mig_store *st, struct mig_bad_job **out, size_t *n);
/*
 * The jobs with a leftover due for a retry at now (job.h), earliest first:
 * at most max uuids into out, their count in *n.  0 or MIG_EDB.
 */
int mig_store_leftovers_due(struct mig_store *st, int64_t now, size_t max,
                            char (*out)[MIG_UUID_LEN + 1], size_t *n);
/*
 * The switched jobs whose cleanup timer is due at now (job.h cleanup_at),
 * earliest first: at most max uuids into out, their count in *n.  0 or MIG_EDB.
 */
int mig_store_cleanups_due(struct mig_store *st, int64_t now, size_t max,
                           char (*out)[MIG_UUID_LEN + 1], size_t *n);
/* How many leftovers all jobs have together, or -1 when the database cannot tell. */
int64_t mig_store_leftover_count(struct mig_store *st);
/*
 * Finds a job that still holds vm_uuid (mig_job_state_holds_vm).  0 and its
 * uuid in out, -ENOENT when none, MIG_EDB.
 */
int mig_store_job_holding_vm(struct mig_store *st, const char *vm_uuid,
                             char out[MIG_UUID_LEN + 1]);

/* Appends one log record for job (level as bunyan number). */
int mig_store_log_append(struct mig_store *st, const char *job_uuid, int level, const char *msg);
/* The job's log as a JSON array of {time, level, msg}, oldest first; new reference. */
json_t *mig_store_log(struct mig_store *st, const char *job_uuid);

/*
 * The action journal (schema 002).  Each action a job takes on a CN or an API
 * has one row, keyed by (job, key): the executor records "started" before it
 * acts and "done" once it has acted, and the undo walk records "undo_started"
 * and "undone".  A status change and the job's record (whose ctx carries the
 * action's results) are written in one transaction: both or neither.
 */
enum mig_action_status {
    MIG_ACTION_STARTED,      /* journaled before acting: outcome unknown until probed */
    MIG_ACTION_DONE,         /* acted; its results are in the job's ctx */
    MIG_ACTION_FAILED,       /* acted and failed (error says why); may be undone */
    MIG_ACTION_UNDO_STARTED, /* its undo began: outcome unknown until probed */
    MIG_ACTION_UNDONE,       /* undone (or found to need no undo) */
    MIG_ACTION_NSTATUS
};

/* "started", "done", "failed", "undo_started", "undone"; "unknown" out of range. */
const char *mig_action_status_name(enum mig_action_status s);
/* Parses a status name; 0 or -EINVAL. */
int mig_action_status_parse(const char *s, enum mig_action_status *out);

/* One journal row. */
struct mig_action_rec {
    char key[128];       /* unique per job, e.g. "switch.attach" or "sync.send@2#0" */
    char phase[16];      /* the job phase it belongs to ("prepare", ..., "rollback") */
    char side[16];       /* "source", "target", "api", "local" */
    enum mig_action_status status;
    int64_t seq;         /* order in which the actions were first journaled */
    int64_t started_ms;  /* 0: not yet; times are ms since the epoch */
    int64_t ended_ms;
    int64_t undo_started_ms;
    int64_t undo_ended_ms;
    char error[512];     /* "" when none: the last failure's one-line message */
    int64_t op_ms;       /* time spent in its remote operations, -1: not recorded */
};

/*
 * Sets action key of job to status, creating the row on first use (with
 * phase and side; seq = one more than the job's largest; later calls keep
 * all three), and saves the job's record, in one transaction.  Stamps
 * started_ms on MIG_ACTION_STARTED, ended_ms on DONE/FAILED, undo_started_ms
 * on UNDO_STARTED, undo_ended_ms on UNDONE (each time the status is set); a
 * new STARTED clears ended_ms and a new UNDO_STARTED clears undo_ended_ms,
 * since that attempt has not ended.  error may be NULL (clears it).  A key,
 * phase or side that does not fit struct mig_action_rec is refused.  Returns
 * 0, or MIG_EDB with nothing changed (the transaction rolled back).
 */
int mig_store_action_save(struct mig_store *st, const struct mig_job *job, const char *key,
                          const char *phase, const char *side, enum mig_action_status status,
                          const char *error);
/* The same, also recording op_ms (>= 0: the time its remote operations took; -1: keep). */
int mig_store_action_save_timed(struct mig_store *st, const struct mig_job *job, const char *key,
                                const char *phase, const char *side,
                                enum mig_action_status status, const char *error, int64_t op_ms);
/*
 * The job's journal, in seq order, as a malloc'd array of *n rows (the
 * caller frees it with free).  0, or MIG_EDB.
 */
int mig_store_actions(struct mig_store *st, const char *job_uuid, struct mig_action_rec **out,
                      size_t *n);
/*
 * The job's journal as JSON for `migctl show -v`: an array of {action, phase,
 * side, status, started, ended, duration_ms, op_ms, undo_started, undo_ended, error}
 * (times ISO 8601 or null; duration_ms null until ended; error null when
 * none).  New reference, or NULL on a database error.
 */
json_t *mig_store_actions_json(struct mig_store *st, const char *job_uuid);

/*
 * Takes the daemon's exclusive lock on the database: a lock file beside it
 * (db_path + ".lock", created 0600, made 0600 if it was wider) locked with fcntl(F_SETLK) for writing
 * and holding the owner's pid as text.  Returns 0 and the open descriptor
 * in *fd (kept open for the life of the daemon: closing it releases the
 * lock); -EBUSY when another process holds it, with that process's pid in
 * *holder (0 when unreadable) and a line in err naming it; another negative
 * code with a line in err.  POSIX only (illumos and Linux alike).  fcntl
 * locks belong to the process, not the descriptor: call this once per
 * process, and never open and close the lock file elsewhere in it (closing
 * any descriptor of the file releases the lock).
 */
int mig_store_lock(const char *db_path, int *fd, long *holder, char *err, size_t errsz);

/*
 * Evacuations (schema 004): each is a JSON record with at least uuid,
 * server_uuid, state ("running", "done") and created_ms.  Save inserts or
 * replaces (0, MIG_EPARSE, MIG_EDB); the readers return new references or
 * NULL (none, or a database error, logged).
 */
int mig_store_evac_save(struct mig_store *st, json_t *evac);
json_t *mig_store_evac_load(struct mig_store *st, const char *uuid);
/* All evacuations, oldest first, as an array. */
json_t *mig_store_evac_list(struct mig_store *st);
/*
 * The CNs that unfinished evacuations drain (running, or queued in a
 * rolling drain) and every CN of a rolling drain that has not ended, a new
 * array of uuids (empty when none, or the store cannot be read): no plan
 * puts a VM there (place.h's avoid).
 */
json_t *mig_store_evac_draining(struct mig_store *st);
/* The latest evacuation of server_uuid (running or ended), if any. */
json_t *mig_store_evac_latest(struct mig_store *st, const char *server_uuid);

/* Adds a transfer of bytes in ms from source to target (server uuids) to their rate; 0 or MIG_EDB. */
int mig_store_rate_add(struct mig_store *st, const char *source, const char *target,
                       int64_t bytes, int64_t ms);
/* Adds one full job's time besides its first round (ms) from source to target; 0 or MIG_EDB. */
int mig_store_overhead_add(struct mig_store *st, const char *source, const char *target,
                           int64_t ms);

/* What was measured from source to target: -1 where nothing was. */
struct mig_rate {
    int64_t bytes_s;     /* the first rounds' bytes over their time */
    int64_t overhead_ms; /* a full job's time besides its first round, on average */
};
void mig_store_rate(struct mig_store *st, const char *source, const char *target,
                    struct mig_rate *out);

#endif
