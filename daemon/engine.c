/*
 * engine.c: the job engine's runs.  It walks each running job through its
 * plans with the executor: prepare, the sync rounds, the switch, the
 * cleanup, or the operator's rollback and cleanup of a switched job.  What
 * to do next is decided from the job's durable state alone (task, phase,
 * rounds, undoing), so a restarted daemon continues every unfinished job by
 * the same decision (engine_resume).  A failure before the point of no
 * return walks the journal backwards (the job's rollback).  The engine's
 * other concerns are in engine_*.c (engine_int.h says which).
 */
#include <stdlib.h>
#include <string.h>

#include "converge.h"
#include "engine_int.h"
#include "err.h"
#include "lifecycle.h"
#include "metrics.h"
#include "util.h"

#define TICK_MS 5000
#define WAIT_MS 60000 /* a job that does no more rounds wakes only for finish or abort */

/* ---- runs ---- */

struct jrun *run_find(struct engine *e, const char *job_uuid)
{
    for (struct jrun *r = e->runs; r != NULL; r = r->next)
        if (!r->ending && strcmp(r->job->uuid, job_uuid) == 0)
            return r;
    return NULL;
}

/*
 * Saves the job.  A failed write is logged; the executor's next journal
 * write fails the same way and pauses the job before it acts again.
 */
int run_save(struct jrun *r)
{
    int rc = mig_store_job_save(r->e->d->store, r->job);
    if (rc != 0)
        jlog(r->job, MIG_LOG_ERROR, "saving the job: %s", mig_strerror(rc));
    return rc;
}

/*
 * Counts a job's change of state by ev in the metrics (and its downtime and
 * duration when it lands: a switch's downtime once, when it switched).
 */
static void count_state(struct engine *e, const struct mig_job *job, int before,
                        enum mig_job_event ev)
{
    if (before == (int)job->state)
        return;
    metrics_state(e->metrics, before, job->state);
    if (ev == MIG_EV_SWITCHED && job->downtime_ms >= 0)
        metrics_downtime(e->metrics, job->downtime_ms);
    /* A full job's time besides its first round: the fixed part of the next estimates. */
    if (ev == MIG_EV_SWITCHED && job->mode == MIG_MODE_FULL && job->started > 0 &&
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

/*
 * A migration just switched (its gate passed): the source copy is deleted
 * cleanup_after_s from now, by the engine's tick, as `migctl cleanup` does.
 * Never after a failed gate kept by health.on_failure "report".
 */
static void arm_cleanup_timer(struct mig_job *job, enum mig_job_event ev)
{
    if (ev != MIG_EV_SWITCHED || job->task != MIG_TASK_MIGRATE || job->cleanup_source ||
        job->cleanup_after_s <= 0 || job->health.state == MIG_HEALTH_FAILED)
        return;
    job->cleanup_at = mig_now_ms() + job->cleanup_after_s * 1000;
    char when[32];
    mig_time_iso(job->cleanup_at, when);
    jlog(job, MIG_LOG_INFO, "the source copy on %s will be deleted at %s (cleanup after %lld s)",
         job->source_hostname, when, (long long)job->cleanup_after_s);
}

/* Applies ev to the job in memory (the transition table decides), counted and logged. */
static void transition(struct jrun *r, enum mig_job_event ev)
{
    enum mig_job_state before = r->job->state;
    if (mig_job_apply(r->job, ev) != 0) {
        jlog(r->job, MIG_LOG_ERROR, "no transition from %s on event %d",
             mig_job_state_name(before), ev);
        return;
    }
    count_state(r->e, r->job, (int)before, ev);
    if (before != r->job->state)
        jlog(r->job, MIG_LOG_INFO, "job %s: %s -> %s", r->job->uuid, mig_job_state_name(before),
             mig_job_state_name(r->job->state));
    arm_cleanup_timer(r->job, ev);
}

/* Applies ev to the job, saves it, tells watchers. */
static void apply(struct jrun *r, enum mig_job_event ev)
{
    transition(r, ev);
    run_save(r);
    watch_notify(r->e, r->job);
}

static void unlink_run(struct engine *e, struct jrun *r)
{
    MIG_LIST_UNLINK(&e->runs, r, next);
}

/* Ends a run: the final word to watchers, then frees it and lets the next job start. */
void run_end(struct jrun *r)
{
    struct engine *e = r->e;
    r->ending = true;
    watch_notify(e, r->job);
    unlink_run(e, r);
    if (r->retrying == 0)
        for (int i = 0; i < e->nended; i++)
            e->ended[i].ended(e->ended[i].arg, r->job);
    exec_free(r->x);
    mig_job_free(r->job);
    free(r);
    admit_schedule(e);
}

static void on_exec_changed(void *owner)
{
    struct jrun *r = owner;
    count_bytes(r);
    watch_notify(r->e, r->job);
}

static void on_exec_finished(void *owner, int err);

static const struct exec_hooks run_hooks = {on_exec_changed, on_exec_finished};

struct jrun *run_new(struct engine *e, struct mig_job *job)
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

/* ---- carrying out the lifecycle's decisions ---- */

static struct mig_lifecycle_cfg lifecycle_cfg(const struct mig_config *cfg)
{
    return (struct mig_lifecycle_cfg){
        .auto_switch_bytes = cfg->incremental.auto_switch_bytes,
        .max_downtime_ms = (int64_t)cfg->incremental.max_downtime_s * 1000,
        .max_rounds = cfg->incremental.max_rounds,
        .interval_ms = (uint64_t)cfg->incremental.interval_s * 1000,
        .wait_ms = WAIT_MS,
        .health_report = cfg->health.on_failure != NULL &&
                         strcmp(cfg->health.on_failure, "report") == 0,
    };
}

/* Whether a job's run switches now: the VM's downtime, into or out of its two CNs. */
static bool switching(const struct jrun *r)
{
    const struct mig_job *j = r->job;
    return j->state == MIG_JOB_RUNNING && r->retrying == 0 && !j->undoing &&
           ((j->task == MIG_TASK_MIGRATE && j->phase == MIG_PHASE_SWITCH) ||
            (j->task == MIG_TASK_RETURN && j->phase == MIG_PHASE_ROLLBACK));
}

/* The runs but `me` (NULL: none) that switch into or out of cn; the last of them in *holder. */
static int switches_on(struct engine *e, const char *cn, const struct jrun *me,
                       const struct mig_job **holder)
{
    int n = 0;
    for (const struct jrun *o = e->runs; o != NULL; o = o->next) {
        if (o == me || !switching(o))
            continue;
        if (strcmp(o->job->source_server_uuid, cn) == 0 ||
            strcmp(o->job->target_server_uuid, cn) == 0) {
            n++;
            *holder = o->job;
        }
    }
    return n;
}

int engine_switches_on(struct engine *e, const char *cn)
{
    const struct mig_job *holder = NULL;
    return switches_on(e, cn, NULL, &holder);
}

/*
 * Another job whose switch holds one of job's CNs, when their number on
 * one CN reaches limits.switches_per_cn (else NULL): its switch waits.
 */
static const struct mig_job *switch_slot_holder(struct engine *e, const struct jrun *me)
{
    const char *cns[2] = {me->job->source_server_uuid, me->job->target_server_uuid};
    for (int k = 0; k < 2; k++) {
        const struct mig_job *holder = NULL;
        int n = switches_on(e, cns[k], me, &holder);
        if (holder != NULL && n >= e->d->cfg->limits.switches_per_cn)
            return holder;
    }
    return NULL;
}

/* The last round's forecast, for the operator. */
static void forecast_text(const struct mig_job *job, char *buf, size_t bufsz)
{
    const struct mig_round *last =
        job->nround_log > 0 ? &job->round_log[job->nround_log - 1] : NULL;
    struct mig_forecast f = {job->ctx.write_bytes_s, last != NULL ? last->rate_bytes_s : -1,
                             last != NULL ? last->predicted_downtime_ms : -1};
    mig_forecast_text(&f, buf, bufsz);
}

/* What a job waiting between rounds says it waits for. */
/* Logs a wait the job rests in, once: a round between two looks does not tell it again. */
static void tell_once(struct jrun *r, const char *waits)
{
    if (strcmp(r->told, waits) == 0)
        return;
    jlog(r->job, MIG_LOG_INFO, "%s", waits);
    snprintf(r->told, sizeof(r->told), "%s", waits);
}

static void say_wait(struct jrun *r, enum mig_wait wait)
{
    struct mig_job *job = r->job;
    char f[200];
    forecast_text(job, f, sizeof(f));
    switch (wait) {
    case MIG_WAIT_STALLED:
        mig_job_set_activity(job, "not converging: %s", f);
        break;
    case MIG_WAIT_MAX_ROUNDS:
        mig_job_set_activity(job, "in sync after %d rounds (incremental.max_rounds): %s",
                             job->ctx.rounds, f);
        break;
    case MIG_WAIT_NEXT_ROUND:
        if (job->ctx.rounds >= 2)
            mig_job_set_activity(job, "next round in %d s; %s",
                                 r->e->d->cfg->incremental.interval_s, f);
        else
            mig_job_set_activity(job, "next round in %d s", r->e->d->cfg->incremental.interval_s);
        break;
    case MIG_WAIT_HEALTH: {
        const struct mig_health *h = &job->health;
        int64_t up = h->since_ms > 0 ? (mig_now_ms() - h->since_ms) / 1000 : 0;
        mig_job_set_activity(job, "health gate: up %lld s of %d s on %s, next look in %llu s",
                             (long long)up, h->min_up_s, job->target_hostname,
                             (unsigned long long)((job->ctx.wake_ms - mig_now_ms() + 999) / 1000));
        break;
    }
    case MIG_WAIT_WINDOW: {
        /* At a window's close the jobs not yet switched wait for the next one: it says when. */
        char spec[MIG_WINDOW_SPEC_LEN], when[32];
        mig_window_format(&job->window, spec, sizeof(spec));
        int64_t at = mig_switch_allowed_at(job, mig_now_ms());
        mig_time_iso(at == INT64_MAX ? 0 : at, when);
        char waits[160];
        snprintf(waits, sizeof(waits), "ready; the switch waits for its window %s: %s%s", spec,
                 at == INT64_MAX ? "its time zone cannot be read" : "opens ",
                 at == INT64_MAX ? "" : when);
        tell_once(r, waits); /* when it became ready, and when a window closed on it */
        mig_job_set_activity(job, "%s; %s", waits, f);
        break;
    }
    case MIG_WAIT_SWITCH_SLOT: {
        const struct mig_job *h = switch_slot_holder(r->e, r);
        char waits[160];
        snprintf(waits, sizeof(waits),
                 "ready; the switch waits for job %s's switch (limits.switches_per_cn %d)",
                 h != NULL ? h->uuid : "?", r->e->d->cfg->limits.switches_per_cn);
        tell_once(r, waits);
        mig_job_set_activity(job, "ready; the switch waits for job %s's switch (%s to %s): "
                                  "limits.switches_per_cn %d",
                             h != NULL ? h->uuid : "?", h != NULL ? h->source_hostname : "?",
                             h != NULL ? h->target_hostname : "?",
                             r->e->d->cfg->limits.switches_per_cn);
        break;
    }
    case MIG_WAIT_PAUSED: {
        char waits[160];
        snprintf(waits, sizeof(waits), "ready; the switch waits: evacuation %s is paused",
                 job->evacuation);
        tell_once(r, waits);
        mig_job_set_activity(job, "ready; paused with evacuation %s (migctl resume %s): a round "
                                  "every %d s; %s",
                             job->evacuation, job->evacuation,
                             r->e->d->cfg->incremental.interval_s, f);
        break;
    }
    case MIG_WAIT_JOB_PAUSED: {
        char waits[160];
        snprintf(waits, sizeof(waits), "paused after %d round(s); waits for migctl resume %s",
                 job->ctx.rounds, job->uuid);
        tell_once(r, waits);
        if (job->ctx.rounds == 0)
            mig_job_set_activity(job, "paused before its first send ended (migctl resume %s): it "
                                      "goes on from what %s holds",
                                 job->uuid, job->target_hostname);
        else
            mig_job_set_activity(job, "paused after %d round(s) (migctl resume %s); %s",
                                 job->ctx.rounds, job->uuid, f);
        break;
    }
    case MIG_WAIT_NONE:
        break;
    }
}

/* The operator's sentence for how a run ends. */
static void say_end(struct jrun *r, enum mig_outcome out, int ev)
{
    struct mig_job *job = r->job;
    if (ev == MIG_EV_ROLLED_BACK)
        jlog(job, MIG_LOG_INFO, "VM %s is back on %s", job->vm_uuid, job->source_hostname);
    else if (ev == MIG_EV_CLEANED)
        jlog(job, MIG_LOG_INFO, "source copy of %s deleted from %s", job->vm_uuid,
             job->source_hostname);
    else if (ev == MIG_EV_KEPT && out == MIG_OUT_UNDONE)
        jlog(job, MIG_LOG_WARN, "the rollback did not complete; the VM stays on %s",
             job->target_hostname);
    else if (out == MIG_OUT_FAILED_FORWARD && ev == MIG_EV_FAIL)
        jlog(job, MIG_LOG_ERROR, "failed after the VM moved; it stays on %s",
             job->task == MIG_TASK_RETURN ? job->source_hostname : job->target_hostname);
    else if (out == MIG_OUT_UNDONE)
        jlog(job, MIG_LOG_INFO, "rolled back: the VM is on %s as before", job->source_hostname);
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
    } else if (job->phase == MIG_PHASE_VERIFY) {
        mig_plan_verify(job, p);
    } else {
        mig_plan_cleanup(job, p);
    }
}

void run_plan(struct jrun *r)
{
    struct mig_plan *p = mig_calloc(1, sizeof(*p));
    plan_now(r, p);
    r->round_sent_base = r->job->progress.bytes_sent;
    r->round_started_ms = mig_now_ms();
    exec_run(r->x, p);
    free(p);
}

/*
 * Asks the lifecycle table what the job does after outcome, applies its
 * changes to the job (one save), and carries the decision out.
 */
static void decide(struct jrun *r, enum mig_outcome out)
{
    struct mig_job *job = r->job;
    struct mig_lifecycle_cfg cfg = lifecycle_cfg(r->e->d->cfg);
    cfg.switch_slot_taken = switch_slot_holder(r->e, r) != NULL;
    cfg.held = admit_held(r->e, job);
    int64_t now = mig_now_ms();
    struct mig_next n = mig_lifecycle_next(job, &cfg, out, now);
    enum mig_phase was = job->phase;
    if (n.clear_error)
        mig_job_clear_error(job);
    if (n.error_code != NULL && (!n.error_if_none || job->error_code == NULL))
        mig_job_set_error(job, n.error_code, n.error_message);
    if (n.task >= 0)
        job->task = (enum mig_task)n.task;
    if (n.phase >= 0)
        job->phase = (enum mig_phase)n.phase;
    for (int i = 0; i < 2 && n.events[i] >= 0; i++)
        transition(r, (enum mig_job_event)n.events[i]);
    if (job->phase != was)
        jlog(job, MIG_LOG_INFO, "phase %s", mig_phase_name(job->phase));
    if (n.what == MIG_DO_UNDO && !job->undoing) {
        job->undoing = true;
        jlog(job, MIG_LOG_WARN, "rolling back: %s",
             job->task == MIG_TASK_RETURN ? "the VM stays on the target"
                                          : "the VM stays on the source");
    }
    /* A sleep's end is on record: a restart sleeps what is left of it. */
    job->ctx.wake_ms = n.what == MIG_DO_SLEEP ? now + (int64_t)n.sleep_ms : 0;
    if (n.what == MIG_DO_SLEEP)
        say_wait(r, n.wait);
    run_save(r);
    watch_notify(r->e, job);
    switch (n.what) {
    case MIG_DO_PLAN:
        run_plan(r);
        return;
    case MIG_DO_SLEEP:
        /* A wait without rounds still wakes for finish or abort. */
        r->sleeping = true;
        exec_sleep(r->x, n.sleep_ms);
        return;
    case MIG_DO_UNDO:
        exec_undo(r->x, n.undo_mask);
        return;
    case MIG_DO_END:
        say_end(r, out, n.events[0]);
        run_end(r);
        return;
    }
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
 * The remote time of the final sends: their operations' time, scaled by how
 * much of their spans overlapped (the union of the spans over their sum),
 * since a KVM's streams run at once (transfer.streams): sent one after the
 * other, it is their sum; all at once, about the longest.
 */
static bool final_send(const char *key)
{
    return strncmp(key, "switch.send@final", 17) == 0;
}

static int64_t final_sends_op_ms(const struct mig_action_rec *rows, size_t n)
{
    int64_t op = 0, sum = 0, uni = 0, reach = INT64_MIN;
    for (size_t i = 0; i < n; i++) { /* in order of start (the journal's) */
        const struct mig_action_rec *a = &rows[i];
        if (!final_send(a->key) || a->ended_ms < a->started_ms)
            continue;
        op += a->op_ms > 0 ? a->op_ms : 0;
        sum += a->ended_ms - a->started_ms;
        int64_t from = a->started_ms > reach ? a->started_ms : reach;
        uni += a->ended_ms > from ? a->ended_ms - from : 0;
        reach = a->ended_ms > reach ? a->ended_ms : reach;
    }
    return sum > 0 ? op * uni / sum : op;
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
    /* Where the downtime ends (act_zone.c): a running VM's start, a stopped VM's hand-over. */
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
        if (final_send(a->key) && a->ended_ms > send_to)
            send_to = a->ended_ms; /* the last to end: a KVM's sends run at once */
        if (job->nbreakdown < MIG_MAX_BREAKDOWN && a->ended_ms >= a->started_ms) {
            struct mig_part *p = &job->breakdown[job->nbreakdown++];
            snprintf(p->action, sizeof(p->action), "%s", a->key);
            p->ms = a->ended_ms - a->started_ms;
        }
        if (!final_send(a->key)) /* counted below, as much as they overlapped */
            op_total += a->op_ms > 0 ? a->op_ms : 0;
        if (strcmp(a->key, last) == 0)
            break;
    }
    op_total += final_sends_op_ms(rows, n);
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

static void on_exec_finished(void *owner, int err)
{
    struct jrun *r = owner;
    struct mig_job *job = r->job;
    if (r->e->closing)
        return;
    if (r->retrying != 0) {
        if (err != 0)
            jlog(job, MIG_LOG_WARN, "retrying leftovers: %s", mig_strerror(err));
        leftovers_walk(r);
        return;
    }
    count_bytes(r);
    bool cut_by_pause = r->cut_by_pause; /* this walk's, whatever its end */
    r->cut_by_pause = false;
    if (job->undoing) {
        job->undoing = false;
        decide(r, err != 0 ? MIG_OUT_UNDO_STOPPED : MIG_OUT_UNDONE);
        return;
    }
    if (r->sleeping) {
        r->sleeping = false;
        mig_job_set_activity(job, NULL);
        decide(r, MIG_OUT_SLEPT);
        return;
    }
    if (err == 0) {
        /* What the walk measured goes on record before the next decision reads it. */
        if (job->task == MIG_TASK_MIGRATE && job->phase == MIG_PHASE_SYNC)
            record_round(r);
        if (job->task == MIG_TASK_MIGRATE && job->phase == MIG_PHASE_SWITCH) {
            record_breakdown(r);
            jlog(job, MIG_LOG_INFO, "VM %s is %s on %s after %lld ms of downtime", job->vm_uuid,
                 job->vm_was_running == 1 ? "running" : "installed", job->target_hostname,
                 (long long)job->downtime_ms);
        }
        decide(r, MIG_OUT_DONE);
        return;
    }
    if (job->task == MIG_TASK_MIGRATE && job->phase == MIG_PHASE_VERIFY) {
        /* The gate could not look at the target: a failed gate, on record as one. */
        job->health.state = MIG_HEALTH_FAILED;
        if (job->vm_was_running == 1)
            job->ctx.back_was_running = 1; /* its rollback runs it on the source (act_health.c) */
        snprintf(job->health.why, sizeof(job->health.why), "the target could not be checked: %s",
                 job->error_message != NULL ? job->error_message : mig_strerror(err));
        mig_utf8_scrub(job->health.why);
    }
    if (err == MIG_ECANCELED && !job->abort_requested && cut_by_pause && !job->paused) {
        /* Resumed before the pause's cut took effect: the round goes on, from what the target holds. */
        run_plan(r);
        return;
    }
    if (err == MIG_ECANCELED && (job->abort_requested || job->paused))
        decide(r, MIG_OUT_CANCELED);
    else
        decide(r, exec_failed_forward(r->x) ? MIG_OUT_FAILED_FORWARD : MIG_OUT_FAILED);
}

/* Starts (or resumes) a job. */
void run_start(struct engine *e, struct mig_job *job)
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
    decide(r, MIG_OUT_START);
}

/* ---- the engine: its start, tick and end ---- */

/* Switched jobs whose cleanup timer is due: their source copy goes, as `migctl cleanup`. */
static void cleanups_due(struct engine *e)
{
    char due[8][MIG_UUID_LEN + 1];
    size_t n = 0;
    if (mig_store_cleanups_due(e->d->store, mig_now_ms(), 8, due, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (run_find(e, due[i]) != NULL)
            continue;
        char msg[512];
        int rc = engine_action(e, due[i], "cleanup", msg, sizeof(msg));
        mig_log(rc == 0 ? MIG_LOG_INFO : MIG_LOG_WARN, due[i], NULL, "cleanup timer: %s", msg);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct engine *e = t->data;
    admit_schedule(e);
    leftovers_retry_due(e);
    cleanups_due(e);
    for (int i = 0; i < e->nticks; i++)
        e->ticks[i].tick(e->ticks[i].arg);
}

int engine_new(struct migd *d, struct engine **out)
{
    struct engine *e = mig_calloc(1, sizeof(*e));
    e->d = d;
    e->metrics = metrics_load(d->store);
    e->held = json_object();
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
                run_find(e, jobs[i]->uuid) == NULL) {
                mig_job_apply(jobs[i], MIG_EV_RESUME);
                run_start(e, jobs[i]);
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
    e->resumed = true;
    uv_timer_start(&e->tick, on_tick, 0, TICK_MS);
}

static void on_tick_closed(uv_handle_t *h)
{
    struct engine *e = h->data;
    metrics_free(e->metrics);
    json_decref(e->held);
    free(e);
}

void engine_free(struct engine *e)
{
    e->closing = true;
    submissions_cancel_all(e);
    while (e->runs != NULL) {
        struct jrun *r = e->runs;
        e->runs = r->next;
        exec_free(r->x);
        mig_job_free(r->job);
        free(r);
    }
    watch_free_all(e);
    free(e->bad);
    e->bad = NULL;
    uv_close((uv_handle_t *)&e->tick, on_tick_closed);
}
