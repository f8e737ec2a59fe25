/*
 * engine_submit.c: a submission's intake.  Its checks (lib/submit.c) run
 * through the executor before any job exists; a VM with an unfinished job
 * or a leftover in the way is refused; what passes is saved as a queued
 * job (a dry run: only its plan), and admission takes it from there.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "err.h"
#include "metrics.h"
#include "request.h"
#include "util.h"

static void unlink_submission(struct engine *e, struct submission *s)
{
    MIG_LIST_UNLINK(&e->submissions, s, next);
}

static void on_submit_changed(void *owner)
{
    (void)owner;
}

static void on_submit_finished(void *owner, int err);

static const struct exec_hooks submit_hooks = {on_submit_changed, on_submit_finished};

/*
 * A leftover of an earlier job of the VM that stands in the way of this one
 * (a dataset or zone left on its target): its words into msg.  False when none.
 */
static bool leftover_in_the_way(struct engine *e, const struct mig_job *job, char *msg,
                                size_t msgsz)
{
    struct mig_job_filter f = {.vm_uuid = job->vm_uuid, .all = 1};
    struct mig_job **jobs = NULL;
    size_t n = 0;
    bool found = false;
    if (job->target_hostname == NULL || mig_store_job_list(e->d->store, &f, &jobs, &n) != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < jobs[i]->nleftovers && !found; k++) {
            const struct mig_leftover *lo = &jobs[i]->leftovers[k];
            if (mig_leftover_blocks(jobs[i], lo) && strcmp(lo->cn, job->target_hostname) == 0) {
                snprintf(msg, msgsz,
                         "%s %s on %s is a leftover of job %s (%s): it blocks a migration of the "
                         "VM there until it is gone; \"migctl cleanup %s\" retries its removal "
                         "now",
                         lo->kind, lo->name, lo->cn, jobs[i]->uuid, lo->reason, jobs[i]->uuid);
                found = true;
            }
        }
        mig_job_free(jobs[i]);
    }
    free(jobs);
    return found;
}

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
    } else if (err == 0 && leftover_in_the_way(e, job, refusal.message, sizeof(refusal.message))) {
        refusal.rule = "LeftoverInTheWay";
        err = MIG_EREFUSED;
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
        admit_schedule(e);
}

int engine_submit(struct engine *e, const struct mig_request *req, engine_submit_cb cb, void *arg)
{
    if (req->vm == NULL)
        return -EINVAL;
    struct mig_job *job = mig_job_new();
    if (mig_uuid_valid(req->vm)) {
        for (size_t i = 0; i <= MIG_UUID_LEN; i++)
            job->vm_uuid[i] =
                (char)(req->vm[i] >= 'A' && req->vm[i] <= 'F' ? req->vm[i] - 'A' + 'a' : req->vm[i]);
    } else {
        job->vm_alias = mig_strdup(req->vm);
    }
    job->mode = req->mode;
    job->dry_run = req->dry_run;
    job->allow_older_platform = req->allow_older_platform;
    job->cleanup_source = req->cleanup_source;
    if (req->evacuation[0] != '\0' && mig_uuid_valid(req->evacuation)) {
        snprintf(job->evacuation, sizeof(job->evacuation), "%s", req->evacuation);
        job->evac_parallel = req->max_parallel;
    }
    job->limit_mbps = req->limit_mbps >= 0 ? req->limit_mbps : e->d->cfg->transfer.limit_mbps;
    job->cleanup_after_s =
        req->cleanup_after_s >= 0 ? req->cleanup_after_s : e->d->cfg->cleanup.after_s;
    job->window = req->window;
    mig_health_init(&job->health,
                    req->min_up_s >= 0 ? req->min_up_s : e->d->cfg->health.min_up_s);
    snprintf(job->transfer, sizeof(job->transfer), "%s",
             req->transfer[0] != '\0' ? req->transfer : e->d->cfg->transfer.mode);
    if (req->target != NULL)
        snprintf(job->ctx.target_request, sizeof(job->ctx.target_request), "%s", req->target);
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
    if (req->target == NULL) { /* migd places it: by the rules an evacuation places by */
        s->sub.spread_tag = e->d->cfg->placement.spread_tag;
        s->sub.avoid = mig_store_evac_draining(e->d->store);
    }
    exec_call(s->x, mig_submit_step, &s->sub.a);
    return 0;
}

void submissions_cancel_all(struct engine *e)
{
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
}
