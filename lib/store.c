/*
 * store.c: migd's SQLite store (see store.h): opens the database in WAL mode,
 * applies the embedded schema steps, and keeps jobs, their steps, events and
 * log.  Every statement is a constant text with bound parameters, prepared
 * once and cached for the life of the store.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "schema.h"
#include "store.h"
#include "util.h"

#define STORE_BUSY_TIMEOUT_MS 5000

/* The cached statements; stmt_sql[] holds their text, in the same order. */
enum stmt_id {
    ST_JOB_SAVE,
    ST_JOB_LOAD,
    ST_JOB_LIST,
    ST_JOB_HOLDING,
    ST_STEP_INSERT,
    ST_STEP_LIST,
    ST_LOG_INSERT,
    ST_LOG_LIST,
    ST_EVENT_INSERT,
    ST_COUNT
};

/*
 * Which states are "unfinished" or "hold the VM" is job.c's knowledge, not
 * SQL's: the caller binds those state names as a JSON array (?N) and the
 * statement tests membership with json_each.
 */
static const char *const stmt_sql[ST_COUNT] = {
    [ST_JOB_SAVE] = "INSERT INTO jobs (uuid, vm_uuid, state, phase, mode, created, updated, record)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                    " ON CONFLICT (uuid) DO UPDATE SET vm_uuid = excluded.vm_uuid,"
                    " state = excluded.state, phase = excluded.phase, mode = excluded.mode,"
                    " created = excluded.created, updated = excluded.updated,"
                    " record = excluded.record",
    [ST_JOB_LOAD] = "SELECT record FROM jobs WHERE uuid = ?1",
    [ST_JOB_LIST] = "SELECT record FROM jobs"
                    " WHERE (?1 IS NULL OR state = ?1)"
                    " AND (?2 IS NULL OR vm_uuid = ?2)"
                    " AND (?3 IS NULL OR state IN (SELECT value FROM json_each(?3)))"
                    " ORDER BY created, rowid",
    [ST_JOB_HOLDING] = "SELECT uuid FROM jobs WHERE vm_uuid = ?1"
                       " AND state IN (SELECT value FROM json_each(?2))"
                       " ORDER BY created, rowid LIMIT 1",
    [ST_STEP_INSERT] = "INSERT INTO steps (job_uuid, step, status, time) VALUES (?1, ?2, ?3, ?4)",
    [ST_STEP_LIST] = "SELECT step, status, time FROM steps WHERE job_uuid = ?1 ORDER BY id",
    [ST_LOG_INSERT] = "INSERT INTO job_log (job_uuid, time, level, msg) VALUES (?1, ?2, ?3, ?4)",
    [ST_LOG_LIST] = "SELECT time, level, msg FROM job_log WHERE job_uuid = ?1 ORDER BY id",
    [ST_EVENT_INSERT] = "INSERT INTO events (job_uuid, time, type, data) VALUES (?1, ?2, ?3, ?4)",
};

struct mig_store {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmt[ST_COUNT];
    char unfinished_states[256]; /* JSON array of the non-final state names */
    char holding_states[256];    /* JSON array of the states that hold a VM */
};

int mig_store_schema_latest(void)
{
    return mig_schema_nsteps;
}


/* Writes into out (size outsz) a JSON array of the names of states matching pred. */
static void states_json(bool (*pred)(enum mig_job_state), char *out, size_t outsz)
{
    json_t *a = json_array();
    for (int s = 0; s < MIG_JOB_NSTATES; s++) {
        if (pred((enum mig_job_state)s))
            json_array_append_new(a, json_string(mig_job_state_name((enum mig_job_state)s)));
    }
    char *text = json_dumps(a, JSON_COMPACT);
    /* The state names are a fixed handful: they always fit. */
    if (text == NULL || strlen(text) >= outsz)
        abort();
    memcpy(out, text, strlen(text) + 1);
    free(text);
    json_decref(a);
}

static bool state_unfinished(enum mig_job_state s)
{
    return !mig_job_state_final(s);
}

/*
 * Returns the cached statement id, preparing it on first use; NULL (and a log
 * line) when SQLite refuses it.  The caller resets it with stmt_done.
 */
static sqlite3_stmt *stmt_get(struct mig_store *st, enum stmt_id id)
{
    if (st->stmt[id] == NULL) {
        int rc = sqlite3_prepare_v3(st->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &st->stmt[id], NULL);
        if (rc != SQLITE_OK) {
            log_error("store %s: cannot prepare statement %d: %s", st->path, (int)id,
                      sqlite3_errmsg(st->db));
            sqlite3_finalize(st->stmt[id]);
            st->stmt[id] = NULL;
            return NULL;
        }
    }
    return st->stmt[id];
}

/* Resets a statement after use so that it holds no lock and no bound text. */
static void stmt_done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

/* Binds text, or NULL when s is NULL.  SQLITE_TRANSIENT: s may not outlive the call. */
static int bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v == NULL)
        return sqlite3_bind_null(s, i);
    return sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

/* Logs a failed statement and returns MIG_EDB. */
static int db_fail(struct mig_store *st, const char *what)
{
    log_error("store %s: %s: %s", st->path, what, sqlite3_errmsg(st->db));
    return MIG_EDB;
}

/* Runs a statement without results (text only: no values) and sets err on failure. */
static int exec_simple(sqlite3 *db, const char *sql, const char *path, char *err, size_t errsz)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        mig_errf(err, errsz, "database %s: %s failed: %s", path, sql,
                msg != NULL ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return MIG_EDB;
    }
    return 0;
}

static int read_user_version(sqlite3 *db, int *out)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        *out = sqlite3_column_int(s, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc == SQLITE_OK ? 0 : MIG_EDB;
}

/*
 * Applies schema step i if the database is still below it.  The version is
 * read again inside the write transaction, so two processes opening a new
 * database at once cannot both apply the same step.
 */
static int apply_step(sqlite3 *db, const char *path, const struct mig_schema_step *step, char *err,
                      size_t errsz)
{
    int rc = exec_simple(db, "BEGIN IMMEDIATE", path, err, errsz);
    if (rc != 0)
        return rc;
    int cur = 0;
    if (read_user_version(db, &cur) != 0) {
        mig_errf(err, errsz, "database %s: cannot read user_version: %s", path, sqlite3_errmsg(db));
        goto fail;
    }
    if (cur >= step->version) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return 0;
    }
    char *msg = NULL;
    if (sqlite3_exec(db, step->sql, NULL, NULL, &msg) != SQLITE_OK) {
        mig_errf(err, errsz, "database %s: schema step %03d-%s failed: %s", path, step->version,
                step->name, msg != NULL ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        goto fail;
    }
    /* PRAGMA takes no bound parameters; the value is our own integer. */
    char pragma[64];
    snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", step->version);
    if (exec_simple(db, pragma, path, err, errsz) != 0)
        goto fail;
    if (exec_simple(db, "COMMIT", path, err, errsz) != 0)
        goto fail;
    log_info("database %s: applied schema step %03d-%s", path, step->version, step->name);
    return 0;
fail:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return MIG_EDB;
}

int mig_store_open(const char *path, struct mig_store **out, char *err, size_t errsz)
{
    *out = NULL;
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(
        path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        mig_errf(err, errsz, "cannot open database %s: %s", path,
                db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return MIG_EDB;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);

    int version = 0;
    if (read_user_version(db, &version) != 0) {
        /* The first read is where "not a database" shows. */
        mig_errf(err, errsz, "cannot read database %s: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return MIG_EDB;
    }
    if (version > mig_schema_nsteps) {
        mig_errf(err, errsz,
                "database %s is at schema version %d but this migd knows only %d; upgrade migd",
                path, version, mig_schema_nsteps);
        sqlite3_close(db);
        return MIG_ESCHEMA;
    }

    /* journal_mode answers with the mode in effect: anything else means WAL was refused. */
    sqlite3_stmt *s = NULL;
    rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
    if (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(s, 0);
        if (mode == NULL || strcmp(mode, "wal") != 0)
            log_warn("database %s: journal mode is %s, not wal", path,
                     mode != NULL ? mode : "unknown");
        rc = SQLITE_OK;
    } else {
        rc = SQLITE_ERROR;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_OK) {
        mig_errf(err, errsz, "database %s: cannot set WAL mode: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return MIG_EDB;
    }
    if (exec_simple(db, "PRAGMA foreign_keys = ON", path, err, errsz) != 0 ||
        exec_simple(db, "PRAGMA synchronous = NORMAL", path, err, errsz) != 0) {
        sqlite3_close(db);
        return MIG_EDB;
    }

    for (int i = 0; i < mig_schema_nsteps; i++) {
        if (mig_schema_steps[i].version <= version)
            continue;
        if ((rc = apply_step(db, path, &mig_schema_steps[i], err, errsz)) != 0) {
            sqlite3_close(db);
            return rc;
        }
    }

    struct mig_store *st = mig_calloc(1, sizeof(*st));
    st->db = db;
    st->path = mig_strdup(path);
    states_json(state_unfinished, st->unfinished_states, sizeof(st->unfinished_states));
    states_json(mig_job_state_holds_vm, st->holding_states, sizeof(st->holding_states));
    *out = st;
    return 0;
}

void mig_store_close(struct mig_store *st)
{
    if (st == NULL)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(st->stmt[i]);
    if (sqlite3_close(st->db) != SQLITE_OK)
        log_error("store %s: close: %s", st->path, sqlite3_errmsg(st->db));
    free(st->path);
    free(st);
}

int mig_store_version(struct mig_store *st)
{
    int v = -1;
    if (read_user_version(st->db, &v) != 0)
        return MIG_EDB;
    return v;
}

int mig_store_job_save(struct mig_store *st, const struct mig_job *job)
{
    sqlite3_stmt *s = stmt_get(st, ST_JOB_SAVE);
    if (s == NULL)
        return MIG_EDB;
    json_t *rec = mig_job_to_record(job);
    char *text = rec != NULL ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    if (text == NULL) {
        log_error("store %s: job %s cannot be serialized", st->path, job->uuid);
        return MIG_EPARSE;
    }
    bind_text(s, 1, job->uuid);
    bind_text(s, 2, job->vm_uuid);
    bind_text(s, 3, mig_job_state_name(job->state));
    bind_text(s, 4, mig_phase_name(job->phase));
    bind_text(s, 5, mig_mode_name(job->mode));
    sqlite3_bind_int64(s, 6, job->created);
    sqlite3_bind_int64(s, 7, mig_now_ms());
    sqlite3_bind_text(s, 8, text, -1, free);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_fail(st, "save job");
    stmt_done(s);
    return rc;
}

/* Parses one record column into a job; MIG_EDB when the stored text is not a job. */
static int job_from_column(struct mig_store *st, sqlite3_stmt *s, int col, struct mig_job **out)
{
    const char *text = (const char *)sqlite3_column_text(s, col);
    int len = sqlite3_column_bytes(s, col);
    json_error_t jerr;
    json_t *rec = text != NULL ? json_loadb(text, (size_t)len, 0, &jerr) : NULL;
    int rc = rec != NULL ? mig_job_from_record(rec, out) : MIG_EPARSE;
    json_decref(rec);
    if (rc != 0) {
        log_error("store %s: a stored job record is unreadable: %s", st->path,
                  rec == NULL && text != NULL ? jerr.text : mig_strerror(rc));
        return MIG_EDB;
    }
    return 0;
}

int mig_store_job_load(struct mig_store *st, const char *uuid, struct mig_job **out)
{
    *out = NULL;
    sqlite3_stmt *s = stmt_get(st, ST_JOB_LOAD);
    if (s == NULL)
        return MIG_EDB;
    bind_text(s, 1, uuid);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        rc = job_from_column(st, s, 0, out);
    else if (rc == SQLITE_DONE)
        rc = -ENOENT;
    else
        rc = db_fail(st, "load job");
    stmt_done(s);
    return rc;
}

int mig_store_job_list(struct mig_store *st, const struct mig_job_filter *f, struct mig_job ***out,
                       size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = stmt_get(st, ST_JOB_LIST);
    if (s == NULL)
        return MIG_EDB;
    bind_text(s, 1, f != NULL ? f->state : NULL);
    bind_text(s, 2, f != NULL ? f->vm_uuid : NULL);
    /* An explicit state wins over the default "unfinished only". */
    bool unfinished_only = f == NULL || (!f->all && f->state == NULL);
    bind_text(s, 3, unfinished_only ? st->unfinished_states : NULL);

    struct mig_job **jobs = NULL;
    size_t count = 0, cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap != 0 ? cap * 2 : 16;
            struct mig_job **grown = realloc(jobs, cap * sizeof(*jobs));
            if (grown == NULL)
                abort();
            jobs = grown;
        }
        if ((rc = job_from_column(st, s, 0, &jobs[count])) != 0)
            break;
        count++;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = db_fail(st, "list jobs");
    stmt_done(s);
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

int mig_store_job_holding_vm(struct mig_store *st, const char *vm_uuid, char out[MIG_UUID_LEN + 1])
{
    out[0] = '\0';
    sqlite3_stmt *s = stmt_get(st, ST_JOB_HOLDING);
    if (s == NULL)
        return MIG_EDB;
    bind_text(s, 1, vm_uuid);
    bind_text(s, 2, st->holding_states);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const char *u = (const char *)sqlite3_column_text(s, 0);
        snprintf(out, MIG_UUID_LEN + 1, "%s", u != NULL ? u : "");
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = -ENOENT;
    } else {
        rc = db_fail(st, "find job holding vm");
    }
    stmt_done(s);
    return rc;
}

int mig_store_step_record(struct mig_store *st, const char *job_uuid, const char *step,
                          const char *status)
{
    sqlite3_stmt *s = stmt_get(st, ST_STEP_INSERT);
    if (s == NULL)
        return MIG_EDB;
    bind_text(s, 1, job_uuid);
    bind_text(s, 2, step);
    bind_text(s, 3, status);
    sqlite3_bind_int64(s, 4, mig_now_ms());
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_fail(st, "record step");
    stmt_done(s);
    return rc;
}

/* The ISO 8601 form of a ms column, as a new JSON string. */
static json_t *time_column(sqlite3_stmt *s, int col)
{
    char iso[32];
    mig_time_iso(sqlite3_column_int64(s, col), iso);
    return json_string(iso);
}

/* A text column as a new JSON string ("" for NULL or invalid UTF-8). */
static json_t *text_column(sqlite3_stmt *s, int col)
{
    const char *t = (const char *)sqlite3_column_text(s, col);
    int len = sqlite3_column_bytes(s, col);
    json_t *j = t != NULL ? json_stringn(t, (size_t)len) : NULL;
    return j != NULL ? j : json_string("");
}

json_t *mig_store_steps(struct mig_store *st, const char *job_uuid)
{
    sqlite3_stmt *s = stmt_get(st, ST_STEP_LIST);
    if (s == NULL)
        return NULL;
    bind_text(s, 1, job_uuid);
    json_t *a = json_array();
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        json_array_append_new(a, json_pack("{s:o, s:o, s:o}", "step", text_column(s, 0), "status",
                                           text_column(s, 1), "time", time_column(s, 2)));
    }
    if (rc != SQLITE_DONE) {
        db_fail(st, "read steps");
        json_decref(a);
        a = NULL;
    }
    stmt_done(s);
    return a;
}

int mig_store_log_append(struct mig_store *st, const char *job_uuid, int level, const char *msg)
{
    sqlite3_stmt *s = stmt_get(st, ST_LOG_INSERT);
    if (s == NULL)
        return MIG_EDB;
    bind_text(s, 1, job_uuid);
    sqlite3_bind_int64(s, 2, mig_now_ms());
    sqlite3_bind_int(s, 3, level);
    bind_text(s, 4, msg != NULL ? msg : "");
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_fail(st, "append log");
    stmt_done(s);
    return rc;
}

json_t *mig_store_log(struct mig_store *st, const char *job_uuid)
{
    sqlite3_stmt *s = stmt_get(st, ST_LOG_LIST);
    if (s == NULL)
        return NULL;
    bind_text(s, 1, job_uuid);
    json_t *a = json_array();
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        json_array_append_new(a, json_pack("{s:o, s:i, s:o}", "time", time_column(s, 0), "level",
                                           sqlite3_column_int(s, 1), "msg", text_column(s, 2)));
    }
    if (rc != SQLITE_DONE) {
        db_fail(st, "read log");
        json_decref(a);
        a = NULL;
    }
    stmt_done(s);
    return a;
}

int mig_store_event_append(struct mig_store *st, const char *job_uuid, const char *type,
                           json_t *data)
{
    sqlite3_stmt *s = stmt_get(st, ST_EVENT_INSERT);
    if (s == NULL)
        return MIG_EDB;
    char *text = NULL;
    if (data != NULL) {
        text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text == NULL)
            return MIG_EPARSE;
    }
    bind_text(s, 1, job_uuid);
    sqlite3_bind_int64(s, 2, mig_now_ms());
    bind_text(s, 3, type);
    if (text != NULL)
        sqlite3_bind_text(s, 4, text, -1, free);
    else
        sqlite3_bind_null(s, 4);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_fail(st, "append event");
    stmt_done(s);
    return rc;
}
