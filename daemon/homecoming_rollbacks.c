/*
 * homecoming_rollbacks.c: the homecoming's rollbacks (docs/glossary.md).  A
 * VM whose evacuation job is still switched keeps its copy on the CN it
 * left, so its cheapest way home is that job's rollback, which sends only
 * what changed since the switch.  A rollback is the VM's switch back, so it
 * starts only when the homecoming allows a switch: not paused, fewer than
 * --max-parallel of its jobs moving, a free switch slot on both CNs
 * (limits.switches_per_cn), and inside its window with the job's last
 * forecast of downtime fitting before the window closes.  Each tick of the
 * engine and each end of a job looks again; a wait is logged once per
 * change and shown on the plan entry ("waits").
 *
 * The job is re-tagged with the homecoming in the same write that starts
 * its return (engine_return_home), so the homecoming follows it: rolled
 * back is done, switched again (the rollback gave up) is failed.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "evac.h"
#include "lifecycle.h"
#include "log.h"
#include "store.h"
#include "util.h"

/* Why the switched job cannot roll back now, into why; "" when it can. */
static void waits_for(struct migd *d, const struct mig_window *win, json_t *job, char *why,
                      size_t whysz)
{
    why[0] = '\0';
    const char *cns[2] = {json_string_value(json_object_get(job, "source_server_uuid")),
                          json_string_value(json_object_get(job, "target_server_uuid"))};
    const char *names[2] = {json_string_value(json_object_get(job, "source_hostname")),
                            json_string_value(json_object_get(job, "target_hostname"))};
    for (int k = 0; k < 2; k++) {
        if (cns[k] != NULL &&
            engine_switches_on(d->engine, cns[k]) >= d->cfg->limits.switches_per_cn) {
            snprintf(why, whysz, "waits for a switch slot on %s (limits.switches_per_cn %d)",
                     names[k] != NULL ? names[k] : cns[k], d->cfg->limits.switches_per_cn);
            return;
        }
    }
    if (!win->set)
        return;
    struct mig_job *stored = NULL;
    const char *uuid = json_string_value(json_object_get(job, "uuid"));
    if (mig_store_job_load(d->store, uuid, &stored) != 0) {
        snprintf(why, whysz, "waits: job %s cannot be read", uuid);
        return;
    }
    stored->window = *win; /* the homecoming's window, with the job's own forecast */
    int64_t now = mig_now_ms();
    int64_t at = mig_switch_allowed_at(stored, now);
    mig_job_free(stored);
    if (at == INT64_MAX) {
        snprintf(why, whysz, "waits: the window's time zone %s cannot be read", win->tz);
    } else if (at > now) {
        char when[32];
        mig_time_iso(at, when);
        snprintf(why, whysz, "waits for its window: the switch back may start at %s", when);
    }
}

/*
 * The plan entries' waits onto the homecoming as it is on record now: a
 * rollback started above may have ended at once and the homecoming with it
 * (evac_job_ended saved it), which the copy read before must not undo.
 */
static void save_waits(struct migd *d, json_t *hc)
{
    json_t *now = mig_store_evac_load(d->store, json_string_value(json_object_get(hc, "uuid")));
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(now, "plan"), i, e)
    {
        json_t *mine = json_array_get(json_object_get(hc, "plan"), i);
        const char *a = json_string_value(json_object_get(e, "vm_uuid"));
        const char *b = json_string_value(json_object_get(mine, "vm_uuid"));
        if (a == NULL || b == NULL || strcmp(a, b) != 0)
            continue;
        json_t *waits = json_object_get(mine, "waits");
        if (waits != NULL)
            json_object_set(e, "waits", waits);
        else
            json_object_del(e, "waits");
    }
    if (now != NULL)
        mig_store_evac_save(d->store, now);
    json_decref(now);
}

/* Starts what may start of one running homecoming; true when a rollback still waits. */
static bool pace(struct migd *d, json_t *hc)
{
    const char *uuid = json_string_value(json_object_get(hc, "uuid"));
    json_t *opts = json_object_get(hc, "options");
    json_t *parallel = json_object_get(opts, "max_parallel");
    int lanes = json_is_integer(parallel) ? (int)json_integer_value(parallel)
                                          : d->cfg->limits.max_active_jobs;
    if (lanes < 1 || lanes > d->cfg->limits.max_active_jobs)
        lanes = d->cfg->limits.max_active_jobs; /* as its plan's estimate counts them */
    struct mig_window win = {.set = false};
    const char *spec = json_string_value(json_object_get(opts, "window"));
    if (spec != NULL && mig_window_parse_saved(spec, &win) != 0)
        win.set = false;
    bool paused = json_is_true(json_object_get(hc, "paused"));
    /* Counted as the scheduler fills lanes from queued jobs: a rollback takes the next that frees. */
    int n = engine_evac_runs(d->engine, uuid);
    bool waiting = false, changed = false;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(hc, "plan"), i, e)
    {
        const char *job_uuid = json_string_value(json_object_get(e, "job_uuid"));
        if (job_uuid == NULL || json_string_value(json_object_get(e, "target_uuid")) == NULL)
            continue; /* not queued, or it stays (moved since by someone else, gone) */
        json_t *job = engine_job_json(d->engine, job_uuid);
        if (mig_evac_entry_outcome(uuid, e, job) != MIG_EVAC_WAITING) {
            json_decref(job); /* not a rollback, or started (or ended) already */
            continue;
        }
        waiting = true;
        char why[200] = "";
        if (paused)
            snprintf(why, sizeof(why), "waits: the homecoming is paused (migctl resume %s)", uuid);
        else if (n >= lanes)
            snprintf(why, sizeof(why), "waits for the homecoming's --max-parallel %d: %d running",
                     lanes, n);
        else
            waits_for(d, &win, job, why, sizeof(why));
        json_decref(job);
        if (why[0] == '\0') {
            char msg[400];
            int rc = engine_return_home(d->engine, job_uuid, uuid, lanes, msg, sizeof(msg));
            mig_log(rc == 0 ? MIG_LOG_INFO : MIG_LOG_WARN, job_uuid, NULL, "%s", msg);
            if (rc == 0)
                n++;
            if (json_object_get(e, "waits") != NULL) {
                json_object_del(e, "waits");
                changed = true;
            }
            continue;
        }
        const char *before = json_string_value(json_object_get(e, "waits"));
        if (before == NULL || strcmp(before, why) != 0) {
            mig_log(MIG_LOG_INFO, job_uuid, NULL, "homecoming %s: its rollback %s", uuid, why);
            json_object_set_new(e, "waits", json_string(why));
            changed = true;
        }
    }
    if (changed)
        save_waits(d, hc);
    return waiting;
}

void homecoming_rollbacks_due(struct migd *d)
{
    if (!d->rollbacks_waiting)
        return; /* none on record: no scan of the evacuations every tick */
    json_t *all = mig_store_evac_list(d->store);
    bool waiting = false;
    size_t i;
    json_t *ev;
    json_array_foreach(all, i, ev)
    {
        const char *st = json_string_value(json_object_get(ev, "state"));
        if (st != NULL && strcmp(st, "running") == 0 && evac_is_homecoming(ev) && pace(d, ev))
            waiting = true;
    }
    json_decref(all);
    d->rollbacks_waiting = all == NULL || waiting;
}

static void on_tick(void *arg)
{
    homecoming_rollbacks_due(arg);
}

void homecoming_rollbacks_follow(struct migd *d)
{
    d->rollbacks_waiting = true; /* the first tick looks at the homecomings on record */
    if (engine_subscribe_tick(d->engine, on_tick, d) != 0)
        mig_log(MIG_LOG_ERROR, NULL, NULL, "homecomings cannot start their rollbacks");
}
