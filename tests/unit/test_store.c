/*
 * test_store.c: the SQLite store against real database files in a fresh
 * temporary directory: schema creation and versioning, job round trips and
 * queries, steps, log and events, WAL mode, and bound parameters.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "err.h"
#include "log.h"
#include "schema.h"
#include "store.h"

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
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char p[160];
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", fx->path, suffixes[i]);
        unlink(p);
    }
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* Opens the fixture's store, failing the test on error. */
static struct mig_store *open_ok(struct fixture *fx)
{
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
    json_object_set_new(j->ctx, "snapshots", json_pack("[ss]", "migd-1", "migd-2"));
    json_object_set_new(j->ctx, "ips", json_pack("{s:b}", "10.0.0.5", 0));
    json_object_set_new(j->ctx, "quota", json_integer(10737418240LL));
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

#define VM_A "aaaaaaaa-0000-4000-8000-000000000001"
#define VM_B "bbbbbbbb-0000-4000-8000-000000000002"

static void test_open_creates_schema(void **state)
{
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(fx);
    assert_true(mig_store_schema_latest() >= 1);
    assert_int_equal(mig_store_schema_latest(), mig_schema_nsteps);
    assert_int_equal(mig_store_version(st), mig_store_schema_latest());
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                       " AND name IN ('jobs', 'steps', 'events', 'job_log')"),
                     4);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                                       " AND name = 'jobs_vm_state'"),
                     1);
}

static void test_reopen_is_idempotent(void **state)
{
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(fx);
    struct mig_job *j = full_job(VM_A, MIG_JOB_RUNNING, 1000);
    assert_int_equal(mig_store_job_save(st, j), 0);
    mig_store_close(st);
    fx->st = NULL;

    st = open_ok(fx);
    assert_int_equal(mig_store_version(st), mig_store_schema_latest());
    struct mig_job *got = NULL;
    assert_int_equal(mig_store_job_load(st, j->uuid, &got), 0);
    assert_same_job(j, got);
    mig_job_free(got);
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
    struct mig_store *st = open_ok(fx);
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
    assert_int_equal(json_integer_value(json_object_get(got->ctx, "quota")), 10737418240LL);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(got->ctx, "snapshots"), 1)), "migd-2");
    assert_true(json_is_false(json_object_get(json_object_get(got->ctx, "ips"), "10.0.0.5")));
    assert_same_job(j, got);
    mig_job_free(got);

    /* Saving again replaces the row, it does not add one. */
    j->state = MIG_JOB_RUNNING;
    json_object_set_new(j->ctx, "round", json_integer(2));
    assert_int_equal(mig_store_job_save(st, j), 0);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM jobs"), 1);
    assert_int_equal(mig_store_job_load(st, j->uuid, &got), 0);
    assert_int_equal(got->state, MIG_JOB_RUNNING);
    assert_int_equal(json_integer_value(json_object_get(got->ctx, "round")), 2);
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
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(fx);
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
        struct mig_job *j = full_job(rows[i].vm, rows[i].state, rows[i].created);
        assert_int_equal(mig_store_job_save(st, j), 0);
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
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(fx);
    char holder[MIG_UUID_LEN + 1];
    assert_int_equal(mig_store_job_holding_vm(st, VM_A, holder), -ENOENT);

    struct mig_job *done = full_job(VM_A, MIG_JOB_SUCCEEDED, 1000);
    struct mig_job *failed = full_job(VM_A, MIG_JOB_ROLLED_BACK, 2000);
    struct mig_job *other = full_job(VM_B, MIG_JOB_RUNNING, 3000);
    assert_int_equal(mig_store_job_save(st, done), 0);
    assert_int_equal(mig_store_job_save(st, failed), 0);
    assert_int_equal(mig_store_job_save(st, other), 0);
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

static void test_steps_and_log_order(void **state)
{
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(fx);
    struct mig_job *j = full_job(VM_A, MIG_JOB_RUNNING, 1000);
    struct mig_job *k = full_job(VM_B, MIG_JOB_RUNNING, 1000);
    assert_int_equal(mig_store_job_save(st, j), 0);
    assert_int_equal(mig_store_job_save(st, k), 0);

    static const char *const seq[][2] = {{"validate", "started"}, {"validate", "done"},
                                         {"prepare", "started"},  {"prepare", "done"},
                                         {"sync", "started"},     {"sync", "failed"}};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(mig_store_step_record(st, j->uuid, seq[i][0], seq[i][1]), 0);
        assert_int_equal(mig_store_step_record(st, k->uuid, "validate", "started"), 0);
    }
    json_t *steps = mig_store_steps(st, j->uuid);
    assert_non_null(steps);
    assert_int_equal(json_array_size(steps), 6);
    for (size_t i = 0; i < 6; i++) {
        json_t *s = json_array_get(steps, i);
        assert_string_equal(json_string_value(json_object_get(s, "step")), seq[i][0]);
        assert_string_equal(json_string_value(json_object_get(s, "status")), seq[i][1]);
        const char *t = json_string_value(json_object_get(s, "time"));
        assert_non_null(t);
        assert_int_equal(strlen(t), 24); /* 2024-01-02T03:04:05.678Z */
        assert_int_equal(t[strlen(t) - 1], 'Z');
    }
    json_decref(steps);
    /* Saving the job again keeps its history (no delete-and-insert cascade). */
    j->phase = MIG_PHASE_SWITCH;
    assert_int_equal(mig_store_job_save(st, j), 0);
    steps = mig_store_steps(st, j->uuid);
    assert_int_equal(json_array_size(steps), 6);
    json_decref(steps);
    steps = mig_store_steps(st, k->uuid);
    assert_int_equal(json_array_size(steps), 6);
    json_decref(steps);
    steps = mig_store_steps(st, "00000000-0000-4000-8000-000000000000");
    assert_non_null(steps);
    assert_int_equal(json_array_size(steps), 0);
    json_decref(steps);

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
        assert_string_equal(json_string_value(json_object_get(r, "msg")), msg);
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

static void test_events_append(void **state)
{
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(fx);
    struct mig_job *j = full_job(VM_A, MIG_JOB_RUNNING, 1000);
    assert_int_equal(mig_store_job_save(st, j), 0);
    json_t *data = json_pack("{s:i, s:s}", "bytes_sent", 4096, "phase", "sync");
    assert_int_equal(mig_store_event_append(st, j->uuid, "progress", data), 0);
    assert_int_equal(data->refcount, 1); /* borrowed, not stolen */
    json_decref(data);
    assert_int_equal(mig_store_event_append(st, j->uuid, "state", NULL), 0);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM events"), 2);
    assert_int_equal(raw_int(fx->path, "SELECT json_extract(data, '$.bytes_sent') FROM events"
                                       " WHERE type = 'progress'"),
                     4096);
    assert_int_equal(raw_int(fx->path, "SELECT data IS NULL FROM events WHERE type = 'state'"), 1);
    mig_job_free(j);
}

static void test_rows_need_a_saved_job(void **state)
{
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(fx);
    /* foreign_keys is on: steps, log and events of an unknown job are refused. */
    const char *ghost = "00000000-0000-4000-8000-000000000000";
    assert_int_equal(mig_store_step_record(st, ghost, "validate", "started"), MIG_EDB);
    assert_int_equal(mig_store_log_append(st, ghost, MIG_LOG_INFO, "x"), MIG_EDB);
    assert_int_equal(mig_store_event_append(st, ghost, "state", NULL), MIG_EDB);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM steps"), 0);
}

static void test_wal_mode(void **state)
{
    struct fixture *fx = *state;
    struct mig_store *st = open_ok(fx);
    struct mig_job *j = full_job(VM_A, MIG_JOB_RUNNING, 1000);
    assert_int_equal(mig_store_job_save(st, j), 0);
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
    struct mig_store *st = open_ok(fx);
    static const char nasty[] = "web'); DROP TABLE jobs; -- \"quoted\" \\ %s %n ? ?1 :x @y $z ;";
    struct mig_job *j = full_job(VM_A, MIG_JOB_RUNNING, 1000);
    free(j->vm_alias);
    j->vm_alias = strdup(nasty);
    json_object_set_new(j->ctx, nasty, json_string(nasty));
    assert_int_equal(mig_store_job_save(st, j), 0);
    assert_int_equal(mig_store_step_record(st, j->uuid, nasty, nasty), 0);
    assert_int_equal(mig_store_log_append(st, j->uuid, MIG_LOG_INFO, nasty), 0);

    struct mig_job *got = NULL;
    assert_int_equal(mig_store_job_load(st, j->uuid, &got), 0);
    assert_string_equal(got->vm_alias, nasty);
    assert_string_equal(json_string_value(json_object_get(got->ctx, nasty)), nasty);
    assert_same_job(j, got);
    mig_job_free(got);

    json_t *steps = mig_store_steps(st, j->uuid);
    assert_string_equal(json_string_value(json_object_get(json_array_get(steps, 0), "step")),
                        nasty);
    json_decref(steps);
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
        cmocka_unit_test_setup_teardown(test_steps_and_log_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rows_need_a_saved_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sql_metacharacters_round_trip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
