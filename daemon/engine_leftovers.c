/*
 * engine_leftovers.c: the retries of leftovers (what a job's removals could
 * not remove yet, job.h) of jobs at rest, as the engine's tick finds them
 * due or an operator's cleanup asks: a run of its own walks the actions'
 * leftovers, then the undos', and puts what is still there off to its next
 * turn (the backoff is mig_job_leftover_note's).
 */
#include <stdlib.h>

#include "engine_int.h"
#include "util.h"

/* The steps of the job's leftovers left by actions (undo false) or by undos, into p. */
static int leftover_plan(const struct mig_job *job, bool undo, struct mig_plan *p)
{
    p->n = 0;
    for (int i = 0; i < job->nleftovers && p->n < MIG_PLAN_MAX; i++) {
        const struct mig_leftover *lo = &job->leftovers[i];
        if (lo->undo == undo && mig_plan_step_from_key(lo->key, &p->steps[p->n]) == 0)
            p->n++;
    }
    return p->n;
}

/* The retry walks ended: what is still there waits for its next turn. */
static void retry_done(struct jrun *r)
{
    struct mig_job *job = r->job;
    int64_t now = mig_now_ms();
    /* Left untried (its action no longer applies): later, not on every tick. */
    for (int i = 0; i < job->nleftovers; i++)
        if (job->leftovers[i].next_ms <= now) {
            struct mig_leftover lo = job->leftovers[i];
            mig_job_leftover_note(job, &lo, now);
        }
    mig_job_set_activity(job, NULL);
    if (job->nleftovers == 0)
        jlog(job, MIG_LOG_INFO, "every leftover of job %s is removed", job->uuid);
    else
        jlog(job, MIG_LOG_INFO, "job %s keeps %d leftover(s); next retry in %lld s", job->uuid,
             job->nleftovers, (long long)((mig_job_leftover_due(job) - now + 999) / 1000));
    run_save(r);
    run_end(r);
}

/* Runs the next walk of a leftover retry: the actions' own, then the undos'. */
void leftovers_walk(struct jrun *r)
{
    struct mig_plan *p = mig_calloc(1, sizeof(*p));
    bool started = false;
    while (!started && r->retrying < 2) {
        r->retrying++;
        if (leftover_plan(r->job, r->retrying == 2, p) == 0)
            continue;
        started = true;
        if (r->retrying == 1)
            exec_run(r->x, p);
        else
            exec_undo_steps(r->x, p);
    }
    free(p);
    if (!started)
        retry_done(r);
}

/* Jobs at rest whose leftovers are due: each retried by a run of its own. */
void leftovers_retry_due(struct engine *e)
{
    char due[8][MIG_UUID_LEN + 1];
    size_t n = 0;
    if (mig_store_leftovers_due(e->d->store, mig_now_ms(), 8, due, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        struct mig_job *job = NULL;
        if (run_find(e, due[i]) != NULL || mig_store_job_load(e->d->store, due[i], &job) != 0)
            continue;
        if (!mig_job_state_final(job->state) && job->state != MIG_JOB_SWITCHED) {
            mig_job_free(job); /* its own run retries them as it goes */
            continue;
        }
        struct jrun *r = run_new(e, job);
        if (r == NULL) {
            mig_job_free(job);
            continue;
        }
        r->retrying = 0;
        jlog(job, MIG_LOG_INFO, "job %s: retrying %d leftover(s)", job->uuid, job->nleftovers);
        mig_job_set_activity(job, "retrying %d leftover(s)", job->nleftovers);
        watch_notify(e, job);
        leftovers_walk(r);
    }
}
