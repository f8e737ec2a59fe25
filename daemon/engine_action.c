/*
 * engine_action.c: the operators' actions on a job (finish, abort,
 * rollback, cleanup).  Each is recorded before it takes effect, so a
 * refused write changes nothing; a running job hears of it at once.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "err.h"
#include "metrics.h"
#include "util.h"

/* What a running job is busy with, for a refusal. */
/* The job is walking its first send now (the one thing a pause cuts). */
static bool first_send(const struct mig_job *job, const struct jrun *r)
{
    return r != NULL && !r->sleeping && job->phase == MIG_PHASE_SYNC && job->ctx.rounds == 0;
}

static const char *doing(const struct mig_job *job)
{
    if (job->undoing)
        return "is rolling back";
    if (job->task == MIG_TASK_RETURN)
        return "is moving back to its source (phase rollback)";
    if (job->task == MIG_TASK_REMOVE_SOURCE)
        return "is deleting its source copy (phase cleanup)";
    return NULL;
}

/*
 * migctl pause|resume JOB: marks the job (saved by the caller).  A paused
 * job ends the round it is in and rests waiting (the lifecycle's
 * rest_paused); only its first send is cut, as nothing of a later round is
 * lost by waiting for its end.  0 or -EINVAL with msg saying why.
 */
static int mark_paused(struct mig_job *job, const struct jrun *r, bool pause, char *msg,
                       size_t msgsz)
{
    if (!mig_job_pausable(job)) {
        snprintf(msg, msgsz,
                 "job %s is %s in phase %s%s: only a migration that has not begun its switch "
                 "can be paused or resumed",
                 job->uuid, mig_job_state_name(job->state),
                 mig_phase_name(mig_job_shown_phase(job)), job->abort_requested ? ", aborting" : "");
        return -EINVAL;
    }
    if (job->paused == pause) {
        if (!pause && job->evacuation[0] != '\0')
            snprintf(msg, msgsz, "job %s is not paused (if its evacuation is: migctl resume %s)",
                     job->uuid, job->evacuation);
        else
            snprintf(msg, msgsz, "job %s is %s", job->uuid, pause ? "already paused" : "not paused");
        return -EINVAL;
    }
    job->paused = pause;
    if (!pause && job->ctx.wake_ms > 0)
        job->ctx.wake_ms = mig_now_ms(); /* its paused rest is over: a restart goes on at once */
    if (!pause)
        snprintf(msg, msgsz, "job %s: resumed", job->uuid);
    else if (job->state == MIG_JOB_QUEUED)
        snprintf(msg, msgsz, "job %s: paused; it does not start until migctl resume %s", job->uuid,
                 job->uuid);
    else if (first_send(job, r))
        snprintf(msg, msgsz,
                 "job %s: paused; its first send is cut, and goes on from what %s holds on "
                 "migctl resume %s",
                 job->uuid, job->target_hostname, job->uuid);
    else
        snprintf(msg, msgsz,
                 "job %s: paused; it ends the round it is in, then waits for migctl resume %s",
                 job->uuid, job->uuid);
    return 0;
}

/* Starts a switched job's rollback or cleanup as a running task. */
static int start_task(struct engine *e, struct mig_job *stored, enum mig_task task, char *msg,
                      size_t msgsz)
{
    stored->task = task;
    stored->phase = task == MIG_TASK_RETURN ? MIG_PHASE_ROLLBACK : MIG_PHASE_CLEANUP;
    /* A cleanup or a rollback, by hand or by the timer, ends the timer: never twice. */
    stored->cleanup_at = 0;
    mig_job_clear_error(stored);
    mig_job_apply(stored, task == MIG_TASK_RETURN ? MIG_EV_RETURN : MIG_EV_REMOVE);
    int rc = mig_store_job_save(e->d->store, stored);
    if (rc == 0)
        metrics_state(e->metrics, MIG_JOB_SWITCHED, stored->state);
    if (rc != 0) {
        snprintf(msg, msgsz, "cannot record the %s of job %s: %s; nothing was changed",
                 task == MIG_TASK_RETURN ? "rollback" : "cleanup", stored->uuid,
                 mig_strerror(rc));
        mig_job_free(stored);
        return MIG_EDB;
    }
    mig_log(MIG_LOG_INFO, stored->uuid, stored->vm_uuid, "%s", msg);
    struct jrun *r = run_new(e, stored);
    if (r == NULL) {
        mig_job_free(stored);
        return -ENOMEM;
    }
    watch_notify(e, stored);
    run_plan(r);
    return 0;
}

int engine_return_home(struct engine *e, const char *job_uuid, const char *homecoming,
                       int parallel, char *msg, size_t msgsz)
{
    struct mig_job *stored = NULL;
    if (!mig_uuid_valid(job_uuid))
        return -ENOENT;
    int rc = mig_store_job_load(e->d->store, job_uuid, &stored);
    if (rc != 0) {
        snprintf(msg, msgsz, "job %s cannot be read from the database: %s", job_uuid,
                 mig_strerror(rc));
        return rc == -ENOENT ? rc : MIG_EDB;
    }
    if (stored->state != MIG_JOB_SWITCHED || run_find(e, job_uuid) != NULL) {
        snprintf(msg, msgsz, "job %s is %s: only a switched job at rest can be rolled back",
                 job_uuid, mig_job_state_name(stored->state));
        mig_job_free(stored);
        return -EINVAL;
    }
    snprintf(stored->evacuation, sizeof(stored->evacuation), "%s", homecoming);
    stored->evac_parallel = parallel;
    snprintf(msg, msgsz,
             "job %s: homecoming %s moves %s back to %s; what changed on %s is sent back first",
             stored->uuid, homecoming, stored->vm_uuid, stored->source_hostname,
             stored->target_hostname);
    return start_task(e, stored, MIG_TASK_RETURN, msg, msgsz);
}

int engine_action(struct engine *e, const char *job_uuid, const char *action, char *msg,
                  size_t msgsz)
{
    struct mig_job *stored = NULL;
    if (!mig_uuid_valid(job_uuid))
        return -ENOENT;
    int lrc = mig_store_job_load(e->d->store, job_uuid, &stored);
    if (lrc == -ENOENT)
        return -ENOENT;
    if (lrc != 0) {
        snprintf(msg, msgsz, "job %s cannot be read from the database: %s", job_uuid,
                 mig_strerror(lrc));
        return MIG_EDB;
    }
    struct jrun *r = run_find(e, job_uuid);
    struct mig_job *job = r != NULL ? r->job : stored;
    const char *busy = doing(job);
    int rc = 0;
    bool counted_abort = false; /* a queued job aborted here: counted once saved */
    int64_t timer_before = 0, after_before = 0; /* cancel_timer: put back if not recorded */
    bool paused_before = job->paused;           /* an abort ends a pause: put back likewise */
    if (r != NULL && r->retrying != 0) {
        snprintf(msg, msgsz, "job %s is retrying its %d leftover(s) now; try again in a few seconds",
                 job->uuid, job->nleftovers);
        rc = strcmp(action, "cleanup") == 0 ? 0 : -EINVAL;
        mig_job_free(stored);
        return rc;
    } else if (strcmp(action, "cleanup") == 0 && r == NULL && mig_job_state_final(job->state) &&
               job->nleftovers > 0) {
        /* An ended job's cleanup is its leftovers, retried now. */
        mig_job_leftover_retry_now(job, mig_now_ms());
        snprintf(msg, msgsz, "job %s: retrying its %d leftover(s) now (see migctl show %s)",
                 job->uuid, job->nleftovers, job->uuid);
    } else if (busy != NULL && job->state == MIG_JOB_RUNNING) {
        snprintf(msg, msgsz, "job %s %s; wait for it to end (migctl watch %s)", job->uuid, busy,
                 job->uuid);
        rc = -EINVAL;
    } else if (strcmp(action, "finish") == 0) {
        if (job->mode == MIG_MODE_FULL ||
            !(job->state == MIG_JOB_RUNNING || job->state == MIG_JOB_WAITING ||
              job->state == MIG_JOB_QUEUED) ||
            job->phase >= MIG_PHASE_SWITCH) {
            snprintf(msg, msgsz,
                     "job %s is %s (%s mode, phase %s): only an incremental job that has not "
                     "switched can be finished",
                     job->uuid, mig_job_state_name(job->state), mig_mode_name(job->mode),
                     mig_phase_name(mig_job_shown_phase(job)));
            rc = -EINVAL;
        } else {
            job->finish_requested = true;
            snprintf(msg, msgsz, "job %s: finishing; the switch starts after the current round",
                     job->uuid);
        }
    } else if (strcmp(action, "abort") == 0) {
        if (job->state == MIG_JOB_QUEUED && r == NULL) {
            mig_job_set_error(job, "Aborted", "aborted by the operator before it started");
            mig_job_apply(job, MIG_EV_ABORT);
            job->paused = false;
            counted_abort = true;
            snprintf(msg, msgsz, "job %s aborted before it started; nothing was changed",
                     job->uuid);
        } else if ((job->state == MIG_JOB_RUNNING || job->state == MIG_JOB_WAITING) &&
                   job->task == MIG_TASK_MIGRATE && job->phase < MIG_PHASE_SWITCH) {
            if (job->abort_requested) {
                snprintf(msg, msgsz, "job %s is already aborting", job->uuid);
                rc = -EINVAL;
            } else {
                job->abort_requested = true;
                job->paused = false; /* the undo walks, paused or not */
                snprintf(msg, msgsz, "job %s: aborting; what was sent to %s will be removed",
                         job->uuid, job->target_hostname);
            }
        } else {
            snprintf(msg, msgsz, "job %s is %s in phase %s: it can no longer be aborted%s",
                     job->uuid, mig_job_state_name(job->state),
                     mig_phase_name(mig_job_shown_phase(job)),
                     job->state == MIG_JOB_SWITCHED ? "; use rollback" : "");
            rc = -EINVAL;
        }
    } else if (strcmp(action, "cleanup") == 0 || strcmp(action, "rollback") == 0) {
        bool back = strcmp(action, "rollback") == 0;
        if (job->task == MIG_TASK_MIGRATE && job->phase == MIG_PHASE_VERIFY &&
            job->state == MIG_JOB_RUNNING) {
            /* The gate rolls back by itself if the VM is not healthy; otherwise it ends soon. */
            snprintf(msg, msgsz,
                     "job %s is in its health gate on %s (phase verify, %d s up wanted): it rolls "
                     "back by itself if a check fails; %s it once it is switched",
                     job->uuid, job->target_hostname, job->health.min_up_s,
                     back ? "roll back" : "clean up");
            rc = -EINVAL;
        } else if (job->state != MIG_JOB_SWITCHED || r != NULL) {
            snprintf(msg, msgsz, "job %s is %s: only a switched job %s%s", job->uuid,
                     mig_job_state_name(job->state),
                     back ? "can be rolled back"
                          : "'s source copy can be deleted (and an ended job's leftovers "
                            "retried; this one has none)",
                     back && (job->state == MIG_JOB_RUNNING || job->state == MIG_JOB_WAITING)
                         ? "; use abort"
                         : "");
            rc = -EINVAL;
        } else if (back) {
            snprintf(msg, msgsz,
                     "job %s: moving %s back to %s; what changed on %s is sent back first",
                     job->uuid, job->vm_uuid, job->source_hostname, job->target_hostname);
            return start_task(e, stored, MIG_TASK_RETURN, msg, msgsz);
        } else {
            snprintf(msg, msgsz, "job %s: deleting the source copy of %s on %s", job->uuid,
                     job->vm_uuid, job->source_hostname);
            /* Its leftovers are retried as soon as the deletion ends. */
            mig_job_leftover_retry_now(stored, mig_now_ms());
            return start_task(e, stored, MIG_TASK_REMOVE_SOURCE, msg, msgsz);
        }
    } else if (strcmp(action, "cancel_timer") == 0) {
        if (job->cleanup_at == 0 && (job->cleanup_after_s == 0 || job->state == MIG_JOB_SWITCHED ||
                                     mig_job_state_final(job->state))) {
            snprintf(msg, msgsz, "job %s has no cleanup timer", job->uuid);
            rc = -EINVAL;
        } else {
            timer_before = job->cleanup_at;
            after_before = job->cleanup_after_s;
            job->cleanup_at = 0;
            job->cleanup_after_s = 0;
            snprintf(msg, msgsz,
                     "job %s: cleanup timer canceled; the source copy on %s stays until "
                     "\"migctl cleanup %s\"",
                     job->uuid, job->source_hostname, job->uuid);
        }
    } else if (strcmp(action, "pause") == 0 || strcmp(action, "resume") == 0) {
        rc = mark_paused(job, r, strcmp(action, "pause") == 0, msg, msgsz);
    } else {
        snprintf(msg, msgsz,
                 "unknown action \"%s\": use finish, abort, rollback, cleanup, cancel_timer, "
                 "pause or resume",
                 action);
        rc = -EINVAL;
    }
    if (rc == 0) {
        /* Recorded before it takes effect: a refused write changes nothing. */
        int src = mig_store_job_save(e->d->store, job);
        if (src != 0) {
            if (strcmp(action, "abort") == 0) {
                job->abort_requested = false;
                job->paused = paused_before;
            } else if (strcmp(action, "cancel_timer") == 0) {
                job->cleanup_at = timer_before;
                job->cleanup_after_s = after_before;
            } else if (strcmp(action, "pause") == 0 || strcmp(action, "resume") == 0) {
                job->paused = !job->paused;
            } else {
                job->finish_requested = false;
            }
            snprintf(msg, msgsz, "cannot record the %s of job %s: %s; nothing was changed", action,
                     job->uuid, mig_strerror(src));
            mig_job_free(stored);
            return MIG_EDB;
        }
        if (counted_abort)
            metrics_state(e->metrics, MIG_JOB_QUEUED, MIG_JOB_ABORTED);
        mig_log(MIG_LOG_INFO, job->uuid, job->vm_uuid, "%s", msg);
        watch_notify(e, job);
        if (r != NULL && strcmp(action, "cancel_timer") != 0) {
            if (strcmp(action, "abort") == 0)
                exec_interrupt(r->x, "interrupted by the operator's abort"); /* cut now */
            else if (strcmp(action, "pause") == 0 && first_send(job, r)) {
                r->cut_by_pause = true; /* a resume before the cut ends lets the send go on */
                exec_interrupt(r->x, "interrupted by the operator's pause");
            } else
                exec_wake(r->x); /* a resting job decides again: rests paused, or goes on */
        } else if (r == NULL && strcmp(action, "resume") == 0) {
            admit_schedule(e); /* a queued job may start now */
        }
    }
    mig_job_free(stored);
    if (rc == 0 && strcmp(action, "cleanup") == 0)
        leftovers_retry_due(e);
    return rc;
}
