/*
 * store_int.h: what the files of the store share (private to lib/store*.c;
 * the rest of migd sees only store.h).  store.c: open, schema steps, the
 * statement cache, transactions, the lock file; store_jobs.c: jobs, their
 * log, the action journal and leftovers; store_evac.c: evacuations and
 * transfer rates.  Shared functions are named store_ and grouped below by
 * the file that defines them; the rest are static.
 */
#ifndef MIG_STORE_INT_H
#define MIG_STORE_INT_H

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>

#include "store.h"

/* The cached statements; stmt_sql[] holds their text, in the same order. */
enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_META_OPENED,
    ST_JOB_SAVE,
    ST_JOB_LOAD,
    ST_JOB_LIST,
    ST_JOB_ALL,
    ST_JOB_HOLDING,
    ST_LOG_INSERT,
    ST_LOG_LIST,
    ST_ACTION_SAVE,
    ST_ACTION_LIST,
    ST_EVAC_SAVE,
    ST_EVAC_LOAD,
    ST_EVAC_LIST,
    ST_EVAC_OF_SERVER,
    ST_RATE_ADD,
    ST_RATE_GET,
    ST_OVERHEAD_ADD,
    ST_JOB_LIST_STATES,
    ST_LEFTOVER_DUE,
    ST_LEFTOVER_COUNT,
    ST_CLEANUP_DUE,
    ST_COUNT
};

struct mig_store {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmt[ST_COUNT];
    char unfinished_states[256]; /* JSON array of the non-final state names */
    char holding_states[256];    /* JSON array of the states that hold a VM */
    /*
     * The jobs whose record, as last saved or read, holds a direct-transfer
     * private key: when one is saved without it, the store wipes the old
     * copies (key_wipe).  A handful at most: one per running direct job.
     */
    char (*keyed)[MIG_UUID_LEN + 1];
    size_t nkeyed, capkeyed;
};

/* --- store.c ------------------------------------------------------------- */

/*
 * Returns the cached statement id, preparing it on first use; NULL (and a log
 * line) when SQLite refuses it.  The caller resets it with store_stmt_done.
 */
sqlite3_stmt *store_stmt_get(struct mig_store *st, enum stmt_id id);
/* Resets a statement after use so that it holds no lock and no bound text. */
void store_stmt_done(sqlite3_stmt *s);
/*
 * Runs statement id (key bound to ?1, none when NULL) and returns a new array
 * of row(st, s) for each row, a NULL from row leaving that row out; NULL
 * (and a log line naming what) when the statement fails.
 */
json_t *store_rows_json(struct mig_store *st, enum stmt_id id, const char *key,
                        json_t *(*row)(struct mig_store *st, sqlite3_stmt *s), const char *what);
/* Binds text, or NULL when v is NULL.  SQLITE_TRANSIENT: v may not outlive the call. */
int store_bind_text(sqlite3_stmt *s, int i, const char *v);
/* Logs a failed statement and returns MIG_EDB. */
int store_db_fail(struct mig_store *st, const char *what);
/* Runs one of the cached transaction statements (BEGIN, COMMIT, ROLLBACK); 0 or MIG_EDB. */
int store_tx_exec(struct mig_store *st, enum stmt_id id, const char *what);
/*
 * Steps s, bound by the caller, once: a write that returns no row.  Resets s
 * (store_stmt_done) either way; 0, or MIG_EDB with a log line naming what.
 */
int store_step_done(struct mig_store *st, sqlite3_stmt *s, const char *what);
/* Copies a text column into buf (size bufsz), "" for NULL. */
void store_copy_column(sqlite3_stmt *s, int col, char *buf, size_t bufsz);
/* The ISO 8601 form of a ms column, as a new JSON string. */
json_t *store_time_column(sqlite3_stmt *s, int col);
/* A text column as a new JSON string ("" for NULL or invalid UTF-8). */
json_t *store_text_column(sqlite3_stmt *s, int col);

#endif
