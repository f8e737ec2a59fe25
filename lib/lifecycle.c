/*
 * lifecycle.c: the course of a job as one table (lifecycle.h).  Each row is
 * a function of the job's record and the outcome it just had; the rows are
 * chosen by outcome first, then by task and phase.
 */
#include <stddef.h>
#include <stdint.h>

#include "lifecycle.h"

#define ALL_MIGRATE_PHASES                                                                         \
    ((1u << MIG_PHASE_PREPARE) | (1u << MIG_PHASE_SYNC) | (1u << MIG_PHASE_SWITCH))

static struct mig_next next(enum mig_do what)
{
    return (struct mig_next){.what = what, .task = -1, .phase = -1, .events = {-1, -1}};
}

static struct mig_next end_with(enum mig_job_event ev)
{
    struct mig_next n = next(MIG_DO_END);
    n.events[0] = (int)ev;
    return n;
}

/* The phases a task's undo walk covers. */
static unsigned undo_mask(const struct mig_job *job)
{
    if (job->task == MIG_TASK_RETURN)
        return 1u << MIG_PHASE_ROLLBACK;
    if (job->task == MIG_TASK_MIGRATE)
        return ALL_MIGRATE_PHASES;
    return 0;
}

static struct mig_next undo(const struct mig_job *job)
{
    struct mig_next n = next(MIG_DO_UNDO);
    n.undo_mask = undo_mask(job);
    return n;
}

/* migctl pause JOB holds the job now (a migration that has not begun its switch). */
static bool paused(const struct mig_job *job)
{
    return job->paused && mig_job_pausable(job);
}

/*
 * A paused job rests waiting: no round, no switch.  It looks again now and
 * then (a resume wakes it at once, so the look only bounds a lost wake).
 */
static struct mig_next rest_paused(const struct mig_job *job, const struct mig_lifecycle_cfg *cfg)
{
    struct mig_next n = next(MIG_DO_SLEEP);
    if (job->state == MIG_JOB_RUNNING)
        n.events[0] = MIG_EV_SYNCED;
    n.sleep_ms = cfg->wait_ms;
    n.wait = MIG_WAIT_JOB_PAUSED;
    return n;
}

/*
 * In sync, an operator's abort and then a pause come before any round or
 * switch: true with *n what they decide, false when neither was asked.
 */
static bool sync_held(const struct mig_job *job, const struct mig_lifecycle_cfg *cfg,
                      struct mig_next *n)
{
    if (job->abort_requested)
        *n = undo(job);
    else if (paused(job))
        *n = rest_paused(job, cfg);
    else
        return false;
    return true;
}

/* The last round's forecast of a switch now, -1 when there is none. */
static int64_t predicted_ms(const struct mig_job *job)
{
    return job->nround_log > 0 ? job->round_log[job->nround_log - 1].predicted_downtime_ms : -1;
}

/*
 * When a switch may start, at or after now: now inside the job's window
 * (or without one) when the predicted switch ends before the window
 * closes; else when the next window that it fits opens.
 */
int64_t mig_switch_allowed_at(const struct mig_job *job, int64_t now)
{
    int64_t opens = 0, closes = 0;
    if (!job->window.set)
        return now;
    if (mig_window_at(&job->window, now, &opens, &closes) != 0)
        return INT64_MAX; /* no zone rules: never a guess */
    /* Without a forecast yet (a full job's first round), a switch is taken to last a minute. */
    int64_t p = predicted_ms(job) >= 0 ? predicted_ms(job) : 60000;
    if (opens <= now && now + p <= closes)
        return now;
    if (opens <= now && mig_window_at(&job->window, closes, &opens, &closes) != 0)
        return INT64_MAX;
    return opens;
}

/*
 * After a round: switch, wait for finish (no more rounds), another round,
 * or rounds until the window opens (ready to switch outside it).
 */
enum sync_next { SYNC_ROUND, SYNC_WAIT, SYNC_SWITCH, SYNC_WINDOW };

static enum sync_next sync_decide(const struct mig_job *job, const struct mig_lifecycle_cfg *cfg,
                                  int64_t now)
{
    /* A first send cut by a pause is done again (from what the target holds) before anything. */
    if (job->ctx.rounds == 0)
        return SYNC_ROUND;
    /*
     * The rounds of a job waiting for its window repeat one interval's
     * writes and so look stalled: with a window, a stall does not take back
     * an auto job's readiness.
     */
    bool ready = job->mode == MIG_MODE_FULL || job->finish_requested ||
                 (job->mode == MIG_MODE_AUTO && job->ctx.rounds >= 2 &&
                  (!job->ctx.stalled || job->window.set) &&
                  ((job->ctx.last_delta >= 0 && job->ctx.last_delta < cfg->auto_switch_bytes) ||
                   (predicted_ms(job) >= 0 && predicted_ms(job) <= cfg->max_downtime_ms)));
    if (ready)
        return !cfg->held && mig_switch_allowed_at(job, now) <= now ? SYNC_SWITCH : SYNC_WINDOW;
    if (job->ctx.stalled || job->ctx.rounds >= cfg->max_rounds)
        return SYNC_WAIT;
    return SYNC_ROUND;
}

/*
 * How long a job ready to switch outside its window sleeps: until its next
 * round, never past the opening.  It does a round every interval however
 * far the opening (incremental.max_rounds and a stall do not stop them:
 * each keeps the final delta at one interval's writes).
 */
static uint64_t window_sleep_ms(const struct mig_job *job, const struct mig_lifecycle_cfg *cfg,
                                int64_t now)
{
    if (cfg->held)
        return cfg->interval_ms; /* paused: a round every interval until it resumes */
    int64_t at = mig_switch_allowed_at(job, now);
    uint64_t until = at > now ? (uint64_t)(at - now) : 0;
    if (at == INT64_MAX)
        until = cfg->wait_ms; /* the zone could not be read: look again later */
    return cfg->interval_ms < until ? cfg->interval_ms : until;
}

/*
 * The switch begins: a waiting job is finished by it.  While other
 * switches hold its CNs' slots it waits (in its state) and asks again.
 */
static struct mig_next to_switch(const struct mig_job *job, const struct mig_lifecycle_cfg *cfg)
{
    if (cfg->switch_slot_taken) {
        struct mig_next n = next(MIG_DO_SLEEP);
        n.sleep_ms = MIG_SWITCH_SLOT_RETRY_MS;
        n.wait = MIG_WAIT_SWITCH_SLOT;
        return n;
    }
    struct mig_next n = next(MIG_DO_PLAN);
    n.phase = MIG_PHASE_SWITCH;
    if (job->state == MIG_JOB_WAITING)
        n.events[0] = MIG_EV_FINISH;
    return n;
}

/* Why a job in sync sleeps. */
static enum mig_wait wait_reason(const struct mig_job *job, const struct mig_lifecycle_cfg *cfg,
                                 enum sync_next sn)
{
    return sn == SYNC_WINDOW && cfg->held ? MIG_WAIT_PAUSED
           : sn == SYNC_WINDOW   ? MIG_WAIT_WINDOW
           : job->ctx.stalled    ? MIG_WAIT_STALLED
           : sn == SYNC_WAIT     ? MIG_WAIT_MAX_ROUNDS
                                 : MIG_WAIT_NEXT_ROUND;
}

/*
 * What a job in sync decides first, after a round on record as after a
 * sleep: an abort or a pause (sync_held), then a switch when it is ready and
 * allowed now.  True with *out what that decides; else false with *sn what
 * sync_decide said.
 */
static bool sync_settled(const struct mig_job *job, const struct mig_lifecycle_cfg *cfg,
                         int64_t now, enum sync_next *sn, struct mig_next *out)
{
    if (sync_held(job, cfg, out))
        return true;
    *sn = sync_decide(job, cfg, now);
    if (*sn != SYNC_SWITCH)
        return false;
    *out = to_switch(job, cfg);
    return true;
}

/*
 * A round just ended (it is on record): switch, or sleep until the next
 * round or a finish.
 */
static struct mig_next sync_step(const struct mig_job *job, const struct mig_lifecycle_cfg *cfg,
                                 int64_t now)
{
    struct mig_next settled;
    enum sync_next sn;
    if (sync_settled(job, cfg, now, &sn, &settled))
        return settled;
    struct mig_next n = next(MIG_DO_SLEEP);
    /*
     * An incremental job, an auto one that stopped converging, and one ready
     * but outside its window rest waiting.
     */
    if ((job->mode == MIG_MODE_INCREMENTAL || job->ctx.stalled || sn == SYNC_WINDOW) &&
        job->state == MIG_JOB_RUNNING)
        n.events[0] = MIG_EV_SYNCED;
    n.sleep_ms = sn == SYNC_WINDOW ? window_sleep_ms(job, cfg, now)
                 : sn == SYNC_WAIT ? cfg->wait_ms
                                   : cfg->interval_ms;
    n.wait = wait_reason(job, cfg, sn);
    return n;
}

static struct mig_next on_slept(const struct mig_job *job, const struct mig_lifecycle_cfg *cfg,
                                int64_t now);

/*
 * Resumed in sync with a round on record: a round in progress (or ended but
 * not yet on record) goes on; a sleep goes on for what is left of it, or
 * ends now when it is over or a finish or abort cut it short.
 */
static struct mig_next resume_sync(const struct mig_job *job, const struct mig_lifecycle_cfg *cfg,
                                   int64_t now)
{
    struct mig_next held;
    if (sync_held(job, cfg, &held))
        return held;
    if (job->ctx.wake_ms == 0)
        return next(MIG_DO_PLAN);
    enum sync_next sn = sync_decide(job, cfg, now);
    if (now >= job->ctx.wake_ms || sn == SYNC_SWITCH)
        return on_slept(job, cfg, now);
    struct mig_next n = next(MIG_DO_SLEEP);
    n.sleep_ms = (uint64_t)(job->ctx.wake_ms - now);
    n.wait = wait_reason(job, cfg, sn);
    return n;
}

/* Started or resumed: the record alone says where the job is. */
static struct mig_next on_start(const struct mig_job *job, const struct mig_lifecycle_cfg *cfg,
                                int64_t now)
{
    if (job->undoing)
        return undo(job);
    if (job->task != MIG_TASK_MIGRATE)
        return next(MIG_DO_PLAN);
    if (job->abort_requested && job->phase < MIG_PHASE_SWITCH)
        return undo(job);
    if (job->phase == MIG_PHASE_VALIDATE) {
        /* Checked when it was submitted. */
        struct mig_next n = next(MIG_DO_PLAN);
        n.phase = MIG_PHASE_PREPARE;
        return n;
    }
    if (job->phase == MIG_PHASE_SYNC && paused(job))
        return rest_paused(job, cfg); /* paused before the restart, perhaps in its first send */
    if (job->phase == MIG_PHASE_SYNC && job->ctx.rounds > 0)
        return resume_sync(job, cfg, now);
    if (job->phase == MIG_PHASE_VERIFY && job->ctx.wake_ms > now) {
        /* Between two looks of the gate: the rest of the pause. */
        struct mig_next n = next(MIG_DO_SLEEP);
        n.sleep_ms = (uint64_t)(job->ctx.wake_ms - now);
        n.wait = MIG_WAIT_HEALTH;
        return n;
    }
    return next(MIG_DO_PLAN);
}

/* The health gate applies: the VM ran before the job, and the window is not 0. */
static bool gate_on(const struct mig_job *job)
{
    return job->vm_was_running == 1 && job->health.min_up_s > 0;
}

/* The migration is done (and its gate passed): switched, or on to delete the source. */
static struct mig_next switched(const struct mig_job *job)
{
    /* A failed gate kept by health.on_failure "report" never deletes the source copy. */
    if (job->cleanup_source && job->health.state != MIG_HEALTH_FAILED) {
        struct mig_next n = next(MIG_DO_PLAN);
        n.task = MIG_TASK_REMOVE_SOURCE;
        n.phase = MIG_PHASE_CLEANUP;
        n.events[0] = MIG_EV_SWITCHED;
        n.events[1] = MIG_EV_REMOVE;
        return n;
    }
    return end_with(MIG_EV_SWITCHED);
}

/* Past the window's end by this much: a timer that fires a little early still looks after it. */
#define VERIFY_SLACK_MS 50

uint64_t mig_verify_interval_ms(const struct mig_job *job, int64_t now)
{
    const struct mig_health *h = &job->health;
    int64_t ms = (int64_t)h->min_up_s * 100;
    if (ms < 1000)
        ms = 1000;
    if (ms > 60000)
        ms = 60000;
    if (h->since_ms > 0) {
        /* Until just past the window's end: the look after it is the last. */
        int64_t left = h->since_ms + (int64_t)h->min_up_s * 1000 + VERIFY_SLACK_MS - now;
        if (left > 0 && left < ms)
            ms = left;
    }
    return (uint64_t)ms;
}

/* The gate failed: roll back by itself (with its rounds), or keep the switch and say so. */
static struct mig_next gate_failed(const struct mig_job *job, const struct mig_lifecycle_cfg *cfg,
                                   const char *why)
{
    if (cfg->health_report)
        return end_with(MIG_EV_SWITCHED);
    struct mig_next n = next(MIG_DO_PLAN);
    n.task = MIG_TASK_RETURN;
    n.phase = MIG_PHASE_ROLLBACK;
    n.error_code = "HealthCheckFailed";
    n.error_message = why;
    (void)job;
    return n;
}

/* A pass of the gate ended: passed, failed, or another look after a pause. */
static struct mig_next verify_step(const struct mig_job *job, const struct mig_lifecycle_cfg *cfg,
                                   int64_t now)
{
    if (job->health.state == MIG_HEALTH_PASSED)
        return switched(job);
    if (job->health.state == MIG_HEALTH_FAILED)
        return gate_failed(job, cfg, job->health.why);
    struct mig_next n = next(MIG_DO_SLEEP);
    n.sleep_ms = mig_verify_interval_ms(job, now);
    n.wait = MIG_WAIT_HEALTH;
    return n;
}

/* A plan walked to its end. */
static struct mig_next on_done(const struct mig_job *job, const struct mig_lifecycle_cfg *cfg,
                               int64_t now)
{
    struct mig_next n = next(MIG_DO_PLAN);
    switch (job->task) {
    case MIG_TASK_RETURN:
        n = end_with(MIG_EV_ROLLED_BACK);
        /* A rollback the gate asked for keeps saying why. */
        n.clear_error = job->health.state != MIG_HEALTH_FAILED;
        return n;
    case MIG_TASK_REMOVE_SOURCE:
        n = end_with(MIG_EV_CLEANED);
        n.clear_error = true;
        return n;
    default:
        break;
    }
    /* An abort that came as the plan's last action ended: before the switch, it undoes. */
    if (job->abort_requested && job->phase < MIG_PHASE_SWITCH)
        return undo(job);
    switch (job->phase) {
    case MIG_PHASE_PREPARE:
        if (paused(job))
            n = rest_paused(job, cfg); /* ready for the first send, which waits */
        n.phase = MIG_PHASE_SYNC;
        return n;
    case MIG_PHASE_SYNC:
        return sync_step(job, cfg, now);
    case MIG_PHASE_SWITCH:
        n.phase = MIG_PHASE_CLEANUP;
        return n;
    case MIG_PHASE_CLEANUP:
        if (gate_on(job)) {
            n.phase = MIG_PHASE_VERIFY;
            return n;
        }
        return switched(job);
    case MIG_PHASE_VERIFY:
        return verify_step(job, cfg, now);
    default:
        return switched(job);
    }
}

/* A sleep between rounds ended (or was cut short by finish or abort). */
static struct mig_next on_slept(const struct mig_job *job, const struct mig_lifecycle_cfg *cfg,
                                int64_t now)
{
    if (job->phase == MIG_PHASE_VERIFY)
        return next(MIG_DO_PLAN); /* the gate's next look */
    struct mig_next settled;
    enum sync_next sn;
    if (sync_settled(job, cfg, now, &sn, &settled))
        return settled;
    /* Outside the window, a round after each sleep. */
    if (sn == SYNC_ROUND || sn == SYNC_WINDOW)
        return next(MIG_DO_PLAN);
    struct mig_next n = next(MIG_DO_SLEEP);
    n.sleep_ms = cfg->wait_ms;
    n.wait = wait_reason(job, cfg, sn);
    return n;
}

/* An action failed (or the walk was cut) before the point of no return. */
static struct mig_next on_failed(const struct mig_job *job)
{
    if (job->task == MIG_TASK_REMOVE_SOURCE) {
        /* The source copy stays; so does the VM on the target. */
        struct mig_next n = end_with(MIG_EV_KEPT);
        n.task = MIG_TASK_MIGRATE;
        return n;
    }
    if (job->task == MIG_TASK_MIGRATE && job->phase == MIG_PHASE_CLEANUP)
        return end_with(MIG_EV_FAIL);
    return undo(job);
}

/* The gate could not look at the target (it stayed unreachable): as a failed check. */
static struct mig_next on_verify_failed(const struct mig_job *job,
                                        const struct mig_lifecycle_cfg *cfg)
{
    /* The engine notes such a failure in health (why) before it asks. */
    return gate_failed(job, cfg,
                       job->health.why[0] != '\0' ? job->health.why
                       : job->error_message != NULL ? job->error_message
                                                    : "the target could not be checked");
}

/* The undo walk ended: the task's outcome. */
static struct mig_next on_undone(const struct mig_job *job)
{
    if (job->task == MIG_TASK_RETURN) {
        /* The operator's rollback gave up: the VM stays on the target, switched. */
        struct mig_next n = end_with(MIG_EV_KEPT);
        n.task = MIG_TASK_MIGRATE;
        n.phase = MIG_PHASE_CLEANUP;
        return n;
    }
    if (!job->abort_requested)
        return end_with(MIG_EV_FAIL);
    /* An aborted job says so, wherever the abort found it (a stream, a wait between rounds). */
    struct mig_next n = end_with(MIG_EV_ABORT);
    n.error_code = "Aborted";
    n.error_message = "aborted by the operator; rolled back, the VM is on the source as before";
    n.error_if_none = true;
    return n;
}

struct mig_next mig_lifecycle_next(const struct mig_job *job, const struct mig_lifecycle_cfg *cfg,
                                   enum mig_outcome outcome, int64_t now)
{
    switch (outcome) {
    case MIG_OUT_START:
        return on_start(job, cfg, now);
    case MIG_OUT_DONE:
        return on_done(job, cfg, now);
    case MIG_OUT_SLEPT:
        return on_slept(job, cfg, now);
    case MIG_OUT_CANCELED:
        if (job->abort_requested) {
            struct mig_next n = undo(job);
            n.error_code = "Aborted";
            n.error_message = "aborted by the operator";
            return n;
        }
        /* A pause cuts only a first send: the job rests, and sends again from what the target holds. */
        if (paused(job) && job->phase == MIG_PHASE_SYNC)
            return rest_paused(job, cfg);
        return on_failed(job); /* cut by something else: a failure like any */
    case MIG_OUT_FAILED:
    case MIG_OUT_FAILED_FORWARD:
        if (job->task == MIG_TASK_MIGRATE && job->phase == MIG_PHASE_VERIFY)
            return on_verify_failed(job, cfg);
        /* Past the point of no return (forward) the VM stays where it now runs. */
        if (outcome == MIG_OUT_FAILED || job->task == MIG_TASK_REMOVE_SOURCE)
            return on_failed(job);
        return end_with(MIG_EV_FAIL);
    case MIG_OUT_UNDONE:
        return on_undone(job);
    case MIG_OUT_UNDO_STOPPED:
        return end_with(MIG_EV_FAIL);
    default:
        return end_with(MIG_EV_FAIL);
    }
}

const char *mig_outcome_name(enum mig_outcome o)
{
    static const char *const names[MIG_NOUTCOMES] = {
        "start", "done", "slept", "canceled", "failed", "failed_forward", "undone",
        "undo_stopped"};
    return (unsigned)o < MIG_NOUTCOMES ? names[o] : "unknown";
}
