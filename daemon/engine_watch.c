/*
 * engine_watch.c: who hears of a job.  Watchers (the API's event streams)
 * hear of every change of one job until it is at rest; the "job ended"
 * subscribers (the evacuator) hear each time a run ends.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "util.h"

/*
 * The job is done moving for a watcher: it ended, switched, or waits for
 * finish (and is neither finishing nor aborting).  A full or auto job
 * waiting for its window is still on its way: it switches by itself.
 */
static bool watch_final(const struct mig_job *job)
{
    return mig_job_state_final(job->state) || job->state == MIG_JOB_SWITCHED ||
           (job->state == MIG_JOB_WAITING && !job->abort_requested && !job->finish_requested &&
            !job->undoing && (job->mode == MIG_MODE_INCREMENTAL || !job->window.set));
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

void watch_notify(struct engine *e, const struct mig_job *job)
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

bool engine_job_at_rest(struct engine *e, const char *job_uuid)
{
    struct jrun *r = mig_uuid_valid(job_uuid) ? run_find(e, job_uuid) : NULL;
    if (r != NULL)
        return watch_final(r->job);
    struct mig_job *job = NULL;
    if (!mig_uuid_valid(job_uuid) || mig_store_job_load(e->d->store, job_uuid, &job) != 0)
        return true; /* nothing to follow */
    bool rest = watch_final(job);
    mig_job_free(job);
    return rest;
}

/* Adds sub to list, n of its ENGINE_MAX_SUBSCRIBERS in use: 0, or -ENOSPC when it is full. */
static int subscribe(struct engine_subscriber *list, int *n, struct engine_subscriber sub)
{
    if (*n == ENGINE_MAX_SUBSCRIBERS)
        return -ENOSPC;
    list[(*n)++] = sub;
    return 0;
}

int engine_subscribe_ended(struct engine *e, engine_ended_fn fn, void *arg)
{
    return subscribe(e->ended, &e->nended, (struct engine_subscriber){.ended = fn, .arg = arg});
}

int engine_subscribe_tick(struct engine *e, engine_tick_fn fn, void *arg)
{
    return subscribe(e->ticks, &e->nticks, (struct engine_subscriber){.tick = fn, .arg = arg});
}

void engine_unwatch(struct engine *e, void *handle)
{
    for (struct watcher *w = e->watchers; w != NULL; w = w->next)
        if (w == handle)
            w->removed = true;
    if (e->notifying == 0)
        reap_watchers(e);
}

void watch_free_all(struct engine *e)
{
    for (struct watcher *w = e->watchers; w != NULL; w = w->next)
        w->removed = true;
    reap_watchers(e);
}
