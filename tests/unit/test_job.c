/*
 * test_job.c: the job state machine, names, and JSON forms (lib/job.c); the
 * record tests here go through lib/job_record.c, whose format test is
 * test_job_record.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "job.h"
#include "job_record.h"
#include "job_fixture.h"
#include "json_expect.h"
#include "unit.h"

/*
 * The state table of the brief, written out independently of job.c and in
 * another form: a grid of every state by every event, refusals included,
 * so that what is allowed and what is not can both be read off it.
 */
enum { Q = MIG_JOB_QUEUED, R = MIG_JOB_RUNNING, W = MIG_JOB_WAITING, S = MIG_JOB_SWITCHED,
       OK = MIG_JOB_SUCCEEDED, F = MIG_JOB_FAILED, A = MIG_JOB_ABORTED, RB = MIG_JOB_ROLLED_BACK,
       __ = -1 };
_Static_assert(MIG_NEVENTS == 12 && MIG_JOB_NSTATES == 8, "the grid has a column per event");
static const int grid[MIG_JOB_NSTATES][MIG_NEVENTS] = {
    /*                   START SYNCED FINISH SWITCHED CLEANED FAIL ABORT ROLLED_BACK RESUME RETURN REMOVE KEPT */
    [MIG_JOB_QUEUED] = {R, __, __, __, __, F, A, __, Q, __, __, __},
    [MIG_JOB_RUNNING] = {__, W, __, S, OK, F, A, RB, R, __, __, S},
    [MIG_JOB_WAITING] = {__, __, R, __, __, F, A, __, W, __, __, __},
    [MIG_JOB_SWITCHED] = {__, __, __, __, __, F, __, __, S, R, R, __},
    [MIG_JOB_SUCCEEDED] = {__, __, __, __, __, __, __, __, __, __, __, __},
    [MIG_JOB_FAILED] = {__, __, __, __, __, __, __, __, __, __, __, __},
    [MIG_JOB_ABORTED] = {__, __, __, __, __, __, __, __, __, __, __, __},
    [MIG_JOB_ROLLED_BACK] = {__, __, __, __, __, __, __, __, __, __, __, __},
};

/* Every allowed (state, event) moves a job as the grid says, in place and by the pure rule. */
static void test_every_allowed_transition(void **state)
{
    (void)state;
    int n = 0;
    for (int s = 0; s < MIG_JOB_NSTATES; s++) {
        for (int e = 0; e < MIG_NEVENTS; e++) {
            if (grid[s][e] == __)
                continue;
            struct mig_job *job = mig_job_new();
            job->state = (enum mig_job_state)s;
            assert_int_equal(mig_job_apply(job, (enum mig_job_event)e), 0);
            assert_int_equal(job->state, grid[s][e]);
            mig_job_free(job);
            n++;
        }
    }
    assert_int_equal(n, 20); /* the brief's twenty transitions */
}

/* Every (state, event) pair, allowed or not, is decided as the grid says. */
static void test_table_is_exactly_the_allowed_set(void **state)
{
    (void)state;
    for (int s = 0; s < MIG_JOB_NSTATES; s++)
        for (int e = 0; e < MIG_NEVENTS; e++)
            assert_int_equal(mig_job_next_state((enum mig_job_state)s, (enum mig_job_event)e),
                             grid[s][e]);
}

static void test_refused_transitions_leave_job_unchanged(void **state)
{
    (void)state;
    static const struct {
        enum mig_job_state from;
        enum mig_job_event ev;
    } refused[] = {
        {MIG_JOB_SUCCEEDED, MIG_EV_START},     {MIG_JOB_SUCCEEDED, MIG_EV_RESUME},
        {MIG_JOB_FAILED, MIG_EV_START},        {MIG_JOB_FAILED, MIG_EV_FAIL},
        {MIG_JOB_ABORTED, MIG_EV_RESUME},      {MIG_JOB_ROLLED_BACK, MIG_EV_CLEANED},
        {MIG_JOB_SWITCHED, MIG_EV_ABORT},      {MIG_JOB_QUEUED, MIG_EV_FINISH},
        {MIG_JOB_QUEUED, MIG_EV_SWITCHED},     {MIG_JOB_RUNNING, MIG_EV_START},
        {MIG_JOB_SWITCHED, MIG_EV_CLEANED},    {MIG_JOB_WAITING, MIG_EV_SWITCHED},
        {MIG_JOB_WAITING, MIG_EV_ROLLED_BACK}, {MIG_JOB_SWITCHED, MIG_EV_ROLLED_BACK},
        {MIG_JOB_WAITING, MIG_EV_KEPT},        {MIG_JOB_RUNNING, MIG_EV_RETURN},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        struct mig_job *job = mig_job_new();
        job->state = refused[i].from;
        job->started = 1000;
        job->finished = 0;
        assert_int_equal(mig_job_apply(job, refused[i].ev), -EINVAL);
        assert_int_equal(job->state, refused[i].from);
        assert_int_equal(job->started, 1000);
        assert_int_equal(job->finished, 0);
        assert_int_equal(mig_job_next_state(refused[i].from, refused[i].ev), -1);
        mig_job_free(job);
    }
}

static void test_times(void **state)
{
    (void)state;
    struct mig_job *job = mig_job_new();
    int64_t before = mig_now_ms();
    assert_true(job->created > 0 && job->created <= before);
    assert_int_equal(job->started, 0);
    assert_int_equal(job->finished, 0);

    assert_int_equal(mig_job_apply(job, MIG_EV_RESUME), 0); /* queued stays queued */
    assert_int_equal(job->started, 0);
    assert_int_equal(mig_job_apply(job, MIG_EV_START), 0);
    assert_true(job->started >= before);
    int64_t started = job->started;
    job->started = started - 5000; /* make a later re-stamp detectable */
    assert_int_equal(mig_job_apply(job, MIG_EV_SYNCED), 0);
    assert_int_equal(mig_job_apply(job, MIG_EV_FINISH), 0); /* back to running */
    assert_int_equal(job->started, started - 5000);
    assert_int_equal(mig_job_apply(job, MIG_EV_SWITCHED), 0);
    /* switched is not final, but the job rests there: its slot is free */
    assert_true(job->finished >= before);
    assert_int_equal(mig_job_apply(job, MIG_EV_REMOVE), 0); /* migctl cleanup runs */
    assert_int_equal(job->state, MIG_JOB_RUNNING);
    assert_int_equal(job->finished, 0); /* running again: unfinished */
    assert_int_equal(job->started, started - 5000);
    assert_int_equal(mig_job_apply(job, MIG_EV_CLEANED), 0);
    assert_int_equal(job->state, MIG_JOB_SUCCEEDED);
    assert_true(job->finished >= before);
    mig_job_free(job);

    /* A queued job that fails never started, but finished. */
    job = mig_job_new();
    assert_int_equal(mig_job_apply(job, MIG_EV_FAIL), 0);
    assert_int_equal(job->started, 0);
    assert_true(job->finished > 0);
    mig_job_free(job);
}

static void test_final_and_holds_vm(void **state)
{
    (void)state;
    for (int s = 0; s < MIG_JOB_NSTATES; s++) {
        bool final = s == MIG_JOB_SUCCEEDED || s == MIG_JOB_FAILED || s == MIG_JOB_ABORTED ||
                     s == MIG_JOB_ROLLED_BACK;
        assert_int_equal(mig_job_state_final((enum mig_job_state)s), final);
        assert_int_equal(mig_job_state_holds_vm((enum mig_job_state)s), !final);
    }
}

static void test_names_round_trip(void **state)
{
    (void)state;
    static const char *states[] = {"queued",    "running", "waiting", "switched",
                                   "succeeded", "failed",  "aborted", "rolled_back"};
    for (int s = 0; s < MIG_JOB_NSTATES; s++) {
        enum mig_job_state out = MIG_JOB_NSTATES;
        assert_string_equal(mig_job_state_name((enum mig_job_state)s), states[s]);
        assert_int_equal(mig_job_state_parse(states[s], &out), 0);
        assert_int_equal(out, s);
    }
    static const char *phases[] = {"validate", "prepare", "sync",    "switch",
                                   "cleanup",  "verify",  "rollback"};
    for (int p = 0; p < MIG_PHASE_NPHASES; p++) {
        enum mig_phase out = MIG_PHASE_NPHASES;
        assert_string_equal(mig_phase_name((enum mig_phase)p), phases[p]);
        assert_int_equal(mig_phase_parse(phases[p], &out), 0);
        assert_int_equal(out, p);
    }
    static const char *modes[] = {"full", "incremental", "auto"};
    for (int m = 0; m < 3; m++) {
        enum mig_mode out = (enum mig_mode)99;
        assert_string_equal(mig_mode_name((enum mig_mode)m), modes[m]);
        assert_int_equal(mig_mode_parse(modes[m], &out), 0);
        assert_int_equal(out, m);
    }

    enum mig_job_state st = MIG_JOB_WAITING;
    assert_int_equal(mig_job_state_parse("Running", &st), -EINVAL);
    assert_int_equal(mig_job_state_parse("", &st), -EINVAL);
    assert_int_equal(mig_job_state_parse(NULL, &st), -EINVAL);
    assert_int_equal(st, MIG_JOB_WAITING);
    enum mig_phase ph = MIG_PHASE_SYNC;
    assert_int_equal(mig_phase_parse("sync ", &ph), -EINVAL);
    assert_int_equal(ph, MIG_PHASE_SYNC);
    enum mig_mode mo = MIG_MODE_AUTO;
    assert_int_equal(mig_mode_parse("incr", &mo), -EINVAL);
    assert_int_equal(mo, MIG_MODE_AUTO);
    assert_string_equal(mig_job_state_name((enum mig_job_state)42), "unknown");
}

static void test_set_error(void **state)
{
    (void)state;
    struct mig_job *job = mig_job_new();
    job->phase = MIG_PHASE_SYNC;
    mig_job_set_error(job, "RemoteFailed", "zfs send failed");
    job->phase = MIG_PHASE_SWITCH;
    mig_job_set_error(job, "Aborted", "aborted by operator");
    assert_string_equal(job->error_code, "Aborted");
    assert_string_equal(job->error_message, "aborted by operator");
    assert_int_equal(job->error_phase, MIG_PHASE_SWITCH);
    mig_job_free(job);
}

/* A job with every member set to something other than its default. */
static struct mig_job *full_job(void)
{
    struct mig_job *job = mig_job_new();
    job_fixture_fill(job);
    job->vm_alias = mig_strdup("web01");
    strcpy(job->brand, "joyent-minimal");
    job->mode = MIG_MODE_AUTO;
    job->state = MIG_JOB_FAILED;
    mig_job_set_error(job, "RemoteFailed", "zfs receive exited 1 on cn2");
    struct mig_job_ctx *c = &job->ctx;
    snprintf(c->datasets[0].origin, sizeof(c->datasets[0].origin), "zones/img@final");
    assert_int_equal(mig_job_add_image(c, "zones/5e4d0f36-9d35-11ee-a9c2-0b1f2a6c1e12@final"), 0);
    c->images[0].on_target = 1;
    assert_int_equal(mig_job_add_image(c, "zones/7080194a-046b-5103-b946-9dc545e914b1@final"), 1);
    return job;
}

/* to_record -> text -> from_record gives the same job. */
static void round_trip(struct mig_job *job)
{
    struct mig_job *copy = record_round_trip(job);
    /* ctx is the copy's own: changing it does not touch the original. */
    if (job->ctx.zonecfg != NULL)
        assert_ptr_not_equal(copy->ctx.zonecfg, job->ctx.zonecfg);
    mig_job_set_zonecfg(copy, "changed");
    if (job->ctx.zonecfg != NULL)
        assert_string_not_equal(job->ctx.zonecfg, "changed");
    mig_job_free(copy);
}

/* Edge values: not running, zero downtime, empty alias, error without message. */
static struct mig_job *edge_job(void)
{
    struct mig_job *job = mig_job_new();
    job->vm_was_running = 0;
    job->downtime_ms = 0;
    job->vm_alias = mig_strdup("");
    job->state = MIG_JOB_ROLLED_BACK;
    job->phase = MIG_PHASE_CLEANUP;
    mig_job_set_error(job, "X", NULL);
    return job;
}

static void test_record_round_trip(void **state)
{
    (void)state;
    /* Every member set; defaults: nothing known yet (nulls everywhere); edge values. */
    struct mig_job *(*const make[])(void) = {full_job, mig_job_new, edge_job};
    for (size_t i = 0; i < UNIT_COUNT(make); i++) {
        struct mig_job *job = make[i]();
        round_trip(job);
        mig_job_free(job);
    }
}

/* full_job()'s record (the caller decrefs it). */
static json_t *full_record(void)
{
    struct mig_job *job = full_job();
    json_t *rec = mig_job_to_record(job);
    mig_job_free(job);
    return rec;
}

static void test_record_has_extras(void **state)
{
    (void)state;
    json_t *rec = full_record();
    const char *extras[] = {"ctx",
                            "dry_run",
                            "allow_older_platform",
                            "cleanup_source",
                            "finish_requested",
                            "abort_requested",
                            "created_ms",
                            "started_ms",
                            "finished_ms"};
    for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++)
        assert_non_null(json_object_get(rec, extras[i]));
    assert_int_equal(json_integer_value(json_object_get(rec, "created_ms")), 1707350400123LL);
    assert_true(json_is_true(json_object_get(rec, "finish_requested")));
    json_decref(rec);
}

static void test_from_record_malformed(void **state)
{
    (void)state;
    json_t *good = full_record();

    struct {
        const char *key;
        json_t *value; /* NULL: delete the key */
    } bad[] = {
        {"uuid", NULL},
        {"uuid", json_string("not-a-uuid")},
        {"state", json_string("sleeping")},
        {"state", NULL},
        {"phase", json_integer(2)},
        {"mode", json_string("fast")},
        {"vm_uuid", json_string("6a1b2c3d; rm -rf /")},
        {"brand", json_string("a-brand-name-that-is-far-too-long-to-fit")},
        {"created_ms", json_string("yesterday")},
        {"dry_run", json_string("yes")},
        {"ctx", json_array()},
        {"vm_was_running", json_integer(1)},
        {"progress", json_pack("{s:s}", "bytes_sent", "many")},
        {"error", json_pack("{s:s}", "message", "no code")},
        {"error", json_pack("{s:s, s:s}", "code", "X", "phase", "nowhere")},
        {"vm_alias", json_integer(7)},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *rec = json_deep_copy(good);
        if (bad[i].value == NULL)
            json_object_del(rec, bad[i].key);
        else
            json_object_set_new(rec, bad[i].key, bad[i].value);
        struct mig_job *out = (struct mig_job *)&out; /* must be reset to NULL */
        assert_int_equal(mig_job_from_record(rec, &out), MIG_EPARSE);
        assert_null(out);
        json_decref(rec);
    }
    struct mig_job *out = NULL;
    json_t *arr = json_array();
    assert_int_equal(mig_job_from_record(arr, &out), MIG_EPARSE);
    assert_int_equal(mig_job_from_record(NULL, &out), MIG_EPARSE);
    json_decref(arr);
    json_decref(good);
}

/* A leftover as the executor notes it. */
static struct mig_leftover leftover(const char *key, bool undo, const char *cn, const char *kind,
                                    const char *name)
{
    struct mig_leftover lo = {.undo = undo};
    snprintf(lo.key, sizeof(lo.key), "%s", key);
    snprintf(lo.cn, sizeof(lo.cn), "%s", cn);
    snprintf(lo.kind, sizeof(lo.kind), "%s", kind);
    snprintf(lo.name, sizeof(lo.name), "%s", name);
    snprintf(lo.reason, sizeof(lo.reason), "dataset is busy");
    return lo;
}

static void test_leftovers(void **state)
{
    (void)state;
    struct mig_job *job = mig_job_new();
    job->source_hostname = mig_strdup("cn1");
    job->target_hostname = mig_strdup("cn2");
    job->state = MIG_JOB_ABORTED;
    assert_int_equal(mig_job_leftover_due(job), 0);

    /* First noted: due 30 s later; each retry that fails doubles the wait, to an hour. */
    struct mig_leftover a = leftover("sync.snapshot@1#0", true, "cn1", "snapshot", "zones/u@s");
    struct mig_leftover b = leftover("sync.send@1#0", true, "cn2", "dataset", "zones/u");
    assert_int_equal(mig_job_leftover_note(job, &a, 1000), 0);
    assert_int_equal(mig_job_leftover_note(job, &b, 2000), 0);
    assert_int_equal(job->nleftovers, 2);
    assert_int_equal(mig_job_leftover_due(job), 1000 + 30000);
    int64_t wait[] = {60000, 120000, 240000, 480000, 960000, 1920000, 3600000, 3600000};
    for (size_t i = 0; i < sizeof(wait) / sizeof(wait[0]); i++) {
        snprintf(a.reason, sizeof(a.reason), "try %zu", i);
        assert_int_equal(mig_job_leftover_note(job, &a, 10000), 0);
        assert_int_equal(job->leftovers[0].next_ms, 10000 + wait[i]);
        assert_int_equal(job->leftovers[0].since_ms, 1000); /* when it was first left */
        assert_int_equal(job->leftovers[0].tries, (int)i + 1);
    }
    assert_string_equal(job->leftovers[0].reason, "try 7");
    assert_int_equal(job->nleftovers, 2);
    /* The same key left by the action (not its undo) is another leftover. */
    struct mig_leftover a2 = a;
    a2.undo = false;
    assert_int_equal(mig_job_leftover_note(job, &a2, 3000), 0);
    assert_int_equal(job->nleftovers, 3);
    assert_true(mig_job_leftover_clear(job, a2.key, false));
    assert_false(mig_job_leftover_clear(job, a2.key, false));

    /* A dataset where the VM is not blocks; a snapshot never does. */
    assert_false(mig_leftover_blocks(job, &job->leftovers[0]));
    assert_true(mig_leftover_blocks(job, &job->leftovers[1]));
    job->state = MIG_JOB_SWITCHED; /* the VM is on cn2 now: its dataset there is the VM's */
    assert_false(mig_leftover_blocks(job, &job->leftovers[1]));
    struct mig_leftover src = leftover("cleanup.destroy_source_dataset#0", false, "cn1",
                                       "dataset", "zones/u");
    assert_true(mig_leftover_blocks(job, &src));

    /* Public JSON: what, where, why, since, when next, whether it blocks. */
    mig_job_leftover_retry_now(job, 5000);
    assert_int_equal(mig_job_leftover_due(job), 5000);
    json_t *o = mig_job_to_json(job);
    json_t *los = json_object_get(o, "leftovers");
    assert_int_equal(json_array_size(los), 2);
    json_t *l1 = json_array_get(los, 1);
    assert_json_strs(l1, "cn", "cn2",
                         "kind", "dataset",
                         "name", "zones/u",
                         "reason", "dataset is busy",
                         "since", "1970-01-01T00:00:02.000Z", NULL);
    assert_null(json_object_get(l1, "key")); /* the record's business */
    json_decref(o);

    /* The record keeps them whole, across a restart. */
    json_t *rec = mig_job_to_record(job);
    struct mig_job *back = NULL;
    assert_int_equal(mig_job_from_record(rec, &back), 0);
    assert_int_equal(back->nleftovers, 2);
    for (int i = 0; i < 2; i++)
        assert_leftovers_equal(&job->leftovers[i], &back->leftovers[i]);
    json_decref(rec);
    mig_job_free(back);

    /* Full: the oldest stay, the new one is refused. */
    while (job->nleftovers < MIG_MAX_LEFTOVERS) {
        char key[32];
        snprintf(key, sizeof(key), "k%d", job->nleftovers);
        struct mig_leftover more = leftover(key, false, "cn1", "snapshot", key);
        assert_int_equal(mig_job_leftover_note(job, &more, 1), 0);
    }
    struct mig_leftover one_more = leftover("k-last", false, "cn1", "snapshot", "x");
    assert_int_equal(mig_job_leftover_note(job, &one_more, 1), -ENOSPC);
    mig_job_free(job);
}

/* At rest a job moves no more bytes: all of it sent once the VM moved, its average rate. */
static void test_progress_at_rest(void **state)
{
    (void)state;
    struct mig_job *job = mig_job_new();
    job->progress = (struct mig_progress){.bytes_sent = 105172992, .bytes_total = 105068544,
                                          .rate_bytes_s = 8845, .eta_s = 3};
    struct mig_round r1 = {.n = 1, .bytes = 100000000, .duration_ms = 2000};
    struct mig_round r2 = {.n = 2, .bytes = 5172992, .duration_ms = 1000};
    mig_job_log_round(job, &r1);
    mig_job_log_round(job, &r2);
    job->state = MIG_JOB_RUNNING;
    json_t *o = mig_job_to_json(job);
    json_t *p = json_object_get(o, "progress");
    assert_int_equal(json_integer_value(json_object_get(p, "bytes_total")), 105068544);
    assert_int_equal(json_integer_value(json_object_get(p, "rate_bytes_s")), 8845);
    assert_int_equal(json_integer_value(json_object_get(p, "eta_s")), 3);
    json_decref(o);

    job->state = MIG_JOB_SWITCHED;
    o = mig_job_to_json(job);
    p = json_object_get(o, "progress");
    assert_int_equal(json_integer_value(json_object_get(p, "bytes_total")), 105172992);
    assert_int_equal(json_integer_value(json_object_get(p, "bytes_sent")), 105172992);
    assert_int_equal(json_integer_value(json_object_get(p, "rate_bytes_s")),
                     105172992LL * 1000 / 3000);
    assert_true(json_is_null(json_object_get(p, "eta_s")));
    json_decref(o);

    /* The record keeps what was counted (a rollback goes on from it). */
    json_t *rec = mig_job_to_record(job);
    p = json_object_get(rec, "progress");
    assert_int_equal(json_integer_value(json_object_get(p, "bytes_total")), 105068544);
    assert_int_equal(json_integer_value(json_object_get(p, "rate_bytes_s")), 8845);
    json_decref(rec);

    /* Aborted: the total stays what was planned; no rate without a send on record. */
    job->state = MIG_JOB_ABORTED;
    job->nround_log = 0;
    o = mig_job_to_json(job);
    p = json_object_get(o, "progress");
    assert_int_equal(json_integer_value(json_object_get(p, "bytes_total")), 105068544);
    assert_true(json_is_null(json_object_get(p, "rate_bytes_s")));
    json_decref(o);
    mig_job_free(job);
}

static void test_public_json(void **state)
{
    (void)state;
    static const char *keys[] = {"uuid",
                                 "vm_uuid",
                                 "vm_alias",
                                 "brand",
                                 "source_server_uuid",
                                 "target_server_uuid",
                                 "source_hostname",
                                 "target_hostname",
                                 "mode",
                                 "state",
                                 "phase",
                                 "progress",
                                 "vm_was_running",
                                 "downtime_ms",
                                 "created",
                                 "started",
                                 "finished",
                                 "error",
                                 "aborting",
                                 "activity",
                                 "cleanup_source",
                                 "transfer",
                                 "send_compressed",
                                 "limit_mbps",
                                 "rounds",
                                 "downtime_breakdown",
                                 "rollback_downtime_ms",
                                 "evacuation",
                                 "leftovers",
                                 "health",
                                 "cleanup_at",
                                 "window",
                                 "paused"};
    const size_t nkeys = sizeof(keys) / sizeof(keys[0]);

    struct mig_job *job = full_job();
    json_t *o = mig_job_to_json(job);
    assert_int_equal(json_object_size(o), nkeys);
    for (size_t i = 0; i < nkeys; i++)
        assert_non_null(json_object_get(o, keys[i]));
    assert_json_strs(o, "uuid", job->uuid,
                        "vm_alias", "web01",
                        "mode", "auto",
                        "state", "failed", NULL);
    /* Undoing shows as the rollback phase; the record keeps the phase it undoes. */
    assert_json_str(o, "phase", "rollback");
    json_t *rec = mig_job_to_record(job);
    assert_json_str(rec, "phase", "switch");
    json_decref(rec);
    assert_true(json_is_true(json_object_get(o, "aborting")));
    /* zfs send -c: unknown until prepare asked both CNs, then both must support it. */
    assert_true(json_is_null(json_object_get(o, "send_compressed")));
    job->ctx.compressed_source = 1;
    job->ctx.compressed_target = 0;
    json_t *half = mig_job_to_json(job);
    assert_true(json_is_false(json_object_get(half, "send_compressed")));
    json_decref(half);
    job->ctx.compressed_target = 1;
    json_t *both = mig_job_to_json(job);
    assert_true(json_is_true(json_object_get(both, "send_compressed")));
    json_decref(both);
    job->ctx.compressed_source = job->ctx.compressed_target = -1;
    /* An ended job is never shown paused, whatever its record says. */
    job->paused = true;
    json_t *ended = mig_job_to_json(job);
    assert_true(json_is_false(json_object_get(ended, "paused")));
    json_decref(ended);
    job->paused = false;
    assert_json_str(o, "activity", "sending zones/x");
    assert_true(json_is_true(json_object_get(o, "cleanup_source")));
    assert_json_str(o, "transfer", "direct");
    assert_int_equal(json_integer_value(json_object_get(o, "limit_mbps")), 160);
    json_t *rounds = json_object_get(o, "rounds");
    assert_int_equal(json_array_size(rounds), 2);
    assert_true(json_is_null(json_object_get(json_array_get(rounds, 0), "predicted_downtime_ms")));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rounds, 1),
                                                        "predicted_downtime_ms")),
                     2100);
    json_t *bd = json_object_get(o, "downtime_breakdown");
    assert_int_equal(json_integer_value(json_object_get(bd, "daemon_ms")), 9);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(bd, "actions"), 1), "action")),
                        "switch.start_target");
    assert_int_equal(json_integer_value(json_object_get(o, "rollback_downtime_ms")), 777);
    assert_true(json_is_true(json_object_get(o, "vm_was_running")));
    assert_int_equal(json_integer_value(json_object_get(o, "downtime_ms")), 4321);
    assert_json_strs(o, "created", "2024-02-08T00:00:00.123Z",
                        "finished", "2024-02-08T00:01:39.789Z", NULL);

    json_t *p = json_object_get(o, "progress");
    assert_int_equal(json_object_size(p), 5);
    assert_int_equal(json_integer_value(json_object_get(p, "bytes_sent")), 123456789012LL);
    assert_int_equal(json_integer_value(json_object_get(p, "bytes_total")), 223456789012LL);
    /* A failed job moves no bytes: its rate is its sends' average, and no ETA. */
    int64_t bytes = 0, ms = 0;
    for (int i = 0; i < job->nround_log; i++) {
        bytes += job->round_log[i].bytes;
        ms += job->round_log[i].duration_ms;
    }
    assert_true(ms > 0);
    assert_int_equal(json_integer_value(json_object_get(p, "rate_bytes_s")), bytes * 1000 / ms);
    assert_true(json_is_null(json_object_get(p, "eta_s")));
    assert_int_equal(json_integer_value(json_object_get(p, "increments")), 3);
    job->state = MIG_JOB_RUNNING;
    json_t *running = mig_job_to_json(job);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(running, "progress"),
                                                        "eta_s")),
                     77);
    json_decref(running);
    job->state = MIG_JOB_FAILED;

    json_t *e = json_object_get(o, "error");
    assert_int_equal(json_object_size(e), 3);
    assert_json_strs(e, "code", "RemoteFailed",
                        "message", "zfs receive exited 1 on cn2",
                        "phase", "switch", NULL);
    /* Internal members stay out of the public form. */
    assert_null(json_object_get(o, "ctx"));
    assert_null(json_object_get(o, "finish_requested"));
    json_decref(o);
    mig_job_free(job);

    /* A fresh job: unknowns are null, not zero or false. */
    job = mig_job_new();
    o = mig_job_to_json(job);
    assert_int_equal(json_object_size(o), nkeys);
    assert_true(json_is_null(json_object_get(o, "vm_was_running")));
    assert_true(json_is_null(json_object_get(o, "downtime_ms")));
    assert_true(json_is_null(json_object_get(o, "started")));
    assert_true(json_is_null(json_object_get(o, "finished")));
    assert_true(json_is_null(json_object_get(o, "error")));
    assert_true(json_is_string(json_object_get(o, "created")));
    assert_json_strs(o, "state", "queued",
                        "phase", "validate", NULL);
    assert_true(json_is_null(json_object_get(json_object_get(o, "progress"), "eta_s")));
    json_decref(o);
    mig_job_free(job);
}

/* The images a VM's datasets are clones of: one entry each, only images' @final. */
static void test_images(void **state)
{
    (void)state;
    struct mig_job *job = mig_job_new();
    struct mig_job_ctx *c = &job->ctx;
    const char *vm_img = "zones/c3de3d3d-b265-5a78-baa6-38d3173b7932@final";
    const char *disk_img = "zones/cbcd9ea0-28a4-5924-938e-25ecbe536f0b@final";
    assert_int_equal(mig_job_add_image(c, vm_img), 0);
    assert_int_equal(mig_job_add_image(c, disk_img), 1);
    /* Seen again (another disk of the same image): still one entry. */
    assert_int_equal(mig_job_add_image(c, disk_img), 1);
    assert_int_equal(c->nimages, 2);
    assert_string_equal(c->images[1].uuid, "cbcd9ea0-28a4-5924-938e-25ecbe536f0b");
    assert_int_equal(c->images[1].on_target, -1);
    /* Not images: no origin, another snapshot, a 36-character non-uuid, no pool, a
     * uuid that is not the last component. */
    assert_int_equal(mig_job_add_image(c, ""), -1);
    assert_int_equal(mig_job_add_image(c, "zones/c3de3d3d-b265-5a78-baa6-38d3173b7932@snap1"), -1);
    assert_int_equal(mig_job_add_image(c, "zones/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz@final"), -1);
    assert_int_equal(mig_job_add_image(c, "c3de3d3d-b265-5a78-baa6-38d3173b7932@final"), -1);
    assert_int_equal(mig_job_add_image(c, "zones/x@final/c3de3d3d-b265-5a78-baa6-38d3173b7932"), -1);
    assert_int_equal(mig_job_add_image(c, "zones/c3de3d3d-b265-5a78-baa6-38d3173b7932@finalx"), -1);
    assert_int_equal(c->nimages, 2);
    /* A send starts from an origin only once its image is on the target. */
    assert_false(mig_job_origin_on_target(c, disk_img));
    c->images[1].on_target = 1;
    assert_true(mig_job_origin_on_target(c, disk_img));
    assert_false(mig_job_origin_on_target(c, vm_img));
    assert_false(mig_job_origin_on_target(c, "zones/5e4d0f36-9d35-11ee-a9c2-0b1f2a6c1e12@final"));
    assert_false(mig_job_origin_on_target(c, ""));
    /* The table is bounded. */
    for (int i = c->nimages; i < MIG_MAX_IMAGES; i++) {
        char o[80];
        snprintf(o, sizeof(o), "zones/00000000-0000-4000-8000-%012d@final", i);
        assert_int_equal(mig_job_add_image(c, o), i);
    }
    assert_int_equal(mig_job_add_image(c, "zones/11111111-2222-4333-8444-555555555555@final"), -2);
    mig_job_free(job);
}

/* A record written before images[] reads as the VM's image with what was known of
 * it, when a dataset was its clone; an entry without a valid uuid is refused. */
static void test_images_from_an_older_record(void **state)
{
    (void)state;
    json_t *j = json_pack("{s:s, s:i, s:i}", "image_uuid", "c3de3d3d-b265-5a78-baa6-38d3173b7932",
                          "image_on_target", 1, "image_needed", 1);
    struct mig_job *job = mig_job_new();
    assert_int_equal(mig_job_ctx_from_json(j, &job->ctx), 0);
    assert_int_equal(job->ctx.nimages, 1);
    assert_string_equal(job->ctx.images[0].uuid, "c3de3d3d-b265-5a78-baa6-38d3173b7932");
    assert_int_equal(job->ctx.images[0].on_target, 1);
    /* The top dataset a clone of it: the same. */
    json_object_set_new(j, "image_needed", json_integer(0));
    json_object_set_new(j, "datasets",
                        json_pack("[{s:s, s:s, s:i}]", "name", "zones/x", "origin",
                                  "zones/c3de3d3d-b265-5a78-baa6-38d3173b7932@final", "used", 1));
    assert_int_equal(mig_job_ctx_from_json(j, &job->ctx), 0);
    assert_int_equal(job->ctx.nimages, 1);
    /* No dataset a clone of it: nothing to import. */
    json_object_set_new(j, "datasets",
                        json_pack("[{s:s, s:s, s:i}]", "name", "zones/x", "origin", "", "used", 1));
    assert_int_equal(mig_job_ctx_from_json(j, &job->ctx), 0);
    assert_int_equal(job->ctx.nimages, 0);
    /* A malformed entry is refused whole. */
    json_object_set_new(j, "images", json_pack("[{s:s}]", "uuid", "nope"));
    assert_int_equal(mig_job_ctx_from_json(j, &job->ctx), MIG_EPARSE);
    json_object_set_new(j, "images", json_pack("[{s:i}]", "on_target", 1));
    assert_int_equal(mig_job_ctx_from_json(j, &job->ctx), MIG_EPARSE);
    json_decref(j);
    mig_job_free(job);
}

static void test_new_job(void **state)
{
    (void)state;
    struct mig_job *a = mig_job_new(), *b = mig_job_new();
    assert_true(mig_uuid_valid(a->uuid));
    assert_string_not_equal(a->uuid, b->uuid);
    assert_int_equal(a->state, MIG_JOB_QUEUED);
    assert_int_equal(a->phase, MIG_PHASE_VALIDATE);
    /* Nothing known yet: counts zero, facts unknown (-1), no strings. */
    assert_int_equal(a->ctx.ndatasets, 0);
    assert_int_equal(a->ctx.nnics, 0);
    assert_int_equal(a->ctx.nimages, 0);
    assert_int_equal(a->ctx.autoboot_before, -1);
    assert_int_equal(a->ctx.last_delta, -1);
    assert_null(a->ctx.zonecfg);
    assert_int_equal(a->task, MIG_TASK_MIGRATE);
    assert_false(a->undoing);
    mig_job_free(a);
    mig_job_free(b);
    mig_job_free(NULL);
}

UNIT_TEST_MAIN(NULL, NULL,
               cmocka_unit_test(test_every_allowed_transition),
               cmocka_unit_test(test_table_is_exactly_the_allowed_set),
               cmocka_unit_test(test_refused_transitions_leave_job_unchanged),
               cmocka_unit_test(test_times),
               cmocka_unit_test(test_final_and_holds_vm),
               cmocka_unit_test(test_names_round_trip),
               cmocka_unit_test(test_set_error),
               cmocka_unit_test(test_record_round_trip),
               cmocka_unit_test(test_record_has_extras),
               cmocka_unit_test(test_from_record_malformed),
               cmocka_unit_test(test_public_json),
               cmocka_unit_test(test_leftovers),
               cmocka_unit_test(test_progress_at_rest),
               cmocka_unit_test(test_images),
               cmocka_unit_test(test_images_from_an_older_record),
               cmocka_unit_test(test_new_job))
