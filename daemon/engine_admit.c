/*
 * engine_admit.c: which queued job starts now.  Jobs start oldest first,
 * within limits.max_active_jobs, limits.max_jobs_per_cn and an
 * evacuation's --max-parallel; a job that must wait says for what.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "util.h"

bool admit_held(const struct engine *e, const struct mig_job *job)
{
    return job->evacuation[0] != '\0' && json_object_get(e->held, job->evacuation) != NULL;
}

void engine_hold(struct engine *e, const char *evac_uuid, bool held)
{
    if (held) {
        json_object_set_new(e->held, evac_uuid, json_true());
        if (e->resumed)
            admit_schedule(e); /* its queued jobs say why they wait */
        return;
    }
    if (json_object_get(e->held, evac_uuid) == NULL)
        return;
    json_object_del(e->held, evac_uuid);
    /* Its jobs resting between rounds decide now: a ready one switches. */
    for (struct jrun *r = e->runs; r != NULL; r = r->next)
        if (r->sleeping && !r->ending && strcmp(r->job->evacuation, evac_uuid) == 0)
            exec_wake(r->x);
    if (e->resumed)
        admit_schedule(e);
}

int engine_evac_runs(struct engine *e, const char *evac_uuid)
{
    int n = 0;
    for (struct jrun *r = e->runs; r != NULL; r = r->next)
        if (!r->ending && strcmp(r->job->evacuation, evac_uuid) == 0)
            n++;
    return n;
}

/* Jobs being worked on. */
int admit_active(struct engine *e)
{
    int n = 0;
    for (struct jrun *r = e->runs; r != NULL; r = r->next)
        if (!r->ending && r->retrying == 0)
            n++;
    return n;
}

static int active_on(struct engine *e, const char *server)
{
    int n = 0;
    for (struct jrun *r = e->runs; r != NULL; r = r->next)
        if (!r->ending && r->retrying == 0 &&
            (strcmp(r->job->source_server_uuid, server) == 0 ||
                           strcmp(r->job->target_server_uuid, server) == 0))
            n++;
    return n;
}

/* Why a queued job cannot start now, into why (""): the limit it waits for. */
static void waits_for(struct engine *e, const struct mig_job *job, int active, char *why,
                      size_t whysz)
{
    const struct mig_config *cfg = e->d->cfg;
    why[0] = '\0';
    if (job->paused) {
        snprintf(why, whysz, "waits: paused (migctl resume %s)", job->uuid);
        return;
    }
    if (admit_held(e, job)) {
        snprintf(why, whysz, "waits: its evacuation %s is paused (migctl resume %s)",
                 job->evacuation, job->evacuation);
        return;
    }
    if (active >= cfg->limits.max_active_jobs) {
        snprintf(why, whysz, "waits for limits.max_active_jobs: %d running", active);
        return;
    }
    if (job->evacuation[0] != '\0' && job->evac_parallel > 0) {
        int n = engine_evac_runs(e, job->evacuation);
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
void admit_schedule(struct engine *e)
{
    if (e->closing)
        return;
    int active = admit_active(e);
    struct mig_job_filter f = {.state = "queued", .vm_uuid = NULL, .all = 0};
    struct mig_job **jobs = NULL;
    size_t n = 0;
    if (mig_store_job_list(e->d->store, &f, &jobs, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        struct mig_job *job = jobs[i];
        char why[sizeof(job->ctx.activity)];
        if (run_find(e, job->uuid) != NULL) {
            mig_job_free(job);
            continue;
        }
        waits_for(e, job, active, why, sizeof(why));
        if (why[0] == '\0') {
            run_start(e, job);
            active++;
            continue;
        }
        if (strcmp(why, job->ctx.activity) != 0) {
            mig_job_set_activity(job, "%s", why);
            if (mig_store_job_save(e->d->store, job) == 0) {
                jlog(job, MIG_LOG_INFO, "queued: %s", why);
                watch_notify(e, job);
            }
        }
        mig_job_free(job);
    }
    free(jobs);
}
