/*
 * evac_pause.c: migctl pause|resume EVAC (POST /evacuations/ID/pause and
 * /resume).  A paused evacuation starts no new job and no new switch: the
 * engine holds its queued jobs and keeps its ready jobs doing a round
 * every incremental.interval_s (engine_hold); a rolling drain's paused CNs
 * do not take their turn.  The pause is on the evacuation's record
 * ("paused": true), so it survives a restart (evac_pause_resume tells the
 * engine again before any job moves).  A drain is paused or resumed whole.
 */
#include <errno.h>
#include <string.h>

#include "daemon.h"
#include "err.h"
#include "log.h"
#include "store.h"
#include "util.h"

json_t *evac_named(struct migd *d, const char *uuid, char *err, size_t errsz)
{
    json_t *out = json_array();
    json_t *all = mig_store_evac_list(d->store);
    size_t i;
    json_t *ev;
    json_array_foreach(all, i, ev)
    {
        const char *self = json_string_value(json_object_get(ev, "uuid"));
        const char *set =
            json_string_value(json_object_get(json_object_get(ev, "rolling"), "uuid"));
        if ((self != NULL && strcmp(self, uuid) == 0) || (set != NULL && strcmp(set, uuid) == 0))
            json_array_append(out, ev);
    }
    json_decref(all);
    if (json_array_size(out) == 0) {
        json_decref(out);
        mig_errf(err, errsz, "no evacuation %s", uuid);
        return NULL;
    }
    return out;
}

int evac_pause(struct migd *d, const char *uuid, bool pause, json_t **out, char *err,
               size_t errsz)
{
    *out = NULL;
    json_t *evacs = evac_named(d, uuid, err, errsz);
    if (evacs == NULL)
        return -ENOENT;
    size_t i, open = 0;
    json_t *ev;
    json_array_foreach(evacs, i, ev) open += evac_unfinished(ev) ? 1 : 0;
    if (open == 0) {
        json_decref(evacs);
        mig_errf(err, errsz, "evacuation %s has ended: nothing to %s", uuid,
                 pause ? "pause" : "resume");
        return -EALREADY;
    }
    json_array_foreach(evacs, i, ev)
    {
        if (!evac_unfinished(ev))
            continue;
        json_object_set_new(ev, "paused", json_boolean(pause));
        if (mig_store_evac_save(d->store, ev) != 0) {
            json_decref(evacs);
            mig_errf(err, errsz, "cannot record the evacuation's pause");
            return MIG_EDB;
        }
    }
    /* On record first: the engine hears it once a restart would too. */
    json_array_foreach(evacs, i, ev)
    {
        if (evac_unfinished(ev))
            engine_hold(d->engine, json_string_value(json_object_get(ev, "uuid")), pause);
    }
    mig_log(MIG_LOG_INFO, NULL, NULL, "evacuation %s %s", uuid, pause ? "paused" : "resumed");
    const char *set =
        json_string_value(json_object_get(json_object_get(json_array_get(evacs, 0), "rolling"), "uuid"));
    bool drain = set != NULL && strcmp(set, uuid) == 0;
    if (drain && !pause)
        rolling_resume_turns(d, uuid); /* the CNs whose turn came while it was paused */
    *out = drain ? rolling_json(d, uuid) : evac_json(d, json_array_get(evacs, 0));
    json_decref(evacs);
    return *out != NULL ? 0 : MIG_EDB;
}

void evac_pause_resume(struct migd *d)
{
    json_t *all = mig_store_evac_list(d->store);
    size_t i;
    json_t *ev;
    json_array_foreach(all, i, ev)
    {
        if (evac_unfinished(ev) && json_is_true(json_object_get(ev, "paused")))
            engine_hold(d->engine, json_string_value(json_object_get(ev, "uuid")), true);
    }
    json_decref(all);
}
