/*
 * engine.c: the job engine.  It accepts submissions (validating them before
 * a job exists), schedules queued jobs within the configured limits, walks
 * each running job through steps_table, turns step outcomes into state
 * transitions (mig_job_apply), rolls back failures, applies operators'
 * actions, and tells watchers about every change.  Every change of a job is
 * saved to the store before anything else happens, which is what lets a
 * restarted daemon continue each unfinished job from its last step.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "run.h"
#include "steps.h"
#include "util.h"

struct watcher {
    char job_uuid[MIG_UUID_LEN + 1];
    engine_watch_fn fn;
    void *arg;
    bool removed;
    struct watcher *next;
};

struct engine {
    struct migd *d;
    struct run *runs; /* jobs being worked on, and submissions being validated */
    struct watcher *watchers;
    int notifying;   /* >0 while watchers are being called */
    uv_timer_t tick; /* periodic scheduling */
    bool closing;
};

/* A submission's job is not in the store yet, so its records carry no job uuid. */
#define jlog(r, level, ...)                                                                        \
    mig_log(level, (r)->submit_cb != NULL ? NULL : (r)->job->uuid, (r)->job->vm_uuid, __VA_ARGS__)

static void schedule(struct engine *e);
static void run_phase(struct run *r);

/* ---- watchers ---- */

/* The job is done moving for a watcher: it ended, switched, or waits for finish. */
static bool watch_final(const struct mig_job *job)
{
    return mig_job_state_final(job->state) || job->state == MIG_JOB_SWITCHED ||
           job->state == MIG_JOB_WAITING;
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

void engine_unwatch(struct engine *e, void *handle)
{
    for (struct watcher *w = e->watchers; w != NULL; w = w->next)
        if (w == handle)
            w->removed = true;
    if (e->notifying == 0)
        reap_watchers(e);
}

/* ---- job changes ---- */

static struct run *find_run(struct engine *e, const char *job_uuid)
{
    for (struct run *r = e->runs; r != NULL; r = r->next)
        if (r->submit_cb == NULL && !r->dead && strcmp(r->job->uuid, job_uuid) == 0)
            return r;
    return NULL;
}

static void save(struct run *r)
{
    int rc = mig_store_job_save(r->d->store, r->job);
    if (rc != 0)
        jlog(r, MIG_LOG_ERROR, "saving the job: %s", mig_strerror(rc));
}

void engine_job_changed(struct run *r)
{
    if (r->submit_cb != NULL)
        return; /* a submission has no job in the store yet */
    save(r);
    notify(r->engine, r->job);
}

void engine_on_progress(struct run *r)
{
    struct mig_progress *p = &r->job->progress;
    p->bytes_sent = (int64_t)(r->relay_base + r->relay_bytes);
    int64_t elapsed = mig_now_ms() - r->relay_started_ms;
    if (elapsed > 0)
        p->rate_bytes_s = (int64_t)(r->relay_bytes * 1000 / (uint64_t)elapsed);
    if (p->bytes_total < p->bytes_sent)
        p->bytes_total = p->bytes_sent;
    p->eta_s = p->rate_bytes_s > 0 ? (p->bytes_total - p->bytes_sent) / p->rate_bytes_s : -1;
    engine_job_changed(r);
}

/* Applies ev to the job, saves it, tells watchers; logs a refused transition. */
static void apply(struct run *r, enum mig_job_event ev)
{
    enum mig_job_state before = r->job->state;
    if (mig_job_apply(r->job, ev) != 0) {
        jlog(r, MIG_LOG_ERROR, "no transition from %s on event %d", mig_job_state_name(before), ev);
        return;
    }
    if (before != r->job->state)
        jlog(r, MIG_LOG_INFO, "job %s: %s -> %s", r->job->uuid, mig_job_state_name(before),
             mig_job_state_name(r->job->state));
    save(r);
}

/* Removes r from the engine's list of runs. */
static void unlink_run(struct engine *e, struct run *r)
{
    for (struct run **pp = &e->runs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            return;
        }
    }
}

/* Jobs being worked on (submissions being validated do not count). */
static int active_jobs(struct engine *e)
{
    int n = 0;
    for (struct run *r = e->runs; r != NULL; r = r->next)
        if (r->submit_cb == NULL && !r->dead)
            n++;
    return n;
}

/* Ends a run: unlinks it, tells watchers the final word, frees it, schedules. */
static void end_run(struct run *r)
{
    struct engine *e = r->engine;
    unlink_run(e, r);
    if (r->submit_cb == NULL)
        notify(e, r->job);
    run_free(r);
    schedule(e);
}

static struct run *run_new(struct engine *e, struct mig_job *job)
{
    struct run *r = mig_calloc(1, sizeof(*r));
    r->engine = e;
    r->d = e->d;
    r->job = job;
    uv_timer_init(e->d->loop, &r->timer);
    r->timer.data = r;
    r->next = e->runs;
    e->runs = r;
    return r;
}

/* ---- walking the steps ---- */

static void on_rolled_back(struct run *r, int err)
{
    if (err != 0)
        jlog(r, MIG_LOG_ERROR, "rollback did not complete; see the log above");
    mig_store_step_record(r->d->store, r->job->uuid, "rollback", err == 0 ? "done" : "failed");
    apply(r, r->job->abort_requested ? MIG_EV_ABORT : MIG_EV_FAIL);
    end_run(r);
}

static void on_source_cleaned(struct run *r, int err)
{
    mig_store_step_record(r->d->store, r->job->uuid, "cleanup-source",
                          err == 0 ? "done" : "failed");
    if (err == 0) {
        jlog(r, MIG_LOG_INFO, "source copy of %s deleted from %s", r->job->vm_uuid,
             r->job->source_hostname);
        apply(r, MIG_EV_CLEANED);
    } else {
        save(r); /* it stays switched, with its error; cleanup may be retried */
    }
    end_run(r);
}

static void on_step_done(struct run *r, int err)
{
    struct mig_job *job = r->job;
    const char *phase = mig_phase_name(job->phase);
    if (err != 0) {
        mig_store_step_record(r->d->store, job->uuid, phase, "failed");
        if (job->error_code == NULL)
            mig_job_set_error(job, "StepFailed", mig_strerror(err));
        save(r);
        bool on_target = json_is_true(json_object_get(job->ctx, "inventoried"));
        if (on_target) {
            /* The VM runs (or is installed) on the target and VMAPI says so: keep it there. */
            jlog(r, MIG_LOG_ERROR, "failed after the VM moved; it stays on %s",
                 job->target_hostname);
            apply(r, MIG_EV_FAIL);
            end_run(r);
            return;
        }
        run_start_step(r, step_rollback, on_rolled_back);
        return;
    }
    mig_store_step_record(r->d->store, job->uuid, phase, "done");
    if (job->phase == MIG_PHASE_CLEANUP) {
        apply(r, MIG_EV_SWITCHED);
        if (job->cleanup_source) {
            run_start_step(r, step_cleanup_source, on_source_cleaned);
            return;
        }
        end_run(r);
        return;
    }
    job->phase++;
    save(r);
    run_phase(r);
}

static void run_phase(struct run *r)
{
    struct mig_job *job = r->job;
    if (job->phase == MIG_PHASE_VALIDATE)
        job->phase = MIG_PHASE_PREPARE; /* validated when it was submitted */
    if (job->abort_requested && job->phase < MIG_PHASE_SWITCH) {
        mig_job_set_error(job, "Aborted", "aborted by the operator");
        run_start_step(r, step_rollback, on_rolled_back);
        return;
    }
    save(r);
    mig_store_step_record(r->d->store, job->uuid, mig_phase_name(job->phase), "started");
    jlog(r, MIG_LOG_INFO, "%s: %s", mig_phase_name(job->phase), steps_table[job->phase].does);
    notify(r->engine, job);
    run_start_step(r, steps_table[job->phase].fn, on_step_done);
}

static void on_loaded(struct run *r, int err)
{
    if (err != 0) {
        on_step_done(r, err);
        return;
    }
    if (r->job->state == MIG_JOB_QUEUED)
        apply(r, MIG_EV_START);
    run_phase(r);
}

/* Starts (or resumes) a job: fetches what its steps need, then walks them. */
static void start_job(struct engine *e, struct mig_job *job)
{
    struct run *r = run_new(e, job);
    jlog(r, MIG_LOG_INFO, "job %s %s: %s (%s) from %s to %s", job->uuid,
         job->state == MIG_JOB_QUEUED ? "starting" : "resuming", job->vm_uuid,
         job->vm_alias ? job->vm_alias : "", job->source_hostname, job->target_hostname);
    run_start_step(r, step_load, on_loaded);
}

static int active_on(struct engine *e, const char *server)
{
    int n = 0;
    for (struct run *r = e->runs; r != NULL; r = r->next)
        if (r->submit_cb == NULL && !r->dead &&
            (strcmp(r->job->source_server_uuid, server) == 0 ||
             strcmp(r->job->target_server_uuid, server) == 0))
            n++;
    return n;
}

/* Starts queued jobs, oldest first, within max_active_jobs and max_jobs_per_cn. */
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
    const struct mig_config *cfg = e->d->cfg;
    for (size_t i = 0; i < n; i++) {
        struct mig_job *job = jobs[i];
        if (active < cfg->limits.max_active_jobs && find_run(e, job->uuid) == NULL &&
            active_on(e, job->source_server_uuid) < cfg->limits.max_jobs_per_cn &&
            active_on(e, job->target_server_uuid) < cfg->limits.max_jobs_per_cn) {
            start_job(e, job);
            active++;
        } else {
            mig_job_free(job);
        }
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
    uv_timer_init(d->loop, &e->tick);
    e->tick.data = e;
    /* Resume every job that was moving when the daemon stopped. */
    struct mig_job_filter f = {.state = NULL, .vm_uuid = NULL, .all = 0};
    struct mig_job **jobs = NULL;
    size_t n = 0;
    int rc = mig_store_job_list(d->store, &f, &jobs, &n);
    if (rc != 0) {
        free(e);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        if (jobs[i]->state == MIG_JOB_RUNNING || jobs[i]->state == MIG_JOB_WAITING) {
            mig_job_apply(jobs[i], MIG_EV_RESUME);
            start_job(e, jobs[i]);
        } else {
            mig_job_free(jobs[i]);
        }
    }
    free(jobs);
    uv_timer_start(&e->tick, on_tick, 0, 5000);
    *out = e;
    return 0;
}

static void on_tick_closed(uv_handle_t *h)
{
    free(h->data);
}

void engine_free(struct engine *e)
{
    e->closing = true;
    while (e->runs != NULL) {
        struct run *r = e->runs;
        e->runs = r->next;
        if (r->submit_cb != NULL) {
            struct mig_refusal rf = {.rule = "ShuttingDown", .message = "migd is shutting down"};
            r->submit_cb(r->submit_arg, MIG_ECANCELED, &rf, NULL, NULL);
            r->submit_cb = NULL;
        }
        r->step = NULL; /* a completion after this must not walk on */
        run_free(r);
    }
    for (struct watcher *w = e->watchers; w != NULL; w = w->next)
        w->removed = true;
    reap_watchers(e);
    uv_close((uv_handle_t *)&e->tick, on_tick_closed);
}

/* ---- submissions ---- */

static void on_validated(struct run *r, int err)
{
    struct engine *e = r->engine;
    engine_submit_cb cb = r->submit_cb;
    void *arg = r->submit_arg;
    struct mig_job *job = r->job;
    if (err == 0 && !job->dry_run) {
        /* Two submissions of one VM may validate at once: check again, then save. */
        char holder[MIG_UUID_LEN + 1];
        if (mig_store_job_holding_vm(r->d->store, job->vm_uuid, holder) == 0) {
            r->refusal.rule = MIG_RULE_VM_BUSY;
            snprintf(r->refusal.message, sizeof(r->refusal.message),
                     "VM %s already has unfinished job %s; see migctl show %s", job->vm_uuid,
                     holder, holder);
            err = MIG_EREFUSED;
        } else {
            job->created = mig_now_ms();
            int rc = mig_store_job_save(r->d->store, job);
            if (rc != 0) {
                r->refusal.rule = "InternalError";
                snprintf(r->refusal.message, sizeof(r->refusal.message), "saving the job: %s",
                         mig_strerror(rc));
                err = rc;
            } else {
                mig_store_step_record(r->d->store, job->uuid, "validate", "done");
                jlog(r, MIG_LOG_INFO, "job %s queued: %s (%s) from %s to %s, mode %s", job->uuid,
                     job->vm_uuid, job->vm_alias, job->source_hostname, job->target_hostname,
                     mig_mode_name(job->mode));
            }
        }
    }
    r->submit_cb = NULL;
    if (err == 0)
        cb(arg, 0, NULL, job, r->plan);
    else
        cb(arg, err, &r->refusal, NULL, NULL);
    unlink_run(e, r);
    run_free(r);
    if (err == 0 && !job->dry_run)
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
    if (target != NULL)
        json_object_set_new(job->ctx, "target_request", json_string(target));
    struct run *r = run_new(e, job);
    r->submit_cb = cb;
    r->submit_arg = arg;
    run_start_step(r, step_validate, on_validated);
    return 0;
}

/* ---- operators' actions ---- */

static void on_switched_rolled_back(struct run *r, int err)
{
    mig_store_step_record(r->d->store, r->job->uuid, "rollback", err == 0 ? "done" : "failed");
    if (err == 0) {
        free(r->job->error_code);
        free(r->job->error_message);
        r->job->error_code = r->job->error_message = NULL;
        apply(r, MIG_EV_ROLLED_BACK);
    } else {
        save(r); /* it stays switched, with its error; rollback may be retried */
    }
    end_run(r);
}

static void on_rollback_loaded(struct run *r, int err)
{
    if (err != 0) {
        save(r);
        end_run(r);
        return;
    }
    run_start_step(r, step_rollback_switched, on_switched_rolled_back);
}

static void on_cleanup_loaded(struct run *r, int err)
{
    if (err != 0) {
        save(r);
        end_run(r);
        return;
    }
    run_start_step(r, step_cleanup_source, on_source_cleaned);
}

int engine_action(struct engine *e, const char *job_uuid, const char *action, char *msg,
                  size_t msgsz)
{
    struct mig_job *stored = NULL;
    if (!mig_uuid_valid(job_uuid) || mig_store_job_load(e->d->store, job_uuid, &stored) != 0)
        return -ENOENT;
    struct run *r = find_run(e, job_uuid);
    struct mig_job *job = r != NULL ? r->job : stored;
    int rc = 0;
    if (strcmp(action, "finish") == 0) {
        if (job->mode == MIG_MODE_FULL ||
            !(job->state == MIG_JOB_RUNNING || job->state == MIG_JOB_WAITING ||
              job->state == MIG_JOB_QUEUED)) {
            snprintf(msg, msgsz,
                     "job %s is %s (%s mode): only a running incremental job can be finished",
                     job->uuid, mig_job_state_name(job->state), mig_mode_name(job->mode));
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
            snprintf(msg, msgsz, "job %s aborted before it started; nothing was changed",
                     job->uuid);
        } else if ((job->state == MIG_JOB_RUNNING || job->state == MIG_JOB_WAITING) &&
                   job->phase < MIG_PHASE_SWITCH) {
            job->abort_requested = true;
            snprintf(msg, msgsz, "job %s: aborting; what was sent to %s will be removed", job->uuid,
                     job->target_hostname);
        } else {
            snprintf(msg, msgsz, "job %s is %s in phase %s: it can no longer be aborted%s",
                     job->uuid, mig_job_state_name(job->state), mig_phase_name(job->phase),
                     job->state == MIG_JOB_SWITCHED ? "; use rollback" : "");
            rc = -EINVAL;
        }
    } else if (strcmp(action, "cleanup") == 0) {
        if (job->state != MIG_JOB_SWITCHED || r != NULL) {
            snprintf(msg, msgsz, "job %s is %s: only a switched job's source copy can be deleted",
                     job->uuid, mig_job_state_name(job->state));
            rc = -EINVAL;
        } else {
            snprintf(msg, msgsz, "job %s: deleting the source copy of %s on %s", job->uuid,
                     job->vm_uuid, job->source_hostname);
            mig_log(MIG_LOG_INFO, job->uuid, job->vm_uuid, "%s", msg);
            r = run_new(e, stored);
            stored = NULL;
            run_start_step(r, step_load, on_cleanup_loaded);
            return 0;
        }
    } else if (strcmp(action, "rollback") == 0) {
        if (job->state != MIG_JOB_SWITCHED || r != NULL) {
            snprintf(msg, msgsz, "job %s is %s: only a switched job can be rolled back%s",
                     job->uuid, mig_job_state_name(job->state),
                     job->state == MIG_JOB_RUNNING || job->state == MIG_JOB_WAITING ? "; use abort"
                                                                                    : "");
            rc = -EINVAL;
        } else {
            snprintf(msg, msgsz,
                     "job %s: moving %s back to %s; what changed on %s is sent back first",
                     job->uuid, job->vm_uuid, job->source_hostname, job->target_hostname);
            mig_log(MIG_LOG_INFO, job->uuid, job->vm_uuid, "%s", msg);
            r = run_new(e, stored);
            stored = NULL;
            run_start_step(r, step_load, on_rollback_loaded);
            return 0;
        }
    } else {
        snprintf(msg, msgsz, "unknown action \"%s\": use finish, abort, rollback or cleanup",
                 action);
        rc = -EINVAL;
    }
    if (rc == 0) {
        mig_store_job_save(e->d->store, job);
        mig_log(MIG_LOG_INFO, job->uuid, job->vm_uuid, "%s", msg);
        notify(e, job);
        if (r != NULL && uv_is_active((uv_handle_t *)&r->timer)) {
            /* Wake a job sleeping between incremental rounds. */
            uv_timer_stop(&r->timer);
            r->busy = false;
            run_continue(r);
        }
    }
    mig_job_free(stored);
    return rc;
}

/* ---- queries ---- */

json_t *engine_job_json(struct engine *e, const char *job_uuid)
{
    struct run *r = find_run(e, job_uuid);
    if (r != NULL)
        return mig_job_to_json(r->job);
    struct mig_job *job = NULL;
    if (!mig_uuid_valid(job_uuid) || mig_store_job_load(e->d->store, job_uuid, &job) != 0)
        return NULL;
    json_t *j = mig_job_to_json(job);
    mig_job_free(job);
    return j;
}

json_t *engine_jobs_json(struct engine *e, const char *state, const char *vm_uuid, bool all)
{
    struct mig_job_filter f = {.state = state, .vm_uuid = vm_uuid, .all = all || state != NULL};
    struct mig_job **jobs = NULL;
    size_t n = 0;
    json_t *out = json_array();
    if (mig_store_job_list(e->d->store, &f, &jobs, &n) != 0)
        return out;
    for (size_t i = 0; i < n; i++) {
        struct run *r = find_run(e, jobs[i]->uuid);
        json_array_append_new(out, mig_job_to_json(r != NULL ? r->job : jobs[i]));
        mig_job_free(jobs[i]);
    }
    free(jobs);
    return out;
}

json_t *engine_stats_json(struct engine *e)
{
    struct mig_job_filter f = {.state = NULL, .vm_uuid = NULL, .all = 1};
    struct mig_job **jobs = NULL;
    size_t n = 0;
    json_t *by_state = json_object();
    for (int s = 0; s < MIG_JOB_NSTATES; s++)
        json_object_set_new(by_state, mig_job_state_name((enum mig_job_state)s), json_integer(0));
    json_t *downtimes = json_array();
    int64_t bytes = 0;
    if (mig_store_job_list(e->d->store, &f, &jobs, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            const char *name = mig_job_state_name(jobs[i]->state);
            json_object_set_new(
                by_state, name,
                json_integer(json_integer_value(json_object_get(by_state, name)) + 1));
            bytes += jobs[i]->progress.bytes_sent;
            if (jobs[i]->downtime_ms >= 0)
                json_array_append_new(downtimes, json_integer(jobs[i]->downtime_ms));
            mig_job_free(jobs[i]);
        }
        free(jobs);
    }
    int active = active_jobs(e);
    return json_pack("{s:o, s:I, s:o, s:i}", "jobs", by_state, "bytes_sent", (json_int_t)bytes,
                     "downtimes_ms", downtimes, "active", active);
}
