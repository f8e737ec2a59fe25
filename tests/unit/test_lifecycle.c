/*
 * test_lifecycle.c: every row of the job lifecycle table (lib/lifecycle.c),
 * that each row's transitions are ones the state table allows, and that a
 * restarted daemon decides as the run it replaces did.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lifecycle.h"
#include "unit.h"

static const struct mig_lifecycle_cfg CFG = {
    .auto_switch_bytes = 1000,
    .max_downtime_ms = 10000,
    .max_rounds = 5,
    .interval_ms = 60000,
    .wait_ms = 600000,
};

#define NOW 1700000000000LL

#define MIGRATE_PHASES                                                                             \
    ((1u << MIG_PHASE_PREPARE) | (1u << MIG_PHASE_SYNC) | (1u << MIG_PHASE_SWITCH))

/* A job of mode in state, task and phase, with rounds on record. */
static struct mig_job *job_at(enum mig_mode mode, enum mig_job_state state, enum mig_task task,
                              enum mig_phase phase, int rounds)
{
    struct mig_job *job = mig_job_new();
    job->mode = mode;
    job->state = state;
    job->task = task;
    job->phase = phase;
    job->ctx.rounds = rounds;
    job->ctx.last_delta = -1;
    return job;
}

/* Applies a decision's changes as the engine does; false when a transition is refused. */
static bool apply_next(struct mig_job *job, const struct mig_next *n)
{
    job->ctx.wake_ms = n->what == MIG_DO_SLEEP ? NOW + (int64_t)n->sleep_ms : 0;
    if (n->task >= 0)
        job->task = (enum mig_task)n->task;
    if (n->phase >= 0)
        job->phase = (enum mig_phase)n->phase;
    for (int i = 0; i < 2 && n->events[i] >= 0; i++)
        if (mig_job_apply(job, (enum mig_job_event)n->events[i]) != 0)
            return false;
    if (n->what == MIG_DO_UNDO)
        job->undoing = true;
    return true;
}

static struct mig_next decide(struct mig_job *job, enum mig_outcome out)
{
    struct mig_next n = mig_lifecycle_next(job, &CFG, out, NOW);
    struct mig_job *copy = mig_job_new();
    /* Every transition a row asks for is one the state table has. */
    copy->state = job->state;
    copy->task = job->task;
    copy->phase = job->phase;
    assert_true(apply_next(copy, &n));
    mig_job_free(copy);
    return n;
}

static void expect(const struct mig_next *n, enum mig_do what, int task, int phase, int ev0,
                   int ev1)
{
    assert_int_equal(n->what, what);
    assert_int_equal(n->task, task);
    assert_int_equal(n->phase, phase);
    assert_int_equal(n->events[0], ev0);
    assert_int_equal(n->events[1], ev1);
}

/* decide(job, out), checked by expect(); returns the decision for further checks. */
static struct mig_next expect_next(struct mig_job *job, enum mig_outcome out, enum mig_do what,
                                   int task, int phase, int ev0, int ev1)
{
    struct mig_next n = decide(job, out);
    expect(&n, what, task, phase, ev0, ev1);
    return n;
}

/*
 * mig_lifecycle_next(job, cfg, out, now), checked by expect() (without
 * decide()'s check of its transitions); returns the decision.
 */
static struct mig_next expect_next_under(struct mig_job *job, const struct mig_lifecycle_cfg *cfg,
                                         enum mig_outcome out, int64_t now, enum mig_do what,
                                         int task, int phase, int ev0, int ev1)
{
    struct mig_next n = mig_lifecycle_next(job, cfg, out, now);
    expect(&n, what, task, phase, ev0, ev1);
    return n;
}

/* The decision n sleeps sleep_ms, waiting for the reason wait. */
static void expect_sleep(const struct mig_next *n, int64_t sleep_ms, enum mig_wait wait)
{
    assert_int_equal(n->sleep_ms, sleep_ms);
    assert_int_equal(n->wait, wait);
}

/* A full migration's job in sync after its round: ready to switch. */
static struct mig_job *ready_to_switch(void)
{
    return job_at(MIG_MODE_FULL, MIG_JOB_RUNNING, MIG_TASK_MIGRATE, MIG_PHASE_SYNC, 1);
}

static void test_start(void **state)
{
    (void)state;
    struct mig_job *j = job_at(MIG_MODE_FULL, MIG_JOB_RUNNING, MIG_TASK_MIGRATE,
                               MIG_PHASE_VALIDATE, 0);
    struct mig_next n = expect_next(j, MIG_OUT_START, MIG_DO_PLAN, -1, MIG_PHASE_PREPARE, -1, -1);

    j->phase = MIG_PHASE_SYNC; /* no round yet: the first */
    expect_next(j, MIG_OUT_START, MIG_DO_PLAN, -1, -1, -1, -1);

    j->phase = MIG_PHASE_SWITCH;
    j->abort_requested = true; /* too late to abort: the switch goes on */
    expect_next(j, MIG_OUT_START, MIG_DO_PLAN, -1, -1, -1, -1);

    j->phase = MIG_PHASE_PREPARE;
    n = expect_next(j, MIG_OUT_START, MIG_DO_UNDO, -1, -1, -1, -1);
    assert_int_equal(n.undo_mask, MIGRATE_PHASES);

    j->abort_requested = false;
    j->undoing = true; /* a daemon killed while undoing goes on undoing */
    n = expect_next(j, MIG_OUT_START, MIG_DO_UNDO, -1, -1, -1, -1);
    assert_int_equal(n.undo_mask, MIGRATE_PHASES);

    j->undoing = false;
    j->task = MIG_TASK_RETURN;
    j->phase = MIG_PHASE_ROLLBACK;
    expect_next(j, MIG_OUT_START, MIG_DO_PLAN, -1, -1, -1, -1);
    j->undoing = true;
    n = expect_next(j, MIG_OUT_START, MIG_DO_UNDO, -1, -1, -1, -1);
    assert_int_equal(n.undo_mask, 1u << MIG_PHASE_ROLLBACK);

    j->undoing = false;
    j->task = MIG_TASK_REMOVE_SOURCE;
    j->phase = MIG_PHASE_CLEANUP;
    expect_next(j, MIG_OUT_START, MIG_DO_PLAN, -1, -1, -1, -1);
    mig_job_free(j);
}

/* Resumed in sync: a round goes on, a sleep goes on for what is left, or ends. */
static void test_start_in_sync(void **state)
{
    (void)state;
    struct mig_job *j = job_at(MIG_MODE_INCREMENTAL, MIG_JOB_WAITING, MIG_TASK_MIGRATE,
                               MIG_PHASE_SYNC, 2);
    j->ctx.wake_ms = 0; /* a round was under way */
    struct mig_next n = expect_next(j, MIG_OUT_START, MIG_DO_PLAN, -1, -1, -1, -1);
    j->ctx.wake_ms = NOW + 25000; /* asleep: 25 s are left */
    n = expect_next(j, MIG_OUT_START, MIG_DO_SLEEP, -1, -1, -1, -1);
    expect_sleep(&n, 25000, MIG_WAIT_NEXT_ROUND);
    j->ctx.wake_ms = NOW - 1; /* the sleep ended while migd was down: the next round */
    expect_next(j, MIG_OUT_START, MIG_DO_PLAN, -1, -1, -1, -1);
    j->ctx.wake_ms = NOW + 25000;
    j->finish_requested = true; /* finished while down: the switch, now */
    expect_next(j, MIG_OUT_START, MIG_DO_PLAN, -1, MIG_PHASE_SWITCH, MIG_EV_FINISH, -1);
    j->abort_requested = true;
    expect_next(j, MIG_OUT_START, MIG_DO_UNDO, -1, -1, -1, -1);
    mig_job_free(j);
}

static void test_done_tasks_and_phases(void **state)
{
    (void)state;
    struct mig_job *j = job_at(MIG_MODE_FULL, MIG_JOB_RUNNING, MIG_TASK_MIGRATE,
                               MIG_PHASE_PREPARE, 0);
    struct mig_next n = expect_next(j, MIG_OUT_DONE, MIG_DO_PLAN, -1, MIG_PHASE_SYNC, -1, -1);

    j->phase = MIG_PHASE_SYNC;
    j->ctx.rounds = 1; /* full: one round, then the switch */
    expect_next(j, MIG_OUT_DONE, MIG_DO_PLAN, -1, MIG_PHASE_SWITCH, -1, -1);

    j->phase = MIG_PHASE_SWITCH;
    expect_next(j, MIG_OUT_DONE, MIG_DO_PLAN, -1, MIG_PHASE_CLEANUP, -1, -1);

    j->phase = MIG_PHASE_CLEANUP;
    expect_next(j, MIG_OUT_DONE, MIG_DO_END, -1, -1, MIG_EV_SWITCHED, -1);

    j->cleanup_source = true; /* --cleanup-source: on to deleting the source copy */
    expect_next(j, MIG_OUT_DONE, MIG_DO_PLAN, MIG_TASK_REMOVE_SOURCE, MIG_PHASE_CLEANUP,
                MIG_EV_SWITCHED, MIG_EV_REMOVE);

    j->task = MIG_TASK_REMOVE_SOURCE;
    n = expect_next(j, MIG_OUT_DONE, MIG_DO_END, -1, -1, MIG_EV_CLEANED, -1);
    assert_true(n.clear_error);

    j->task = MIG_TASK_RETURN;
    j->phase = MIG_PHASE_ROLLBACK;
    n = expect_next(j, MIG_OUT_DONE, MIG_DO_END, -1, -1, MIG_EV_ROLLED_BACK, -1);
    assert_true(n.clear_error);
    mig_job_free(j);
}

static void test_done_sync_rounds(void **state)
{
    (void)state;
    /* Incremental: in sync after the first round, another round after the interval. */
    struct mig_job *j = job_at(MIG_MODE_INCREMENTAL, MIG_JOB_RUNNING, MIG_TASK_MIGRATE,
                               MIG_PHASE_SYNC, 1);
    struct mig_next n = expect_next(j, MIG_OUT_DONE, MIG_DO_SLEEP, -1, -1, MIG_EV_SYNCED, -1);
    expect_sleep(&n, CFG.interval_ms, MIG_WAIT_NEXT_ROUND);
    j->state = MIG_JOB_WAITING; /* already waiting: no second SYNCED */
    expect_next(j, MIG_OUT_DONE, MIG_DO_SLEEP, -1, -1, -1, -1);
    /* max_rounds: no more rounds, a long wait for finish or abort. */
    j->ctx.rounds = CFG.max_rounds;
    n = expect_next(j, MIG_OUT_DONE, MIG_DO_SLEEP, -1, -1, -1, -1);
    expect_sleep(&n, CFG.wait_ms, MIG_WAIT_MAX_ROUNDS);
    /* finish: the switch, and the waiting job is finished by it. */
    j->finish_requested = true;
    expect_next(j, MIG_OUT_DONE, MIG_DO_PLAN, -1, MIG_PHASE_SWITCH, MIG_EV_FINISH, -1);
    /* abort wins over finish before the switch. */
    j->abort_requested = true;
    n = expect_next(j, MIG_OUT_DONE, MIG_DO_UNDO, -1, -1, -1, -1);
    assert_int_equal(n.undo_mask, MIGRATE_PHASES);
    mig_job_free(j);

    /* Auto: never switches after the first round alone. */
    j = job_at(MIG_MODE_AUTO, MIG_JOB_RUNNING, MIG_TASK_MIGRATE, MIG_PHASE_SYNC, 1);
    j->ctx.last_delta = 10;
    n = expect_next(j, MIG_OUT_DONE, MIG_DO_SLEEP, -1, -1, -1, -1);
    assert_int_equal(n.wait, MIG_WAIT_NEXT_ROUND);
    /* A small delta after an incremental round: switch. */
    j->ctx.rounds = 2;
    expect_next(j, MIG_OUT_DONE, MIG_DO_PLAN, -1, MIG_PHASE_SWITCH, -1, -1);
    /* A large delta, but a short predicted downtime: switch. */
    j->ctx.last_delta = 1 << 30;
    struct mig_round r = {.n = 2, .bytes = 1 << 30, .predicted_downtime_ms = CFG.max_downtime_ms};
    mig_job_log_round(j, &r);
    expect_next(j, MIG_OUT_DONE, MIG_DO_PLAN, -1, MIG_PHASE_SWITCH, -1, -1);
    /* Predicted too long: another round. */
    r.predicted_downtime_ms = CFG.max_downtime_ms + 1;
    mig_job_log_round(j, &r);
    n = expect_next(j, MIG_OUT_DONE, MIG_DO_SLEEP, -1, -1, -1, -1);
    assert_int_equal(n.sleep_ms, CFG.interval_ms);
    /* Stalled: waits for finish, in state waiting. */
    j->ctx.stalled = 1;
    n = expect_next(j, MIG_OUT_DONE, MIG_DO_SLEEP, -1, -1, MIG_EV_SYNCED, -1);
    expect_sleep(&n, CFG.wait_ms, MIG_WAIT_STALLED);
    mig_job_free(j);
}

static void test_slept(void **state)
{
    (void)state;
    struct mig_job *j = job_at(MIG_MODE_INCREMENTAL, MIG_JOB_WAITING, MIG_TASK_MIGRATE,
                               MIG_PHASE_SYNC, 2);
    struct mig_next n =
        expect_next(j, MIG_OUT_SLEPT, MIG_DO_PLAN, -1, -1, -1, -1); /* the next round */
    j->ctx.rounds = CFG.max_rounds;
    n = expect_next(j, MIG_OUT_SLEPT, MIG_DO_SLEEP, -1, -1, -1, -1);
    assert_int_equal(n.sleep_ms, CFG.wait_ms);
    j->finish_requested = true; /* finish wakes it: the switch */
    expect_next(j, MIG_OUT_SLEPT, MIG_DO_PLAN, -1, MIG_PHASE_SWITCH, MIG_EV_FINISH, -1);
    j->abort_requested = true; /* abort wakes it: undo */
    expect_next(j, MIG_OUT_SLEPT, MIG_DO_UNDO, -1, -1, -1, -1);
    mig_job_free(j);
}

static void test_failures(void **state)
{
    (void)state;
    struct mig_job *j = job_at(MIG_MODE_FULL, MIG_JOB_RUNNING, MIG_TASK_MIGRATE,
                               MIG_PHASE_SYNC, 0);
    /* Before the point of no return: the job's rollback. */
    struct mig_next n = expect_next(j, MIG_OUT_FAILED, MIG_DO_UNDO, -1, -1, -1, -1);
    assert_int_equal(n.undo_mask, MIGRATE_PHASES);
    assert_null(n.error_code); /* the executor set the failing action's */
    /* Canceled by the operator: undone, and it says so. */
    j->abort_requested = true;
    n = expect_next(j, MIG_OUT_CANCELED, MIG_DO_UNDO, -1, -1, -1, -1);
    assert_string_equal(n.error_code, "Aborted");
    assert_false(n.error_if_none);
    /* Canceled by something else: a failure like any. */
    j->abort_requested = false;
    n = expect_next(j, MIG_OUT_CANCELED, MIG_DO_UNDO, -1, -1, -1, -1);
    assert_null(n.error_code);
    /* Past the point of no return: the VM stays where it runs. */
    j->phase = MIG_PHASE_SWITCH;
    expect_next(j, MIG_OUT_FAILED_FORWARD, MIG_DO_END, -1, -1, MIG_EV_FAIL, -1);
    j->phase = MIG_PHASE_CLEANUP;
    expect_next(j, MIG_OUT_FAILED, MIG_DO_END, -1, -1, MIG_EV_FAIL, -1);
    /* The operator's cleanup failed: the source copy stays, the job switched. */
    j->task = MIG_TASK_REMOVE_SOURCE;
    expect_next(j, MIG_OUT_FAILED, MIG_DO_END, MIG_TASK_MIGRATE, -1, MIG_EV_KEPT, -1);
    expect_next(j, MIG_OUT_FAILED_FORWARD, MIG_DO_END, MIG_TASK_MIGRATE, -1, MIG_EV_KEPT, -1);
    /* The operator's rollback failed before its point of no return: undone. */
    j->task = MIG_TASK_RETURN;
    j->phase = MIG_PHASE_ROLLBACK;
    n = expect_next(j, MIG_OUT_FAILED, MIG_DO_UNDO, -1, -1, -1, -1);
    assert_int_equal(n.undo_mask, 1u << MIG_PHASE_ROLLBACK);
    mig_job_free(j);
}

static void test_undone(void **state)
{
    (void)state;
    struct mig_job *j = job_at(MIG_MODE_FULL, MIG_JOB_RUNNING, MIG_TASK_MIGRATE,
                               MIG_PHASE_SYNC, 0);
    struct mig_next n = expect_next(j, MIG_OUT_UNDONE, MIG_DO_END, -1, -1, MIG_EV_FAIL, -1);
    j->abort_requested = true;
    n = expect_next(j, MIG_OUT_UNDONE, MIG_DO_END, -1, -1, MIG_EV_ABORT, -1);
    assert_string_equal(n.error_code, "Aborted");
    assert_true(n.error_if_none); /* an abort during a failure keeps the failure's words */
    expect_next(j, MIG_OUT_UNDO_STOPPED, MIG_DO_END, -1, -1, MIG_EV_FAIL, -1);
    /* The operator's rollback undone: the VM stays on the target, switched. */
    j->abort_requested = false;
    j->task = MIG_TASK_RETURN;
    j->phase = MIG_PHASE_ROLLBACK;
    expect_next(j, MIG_OUT_UNDONE, MIG_DO_END, MIG_TASK_MIGRATE, MIG_PHASE_CLEANUP, MIG_EV_KEPT,
                -1);
    expect_next(j, MIG_OUT_UNDO_STOPPED, MIG_DO_END, -1, -1, MIG_EV_FAIL, -1);
    mig_job_free(j);
}

/*
 * A daemon killed right after a decision was saved and started again
 * decides (MIG_OUT_START) what the run had decided: the same walk, the same
 * sleep, the same undo.  Checked over every mode, phase, round count (as a
 * run leaves them: none before sync) and flag combination whose decision
 * is not to end.
 */
static void test_a_restart_decides_as_the_run_did(void **state)
{
    (void)state;
    static const enum mig_outcome outs[] = {MIG_OUT_DONE, MIG_OUT_SLEPT, MIG_OUT_FAILED,
                                            MIG_OUT_CANCELED};
    int checked = 0;
    for (int mode = MIG_MODE_FULL; mode <= MIG_MODE_AUTO; mode++)
        for (int phase = MIG_PHASE_PREPARE; phase <= MIG_PHASE_CLEANUP; phase++)
            /* Records a run can leave: no round before sync, one at least once a round ended. */
            for (int rounds = phase == MIG_PHASE_PREPARE ? 0 : 1;
                 rounds <= (phase == MIG_PHASE_PREPARE ? 0 : CFG.max_rounds); rounds++)
                for (int flags = 0; flags < 16; flags++)
                    for (size_t o = 0; o < sizeof(outs) / sizeof(outs[0]); o++) {
                        if (outs[o] == MIG_OUT_SLEPT && phase != MIG_PHASE_SYNC)
                            continue;
                        struct mig_job *j =
                            job_at((enum mig_mode)mode, MIG_JOB_RUNNING, MIG_TASK_MIGRATE,
                                   (enum mig_phase)phase, rounds);
                        j->finish_requested = (flags & 1) != 0;
                        j->abort_requested = (flags & 2) != 0;
                        j->ctx.stalled = (flags & 4) != 0;
                        j->ctx.last_delta = (flags & 8) != 0 ? 10 : 1 << 30;
                        struct mig_next run = mig_lifecycle_next(j, &CFG, outs[o], NOW);
                        if (run.what == MIG_DO_END || !apply_next(j, &run)) {
                            mig_job_free(j);
                            continue;
                        }
                        struct mig_next again = mig_lifecycle_next(j, &CFG, MIG_OUT_START, NOW);
                        if (run.what == MIG_DO_PLAN && again.what == MIG_DO_PLAN) {
                            /* The same plan: nothing more to change on the record. */
                            assert_int_equal(again.phase, -1);
                            assert_int_equal(again.task, -1);
                        } else {
                            assert_int_equal(again.what, run.what);
                            assert_int_equal(again.sleep_ms, run.sleep_ms);
                            assert_int_equal(again.undo_mask, run.undo_mask);
                        }
                        checked++;
                        mig_job_free(j);
                    }
    assert_true(checked > 500);
}

/* The health gate: entered after the cleanup of a VM that ran, passed, failed, resumed. */
static void test_health_gate(void **state)
{
    (void)state;
    struct mig_job *j = job_at(MIG_MODE_FULL, MIG_JOB_RUNNING, MIG_TASK_MIGRATE,
                               MIG_PHASE_CLEANUP, 1);
    j->vm_was_running = 1;
    mig_health_init(&j->health, 30);
    struct mig_next n = expect_next(j, MIG_OUT_DONE, MIG_DO_PLAN, -1, MIG_PHASE_VERIFY, -1, -1);

    /* A VM that did not run, or a window of 0: no gate. */
    j->vm_was_running = 0;
    expect_next(j, MIG_OUT_DONE, MIG_DO_END, -1, -1, MIG_EV_SWITCHED, -1);
    j->vm_was_running = 1;
    j->health.min_up_s = 0;
    expect_next(j, MIG_OUT_DONE, MIG_DO_END, -1, -1, MIG_EV_SWITCHED, -1);
    j->health.min_up_s = 30;

    /* A pass that saw it healthy but not yet for long: a pause, then another look. */
    j->phase = MIG_PHASE_VERIFY;
    j->health.state = MIG_HEALTH_CHECKING;
    j->health.since_ms = NOW - 5000;
    n = expect_next(j, MIG_OUT_DONE, MIG_DO_SLEEP, -1, -1, -1, -1);
    assert_int_equal(n.wait, MIG_WAIT_HEALTH);
    assert_int_equal(n.sleep_ms, 3000); /* a tenth of the window */
    j->health.since_ms = NOW - 28500;
    assert_int_equal(mig_verify_interval_ms(j, NOW), 1550); /* just past the window's end */
    j->health.min_up_s = 5;
    j->health.since_ms = NOW - 1000;
    assert_int_equal(mig_verify_interval_ms(j, NOW), 1000); /* a second at least, inside it */
    j->health.min_up_s = 30;
    expect_next(j, MIG_OUT_SLEPT, MIG_DO_PLAN, -1, -1, -1, -1);

    /* Killed during a pause: the rest of it; past it: the next look at once. */
    j->ctx.wake_ms = NOW + 2000;
    n = expect_next(j, MIG_OUT_START, MIG_DO_SLEEP, -1, -1, -1, -1);
    assert_int_equal(n.sleep_ms, 2000);
    j->ctx.wake_ms = NOW - 1;
    expect_next(j, MIG_OUT_START, MIG_DO_PLAN, -1, -1, -1, -1);
    j->ctx.wake_ms = 0;

    /* Passed: switched, or on to delete the source when asked. */
    j->health.state = MIG_HEALTH_PASSED;
    expect_next(j, MIG_OUT_DONE, MIG_DO_END, -1, -1, MIG_EV_SWITCHED, -1);
    j->cleanup_source = true;
    expect_next(j, MIG_OUT_DONE, MIG_DO_PLAN, MIG_TASK_REMOVE_SOURCE, MIG_PHASE_CLEANUP,
                MIG_EV_SWITCHED, MIG_EV_REMOVE);

    /* Failed: the job rolls back by itself and says why... */
    j->health.state = MIG_HEALTH_FAILED;
    snprintf(j->health.why, sizeof(j->health.why), "zone_id: zone id 9, was 7");
    n = expect_next(j, MIG_OUT_DONE, MIG_DO_PLAN, MIG_TASK_RETURN, MIG_PHASE_ROLLBACK, -1, -1);
    assert_string_equal(n.error_code, "HealthCheckFailed");
    assert_string_equal(n.error_message, "zone_id: zone id 9, was 7");
    /* ... and its rollback ends rolled back with that error kept. */
    j->task = MIG_TASK_RETURN;
    j->phase = MIG_PHASE_ROLLBACK;
    n = expect_next(j, MIG_OUT_DONE, MIG_DO_END, -1, -1, MIG_EV_ROLLED_BACK, -1);
    assert_false(n.clear_error);
    j->task = MIG_TASK_MIGRATE;
    j->phase = MIG_PHASE_VERIFY;

    /* With health.on_failure "report" it stays switched, and the source copy stays. */
    struct mig_lifecycle_cfg report = CFG;
    report.health_report = true;
    n = expect_next_under(j, &report, MIG_OUT_DONE, NOW, MIG_DO_END, -1, -1, MIG_EV_SWITCHED, -1);
    assert_null(n.error_code);

    /* A target that could not be asked at all (the pass failed for good): as a failed check. */
    j->health.state = MIG_HEALTH_CHECKING;
    n = expect_next(j, MIG_OUT_FAILED, MIG_DO_PLAN, MIG_TASK_RETURN, MIG_PHASE_ROLLBACK, -1, -1);
    assert_string_equal(n.error_code, "HealthCheckFailed");
    expect_next(j, MIG_OUT_FAILED_FORWARD, MIG_DO_PLAN, MIG_TASK_RETURN, MIG_PHASE_ROLLBACK, -1,
                -1);
    mig_job_free(j);
}

/* NOW is 2023-11-14 22:13:20 UTC. */
static struct mig_job *windowed(const char *spec, enum mig_job_state st, int rounds)
{
    struct mig_job *job = job_at(MIG_MODE_FULL, st, MIG_TASK_MIGRATE, MIG_PHASE_SYNC, rounds);
    char err[160];
    assert_int_equal(mig_window_parse(spec, &job->window, err, sizeof(err)), 0);
    return job;
}

/*
 * Ready to switch outside its window: rests waiting, a round every
 * interval, never sleeping past the opening (straight to it once no more
 * rounds may run); inside, it switches; one whose predicted downtime would
 * end after the close waits for the next window; a restart sleeps on.
 */
static void test_window(void **state)
{
    (void)state;
    struct mig_job *job = windowed("23:00-01:00", MIG_JOB_RUNNING, 1);
    assert_int_equal(mig_switch_allowed_at(job, NOW), NOW + 2800000);
    struct mig_next n = expect_next(job, MIG_OUT_DONE, MIG_DO_SLEEP, -1, -1, MIG_EV_SYNCED, -1);
    expect_sleep(&n, CFG.interval_ms, MIG_WAIT_WINDOW);
    /* The sleep ended, still shut: another round (the job stays waiting). */
    job->state = MIG_JOB_WAITING;
    job->ctx.rounds = 2;
    expect_next(job, MIG_OUT_SLEPT, MIG_DO_PLAN, -1, -1, -1, -1);
    n = expect_next(job, MIG_OUT_DONE, MIG_DO_SLEEP, -1, -1, -1, -1);
    assert_int_equal(n.wait, MIG_WAIT_WINDOW);
    /* incremental.max_rounds and a stall do not stop them: each keeps the final delta small. */
    job->ctx.rounds = CFG.max_rounds + 3;
    job->ctx.stalled = true;
    expect_next(job, MIG_OUT_SLEPT, MIG_DO_PLAN, -1, -1, -1, -1);
    /* Never sleeping past the opening. */
    job->ctx.rounds = 2;
    job->ctx.stalled = false;
    struct mig_lifecycle_cfg slow = CFG;
    slow.interval_ms = 3600000;
    n = mig_lifecycle_next(job, &slow, MIG_OUT_DONE, NOW);
    assert_int_equal(n.sleep_ms, 2800000);
    /* A restart in that sleep sleeps what is left of it. */
    job->ctx.wake_ms = NOW + 1000000;
    n = expect_next(job, MIG_OUT_START, MIG_DO_SLEEP, -1, -1, -1, -1);
    expect_sleep(&n, 1000000, MIG_WAIT_WINDOW);
    mig_job_free(job);

    /* Inside 22:00-23:00: the switch, finishing the waiting job. */
    job = windowed("22:00-23:00", MIG_JOB_WAITING, 3);
    expect_next(job, MIG_OUT_SLEPT, MIG_DO_PLAN, -1, MIG_PHASE_SWITCH, MIG_EV_FINISH, -1);
    /* ... unless the forecast says it would end after 23:00: then tomorrow's. */
    job->nround_log = 1;
    job->round_log[0].predicted_downtime_ms = 50 * 60000;
    assert_int_equal(mig_switch_allowed_at(job, NOW), NOW - 800000 + 86400000);
    expect_next(job, MIG_OUT_SLEPT, MIG_DO_PLAN, -1, -1, -1, -1);
    job->round_log[0].predicted_downtime_ms = 40 * 60000;
    expect_next(job, MIG_OUT_SLEPT, MIG_DO_PLAN, -1, MIG_PHASE_SWITCH, MIG_EV_FINISH, -1);
    mig_job_free(job);

    /* Without a forecast, a switch is taken to last a minute: 22:13:20 + 60 s > 22:14. */
    job = windowed("22:00-22:14", MIG_JOB_RUNNING, 1);
    n = expect_next(job, MIG_OUT_DONE, MIG_DO_SLEEP, -1, -1, MIG_EV_SYNCED, -1);
    assert_int_equal(n.wait, MIG_WAIT_WINDOW);
    mig_job_free(job);
    job = windowed("22:00-22:15", MIG_JOB_RUNNING, 1);
    expect_next(job, MIG_OUT_DONE, MIG_DO_PLAN, -1, MIG_PHASE_SWITCH, -1, -1);
    mig_job_free(job);
    /* An auto job ready once stays ready while its window rounds look stalled. */
    job = windowed("22:00-23:00", MIG_JOB_WAITING, 4);
    job->mode = MIG_MODE_AUTO;
    job->ctx.stalled = true;
    job->ctx.last_delta = 10;
    expect_next(job, MIG_OUT_SLEPT, MIG_DO_PLAN, -1, MIG_PHASE_SWITCH, MIG_EV_FINISH, -1);
    mig_job_free(job);

    /* An incremental job's finish waits for the window too. */
    job = windowed("23:00-01:00", MIG_JOB_WAITING, 3);
    job->mode = MIG_MODE_INCREMENTAL;
    job->finish_requested = true;
    expect_next(job, MIG_OUT_SLEPT, MIG_DO_PLAN, -1, -1, -1, -1);
    /* Without a window: at once. */
    job->window.set = false;
    expect_next(job, MIG_OUT_SLEPT, MIG_DO_PLAN, -1, MIG_PHASE_SWITCH, MIG_EV_FINISH, -1);
    mig_job_free(job);
}

/*
 * limits.switches_per_cn: while other switches hold its CNs, a job ready
 * to switch sleeps a second in its state and asks again; then it switches.
 */
static void test_switch_slot(void **state)
{
    (void)state;
    struct mig_lifecycle_cfg busy = CFG;
    busy.switch_slot_taken = true;
    struct mig_job *job = ready_to_switch();
    struct mig_next n =
        expect_next_under(job, &busy, MIG_OUT_DONE, NOW, MIG_DO_SLEEP, -1, -1, -1, -1);
    expect_sleep(&n, MIG_SWITCH_SLOT_RETRY_MS, MIG_WAIT_SWITCH_SLOT);
    n = mig_lifecycle_next(job, &busy, MIG_OUT_SLEPT, NOW);
    assert_int_equal(n.wait, MIG_WAIT_SWITCH_SLOT);
    /* A restart in that sleep asks again at once (the slot is the engine's view now). */
    job->ctx.wake_ms = NOW + 500;
    n = mig_lifecycle_next(job, &busy, MIG_OUT_START, NOW);
    assert_int_equal(n.wait, MIG_WAIT_SWITCH_SLOT);
    expect_next(job, MIG_OUT_START, MIG_DO_PLAN, -1, MIG_PHASE_SWITCH, -1, -1);
    /* A waiting incremental job asked to finish keeps waiting meanwhile. */
    job->state = MIG_JOB_WAITING;
    job->mode = MIG_MODE_INCREMENTAL;
    job->finish_requested = true;
    expect_next_under(job, &busy, MIG_OUT_SLEPT, NOW, MIG_DO_SLEEP, -1, -1, -1, -1);
    expect_next(job, MIG_OUT_SLEPT, MIG_DO_PLAN, -1, MIG_PHASE_SWITCH, MIG_EV_FINISH, -1);
    mig_job_free(job);
}

/*
 * A paused evacuation (migctl pause): its job ready to switch does not; it
 * rests waiting and does a round every interval (abort still undoes), and
 * switches at the first decision once the pause is lifted.
 */
static void test_paused_evacuation(void **state)
{
    (void)state;
    struct mig_lifecycle_cfg held = CFG;
    held.held = true;
    struct mig_job *job = ready_to_switch();
    struct mig_next n =
        expect_next_under(job, &held, MIG_OUT_DONE, NOW, MIG_DO_SLEEP, -1, -1, MIG_EV_SYNCED, -1);
    expect_sleep(&n, CFG.interval_ms, MIG_WAIT_PAUSED);
    assert_true(apply_next(job, &n));
    assert_int_equal(job->state, MIG_JOB_WAITING);
    /* Its sleep ends: another round, never the switch. */
    expect_next_under(job, &held, MIG_OUT_SLEPT, NOW + (int64_t)CFG.interval_ms, MIG_DO_PLAN,
                      -1, -1, -1, -1);
    n = expect_next_under(job, &held, MIG_OUT_DONE, NOW, MIG_DO_SLEEP, -1, -1, -1, -1);
    assert_int_equal(n.wait, MIG_WAIT_PAUSED);
    /* A restart while paused sleeps on; an auto job converged is held the same way. */
    job->ctx.wake_ms = NOW + 1000;
    n = expect_next_under(job, &held, MIG_OUT_START, NOW, MIG_DO_SLEEP, -1, -1, -1, -1);
    assert_int_equal(n.wait, MIG_WAIT_PAUSED);
    /* Resumed (the engine wakes it): the switch begins, finishing the wait. */
    expect_next(job, MIG_OUT_SLEPT, MIG_DO_PLAN, -1, MIG_PHASE_SWITCH, MIG_EV_FINISH, -1);
    /* An abort while paused undoes, as always. */
    job->abort_requested = true;
    expect_next_under(job, &held, MIG_OUT_SLEPT, NOW, MIG_DO_UNDO, -1, -1, -1, -1);
    mig_job_free(job);
}

/*
 * migctl pause JOB: a first send cut by it rests the job waiting (no undo),
 * a restart keeps it resting, and the resume sends again before anything
 * else, even for a full job that would otherwise switch now.  A job paused
 * mid-round ends the round and rests without rounds; one paused during its
 * prepare rests before its first send; an abort still undoes.
 */
static void test_paused_job(void **state)
{
    (void)state;
    struct mig_job *job = job_at(MIG_MODE_FULL, MIG_JOB_RUNNING, MIG_TASK_MIGRATE,
                                 MIG_PHASE_SYNC, 0);
    job->paused = true;
    struct mig_next n = expect_next(job, MIG_OUT_CANCELED, MIG_DO_SLEEP, -1, -1, MIG_EV_SYNCED, -1);
    assert_int_equal(n.wait, MIG_WAIT_JOB_PAUSED);
    assert_int_equal(n.sleep_ms, CFG.wait_ms);
    assert_true(apply_next(job, &n));
    assert_int_equal(job->state, MIG_JOB_WAITING);
    /* Its looks while paused, and a restart, rest on. */
    n = expect_next(job, MIG_OUT_SLEPT, MIG_DO_SLEEP, -1, -1, -1, -1);
    assert_int_equal(n.wait, MIG_WAIT_JOB_PAUSED);
    expect_next(job, MIG_OUT_START, MIG_DO_SLEEP, -1, -1, -1, -1);
    job->ctx.wake_ms = 0; /* killed in its first send before the cut was on record */
    expect_next(job, MIG_OUT_START, MIG_DO_SLEEP, -1, -1, -1, -1);
    /* Resumed: the first send again (a full job with no round must not switch). */
    job->paused = false;
    expect_next(job, MIG_OUT_SLEPT, MIG_DO_PLAN, -1, -1, -1, -1);
    expect_next(job, MIG_OUT_START, MIG_DO_PLAN, -1, -1, -1, -1);
    /* A cut without a pause or an abort is a failure, undone. */
    expect_next(job, MIG_OUT_CANCELED, MIG_DO_UNDO, -1, -1, -1, -1);
    mig_job_free(job);

    /* An auto job paused mid-round: the round ends, then it rests, with no more rounds. */
    job = job_at(MIG_MODE_AUTO, MIG_JOB_RUNNING, MIG_TASK_MIGRATE, MIG_PHASE_SYNC, 3);
    job->ctx.last_delta = 10; /* converged: it would switch now */
    job->paused = true;
    n = expect_next(job, MIG_OUT_DONE, MIG_DO_SLEEP, -1, -1, MIG_EV_SYNCED, -1);
    assert_int_equal(n.wait, MIG_WAIT_JOB_PAUSED);
    assert_true(apply_next(job, &n));
    expect_next(job, MIG_OUT_SLEPT, MIG_DO_SLEEP, -1, -1, -1, -1);
    job->ctx.wake_ms = NOW + 1000;
    expect_next(job, MIG_OUT_START, MIG_DO_SLEEP, -1, -1, -1, -1);
    /* An abort while paused undoes. */
    job->abort_requested = true;
    expect_next(job, MIG_OUT_SLEPT, MIG_DO_UNDO, -1, -1, -1, -1);
    job->abort_requested = false;
    /* Resumed: the switch at once (it had converged). */
    job->paused = false;
    expect_next(job, MIG_OUT_SLEPT, MIG_DO_PLAN, -1, MIG_PHASE_SWITCH, MIG_EV_FINISH, -1);
    mig_job_free(job);

    /* Paused during its prepare: ready for the first send, which waits. */
    job = job_at(MIG_MODE_FULL, MIG_JOB_RUNNING, MIG_TASK_MIGRATE, MIG_PHASE_PREPARE, 0);
    job->paused = true;
    n = expect_next(job, MIG_OUT_DONE, MIG_DO_SLEEP, -1, MIG_PHASE_SYNC, MIG_EV_SYNCED, -1);
    assert_int_equal(n.wait, MIG_WAIT_JOB_PAUSED);
    mig_job_free(job);

    /* Past the start of its switch a pause does not hold it (and migd refuses it). */
    job = job_at(MIG_MODE_FULL, MIG_JOB_RUNNING, MIG_TASK_MIGRATE, MIG_PHASE_SWITCH, 1);
    job->paused = true;
    assert_false(mig_job_pausable(job));
    expect_next(job, MIG_OUT_DONE, MIG_DO_PLAN, -1, MIG_PHASE_CLEANUP, -1, -1);
    mig_job_free(job);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(mig_outcome_name(MIG_OUT_START), "start");
    assert_string_equal(mig_outcome_name(MIG_OUT_UNDO_STOPPED), "undo_stopped");
    assert_string_equal(mig_outcome_name(MIG_NOUTCOMES), "unknown");
}

UNIT_TEST_MAIN(NULL, NULL,
               cmocka_unit_test(test_start),
               cmocka_unit_test(test_start_in_sync),
               cmocka_unit_test(test_done_tasks_and_phases),
               cmocka_unit_test(test_done_sync_rounds),
               cmocka_unit_test(test_slept),
               cmocka_unit_test(test_failures),
               cmocka_unit_test(test_undone),
               cmocka_unit_test(test_a_restart_decides_as_the_run_did),
               cmocka_unit_test(test_health_gate),
               cmocka_unit_test(test_window),
               cmocka_unit_test(test_switch_slot),
               cmocka_unit_test(test_paused_evacuation),
               cmocka_unit_test(test_paused_job),
               cmocka_unit_test(test_names))
