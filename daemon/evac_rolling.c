/*
 * evac_rolling.c: a rolling drain (migctl evacuate CN CN ... --max-cns N).
 * The CNs named together are one drain: each is planned with all the others
 * avoided as targets (no VM moves onto a CN that is drained later), every
 * one is reserved in CNAPI from the first minute, and each is recorded as an
 * evacuation of its own (evacuate.c) carrying `rolling: {uuid, index, cns,
 * max_cns}`, in state "queued" (it counts as being drained: no plan puts a
 * VM there).  At most max_cns of them run at once; when one ends, the next
 * queued one starts, planned anew then, once the CNs before it have taken
 * their share of the targets.  The drain's state is nothing but its CNs'
 * evacuations, so a restart resumes it from the store, and a run of the same
 * command from cron queues nothing new and answers the progress.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "evac.h"
#include "executor.h"
#include "json_sort.h"
#include "log.h"
#include "triton.h"
#include "util.h"

#define ROLLING_MAX_CNS 64

/* A drain being planned and recorded (POST /evacuations with servers[]). */
struct rolling_run {
    struct migd *d;
    json_t *body;  /* the request (owned) */
    json_t *names; /* its CNs, uuids or hostnames, borrowed from body */
    json_t *plans; /* each CN's plan (an evacuation in state "plan"), in order */
    json_t *ended; /* the last drain of these CNs, ended: a re-run with nothing new reports it */
    int max_cns;
    bool dry_run, no_reserve;
    struct cn_reserve *res; /* the reservation of every CN, in flight, or NULL */
    evac_cb cb;
    void *arg;
    struct rolling_run *next_run; /* in d->rolling_runs */
};

static void run_free(struct rolling_run *rr)
{
    MIG_LIST_UNLINK(&rr->d->rolling_runs, rr, next_run);
    cn_reserve_free(rr->res);
    json_decref(rr->body);
    json_decref(rr->plans);
    json_decref(rr->ended);
    free(rr);
}

static void run_answer(struct rolling_run *rr, int err, const char *code, const char *msg,
                       json_t *out)
{
    evac_answer(rr->cb, rr->arg, err, code, msg, out);
    run_free(rr);
}

/* ---- the drain as the store holds it ---- */

static const char *set_of(json_t *evac)
{
    return json_string_value(json_object_get(json_object_get(evac, "rolling"), "uuid"));
}

static const char *state_of(json_t *evac)
{
    const char *s = json_string_value(json_object_get(evac, "state"));
    return s != NULL ? s : "";
}

/* A drain's evacuation x comes after y: by rolling.index. */
static bool later_in_drain(json_t *x, json_t *y)
{
    return json_integer_value(json_object_get(json_object_get(x, "rolling"), "index")) >
           json_integer_value(json_object_get(json_object_get(y, "rolling"), "index"));
}

/* The CNs' evacuations of drain uuid, in the drain's order (new array; empty when none). */
static json_t *members(struct migd *d, const char *uuid)
{
    json_t *all = mig_store_evac_list(d->store);
    json_t *out = json_array();
    size_t i;
    json_t *ev;
    json_array_foreach(all, i, ev)
    {
        if (set_of(ev) != NULL && strcmp(set_of(ev), uuid) == 0)
            json_array_append(out, ev);
    }
    json_decref(all);
    mig_json_sort(out, later_in_drain);
    return out;
}

/* True when name (uuid or hostname) is evac's CN. */
static bool names_cn(const char *name, json_t *evac)
{
    const char *uuid = json_string_value(json_object_get(evac, "server_uuid"));
    const char *host = json_string_value(json_object_get(evac, "hostname"));
    return (uuid != NULL && strcasecmp(name, uuid) == 0) || (host != NULL && strcmp(name, host) == 0);
}

/* True when names and the drain's evacuations are the same CNs. */
static bool same_cns(json_t *names, json_t *evacs)
{
    if (json_array_size(names) != json_array_size(evacs))
        return false;
    size_t i, k;
    json_t *n, *ev;
    json_array_foreach(names, i, n)
    {
        bool found = false;
        json_array_foreach(evacs, k, ev) found = found || names_cn(json_string_value(n), ev);
        if (!found)
            return false;
    }
    return true;
}

/* ---- the view: every CN's evacuation, when each starts, and the whole ---- */

static json_t *view(struct migd *d, const char *uuid, json_t *evacs, int max_cns, bool dry_run)
{
    size_t n = json_array_size(evacs);
    int64_t secs[ROLLING_MAX_CNS], starts[ROLLING_MAX_CNS];
    json_t *cns = json_array(), *attention = json_array();
    int64_t bytes = 0, sent = 0;
    int counts[4] = {0}; /* queued, running, done, failed CNs */
    json_int_t jobs_done = 0, jobs_moving = 0, jobs_failed = 0, stays = 0;
    bool reserved = false;
    for (size_t i = 0; i < n && i < ROLLING_MAX_CNS; i++) {
        json_t *ev = dry_run ? json_incref(json_array_get(evacs, i))
                             : evac_json(d, json_array_get(evacs, i));
        secs[i] = json_integer_value(json_object_get(ev, "estimate_s"));
        bytes += json_integer_value(json_object_get(ev, "bytes"));
        reserved = reserved || json_is_true(json_object_get(ev, "reserved"));
        const char *st = state_of(ev);
        counts[strcmp(st, "queued") == 0 ? 0 : strcmp(st, "failed") == 0 ? 3
                                           : strcmp(st, "done") == 0    ? 2
                                                                        : 1]++;
        json_t *p = json_object_get(ev, "progress");
        sent += json_integer_value(json_object_get(p, "bytes_sent"));
        jobs_done += json_integer_value(json_object_get(p, "done"));
        jobs_moving += json_integer_value(json_object_get(p, "moving"));
        jobs_failed += json_integer_value(json_object_get(p, "failed"));
        stays += json_integer_value(json_object_get(p, "stays"));
        size_t k;
        json_t *line;
        json_array_foreach(json_object_get(ev, "attention"), k, line)
            json_array_append_new(attention,
                                  json_sprintf("%s: %s", json_string_value(json_object_get(ev, "hostname")),
                                               json_string_value(line)));
        json_array_append_new(cns, ev);
    }
    int64_t whole = mig_estimate_starts(secs, json_array_size(cns), max_cns, starts);
    size_t i;
    json_t *ev;
    json_array_foreach(cns, i, ev) json_object_set_new(ev, "starts_after_s", json_integer(starts[i]));
    bool paused = false;
    json_array_foreach(cns, i, ev) paused = paused || json_is_true(json_object_get(ev, "paused"));
    const char *state = dry_run                 ? "plan"
                        : counts[0] + counts[1] > 0 ? (paused ? "paused" : "running")
                        : counts[3] > 0     ? "failed"
                                            : "done";
    return json_pack("{s:s?, s:b, s:s, s:i, s:o, s:I, s:I, s:b, s:b, s:o, s:{s:i, s:i, s:i, s:i, "
                     "s:I, s:I, s:I, s:I, s:I}}",
                     "uuid", uuid, "rolling", 1, "state", state, "max_cns", max_cns, "cns", cns,
                     "bytes", (json_int_t)bytes, "estimate_s", (json_int_t)whole, "reserved",
                     reserved, "dry_run", dry_run, "attention", attention, "progress", "cns_queued",
                     counts[0], "cns_draining", counts[1], "cns_done", counts[2], "cns_failed",
                     counts[3], "done", jobs_done, "moving", jobs_moving, "failed", jobs_failed,
                     "stays", stays, "bytes_sent", (json_int_t)sent);
}

json_t *rolling_json(struct migd *d, const char *uuid)
{
    json_t *evacs = members(d, uuid);
    json_t *out = NULL;
    if (json_array_size(evacs) > 0) {
        int max_cns = (int)json_integer_value(
            json_object_get(json_object_get(json_array_get(evacs, 0), "rolling"), "max_cns"));
        out = view(d, uuid, evacs, max_cns, false);
    }
    json_decref(evacs);
    return out;
}

/* ---- turns: at most max_cns CNs drained at once ---- */

struct activation {
    struct migd *d;
    char set[MIG_UUID_LEN + 1];
    char hostname[256];
};

static void advance(struct migd *d, const char *set);

static void on_activated(void *arg, int err, const char *code, const char *message, json_t *evac)
{
    struct activation *act = arg;
    (void)code;
    if (err != 0 && err != MIG_ECANCELED)
        mig_log(MIG_LOG_ERROR, NULL, NULL,
                "rolling evacuation %s: %s could not start: %s (a run of migctl evacuate with "
                "the same CNs, or a restart, tries again)",
                act->set, act->hostname, message != NULL ? message : mig_strerror(err));
    else if (err == 0 && !evac_unfinished(evac))
        advance(act->d, act->set); /* nothing to move there: its turn ended at once */
    free(act);
}

/* Starts the turn of evac (marked running with "replan"): evacuate.c plans and queues it. */
static void kick(struct migd *d, const char *set, json_t *evac)
{
    const char *server = json_string_value(json_object_get(evac, "server_uuid"));
    if (server == NULL || evac_planning(d, server))
        return; /* its plan is being made */
    struct activation *act = mig_calloc(1, sizeof(*act));
    act->d = d;
    snprintf(act->set, sizeof(act->set), "%s", set);
    snprintf(act->hostname, sizeof(act->hostname), "%s",
             json_string_value(json_object_get(evac, "hostname")));
    json_t *body = json_pack("{s:s, s:b}", "server", server, "no_reserve", 1);
    char err[256];
    if (evac_start(d, body, on_activated, act, err, sizeof(err)) != 0) {
        mig_log(MIG_LOG_ERROR, NULL, NULL, "rolling evacuation %s: %s could not start: %s", set,
                act->hostname, err);
        free(act);
    }
    json_decref(body);
}

static void advance(struct migd *d, const char *set)
{
    json_t *evacs = members(d, set);
    int running = 0;
    int max_cns = 1;
    size_t i;
    json_t *ev;
    json_array_foreach(evacs, i, ev)
    {
        max_cns = (int)json_integer_value(json_object_get(json_object_get(ev, "rolling"), "max_cns"));
        if (strcmp(state_of(ev), "running") != 0)
            continue;
        running++;
        if (json_is_true(json_object_get(ev, "replan")))
            kick(d, set, ev); /* its turn began, its plan was not made (a restart, CNAPI down) */
    }
    json_array_foreach(evacs, i, ev)
    {
        if (running >= max_cns)
            break;
        if (strcmp(state_of(ev), "queued") != 0 || json_is_true(json_object_get(ev, "paused")))
            continue; /* running or ended; or the drain is paused: no turn starts */
        /* The crash campaign's points between two CNs: the turn not yet on record, and on it. */
        exec_crash_point("rolling.turn", "before-start");
        json_object_set_new(ev, "state", json_string("running"));
        json_object_set_new(ev, "replan", json_true());
        if (mig_store_evac_save(d->store, ev) != 0)
            break;
        exec_crash_point("rolling.turn", "after-start");
        engine_count_evacuation(d->engine, "queued", "running");
        mig_log(MIG_LOG_INFO, NULL, NULL, "rolling evacuation %s: the turn of %s (%lld of %zu)",
                set, json_string_value(json_object_get(ev, "hostname")),
                (long long)json_integer_value(json_object_get(json_object_get(ev, "rolling"), "index")) + 1,
                json_array_size(evacs));
        running++;
        kick(d, set, ev);
    }
    json_decref(evacs);
}

/* ---- a new drain: plan every CN, reserve them all, record, start the first turns ---- */

/* The drain's records: one evacuation per CN, all queued, then the first turns. */
static void record(struct rolling_run *rr, bool reserved)
{
    char set[MIG_UUID_LEN + 1];
    mig_uuid_new(set);
    int64_t now = mig_now_ms();
    size_t i;
    json_t *p;
    json_array_foreach(rr->plans, i, p)
    {
        char uuid[MIG_UUID_LEN + 1];
        mig_uuid_new(uuid);
        json_t *ev = json_deep_copy(p);
        json_object_del(ev, "progress");
        json_object_del(ev, "attention");
        json_object_set_new(ev, "uuid", json_string(uuid));
        json_object_set_new(ev, "state", json_string("queued"));
        json_object_set_new(ev, "dry_run", json_false());
        json_object_set_new(ev, "created_ms", json_integer(now));
        json_object_set_new(ev, "reserved", json_boolean(reserved));
        json_object_set_new(ev, "rolling",
                            json_pack("{s:s, s:I, s:O, s:i}", "uuid", set, "index", (json_int_t)i,
                                      "cns", rr->names, "max_cns", rr->max_cns));
        int rc = mig_store_evac_save(rr->d->store, ev);
        json_decref(ev);
        if (rc != 0) {
            /* A drain half on record drains what it recorded; say so rather than guess. */
            mig_log(MIG_LOG_ERROR, NULL, NULL,
                    "rolling evacuation %s: cannot record the evacuation of CN %zu of %zu", set,
                    i + 1, json_array_size(rr->plans));
            break;
        }
        engine_count_evacuation(rr->d->engine, NULL, "queued");
    }
    mig_log(MIG_LOG_INFO, NULL, NULL, "rolling evacuation %s of %zu CNs, %d at once", set,
            json_array_size(rr->plans), rr->max_cns);
    advance(rr->d, set);
    json_t *out = rolling_json(rr->d, set);
    if (out == NULL)
        run_answer(rr, MIG_EDB, "DatabaseError", "cannot record the rolling evacuation", NULL);
    else
        run_answer(rr, 0, NULL, NULL, out);
}

static void on_reserved(void *arg, int err, const char *code, const char *message)
{
    struct rolling_run *rr = arg;
    if (err != 0) {
        run_answer(rr, MIG_EREFUSED, code, message, NULL);
        return;
    }
    record(rr, true);
}

/* VMs of the CNs' plans with a target and no unfinished job: what a new drain would queue. */
static size_t queueable(struct rolling_run *rr)
{
    size_t n = 0, i;
    json_t *p;
    json_array_foreach(rr->plans, i, p) n += evac_queueable(rr->d, json_object_get(p, "plan"));
    return n;
}

static void planned(struct rolling_run *rr)
{
    if (rr->dry_run) {
        run_answer(rr, 0, NULL, NULL, view(rr->d, NULL, rr->plans, rr->max_cns, true));
        return;
    }
    if (rr->ended != NULL && queueable(rr) == 0) {
        /* Run again after the drain ended, with nothing new to move: its report. */
        json_t *out = rolling_json(rr->d, set_of(json_array_get(rr->ended, 0)));
        run_answer(rr, out != NULL ? 0 : MIG_EDB, "DatabaseError", "cannot read the drain", out);
        return;
    }
    if (rr->no_reserve) {
        record(rr, false);
        return;
    }
    json_t *uuids = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(rr->plans, i, p)
        json_array_append(uuids, json_object_get(p, "server_uuid"));
    rr->res = cn_reserve_start(rr->d, uuids, true, on_reserved, rr);
    json_decref(uuids);
    if (rr->res == NULL)
        run_answer(rr, -ENOMEM, "InternalError", mig_strerror(-ENOMEM), NULL);
}

static int plan_next(struct rolling_run *rr, char *err, size_t errsz);

static void on_member_planned(void *arg, int err, const char *code, const char *message,
                              json_t *evac)
{
    struct rolling_run *rr = arg;
    if (err != 0) {
        char line[400];
        snprintf(line, sizeof(line), "%s (CN %zu of %zu; nothing was reserved or queued)",
                 message != NULL ? message : mig_strerror(err), json_array_size(rr->plans) + 1,
                 json_array_size(rr->names));
        run_answer(rr, err, code, line, NULL);
        return;
    }
    json_array_append_new(rr->plans, json_deep_copy(evac));
    if (json_array_size(rr->plans) == json_array_size(rr->names)) {
        planned(rr);
        return;
    }
    char why[256];
    int rc = plan_next(rr, why, sizeof(why));
    if (rc != 0)
        run_answer(rr, rc, "InvalidArgument", why, NULL);
}

/* Plans the next CN as a dry run of its evacuation, with every CN of the drain avoided. */
static int plan_next(struct rolling_run *rr, char *err, size_t errsz)
{
    json_t *body = json_deep_copy(rr->body);
    json_object_del(body, "servers");
    json_object_del(body, "max_cns");
    json_object_set(body, "server", json_array_get(rr->names, json_array_size(rr->plans)));
    json_object_set_new(body, "dry_run", json_true());
    json_object_set(body, "avoid", rr->names);
    int rc = evac_start(rr->d, body, on_member_planned, rr, err, errsz);
    json_decref(body);
    return rc;
}

/* The request's CNs and max_cns: 0, or -EINVAL with a line in err. */
static int read_request(json_t *body, int *max_cns, char *err, size_t errsz)
{
    json_t *servers = json_object_get(body, "servers");
    json_t *m = json_object_get(body, "max_cns");
    size_t n = json_array_size(servers);
    if (!json_is_array(servers) || n < 1 || n > ROLLING_MAX_CNS) {
        mig_errf(err, errsz, "servers must be an array of 1 to %d CN uuids or hostnames",
                 ROLLING_MAX_CNS);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(servers, i));
        if (s == NULL || s[0] == '\0' || strlen(s) >= 256) {
            mig_errf(err, errsz, "servers must hold CN uuids or hostnames");
            return -EINVAL;
        }
        for (size_t k = 0; k < i; k++)
            if (strcasecmp(s, json_string_value(json_array_get(servers, k))) == 0) {
                mig_errf(err, errsz, "%s is named twice in servers", s);
                return -EINVAL;
            }
    }
    if (json_object_get(body, "server") != NULL) {
        mig_errf(err, errsz, "give either server (one CN) or servers (a rolling drain), not both");
        return -EINVAL;
    }
    if (m != NULL && !json_is_null(m) &&
        (!json_is_integer(m) || json_integer_value(m) < 1 ||
         json_integer_value(m) > ROLLING_MAX_CNS)) {
        mig_errf(err, errsz, "max_cns must be 1 to %d CNs drained at once", ROLLING_MAX_CNS);
        return -EINVAL;
    }
    *max_cns = json_is_integer(m) ? (int)json_integer_value(m) : 1;
    return 0;
}

int rolling_start(struct migd *d, json_t *body, evac_cb cb, void *arg, char *err, size_t errsz)
{
    int max_cns;
    int rc = read_request(body, &max_cns, err, errsz);
    if (rc != 0)
        return rc;
    json_t *names = json_object_get(body, "servers");
    bool dry_run = json_is_true(json_object_get(body, "dry_run"));
    /*
     * The drains on record: one of these very CNs unfinished is a re-run
     * (its progress; a CN whose turn stalled is tried again); a CN in
     * another unfinished evacuation is refused.
     */
    json_t *all = mig_store_evac_list(d->store);
    json_t *ended = NULL;
    size_t i, k;
    json_t *ev, *n;
    json_array_foreach(all, i, ev)
    {
        if (!evac_unfinished(ev))
            continue;
        json_array_foreach(names, k, n)
        {
            if (!names_cn(json_string_value(n), ev))
                continue;
            json_t *evacs = set_of(ev) != NULL ? members(d, set_of(ev)) : NULL;
            bool same = evacs != NULL && same_cns(names, evacs);
            json_decref(evacs);
            if (same && !dry_run) {
                char set[MIG_UUID_LEN + 1];
                snprintf(set, sizeof(set), "%s", set_of(ev));
                json_decref(all);
                advance(d, set);
                json_t *out = rolling_json(d, set);
                cb(arg, out != NULL ? 0 : MIG_EDB, "DatabaseError", "cannot read the drain", out);
                json_decref(out);
                return 0;
            }
            if (!same) {
                mig_errf(err, errsz,
                         "%s is being evacuated already (evacuation %s); wait for it to end, or "
                         "name the same CNs to see its progress",
                         json_string_value(n), json_string_value(json_object_get(ev, "uuid")));
                json_decref(all);
                return -EEXIST;
            }
        }
    }
    /* The latest ended drain of these CNs (a re-run after the end reports it if nothing is new). */
    json_array_foreach(all, i, ev)
    {
        if (set_of(ev) == NULL || evac_unfinished(ev))
            continue;
        json_t *evacs = members(d, set_of(ev));
        if (same_cns(names, evacs)) {
            json_decref(ended);
            ended = evacs;
        } else {
            json_decref(evacs);
        }
    }
    json_decref(all);
    struct rolling_run *rr = mig_calloc(1, sizeof(*rr));
    rr->d = d;
    rr->body = json_deep_copy(body);
    rr->names = json_object_get(rr->body, "servers");
    rr->plans = json_array();
    rr->ended = ended;
    rr->max_cns = max_cns;
    rr->dry_run = dry_run;
    rr->no_reserve = json_is_true(json_object_get(body, "no_reserve"));
    rr->cb = cb;
    rr->arg = arg;
    rr->next_run = d->rolling_runs;
    d->rolling_runs = rr;
    rc = plan_next(rr, err, errsz);
    if (rc != 0)
        run_free(rr);
    return rc;
}

void rolling_resume_turns(struct migd *d, const char *uuid)
{
    advance(d, uuid);
}

/* ---- restarts and shutdown ---- */

static void on_job_ended(void *arg, const struct mig_job *job)
{
    struct migd *d = arg;
    if (job->evacuation[0] == '\0')
        return;
    json_t *ev = mig_store_evac_load(d->store, job->evacuation);
    if (set_of(ev) != NULL) {
        char set[MIG_UUID_LEN + 1];
        snprintf(set, sizeof(set), "%s", set_of(ev));
        advance(d, set); /* evacuate.c, subscribed first, has ended the CN's turn if it is over */
    }
    json_decref(ev);
}

void rolling_resume(struct migd *d)
{
    if (engine_subscribe_ended(d->engine, on_job_ended, d) != 0)
        mig_log(MIG_LOG_ERROR, NULL, NULL, "rolling evacuations cannot follow their jobs");
    json_t *all = mig_store_evac_list(d->store);
    json_t *seen = json_object();
    size_t i;
    json_t *ev;
    json_array_foreach(all, i, ev)
    {
        const char *set = set_of(ev);
        if (set == NULL || !evac_unfinished(ev) || json_object_get(seen, set) != NULL)
            continue;
        json_object_set_new(seen, set, json_true());
        char copy[MIG_UUID_LEN + 1];
        snprintf(copy, sizeof(copy), "%s", set);
        advance(d, copy);
    }
    json_decref(seen);
    json_decref(all);
}

void rolling_cancel_all(struct migd *d)
{
    while (d->rolling_runs != NULL)
        run_answer(d->rolling_runs, MIG_ECANCELED, "ShuttingDown", "migd is shutting down", NULL);
}
