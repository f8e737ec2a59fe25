/*
 * engine_query.c: the jobs as the API shows them (a live run's job over its
 * stored record, unreadable rows listed, never hidden), and the counters of
 * /ping and /metrics, from memory.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "err.h"
#include "metrics.h"
#include "util.h"

json_t *engine_job_json(struct engine *e, const char *job_uuid)
{
    if (job_uuid == NULL || !mig_uuid_valid(job_uuid))
        return NULL;
    struct jrun *r = run_find(e, job_uuid);
    if (r != NULL)
        return mig_job_to_json(r->job);
    struct mig_job *job = NULL;
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
        struct jrun *r = run_find(e, jobs[i]->uuid);
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
                     admit_active(e), "unreadable", metrics_unreadable(e->metrics));
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
    char *text = metrics_text(e->metrics, rate, len);
    int64_t left = mig_store_leftover_count(e->d->store);
    if (text == NULL || left < 0)
        return text;
    char extra[256];
    int n = snprintf(extra, sizeof(extra),
                     "# HELP migd_leftovers What jobs could not remove yet (retried by migd).\n"
                     "# TYPE migd_leftovers gauge\nmigd_leftovers %lld\n",
                     (long long)left);
    char *grown = realloc(text, *len + (size_t)n + 1);
    if (grown == NULL)
        return text;
    memcpy(grown + *len, extra, (size_t)n + 1);
    *len += (size_t)n;
    return grown;
}
