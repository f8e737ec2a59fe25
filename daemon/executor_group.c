/*
 * executor_group.c: the rows of a MIG_ACT_PARALLEL action at once
 * (executor_int.h).  A kid executor walks a plan of one row, so each row is
 * journaled "started" before it acts and "done" after, probed when a
 * restart finds it started, and retried alone; the crash campaign can kill
 * the daemon with two rows started.  The job's stream cap is shared by the
 * kids running when a stream starts (executor.c's drive), its rate is the
 * sum of theirs.
 */
#include <stdio.h>

#include "err.h"
#include "executor_int.h"

/* One past the group that starts at step at: the same action's rows of its round. */
static int group_end(struct exec *x)
{
    const struct mig_step *s = &x->plan.steps[x->at];
    int end = x->at + 1;
    while (end < x->plan.n && x->plan.steps[end].def == s->def &&
           x->plan.steps[end].round == s->round)
        end++;
    return end;
}

static void group_fill(struct exec *x);

static void kid_changed(void *owner)
{
    struct kid *k = owner;
    k->parent->hooks->changed(k->parent->owner);
}

/*
 * A kid's row ended.  A failure cuts the rows still running (their sends
 * are undone with the rest) and the group ends with it once they stop.
 */
static void kid_finished(void *owner, int err)
{
    struct kid *k = owner;
    struct exec *x = k->parent;
    k->running = false;
    x->group_running--;
    x->streamed += exec_streamed(k->x);
    if (err != 0 && (x->group_err == 0 || x->group_err == MIG_ECANCELED)) {
        x->group_err = err;
        x->failed_forward = exec_failed_forward(k->x);
    }
    if (err != 0 && err != MIG_ECANCELED)
        for (int i = 0; i < x->width; i++)
            if (x->kids[i].running)
                exec_interrupt(x->kids[i].x, "interrupted: another stream of the round failed");
    group_fill(x);
}

static const struct exec_hooks KID_HOOKS = {kid_changed, kid_finished};

/* Starts step i's row in kid k: a walk of a plan of that one step, journaled as ever. */
static int kid_start(struct exec *x, struct kid *k, int i)
{
    if (k->x == NULL) {
        int rc = exec_alloc(x->d, x->job, NULL, &KID_HOOKS, k, &k->x);
        if (rc != 0)
            return rc;
        k->x->parent = x;
        k->parent = x;
    }
    static struct mig_plan one; /* copied by exec_run */
    one.n = 1;
    one.steps[0] = x->plan.steps[i];
    k->running = true;
    x->group_running++;
    exec_run(k->x, &one);
    return 0;
}

/* Then the walk goes on after the rows taken, or ends with the group's failure. */
static void group_done(struct exec *x)
{
    x->stage = ST_IDLE;
    mig_job_set_activity(x->job, NULL);
    if (x->group_err != 0) {
        exec_finish(x, x->group_err);
        return;
    }
    if (exec_load_journal(x) != 0) {
        mig_job_set_error(x->job, "DatabaseError", "cannot read the job's journal");
        exec_finish(x, MIG_EDB);
        return;
    }
    x->at = x->group_next;
    exec_next_forward(x);
}

/* Gives each idle kid the group's next row, unless the group is failing or cut. */
static void group_fill(struct exec *x)
{
    if (x->group_filling)
        return; /* a kid that ends at once: the loop below goes on */
    x->group_filling = true;
    for (int i = 0; i < x->width && x->group_err == 0 && !x->interrupted; i++) {
        while (x->group_next < x->group_end && !exec_row_pending(x, x->group_next))
            x->group_next++;
        if (x->group_next == x->group_end)
            break;
        if (x->kids[i].running)
            continue;
        int rc = kid_start(x, &x->kids[i], x->group_next++);
        if (rc != 0 && x->group_err == 0) {
            char msg[128];
            snprintf(msg, sizeof(msg), "cannot start a stream: %s", mig_strerror(rc));
            mig_job_set_error(x->job, "InternalError", msg);
            x->group_err = rc;
        }
    }
    x->group_filling = false;
    if (x->group_running == 0)
        group_done(x);
}

bool exec_group_start(struct exec *x)
{
    int end = group_end(x), todo = 0;
    for (int i = x->at; i < end; i++)
        todo += exec_row_pending(x, i);
    if (todo < 2 || x->d->cfg->transfer.streams < 2)
        return false;
    x->stage = ST_GROUP;
    x->width = x->d->cfg->transfer.streams < todo ? x->d->cfg->transfer.streams : todo;
    x->group_next = x->at;
    x->group_end = end;
    x->group_running = 0;
    x->group_err = 0;
    group_fill(x);
    return true;
}
