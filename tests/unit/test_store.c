/*
 * test_store.c: the SQLite store against real database files in a fresh
 * temporary directory: schema creation and versioning, job round trips and
 * queries, the log, WAL mode, bound parameters, the action
 * journal and its atomicity, the lock file, the files' modes (new and
 * existing), a private key wiped from the files once its record forgets
 * it, unreadable job rows, and the refusal of a database that cannot be
 * written.
 */
#ifdef __linux__
#define _GNU_SOURCE /* unshare(2), for the read-only mount test */
#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#endif
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "err.h"
#include "job_record.h"
#include "log.h"
#include "schema.h"
#include "store.h"
#include "json_expect.h"
#include "unit.h"

struct fixture {
    char dir[64];
    char path[128];
    struct mig_store *st;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_store.XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(fx->path, sizeof(fx->path), "%s/migd.sqlite", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    mig_store_close(fx->st);
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal", ".lock"};
    char p[160];
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", fx->path, suffixes[i]);
        unlink(p);
    }
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* Opens the store of the test's fixture (*state), failing the test on error. */
static struct mig_store *open_ok(void **state)
{
    struct fixture *fx = *state;
    char err[256] = "";
    int rc = mig_store_open(fx->path, &fx->st, err, sizeof(err));
    if (rc != 0)
        fail_msg("mig_store_open: %s (%s)", err, mig_strerror(rc));
    return fx->st;
}

/* Runs sql on the file with a separate connection; returns the first column of the first row as an
 * int. */
static int raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    int v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

/* How many of names (an SQL list: "('a', 'b')") the database has of type (table, index). */
static int schema_count(const char *path, const char *type, const char *names)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM sqlite_master WHERE type = '%s' AND name IN %s", type, names);
    return raw_int(path, sql);
}

/* A job with every field set to something other than its default. */
static struct mig_job *full_job(const char *vm_uuid, enum mig_job_state state, int64_t created)
{
    struct mig_job *j = mig_job_new();
    snprintf(j->vm_uuid, sizeof(j->vm_uuid), "%s", vm_uuid);
    j->vm_alias = strdup("web-01");
    snprintf(j->brand, sizeof(j->brand), "joyent");
    snprintf(j->source_server_uuid, sizeof(j->source_server_uuid),
             "44454c4c-3200-1042-8050-b4c04f383432");
    snprintf(j->target_server_uuid, sizeof(j->target_server_uuid),
             "44454c4c-3400-1042-8050-b4c04f383432");
    j->source_hostname = strdup("cn1");
    j->target_hostname = strdup("cn2");
    j->mode = MIG_MODE_INCREMENTAL;
    j->state = state;
    j->phase = MIG_PHASE_SYNC;
    j->progress.bytes_sent = 123456789012LL;
    j->progress.bytes_total = 223456789012LL;
    j->progress.rate_bytes_s = 98765;
    j->progress.eta_s = 42;
    j->progress.increments = 3;
    j->vm_was_running = 1;
    j->downtime_ms = 1500;
    j->created = created;
    j->started = created + 1000;
    j->finish_requested = true;
    j->cleanup_source = true;
    snprintf(j->ctx.source_ip, sizeof(j->ctx.source_ip), "10.0.0.5");
    j->ctx.ndatasets = 2;
    snprintf(j->ctx.datasets[0].name, sizeof(j->ctx.datasets[0].name), "zones/%s", vm_uuid);
    snprintf(j->ctx.datasets[0].origin, sizeof(j->ctx.datasets[0].origin), "zones/img@final");
    j->ctx.datasets[0].used = 10737418240LL;
    snprintf(j->ctx.datasets[1].name, sizeof(j->ctx.datasets[1].name), "zones/%s-disk0", vm_uuid);
    j->ctx.nnics = 1;
    snprintf(j->ctx.nics[0].mac, sizeof(j->ctx.nics[0].mac), "90:b8:d0:01:02:00");
    snprintf(j->ctx.nics[0].ip, sizeof(j->ctx.nics[0].ip), "10.0.0.5");
    j->ctx.nics[0].reserved_before = 0;
    j->ctx.rounds = 2;
    j->ctx.last_delta = 4096;
    mig_job_set_zonecfg(j, "create -b\nset zonepath=/zones/web-01\n");
    return j;
}

/* full_job(vm_uuid, state, created), saved in st; fails the test when the save does. */
static struct mig_job *saved_job(struct mig_store *st, const char *vm_uuid,
                                 enum mig_job_state state, int64_t created)
{
    struct mig_job *j = full_job(vm_uuid, state, created);
    assert_int_equal(mig_store_job_save(st, j), 0);
    return j;
}

static void assert_same_job(const struct mig_job *a, const struct mig_job *b)
{
    json_t *ra = mig_job_to_record(a);
    json_t *rb = mig_job_to_record(b);
    if (!json_equal(ra, rb)) {
        char *sa = json_dumps(ra, JSON_SORT_KEYS), *sb = json_dumps(rb, JSON_SORT_KEYS);
        print_error("saved:  %s\nloaded: %s\n", sa, sb);
        free(sa);
        free(sb);
        fail();
    }
    json_decref(ra);
    json_decref(rb);
}

/* The job stored under want's uuid loads, and is want. */
static void assert_stored(struct mig_store *st, const struct mig_job *want)
{
    struct mig_job *got = NULL;
    assert_int_equal(mig_store_job_load(st, want->uuid, &got), 0);
    assert_same_job(want, got);
    mig_job_free(got);
}

#define VM_A "aaaaaaaa-0000-4000-8000-000000000001"
#define VM_B "bbbbbbbb-0000-4000-8000-000000000002"

static void test_open_creates_schema(void **state)
{
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(state);
    assert_true(mig_store_schema_latest() >= 1);
    assert_int_equal(mig_store_schema_latest(), mig_schema_nsteps);
    assert_int_equal(mig_store_version(st), mig_store_schema_latest());
    assert_int_equal(
        schema_count(fx->path, "table", "('jobs', 'actions', 'job_log', 'evacuations')"), 4);
    /* 006 dropped the step history and events nothing wrote. */
    assert_int_equal(schema_count(fx->path, "table", "('steps', 'events')"), 0);
    assert_int_equal(schema_count(fx->path, "index", "('jobs_vm_state')"), 1);
}

static void test_reopen_is_idempotent(void **state)
{
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(state);
    struct mig_job *j = saved_job(st, VM_A, MIG_JOB_RUNNING, 1000);
    mig_store_close(st);
    fx->st = NULL;

    st = open_ok(state);
    assert_int_equal(mig_store_version(st), mig_store_schema_latest());
    assert_stored(st, j);
    mig_job_free(j);
}

static void test_newer_database_refused(void **state)
{
    struct fixture *fx = *state;
    int newer = mig_store_schema_latest() + 2;
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", newer);
    raw_int(fx->path, sql);
    assert_int_equal(raw_int(fx->path, "PRAGMA user_version"), newer);

    char err[256] = "", want[200];
    struct mig_store *st = (struct mig_store *)&err; /* must be reset to NULL */
    assert_int_equal(mig_store_open(fx->path, &st, err, sizeof(err)), MIG_ESCHEMA);
    assert_null(st);
    snprintf(want, sizeof(want), "database %s is at schema version %d but this migd knows only %d",
             fx->path, newer, mig_store_schema_latest());
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "upgrade migd"));
    assert_null(strchr(err, '\n'));
    /* Refused without being touched. */
    assert_int_equal(raw_int(fx->path, "PRAGMA user_version"), newer);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM sqlite_master"), 0);
}

static void test_not_a_database(void **state)
{
    struct fixture *fx = *state;
    FILE *f = fopen(fx->path, "w");
    assert_non_null(f);
    for (int i = 0; i < 64; i++)
        fputs("this is not an SQLite database, ", f);
    fclose(f);
    char err[256] = "";
    struct mig_store *st = NULL;
    assert_int_equal(mig_store_open(fx->path, &st, err, sizeof(err)), MIG_EDB);
    assert_null(st);
    assert_non_null(strstr(err, fx->path));
}

static void test_job_round_trip(void **state)
{
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(state);
    struct mig_job *j = full_job(VM_A, MIG_JOB_FAILED, 5000);
    mig_job_set_error(j, "SendFailed", "zfs send exited 1");
    j->finished = 9000;
    assert_int_equal(mig_store_job_save(st, j), 0);

    struct mig_job *got = NULL;
    assert_int_equal(mig_store_job_load(st, j->uuid, &got), 0);
    assert_non_null(got);
    assert_string_equal(got->uuid, j->uuid);
    assert_string_equal(got->vm_uuid, VM_A);
    assert_string_equal(got->vm_alias, "web-01");
    assert_int_equal(got->state, MIG_JOB_FAILED);
    assert_int_equal(got->mode, MIG_MODE_INCREMENTAL);
    assert_int_equal(got->progress.bytes_sent, 123456789012LL);
    assert_true(got->finish_requested);
    assert_true(got->cleanup_source);
    assert_false(got->dry_run);
    assert_int_equal(got->ctx.ndatasets, 2);
    assert_int_equal(got->ctx.datasets[0].used, 10737418240LL);
    assert_string_equal(got->ctx.datasets[1].name, "zones/" VM_A "-disk0");
    assert_string_equal(got->ctx.nics[0].ip, "10.0.0.5");
    assert_int_equal(got->ctx.nics[0].reserved_before, 0);
    assert_string_equal(got->ctx.zonecfg, "create -b\nset zonepath=/zones/web-01\n");
    assert_same_job(j, got);
    mig_job_free(got);

    /* Saving again replaces the row, it does not add one. */
    j->state = MIG_JOB_RUNNING;
    j->ctx.rounds = 3;
    assert_int_equal(mig_store_job_save(st, j), 0);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM jobs"), 1);
    assert_int_equal(mig_store_job_load(st, j->uuid, &got), 0);
    assert_int_equal(got->state, MIG_JOB_RUNNING);
    assert_int_equal(got->ctx.rounds, 3);
    mig_job_free(got);
    mig_job_free(j);

    got = (struct mig_job *)&got;
    assert_int_equal(mig_store_job_load(st, "00000000-0000-4000-8000-000000000000", &got), -ENOENT);
    assert_null(got);
}

/* The uuids of the listed jobs, in order, joined by spaces (caller frees). */
static char *list_vm_states(struct mig_store *st, const char *state, const char *vm, int all)
{
    struct mig_job_filter f = {.state = state, .vm_uuid = vm, .all = all};
    struct mig_job **jobs = NULL;
    size_t n = 99;
    assert_int_equal(mig_store_job_list(st, &f, &jobs, &n), 0);
    char *out = calloc(1, 1024);
    for (size_t i = 0; i < n; i++) {
        snprintf(out + strlen(out), 1024 - strlen(out), "%s%s/%s", i ? " " : "",
                 jobs[i]->vm_uuid[0] == 'a' ? "A" : "B", mig_job_state_name(jobs[i]->state));
        mig_job_free(jobs[i]);
    }
    free(jobs);
    return out;
}

static void check_list(struct mig_store *st, const char *state, const char *vm, int all,
                       const char *want)
{
    char *got = list_vm_states(st, state, vm, all);
    assert_string_equal(got, want);
    free(got);
}

static void test_job_list_filters(void **state)
{
    struct mig_store *st = open_ok(state);
    /* Saved out of creation order: the list must sort oldest first. */
    struct {
        const char *vm;
        enum mig_job_state state;
        int64_t created;
    } rows[] = {
        {VM_B, MIG_JOB_RUNNING, 4000}, {VM_A, MIG_JOB_SUCCEEDED, 1000},
        {VM_A, MIG_JOB_FAILED, 2000},  {VM_A, MIG_JOB_QUEUED, 5000},
        {VM_B, MIG_JOB_ABORTED, 3000}, {VM_B, MIG_JOB_SWITCHED, 6000},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct mig_job *j = saved_job(st, rows[i].vm, rows[i].state, rows[i].created);
        mig_job_free(j);
    }
    check_list(st, NULL, NULL, 0, "B/running A/queued B/switched");
    check_list(st, NULL, NULL, 1, "A/succeeded A/failed B/aborted B/running A/queued B/switched");
    check_list(st, "failed", NULL, 0, "A/failed");
    check_list(st, "running", NULL, 1, "B/running");
    check_list(st, NULL, VM_A, 0, "A/queued");
    check_list(st, NULL, VM_A, 1, "A/succeeded A/failed A/queued");
    check_list(st, "aborted", VM_B, 0, "B/aborted");
    check_list(st, "aborted", VM_A, 1, "");
    check_list(st, "waiting", NULL, 1, "");

    /* NULL filter: unfinished jobs. */
    struct mig_job **jobs = NULL;
    size_t n = 0;
    assert_int_equal(mig_store_job_list(st, NULL, &jobs, &n), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        mig_job_free(jobs[i]);
    free(jobs);
}

static void test_job_holding_vm(void **state)
{
    struct mig_store *st = open_ok(state);
    char holder[MIG_UUID_LEN + 1];
    assert_int_equal(mig_store_job_holding_vm(st, VM_A, holder), -ENOENT);

    struct mig_job *done = saved_job(st, VM_A, MIG_JOB_SUCCEEDED, 1000);
    struct mig_job *failed = saved_job(st, VM_A, MIG_JOB_ROLLED_BACK, 2000);
    struct mig_job *other = saved_job(st, VM_B, MIG_JOB_RUNNING, 3000);
    /* Only finished jobs for A, and B's job does not count. */
    assert_int_equal(mig_store_job_holding_vm(st, VM_A, holder), -ENOENT);
    assert_int_equal(mig_store_job_holding_vm(st, VM_B, holder), 0);
    assert_string_equal(holder, other->uuid);

    static const enum mig_job_state holding[] = {MIG_JOB_QUEUED, MIG_JOB_RUNNING, MIG_JOB_WAITING,
                                                 MIG_JOB_SWITCHED};
    struct mig_job *j = full_job(VM_A, MIG_JOB_QUEUED, 4000);
    for (size_t i = 0; i < sizeof(holding) / sizeof(holding[0]); i++) {
        j->state = holding[i];
        assert_int_equal(mig_store_job_save(st, j), 0);
        memset(holder, 'x', sizeof(holder));
        assert_int_equal(mig_store_job_holding_vm(st, VM_A, holder), 0);
        assert_string_equal(holder, j->uuid);
    }
    j->state = MIG_JOB_SUCCEEDED;
    assert_int_equal(mig_store_job_save(st, j), 0);
    assert_int_equal(mig_store_job_holding_vm(st, VM_A, holder), -ENOENT);
    mig_job_free(j);
    mig_job_free(done);
    mig_job_free(failed);
    mig_job_free(other);
}

static void test_log_order(void **state)
{
    struct mig_store *st = open_ok(state);
    struct mig_job *j = saved_job(st, VM_A, MIG_JOB_RUNNING, 1000);
    struct mig_job *k = saved_job(st, VM_B, MIG_JOB_RUNNING, 1000);

    char msg[64];
    for (int i = 0; i < 50; i++) {
        snprintf(msg, sizeof(msg), "line %d", i);
        assert_int_equal(
            mig_store_log_append(st, j->uuid, i % 2 ? MIG_LOG_WARN : MIG_LOG_INFO, msg), 0);
    }
    assert_int_equal(mig_store_log_append(st, k->uuid, MIG_LOG_ERROR, "other job"), 0);
    json_t *log = mig_store_log(st, j->uuid);
    assert_int_equal(json_array_size(log), 50);
    for (int i = 0; i < 50; i++) {
        json_t *r = json_array_get(log, (size_t)i);
        snprintf(msg, sizeof(msg), "line %d", i);
        assert_json_str(r, "msg", msg);
        assert_int_equal(json_integer_value(json_object_get(r, "level")),
                         i % 2 ? MIG_LOG_WARN : MIG_LOG_INFO);
        assert_true(json_is_string(json_object_get(r, "time")));
    }
    json_decref(log);
    log = mig_store_log(st, k->uuid);
    assert_int_equal(json_array_size(log), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(log, 0), "msg")),
                        "other job");
    json_decref(log);
    mig_job_free(j);
    mig_job_free(k);
}

static void test_rows_need_a_saved_job(void **state)
{
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(state);
    /* foreign_keys is on: the log of an unknown job is refused. */
    const char *ghost = "00000000-0000-4000-8000-000000000000";
    assert_int_equal(mig_store_log_append(st, ghost, MIG_LOG_INFO, "x"), MIG_EDB);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM job_log"), 0);
}

/* A journal entry must survive a power loss: the store's connection syncs every commit. */
static void test_synchronous_full(void **state)
{
    struct mig_store *st = open_ok(state);
    assert_int_equal(mig_store_synchronous(st), 2);
    assert_int_equal(mig_store_set_synchronous(st, 1), 0);
    assert_int_equal(mig_store_synchronous(st), 1);
}

static void test_wal_mode(void **state)
{
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(state);
    struct mig_job *j = saved_job(st, VM_A, MIG_JOB_RUNNING, 1000);
    mig_job_free(j);

    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);

    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", fx->path);
    assert_int_equal(access(wal, F_OK), 0);
}

static void test_sql_metacharacters_round_trip(void **state)
{
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(state);
    static const char nasty[] = "web'); DROP TABLE jobs; -- \"quoted\" \\ %s %n ? ?1 :x @y $z ;";
    struct mig_job *j = full_job(VM_A, MIG_JOB_RUNNING, 1000);
    free(j->vm_alias);
    j->vm_alias = strdup(nasty);
    mig_job_set_zonecfg(j, nasty);
    snprintf(j->ctx.activity, sizeof(j->ctx.activity), "%s", nasty);
    assert_int_equal(mig_store_job_save(st, j), 0);
    assert_int_equal(mig_store_log_append(st, j->uuid, MIG_LOG_INFO, nasty), 0);

    struct mig_job *got = NULL;
    assert_int_equal(mig_store_job_load(st, j->uuid, &got), 0);
    assert_string_equal(got->vm_alias, nasty);
    assert_string_equal(got->ctx.zonecfg, nasty);
    assert_string_equal(got->ctx.activity, nasty);
    assert_same_job(j, got);
    mig_job_free(got);

    json_t *log = mig_store_log(st, j->uuid);
    assert_string_equal(json_string_value(json_object_get(json_array_get(log, 0), "msg")), nasty);
    json_decref(log);

    /* Injection attempts through filter values match nothing. */
    struct mig_job_filter f = {.vm_uuid = "x' OR '1'='1", .all = 1};
    struct mig_job **jobs = NULL;
    size_t n = 99;
    assert_int_equal(mig_store_job_list(st, &f, &jobs, &n), 0);
    assert_int_equal(n, 0);
    free(jobs);
    char holder[MIG_UUID_LEN + 1];
    assert_int_equal(mig_store_job_holding_vm(st, "' OR 1=1 --", holder), -ENOENT);
    assert_int_equal(mig_store_job_load(st, "' OR 1=1 --", &got), -ENOENT);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM jobs"), 1);
    mig_job_free(j);
}

/* Runs sql (with text parameters p1, p2, either may be NULL) on the file with a separate
 * connection; returns the SQLite code of its step (SQLITE_DONE for a statement that ran). */
static int raw_exec(const char *path, const char *sql, const char *p1, const char *p2)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    if (p1 != NULL)
        sqlite3_bind_text(s, 1, p1, -1, SQLITE_TRANSIENT);
    if (p2 != NULL)
        sqlite3_bind_text(s, 2, p2, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return rc;
}

static void test_schema_2_tables(void **state)
{
    struct fixture *fx = *state;
    open_ok(state);
    assert_true(mig_store_schema_latest() >= 2);
    assert_int_equal(schema_count(fx->path, "table", "('actions', 'meta')"), 2);
    assert_int_equal(schema_count(fx->path, "index", "('actions_job_seq')"), 1);
    /* The writability probe left its row. */
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM meta WHERE key = 'opened'"
                                       " AND value LIKE '____-__-__T__:__:__.___Z'"),
                     1);
}

/* A database created by a migd that knew only schema 1 is carried to the latest, jobs kept. */
static void test_upgrade_from_schema_1(void **state)
{
    struct fixture *fx = *state;
    struct mig_job *j = full_job(VM_A, MIG_JOB_RUNNING, 1000);
    json_t *rec = mig_job_to_record(j);
    char *text = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);

    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(
        sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
        SQLITE_OK);
    assert_int_equal(mig_schema_steps[0].version, 1);
    assert_int_equal(sqlite3_exec(db, mig_schema_steps[0].sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO jobs (uuid, vm_uuid, state, phase, mode,"
                                        " created, updated, record)"
                                        " VALUES (?1, ?2, 'running', 'sync', 'incremental', 1000,"
                                        " 1000, ?3)",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(s, 1, j->uuid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, j->vm_uuid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 3, text, -1, free);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
    sqlite3_close(db);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM sqlite_master WHERE name = 'actions'"),
                     0);

    struct mig_store *st = open_ok(state);
    assert_int_equal(mig_store_version(st), mig_store_schema_latest());
    assert_stored(st, j);
    assert_int_equal(
        mig_store_action_save(st, j, "sync.send@1#0", "sync", "source", MIG_ACTION_STARTED, NULL),
        0);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM actions"), 1);
    mig_job_free(j);
}

static void test_action_status_names(void **state)
{
    (void)state;
    static const char *const names[] = {"started", "done", "failed", "undo_started", "undone"};
    assert_int_equal(sizeof(names) / sizeof(names[0]), MIG_ACTION_NSTATUS);
    for (int i = 0; i < MIG_ACTION_NSTATUS; i++) {
        enum mig_action_status got = MIG_ACTION_NSTATUS;
        assert_string_equal(mig_action_status_name((enum mig_action_status)i), names[i]);
        assert_int_equal(mig_action_status_parse(names[i], &got), 0);
        assert_int_equal(got, i);
    }
    assert_string_equal(mig_action_status_name(MIG_ACTION_NSTATUS), "unknown");
    assert_string_equal(mig_action_status_name((enum mig_action_status) - 1), "unknown");
    enum mig_action_status out = MIG_ACTION_DONE;
    assert_int_equal(mig_action_status_parse("unknown", &out), -EINVAL);
    assert_int_equal(mig_action_status_parse("Started", &out), -EINVAL);
    assert_int_equal(mig_action_status_parse("", &out), -EINVAL);
    assert_int_equal(mig_action_status_parse(NULL, &out), -EINVAL);
    assert_int_equal(out, MIG_ACTION_DONE);
}

/* Reads the job's journal and returns the row for key (the array is kept in *recs). */
static struct mig_action_rec *action_row(struct mig_store *st, const char *job_uuid,
                                         const char *key, struct mig_action_rec **recs, size_t *n)
{
    free(*recs);
    *recs = NULL;
    assert_int_equal(mig_store_actions(st, job_uuid, recs, n), 0);
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*recs)[i].key, key) == 0)
            return &(*recs)[i];
    }
    fail_msg("action %s not in the journal of %s", key, job_uuid);
    return NULL;
}

static void test_action_journal_round_trip(void **state)
{
    struct mig_store *st = open_ok(state);
    struct mig_job *j = full_job(VM_A, MIG_JOB_RUNNING, 1000);
    struct mig_job *k = full_job(VM_B, MIG_JOB_RUNNING, 2000);
    assert_int_equal(mig_store_job_save(st, j), 0);
    struct mig_action_rec *recs = NULL, *r;
    size_t n = 99;

    /* started: row created with seq 1, started stamped, nothing ended. */
    int64_t before = mig_now_ms();
    assert_int_equal(mig_store_action_save(st, j, "prepare.snapshot", "prepare", "source",
                                           MIG_ACTION_STARTED, NULL),
                     0);
    int64_t after = mig_now_ms();
    r = action_row(st, j->uuid, "prepare.snapshot", &recs, &n);
    assert_int_equal(n, 1);
    assert_string_equal(r->phase, "prepare");
    assert_string_equal(r->side, "source");
    assert_int_equal(r->status, MIG_ACTION_STARTED);
    assert_int_equal(r->seq, 1);
    assert_in_range(r->started_ms, before, after);
    assert_int_equal(r->ended_ms, 0);
    assert_int_equal(r->undo_started_ms, 0);
    assert_int_equal(r->undo_ended_ms, 0);
    assert_string_equal(r->error, "");
    int64_t started1 = r->started_ms;

    /* done: the job's record is saved with it; phase and side stay the first use's. */
    j->progress.bytes_sent = 777;
    j->phase = MIG_PHASE_SWITCH;
    before = mig_now_ms();
    assert_int_equal(
        mig_store_action_save(st, j, "prepare.snapshot", "switch", "api", MIG_ACTION_DONE, NULL),
        0);
    after = mig_now_ms();
    r = action_row(st, j->uuid, "prepare.snapshot", &recs, &n);
    assert_int_equal(r->status, MIG_ACTION_DONE);
    assert_string_equal(r->phase, "prepare");
    assert_string_equal(r->side, "source");
    assert_int_equal(r->started_ms, started1);
    assert_in_range(r->ended_ms, before, after);
    assert_true(r->ended_ms >= r->started_ms);
    struct mig_job *got = NULL;
    assert_int_equal(mig_store_job_load(st, j->uuid, &got), 0);
    assert_int_equal(got->progress.bytes_sent, 777);
    assert_int_equal(got->phase, MIG_PHASE_SWITCH);
    assert_same_job(j, got);
    mig_job_free(got);

    /* A second action: seq 2.  Its error is kept, then cleared by a retry (which has not ended). */
    assert_int_equal(
        mig_store_action_save(st, j, "sync.send@1#0", "sync", "target", MIG_ACTION_STARTED, NULL),
        0);
    assert_int_equal(mig_store_action_save(st, j, "sync.send@1#0", "sync", "target",
                                           MIG_ACTION_FAILED, "zfs send exited 1"),
                     0);
    r = action_row(st, j->uuid, "sync.send@1#0", &recs, &n);
    assert_int_equal(r->seq, 2);
    assert_int_equal(r->status, MIG_ACTION_FAILED);
    assert_string_equal(r->error, "zfs send exited 1");
    assert_true(r->ended_ms >= r->started_ms && r->ended_ms > 0);
    int64_t started2 = r->started_ms;
    assert_int_equal(
        mig_store_action_save(st, j, "sync.send@1#0", "sync", "target", MIG_ACTION_STARTED, NULL),
        0);
    r = action_row(st, j->uuid, "sync.send@1#0", &recs, &n);
    assert_int_equal(r->status, MIG_ACTION_STARTED);
    assert_string_equal(r->error, "");
    assert_int_equal(r->ended_ms, 0);
    assert_true(r->started_ms >= started2);
    assert_int_equal(r->seq, 2);
    assert_int_equal(mig_store_action_save(st, j, "sync.send@1#0", "sync", "target",
                                           MIG_ACTION_FAILED, "receive: dataset exists"),
                     0);

    /* A third, left started. */
    assert_int_equal(
        mig_store_action_save(st, j, "switch.attach", "switch", "api", MIG_ACTION_STARTED, NULL),
        0);

    /* The undo walk on the first: undo times stamped, the forward times kept. */
    r = action_row(st, j->uuid, "prepare.snapshot", &recs, &n);
    int64_t s1 = r->started_ms, e1 = r->ended_ms;
    before = mig_now_ms();
    assert_int_equal(mig_store_action_save(st, j, "prepare.snapshot", "rollback", "source",
                                           MIG_ACTION_UNDO_STARTED, NULL),
                     0);
    r = action_row(st, j->uuid, "prepare.snapshot", &recs, &n);
    assert_int_equal(r->status, MIG_ACTION_UNDO_STARTED);
    assert_true(r->undo_started_ms >= before);
    assert_int_equal(r->undo_ended_ms, 0);
    assert_int_equal(mig_store_action_save(st, j, "prepare.snapshot", "rollback", "source",
                                           MIG_ACTION_UNDONE, NULL),
                     0);
    after = mig_now_ms();
    r = action_row(st, j->uuid, "prepare.snapshot", &recs, &n);
    assert_int_equal(r->status, MIG_ACTION_UNDONE);
    assert_int_equal(r->started_ms, s1);
    assert_int_equal(r->ended_ms, e1);
    assert_in_range(r->undo_ended_ms, r->undo_started_ms, after);

    /* Another job's journal is its own, with its own seq, even for the same key. */
    assert_int_equal(mig_store_action_save(st, k, "prepare.snapshot", "prepare", "source",
                                           MIG_ACTION_STARTED, NULL),
                     0);
    r = action_row(st, k->uuid, "prepare.snapshot", &recs, &n);
    assert_int_equal(n, 1);
    assert_int_equal(r->seq, 1);

    /* Seq order. */
    free(recs);
    recs = NULL;
    assert_int_equal(mig_store_actions(st, j->uuid, &recs, &n), 0);
    assert_int_equal(n, 3);
    static const char *const keys[] = {"prepare.snapshot", "sync.send@1#0", "switch.attach"};
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(recs[i].key, keys[i]);
        assert_int_equal(recs[i].seq, (int64_t)i + 1);
    }

    /* The JSON form for migctl show -v. */
    json_t *a = mig_store_actions_json(st, j->uuid);
    assert_non_null(a);
    assert_int_equal(json_array_size(a), 3);
    json_t *o = json_array_get(a, 0);
    assert_json_strs(o, "action", "prepare.snapshot",
                        "phase", "prepare",
                        "side", "source",
                        "status", "undone", NULL);
    char iso[32];
    mig_time_iso(recs[0].started_ms, iso);
    assert_json_str(o, "started", iso);
    mig_time_iso(recs[0].ended_ms, iso);
    assert_json_str(o, "ended", iso);
    assert_int_equal(json_integer_value(json_object_get(o, "duration_ms")),
                     recs[0].ended_ms - recs[0].started_ms);
    assert_true(json_is_integer(json_object_get(o, "duration_ms")));
    mig_time_iso(recs[0].undo_ended_ms, iso);
    assert_json_str(o, "undo_ended", iso);
    assert_true(json_is_string(json_object_get(o, "undo_started")));
    assert_true(json_is_null(json_object_get(o, "error")));

    o = json_array_get(a, 1);
    assert_json_strs(o, "status", "failed",
                        "error", "receive: dataset exists", NULL);
    assert_true(json_is_integer(json_object_get(o, "duration_ms")));
    assert_true(json_is_null(json_object_get(o, "undo_started")));

    o = json_array_get(a, 2);
    assert_json_strs(o, "action", "switch.attach",
                        "status", "started", NULL);
    assert_int_equal(strlen(json_string_value(json_object_get(o, "started"))), 24);
    assert_true(json_is_null(json_object_get(o, "ended")));
    assert_true(json_is_null(json_object_get(o, "duration_ms")));
    assert_true(json_is_null(json_object_get(o, "undo_started")));
    assert_true(json_is_null(json_object_get(o, "undo_ended")));
    assert_true(json_is_null(json_object_get(o, "error")));
    json_decref(a);

    /* A job with no journal: empty, not an error. */
    free(recs);
    recs = (struct mig_action_rec *)&n;
    assert_int_equal(mig_store_actions(st, "00000000-0000-4000-8000-000000000000", &recs, &n), 0);
    assert_int_equal(n, 0);
    assert_null(recs);
    a = mig_store_actions_json(st, "00000000-0000-4000-8000-000000000000");
    assert_non_null(a);
    assert_int_equal(json_array_size(a), 0);
    json_decref(a);
    mig_job_free(j);
    mig_job_free(k);
}

/* The saved job's progress.bytes_sent and phase, loaded back. */
static void assert_saved(struct mig_store *st, const char *uuid, int64_t bytes_sent,
                         enum mig_phase phase)
{
    struct mig_job *got = NULL;
    assert_int_equal(mig_store_job_load(st, uuid, &got), 0);
    assert_int_equal(got->progress.bytes_sent, bytes_sent);
    assert_int_equal(got->phase, phase);
    mig_job_free(got);
}

static void test_action_save_is_atomic(void **state)
{
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(state);
    struct mig_job *j = full_job(VM_A, MIG_JOB_RUNNING, 1000);
    j->progress.bytes_sent = 1;
    j->phase = MIG_PHASE_SYNC;
    assert_int_equal(
        mig_store_action_save(st, j, "sync.send@1#0", "sync", "source", MIG_ACTION_STARTED, NULL),
        0);
    assert_saved(st, j->uuid, 1, MIG_PHASE_SYNC);

    /*
     * The job row is written first, then the action: each refused action
     * below fails after the job's new record was written, inside the
     * transaction, and that record must be rolled back with it.
     */
    j->progress.bytes_sent = 2;
    j->phase = MIG_PHASE_SWITCH;
    char long_key[200];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    /* A key the journal's row could not hold (schema CHECK). */
    assert_int_equal(
        mig_store_action_save(st, j, long_key, "switch", "target", MIG_ACTION_STARTED, NULL),
        MIG_EDB);
    assert_saved(st, j->uuid, 1, MIG_PHASE_SYNC);
    /* A phase name too long for the row. */
    assert_int_equal(mig_store_action_save(st, j, "switch.stop", "switch-and-then-some", "source",
                                           MIG_ACTION_STARTED, NULL),
                     MIG_EDB);
    assert_saved(st, j->uuid, 1, MIG_PHASE_SYNC);
    /* An update of the existing row refused (a status the table does not know). */
    assert_int_equal(
        mig_store_action_save(st, j, "sync.send@1#0", "sync", "source", MIG_ACTION_NSTATUS, NULL),
        MIG_EDB);
    assert_saved(st, j->uuid, 1, MIG_PHASE_SYNC);
    struct mig_action_rec *recs = NULL;
    size_t n = 0;
    assert_int_equal(mig_store_actions(st, j->uuid, &recs, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(recs[0].status, MIG_ACTION_STARTED);
    free(recs);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM actions"), 1);

    /* A job never saved: its refused first action does not leave its record behind either. */
    struct mig_job *ghost = full_job(VM_B, MIG_JOB_RUNNING, 2000);
    assert_int_equal(
        mig_store_action_save(st, ghost, long_key, "prepare", "source", MIG_ACTION_STARTED, NULL),
        MIG_EDB);
    struct mig_job *got = (struct mig_job *)&n;
    assert_int_equal(mig_store_job_load(st, ghost->uuid, &got), -ENOENT);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM jobs"), 1);

    /* No transaction was left open: the store and other writers go on. */
    assert_int_equal(
        raw_exec(fx->path, "INSERT INTO meta (key, value) VALUES ('other', 'x')", NULL, NULL),
        SQLITE_DONE);
    assert_int_equal(
        mig_store_action_save(st, j, "sync.send@1#0", "sync", "source", MIG_ACTION_DONE, NULL), 0);
    assert_saved(st, j->uuid, 2, MIG_PHASE_SWITCH);

    /* And what was committed is what a new connection reads. */
    mig_store_close(st);
    st = fx->st = NULL;
    st = open_ok(state);
    assert_saved(st, j->uuid, 2, MIG_PHASE_SWITCH);
    assert_int_equal(mig_store_actions(st, j->uuid, &recs, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(recs[0].status, MIG_ACTION_DONE);
    free(recs);
    mig_job_free(j);
    mig_job_free(ghost);
}

/* What a forked child reports back through a pipe. */
struct child_result {
    int skipped; /* errno of the setup step the child could not take; 0 otherwise */
    int rc, rc2;
    long holder;
    long pid;
    char text[64];
    char err[256], err2[256];
};

/*
 * Runs fn(arg, res) in a forked child and returns its result.  The child
 * never returns into cmocka: it reports through a pipe and _exits.
 */
static void run_in_child(void (*fn)(void *, struct child_result *), void *arg,
                         struct child_result *res)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        struct child_result r;
        memset(&r, 0, sizeof(r));
        r.pid = (long)getpid();
        fn(arg, &r);
        _exit(write(p[1], &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1);
    }
    close(p[1]);
    memset(res, 0, sizeof(*res));
    size_t got = 0;
    while (got < sizeof(*res)) {
        ssize_t k = read(p[0], (char *)res + got, sizeof(*res) - got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(p[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(got, sizeof(*res));
}

/*
 * Reads the lock file through the holder's own descriptor fd: opening and
 * closing another descriptor of it would release the process's fcntl lock.
 */
static void read_lock_file(int fd, char *buf, size_t bufsz)
{
    ssize_t len = pread(fd, buf, bufsz - 1, 0);
    buf[len > 0 ? len : 0] = '\0';
}

static void child_lock(void *arg, struct child_result *res)
{
    const struct fixture *fx = arg;
    int fd = -1;
    res->rc = mig_store_lock(fx->path, &fd, &res->holder, res->err, sizeof(res->err));
    if (res->rc == 0)
        read_lock_file(fd, res->text, sizeof(res->text));
}

static void test_lock_excludes_other_processes(void **state)
{
    struct fixture *fx = *state;
    int fd = -1;
    long holder = -1;
    char err[256] = "", want[256], text[64];
    assert_int_equal(mig_store_lock(fx->path, &fd, &holder, err, sizeof(err)), 0);
    assert_true(fd >= 0);
    assert_int_equal(holder, 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    snprintf(want, sizeof(want), "%ld\n", (long)getpid());
    read_lock_file(fd, text, sizeof(text));
    assert_string_equal(text, want);

    /* Another process is refused and told who holds it. */
    struct child_result res;
    run_in_child(child_lock, fx, &res);
    assert_int_equal(res.rc, -EBUSY);
    assert_int_equal(res.holder, (long)getpid());
    snprintf(want, sizeof(want), "database %s is in use by another migd (pid %ld)", fx->path,
             (long)getpid());
    assert_string_equal(res.err, want);

    /* Closing the descriptor releases it; the new holder writes its own pid. */
    close(fd);
    run_in_child(child_lock, fx, &res);
    assert_int_equal(res.rc, 0);
    snprintf(want, sizeof(want), "%ld\n", res.pid);
    assert_string_equal(res.text, want);

    /* The child's exit released it too.  A stale, longer pid is replaced, not overwritten in part.
     */
    char lp[200];
    snprintf(lp, sizeof(lp), "%s.lock", fx->path);
    unit_write_file(lp, "99999999999999999\n");
    assert_int_equal(mig_store_lock(fx->path, &fd, &holder, err, sizeof(err)), 0);
    snprintf(want, sizeof(want), "%ld\n", (long)getpid());
    read_lock_file(fd, text, sizeof(text));
    assert_string_equal(text, want);
    close(fd);

    /* A lock file that cannot be created: the errno, and a line naming it. */
    err[0] = '\0';
    assert_int_equal(mig_store_lock("/nonexistent-dir/migd.sqlite", &fd, &holder, err, sizeof(err)),
                     -ENOENT);
    assert_int_equal(fd, -1);
    assert_non_null(strstr(err, "/nonexistent-dir/migd.sqlite.lock"));
}

static void test_new_database_mode_0600(void **state)
{
    struct fixture *fx = *state;
    /* With no umask at all, only migd's own mode keeps the files private. */
    mode_t old = umask(0);
    struct mig_store *st = open_ok(state);
    struct mig_job *j = full_job(VM_A, MIG_JOB_RUNNING, 1000);
    int rc = mig_store_job_save(st, j);
    mig_job_free(j);
    int fd = -1;
    long holder = 0;
    char err[256];
    int lrc = mig_store_lock(fx->path, &fd, &holder, err, sizeof(err));
    umask(old);
    assert_int_equal(rc, 0);
    assert_int_equal(lrc, 0);
    close(fd);

    static const char *const suffixes[] = {"", "-wal", "-shm", ".lock"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char p[200];
        struct stat sb;
        snprintf(p, sizeof(p), "%s%s", fx->path, suffixes[i]);
        assert_int_equal(stat(p, &sb), 0);
        if ((sb.st_mode & 0777) != 0600)
            fail_msg("%s has mode %03o, not 600", p, (unsigned)(sb.st_mode & 0777));
    }
}

/* Sets path's mode (failing the test if it cannot) and returns nothing. */
static void chmod_ok(const char *path, mode_t mode)
{
    if (chmod(path, mode) != 0)
        fail_msg("chmod %s: %s", path, strerror(errno));
}

/* Fails the test unless path's mode is want. */
static void assert_mode(const char *path, mode_t want)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        fail_msg("stat %s: %s", path, strerror(errno));
    if ((sb.st_mode & 0777) != want)
        fail_msg("%s has mode %03o, not %03o", path, (unsigned)(sb.st_mode & 0777), (unsigned)want);
}

/*
 * A database left 0644 by an older migd or a restore, its -wal and -shm
 * (kept by another open connection) and its lock file 0644 too: opening the
 * store and taking the lock make all four 0600.
 */
static void test_existing_files_made_private(void **state)
{
    struct fixture *fx = *state;
    mode_t old = umask(022);
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open_v2(fx->path, &other, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                     NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "PRAGMA journal_mode = WAL; CREATE TABLE t (x);"
                                         " INSERT INTO t VALUES (1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    char p[200];
    static const char *const suffixes[] = {"", "-wal", "-shm", ".lock"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", fx->path, suffixes[i]);
        if (i == 3)
            close(open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
        chmod_ok(p, 0644);
        assert_mode(p, 0644);
    }
    umask(old);

    int fd = -1;
    long holder = 0;
    char err[256] = "";
    assert_int_equal(mig_store_lock(fx->path, &fd, &holder, err, sizeof(err)), 0);
    close(fd);
    open_ok(state);
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", fx->path, suffixes[i]);
        assert_mode(p, 0600);
    }
    /* The other connection's data is untouched. */
    assert_int_equal(raw_int(fx->path, "SELECT x FROM t"), 1);
    sqlite3_close(other);

    /* A read-only database stays read-only (and is refused), not made writable. */
    mig_store_close(fx->st);
    fx->st = NULL;
    chmod_ok(fx->path, 0444);
    struct mig_store *st = NULL;
    if (geteuid() != 0) {
        assert_int_equal(mig_store_open(fx->path, &st, err, sizeof(err)), MIG_EDB);
        assert_null(st);
    } else {
        /* root writes any file: only the mode can be checked. */
        assert_int_equal(mig_store_open(fx->path, &st, err, sizeof(err)), 0);
        mig_store_close(st);
    }
    assert_mode(fx->path, 0400);
}

/* How many times needle occurs in the file at path (0 when it does not exist). */
static int file_count(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap);
    assert_non_null(buf);
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(f);
    size_t nl = strlen(needle);
    int count = 0;
    for (size_t i = 0; i + nl <= len; i++)
        if (memcmp(buf + i, needle, nl) == 0)
            count++;
    free(buf);
    return count;
}

/* The marker's copies in the database and its WAL. */
static int db_count(const char *db_path, const char *needle)
{
    char wal[200];
    snprintf(wal, sizeof(wal), "%s-wal", db_path);
    return file_count(db_path, needle) + file_count(wal, needle);
}

#define KEY_MARKER "MIGD-TEST-PRIVATE-KEY-MARKER-7f3a9c"

/* Gives the job a private key of a real key's size, with the marker in its middle. */
static void give_key(struct mig_job *j)
{
    char body[400];
    memset(body, 'k', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    snprintf(j->ctx.direct_key, sizeof(j->ctx.direct_key),
             "-----BEGIN OPENSSH PRIVATE KEY-----\n%.150s%s%.150s\n"
             "-----END OPENSSH PRIVATE KEY-----\n",
             body, KEY_MARKER, body);
    snprintf(j->ctx.direct_pub, sizeof(j->ctx.direct_pub), "AAAAC3NzaC1lZDI1NTE5AAAAIPUB");
}

/*
 * A direct job's private key in its record: journaled while the job runs
 * (the marker is then in the files, which proves the search can see it),
 * then forgotten (act_direct_forget) and the forgetting journaled: no byte
 * of the key is left in the database or its WAL, not even in freed space.
 */
static void test_private_key_wiped_after_forget(void **state)
{
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(state);
    struct mig_job *other = saved_job(st, VM_B, MIG_JOB_RUNNING, 2000);
    /*
     * Where the key falls in the pages (and so what SQLite would leave
     * behind in freed space without secure_delete) depends on the record's
     * size: zone configurations from none to several pages' worth.
     */
    static const size_t zonecfg_sizes[] = {0, 900, 1800, 2700, 3600, 5000, 9000};
    for (size_t z = 0; z < sizeof(zonecfg_sizes) / sizeof(zonecfg_sizes[0]); z++) {
        struct mig_job *j = full_job(VM_A, MIG_JOB_RUNNING, 1000 + (int64_t)z);
        char *zonecfg = malloc(zonecfg_sizes[z] + 1);
        assert_non_null(zonecfg);
        memset(zonecfg, 'c', zonecfg_sizes[z]);
        zonecfg[zonecfg_sizes[z]] = '\0';
        mig_job_set_zonecfg(j, zonecfg);
        free(zonecfg);
        give_key(j);
        assert_int_equal(mig_store_action_save(st, j, "prepare.direct_key", "prepare", "local",
                                               MIG_ACTION_DONE, NULL),
                         0);
        /* The record is saved again and again while the job runs. */
        for (int i = 0; i < 10; i++) {
            j->progress.bytes_sent += 1000;
            char key[32];
            snprintf(key, sizeof(key), "sync.send@%d#0", i);
            assert_int_equal(mig_store_action_save(st, j, key, "sync", "source",
                                                   MIG_ACTION_STARTED, NULL),
                             0);
            assert_int_equal(mig_store_action_save(st, j, key, "sync", "source",
                                                   MIG_ACTION_DONE, NULL),
                             0);
        }
        assert_true(db_count(fx->path, KEY_MARKER) > 0);

        memset(j->ctx.direct_key, 0, sizeof(j->ctx.direct_key));
        memset(j->ctx.direct_pub, 0, sizeof(j->ctx.direct_pub));
        assert_int_equal(mig_store_action_save(st, j, "cleanup.direct_key", "cleanup", "local",
                                               MIG_ACTION_DONE, NULL),
                         0);
        if (db_count(fx->path, KEY_MARKER) != 0)
            fail_msg("with a zonecfg of %zu bytes, the key is still in the files",
                     zonecfg_sizes[z]);
        assert_int_equal(db_count(fx->path, "BEGIN OPENSSH PRIVATE KEY"), 0);
        assert_stored(st, j);
        mig_job_free(j);
    }
    /* The other job is intact. */
    assert_stored(st, other);
    mig_job_free(other);
}

/*
 * The same across a restart: the key was saved before migd stopped, the job
 * is read again at start, and its key forgotten with a plain job save.  The
 * wipe leaves the WAL empty, as mig_store_checkpoint does.
 */
static void test_private_key_wiped_after_restart(void **state)
{
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(state);
    struct mig_job *j = full_job(VM_A, MIG_JOB_RUNNING, 1000);
    give_key(j);
    assert_int_equal(mig_store_job_save(st, j), 0);
    mig_store_close(st);
    st = open_ok(state);
    assert_true(db_count(fx->path, KEY_MARKER) > 0);

    struct mig_job_filter f = {.all = 1};
    struct mig_job **jobs = NULL;
    size_t n = 0;
    assert_int_equal(mig_store_job_list(st, &f, &jobs, &n), 0);
    assert_int_equal(n, 1);
    memset(jobs[0]->ctx.direct_key, 0, sizeof(jobs[0]->ctx.direct_key));
    assert_int_equal(mig_store_job_save(st, jobs[0]), 0);
    assert_int_equal(db_count(fx->path, KEY_MARKER), 0);

    /* The WAL is empty after the wipe, and an explicit checkpoint keeps it so. */
    char wal[200];
    struct stat sb;
    snprintf(wal, sizeof(wal), "%s-wal", fx->path);
    assert_int_equal(stat(wal, &sb), 0);
    assert_int_equal(sb.st_size, 0);
    jobs[0]->progress.bytes_sent++;
    assert_int_equal(mig_store_job_save(st, jobs[0]), 0);
    assert_int_equal(stat(wal, &sb), 0);
    assert_true(sb.st_size > 0);
    assert_int_equal(mig_store_checkpoint(st), 0);
    assert_int_equal(stat(wal, &sb), 0);
    assert_int_equal(sb.st_size, 0);
    mig_job_free(jobs[0]);
    free(jobs);
    mig_job_free(j);
}

/* The uuids of the listed jobs (all states), joined by spaces, into out. */
static void list_uuids(struct mig_store *st, char *out, size_t outsz)
{
    struct mig_job_filter f = {.all = 1};
    struct mig_job **jobs = NULL;
    size_t n = 0;
    assert_int_equal(mig_store_job_list(st, &f, &jobs, &n), 0);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        snprintf(out + strlen(out), outsz - strlen(out), "%s%s", i ? " " : "", jobs[i]->uuid);
        mig_job_free(jobs[i]);
    }
    free(jobs);
}

static void test_unreadable_job_row(void **state)
{
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(state);
    struct mig_job *good1 = full_job(VM_A, MIG_JOB_SUCCEEDED, 1000);
    struct mig_job *bad = full_job(VM_B, MIG_JOB_RUNNING, 2000);
    struct mig_job *notjob = full_job(VM_A, MIG_JOB_QUEUED, 3000);
    struct mig_job *good2 = full_job(VM_A, MIG_JOB_RUNNING, 4000);
    struct mig_job *all[] = {good1, bad, notjob, good2};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(mig_store_job_save(st, all[i]), 0);
    struct mig_bad_job *b = NULL;
    size_t n = 99;
    assert_int_equal(mig_store_job_list_bad(st, &b, &n), 0);
    assert_int_equal(n, 0);
    free(b);

    /* Garbage in one record; JSON that is not a job in another. */
    assert_int_equal(raw_exec(fx->path, "UPDATE jobs SET record = ?1 WHERE uuid = ?2",
                              "{\"uuid\": \"trunc", bad->uuid),
                     SQLITE_DONE);
    assert_int_equal(raw_exec(fx->path, "UPDATE jobs SET record = ?1 WHERE uuid = ?2",
                              "{\"uuid\": 5, \"state\": \"queued\"}", notjob->uuid),
                     SQLITE_DONE);

    char got[256], want[256];
    list_uuids(st, got, sizeof(got));
    snprintf(want, sizeof(want), "%s %s", good1->uuid, good2->uuid);
    assert_string_equal(got, want);
    /* The default list (unfinished jobs) too. */
    struct mig_job **jobs = NULL;
    assert_int_equal(mig_store_job_list(st, NULL, &jobs, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(jobs[0]->uuid, good2->uuid);
    mig_job_free(jobs[0]);
    free(jobs);

    assert_int_equal(mig_store_job_list_bad(st, &b, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(b[0].uuid, bad->uuid);
    assert_string_equal(b[0].vm_uuid, VM_B);
    assert_string_equal(b[0].state, "running");
    assert_non_null(strstr(b[0].error, "not JSON"));
    assert_string_equal(b[1].uuid, notjob->uuid);
    assert_string_equal(b[1].vm_uuid, VM_A);
    assert_string_equal(b[1].state, "queued");
    assert_non_null(strstr(b[1].error, "not a valid job record"));
    free(b);

    struct mig_job *j = (struct mig_job *)&n;
    assert_int_equal(mig_store_job_load(st, bad->uuid, &j), MIG_EPARSE);
    assert_null(j);
    assert_int_equal(mig_store_job_load(st, notjob->uuid, &j), MIG_EPARSE);
    assert_int_equal(mig_store_job_load(st, good2->uuid, &j), 0);
    assert_string_equal(j->uuid, good2->uuid);
    mig_job_free(j);

    /* The VM of an unreadable running job stays held. */
    char holder[MIG_UUID_LEN + 1];
    assert_int_equal(mig_store_job_holding_vm(st, VM_B, holder), 0);
    assert_string_equal(holder, bad->uuid);

    /* A record that is another job's is unreadable too (it would be saved over the wrong row). */
    json_t *rec = mig_job_to_record(good1);
    char *text = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    assert_int_equal(
        raw_exec(fx->path, "UPDATE jobs SET record = ?1 WHERE uuid = ?2", text, good2->uuid),
        SQLITE_DONE);
    free(text);
    assert_int_equal(mig_store_job_load(st, good2->uuid, &j), MIG_EPARSE);
    assert_int_equal(mig_store_job_list_bad(st, &b, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(b[2].uuid, good2->uuid);
    assert_non_null(strstr(b[2].error, good1->uuid));
    free(b);
    for (size_t i = 0; i < 4; i++)
        mig_job_free(all[i]);
}

#define CN_A "5c0a1b2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c"
#define CN_B "6d1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d"

static void test_evacuations_and_rates(void **state)
{
    struct mig_store *st = open_ok(state);
    /* Nothing yet. */
    assert_null(mig_store_evac_latest(st, CN_A));
    json_t *first = json_pack("{s:s, s:s, s:s, s:I, s:[]}", "uuid",
                              "0a0a0a0a-0000-4000-8000-000000000001", "server_uuid", CN_A, "state",
                              "running", "created_ms", (json_int_t)1000, "plan");
    json_t *second = json_pack("{s:s, s:s, s:s, s:I, s:[]}", "uuid",
                               "0a0a0a0a-0000-4000-8000-000000000002", "server_uuid", CN_A,
                               "state", "running", "created_ms", (json_int_t)2000, "plan");
    assert_int_equal(mig_store_evac_save(st, first), 0);
    json_object_set_new(first, "state", json_string("done"));
    assert_int_equal(mig_store_evac_save(st, first), 0); /* an update, not a second row */
    assert_int_equal(mig_store_evac_save(st, second), 0);
    json_t *latest = mig_store_evac_latest(st, CN_A);
    assert_json_str(latest, "uuid", "0a0a0a0a-0000-4000-8000-000000000002");
    json_decref(latest);
    assert_null(mig_store_evac_latest(st, CN_B));
    json_t *all = mig_store_evac_list(st);
    assert_int_equal(json_array_size(all), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(all, 0), "state")),
                        "done");
    json_decref(all);
    json_t *one = mig_store_evac_load(st, "0a0a0a0a-0000-4000-8000-000000000001");
    assert_true(json_equal(one, first));
    json_decref(one);
    json_decref(first);
    json_decref(second);

    /* Rates: nothing measured, then the sums of what was. */
    struct mig_rate r;
    mig_store_rate(st, CN_A, CN_B, &r);
    assert_true(r.bytes_s == -1 && r.overhead_ms == -1);
    assert_int_equal(mig_store_rate_add(st, CN_A, CN_B, 100 * 1000 * 1000LL, 10000), 0);
    assert_int_equal(mig_store_rate_add(st, CN_A, CN_B, 300 * 1000 * 1000LL, 10000), 0);
    assert_int_equal(mig_store_rate_add(st, CN_A, CN_B, 0, 500), 0); /* nothing to learn */
    mig_store_rate(st, CN_A, CN_B, &r);
    assert_int_equal(r.bytes_s, 20 * 1000 * 1000);
    assert_int_equal(r.overhead_ms, -1);
    assert_int_equal(mig_store_overhead_add(st, CN_A, CN_B, 3000), 0);
    assert_int_equal(mig_store_overhead_add(st, CN_A, CN_B, 5000), 0);
    mig_store_rate(st, CN_A, CN_B, &r);
    assert_int_equal(r.bytes_s, 20 * 1000 * 1000);
    assert_int_equal(r.overhead_ms, 4000);
    /* Directions are apart. */
    mig_store_rate(st, CN_B, CN_A, &r);
    assert_true(r.bytes_s == -1 && r.overhead_ms == -1);
    /* An overhead first, a rate after: one row. */
    assert_int_equal(mig_store_overhead_add(st, CN_B, CN_A, 1000), 0);
    assert_int_equal(mig_store_rate_add(st, CN_B, CN_A, 1000, 1000), 0);
    mig_store_rate(st, CN_B, CN_A, &r);
    assert_true(r.bytes_s == 1000 && r.overhead_ms == 1000);
}

static void test_open_refuses_unwritable_database(void **state)
{
    struct fixture *fx = *state;
    open_ok(state);
    mig_store_close(fx->st);
    fx->st = NULL;
    /*
     * Every write to meta fails, as every write would on a full disk or a
     * WAL whose files cannot be written: the open's write probe must see it.
     */
    assert_int_equal(raw_exec(fx->path,
                              "CREATE TRIGGER refuse BEFORE INSERT ON meta"
                              " BEGIN SELECT RAISE(ABORT, 'the disk says no'); END",
                              NULL, NULL),
                     SQLITE_DONE);
    char err[256] = "", want[200];
    struct mig_store *st = (struct mig_store *)&err;
    assert_int_equal(mig_store_open(fx->path, &st, err, sizeof(err)), MIG_EDB);
    assert_null(st);
    snprintf(want, sizeof(want), "database %s cannot be written", fx->path);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "the disk says no"));
}

#ifdef __linux__
static int write_proc(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    ssize_t len = write(fd, text, strlen(text));
    close(fd);
    return len == (ssize_t)strlen(text) ? 0 : -1;
}

/*
 * In a new user and mount namespace (no privilege needed), makes the
 * fixture's directory a read-only bind mount and opens the database there,
 * then a new database there.
 */
static void child_open_read_only(void *arg, struct child_result *res)
{
    const struct fixture *fx = arg;
    char map[64];
    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
        res->skipped = errno;
        return;
    }
    write_proc("/proc/self/setgroups", "deny"); /* absent before Linux 3.19 */
    snprintf(map, sizeof(map), "0 %ld 1", (long)gid);
    if (write_proc("/proc/self/gid_map", map) != 0) {
        res->skipped = errno;
        return;
    }
    snprintf(map, sizeof(map), "0 %ld 1", (long)uid);
    if (write_proc("/proc/self/uid_map", map) != 0) {
        res->skipped = errno;
        return;
    }
    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    /* A remount inside a user namespace must keep the flags it inherited. */
    struct statvfs sv;
    unsigned long keep = 0;
    if (statvfs(fx->dir, &sv) == 0) {
        keep |= sv.f_flag & ST_NOSUID ? MS_NOSUID : 0;
        keep |= sv.f_flag & ST_NODEV ? MS_NODEV : 0;
        keep |= sv.f_flag & ST_NOEXEC ? MS_NOEXEC : 0;
        keep |= sv.f_flag & ST_NOATIME ? MS_NOATIME : 0;
        keep |= sv.f_flag & ST_NODIRATIME ? MS_NODIRATIME : 0;
        keep |= sv.f_flag & ST_RELATIME ? MS_RELATIME : 0;
    }
    if (mount(fx->dir, fx->dir, NULL, MS_BIND, NULL) != 0 ||
        mount(NULL, fx->dir, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, NULL) != 0) {
        res->skipped = errno;
        return;
    }
    /* Proof that the place is read-only, for the parent to check. */
    int fd = open(fx->path, O_RDWR);
    res->holder = fd < 0 ? errno : 0;
    if (fd >= 0)
        close(fd);

    struct mig_store *st = NULL;
    res->rc = mig_store_open(fx->path, &st, res->err, sizeof(res->err));
    mig_store_close(st);
    char fresh[200];
    snprintf(fresh, sizeof(fresh), "%s/new.sqlite", fx->dir);
    st = NULL;
    res->rc2 = mig_store_open(fresh, &st, res->err2, sizeof(res->err2));
    mig_store_close(st);
}
#endif

/*
 * A database on a read-only file system is refused.  chmod cannot make a
 * read-only file for root (the daemon's user, and often the tests'), so the
 * test builds a real read-only bind mount in an unprivileged user namespace.
 * Where the kernel does not allow one, the test is skipped and the system
 * tests (a read-only mount of the daemon's database directory) cover it.
 */
static void test_open_refuses_read_only_mount(void **state)
{
#ifdef __linux__
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(state);
    struct mig_job *j = saved_job(st, VM_A, MIG_JOB_RUNNING, 1000);
    mig_store_close(st);
    fx->st = NULL;

    struct child_result res;
    run_in_child(child_open_read_only, fx, &res);
    if (res.skipped != 0) {
        print_message("no read-only mount here (%s): skipped\n", strerror(res.skipped));
        mig_job_free(j);
        skip();
    }
    assert_int_equal(res.holder, EROFS);
    char want[200];
    /* The existing database: SQLite can open it only read-only. */
    assert_int_equal(res.rc, MIG_EDB);
    snprintf(want, sizeof(want), "database %s cannot be written", fx->path);
    assert_non_null(strstr(res.err, want));
    assert_non_null(strstr(res.err, "read-only"));
    /* A new database: it cannot be created. */
    assert_int_equal(res.rc2, MIG_EDB);
    snprintf(want, sizeof(want), "database %s/new.sqlite cannot be written", fx->dir);
    assert_non_null(strstr(res.err2, want));
    assert_non_null(strstr(res.err2, "Read-only file system"));

    /* Outside the namespace nothing changed. */
    st = open_ok(state);
    assert_stored(st, j);
    mig_job_free(j);
#else
    (void)state;
    skip();
#endif
}

int main(void)
{
    mig_log_init("test_store", MIG_LOG_FATAL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_creates_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_database_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_list_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_holding_vm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rows_need_a_saved_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_synchronous_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sql_metacharacters_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_2_tables, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_schema_1, setup, teardown),
        cmocka_unit_test(test_action_status_names),
        cmocka_unit_test_setup_teardown(test_action_journal_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_action_save_is_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_excludes_other_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_database_mode_0600, setup, teardown),
        cmocka_unit_test_setup_teardown(test_existing_files_made_private, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_key_wiped_after_forget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_key_wiped_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_job_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refuses_unwritable_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refuses_read_only_mount, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evacuations_and_rates, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
