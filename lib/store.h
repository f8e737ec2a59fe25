/*
 * store.h: the SQLite store (WAL mode).  The schema lives in schema/NNN-*.sql,
 * embedded in the binary at build time and applied in order at open; the
 * database records its version (PRAGMA user_version) and a database newer
 * than this binary is refused.  Jobs, their steps, their events and their
 * log live here.  Every statement uses bound parameters.  Steps, log records
 * and events belong to a saved job (foreign keys): for a job_uuid that was
 * never saved with mig_store_job_save they are refused with MIG_EDB.
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
 * Opens (creating if needed) the database at path and migrates it to the
 * latest schema.  Returns 0, MIG_ESCHEMA for a newer database, or MIG_EDB;
 * err gets one line for the operator.
 */
int mig_store_open(const char *path, struct mig_store **out, char *err, size_t errsz);
void mig_store_close(struct mig_store *st);
/* The database's schema version (user_version). */
int mig_store_version(struct mig_store *st);

/* Inserts or replaces the job (its record form).  0 or MIG_EDB. */
int mig_store_job_save(struct mig_store *st, const struct mig_job *job);
/* Loads one job; 0, -ENOENT, or MIG_EDB.  *out is the caller's. */
int mig_store_job_load(struct mig_store *st, const char *uuid, struct mig_job **out);

struct mig_job_filter {
    const char *state;   /* NULL: any */
    const char *vm_uuid; /* NULL: any */
    int all;             /* 0: only jobs not final (ignored when state is set) */
};
/*
 * Loads the jobs matching f, oldest first, into a malloc'd array of *n jobs
 * (caller frees each with mig_job_free and the array with free).
 */
int mig_store_job_list(struct mig_store *st, const struct mig_job_filter *f,
                       struct mig_job ***out, size_t *n);
/*
 * Finds a job that still holds vm_uuid (mig_job_state_holds_vm).  0 and its
 * uuid in out, -ENOENT when none, MIG_EDB.
 */
int mig_store_job_holding_vm(struct mig_store *st, const char *vm_uuid,
                             char out[MIG_UUID_LEN + 1]);

/* Records that step (a phase name) of job reached status ("started", "done", "failed"). */
int mig_store_step_record(struct mig_store *st, const char *job_uuid, const char *step,
                          const char *status);
/* The job's steps as a JSON array of {step, status, time}; new reference or NULL. */
json_t *mig_store_steps(struct mig_store *st, const char *job_uuid);

/* Appends one log record for job (level as bunyan number). */
int mig_store_log_append(struct mig_store *st, const char *job_uuid, int level, const char *msg);
/* The job's log as a JSON array of {time, level, msg}, oldest first; new reference. */
json_t *mig_store_log(struct mig_store *st, const char *job_uuid);

/* Appends an event (type, data) for job; data is borrowed. */
int mig_store_event_append(struct mig_store *st, const char *job_uuid, const char *type,
                           json_t *data);

#endif
