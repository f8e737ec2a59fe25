/*
 * store.c: migd's SQLite store (see store.h), its frame: opens the database
 * in WAL mode, applies the embedded schema steps, refuses a database it
 * cannot write, keeps the statement cache and runs transactions; it also
 * takes the daemon's lock file beside the database.  What the rows hold is
 * store_jobs.c's (jobs, log, action journal, leftovers) and store_evac.c's
 * (evacuations, rates).  Every statement is a constant text with bound
 * parameters, listed in stmt_sql[] below, prepared once and cached for the
 * life of the store: one table shows every SQL statement migd runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "invariant.h"
#include "log.h"
#include "schema.h"
#include "store.h"
#include "store_int.h"
#include "util.h"

#define STORE_BUSY_TIMEOUT_MS 5000

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
                    " evacuation_uuid, leftovers, leftover_due, cleanup_due)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                    " ON CONFLICT (uuid) DO UPDATE SET vm_uuid = excluded.vm_uuid,"
                    " state = excluded.state, phase = excluded.phase, mode = excluded.mode,"
                    " created = excluded.created, updated = excluded.updated,"
                    " record = excluded.record, evacuation_uuid = excluded.evacuation_uuid,"
                    " leftovers = excluded.leftovers, leftover_due = excluded.leftover_due,"
                    " cleanup_due = excluded.cleanup_due",
    [ST_LEFTOVER_DUE] = "SELECT uuid FROM jobs WHERE leftover_due IS NOT NULL"
                        " AND leftover_due <= ?1 ORDER BY leftover_due LIMIT ?2",
    [ST_CLEANUP_DUE] = "SELECT uuid FROM jobs WHERE cleanup_due IS NOT NULL"
                       " AND cleanup_due <= ?1 ORDER BY cleanup_due LIMIT ?2",
    [ST_LEFTOVER_COUNT] = "SELECT coalesce(sum(leftovers), 0) FROM jobs"
                          " WHERE leftover_due IS NOT NULL",
    [ST_JOB_LOAD] = "SELECT uuid, record FROM jobs WHERE uuid = ?1",
    [ST_JOB_LIST] = "SELECT uuid, record FROM jobs"
                    " WHERE (?1 IS NULL OR state = ?1)"
                    " AND (?2 IS NULL OR vm_uuid = ?2)"
                    " AND (?3 IS NULL OR state IN (SELECT value FROM json_each(?3)))"
                    " AND (?6 IS NULL OR evacuation_uuid = ?6)"
                    " ORDER BY created, rowid LIMIT ?4 OFFSET ?5",
    /*
     * The same list when it is only of some states (one state, or the
     * unfinished ones): written so that SQLite walks the (state, created)
     * index instead of every row (56 ms against 0.8 ms with 20,000 jobs, on
     * the loop, for every migctl list and every schedule).
     */
    [ST_JOB_LIST_STATES] = "SELECT uuid, record FROM jobs"
                           " WHERE state IN (SELECT value FROM json_each(?3))"
                           " AND (?2 IS NULL OR vm_uuid = ?2)"
                           " AND (?6 IS NULL OR evacuation_uuid = ?6)"
                           " ORDER BY created, rowid LIMIT ?4 OFFSET ?5",
    [ST_JOB_ALL] = "SELECT uuid, vm_uuid, state, record FROM jobs ORDER BY created, rowid",
    [ST_JOB_HOLDING] = "SELECT uuid FROM jobs WHERE vm_uuid = ?1"
                       " AND state IN (SELECT value FROM json_each(?2))"
                       " ORDER BY created, rowid LIMIT 1",
    [ST_LOG_INSERT] = "INSERT INTO job_log (job_uuid, time, level, msg) VALUES (?1, ?2, ?3, ?4)",
    [ST_LOG_LIST] = "SELECT time, level, msg FROM job_log WHERE job_uuid = ?1 ORDER BY id",
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
    MIG_INVARIANT(text != NULL && strlen(text) < outsz, "a list of %zu states does not fit %zu bytes",
                  json_array_size(a), outsz);
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
 * line) when SQLite refuses it.  The caller resets it with store_stmt_done.
 */
sqlite3_stmt *store_stmt_get(struct mig_store *st, enum stmt_id id)
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
void store_stmt_done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

/*
 * Every list the store reads has one shape: step until done, one JSON value
 * per row; a failed step must drop what was read, not hand out half a list.
 */
json_t *store_rows_json(struct mig_store *st, enum stmt_id id, const char *key,
                        json_t *(*row)(struct mig_store *st, sqlite3_stmt *s), const char *what)
{
    sqlite3_stmt *s = store_stmt_get(st, id);
    if (s == NULL)
        return NULL;
    if (key != NULL)
        store_bind_text(s, 1, key);
    json_t *a = json_array();
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *v = row(st, s);
        if (v != NULL)
            json_array_append_new(a, v);
    }
    if (rc != SQLITE_DONE) {
        store_db_fail(st, what);
        json_decref(a);
        a = NULL;
    }
    store_stmt_done(s);
    return a;
}

/* Binds text, or NULL when s is NULL.  SQLITE_TRANSIENT: s may not outlive the call. */
int store_bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v == NULL)
        return sqlite3_bind_null(s, i);
    return sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

/* Logs a failed statement and returns MIG_EDB. */
int store_db_fail(struct mig_store *st, const char *what)
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

/* The files SQLite keeps for a WAL database: the database, its -wal and -shm. */
static const char *const db_suffixes[] = {"", "-wal", "-shm"};

/*
 * Makes the database's files private: creates the database 0600 when it
 * does not exist yet (SQLite would create it 0644 less the umask), and takes
 * group and other access (and execute) from the files an older migd, an
 * operator or a restore left (SQLite gives -wal and -shm the database's
 * mode when it creates them, so those follow).  A read-only file stays
 * read-only, and a read-only file system is left to the open's own refusal.
 */
static int db_files_private(const char *path, char *err, size_t errsz)
{
    if (strcmp(path, ":memory:") == 0)
        return 0;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
    } else if (errno != EEXIST) {
        int e = errno;
        if (e == EROFS || e == EACCES || e == EPERM)
            mig_errf(err, errsz, "database %s cannot be written: cannot create it: %s", path,
                     strerror(e));
        else
            mig_errf(err, errsz, "cannot create database %s: %s", path, strerror(e));
        return MIG_EDB;
    }
    for (size_t i = 0; i < sizeof(db_suffixes) / sizeof(db_suffixes[0]); i++) {
        char *p = mig_asprintf("%s%s", path, db_suffixes[i]);
        struct stat sb;
        int rc = 0;
        if (stat(p, &sb) == 0 && (sb.st_mode & 0177) != 0) {
            mode_t want = sb.st_mode & 0600;
            if (chmod(p, want) == 0) {
                log_info("database file %s had mode %03o: now %03o", p,
                         (unsigned)(sb.st_mode & 0777), (unsigned)want);
            } else if (errno != EROFS) {
                mig_errf(err, errsz, "cannot make %s private (mode %03o): %s", p,
                         (unsigned)(sb.st_mode & 0777), strerror(errno));
                rc = MIG_EDB;
            }
        }
        free(p);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/*
 * Proves that the database takes a write (a read-only file system, a WAL
 * database whose -wal or -shm cannot be written, a full disk): migd must be
 * able to journal an action before it takes it.
 */
static int probe_write(struct mig_store *st, char *err, size_t errsz)
{
    sqlite3_stmt *s = store_stmt_get(st, ST_META_OPENED);
    if (s == NULL) {
        mig_errf(err, errsz, "database %s cannot be written: %s", st->path, sqlite3_errmsg(st->db));
        return MIG_EDB;
    }
    char now[32];
    mig_time_iso(mig_now_ms(), now);
    store_bind_text(s, 1, now);
    int rc = 0;
    if (sqlite3_step(s) != SQLITE_DONE) {
        mig_errf(err, errsz, "database %s cannot be written: %s", st->path, sqlite3_errmsg(st->db));
        rc = MIG_EDB;
    }
    store_stmt_done(s);
    return rc;
}

/* mig_store_open's body, run under a umask that keeps what it creates private. */
static int store_open(const char *path, struct mig_store **out, char *err, size_t errsz)
{
    *out = NULL;
    int rc = db_files_private(path, err, errsz);
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
    /*
     * FULL: in WAL mode, NORMAL lets a power loss roll back the last
     * commits, and a journal entry is our proof that an action ran; FULL
     * syncs the WAL at every commit (tests/bench/bench_store.c measures
     * the cost).  secure_delete: a job's private key, once removed from
     * its record, is zeroed in the freed space instead of lingering there.
     */
    if (exec_simple(db, "PRAGMA foreign_keys = ON", path, err, errsz) != 0 ||
        exec_simple(db, "PRAGMA synchronous = FULL", path, err, errsz) != 0 ||
        exec_simple(db, "PRAGMA secure_delete = ON", path, err, errsz) != 0) {
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
    /* A crash may have come between a key's removal and its wipe (key_wipe). */
    (void)mig_store_checkpoint(st);
    *out = st;
    return 0;
}

int mig_store_open(const char *path, struct mig_store **out, char *err, size_t errsz)
{
    /*
     * SQLite creates -wal and -shm at its first read, with the database's
     * mode; the umask makes sure nothing it creates is ever wider.  The
     * umask is the process's: migd opens its store before it starts threads.
     */
    mode_t old = umask(077);
    int rc = store_open(path, out, err, errsz);
    umask(old);
    return rc;
}

int mig_store_checkpoint(struct mig_store *st)
{
    int wal_frames = 0, done_frames = 0;
    int rc = sqlite3_wal_checkpoint_v2(st->db, "main", SQLITE_CHECKPOINT_TRUNCATE, &wal_frames,
                                       &done_frames);
    if (rc == SQLITE_OK)
        return 0;
    if ((rc & 0xff) == SQLITE_BUSY) {
        log_warn("store %s: checkpoint: a reader holds the WAL (%d of %d frames copied)", st->path,
                 done_frames, wal_frames);
        return -EBUSY;
    }
    return store_db_fail(st, "checkpoint");
}

void mig_store_close(struct mig_store *st)
{
    if (st == NULL)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(st->stmt[i]);
    if (sqlite3_close(st->db) != SQLITE_OK)
        log_error("store %s: close: %s", st->path, sqlite3_errmsg(st->db));
    free(st->keyed);
    free(st->path);
    free(st);
}

int mig_store_synchronous(struct mig_store *st)
{
    sqlite3_stmt *s = NULL;
    int level = MIG_EDB;
    if (sqlite3_prepare_v2(st->db, "PRAGMA synchronous", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        level = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return level;
}

int mig_store_set_synchronous(struct mig_store *st, int level)
{
    /* PRAGMA takes no bound parameters: the text is ours, from a fixed pair. */
    const char *sql = level == 1 ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL";
    char err[256];
    return exec_simple(st->db, sql, st->path, err, sizeof(err));
}

int mig_store_version(struct mig_store *st)
{
    int v = -1;
    if (read_user_version(st->db, &v) != 0)
        return MIG_EDB;
    return v;
}

/* Runs one of the cached transaction statements (BEGIN, COMMIT, ROLLBACK). */
int store_tx_exec(struct mig_store *st, enum stmt_id id, const char *what)
{
    sqlite3_stmt *s = store_stmt_get(st, id);
    if (s == NULL)
        return MIG_EDB;
    return store_step_done(st, s, what);
}

/* Every write of the store is one step that must end the statement: one place says so. */
int store_step_done(struct mig_store *st, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : store_db_fail(st, what);
    store_stmt_done(s);
    return rc;
}

/* --- column readers shared by the store's files ---------------------------- */

/* Copies a text column into buf (size bufsz), "" for NULL. */
void store_copy_column(sqlite3_stmt *s, int col, char *buf, size_t bufsz)
{
    const char *t = (const char *)sqlite3_column_text(s, col);
    snprintf(buf, bufsz, "%s", t != NULL ? t : "");
}

/* The ISO 8601 form of a ms column, as a new JSON string. */
json_t *store_time_column(sqlite3_stmt *s, int col)
{
    char iso[32];
    mig_time_iso(sqlite3_column_int64(s, col), iso);
    return json_string(iso);
}

/* A text column as a new JSON string ("" for NULL or invalid UTF-8). */
json_t *store_text_column(sqlite3_stmt *s, int col)
{
    const char *t = (const char *)sqlite3_column_text(s, col);
    int len = sqlite3_column_bytes(s, col);
    json_t *j = t != NULL ? json_stringn(t, (size_t)len) : NULL;
    return j != NULL ? j : json_string("");
}

/* --- the lock file ------------------------------------------------------- */

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
    /* Ours now: private, whatever mode it was left with, and with our pid only. */
    struct stat sb;
    if (fstat(lfd, &sb) == 0 && (sb.st_mode & 077) != 0 && fchmod(lfd, 0600) != 0)
        log_warn("lock file %s: cannot make it private: %s", lock_path, strerror(errno));
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
