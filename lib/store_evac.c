/*
 * store_evac.c: evacuations and transfer rates in the store (store.h).  An
 * evacuation is kept as the JSON record evacuate.c writes (its columns are
 * what SQL looks it up by); a rate is the bytes and time of every send
 * between two CNs, summed, and the jobs' other time, for estimates.
 */
#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "store.h"
#include "store_int.h"
#include "util.h"

int mig_store_evac_save(struct mig_store *st, json_t *evac)
{
    sqlite3_stmt *s = store_stmt_get(st, ST_EVAC_SAVE);
    if (s == NULL)
        return MIG_EDB;
    char *text = json_dumps(evac, JSON_COMPACT);
    if (text == NULL)
        return MIG_EPARSE;
    int64_t now = mig_now_ms();
    json_t *created = json_object_get(evac, "created_ms");
    store_bind_text(s, 1, json_string_value(json_object_get(evac, "uuid")));
    store_bind_text(s, 2, json_string_value(json_object_get(evac, "server_uuid")));
    store_bind_text(s, 3, json_string_value(json_object_get(evac, "state")));
    sqlite3_bind_int64(s, 4, json_is_integer(created) ? json_integer_value(created) : now);
    sqlite3_bind_int64(s, 5, now);
    sqlite3_bind_text(s, 6, text, -1, free);
    return store_step_done(st, s, "save evacuation");
}

/* Runs a statement whose rows are JSON records; appends each to out. */
/* One evacuation's record; NULL (and a log line) when it is unreadable, so the rest still load. */
static json_t *evac_row(struct mig_store *st, sqlite3_stmt *s)
{
    const char *text = (const char *)sqlite3_column_text(s, 0);
    json_t *j = text != NULL ? json_loads(text, 0, NULL) : NULL;
    if (j == NULL)
        log_error("store %s: an evacuation record is unreadable", st->path);
    return j;
}

/* The one evacuation statement id finds for key; NULL for none, several or an error. */
static json_t *evac_one(struct mig_store *st, enum stmt_id id, const char *key)
{
    json_t *a = store_rows_json(st, id, key, evac_row, "read evacuations");
    json_t *one = NULL;
    if (a != NULL && json_array_size(a) == 1)
        one = json_incref(json_array_get(a, 0));
    json_decref(a);
    return one;
}

json_t *mig_store_evac_load(struct mig_store *st, const char *uuid)
{
    return evac_one(st, ST_EVAC_LOAD, uuid);
}

json_t *mig_store_evac_list(struct mig_store *st)
{
    return store_rows_json(st, ST_EVAC_LIST, NULL, evac_row, "read evacuations");
}

static bool evac_unfinished(json_t *ev)
{
    const char *state = json_string_value(json_object_get(ev, "state"));
    return state != NULL && (strcmp(state, "running") == 0 || strcmp(state, "queued") == 0);
}

static const char *evac_drain(json_t *ev)
{
    return json_string_value(json_object_get(json_object_get(ev, "rolling"), "uuid"));
}

json_t *mig_store_evac_draining(struct mig_store *st)
{
    json_t *out = json_array();
    json_t *all = mig_store_evac_list(st);
    json_t *drains = json_object(); /* rolling drains with a CN unfinished */
    size_t i;
    json_t *ev;
    json_array_foreach(all, i, ev)
    {
        if (evac_unfinished(ev) && evac_drain(ev) != NULL)
            json_object_set_new(drains, evac_drain(ev), json_true());
    }
    json_array_foreach(all, i, ev)
    {
        json_t *uuid = json_object_get(ev, "server_uuid");
        /* a drain's CN stays out of every plan until the whole drain ends, drained or not */
        bool in_drain = evac_drain(ev) != NULL && json_object_get(drains, evac_drain(ev)) != NULL;
        /* a homecoming brings VMs to its CN: that CN is not being emptied */
        const char *kind = json_string_value(json_object_get(ev, "kind"));
        bool back = kind != NULL && strcmp(kind, "homecoming") == 0;
        if ((evac_unfinished(ev) || in_drain) && !back && json_is_string(uuid))
            json_array_append(out, uuid);
    }
    json_decref(drains);
    json_decref(all);
    return out;
}

json_t *mig_store_evac_latest(struct mig_store *st, const char *server_uuid)
{
    return evac_one(st, ST_EVAC_OF_SERVER, server_uuid);
}

/* Statement id with the pair of CNs bound as ?1 (source) and ?2 (target); NULL on error. */
static sqlite3_stmt *pair_stmt(struct mig_store *st, enum stmt_id id, const char *source,
                               const char *target)
{
    sqlite3_stmt *s = store_stmt_get(st, id);
    if (s != NULL) {
        store_bind_text(s, 1, source);
        store_bind_text(s, 2, target);
    }
    return s;
}

int mig_store_rate_add(struct mig_store *st, const char *source, const char *target,
                       int64_t bytes, int64_t ms)
{
    if (bytes <= 0 || ms <= 0)
        return 0;
    sqlite3_stmt *s = pair_stmt(st, ST_RATE_ADD, source, target);
    if (s == NULL)
        return MIG_EDB;
    sqlite3_bind_int64(s, 3, bytes);
    sqlite3_bind_int64(s, 4, ms);
    sqlite3_bind_int64(s, 5, mig_now_ms());
    return store_step_done(st, s, "add rate");
}

int mig_store_overhead_add(struct mig_store *st, const char *source, const char *target,
                           int64_t ms)
{
    if (ms < 0)
        return 0;
    sqlite3_stmt *s = pair_stmt(st, ST_OVERHEAD_ADD, source, target);
    if (s == NULL)
        return MIG_EDB;
    sqlite3_bind_int64(s, 3, ms);
    sqlite3_bind_int64(s, 4, mig_now_ms());
    return store_step_done(st, s, "add job overhead");
}

void mig_store_rate(struct mig_store *st, const char *source, const char *target,
                    struct mig_rate *out)
{
    out->bytes_s = -1;
    out->overhead_ms = -1;
    sqlite3_stmt *s = pair_stmt(st, ST_RATE_GET, source, target);
    if (s == NULL)
        return;
    if (sqlite3_step(s) == SQLITE_ROW) {
        int64_t bytes = sqlite3_column_int64(s, 0), ms = sqlite3_column_int64(s, 1);
        int64_t jobs = sqlite3_column_int64(s, 2), other = sqlite3_column_int64(s, 3);
        if (ms > 0)
            out->bytes_s = bytes * 1000 / ms;
        if (jobs > 0)
            out->overhead_ms = other / jobs;
    }
    store_stmt_done(s);
}
