/*
 * store.c: migd's SQLite store (see store.h): opens the database in WAL mode,
 * applies the embedded schema steps, refuses a database it cannot write, and
 * keeps jobs, their steps, events, log and action journal; it also takes the
 * daemon's lock file beside the database.  Every statement is a constant text
 * with bound parameters, prepared once and cached for the life of the store.
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "schema.h"
#include "store.h"
#include "util.h"

#define STORE_BUSY_TIMEOUT_MS 5000

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
    ST_STEP_INSERT,
    ST_STEP_LIST,
    ST_LOG_INSERT,
    ST_LOG_LIST,
    ST_EVENT_INSERT,
    ST_ACTION_SAVE,
    ST_ACTION_LIST,
    ST_EVAC_SAVE,
    ST_EVAC_LOAD,
    ST_EVAC_LIST,
    ST_EVAC_OF_SERVER,
    ST_RATE_ADD,
    ST_RATE_GET,
    ST_OVERHEAD_ADD,
    ST_COUNT
};

/*
 * Which states are "unfinished" or "hold the VM" is job.c's knowledge, not
 * SQL's: the caller binds those state names as a JSON array (?N) and the
 * statement tests membership with json_each.
 */
static const char *const stmt_sql[ST_COUNT] = {
    /* IMMEDIATE: take the write lock at BEGIN, so that a busy database fails
     * there (after the busy timeout) and not halfway through. */
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_META_OPENED] = "INSERT OR REPLACE INTO meta (key, value) VALUES ('opened', ?1)",
    [ST_JOB_SAVE] = "INSERT INTO jobs (uuid, vm_uuid, state, phase, mode, created, updated, record,"
                    " evacuation_uuid)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                    " ON CONFLICT (uuid) DO UPDATE SET vm_uuid = excluded.vm_uuid,"
                    " state = excluded.state, phase = excluded.phase, mode = excluded.mode,"
                    " created = excluded.created, updated = excluded.updated,"
                    " record = excluded.record, evacuation_uuid = excluded.evacuation_uuid",
    [ST_JOB_LOAD] = "SELECT uuid, record FROM jobs WHERE uuid = ?1",
    [ST_JOB_LIST] = "SELECT uuid, record FROM jobs"
                    " WHERE (?1 IS NULL OR state = ?1)"
                    " AND (?2 IS NULL OR vm_uuid = ?2)"
                    " AND (?3 IS NULL OR state IN (SELECT value FROM json_each(?3)))"
                    " AND (?6 IS NULL OR evacuation_uuid = ?6)"
                    " ORDER BY created, rowid LIMIT ?4 OFFSET ?5",
    [ST_JOB_ALL] = "SELECT uuid, vm_uuid, state, record FROM jobs ORDER BY created, rowid",
    [ST_JOB_HOLDING] = "SELECT uuid FROM jobs WHERE vm_uuid = ?1"
                       " AND state IN (SELECT value FROM json_each(?2))"
                       " ORDER BY created, rowid LIMIT 1",
    [ST_STEP_INSERT] = "INSERT INTO steps (job_uuid, step, status, time) VALUES (?1, ?2, ?3, ?4)",
    [ST_STEP_LIST] = "SELECT step, status, time FROM steps WHERE job_uuid = ?1 ORDER BY id",
    [ST_LOG_INSERT] = "INSERT INTO job_log (job_uuid, time, level, msg) VALUES (?1, ?2, ?3, ?4)",
    [ST_LOG_LIST] = "SELECT time, level, msg FROM job_log WHERE job_uuid = ?1 ORDER BY id",
    [ST_EVENT_INSERT] = "INSERT INTO events (job_uuid, time, type, data) VALUES (?1, ?2, ?3, ?4)",
    /*
     * ?6..?9 are the times this status stamps (NULL: keep the stored one);
     * ?11 clears ended (a new attempt has not ended), ?12 clears undo_ended.
     * phase, side and seq are the first use's.
     */
    [ST_ACTION_SAVE] =
        "INSERT INTO actions (job_uuid, seq, key, phase, side, status, started, ended,"
        " undo_started, undo_ended, error, op_ms)"
        " VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM actions WHERE job_uuid = ?1),"
        " ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?13)"
        " ON CONFLICT (job_uuid, key) DO UPDATE SET status = excluded.status,"
        " error = excluded.error, started = coalesce(excluded.started, started),"
        " op_ms = coalesce(excluded.op_ms, op_ms),"
        " ended = CASE WHEN ?11 THEN NULL ELSE coalesce(excluded.ended, ended) END,"
        " undo_started = coalesce(excluded.undo_started, undo_started),"
        " undo_ended = CASE WHEN ?12 THEN NULL ELSE coalesce(excluded.undo_ended, undo_ended) END",
    [ST_EVAC_SAVE] = "INSERT INTO evacuations (uuid, server_uuid, state, created, updated, record)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (uuid) DO UPDATE SET"
                     " state = excluded.state, updated = excluded.updated, record = excluded.record",
    [ST_EVAC_LOAD] = "SELECT record FROM evacuations WHERE uuid = ?1",
    [ST_EVAC_LIST] = "SELECT record FROM evacuations ORDER BY created, rowid",
    [ST_EVAC_OF_SERVER] = "SELECT record FROM evacuations WHERE server_uuid = ?1 "
                          "ORDER BY created DESC, rowid DESC LIMIT 1",
    [ST_RATE_ADD] = "INSERT INTO rates (source_uuid, target_uuid, bytes, ms, updated)"
                    " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (source_uuid, target_uuid) DO UPDATE"
                    " SET bytes = bytes + excluded.bytes, ms = ms + excluded.ms,"
                    " updated = excluded.updated",
    [ST_RATE_GET] = "SELECT bytes, ms, jobs, other_ms FROM rates"
                    " WHERE source_uuid = ?1 AND target_uuid = ?2",
    [ST_OVERHEAD_ADD] = "INSERT INTO rates (source_uuid, target_uuid, bytes, ms, jobs, other_ms,"
                        " updated) VALUES (?1, ?2, 0, 0, 1, ?3, ?4)"
                        " ON CONFLICT (source_uuid, target_uuid) DO UPDATE"
                        " SET jobs = jobs + 1, other_ms = other_ms + excluded.other_ms,"
                        " updated = excluded.updated",
    [ST_ACTION_LIST] = "SELECT key, phase, side, status, seq, started, ended, undo_started,"
                       " undo_ended, error, op_ms FROM actions WHERE job_uuid = ?1 ORDER BY seq",
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

/*
 * Creates the database file, mode 0600, when it does not exist yet: SQLite
 * would create it 0644 (less the umask), and its -wal and -shm files take the
 * database file's mode.  An existing file keeps its mode.
 */
static int create_db_file(const char *path, char *err, size_t errsz)
{
    if (strcmp(path, ":memory:") == 0)
        return 0;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    int e = errno;
    if (e == EEXIST)
        return 0;
    if (e == EROFS || e == EACCES || e == EPERM)
        mig_errf(err, errsz, "database %s cannot be written: cannot create it: %s", path,
                 strerror(e));
    else
        mig_errf(err, errsz, "cannot create database %s: %s", path, strerror(e));
    return MIG_EDB;
}

/*
 * Proves that the database takes a write (a read-only file system, a WAL
 * database whose -wal or -shm cannot be written, a full disk): migd must be
 * able to journal an action before it takes it.
 */
static int probe_write(struct mig_store *st, char *err, size_t errsz)
{
    sqlite3_stmt *s = stmt_get(st, ST_META_OPENED);
    if (s == NULL) {
        mig_errf(err, errsz, "database %s cannot be written: %s", st->path, sqlite3_errmsg(st->db));
        return MIG_EDB;
    }
    char now[32];
    mig_time_iso(mig_now_ms(), now);
    bind_text(s, 1, now);
    int rc = 0;
    if (sqlite3_step(s) != SQLITE_DONE) {
        mig_errf(err, errsz, "database %s cannot be written: %s", st->path, sqlite3_errmsg(st->db));
        rc = MIG_EDB;
    }
    stmt_done(s);
    return rc;
}

int mig_store_open(const char *path, struct mig_store **out, char *err, size_t errsz)
{
    *out = NULL;
    int rc = create_db_file(path, err, errsz);
    if (rc != 0)
        return rc;
    sqlite3 *db = NULL;
    rc = sqlite3_open_v2(path, &db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        mig_errf(err, errsz, "cannot open database %s: %s", path,
                 db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return MIG_EDB;
    }
    /* SQLite falls back to read-only when it cannot open the file for writing. */
    if (sqlite3_db_readonly(db, "main") != 0) {
        mig_errf(err, errsz,
                 "database %s cannot be written: it opens only read-only (read-only file or file"
                 " system)",
                 path);
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
    if ((rc = probe_write(st, err, errsz)) != 0) {
        mig_store_close(st);
        return rc;
    }
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

/*
 * Upserts the job's row with the cached statement; the one code path of
 * mig_store_job_save and mig_store_action_save.  0, MIG_EPARSE (the job
 * cannot be serialized) or MIG_EDB (logged).
 */
static int job_upsert(struct mig_store *st, const struct mig_job *job)
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
    bind_text(s, 9, job->evacuation[0] != '\0' ? job->evacuation : NULL);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_fail(st, "save job");
    stmt_done(s);
    return rc;
}

int mig_store_job_save(struct mig_store *st, const struct mig_job *job)
{
    return job_upsert(st, job);
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
    return rc;
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
        rc = job_from_row(st, s, 0, 1, out);
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
    /* SQLite: a negative LIMIT means none. */
    sqlite3_bind_int64(s, 4, f != NULL && f->limit > 0 ? f->limit : -1);
    sqlite3_bind_int64(s, 5, f != NULL && f->offset > 0 ? f->offset : 0);
    bind_text(s, 6, f != NULL ? f->evacuation : NULL);

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
        /* An unreadable row is logged and skipped: it must not hide the others. */
        if (job_from_row(st, s, 0, 1, &jobs[count]) == 0)
            count++;
    }
    if (step != SQLITE_DONE)
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

/* Copies a text column into buf (size bufsz), "" for NULL. */
static void copy_column(sqlite3_stmt *s, int col, char *buf, size_t bufsz)
{
    const char *t = (const char *)sqlite3_column_text(s, col);
    snprintf(buf, bufsz, "%s", t != NULL ? t : "");
}

int mig_store_job_list_bad(struct mig_store *st, struct mig_bad_job **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = stmt_get(st, ST_JOB_ALL);
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
        if (count == cap) {
            cap = cap != 0 ? cap * 2 : 4;
            struct mig_bad_job *grown = realloc(bad, cap * sizeof(*bad));
            if (grown == NULL)
                abort();
            bad = grown;
        }
        struct mig_bad_job *b = &bad[count++];
        copy_column(s, 0, b->uuid, sizeof(b->uuid));
        copy_column(s, 1, b->vm_uuid, sizeof(b->vm_uuid));
        copy_column(s, 2, b->state, sizeof(b->state));
        snprintf(b->error, sizeof(b->error), "%s", why);
    }
    int rc = step == SQLITE_DONE ? 0 : db_fail(st, "list unreadable jobs");
    stmt_done(s);
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

/* Runs one of the cached transaction statements (BEGIN, COMMIT, ROLLBACK). */
static int tx_exec(struct mig_store *st, enum stmt_id id, const char *what)
{
    sqlite3_stmt *s = stmt_get(st, id);
    if (s == NULL)
        return MIG_EDB;
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_fail(st, what);
    stmt_done(s);
    return rc;
}

/* Upserts the action row (see ST_ACTION_SAVE); 0 or MIG_EDB (logged). */
static int action_upsert(struct mig_store *st, const char *job_uuid, const char *key,
                         const char *phase, const char *side, enum mig_action_status status,
                         const char *error, int64_t op_ms)
{
    sqlite3_stmt *s = stmt_get(st, ST_ACTION_SAVE);
    if (s == NULL)
        return MIG_EDB;
    int64_t now = mig_now_ms();
    bind_text(s, 1, job_uuid);
    bind_text(s, 2, key);
    bind_text(s, 3, phase);
    bind_text(s, 4, side);
    /* Out of range binds "unknown", which the table's CHECK refuses. */
    bind_text(s, 5, mig_action_status_name(status));
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
    bind_text(s, 10, error);
    if (op_ms >= 0)
        sqlite3_bind_int64(s, 13, op_ms);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_fail(st, "save action");
    stmt_done(s);
    return rc;
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
    if (tx_exec(st, ST_BEGIN, "begin action") != 0)
        return MIG_EDB;
    /* The job first: a refused action must undo its record's change too. */
    if (job_upsert(st, job) != 0 ||
        action_upsert(st, job->uuid, key, phase, side, status, error, op_ms) != 0 ||
        tx_exec(st, ST_COMMIT, "commit action") != 0) {
        /* After a failed COMMIT the transaction is still open: roll it back too. */
        if (!sqlite3_get_autocommit(st->db))
            tx_exec(st, ST_ROLLBACK, "roll back action");
        log_error("store %s: job %s: action %s not recorded as %s", st->path, job->uuid,
                  key != NULL ? key : "(null)", mig_action_status_name(status));
        return MIG_EDB;
    }
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
    sqlite3_stmt *s = stmt_get(st, ST_ACTION_LIST);
    if (s == NULL)
        return MIG_EDB;
    bind_text(s, 1, job_uuid);
    struct mig_action_rec *recs = NULL;
    size_t count = 0, cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap != 0 ? cap * 2 : 16;
            struct mig_action_rec *grown = realloc(recs, cap * sizeof(*recs));
            if (grown == NULL)
                abort();
            recs = grown;
        }
        struct mig_action_rec *r = &recs[count++];
        memset(r, 0, sizeof(*r));
        copy_column(s, 0, r->key, sizeof(r->key));
        copy_column(s, 1, r->phase, sizeof(r->phase));
        copy_column(s, 2, r->side, sizeof(r->side));
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
        copy_column(s, 9, r->error, sizeof(r->error));
        r->op_ms = sqlite3_column_type(s, 10) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 10);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = db_fail(st, "read actions");
    stmt_done(s);
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
    return sqlite3_column_type(s, col) == SQLITE_NULL ? json_null() : time_column(s, col);
}

json_t *mig_store_actions_json(struct mig_store *st, const char *job_uuid)
{
    sqlite3_stmt *s = stmt_get(st, ST_ACTION_LIST);
    if (s == NULL)
        return NULL;
    bind_text(s, 1, job_uuid);
    json_t *a = json_array();
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        bool ended = sqlite3_column_type(s, 6) != SQLITE_NULL;
        bool started = sqlite3_column_type(s, 5) != SQLITE_NULL;
        json_t *duration =
            started && ended ? json_integer(sqlite3_column_int64(s, 6) - sqlite3_column_int64(s, 5))
                             : json_null();
        json_t *error = sqlite3_column_type(s, 9) == SQLITE_NULL ? json_null() : text_column(s, 9);
        json_t *op = sqlite3_column_type(s, 10) == SQLITE_NULL ? json_null()
                                                                : json_integer(sqlite3_column_int64(s, 10));
        json_array_append_new(
            a, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "action",
                         text_column(s, 0), "phase", text_column(s, 1), "side", text_column(s, 2),
                         "status", text_column(s, 3), "started", time_or_null(s, 5), "ended",
                         time_or_null(s, 6), "duration_ms", duration, "op_ms", op,
                         "undo_started", time_or_null(s, 7), "undo_ended", time_or_null(s, 8),
                         "error", error));
    }
    if (rc != SQLITE_DONE) {
        db_fail(st, "read actions");
        json_decref(a);
        a = NULL;
    }
    stmt_done(s);
    return a;
}

/*
 * Reads the pid written in the lock file fd; 0 when it holds none.  Used
 * when F_GETLK cannot name the holder.
 */
static long lock_file_pid(int fd)
{
    char buf[32];
    ssize_t len = pread(fd, buf, sizeof(buf) - 1, 0);
    if (len <= 0)
        return 0;
    buf[len] = '\0';
    char *end = NULL;
    long pid = strtol(buf, &end, 10);
    return end != buf && pid > 0 ? pid : 0;
}

int mig_store_lock(const char *db_path, int *fd, long *holder, char *err, size_t errsz)
{
    *fd = -1;
    *holder = 0;
    char *lock_path = mig_asprintf("%s.lock", db_path);
    int lfd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lfd < 0) {
        int e = errno;
        mig_errf(err, errsz, "cannot open lock file %s: %s", lock_path, strerror(e));
        free(lock_path);
        return -e;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(lfd, F_SETLK, &fl) != 0) {
        int e = errno;
        if (e == EAGAIN || e == EACCES) {
            /* The holder may have let go since: then its pid is gone too. */
            struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
            long pid = 0;
            if (fcntl(lfd, F_GETLK, &q) == 0 && q.l_type != F_UNLCK && q.l_pid > 0)
                pid = (long)q.l_pid;
            else
                pid = lock_file_pid(lfd);
            *holder = pid;
            if (pid > 0)
                mig_errf(err, errsz, "database %s is in use by another migd (pid %ld)", db_path,
                         pid);
            else
                mig_errf(err, errsz, "database %s is in use by another migd (pid unknown)",
                         db_path);
            close(lfd);
            free(lock_path);
            return -EBUSY;
        }
        mig_errf(err, errsz, "cannot lock %s: %s", lock_path, strerror(e));
        close(lfd);
        free(lock_path);
        return -e;
    }
    /* Ours now: replace whatever pid an earlier holder left. */
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    errno = EIO; /* what a short write reports */
    if (ftruncate(lfd, 0) != 0 || pwrite(lfd, pid, (size_t)len, 0) != (ssize_t)len) {
        int e = errno;
        mig_errf(err, errsz, "cannot write lock file %s: %s", lock_path, strerror(e));
        close(lfd);
        free(lock_path);
        return -e;
    }
    free(lock_path);
    *fd = lfd;
    return 0;
}

/* ---- evacuations and rates ---- */

int mig_store_evac_save(struct mig_store *st, json_t *evac)
{
    sqlite3_stmt *s = stmt_get(st, ST_EVAC_SAVE);
    if (s == NULL)
        return MIG_EDB;
    char *text = json_dumps(evac, JSON_COMPACT);
    if (text == NULL)
        return MIG_EPARSE;
    int64_t now = mig_now_ms();
    json_t *created = json_object_get(evac, "created_ms");
    bind_text(s, 1, json_string_value(json_object_get(evac, "uuid")));
    bind_text(s, 2, json_string_value(json_object_get(evac, "server_uuid")));
    bind_text(s, 3, json_string_value(json_object_get(evac, "state")));
    sqlite3_bind_int64(s, 4, json_is_integer(created) ? json_integer_value(created) : now);
    sqlite3_bind_int64(s, 5, now);
    sqlite3_bind_text(s, 6, text, -1, free);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_fail(st, "save evacuation");
    stmt_done(s);
    return rc;
}

/* Runs a statement whose rows are JSON records; appends each to out. */
static int evac_rows(struct mig_store *st, sqlite3_stmt *s, json_t *out)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(s, 0);
        json_t *j = text != NULL ? json_loads(text, 0, NULL) : NULL;
        if (j == NULL) {
            log_error("store %s: an evacuation record is unreadable", st->path);
            continue;
        }
        json_array_append_new(out, j);
    }
    int ret = rc == SQLITE_DONE ? 0 : db_fail(st, "read evacuations");
    stmt_done(s);
    return ret;
}

json_t *mig_store_evac_load(struct mig_store *st, const char *uuid)
{
    sqlite3_stmt *s = stmt_get(st, ST_EVAC_LOAD);
    if (s == NULL)
        return NULL;
    bind_text(s, 1, uuid);
    json_t *a = json_array();
    json_t *one = NULL;
    if (evac_rows(st, s, a) == 0 && json_array_size(a) == 1)
        one = json_incref(json_array_get(a, 0));
    json_decref(a);
    return one;
}

json_t *mig_store_evac_list(struct mig_store *st)
{
    sqlite3_stmt *s = stmt_get(st, ST_EVAC_LIST);
    if (s == NULL)
        return NULL;
    json_t *a = json_array();
    if (evac_rows(st, s, a) != 0) {
        json_decref(a);
        return NULL;
    }
    return a;
}

json_t *mig_store_evac_latest(struct mig_store *st, const char *server_uuid)
{
    sqlite3_stmt *s = stmt_get(st, ST_EVAC_OF_SERVER);
    if (s == NULL)
        return NULL;
    bind_text(s, 1, server_uuid);
    json_t *a = json_array();
    json_t *one = NULL;
    if (evac_rows(st, s, a) == 0 && json_array_size(a) == 1)
        one = json_incref(json_array_get(a, 0));
    json_decref(a);
    return one;
}

int mig_store_rate_add(struct mig_store *st, const char *source, const char *target,
                       int64_t bytes, int64_t ms)
{
    if (bytes <= 0 || ms <= 0)
        return 0;
    sqlite3_stmt *s = stmt_get(st, ST_RATE_ADD);
    if (s == NULL)
        return MIG_EDB;
    bind_text(s, 1, source);
    bind_text(s, 2, target);
    sqlite3_bind_int64(s, 3, bytes);
    sqlite3_bind_int64(s, 4, ms);
    sqlite3_bind_int64(s, 5, mig_now_ms());
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_fail(st, "add rate");
    stmt_done(s);
    return rc;
}

int mig_store_overhead_add(struct mig_store *st, const char *source, const char *target,
                           int64_t ms)
{
    if (ms < 0)
        return 0;
    sqlite3_stmt *s = stmt_get(st, ST_OVERHEAD_ADD);
    if (s == NULL)
        return MIG_EDB;
    bind_text(s, 1, source);
    bind_text(s, 2, target);
    sqlite3_bind_int64(s, 3, ms);
    sqlite3_bind_int64(s, 4, mig_now_ms());
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_fail(st, "add job overhead");
    stmt_done(s);
    return rc;
}

void mig_store_rate(struct mig_store *st, const char *source, const char *target,
                    struct mig_rate *out)
{
    out->bytes_s = -1;
    out->overhead_ms = -1;
    sqlite3_stmt *s = stmt_get(st, ST_RATE_GET);
    if (s == NULL)
        return;
    bind_text(s, 1, source);
    bind_text(s, 2, target);
    if (sqlite3_step(s) == SQLITE_ROW) {
        int64_t bytes = sqlite3_column_int64(s, 0), ms = sqlite3_column_int64(s, 1);
        int64_t jobs = sqlite3_column_int64(s, 2), other = sqlite3_column_int64(s, 3);
        if (ms > 0)
            out->bytes_s = bytes * 1000 / ms;
        if (jobs > 0)
            out->overhead_ms = other / jobs;
    }
    stmt_done(s);
}
