/*
 * engine.c: the job engine.  It runs a submission's checks before a job
 * exists, schedules queued jobs within the configured limits, and walks
 * each running job through its plans with the executor: prepare, the sync
 * rounds, the switch, the cleanup, or the operator's rollback and cleanup
 * of a switched job.  What to do next is decided from the job's durable
 * state alone (task, phase, rounds, undoing), so a restarted daemon
 * continues every unfinished job by the same decision.  A failure before
 * the point of no return walks the journal backwards (the job's rollback);
 * operators' actions take effect at once; watchers hear of every change.
 */
#include <stdlib.h>
#include <string.h>

#include "converge.h"
#include "err.h"
#include "executor.h"
#include "log.h"
#include "metrics.h"
#include "submit.h"
#include "util.h"

#define TICK_MS 5000
#define WAIT_MS 60000 /* a job that does no more rounds wakes only for finish or abort */

struct watcher {
    char job_uuid[MIG_UUID_LEN + 1];
    engine_watch_fn fn;
    void *arg;
    bool removed;
    struct watcher *next;
};

/* A job being worked on. */
struct jrun {
    struct engine *e;
    struct mig_job *job; /* owned */
    struct exec *x;
    int64_t round_sent_base; /* progress.bytes_sent when the current plan began */
    int64_t round_started_ms; /* when it began */
    bool sleeping;           /* between sync rounds: the executor's walk ended in a sleep */
    int64_t bytes_counted;   /* progress.bytes_sent already in the metrics */
    bool ending;
    struct jrun *next;
};

/* A submission being checked (no job in the store yet). */
struct submission {
    struct engine *e;
    struct mig_job *job; /* owned until saved or refused */
    struct exec *x;
    struct mig_submit sub;
    char transfer_note[200]; /* why a job that asked for direct runs through the relay */
    engine_submit_cb cb;
    void *arg;
    struct submission *next;
};

struct engine {
    struct migd *d;
    struct jrun *runs;
    struct submission *submissions;
    struct watcher *watchers;
    int notifying;   /* >0 while watchers are being called */
    uv_timer_t tick; /* periodic scheduling */
    struct metrics *metrics;
    bool closing;
    /*
     * The job rows that cannot be read, found once at start (a row turns bad
     * only by hands outside migd): listed with the first page of GET /jobs
     * without a scan of every record per request.
     */
    struct mig_bad_job *bad;
    size_t nbad;
};

static void schedule(struct engine *e);
static void continue_job(struct jrun *r);

#define jlog(job, level, ...) mig_log(level, (job)->uuid, (job)->vm_uuid, __VA_ARGS__)

/* ---- watchers ---- */

/*
 * The job is done moving for a watcher: it ended, switched, or waits for
 * finish (and is neither finishing nor aborting).
 */
static bool watch_final(const struct mig_job *job)
{
    return mig_job_state_final(job->state) || job->state == MIG_JOB_SWITCHED ||
           (job->state == MIG_JOB_WAITING && !job->abort_requested && !job->finish_requested &&
            !job->undoing);
}

static void reap_watchers(struct engine *e)
{
    struct watcher **pp = &e->watchers;
    while (*pp != NULL) {
        if ((*pp)->removed) {
            struct watcher *w = *pp;
            *pp = w->next;
            free(w);
        } else {
            pp = &(*pp)->next;
        }
    }
}

static void notify(struct engine *e, const struct mig_job *job)
{
    if (e->watchers == NULL)
        return;
    json_t *j = mig_job_to_json(job);
    bool final = watch_final(job);
    e->notifying++;
    for (struct watcher *w = e->watchers; w != NULL; w = w->next) {
        if (!w->removed && strcmp(w->job_uuid, job->uuid) == 0) {
            w->fn(w->arg, j, final);
            if (final)
                w->removed = true;
        }
    }
    e->notifying--;
    if (e->notifying == 0)
        reap_watchers(e);
    json_decref(j);
}

void *engine_watch(struct engine *e, const char *job_uuid, engine_watch_fn fn, void *arg)
{
    struct mig_job *job = NULL;
    if (!mig_uuid_valid(job_uuid) || mig_store_job_load(e->d->store, job_uuid, &job) != 0)
        return NULL;
    struct watcher *w = mig_calloc(1, sizeof(*w));
    snprintf(w->job_uuid, sizeof(w->job_uuid), "%s", job->uuid);
    w->fn = fn;
    w->arg = arg;
    w->next = e->watchers;
    e->watchers = w;
    mig_job_free(job);
    return w;
}

static struct jrun *find_run(struct engine *e, const char *job_uuid);

bool engine_job_at_rest(struct engine *e, const char *job_uuid)
{
    struct jrun *r = mig_uuid_valid(job_uuid) ? find_run(e, job_uuid) : NULL;
    if (r != NULL)
        return watch_final(r->job);
    struct mig_job *job = NULL;
    if (!mig_uuid_valid(job_uuid) || mig_store_job_load(e->d->store, job_uuid, &job) != 0)
        return true; /* nothing to follow */
    bool rest = watch_final(job);
    mig_job_free(job);
    return rest;
}

void engine_unwatch(struct engine *e, void *handle)
{
    for (struct watcher *w = e->watchers; w != NULL; w = w->next)
        if (w == handle)
            w->removed = true;
    if (e->notifying == 0)
        reap_watchers(e);
}

/* ---- runs ---- */

static struct jrun *find_run(struct engine *e, const char *job_uuid)
{
    for (struct jrun *r = e->runs; r != NULL; r = r->next)
        if (!r->ending && strcmp(r->job->uuid, job_uuid) == 0)
            return r;
    return NULL;
}

/* Jobs being worked on. */
static int active_jobs(struct engine *e)
{
    int n = 0;
    for (struct jrun *r = e->runs; r != NULL; r = r->next)
        if (!r->ending)
            n++;
    return n;
}

static int active_on(struct engine *e, const char *server)
{
    int n = 0;
    for (struct jrun *r = e->runs; r != NULL; r = r->next)
        if (!r->ending && (strcmp(r->job->source_server_uuid, server) == 0 ||
                           strcmp(r->job->target_server_uuid, server) == 0))
            n++;
    return n;
}

/*
 * Saves the job.  A failed write is logged; the executor's next journal
 * write fails the same way and pauses the job before it acts again.
 */
static int save(struct jrun *r)
{
    int rc = mig_store_job_save(r->e->d->store, r->job);
    if (rc != 0)
        jlog(r->job, MIG_LOG_ERROR, "saving the job: %s", mig_strerror(rc));
    return rc;
}

/* Counts a job's change of state in the metrics (and its downtime and duration when it lands). */
static void count_state(struct engine *e, const struct mig_job *job, int before)
{
    if (before == (int)job->state)
        return;
    metrics_state(e->metrics, before, job->state);
    if (job->state == MIG_JOB_SWITCHED && before == MIG_JOB_RUNNING && job->task == MIG_TASK_MIGRATE &&
        job->downtime_ms >= 0)
        metrics_downtime(e->metrics, job->downtime_ms);
    /* A full job's time besides its first round: the fixed part of the next estimates. */
    if (job->state == MIG_JOB_SWITCHED && before == MIG_JOB_RUNNING &&
        job->task == MIG_TASK_MIGRATE && job->mode == MIG_MODE_FULL && job->started > 0 &&
        job->nround_log >= 1)
        mig_store_overhead_add(e->d->store, job->source_server_uuid, job->target_server_uuid,
                               mig_now_ms() - job->started - job->round_log[0].duration_ms);
    if ((mig_job_state_final(job->state) || job->state == MIG_JOB_SWITCHED) && job->started > 0 &&
        before == MIG_JOB_RUNNING)
        metrics_duration(e->metrics, mig_now_ms() - job->started);
}

/* Counts the bytes a run sent since it last counted. */
static void count_bytes(struct jrun *r)
{
    int64_t delta = r->job->progress.bytes_sent - r->bytes_counted;
    if (delta > 0)
        metrics_bytes(r->e->metrics,
                      r->job->source_hostname != NULL ? r->job->source_hostname
                                                      : r->job->source_server_uuid,
                      r->job->target_hostname != NULL ? r->job->target_hostname
                                                      : r->job->target_server_uuid,
                      delta);
    r->bytes_counted = r->job->progress.bytes_sent;
}

/* Applies ev to the job (the transition table decides), saves it, tells watchers. */
static void apply(struct jrun *r, enum mig_job_event ev)
{
    enum mig_job_state before = r->job->state;
    if (mig_job_apply(r->job, ev) != 0) {
        jlog(r->job, MIG_LOG_ERROR, "no transition from %s on event %d",
             mig_job_state_name(before), ev);
        return;
    }
    count_state(r->e, r->job, (int)before);
    if (before != r->job->state)
        jlog(r->job, MIG_LOG_INFO, "job %s: %s -> %s", r->job->uuid, mig_job_state_name(before),
             mig_job_state_name(r->job->state));
    save(r);
    notify(r->e, r->job);
}

static void unlink_run(struct engine *e, struct jrun *r)
{
    for (struct jrun **pp = &e->runs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            return;
        }
    }
}

/* Ends a run: the final word to watchers, then frees it and lets the next job start. */
static void end_run(struct jrun *r)
{
    struct engine *e = r->e;
    r->ending = true;
    notify(e, r->job);
    unlink_run(e, r);
    if (r->job->evacuation[0] != '\0')
        evac_job_ended(e->d, r->job->evacuation);
    exec_free(r->x);
    mig_job_free(r->job);
    free(r);
    schedule(e);
}

static void on_exec_changed(void *owner)
{
    struct jrun *r = owner;
    count_bytes(r);
    notify(r->e, r->job);
}

static void on_exec_finished(void *owner, int err);

static const struct exec_hooks run_hooks = {on_exec_changed, on_exec_finished};

static struct jrun *run_new(struct engine *e, struct mig_job *job)
{
    struct jrun *r = mig_calloc(1, sizeof(*r));
    r->e = e;
    r->job = job;
    r->bytes_counted = job->progress.bytes_sent;
    if (exec_new(e->d, job, &run_hooks, r, &r->x) != 0) {
        free(r);
        return NULL;
    }
    r->next = e->runs;
    e->runs = r;
    return r;
}

/* ---- what a job does next ---- */

/* The phases a task's undo walk covers. */
static unsigned undo_mask(const struct mig_job *job)
{
    if (job->task == MIG_TASK_RETURN)
        return 1u << MIG_PHASE_ROLLBACK;
    if (job->task == MIG_TASK_MIGRATE)
        return (1u << MIG_PHASE_PREPARE) | (1u << MIG_PHASE_SYNC) | (1u << MIG_PHASE_SWITCH);
    return 0;
}

/* What the sync phase does after a round. */
enum sync_next { SYNC_ROUND, SYNC_WAIT, SYNC_SWITCH };

/* The last round's forecast of a switch now, -1 when there is none. */
static int64_t predicted_ms(const struct mig_job *job)
{
    return job->nround_log > 0 ? job->round_log[job->nround_log - 1].predicted_downtime_ms : -1;
}

/*
 * After a round: switch (full mode, finish asked, or auto converged: the
 * last delta small or the predicted downtime short, after at least one
 * incremental round), wait (the rounds stopped shrinking, or max_rounds),
 * or another round.
 */
static enum sync_next sync_decide(const struct mig_job *job, const struct mig_config *cfg)
{
    if (job->mode == MIG_MODE_FULL || job->finish_requested)
        return SYNC_SWITCH;
    if (job->mode == MIG_MODE_AUTO && job->ctx.rounds >= 2 && !job->ctx.stalled &&
        ((job->ctx.last_delta >= 0 && job->ctx.last_delta < cfg->incremental.auto_switch_bytes) ||
         (predicted_ms(job) >= 0 &&
          predicted_ms(job) <= (int64_t)cfg->incremental.max_downtime_s * 1000)))
        return SYNC_SWITCH;
    if (job->ctx.stalled || job->ctx.rounds >= cfg->incremental.max_rounds)
        return SYNC_WAIT;
    return SYNC_ROUND;
}

/* The last round's forecast, for the operator. */
static void forecast_text(const struct mig_job *job, char *buf, size_t bufsz)
{
    const struct mig_round *last =
        job->nround_log > 0 ? &job->round_log[job->nround_log - 1] : NULL;
    struct mig_forecast f = {job->ctx.write_bytes_s, last != NULL ? last->rate_bytes_s : -1,
                             predicted_ms(job)};
    mig_forecast_text(&f, buf, bufsz);
}

static void set_phase(struct jrun *r, enum mig_phase phase)
{
    r->job->phase = phase;
    save(r);
    jlog(r->job, MIG_LOG_INFO, "phase %s", mig_phase_name(phase));
    notify(r->e, r->job);
}

/* Starts the walk back of what the current task did. */
static void begin_undo(struct jrun *r)
{
    r->job->undoing = true;
    save(r);
    jlog(r->job, MIG_LOG_WARN, "rolling back: %s",
         r->job->task == MIG_TASK_RETURN ? "the VM stays on the target"
                                         : "the VM stays on the source");
    notify(r->e, r->job);
    exec_undo(r->x, undo_mask(r->job));
}

/* The plan for the job's phase now, into p (heap: plans are large). */
static void plan_now(struct jrun *r, struct mig_plan *p)
{
    struct mig_job *job = r->job;
    if (job->task == MIG_TASK_RETURN) {
        mig_plan_return(job, p);
    } else if (job->task == MIG_TASK_REMOVE_SOURCE) {
        mig_plan_remove_source(job, p);
    } else if (job->phase == MIG_PHASE_PREPARE) {
        mig_plan_prepare(job, p);
    } else if (job->phase == MIG_PHASE_SYNC) {
        mig_plan_round(job, job->ctx.rounds + 1, p);
    } else if (job->phase == MIG_PHASE_SWITCH) {
        mig_plan_switch(job, p);
    } else {
        mig_plan_cleanup(job, p);
    }
}

static void run_plan(struct jrun *r)
{
    struct mig_plan *p = mig_calloc(1, sizeof(*p));
    plan_now(r, p);
    r->round_sent_base = r->job->progress.bytes_sent;
    r->round_started_ms = mig_now_ms();
    exec_run(r->x, p);
    free(p);
}

/* After a sync round: record it, then round again, wait, or switch. */
static void sync_step(struct jrun *r)
{
    struct mig_job *job = r->job;
    const struct mig_config *cfg = r->e->d->cfg;
    if (job->abort_requested) {
        begin_undo(r);
        return;
    }
    if (job->ctx.rounds == 0) {
        run_plan(r);
        return;
    }
    switch (sync_decide(job, cfg)) {
    case SYNC_SWITCH:
        if (job->state == MIG_JOB_WAITING)
            apply(r, MIG_EV_FINISH);
        set_phase(r, MIG_PHASE_SWITCH);
        continue_job(r);
        return;
    case SYNC_WAIT:
    case SYNC_ROUND:
        /* An incremental job, or an auto one that stopped converging, waits for finish. */
        if ((job->mode == MIG_MODE_INCREMENTAL || job->ctx.stalled) &&
            job->state == MIG_JOB_RUNNING)
            apply(r, MIG_EV_SYNCED);
        {
            char f[200];
            forecast_text(job, f, sizeof(f));
            if (job->ctx.stalled)
                mig_job_set_activity(job, "not converging: %s", f);
            else if (sync_decide(job, cfg) == SYNC_WAIT)
                mig_job_set_activity(job, "in sync after %d rounds (incremental.max_rounds): %s",
                                     job->ctx.rounds, f);
            else if (job->ctx.rounds >= 2)
                mig_job_set_activity(job, "next round in %d s; %s", cfg->incremental.interval_s,
                                     f);
            else
                mig_job_set_activity(job, "next round in %d s", cfg->incremental.interval_s);
        }
        notify(r->e, job);
        /* A wait without rounds still wakes for finish or abort. */
        r->sleeping = true;
        exec_sleep(r->x, sync_decide(job, cfg) == SYNC_WAIT
                             ? WAIT_MS
                             : (uint64_t)cfg->incremental.interval_s * 1000);
        return;
    }
}

/* Decides and starts the job's next walk from its durable state. */
static void continue_job(struct jrun *r)
{
    struct mig_job *job = r->job;
    if (job->undoing) {
        exec_undo(r->x, undo_mask(job));
        return;
    }
    if (job->task == MIG_TASK_MIGRATE) {
        if (job->phase == MIG_PHASE_VALIDATE)
            job->phase = MIG_PHASE_PREPARE; /* checked when it was submitted */
        if (job->abort_requested && job->phase < MIG_PHASE_SWITCH) {
            begin_undo(r);
            return;
        }
        if (job->phase == MIG_PHASE_SYNC && job->ctx.rounds > 0) {
            sync_step(r);
            return;
        }
    }
    run_plan(r);
}

/* A sleep between rounds ended (or was cut short by finish or abort). */
static void after_sleep(struct jrun *r)
{
    struct mig_job *job = r->job;
    mig_job_set_activity(job, NULL);
    if (job->abort_requested) {
        begin_undo(r);
        return;
    }
    enum sync_next next = sync_decide(job, r->e->d->cfg);
    if (next == SYNC_SWITCH) {
        sync_step(r);
        return;
    }
    if (next == SYNC_WAIT) {
        r->sleeping = true;
        exec_sleep(r->x, WAIT_MS);
        return;
    }
    run_plan(r);
}

/*
 * A sync round ended: on record (rounds[]), with the forecast of a switch
 * now, and whether the rounds stopped shrinking (three in a row).
 */
static void record_round(struct jrun *r)
{
    struct mig_job *job = r->job;
    int64_t now = mig_now_ms();
    int64_t bytes = job->progress.bytes_sent - r->round_sent_base;
    int64_t took = now - r->round_started_ms;
    int64_t since = job->ctx.snap_ms > 0 ? r->round_started_ms - job->ctx.snap_ms : -1;
    job->ctx.snap_ms = r->round_started_ms;
    job->ctx.rounds++;
    struct mig_round rd = {.n = job->ctx.rounds, .bytes = bytes, .duration_ms = took,
                           .rate_bytes_s = took > 0 ? bytes * 1000 / took : -1,
                           .predicted_downtime_ms = -1};
    /* What the first round moved between these CNs feeds the estimates. */
    if (job->ctx.rounds == 1 && bytes > (1 << 20))
        mig_store_rate_add(r->e->d->store, job->source_server_uuid, job->target_server_uuid,
                           bytes, took);
    if (job->ctx.rounds >= 2) {
        struct mig_forecast f = mig_forecast(bytes, took, since, MIG_SWITCH_FIXED_MS);
        rd.predicted_downtime_ms = f.predicted_ms;
        job->ctx.write_bytes_s = f.write_bytes_s;
        job->ctx.last_delta = bytes;
        job->progress.increments++;
    }
    mig_job_log_round(job, &rd);
    int64_t deltas[MIG_MAX_ROUND_LOG];
    size_t n = 0;
    for (int i = 0; i < job->nround_log; i++)
        if (job->round_log[i].n >= 2)
            deltas[n++] = job->round_log[i].bytes;
    if (job->mode != MIG_MODE_FULL && !job->ctx.stalled &&
        mig_stalled(deltas, n, job->ctx.write_bytes_s, rd.rate_bytes_s)) {
        char f[200];
        forecast_text(job, f, sizeof(f));
        job->ctx.stalled = 1;
        jlog(job, MIG_LOG_WARN, "three rounds did not shrink the delta: no more rounds; %s", f);
    }
}

/*
 * The switch ended: its downtime window (from switch.begin to the VM up on
 * the target) action by action from the journal, migd's own share (the
 * downtime less the remote operations' time), and the final send on record.
 */
static void record_breakdown(struct jrun *r)
{
    struct mig_job *job = r->job;
    struct mig_action_rec *rows = NULL;
    size_t n = 0;
    if (mig_store_actions(r->e->d->store, job->uuid, &rows, &n) != 0)
        return;
    const char *last = job->vm_was_running == 1 ? "switch.start_target" : "switch.show_target";
    int64_t op_total = 0, send_from = 0, send_to = 0;
    bool inside = false;
    job->nbreakdown = 0;
    for (size_t i = 0; i < n; i++) {
        const struct mig_action_rec *a = &rows[i];
        if (strcmp(a->key, "switch.begin") == 0)
            inside = true;
        if (!inside)
            continue;
        if (strncmp(a->key, "switch.snapshot@final", 21) == 0 && send_from == 0)
            send_from = a->started_ms;
        if (strncmp(a->key, "switch.send@final", 17) == 0)
            send_to = a->ended_ms;
        if (job->nbreakdown < MIG_MAX_BREAKDOWN && a->ended_ms >= a->started_ms) {
            struct mig_part *p = &job->breakdown[job->nbreakdown++];
            snprintf(p->action, sizeof(p->action), "%s", a->key);
            p->ms = a->ended_ms - a->started_ms;
        }
        op_total += a->op_ms > 0 ? a->op_ms : 0;
        if (strcmp(a->key, last) == 0)
            break;
    }
    free(rows);
    if (job->downtime_ms >= 0)
        job->daemon_ms = job->downtime_ms > op_total ? job->downtime_ms - op_total : 0;
    int64_t took = send_to > send_from ? send_to - send_from : 0;
    int64_t bytes = job->progress.bytes_sent - r->round_sent_base;
    struct mig_round rd = {.n = job->ctx.rounds + 1, .bytes = bytes, .duration_ms = took,
                           .rate_bytes_s = took > 0 ? bytes * 1000 / took : -1,
                           .predicted_downtime_ms = -1};
    mig_job_log_round(job, &rd);
}

/* A plan walked to its end: the next phase. */
static void plan_done(struct jrun *r)
{
    struct mig_job *job = r->job;
    switch (job->task) {
    case MIG_TASK_RETURN:
        mig_job_clear_error(job);
        jlog(job, MIG_LOG_INFO, "VM %s is back on %s", job->vm_uuid, job->source_hostname);
        apply(r, MIG_EV_ROLLED_BACK);
        end_run(r);
        return;
    case MIG_TASK_REMOVE_SOURCE:
        mig_job_clear_error(job);
        jlog(job, MIG_LOG_INFO, "source copy of %s deleted from %s", job->vm_uuid,
             job->source_hostname);
        apply(r, MIG_EV_CLEANED);
        end_run(r);
        return;
    default:
        break;
    }
    switch (job->phase) {
    case MIG_PHASE_PREPARE:
        set_phase(r, MIG_PHASE_SYNC);
        run_plan(r);
        return;
    case MIG_PHASE_SYNC:
        record_round(r);
        save(r);
        sync_step(r);
        return;
    case MIG_PHASE_SWITCH:
        record_breakdown(r);
        jlog(job, MIG_LOG_INFO, "VM %s is %s on %s after %lld ms of downtime", job->vm_uuid,
             job->vm_was_running == 1 ? "running" : "installed", job->target_hostname,
             (long long)job->downtime_ms);
        set_phase(r, MIG_PHASE_CLEANUP);
        run_plan(r);
        return;
    default:
        apply(r, MIG_EV_SWITCHED);
        if (job->cleanup_source) {
            job->task = MIG_TASK_REMOVE_SOURCE;
            apply(r, MIG_EV_REMOVE);
            run_plan(r);
            return;
        }
        end_run(r);
        return;
    }
}

/* The undo walk ended: the task's outcome. */
static void undo_done(struct jrun *r, int err)
{
    struct mig_job *job = r->job;
    job->undoing = false;
    if (err != 0) {
        /* The walk stopped where undoing was unsafe to continue; the journal shows where. */
        apply(r, MIG_EV_FAIL);
        end_run(r);
        return;
    }
    if (job->task == MIG_TASK_RETURN) {
        jlog(job, MIG_LOG_WARN, "the rollback did not complete; the VM stays on %s",
             job->target_hostname);
        job->task = MIG_TASK_MIGRATE;
        job->phase = MIG_PHASE_CLEANUP;
        apply(r, MIG_EV_KEPT);
        end_run(r);
        return;
    }
    jlog(job, MIG_LOG_INFO, "rolled back: the VM is on %s as before", job->source_hostname);
    /* An aborted job says so, wherever the abort found it (a stream, a wait between rounds). */
    if (job->abort_requested && job->error_code == NULL)
        mig_job_set_error(job, "Aborted", "aborted by the operator; rolled back, the VM is on the "
                                          "source as before");
    apply(r, job->abort_requested ? MIG_EV_ABORT : MIG_EV_FAIL);
    end_run(r);
}

static void on_exec_finished(void *owner, int err)
{
    struct jrun *r = owner;
    struct mig_job *job = r->job;
    if (r->e->closing)
        return;
    count_bytes(r);
    if (job->undoing) {
        undo_done(r, err);
        return;
    }
    if (r->sleeping) {
        r->sleeping = false;
        after_sleep(r);
        return;
    }
    if (err == 0) {
        plan_done(r);
        return;
    }
    if (err == MIG_ECANCELED && job->abort_requested) {
        mig_job_set_error(job, "Aborted", "aborted by the operator");
        begin_undo(r);
        return;
    }
    if (exec_failed_forward(r->x) || job->task == MIG_TASK_REMOVE_SOURCE) {
        /* Past the point of no return the VM stays where it now runs. */
        if (job->task == MIG_TASK_REMOVE_SOURCE) {
            job->task = MIG_TASK_MIGRATE;
            apply(r, MIG_EV_KEPT);
        } else {
            jlog(job, MIG_LOG_ERROR, "failed after the VM moved; it stays on %s",
                 job->task == MIG_TASK_RETURN ? job->source_hostname : job->target_hostname);
            apply(r, MIG_EV_FAIL);
        }
        end_run(r);
        return;
    }
    if (job->task == MIG_TASK_MIGRATE && job->phase == MIG_PHASE_CLEANUP) {
        apply(r, MIG_EV_FAIL);
        end_run(r);
        return;
    }
    begin_undo(r);
}

/* Starts (or resumes) a job. */
static void start_job(struct engine *e, struct mig_job *job)
{
    struct jrun *r = run_new(e, job);
    if (r == NULL) {
        jlog(job, MIG_LOG_ERROR, "cannot start job %s: out of resources", job->uuid);
        mig_job_free(job);
        return;
    }
    jlog(job, MIG_LOG_INFO, "job %s %s: %s (%s) from %s to %s", job->uuid,
         job->state == MIG_JOB_QUEUED ? "starting" : "resuming", job->vm_uuid,
         job->vm_alias != NULL ? job->vm_alias : "", job->source_hostname, job->target_hostname);
    mig_job_set_activity(job, NULL);
    if (job->state == MIG_JOB_QUEUED)
        apply(r, MIG_EV_START);
    continue_job(r);
}

/* ---- scheduling ---- */

/* Why a queued job cannot start now, into why (""): the limit it waits for. */
static void waits_for(struct engine *e, const struct mig_job *job, int active, char *why,
                      size_t whysz)
{
    const struct mig_config *cfg = e->d->cfg;
    why[0] = '\0';
    if (active >= cfg->limits.max_active_jobs) {
        snprintf(why, whysz, "waits for limits.max_active_jobs: %d running", active);
        return;
    }
    if (job->evacuation[0] != '\0' && job->evac_parallel > 0) {
        int n = 0;
        for (struct jrun *r = e->runs; r != NULL; r = r->next)
            if (!r->ending && strcmp(r->job->evacuation, job->evacuation) == 0)
                n++;
        if (n >= job->evac_parallel) {
            snprintf(why, whysz, "waits for the evacuation's --max-parallel %d: %d running",
                     job->evac_parallel, n);
            return;
        }
    }
    const char *servers[2] = {job->source_server_uuid, job->target_server_uuid};
    const char *names[2] = {job->source_hostname, job->target_hostname};
    for (int i = 0; i < 2; i++) {
        int n = active_on(e, servers[i]);
        if (n >= cfg->limits.max_jobs_per_cn) {
            snprintf(why, whysz, "waits for limits.max_jobs_per_cn on %s: %d running",
                     names[i] != NULL ? names[i] : servers[i], n);
            return;
        }
    }
}

/*
 * Starts queued jobs, oldest first, within max_active_jobs and
 * max_jobs_per_cn; a job that must wait says for what (its activity, and
 * the log once when that changes).
 */
static void schedule(struct engine *e)
{
    if (e->closing)
        return;
    int active = active_jobs(e);
    struct mig_job_filter f = {.state = "queued", .vm_uuid = NULL, .all = 0};
    struct mig_job **jobs = NULL;
    size_t n = 0;
    if (mig_store_job_list(e->d->store, &f, &jobs, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        struct mig_job *job = jobs[i];
        char why[sizeof(job->ctx.activity)];
        if (find_run(e, job->uuid) != NULL) {
            mig_job_free(job);
            continue;
        }
        waits_for(e, job, active, why, sizeof(why));
        if (why[0] == '\0') {
            start_job(e, job);
            active++;
            continue;
        }
        if (strcmp(why, job->ctx.activity) != 0) {
            mig_job_set_activity(job, "%s", why);
            if (mig_store_job_save(e->d->store, job) == 0) {
                jlog(job, MIG_LOG_INFO, "queued: %s", why);
                notify(e, job);
            }
        }
        mig_job_free(job);
    }
    free(jobs);
}

static void on_tick(uv_timer_t *t)
{
    schedule(t->data);
}

int engine_new(struct migd *d, struct engine **out)
{
    struct engine *e = mig_calloc(1, sizeof(*e));
    e->d = d;
    e->metrics = metrics_load(d->store);
    if (e->metrics == NULL) {
        free(e);
        return MIG_EDB;
    }
    int rc = uv_timer_init(d->loop, &e->tick);
    if (rc != 0) {
        metrics_free(e->metrics);
        free(e);
        return rc;
    }
    e->tick.data = e;
    *out = e;
    return 0;
}

void engine_resume(struct engine *e)
{
    struct mig_job_filter f = {.state = NULL, .vm_uuid = NULL, .all = 0};
    struct mig_job **jobs = NULL;
    size_t n = 0;
    if (mig_store_job_list(e->d->store, &f, &jobs, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            if ((jobs[i]->state == MIG_JOB_RUNNING || jobs[i]->state == MIG_JOB_WAITING) &&
                find_run(e, jobs[i]->uuid) == NULL) {
                mig_job_apply(jobs[i], MIG_EV_RESUME);
                start_job(e, jobs[i]);
            } else {
                mig_job_free(jobs[i]);
            }
        }
        free(jobs);
    }
    free(e->bad);
    e->bad = NULL;
    e->nbad = 0;
    if (mig_store_job_list_bad(e->d->store, &e->bad, &e->nbad) == 0) {
        for (size_t i = 0; i < e->nbad; i++)
            mig_log(MIG_LOG_ERROR, e->bad[i].uuid, e->bad[i].vm_uuid,
                    "job %s (%s) cannot be read: %s; it is not resumed and its VM stays busy "
                    "until an operator looks",
                    e->bad[i].uuid, e->bad[i].state, e->bad[i].error);
    }
    uv_timer_start(&e->tick, on_tick, 0, TICK_MS);
}

static void on_tick_closed(uv_handle_t *h)
{
    struct engine *e = h->data;
    metrics_free(e->metrics);
    free(e);
}

void engine_free(struct engine *e)
{
    e->closing = true;
    while (e->submissions != NULL) {
        struct submission *s = e->submissions;
        e->submissions = s->next;
        struct mig_refusal rf = {.rule = "ShuttingDown", .message = "migd is shutting down"};
        s->cb(s->arg, MIG_ECANCELED, &rf, NULL, NULL);
        exec_free(s->x);
        mig_submit_clear(&s->sub);
        mig_job_free(s->job);
        free(s);
    }
    while (e->runs != NULL) {
        struct jrun *r = e->runs;
        e->runs = r->next;
        exec_free(r->x);
        mig_job_free(r->job);
        free(r);
    }
    for (struct watcher *w = e->watchers; w != NULL; w = w->next)
        w->removed = true;
    reap_watchers(e);
    free(e->bad);
    e->bad = NULL;
    uv_close((uv_handle_t *)&e->tick, on_tick_closed);
}

/* ---- submissions ---- */

static void unlink_submission(struct engine *e, struct submission *s)
{
    for (struct submission **pp = &e->submissions; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            return;
        }
    }
}

static void on_submit_changed(void *owner)
{
    (void)owner;
}

static void on_submit_finished(void *owner, int err);

static const struct exec_hooks submit_hooks = {on_submit_changed, on_submit_finished};

static void on_submit_finished(void *owner, int err)
{
    struct submission *s = owner;
    struct engine *e = s->e;
    struct mig_job *job = s->job;
    struct mig_refusal refusal = {.rule = NULL};
    json_t *plan = NULL;
    if (e->closing)
        return;
    /*
     * A VM that has an unfinished job is refused for that first, whatever
     * else the checks found (two submissions may be checked at once, so
     * this is asked after them, right before saving).
     */
    char holder[MIG_UUID_LEN + 1];
    int hrc = mig_uuid_valid(job->vm_uuid)
                  ? mig_store_job_holding_vm(e->d->store, job->vm_uuid, holder)
                  : -ENOENT;
    if (hrc == 0) {
        refusal.rule = MIG_RULE_VM_BUSY;
        snprintf(refusal.message, sizeof(refusal.message),
                 "VM %s already has unfinished job %s; see migctl show %s", job->vm_uuid, holder,
                 holder);
        err = MIG_EREFUSED;
    } else if (hrc != -ENOENT) {
        refusal.rule = "InternalError";
        snprintf(refusal.message, sizeof(refusal.message), "the database cannot be read");
        err = MIG_EDB;
    } else if (err != 0) {
        refusal.rule = s->sub.a.err_code;
        snprintf(refusal.message, sizeof(refusal.message), "%s", s->sub.a.err_msg);
        err = MIG_EREFUSED;
    } else {
        plan = mig_submit_plan(&s->sub, job->limit_mbps);
        if (s->transfer_note[0] != '\0')
            json_object_set_new(plan, "transfer_note", json_string(s->transfer_note));
        if (!job->dry_run) {
            job->created = mig_now_ms();
            int rc = mig_store_job_save(e->d->store, job);
            if (rc != 0) {
                refusal.rule = "InternalError";
                snprintf(refusal.message, sizeof(refusal.message),
                         "cannot save the job: %s; nothing was changed", mig_strerror(rc));
                err = MIG_EDB;
            } else {
                metrics_state(e->metrics, -1, MIG_JOB_QUEUED);
                jlog(job, MIG_LOG_INFO, "job %s queued: %s (%s) from %s to %s, mode %s", job->uuid,
                     job->vm_uuid, job->vm_alias, job->source_hostname, job->target_hostname,
                     mig_mode_name(job->mode));
                if (s->transfer_note[0] != '\0')
                    jlog(job, MIG_LOG_INFO, "%s", s->transfer_note);
            }
        }
    }
    unlink_submission(e, s);
    if (err == 0)
        s->cb(s->arg, 0, NULL, job, plan);
    else
        s->cb(s->arg, err, &refusal, NULL, NULL);
    json_decref(plan);
    bool queued = err == 0 && !job->dry_run;
    exec_free(s->x);
    mig_submit_clear(&s->sub);
    mig_job_free(job);
    free(s);
    if (queued)
        schedule(e);
}

int engine_submit(struct engine *e, json_t *body, engine_submit_cb cb, void *arg)
{
    if (!json_is_object(body))
        return -EINVAL;
    const char *vm = json_string_value(json_object_get(body, "vm_uuid"));
    const char *target = json_string_value(json_object_get(body, "target"));
    const char *mode = json_string_value(json_object_get(body, "mode"));
    struct mig_job *job = mig_job_new();
    if (vm != NULL && mig_uuid_valid(vm)) {
        for (size_t i = 0; i <= MIG_UUID_LEN; i++)
            job->vm_uuid[i] = (char)(vm[i] >= 'A' && vm[i] <= 'F' ? vm[i] - 'A' + 'a' : vm[i]);
    } else {
        job->vm_alias = mig_strdup(vm != NULL ? vm : "");
    }
    if (mode != NULL && mig_mode_parse(mode, &job->mode) != 0) {
        mig_job_free(job);
        return -EINVAL;
    }
    job->dry_run = json_is_true(json_object_get(body, "dry_run"));
    job->allow_older_platform = json_is_true(json_object_get(body, "allow_older_platform"));
    job->cleanup_source = json_is_true(json_object_get(body, "cleanup_source"));
    /* From an evacuation (evacuate.c): its uuid and its --max-parallel. */
    const char *evac = json_string_value(json_object_get(body, "evacuation"));
    if (evac != NULL && mig_uuid_valid(evac)) {
        snprintf(job->evacuation, sizeof(job->evacuation), "%s", evac);
        job->evac_parallel = (int)json_integer_value(json_object_get(body, "max_parallel"));
    }
    json_t *limit = json_object_get(body, "limit_mbps");
    job->limit_mbps = json_is_integer(limit) ? (int)json_integer_value(limit)
                                             : e->d->cfg->transfer.limit_mbps;
    const char *transfer = json_string_value(json_object_get(body, "transfer"));
    snprintf(job->transfer, sizeof(job->transfer), "%s",
             transfer != NULL ? transfer : e->d->cfg->transfer.mode);
    if (target != NULL)
        snprintf(job->ctx.target_request, sizeof(job->ctx.target_request), "%s", target);
    struct submission *s = mig_calloc(1, sizeof(*s));
    /*
     * A stock SmartOS global zone has no rate-limiting pipe: a direct stream
     * cannot be held to a cap, so a capped job runs through the relay, and
     * says so (never silently).
     */
    int cap = job->limit_mbps > 0 ? job->limit_mbps : e->d->cfg->limits.cn_mbps;
    if (strcmp(job->transfer, "direct") == 0 && cap > 0) {
        snprintf(job->transfer, sizeof(job->transfer), "relay");
        snprintf(s->transfer_note, sizeof(s->transfer_note),
                 "direct transfer asked, but the stream is capped at %d Mbit/s (%s): it runs "
                 "through the relay, since a SmartOS global zone has no rate-limiting pipe",
                 cap, job->limit_mbps > 0 ? "the job's limit" : "limits.cn_mbps");
    }
    s->e = e;
    s->job = job;
    s->cb = cb;
    s->arg = arg;
    int rc = exec_new(e->d, job, &submit_hooks, s, &s->x);
    if (rc != 0) {
        mig_job_free(job);
        free(s);
        return rc;
    }
    s->next = e->submissions;
    e->submissions = s;
    mig_submit_init(&s->sub, job, exec_env(s->x));
    exec_call(s->x, mig_submit_step, &s->sub.a);
    return 0;
}

/* ---- operators' actions ---- */

/* What a running job is busy with, for a refusal. */
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

/* Starts a switched job's rollback or cleanup as a running task. */
static int start_task(struct engine *e, struct mig_job *stored, enum mig_task task, char *msg,
                      size_t msgsz)
{
    stored->task = task;
    stored->phase = task == MIG_TASK_RETURN ? MIG_PHASE_ROLLBACK : MIG_PHASE_CLEANUP;
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
    notify(e, stored);
    run_plan(r);
    return 0;
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
    struct jrun *r = find_run(e, job_uuid);
    struct mig_job *job = r != NULL ? r->job : stored;
    const char *busy = doing(job);
    int rc = 0;
    bool counted_abort = false; /* a queued job aborted here: counted once saved */
    if (busy != NULL && job->state == MIG_JOB_RUNNING) {
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
        if (job->state != MIG_JOB_SWITCHED || r != NULL) {
            snprintf(msg, msgsz, "job %s is %s: only a switched job %s%s", job->uuid,
                     mig_job_state_name(job->state),
                     back ? "can be rolled back" : "'s source copy can be deleted",
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
            return start_task(e, stored, MIG_TASK_REMOVE_SOURCE, msg, msgsz);
        }
    } else {
        snprintf(msg, msgsz, "unknown action \"%s\": use finish, abort, rollback or cleanup",
                 action);
        rc = -EINVAL;
    }
    if (rc == 0) {
        /* Recorded before it takes effect: a refused write changes nothing. */
        int src = mig_store_job_save(e->d->store, job);
        if (src != 0) {
            if (strcmp(action, "abort") == 0)
                job->abort_requested = false;
            else
                job->finish_requested = false;
            snprintf(msg, msgsz, "cannot record the %s of job %s: %s; nothing was changed", action,
                     job->uuid, mig_strerror(src));
            mig_job_free(stored);
            return MIG_EDB;
        }
        if (counted_abort)
            metrics_state(e->metrics, MIG_JOB_QUEUED, MIG_JOB_ABORTED);
        mig_log(MIG_LOG_INFO, job->uuid, job->vm_uuid, "%s", msg);
        notify(e, job);
        if (r != NULL) {
            if (strcmp(action, "abort") == 0)
                exec_interrupt(r->x); /* a stream in flight is cut now */
            else
                exec_wake(r->x);
        }
    }
    mig_job_free(stored);
    return rc;
}

/* ---- queries ---- */

json_t *engine_job_json(struct engine *e, const char *job_uuid)
{
    struct jrun *r = find_run(e, job_uuid);
    if (r != NULL)
        return mig_job_to_json(r->job);
    struct mig_job *job = NULL;
    if (!mig_uuid_valid(job_uuid))
        return NULL;
    int rc = mig_store_job_load(e->d->store, job_uuid, &job);
    if (rc == MIG_EPARSE)
        return json_pack("{s:s, s:{s:s, s:s}}", "uuid", job_uuid, "error", "code",
                         "UnreadableRecord", "message",
                         "the job's record in the database cannot be read");
    if (rc != 0)
        return NULL;
    json_t *j = mig_job_to_json(job);
    mig_job_free(job);
    return j;
}

json_t *engine_jobs_json(struct engine *e, const char *state, const char *vm_uuid, bool all,
                         int64_t limit, int64_t offset)
{
    struct mig_job_filter f = {.state = state,
                               .vm_uuid = vm_uuid,
                               .all = all || state != NULL,
                               .limit = limit,
                               .offset = offset};
    struct mig_job **jobs = NULL;
    size_t n = 0;
    json_t *out = json_array();
    if (mig_store_job_list(e->d->store, &f, &jobs, &n) != 0) {
        json_decref(out);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        struct jrun *r = find_run(e, jobs[i]->uuid);
        json_array_append_new(out, mig_job_to_json(r != NULL ? r->job : jobs[i]));
        mig_job_free(jobs[i]);
    }
    free(jobs);
    /* A row that cannot be read is listed (on the first page), never hiding the others. */
    struct mig_bad_job *bad = e->bad;
    size_t nbad = e->nbad;
    if (offset == 0) {
        for (size_t i = 0; i < nbad; i++) {
            enum mig_job_state st;
            bool final = mig_job_state_parse(bad[i].state, &st) == 0 && mig_job_state_final(st);
            if ((state != NULL && strcmp(state, bad[i].state) != 0) ||
                (vm_uuid != NULL && strcmp(vm_uuid, bad[i].vm_uuid) != 0) ||
                (!all && state == NULL && final))
                continue;
            json_array_append_new(
                out, json_pack("{s:s, s:s, s:s, s:{s:s, s:s}}", "uuid", bad[i].uuid, "vm_uuid",
                               bad[i].vm_uuid, "state", bad[i].state, "error", "code",
                               "UnreadableRecord", "message", bad[i].error));
        }
    }
    return out;
}

json_t *engine_stats_json(struct engine *e)
{
    return json_pack("{s:o, s:i, s:i}", "jobs", metrics_jobs_json(e->metrics), "active",
                     active_jobs(e), "unreadable", metrics_unreadable(e->metrics));
}

void engine_count_evacuation(struct engine *e, const char *from, const char *to)
{
    metrics_evacuation(e->metrics, from, to);
}

char *engine_metrics_text(struct engine *e, size_t *len)
{
    int64_t rate = 0;
    for (struct jrun *r = e->runs; r != NULL; r = r->next)
        if (!r->ending && r->job->progress.rate_bytes_s > 0 &&
            (r->job->phase == MIG_PHASE_SYNC || r->job->phase == MIG_PHASE_SWITCH ||
             r->job->task == MIG_TASK_RETURN))
            rate += r->job->progress.rate_bytes_s;
    return metrics_text(e->metrics, rate, len);
}
