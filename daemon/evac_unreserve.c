/*
 * evac_unreserve.c: migctl evacuate --unreserve EVAC (POST
 * /evacuations/ID/unreserve).  An evacuation reserves its CN in CNAPI so
 * that nothing is placed there while it is emptied, and a drained CN stays
 * reserved after the evacuation ends: it is down for its maintenance, and
 * only the operator knows when it is back.  This gives it back: once the
 * evacuation (or every CN of a rolling drain) has ended, each CN is marked
 * not reserved in CNAPI, then on the evacuation's record.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon.h"
#include "err.h"
#include "log.h"
#include "store.h"
#include "util.h"

struct unreserve_run {
    struct migd *d;
    char uuid[MIG_UUID_LEN + 1]; /* as asked: an evacuation or a drain */
    json_t *evacs;               /* the evacuations it names (owned) */
    struct cn_reserve *res;
    evac_cb cb;
    void *arg;
    struct unreserve_run *next;
};

static void run_free(struct unreserve_run *u)
{
    MIG_LIST_UNLINK(&u->d->unreserve_runs, u, next);
    cn_reserve_free(u->res);
    json_decref(u->evacs);
    free(u);
}

/* The answer: the drain, or the evacuation, as GET /evacuations/ID shows it. */
static json_t *view(struct unreserve_run *u)
{
    json_t *first = json_array_get(u->evacs, 0);
    const char *self = json_string_value(json_object_get(first, "uuid"));
    if (self != NULL && strcmp(self, u->uuid) == 0)
        return evac_json(u->d, first);
    return rolling_json(u->d, u->uuid);
}

static void on_unreserved(void *arg, int err, const char *code, const char *message)
{
    struct unreserve_run *u = arg;
    if (err != 0) {
        u->cb(u->arg, MIG_EREFUSED, code, message, NULL);
        run_free(u);
        return;
    }
    if (evac_mark_unreserved(u->d, u->evacs) != 0) {
        u->cb(u->arg, MIG_EDB, "DatabaseError",
              "the CNs are not reserved in CNAPI any more, but the evacuation's record could "
              "not say so",
              NULL);
        run_free(u);
        return;
    }
    json_t *out = view(u);
    u->cb(u->arg, out != NULL ? 0 : MIG_EDB, "DatabaseError", "cannot read the evacuation", out);
    json_decref(out);
    run_free(u);
}

int evac_mark_unreserved(struct migd *d, json_t *evacs)
{
    size_t i;
    json_t *ev;
    json_array_foreach(evacs, i, ev)
    {
        json_object_set_new(ev, "reserved", json_false());
        if (mig_store_evac_save(d->store, ev) != 0)
            return MIG_EDB;
        mig_log(MIG_LOG_INFO, NULL, NULL, "evacuation %s: %s is not reserved any more",
                json_string_value(json_object_get(ev, "uuid")),
                json_string_value(json_object_get(ev, "hostname")));
    }
    return 0;
}

int evac_cns_free(struct migd *d, json_t *evacs, char *err, size_t errsz)
{
    json_t *draining = mig_store_evac_draining(d->store);
    size_t i, k;
    json_t *ev, *cn;
    int rc = 0;
    json_array_foreach(evacs, i, ev)
    {
        const char *host = json_string_value(json_object_get(ev, "hostname"));
        if (evac_unfinished(ev)) {
            /* A CN still being emptied keeps its reservation: nothing may land on it. */
            mig_errf(err, errsz,
                     "%s is still being evacuated (evacuation %s, %s): its CN stays reserved "
                     "until the evacuation ends",
                     host, json_string_value(json_object_get(ev, "uuid")),
                     json_string_value(json_object_get(ev, "state")));
            rc = -EBUSY;
            break;
        }
        json_array_foreach(draining, k, cn)
        {
            if (strcasecmp(json_string_value(cn),
                           json_string_value(json_object_get(ev, "server_uuid"))) == 0) {
                mig_errf(err, errsz,
                         "%s is being evacuated again, by another evacuation or drain that has "
                         "not ended: it stays reserved, and nothing comes back to it",
                         host);
                rc = -EBUSY;
            }
        }
        if (rc != 0)
            break;
    }
    json_decref(draining);
    return rc;
}

int evac_unreserve(struct migd *d, const char *uuid, evac_cb cb, void *arg, char *err,
                   size_t errsz)
{
    json_t *evacs = evac_named(d, uuid, err, errsz);
    if (evacs == NULL)
        return -ENOENT;
    if (evac_cns_free(d, evacs, err, errsz) != 0) {
        json_decref(evacs);
        return -EBUSY;
    }
    json_t *uuids = json_array();
    size_t i;
    json_t *ev;
    json_array_foreach(evacs, i, ev) json_array_append(uuids, json_object_get(ev, "server_uuid"));
    struct unreserve_run *u = mig_calloc(1, sizeof(*u));
    u->d = d;
    snprintf(u->uuid, sizeof(u->uuid), "%s", uuid);
    u->evacs = evacs;
    u->cb = cb;
    u->arg = arg;
    u->next = d->unreserve_runs;
    d->unreserve_runs = u;
    u->res = cn_reserve_start(d, uuids, false, on_unreserved, u);
    json_decref(uuids);
    if (u->res == NULL) {
        run_free(u);
        mig_errf(err, errsz, "cannot start the CNAPI updates");
        return -ENOMEM;
    }
    return 0;
}

void evac_unreserve_cancel_all(struct migd *d)
{
    while (d->unreserve_runs != NULL) {
        struct unreserve_run *u = d->unreserve_runs;
        u->cb(u->arg, MIG_ECANCELED, "ShuttingDown", "migd is shutting down", NULL);
        run_free(u);
    }
}
