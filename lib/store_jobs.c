/*
 * store_jobs.c: the jobs of the store (store.h): a job's row and its record
 * (job_record.h's text; the row's other columns are what SQL filters on),
 * its log, the action journal that commits an action's status together with
 * the job, and the leftovers due for a retry.  A record that held a
 * direct-transfer private key is wiped from the WAL once saved without it.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "err.h"
#include "job_record.h"
#include "log.h"
#include "store.h"
#include "store_int.h"
#include "util.h"

/* --- the jobs' private keys ---------------------------------------------- */

/* Where uuid sits in st->keyed, or -1. */
static ssize_t keyed_find(const struct mig_store *st, const char *uuid)
{
    for (size_t i = 0; i < st->nkeyed; i++)
        if (strcmp(st->keyed[i], uuid) == 0)
            return (ssize_t)i;
    return -1;
}

/* Notes that the job's record as now stored or read holds a private key. */
static void keyed_add(struct mig_store *st, const struct mig_job *job)
{
    if (job->ctx.direct_key[0] == '\0' || keyed_find(st, job->uuid) >= 0)
        return;
    st->keyed = mig_grow(st->keyed, st->nkeyed, &st->capkeyed, 4, sizeof(*st->keyed));
    snprintf(st->keyed[st->nkeyed++], sizeof(st->keyed[0]), "%s", job->uuid);
}

/*
 * Called once a save of job has committed.  When its record held a key and
 * no longer does, the old copies still lie in the WAL (and in the database
 * until the next checkpoint): a TRUNCATE checkpoint writes the zeroed pages
 * (secure_delete) over them and empties the WAL.  A failed checkpoint is
 * logged; the next one (at the next key's wipe or the next open) does it.
 */
static void key_wipe(struct mig_store *st, const struct mig_job *job)
{
    if (job->ctx.direct_key[0] != '\0') {
        keyed_add(st, job);
        return;
    }
    ssize_t i = keyed_find(st, job->uuid);
    if (i < 0)
        return;
    memmove(&st->keyed[i], &st->keyed[i + 1], (st->nkeyed - (size_t)i - 1) * sizeof(*st->keyed));
    st->nkeyed--;
    if (mig_store_checkpoint(st) == 0)
        log_info("store %s: job %s: its private key was wiped from the database", st->path,
                 job->uuid);
}

/* --- jobs ---------------------------------------------------------------- */

/*
 * Upserts the job's row with the cached statement; the one code path of
 * mig_store_job_save and mig_store_action_save.  0, MIG_EPARSE (the job
 * cannot be serialized) or MIG_EDB (logged).
 */
static int job_upsert(struct mig_store *st, const struct mig_job *job)
{
    sqlite3_stmt *s = store_stmt_get(st, ST_JOB_SAVE);
    if (s == NULL)
        return MIG_EDB;
    json_t *rec = mig_job_to_record(job);
    char *text = rec != NULL ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    if (text == NULL) {
        log_error("store %s: job %s cannot be serialized", st->path, job->uuid);
        return MIG_EPARSE;
    }
    store_bind_text(s, 1, job->uuid);
    store_bind_text(s, 2, job->vm_uuid);
    store_bind_text(s, 3, mig_job_state_name(job->state));
    store_bind_text(s, 4, mig_phase_name(job->phase));
    store_bind_text(s, 5, mig_mode_name(job->mode));
    sqlite3_bind_int64(s, 6, job->created);
    sqlite3_bind_int64(s, 7, mig_now_ms());
    sqlite3_bind_text(s, 8, text, -1, free);
    store_bind_text(s, 9, job->evacuation[0] != '\0' ? job->evacuation : NULL);
    sqlite3_bind_int(s, 10, job->nleftovers);
    int64_t due = mig_job_leftover_due(job);
    if (due > 0)
        sqlite3_bind_int64(s, 11, due);
    else
        sqlite3_bind_null(s, 11);
    if (job->state == MIG_JOB_SWITCHED && job->cleanup_at > 0)
        sqlite3_bind_int64(s, 12, job->cleanup_at);
    else
        sqlite3_bind_null(s, 12);
    return store_step_done(st, s, "save job");
}

int mig_store_job_save(struct mig_store *st, const struct mig_job *job)
{
    int rc = job_upsert(st, job);
    /* Inside a caller's transaction the wipe would see uncommitted pages: not here. */
    if (rc == 0 && sqlite3_get_autocommit(st->db))
        key_wipe(st, job);
    return rc;
}

/*
 * Parses the stored record text (len bytes) of the row keyed row_uuid into a
 * job.  0, or MIG_EPARSE with the reason in why: not JSON, not a job record,
 * or the record of another job than its row's.
 */
static int record_parse(const char *row_uuid, const char *text, int len, struct mig_job **out,
                        char *why, size_t whysz)
{
    *out = NULL;
    if (text == NULL) {
        mig_errf(why, whysz, "the record is NULL");
        return MIG_EPARSE;
    }
    json_error_t jerr;
    json_t *rec = json_loadb(text, (size_t)len, 0, &jerr);
    if (rec == NULL) {
        mig_errf(why, whysz, "the record is not JSON: %s (column %d)", jerr.text, jerr.column);
        return MIG_EPARSE;
    }
    int rc = mig_job_from_record(rec, out);
    json_decref(rec);
    if (rc != 0) {
        mig_errf(why, whysz, "the record is not a valid job record: %s", mig_strerror(rc));
        return MIG_EPARSE;
    }
    if (row_uuid == NULL || strcmp((*out)->uuid, row_uuid) != 0) {
        mig_errf(why, whysz, "the record is that of job %s", (*out)->uuid);
        mig_job_free(*out);
        *out = NULL;
        return MIG_EPARSE;
    }
    return 0;
}

/*
 * Parses the record column rec_col of the row whose uuid is in uuid_col.
 * 0, or MIG_EPARSE (logged, naming the job) when the record is unreadable.
 */
static int job_from_row(struct mig_store *st, sqlite3_stmt *s, int uuid_col, int rec_col,
                        struct mig_job **out)
{
    const char *uuid = (const char *)sqlite3_column_text(s, uuid_col);
    /* Text before bytes, as SQLite asks: the length is that of the text form. */
    const char *text = (const char *)sqlite3_column_text(s, rec_col);
    int len = sqlite3_column_bytes(s, rec_col);
    char why[256];
    int rc = record_parse(uuid, text, len, out, why, sizeof(why));
    if (rc != 0)
        log_error("store %s: job %s is unreadable: %s", st->path, uuid != NULL ? uuid : "?", why);
    else
        keyed_add(st, *out); /* e.g. a job resumed after a restart, its key not yet forgotten */
    return rc;
}

int mig_store_job_load(struct mig_store *st, const char *uuid, struct mig_job **out)
{
    *out = NULL;
    sqlite3_stmt *s = store_stmt_get(st, ST_JOB_LOAD);
    if (s == NULL)
        return MIG_EDB;
    store_bind_text(s, 1, uuid);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        rc = job_from_row(st, s, 0, 1, out);
    else if (rc == SQLITE_DONE)
        rc = -ENOENT;
    else
        rc = store_db_fail(st, "load job");
    store_stmt_done(s);
    return rc;
}

int mig_store_job_list(struct mig_store *st, const struct mig_job_filter *f, struct mig_job ***out,
                       size_t *n)
{
    *out = NULL;
    *n = 0;
    /* An explicit state wins over the default "unfinished only". */
    bool unfinished_only = f == NULL || (!f->all && f->state == NULL);
    bool one_state = f != NULL && f->state != NULL;
    char states[64];
    if (one_state) {
        json_t *a = json_pack("[s]", f->state);
        char *text = a != NULL ? json_dumps(a, JSON_COMPACT) : NULL;
        json_decref(a);
        if (text == NULL || strlen(text) >= sizeof(states)) {
            free(text);
            return 0; /* no such state: nothing matches */
        }
        snprintf(states, sizeof(states), "%s", text);
        free(text);
    }
    sqlite3_stmt *s = store_stmt_get(st, one_state || unfinished_only ? ST_JOB_LIST_STATES : ST_JOB_LIST);
    if (s == NULL)
        return MIG_EDB;
    if (!one_state && !unfinished_only)
        store_bind_text(s, 1, NULL);
    store_bind_text(s, 2, f != NULL ? f->vm_uuid : NULL);
    store_bind_text(s, 3, one_state ? states : unfinished_only ? st->unfinished_states : NULL);
    /* SQLite: a negative LIMIT means none. */
    sqlite3_bind_int64(s, 4, f != NULL && f->limit > 0 ? f->limit : -1);
    sqlite3_bind_int64(s, 5, f != NULL && f->offset > 0 ? f->offset : 0);
    store_bind_text(s, 6, f != NULL ? f->evacuation : NULL);

    struct mig_job **jobs = NULL;
    size_t count = 0, cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        jobs = mig_grow(jobs, count, &cap, 16, sizeof(*jobs));
        /* An unreadable row is logged and skipped: it must not hide the others. */
        if (job_from_row(st, s, 0, 1, &jobs[count]) == 0)
            count++;
    }
    if (step != SQLITE_DONE)
        rc = store_db_fail(st, "list jobs");
    store_stmt_done(s);
    if (rc != 0) {
        for (size_t i = 0; i < count; i++)
            mig_job_free(jobs[i]);
        free(jobs);
        return rc;
    }
    *out = jobs;
    *n = count;
    return 0;
}

int mig_store_job_list_bad(struct mig_store *st, struct mig_bad_job **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = store_stmt_get(st, ST_JOB_ALL);
    if (s == NULL)
        return MIG_EDB;
    struct mig_bad_job *bad = NULL;
    size_t count = 0, cap = 0;
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        struct mig_job *job = NULL;
        char why[sizeof(bad->error)];
        const char *text = (const char *)sqlite3_column_text(s, 3);
        int len = sqlite3_column_bytes(s, 3);
        if (record_parse((const char *)sqlite3_column_text(s, 0), text, len, &job, why,
                         sizeof(why)) == 0) {
            mig_job_free(job);
            continue;
        }
        bad = mig_grow(bad, count, &cap, 4, sizeof(*bad));
        struct mig_bad_job *b = &bad[count++];
        store_copy_column(s, 0, b->uuid, sizeof(b->uuid));
        store_copy_column(s, 1, b->vm_uuid, sizeof(b->vm_uuid));
        store_copy_column(s, 2, b->state, sizeof(b->state));
        snprintf(b->error, sizeof(b->error), "%s", why);
    }
    int rc = step == SQLITE_DONE ? 0 : store_db_fail(st, "list unreadable jobs");
    store_stmt_done(s);
    if (rc != 0) {
        free(bad);
        return rc;
    }
    *out = bad;
    *n = count;
    return 0;
}

int mig_store_job_holding_vm(struct mig_store *st, const char *vm_uuid, char out[MIG_UUID_LEN + 1])
{
    out[0] = '\0';
    sqlite3_stmt *s = store_stmt_get(st, ST_JOB_HOLDING);
    if (s == NULL)
        return MIG_EDB;
    store_bind_text(s, 1, vm_uuid);
    store_bind_text(s, 2, st->holding_states);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const char *u = (const char *)sqlite3_column_text(s, 0);
        snprintf(out, MIG_UUID_LEN + 1, "%s", u != NULL ? u : "");
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = -ENOENT;
    } else {
        rc = store_db_fail(st, "find job holding vm");
    }
    store_stmt_done(s);
    return rc;
}

/* The uuids a "... due at now" statement lists, earliest first (at most max). */
static int uuids_due(struct mig_store *st, enum stmt_id which, const char *what, int64_t now,
                     size_t max, char (*out)[MIG_UUID_LEN + 1], size_t *n)
{
    *n = 0;
    sqlite3_stmt *s = store_stmt_get(st, which);
    if (s == NULL)
        return MIG_EDB;
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max) {
        const char *u = (const char *)sqlite3_column_text(s, 0);
        snprintf(out[(*n)++], MIG_UUID_LEN + 1, "%s", u != NULL ? u : "");
    }
    rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : store_db_fail(st, what);
    store_stmt_done(s);
    return rc;
}

int mig_store_leftovers_due(struct mig_store *st, int64_t now, size_t max,
                            char (*out)[MIG_UUID_LEN + 1], size_t *n)
{
    return uuids_due(st, ST_LEFTOVER_DUE, "list leftovers due", now, max, out, n);
}

int mig_store_cleanups_due(struct mig_store *st, int64_t now, size_t max,
                           char (*out)[MIG_UUID_LEN + 1], size_t *n)
{
    return uuids_due(st, ST_CLEANUP_DUE, "list cleanups due", now, max, out, n);
}

int64_t mig_store_leftover_count(struct mig_store *st)
{
    sqlite3_stmt *s = store_stmt_get(st, ST_LEFTOVER_COUNT);
    if (s == NULL)
        return -1;
    int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    store_stmt_done(s);
    return n;
}

/* --- a job's log --------------------------------------------------------- */

int mig_store_log_append(struct mig_store *st, const char *job_uuid, int level, const char *msg)
{
    sqlite3_stmt *s = store_stmt_get(st, ST_LOG_INSERT);
    if (s == NULL)
        return MIG_EDB;
    store_bind_text(s, 1, job_uuid);
    sqlite3_bind_int64(s, 2, mig_now_ms());
    sqlite3_bind_int(s, 3, level);
    store_bind_text(s, 4, msg != NULL ? msg : "");
    return store_step_done(st, s, "append log");
}

/* One line of a job's log. */
static json_t *log_row(struct mig_store *st, sqlite3_stmt *s)
{
    (void)st;
    return json_pack("{s:o, s:i, s:o}", "time", store_time_column(s, 0), "level",
                     sqlite3_column_int(s, 1), "msg", store_text_column(s, 2));
}

json_t *mig_store_log(struct mig_store *st, const char *job_uuid)
{
    return store_rows_json(st, ST_LOG_LIST, job_uuid, log_row, "read log");
}

/* --- the action journal -------------------------------------------------- */

static const char *const action_status_names[MIG_ACTION_NSTATUS] = {
    [MIG_ACTION_STARTED] = "started", [MIG_ACTION_DONE] = "done",
    [MIG_ACTION_FAILED] = "failed",   [MIG_ACTION_UNDO_STARTED] = "undo_started",
    [MIG_ACTION_UNDONE] = "undone",
};

const char *mig_action_status_name(enum mig_action_status s)
{
    if ((int)s < 0 || s >= MIG_ACTION_NSTATUS)
        return "unknown";
    return action_status_names[s];
}

int mig_action_status_parse(const char *s, enum mig_action_status *out)
{
    if (s == NULL)
        return -EINVAL;
    for (int i = 0; i < MIG_ACTION_NSTATUS; i++) {
        if (strcmp(s, action_status_names[i]) == 0) {
            *out = (enum mig_action_status)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* Upserts the action row (see ST_ACTION_SAVE); 0 or MIG_EDB (logged). */
static int action_upsert(struct mig_store *st, const char *job_uuid, const char *key,
                         const char *phase, const char *side, enum mig_action_status status,
                         const char *error, int64_t op_ms)
{
    sqlite3_stmt *s = store_stmt_get(st, ST_ACTION_SAVE);
    if (s == NULL)
        return MIG_EDB;
    int64_t now = mig_now_ms();
    store_bind_text(s, 1, job_uuid);
    store_bind_text(s, 2, key);
    store_bind_text(s, 3, phase);
    store_bind_text(s, 4, side);
    /* Out of range binds "unknown", which the table's CHECK refuses. */
    store_bind_text(s, 5, mig_action_status_name(status));
    /* Unbound parameters are NULL: the times this status does not stamp. */
    switch (status) {
    case MIG_ACTION_STARTED:
        sqlite3_bind_int64(s, 6, now);
        sqlite3_bind_int(s, 11, 1);
        break;
    case MIG_ACTION_DONE:
    case MIG_ACTION_FAILED:
        sqlite3_bind_int64(s, 7, now);
        break;
    case MIG_ACTION_UNDO_STARTED:
        sqlite3_bind_int64(s, 8, now);
        sqlite3_bind_int(s, 12, 1);
        break;
    case MIG_ACTION_UNDONE:
        sqlite3_bind_int64(s, 9, now);
        break;
    default:
        break;
    }
    store_bind_text(s, 10, error);
    if (op_ms >= 0)
        sqlite3_bind_int64(s, 13, op_ms);
    return store_step_done(st, s, "save action");
}

int mig_store_action_save(struct mig_store *st, const struct mig_job *job, const char *key,
                          const char *phase, const char *side, enum mig_action_status status,
                          const char *error)
{
    return mig_store_action_save_timed(st, job, key, phase, side, status, error, -1);
}

int mig_store_action_save_timed(struct mig_store *st, const struct mig_job *job, const char *key,
                                const char *phase, const char *side,
                                enum mig_action_status status, const char *error, int64_t op_ms)
{
    if (store_tx_exec(st, ST_BEGIN, "begin action") != 0)
        return MIG_EDB;
    /* The job first: a refused action must undo its record's change too. */
    if (job_upsert(st, job) != 0 ||
        action_upsert(st, job->uuid, key, phase, side, status, error, op_ms) != 0 ||
        store_tx_exec(st, ST_COMMIT, "commit action") != 0) {
        /* After a failed COMMIT the transaction is still open: roll it back too. */
        if (!sqlite3_get_autocommit(st->db))
            store_tx_exec(st, ST_ROLLBACK, "roll back action");
        log_error("store %s: job %s: action %s not recorded as %s", st->path, job->uuid,
                  key != NULL ? key : "(null)", mig_action_status_name(status));
        return MIG_EDB;
    }
    key_wipe(st, job);
    return 0;
}

/* A nullable ms column as 0 ("not yet") or its value. */
static int64_t ms_column(sqlite3_stmt *s, int col)
{
    return sqlite3_column_type(s, col) == SQLITE_NULL ? 0 : sqlite3_column_int64(s, col);
}

int mig_store_actions(struct mig_store *st, const char *job_uuid, struct mig_action_rec **out,
                      size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = store_stmt_get(st, ST_ACTION_LIST);
    if (s == NULL)
        return MIG_EDB;
    store_bind_text(s, 1, job_uuid);
    struct mig_action_rec *recs = NULL;
    size_t count = 0, cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        recs = mig_grow(recs, count, &cap, 16, sizeof(*recs));
        struct mig_action_rec *r = &recs[count++];
        memset(r, 0, sizeof(*r));
        store_copy_column(s, 0, r->key, sizeof(r->key));
        store_copy_column(s, 1, r->phase, sizeof(r->phase));
        store_copy_column(s, 2, r->side, sizeof(r->side));
        if (mig_action_status_parse((const char *)sqlite3_column_text(s, 3), &r->status) != 0) {
            log_error("store %s: job %s: action %s has an unknown status", st->path, job_uuid,
                      r->key);
            rc = MIG_EDB;
            break;
        }
        r->seq = sqlite3_column_int64(s, 4);
        r->started_ms = ms_column(s, 5);
        r->ended_ms = ms_column(s, 6);
        r->undo_started_ms = ms_column(s, 7);
        r->undo_ended_ms = ms_column(s, 8);
        store_copy_column(s, 9, r->error, sizeof(r->error));
        r->op_ms = sqlite3_column_type(s, 10) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 10);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = store_db_fail(st, "read actions");
    store_stmt_done(s);
    if (rc != 0) {
        free(recs);
        return rc;
    }
    *out = recs;
    *n = count;
    return 0;
}

/* A nullable ms column as a new JSON string (ISO 8601) or null. */
static json_t *time_or_null(sqlite3_stmt *s, int col)
{
    return sqlite3_column_type(s, col) == SQLITE_NULL ? json_null() : store_time_column(s, col);
}

/* One action of the journal as migctl show -v prints it. */
static json_t *action_row(struct mig_store *st, sqlite3_stmt *s)
{
    (void)st;
    bool ended = sqlite3_column_type(s, 6) != SQLITE_NULL;
    bool started = sqlite3_column_type(s, 5) != SQLITE_NULL;
    json_t *duration = started && ended
                           ? json_integer(sqlite3_column_int64(s, 6) - sqlite3_column_int64(s, 5))
                           : json_null();
    json_t *error =
        sqlite3_column_type(s, 9) == SQLITE_NULL ? json_null() : store_text_column(s, 9);
    json_t *op = sqlite3_column_type(s, 10) == SQLITE_NULL
                     ? json_null()
                     : json_integer(sqlite3_column_int64(s, 10));
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "action",
                     store_text_column(s, 0), "phase", store_text_column(s, 1), "side",
                     store_text_column(s, 2), "status", store_text_column(s, 3), "started",
                     time_or_null(s, 5), "ended", time_or_null(s, 6), "duration_ms", duration,
                     "op_ms", op, "undo_started", time_or_null(s, 7), "undo_ended",
                     time_or_null(s, 8), "error", error);
}

json_t *mig_store_actions_json(struct mig_store *st, const char *job_uuid)
{
    return store_rows_json(st, ST_ACTION_LIST, job_uuid, action_row, "read actions");
}
