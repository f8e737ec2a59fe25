/*
 * evacuate.c: emptying a CN (POST /evacuations).  The plan comes from
 * lib/evac.c (the CN's VMs placed on targets, with reasons); this file turns
 * it into an evacuation on record and jobs in the queue: it marks the CN
 * reserved in CNAPI (unless asked not to), saves the evacuation, and
 * submits one job per placed VM that has no unfinished job, smallest first,
 * each carrying the evacuation's uuid (the scheduler holds them to
 * --max-parallel).  Run again on a CN that is being evacuated, it queues
 * nothing twice and answers the progress.  When the last job ends, the
 * evacuation records how far its estimate was off.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "evac.h"
#include "request.h"
#include "executor.h"
#include "json_sort.h"
#include "log.h"
#include "triton.h"
#include "util.h"

struct evac_run {
    struct migd *d;
    struct exec *x;
    struct mig_evac ev;
    char *to_store[64];      /* the --to list, owned */
    const char *to[64];
    size_t nto;
    char mode[16];
    int max_parallel;
    int64_t cleanup_after_s; /* --cleanup-after for its jobs, -1: the configuration's */
    struct mig_window window; /* --window for its jobs (set: false: none) */
    bool no_reserve, dry_run, reserving;
    json_t *record;          /* the evacuation as it will be saved */
    size_t next;             /* the plan entry to submit next */
    evac_cb cb;
    void *arg;
    struct evac_run *next_run; /* in d->evac_runs */
    bool submitting;           /* engine_submit holds r as its callback's argument */
};

static bool is_running(json_t *record)
{
    const char *st = json_string_value(json_object_get(record, "state"));
    return st != NULL && strcmp(st, "running") == 0;
}

static void evac_unlink(struct evac_run *r)
{
    MIG_LIST_UNLINK(&r->d->evac_runs, r, next_run);
}

/* A new run in d->evac_runs, answering cb. */
static struct evac_run *run_new(struct migd *d, evac_cb cb, void *arg)
{
    struct evac_run *r = mig_calloc(1, sizeof(*r));
    r->d = d;
    r->cb = cb;
    r->arg = arg;
    r->next_run = d->evac_runs;
    d->evac_runs = r;
    return r;
}

static void evac_free(struct evac_run *r)
{
    evac_unlink(r);
    exec_free(r->x);
    mig_evac_clear(&r->ev);
    for (size_t i = 0; i < r->nto; i++)
        free(r->to_store[i]);
    json_decref(r->record);
    free(r);
}

void evac_answer(evac_cb cb, void *arg, int err, const char *code, const char *msg, json_t *out)
{
    cb(arg, err, code, msg, out);
    json_decref(out);
}

static void answer(struct evac_run *r, int err, const char *code, const char *msg)
{
    evac_answer(r->cb, r->arg, err, code, msg, err == 0 ? evac_json(r->d, r->record) : NULL);
    evac_free(r);
}

/* The reservation: POST CNAPI /servers/UUID {"reserved": true} (an update: safe to repeat). */
static int reserve_step(struct mig_act *a)
{
    const struct mig_evac *e = (const struct mig_evac *)a; /* a is r->ev.a, its first member */
    ACT_BEGIN(a);
    ACT_HTTP(a, "CNAPI", "POST", mig_api_url(a->env->cnapi, "/servers/%s", e->source_uuid),
             json_pack("{s:b}", "reserved", 1));
    if (!mig_res_http_ok(a->res))
        return mig_act_fail_res(a, "CnapiError", "cannot mark %s reserved in CNAPI",
                                e->source_hostname);
    ACT_END(a);
}

static void submit_next(struct evac_run *r);

static void on_submitted(void *arg, int err, const struct mig_refusal *rf,
                         const struct mig_job *job, json_t *plan)
{
    struct evac_run *r = arg;
    (void)plan;
    r->submitting = false;
    if (r->cb == NULL) {
        evac_free(r); /* canceled by a shutdown while the engine checked this job */
        return;
    }
    json_t *entry = json_array_get(json_object_get(r->record, "plan"), r->next);
    if (err == 0 && job != NULL) {
        json_object_set_new(entry, "job_uuid", json_string(job->uuid));
    } else {
        json_object_set_new(entry, "job_uuid", json_null());
        json_object_set_new(entry, "refused",
                            json_pack("{s:s, s:s}", "code",
                                      rf != NULL && rf->rule != NULL ? rf->rule : "Refused",
                                      "message", rf != NULL ? rf->message : mig_strerror(err)));
    }
    r->next++;
    submit_next(r);
}

/*
 * A VM of the plan has an unfinished job already: true when that job moves
 * it off this CN (the evacuation takes it as its own); else the VM came here
 * by a job not yet ended (switched, its source copy kept), which must be
 * cleaned up or rolled back first: the entry says so and nothing is queued.
 */
static bool held_off_this_cn(struct evac_run *r, json_t *entry, const char *holder)
{
    json_t *job = engine_job_json(r->d->engine, holder);
    const char *source = json_string_value(json_object_get(job, "source_server_uuid"));
    /* A return (no CN of its own) takes no job as its own. */
    bool ours = r->ev.source_uuid[0] != '\0' && source != NULL &&
                strcasecmp(source, r->ev.source_uuid) == 0;
    if (!ours) {
        char msg[300];
        snprintf(msg, sizeof(msg),
                 "job %s, which moved it here, is %s: clean it up (migctl cleanup) or roll it "
                 "back first",
                 holder, json_string_value(json_object_get(job, "state")) != NULL
                             ? json_string_value(json_object_get(job, "state"))
                             : "unfinished");
        json_object_set_new(entry, "refused",
                            json_pack("{s:s, s:s}", "code", "VmBusy", "message", msg));
    }
    json_decref(job);
    return ours;
}

/* Queues the next placed VM that has no job yet; then saves and answers. */
static void submit_next(struct evac_run *r)
{
    json_t *plan = json_object_get(r->record, "plan");
    for (; r->next < json_array_size(plan); r->next++) {
        json_t *entry = json_array_get(plan, r->next);
        const char *vm = json_string_value(json_object_get(entry, "vm_uuid"));
        const char *target = json_string_value(json_object_get(entry, "target_uuid"));
        if (target == NULL || json_string_value(json_object_get(entry, "job_uuid")) != NULL)
            continue; /* stays (a reason says why), or queued already */
        char holder[MIG_UUID_LEN + 1];
        if (mig_store_job_holding_vm(r->d->store, vm, holder) == 0) {
            if (!held_off_this_cn(r, entry, holder))
                continue;
            json_object_set_new(entry, "job_uuid", json_string(holder));
            continue; /* it has an unfinished job already: not queued twice */
        }
        struct mig_request req;
        mig_request_init(&req);
        req.vm = mig_strdup(vm);
        req.target = mig_strdup(target);
        if (mig_mode_parse(r->mode, &req.mode) != 0)
            req.mode = MIG_MODE_FULL;
        snprintf(req.evacuation, sizeof(req.evacuation), "%s",
                 json_string_value(json_object_get(r->record, "uuid")));
        req.max_parallel = r->max_parallel;
        req.cleanup_after_s = r->cleanup_after_s;
        req.window = r->window;
        r->submitting = true;
        int rc = engine_submit(r->d->engine, &req, on_submitted, r);
        mig_request_clear(&req);
        if (rc == 0)
            return; /* on_submitted goes on */
        r->submitting = false;
        json_object_set_new(entry, "refused", json_pack("{s:s, s:s}", "code", "InternalError",
                                                        "message", mig_strerror(rc)));
    }
    if (mig_store_evac_save(r->d->store, r->record) != 0) {
        answer(r, MIG_EDB, "DatabaseError", "cannot record the evacuation's jobs");
        return;
    }
    /* Nothing left moving (every VM stays, or its jobs have ended): the evacuation ends now. */
    const char *uuid = json_string_value(json_object_get(r->record, "uuid"));
    evac_job_ended(r->d, uuid);
    json_t *now = mig_store_evac_load(r->d->store, uuid);
    if (now != NULL) {
        json_decref(r->record);
        r->record = now;
    }
    answer(r, 0, NULL, NULL);
}

/* Plan row x goes after y: a VM that stays after one that moves, a bigger after a smaller. */
static bool moves_later(json_t *x, json_t *y)
{
    bool xs = json_string_value(json_object_get(x, "target_uuid")) == NULL;
    bool ys = json_string_value(json_object_get(y, "target_uuid")) == NULL;
    int64_t xb = json_integer_value(json_object_get(x, "bytes"));
    int64_t yb = json_integer_value(json_object_get(y, "bytes"));
    return (xs && !ys) || (xs == ys && xb > yb);
}

/* The plan as the evacuation records it: one entry per VM, smallest first. */
static json_t *plan_record(struct evac_run *r)
{
    json_t *placed = mig_place_json(r->ev.plan);
    json_t *out = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(placed, i, p)
    {
        json_t *vm = NULL;
        size_t k;
        json_t *v;
        json_array_foreach(r->ev.vms, k, v)
        {
            const char *u = json_string_value(json_object_get(v, "uuid"));
            if (u != NULL && strcmp(u, json_string_value(json_object_get(p, "vm_uuid"))) == 0)
                vm = v;
        }
        int64_t bytes = vm != NULL ? mig_evac_bytes(&r->ev, vm) : 0;
        const char *target = json_string_value(json_object_get(p, "target_uuid"));
        struct mig_rate rate = {-1, -1};
        if (target != NULL)
            mig_store_rate(r->d->store, r->ev.source_uuid, target, &rate);
        json_t *e = json_deep_copy(p);
        json_object_set_new(e, "bytes", json_integer(bytes));
        json_object_set_new(e, "estimate_s",
                            target != NULL
                                ? json_integer(mig_estimate_s(bytes, rate.bytes_s, rate.overhead_ms,
                                                              r->d->cfg->transfer.limit_mbps))
                                : json_null());
        /* Where the estimate comes from: measured between these CNs, or the stated defaults. */
        json_object_set_new(e, "rate_bytes_s",
                            rate.bytes_s > 0 ? json_integer(rate.bytes_s) : json_null());
        json_object_set_new(e, "rate_measured", json_boolean(rate.bytes_s > 0));
        json_object_set_new(e, "overhead_measured", json_boolean(rate.overhead_ms >= 0));
        json_array_append_new(out, e);
    }
    json_decref(placed);
    evac_plan_sort(out);
    return out;
}

void evac_plan_sort(json_t *plan)
{
    /* Smallest first, so the CN empties steadily; the VMs that stay at the end. */
    mig_json_sort(plan, moves_later);
}

/*
 * How many of the evacuation's jobs can run at once: every one has the CN as
 * its source, so max_jobs_per_cn bounds them as well as max_parallel and
 * max_active_jobs.
 */
static int lanes(const struct evac_run *r)
{
    int n = r->max_parallel;
    if (r->d->cfg->limits.max_jobs_per_cn < n)
        n = r->d->cfg->limits.max_jobs_per_cn;
    if (r->d->cfg->limits.max_active_jobs < n)
        n = r->d->cfg->limits.max_active_jobs;
    return n < 1 ? 1 : n;
}

/* The window: the jobs on their lanes, and no shorter than the CN's cap allows for the bytes. */
static int64_t window_s(const struct evac_run *r, const int64_t *secs, size_t n, int64_t bytes)
{
    int64_t span = mig_estimate_window_s(secs, n, lanes(r));
    int cap = r->d->cfg->limits.cn_mbps;
    if (cap > 0 && n > 0) {
        int64_t floor_s = bytes / ((int64_t)cap * 1000000 / 8) + MIG_JOB_FIXED_S;
        if (floor_s > span)
            span = floor_s;
    }
    return span;
}

static void on_reserved(struct evac_run *r, int err, bool reserved)
{
    if (err != 0) {
        answer(r, MIG_EREFUSED, r->ev.a.err_code, r->ev.a.err_msg);
        return;
    }
    json_object_set_new(r->record, "reserved", json_boolean(reserved));
    if (mig_store_evac_save(r->d->store, r->record) != 0) {
        answer(r, MIG_EDB, "DatabaseError", "cannot record the evacuation; nothing was queued");
        return;
    }
    engine_count_evacuation(r->d->engine, NULL, "running");
    mig_log(MIG_LOG_INFO, NULL, NULL, "evacuation %s of %s: %zu VMs planned",
            json_string_value(json_object_get(r->record, "uuid")),
            json_string_value(json_object_get(r->record, "hostname")),
            json_array_size(json_object_get(r->record, "plan")));
    r->next = 0;
    submit_next(r);
}

size_t evac_queueable(struct migd *d, json_t *plan)
{
    size_t n = 0, i;
    json_t *e;
    json_array_foreach(plan, i, e)
    {
        char holder[MIG_UUID_LEN + 1];
        if (json_string_value(json_object_get(e, "target_uuid")) != NULL &&
            mig_store_job_holding_vm(d->store, json_string_value(json_object_get(e, "vm_uuid")),
                                     holder) != 0)
            n++;
    }
    return n;
}

bool evac_is_homecoming(json_t *evac)
{
    const char *kind = json_string_value(json_object_get(evac, "kind"));
    return kind != NULL && strcmp(kind, "homecoming") == 0;
}

bool evac_unfinished(json_t *evac)
{
    const char *s = json_string_value(json_object_get(evac, "state"));
    return s != NULL &&
           (strcmp(s, "running") == 0 || strcmp(s, "queued") == 0 || strcmp(s, "paused") == 0);
}

/* A plan's bytes and window (the VMs that move, smallest first, on the evacuation's lanes). */
static void plan_totals(struct evac_run *r, json_t *plan, int64_t *bytes, int64_t *window)
{
    int64_t secs[512];
    size_t n = 0, i;
    json_t *e;
    *bytes = 0;
    json_array_foreach(plan, i, e)
    {
        if (json_is_integer(json_object_get(e, "estimate_s")) && n < 512) {
            secs[n++] = json_integer_value(json_object_get(e, "estimate_s"));
            *bytes += json_integer_value(json_object_get(e, "bytes"));
        }
    }
    *window = window_s(r, secs, n, *bytes);
}

/*
 * A rolling drain's CN whose turn came (evac_rolling.c marked it running
 * with "replan"): the plan made when the drain was asked is replaced by one
 * made now, when the CNs drained before it have taken their share of the
 * targets.
 */
static void replan(struct evac_run *r, json_t *record)
{
    json_t *plan = plan_record(r);
    int64_t bytes, window;
    plan_totals(r, plan, &bytes, &window);
    json_object_set_new(record, "plan", plan);
    json_object_set_new(record, "bytes", json_integer(bytes));
    json_object_set_new(record, "estimate_s", json_integer(window));
    json_object_set_new(record, "parallel", json_integer(lanes(r)));
    json_object_set_new(record, "started_ms", json_integer(mig_now_ms()));
    json_object_del(record, "replan");
}

static void on_planned(struct evac_run *r, int err)
{
    if (err != 0) {
        answer(r, MIG_EREFUSED, r->ev.a.err_code, r->ev.a.err_msg);
        return;
    }
    json_t *latest = mig_store_evac_latest(r->d->store, r->ev.source_uuid);
    if (evac_is_homecoming(latest)) {
        if (evac_unfinished(latest) && !r->dry_run) {
            /* VMs are coming home to it (evac_homecoming.c): emptying it now would fight them. */
            char msg[300];
            snprintf(msg, sizeof(msg),
                     "VMs are coming home to %s (homecoming %s of evacuation %s); wait for it to "
                     "end, or pause it, first",
                     r->ev.source_hostname,
                     json_string_value(json_object_get(latest, "uuid")),
                     json_string_value(json_object_get(latest, "homecoming_of")));
            json_decref(latest);
            answer(r, MIG_EREFUSED, "EvacuationRunning", msg);
            return;
        }
        /* A homecoming is no evacuation of the CN to go on with. */
        json_decref(latest);
        latest = NULL;
    }
    json_t *running = is_running(latest) ? latest : NULL;
    const char *was = json_string_value(json_object_get(latest, "state"));
    if (was != NULL && strcmp(was, "queued") == 0 && !r->dry_run) {
        char msg[300];
        snprintf(msg, sizeof(msg),
                 "%s waits its turn in rolling evacuation %s; run migctl evacuate with the same "
                 "CNs to see it",
                 r->ev.source_hostname,
                 json_string_value(json_object_get(json_object_get(latest, "rolling"), "uuid")));
        json_decref(latest);
        answer(r, MIG_EREFUSED, "EvacuationQueued", msg);
        return;
    }
    if (running != NULL && !r->dry_run) {
        /* Run again: nothing is planned anew; VMs left behind without a job are queued. */
        json_decref(r->record);
        r->record = running;
        json_t *opts = json_object_get(running, "options");
        r->max_parallel = (int)json_integer_value(json_object_get(opts, "max_parallel"));
        json_t *after = json_object_get(opts, "cleanup_after_s");
        r->cleanup_after_s = json_is_integer(after) ? json_integer_value(after) : -1;
        /* Its jobs keep its window even if the zone went missing (they then wait, saying why). */
        const char *window = json_string_value(json_object_get(opts, "window"));
        if (window == NULL || mig_window_parse_saved(window, &r->window) != 0)
            r->window.set = false;
        snprintf(r->mode, sizeof(r->mode), "%s",
                 json_string_value(json_object_get(json_object_get(running, "options"), "mode")));
        if (json_is_true(json_object_get(running, "replan"))) {
            replan(r, running);
            if (mig_store_evac_save(r->d->store, running) != 0) {
                answer(r, MIG_EDB, "DatabaseError", "cannot record the evacuation's new plan");
                return;
            }
        }
        r->next = 0;
        submit_next(r);
        return;
    }
    char uuid[MIG_UUID_LEN + 1];
    mig_uuid_new(uuid);
    json_t *to = json_array();
    for (size_t i = 0; i < r->nto; i++)
        json_array_append_new(to, json_string(r->to[i]));
    json_t *plan = plan_record(r);
    int64_t bytes, window;
    plan_totals(r, plan, &bytes, &window);
    r->record = json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:{s:s, s:o, s:i, s:b}, s:o, s:I, s:I, s:i, s:b, s:b}", "uuid",
        uuid, "server_uuid", r->ev.source_uuid, "hostname",
        r->ev.source_hostname, "state", r->dry_run ? "plan" : "running", "created_ms",
        (json_int_t)mig_now_ms(), "options", "mode", r->mode, "to", to, "max_parallel",
        r->max_parallel, "no_reserve", r->no_reserve, "plan", plan, "bytes", (json_int_t)bytes,
        "estimate_s", (json_int_t)window, "parallel", lanes(r), "reserved",
        false, "dry_run", r->dry_run);
    if (r->record != NULL && r->cleanup_after_s >= 0)
        json_object_set_new(json_object_get(r->record, "options"), "cleanup_after_s",
                            json_integer(r->cleanup_after_s));
    if (r->record != NULL && r->window.set) {
        char spec[MIG_WINDOW_SPEC_LEN];
        mig_window_format(&r->window, spec, sizeof(spec));
        json_object_set_new(json_object_get(r->record, "options"), "window", json_string(spec));
    }
    if (r->dry_run) {
        json_decref(latest);
        answer(r, 0, NULL, NULL);
        return;
    }
    if (latest != NULL && evac_queueable(r->d, json_object_get(r->record, "plan")) == 0) {
        /*
         * Run again after the evacuation ended, with nothing new to move (the
         * VMs left stay for the reasons it gave): its report, not a new one.
         */
        json_decref(r->record);
        r->record = latest;
        answer(r, 0, NULL, NULL);
        return;
    }
    json_decref(latest);
    if (r->no_reserve) {
        on_reserved(r, 0, false);
        return;
    }
    r->reserving = true;
    mig_act_clear(&r->ev.a);
    mig_act_init(&r->ev.a, NULL, exec_env(r->x), -1, -1);
    exec_call(r->x, reserve_step, &r->ev.a);
}

static void on_exec_changed(void *owner)
{
    (void)owner;
}

static void on_exec_finished(void *owner, int err)
{
    struct evac_run *r = owner;
    if (r->reserving) {
        r->reserving = false;
        on_reserved(r, err, true);
    } else {
        on_planned(r, err);
    }
}

static const struct exec_hooks hooks = {on_exec_changed, on_exec_finished};

int evac_options_check(json_t *body, struct mig_window *win, char *err, size_t errsz)
{
    const char *mode = json_string_value(json_object_get(body, "mode"));
    enum mig_mode m;
    if (mode != NULL && mig_mode_parse(mode, &m) != 0) {
        mig_errf(err, errsz, "mode \"%.32s\" is not full, incremental or auto", mode);
        return -EINVAL;
    }
    json_t *after = json_object_get(body, "cleanup_after_s");
    if (after != NULL && !json_is_null(after) &&
        (!json_is_integer(after) || json_integer_value(after) < 0 ||
         json_integer_value(after) > 366LL * 86400)) {
        mig_errf(err, errsz, "cleanup_after_s must be 0 (only by hand) to 31622400 s (366 days)");
        return -EINVAL;
    }
    json_t *window = json_object_get(body, "window");
    win->set = false;
    if (window != NULL && !json_is_null(window)) {
        char why[160];
        if (!json_is_string(window)) {
            mig_errf(err, errsz, "window must be a string HH:MM-HH:MM[,TZ]");
            return -EINVAL;
        }
        if (mig_window_parse(json_string_value(window), win, why, sizeof(why)) != 0) {
            mig_errf(err, errsz, "window \"%.64s\": %s", json_string_value(window), why);
            return -EINVAL;
        }
    }
    json_t *parallel = json_object_get(body, "max_parallel");
    if (parallel != NULL && !json_is_null(parallel) &&
        (!json_is_integer(parallel) || json_integer_value(parallel) < 1 ||
         json_integer_value(parallel) > 1000)) {
        mig_errf(err, errsz, "max_parallel must be 1 to 1000");
        return -EINVAL;
    }
    return 0;
}

static int begin(struct migd *d, json_t *body, bool estimate, evac_cb cb, void *arg, char *err,
                 size_t errsz)
{
    const char *server = json_string_value(json_object_get(body, "server"));
    const char *mode = json_string_value(json_object_get(body, "mode"));
    json_t *to = json_object_get(body, "to");
    json_t *parallel = json_object_get(body, "max_parallel");
    json_t *avoid = json_object_get(body, "avoid");
    if (server == NULL || server[0] == '\0' || strlen(server) >= 256) {
        mig_errf(err, errsz, "server (the CN to evacuate, uuid or hostname) is required");
        return -EINVAL;
    }
    struct mig_window win = {.set = false};
    int orc = evac_options_check(body, &win, err, errsz);
    if (orc != 0)
        return orc;
    if (to != NULL && !json_is_null(to) &&
        (!json_is_array(to) || json_array_size(to) > 64)) {
        mig_errf(err, errsz, "to must be an array of at most 64 CN uuids or hostnames");
        return -EINVAL;
    }
    if (avoid != NULL && !json_is_null(avoid) &&
        (!json_is_array(avoid) || json_array_size(avoid) > 64)) {
        mig_errf(err, errsz, "avoid must be an array of at most 64 CN uuids or hostnames");
        return -EINVAL;
    }
    size_t ai;
    json_t *an;
    json_array_foreach(avoid, ai, an)
    {
        if (!json_is_string(an)) {
            mig_errf(err, errsz, "avoid must hold strings");
            return -EINVAL;
        }
    }
    json_t *after = json_object_get(body, "cleanup_after_s");
    struct evac_run *r = run_new(d, cb, arg);
    snprintf(r->mode, sizeof(r->mode), "%s", mode != NULL ? mode : "full");
    r->max_parallel = json_is_integer(parallel) ? (int)json_integer_value(parallel)
                                                : d->cfg->limits.max_active_jobs;
    r->no_reserve = json_is_true(json_object_get(body, "no_reserve"));
    r->cleanup_after_s = json_is_integer(after) ? json_integer_value(after) : -1;
    r->window = win;
    r->dry_run = json_is_true(json_object_get(body, "dry_run"));
    size_t i;
    json_t *t;
    json_array_foreach(to, i, t)
    {
        if (!json_is_string(t)) {
            mig_errf(err, errsz, "to must hold strings");
            evac_free(r);
            return -EINVAL;
        }
        r->to_store[r->nto] = mig_strdup(json_string_value(t));
        r->to[r->nto] = r->to_store[r->nto];
        r->nto++;
    }
    int rc = exec_new_calls(d, &r->ev.peers, &hooks, r, &r->x);
    if (rc != 0) {
        evac_free(r);
        return rc;
    }
    mig_evac_init(&r->ev, exec_env(r->x));
    snprintf(r->ev.server, sizeof(r->ev.server), "%s", server);
    r->ev.to = r->to;
    r->ev.nto = r->nto;
    r->ev.allow_older_platform = json_is_true(json_object_get(body, "allow_older_platform"));
    r->ev.estimate_only = estimate;
    r->ev.spread_tag = d->cfg->placement.spread_tag;
    r->ev.avoid = mig_store_evac_draining(d->store);
    json_array_extend(r->ev.avoid, avoid); /* a rolling drain's other CNs, by name */
    exec_call(r->x, mig_evac_step, &r->ev.a);
    return 0;
}

int evac_queue(struct migd *d, json_t *record, evac_cb cb, void *arg)
{
    struct evac_run *r = run_new(d, cb, arg);
    r->record = json_incref(record);
    json_t *opts = json_object_get(record, "options");
    const char *mode = json_string_value(json_object_get(opts, "mode"));
    snprintf(r->mode, sizeof(r->mode), "%s", mode != NULL ? mode : "full");
    json_t *parallel = json_object_get(opts, "max_parallel");
    r->max_parallel = json_is_integer(parallel) ? (int)json_integer_value(parallel)
                                                : d->cfg->limits.max_active_jobs;
    json_t *after = json_object_get(opts, "cleanup_after_s");
    r->cleanup_after_s = json_is_integer(after) ? json_integer_value(after) : -1;
    const char *window = json_string_value(json_object_get(opts, "window"));
    if (window == NULL || mig_window_parse_saved(window, &r->window) != 0)
        r->window.set = false;
    on_reserved(r, 0, json_is_true(json_object_get(record, "reserved")));
    return 0;
}

int evac_start(struct migd *d, json_t *body, evac_cb cb, void *arg, char *err, size_t errsz)
{
    return begin(d, body, false, cb, arg, err, errsz);
}

int estimate_start(struct migd *d, const char *what, evac_cb cb, void *arg, char *err,
                   size_t errsz)
{
    if (what == NULL || what[0] == '\0' || strlen(what) >= 64) {
        mig_errf(err, errsz, "give a VM (uuid or alias) or a CN (uuid or hostname) to estimate");
        return -EINVAL;
    }
    json_t *body = json_pack("{s:s, s:b}", "server", what, "dry_run", 1);
    int rc = begin(d, body, true, cb, arg, err, errsz);
    json_decref(body);
    return rc;
}

/* ---- progress ---- */

json_t *evac_json(struct migd *d, json_t *record)
{
    json_t *out = json_deep_copy(record);
    /* Paused (migctl pause): on record it runs still; people and scripts see "paused". */
    if (is_running(record) && json_is_true(json_object_get(record, "paused")))
        json_object_set_new(out, "state", json_string("paused"));
    json_t *plan = json_object_get(out, "plan");
    json_t *attention = json_array();
    int64_t bytes = 0, sent = 0, rate = 0;
    int queued = 0, done = 0, failed = 0, stays = 0, moving = 0;
    size_t i;
    json_t *e;
    json_array_foreach(plan, i, e)
    {
        const char *job_uuid = json_string_value(json_object_get(e, "job_uuid"));
        const char *alias = json_string_value(json_object_get(e, "alias"));
        const char *vm = json_string_value(json_object_get(e, "vm_uuid"));
        if (json_string_value(json_object_get(e, "target_uuid")) == NULL) {
            stays++;
            json_array_append_new(attention,
                                  json_sprintf("%s (%s) stays: %s", alias ? alias : "", vm,
                                               json_string_value(json_object_get(e, "why"))));
            continue;
        }
        bytes += json_integer_value(json_object_get(e, "bytes"));
        json_t *refused = json_object_get(e, "refused");
        if (job_uuid == NULL) {
            if (refused != NULL) {
                failed++;
                json_array_append_new(
                    attention,
                    json_sprintf("%s (%s) was not queued: %s", alias ? alias : "", vm,
                                 json_string_value(json_object_get(refused, "message"))));
            }
            continue;
        }
        json_t *job = engine_job_json(d->engine, job_uuid);
        const char *st = json_string_value(json_object_get(job, "state"));
        json_t *p = json_object_get(job, "progress");
        json_int_t s_bytes = json_integer_value(json_object_get(p, "bytes_sent"));
        json_object_set_new(e, "state", json_string(st != NULL ? st : "unknown"));
        json_object_set_new(e, "phase", json_incref(json_object_get(job, "phase")));
        json_object_set_new(e, "bytes_sent", json_integer(s_bytes));
        queued++;
        enum mig_evac_outcome outcome =
            mig_evac_entry_outcome(json_string_value(json_object_get(record, "uuid")), e, job);
        if (outcome == MIG_EVAC_DONE) {
            done++;
            sent += json_integer_value(json_object_get(e, "bytes"));
        } else if (outcome == MIG_EVAC_FAILED) {
            failed++;
            json_array_append_new(
                attention, json_sprintf("%s (%s): job %s %s: %s", alias ? alias : "", vm,
                                        job_uuid, st,
                                        json_string_value(json_object_get(
                                            json_object_get(job, "error"), "message"))
                                            ? json_string_value(json_object_get(
                                                  json_object_get(job, "error"), "message"))
                                            : "no error recorded"));
        } else {
            moving++;
            /* A homecoming's rollback not started yet has sent nothing of its way back. */
            if (outcome == MIG_EVAC_MOVING)
                sent += s_bytes < json_integer_value(json_object_get(e, "bytes"))
                            ? s_bytes
                            : json_integer_value(json_object_get(e, "bytes"));
            rate += json_integer_value(json_object_get(p, "rate_bytes_s"));
        }
        json_decref(job);
    }
    int64_t left = bytes > sent ? bytes - sent : 0;
    json_object_set_new(
        out, "progress",
        json_pack("{s:i, s:i, s:i, s:i, s:i, s:I, s:I, s:o}", "queued", queued, "done", done,
                  "moving", moving, "failed", failed, "stays", stays, "bytes", (json_int_t)bytes,
                  "bytes_sent", (json_int_t)sent, "eta_s",
                  moving > 0 && rate > 0 ? json_integer(left / rate + MIG_JOB_FIXED_S)
                  : moving > 0           ? json_null()
                                         : json_integer(0)));
    json_object_set_new(out, "attention", attention);
    return out;
}

json_t *evac_list_json(struct migd *d)
{
    json_t *all = mig_store_evac_list(d->store);
    if (all == NULL)
        return NULL;
    json_t *out = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(all, i, r) json_array_append_new(out, evac_json(d, r));
    json_decref(all);
    return out;
}

void evac_job_ended(struct migd *d, const char *evac_uuid)
{
    json_t *rec = mig_store_evac_load(d->store, evac_uuid);
    if (!is_running(rec) || json_is_true(json_object_get(rec, "replan"))) {
        /* ended already, or a rolling drain's CN whose plan is being made (evac_rolling.c) */
        json_decref(rec);
        return;
    }
    json_t *view = evac_json(d, rec);
    json_t *p = json_object_get(view, "progress");
    int moving = (int)json_integer_value(json_object_get(p, "moving"));
    int failed = (int)json_integer_value(json_object_get(p, "failed"));
    json_decref(view);
    if (moving > 0) {
        json_decref(rec);
        return;
    }
    /* Every job has ended: the window it took against the one estimated. */
    int64_t now = mig_now_ms();
    json_t *began = json_object_get(rec, "started_ms"); /* a rolling drain's CN: when its turn came */
    if (!json_is_integer(began))
        began = json_object_get(rec, "created_ms");
    int64_t took = (now - json_integer_value(began)) / 1000;
    int64_t est = json_integer_value(json_object_get(rec, "estimate_s"));
    const char *end = failed > 0 ? "failed" : "done";
    json_object_set_new(rec, "state", json_string(end));
    json_object_set_new(rec, "finished_ms", json_integer(now));
    json_object_set_new(rec, "took_s", json_integer(took));
    json_object_set_new(rec, "estimate_error",
                        est > 0 ? json_real((double)(took - est) / (double)est) : json_null());
    if (mig_store_evac_save(d->store, rec) == 0) {
        engine_count_evacuation(d->engine, "running", end);
        mig_log(MIG_LOG_INFO, NULL, NULL, "evacuation %s of %s done in %lld s (estimated %lld s)",
                evac_uuid, json_string_value(json_object_get(rec, "hostname")), (long long)took,
                (long long)est);
    }
    json_decref(rec);
}

bool evac_planning(struct migd *d, const char *server_uuid)
{
    for (struct evac_run *r = d->evac_runs; r != NULL; r = r->next_run)
        if (strcasecmp(r->ev.server, server_uuid) == 0 ||
            (r->ev.source_uuid[0] != '\0' && strcasecmp(r->ev.source_uuid, server_uuid) == 0))
            return true;
    return false;
}

void evac_cancel_all(struct migd *d)
{
    while (d->evac_runs != NULL) {
        struct evac_run *r = d->evac_runs;
        /*
         * A submission of its jobs in flight is the engine's (answered as the
         * engine goes); the evacuation keeps what it recorded and a run of
         * migctl evacuate after the restart queues the rest.
         */
        r->cb(r->arg, MIG_ECANCELED, "ShuttingDown", "migd is shutting down", NULL);
        r->cb = NULL;
        if (r->submitting)
            evac_unlink(r); /* the engine's answer frees it (on_submitted) */
        else
            evac_free(r);
    }
}

static void on_job_ended(void *arg, const struct mig_job *job)
{
    if (job->evacuation[0] != '\0')
        evac_job_ended(arg, job->evacuation);
    homecoming_rollbacks_due(arg); /* a lane or a switch slot may be free now */
}

void evac_resume(struct migd *d)
{
    if (engine_subscribe_ended(d->engine, on_job_ended, d) != 0)
        mig_log(MIG_LOG_ERROR, NULL, NULL, "evacuations cannot follow their jobs");
    evac_pause_resume(d);
    homecoming_rollbacks_follow(d);
    json_t *all = mig_store_evac_list(d->store);
    size_t i;
    json_t *r;
    json_array_foreach(all, i, r)
    {
        if (is_running(r))
            evac_job_ended(d, json_string_value(json_object_get(r, "uuid")));
    }
    json_decref(all);
}
