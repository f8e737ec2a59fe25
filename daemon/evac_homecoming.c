/*
 * evac_homecoming.c: migctl evacuate --return EVAC (POST /evacuations/ID/return),
 * the homecoming of an evacuation (docs/glossary.md; not the *return* task,
 * which is one switched job's rollback).  After the maintenance, the VMs
 * that an evacuation (or every CN of a rolling drain) moved off its CNs go
 * back, each to the CN it left, with a plan, an ETA, the window and the
 * limits asked: a record of its own ("kind": "homecoming", "homecoming_of":
 * EVAC) whose jobs evacuate.c queues and
 * follows like an evacuation's, so that pause, resume, progress and a
 * restart work the same.
 *
 * Only a VM that still runs where the evacuation put it goes back: one moved
 * since by someone else, or gone, stays, and the plan names it.  A VM whose
 * job still keeps its copy on the CN (switched) goes home by that job's
 * rollback, which sends only what changed ("by": "rollback"; started by
 * homecoming_rollbacks.c when the window and the limits allow).  The
 * CNs must be back in service (CNAPI: running); the homecoming gives them back
 * (not reserved) before any job is queued, as `--unreserve` does.  One
 * homecoming per evacuation: asked again, it reports the one on record.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon.h"
#include "err.h"
#include "evac.h"
#include "executor.h"
#include "log.h"
#include "store.h"
#include "triton.h"
#include "util.h"

/* What the homecoming reads from the APIs before it plans: the CNs' status, each VM's place. */
struct ret_check {
    struct mig_act a; /* first member: the coroutine receives &c->a */
    json_t *cns;      /* the evacuations' CNs: [{uuid, hostname}] (owned) */
    json_t *moves;    /* the VMs that left them: plan entries being made (owned) */
    json_t *down;     /* lines: the CNs not back in service (owned) */
    size_t i;
    bool init;
};

struct homecoming_run {
    struct migd *d;
    char evac[MIG_UUID_LEN + 1]; /* as asked: an evacuation or a drain */
    json_t *evacs;               /* its evacuations (owned) */
    json_t *options;             /* mode, max_parallel, window, cleanup_after_s (owned) */
    bool dry_run;
    struct exec *x;
    struct ret_check chk;
    struct cn_reserve *res;
    json_t *record;
    evac_cb cb;
    void *arg;
    struct homecoming_run *next;
};

static void check_clear(struct ret_check *c)
{
    if (c->init)
        mig_act_clear(&c->a);
    json_decrefp(&c->cns);
    json_decrefp(&c->moves);
    json_decrefp(&c->down);
}

static void run_free(struct homecoming_run *r)
{
    MIG_LIST_UNLINK(&r->d->homecoming_runs, r, next);
    exec_free(r->x);
    check_clear(&r->chk);
    cn_reserve_free(r->res);
    json_decref(r->evacs);
    json_decref(r->options);
    json_decref(r->record);
    free(r);
}

/* Answers (out: a new reference, or NULL) and ends the run. */
static void run_answer(struct homecoming_run *r, int err, const char *code, const char *msg,
                       json_t *out)
{
    evac_answer(r->cb, r->arg, err, code, msg, out);
    run_free(r);
}

/* The hostname of CN uuid among the evacuations' CNs, else the uuid. */
static const char *cn_name(json_t *cns, const char *uuid)
{
    size_t i;
    json_t *cn;
    json_array_foreach(cns, i, cn)
    {
        if (strcasecmp(json_string_value(json_object_get(cn, "uuid")), uuid) == 0)
            return json_string_value(json_object_get(cn, "hostname"));
    }
    return uuid;
}

/* Entry stays, saying why. */
static void stays(json_t *entry, const char *why)
{
    json_object_set_new(entry, "target_uuid", json_null());
    json_object_set_new(entry, "target_hostname", json_null());
    json_object_set_new(entry, "why", json_string(why));
}

/* Entry's VM runs on another CN than the evacuation put it on (where: a name or uuid). */
static void moved_since(json_t *entry, const char *where)
{
    char why[300];
    snprintf(why, sizeof(why),
             "moved since by someone else: it runs on %s now, not on %s where the evacuation put "
             "it",
             where, json_string_value(json_object_get(entry, "source_hostname")));
    stays(entry, why);
}

/* The VM of entry as VMAPI has it now (res): goes home, or stays with a reason. */
static void judge(struct ret_check *c, json_t *entry, const struct mig_result *res)
{
    char why[300];
    const char *put = json_string_value(json_object_get(entry, "source_uuid"));
    const char *su = json_string_value(json_object_get(res->json, "server_uuid"));
    const char *st = json_string_value(json_object_get(res->json, "state"));
    if (res->http_status == 404 || (st != NULL && strcmp(st, "destroyed") == 0)) {
        stays(entry, "it is gone (VMAPI has it destroyed or not at all)");
    } else if (su == NULL || strcasecmp(su, put) != 0) {
        moved_since(entry, su != NULL ? cn_name(c->cns, su) : "no CN");
        if (su != NULL)
            json_object_set_new(entry, "now_on", json_string(su)); /* its name is asked next */
    } else if (st == NULL || (strcmp(st, "running") != 0 && strcmp(st, "stopped") != 0)) {
        snprintf(why, sizeof(why), "VMAPI says it is %s: only a running or stopped VM moves",
                 st != NULL ? st : "in no state");
        stays(entry, why);
    }
}

static int check_step(struct mig_act *a)
{
    struct ret_check *c = (struct ret_check *)a;
    ACT_BEGIN(a);
    for (c->i = 0; c->i < json_array_size(c->cns); c->i++) {
        ACT_HTTP(a, "CNAPI", "GET",
                 mig_api_url(a->env->cnapi, "/servers/%s",
                             json_string_value(json_object_get(json_array_get(c->cns, c->i), "uuid"))),
                 NULL);
        if (!mig_res_http_ok(a->res))
            return mig_act_fail_res(a, "CnapiError", "reading CN %s from CNAPI",
                                    json_string_value(json_object_get(
                                        json_array_get(c->cns, c->i), "hostname")));
        const char *status = json_string_value(json_object_get(a->res->json, "status"));
        if (status == NULL || strcmp(status, "running") != 0)
            json_array_append_new(
                c->down, json_sprintf("%s (CNAPI status %s)",
                                      json_string_value(json_object_get(
                                          json_array_get(c->cns, c->i), "hostname")),
                                      status != NULL ? status : "unknown"));
    }
    for (c->i = 0; c->i < json_array_size(c->moves); c->i++) {
        if (json_object_get(json_array_get(c->moves, c->i), "why") != NULL)
            continue; /* stays already (its job keeps the copy) */
        ACT_HTTP(a, "VMAPI", "GET",
                 mig_url_vm(a->env->vmapi, json_string_value(json_object_get(
                                               json_array_get(c->moves, c->i), "vm_uuid"))),
                 NULL);
        if (a->res->err != 0 || (a->res->http_status != 404 && !mig_res_http_ok(a->res)))
            return mig_act_fail_res(a, "VmapiError", "reading VM %s from VMAPI",
                                    json_string_value(json_object_get(
                                        json_array_get(c->moves, c->i), "vm_uuid")));
        judge(c, json_array_get(c->moves, c->i), a->res);
        if (json_object_get(json_array_get(c->moves, c->i), "now_on") == NULL)
            continue;
        /* Moved since: the CN it is on now, by name (CNAPI), for the operator. */
        ACT_HTTP(a, "CNAPI", "GET",
                 mig_api_url(a->env->cnapi, "/servers/%s",
                             json_string_value(json_object_get(json_array_get(c->moves, c->i),
                                                               "now_on"))),
                 NULL);
        if (mig_res_http_ok(a->res) &&
            json_string_value(json_object_get(a->res->json, "hostname")) != NULL)
            moved_since(json_array_get(c->moves, c->i),
                        json_string_value(json_object_get(a->res->json, "hostname")));
        json_object_del(json_array_get(c->moves, c->i), "now_on");
    }
    ACT_END(a);
}

/*
 * The VMs that left the evacuations' CNs: one entry each from the plans'
 * jobs that moved them (switched or succeeded), with the CN it left as its
 * target.  A switched job keeps the VM's copy on that CN: its entry goes
 * home by the job's rollback.  The CNs into c->cns.
 */
static void gather(struct homecoming_run *r)
{
    struct ret_check *c = &r->chk;
    c->cns = json_array();
    c->moves = json_array();
    c->down = json_array();
    size_t i, k;
    json_t *ev, *e;
    json_array_foreach(r->evacs, i, ev)
    {
        const char *home = json_string_value(json_object_get(ev, "server_uuid"));
        const char *host = json_string_value(json_object_get(ev, "hostname"));
        json_array_append_new(c->cns, json_pack("{s:s, s:s}", "uuid", home, "hostname", host));
        json_array_foreach(json_object_get(ev, "plan"), k, e)
        {
            const char *job_uuid = json_string_value(json_object_get(e, "job_uuid"));
            json_t *job = job_uuid != NULL ? engine_job_json(r->d->engine, job_uuid) : NULL;
            const char *st = json_string_value(json_object_get(job, "state"));
            const char *to = json_string_value(json_object_get(job, "target_server_uuid"));
            if (st == NULL || to == NULL ||
                (strcmp(st, "switched") != 0 && strcmp(st, "succeeded") != 0)) {
                json_decref(job); /* it never left */
                continue;
            }
            json_t *m = json_pack("{s:O, s:O?, s:O?, s:s, s:s?, s:s, s:s, s:s}", "vm_uuid",
                                  json_object_get(e, "vm_uuid"), "alias",
                                  json_object_get(e, "alias"), "bytes", json_object_get(e, "bytes"),
                                  "source_uuid", to, "source_hostname",
                                  json_string_value(json_object_get(job, "target_hostname")),
                                  "target_uuid", home, "target_hostname", host, "left_by",
                                  job_uuid);
            if (strcmp(st, "switched") == 0) {
                /* Its copy is still home: the job's rollback (homecoming_rollbacks.c) takes it. */
                json_object_set_new(m, "by", json_string("rollback"));
                json_object_set_new(m, "job_uuid", json_string(job_uuid));
            }
            json_array_append_new(c->moves, m);
            json_decref(job);
        }
    }
}

/* The homecoming's record: its plan (smallest first), bytes, estimate on its lanes. */
static json_t *make_record(struct homecoming_run *r)
{
    const struct mig_config *cfg = r->d->cfg;
    int lanes = (int)json_integer_value(json_object_get(r->options, "max_parallel"));
    if (lanes < 1 || lanes > cfg->limits.max_active_jobs)
        lanes = cfg->limits.max_active_jobs;
    int64_t secs[512], bytes = 0;
    size_t n = 0, i;
    json_t *e;
    json_array_foreach(r->chk.moves, i, e)
    {
        const char *to = json_string_value(json_object_get(e, "target_uuid"));
        if (to == NULL) {
            json_object_set_new(e, "estimate_s", json_null());
            continue;
        }
        struct mig_rate rate = {-1, -1};
        mig_store_rate(r->d->store, json_string_value(json_object_get(e, "source_uuid")), to,
                       &rate);
        int64_t b = json_integer_value(json_object_get(e, "bytes"));
        int64_t s = mig_estimate_s(b, rate.bytes_s, rate.overhead_ms, cfg->transfer.limit_mbps);
        json_object_set_new(e, "estimate_s", json_integer(s));
        const char *home = json_string_value(json_object_get(e, "target_hostname"));
        if (json_object_get(e, "by") != NULL)
            json_object_set_new(
                e, "why",
                json_sprintf("back to %s, which it left in evacuation %s, by the rollback of job "
                             "%s: its copy there is kept, only what changed is sent",
                             home, r->evac, json_string_value(json_object_get(e, "job_uuid"))));
        else
            json_object_set_new(e, "why", json_sprintf("back to %s, which it left in evacuation %s",
                                                       home, r->evac));
        if (n < 512)
            secs[n++] = s;
        bytes += b;
    }
    evac_plan_sort(r->chk.moves);
    char uuid[MIG_UUID_LEN + 1];
    mig_uuid_new(uuid);
    json_t *first = json_array_get(r->chk.cns, 0);
    json_t *rec = json_pack(
        "{s:s, s:s, s:s, s:O, s:O, s:s, s:I, s:O, s:O, s:I, s:I, s:i, s:b, s:b}", "uuid", uuid,
        "kind", "homecoming", "homecoming_of", r->evac, "server_uuid", json_object_get(first, "uuid"),
        "hostname", json_object_get(first, "hostname"), "state", r->dry_run ? "plan" : "running",
        "created_ms", (json_int_t)mig_now_ms(), "options", r->options, "plan", r->chk.moves,
        "bytes", (json_int_t)bytes, "estimate_s",
        (json_int_t)mig_estimate_window_s(secs, n, lanes), "parallel", lanes, "reserved", 0,
        "dry_run", r->dry_run);
    json_object_set(rec, "cns", r->chk.cns);
    return rec;
}

static void on_queued(void *arg, int err, const char *code, const char *message, json_t *evac)
{
    struct homecoming_run *r = arg;
    r->d->rollbacks_waiting = true;
    homecoming_rollbacks_due(r->d); /* the rollbacks that may start now */
    run_answer(r, err, code, message, json_incref(evac));
}

/*
 * The switched jobs it brings home by their rollback keep their copy here
 * until then: a cleanup timer would delete it.  Canceled, and said.
 */
static void keep_copies(struct homecoming_run *r)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(r->record, "plan"), i, e)
    {
        const char *job = json_string_value(json_object_get(e, "job_uuid"));
        if (json_object_get(e, "by") == NULL || job == NULL ||
            json_string_value(json_object_get(e, "target_uuid")) == NULL)
            continue;
        char msg[400];
        if (engine_action(r->d->engine, job, "cancel_timer", msg, sizeof(msg)) == 0)
            mig_log(MIG_LOG_INFO, job, NULL, "homecoming %s brings it home by its rollback: %s",
                    json_string_value(json_object_get(r->record, "uuid")), msg);
    }
}

static void on_unreserved(void *arg, int err, const char *code, const char *message)
{
    struct homecoming_run *r = arg;
    if (err != 0) {
        run_answer(r, MIG_EREFUSED, code, message, NULL);
        return;
    }
    evac_mark_unreserved(r->d, r->evacs); /* the report only: CNAPI has it right */
    mig_log(MIG_LOG_INFO, NULL, NULL, "homecoming %s of evacuation %s: %zu VMs planned",
            json_string_value(json_object_get(r->record, "uuid")), r->evac,
            json_array_size(json_object_get(r->record, "plan")));
    keep_copies(r);
    evac_queue(r->d, r->record, on_queued, r);
}

static void on_checked(void *owner, int err)
{
    struct homecoming_run *r = owner;
    if (err != 0) {
        run_answer(r, MIG_EREFUSED, r->chk.a.err_code, r->chk.a.err_msg, NULL);
        return;
    }
    if (json_array_size(r->chk.down) > 0) {
        char msg[512] = "";
        size_t i, len = 0;
        json_t *line;
        json_array_foreach(r->chk.down, i, line)
            len += (size_t)snprintf(msg + len, len < sizeof(msg) ? sizeof(msg) - len : 0, "%s%s",
                                    i > 0 ? ", " : "", json_string_value(line));
        char out[600];
        snprintf(out, sizeof(out), "not back in service: %s; nothing was changed", msg);
        run_answer(r, MIG_EREFUSED, "CnNotRunning", out, NULL);
        return;
    }
    r->record = make_record(r);
    if (r->dry_run) {
        run_answer(r, 0, NULL, NULL, evac_json(r->d, r->record));
        return;
    }
    json_t *uuids = json_array();
    size_t i;
    json_t *cn;
    json_array_foreach(r->chk.cns, i, cn) json_array_append(uuids, json_object_get(cn, "uuid"));
    r->res = cn_reserve_start(r->d, uuids, false, on_unreserved, r);
    json_decref(uuids);
    if (r->res == NULL)
        run_answer(r, -ENOMEM, "InternalError", mig_strerror(-ENOMEM), NULL);
}

static void on_changed(void *owner)
{
    (void)owner;
}

static const struct exec_hooks hooks = {on_changed, on_checked};

/* The homecoming of evac on record, or NULL.  New reference. */
static json_t *homecoming_of(struct migd *d, const char *evac)
{
    json_t *all = mig_store_evac_list(d->store);
    json_t *found = NULL;
    size_t i;
    json_t *ev;
    json_array_foreach(all, i, ev)
    {
        const char *of = json_string_value(json_object_get(ev, "homecoming_of"));
        if (found == NULL && evac_is_homecoming(ev) && of != NULL && strcmp(of, evac) == 0)
            found = ev;
    }
    json_incref(found);
    json_decref(all);
    return found;
}

/* The options the homecoming's jobs take: as asked, checked. 0, or -EINVAL with err. */
static int read_options(json_t *body, json_t **out, char *err, size_t errsz)
{
    struct mig_window win;
    int rc = evac_options_check(body, &win, err, errsz);
    if (rc != 0)
        return rc;
    const char *mode = json_string_value(json_object_get(body, "mode"));
    *out = json_pack("{s:s}", "mode", mode != NULL ? mode : "full");
    json_t *parallel = json_object_get(body, "max_parallel");
    if (json_is_integer(parallel))
        json_object_set(*out, "max_parallel", parallel);
    if (win.set) {
        char spec[MIG_WINDOW_SPEC_LEN];
        mig_window_format(&win, spec, sizeof(spec));
        json_object_set_new(*out, "window", json_string(spec));
    }
    json_t *after = json_object_get(body, "cleanup_after_s");
    if (json_is_integer(after))
        json_object_set(*out, "cleanup_after_s", after);
    return 0;
}

int evac_homecoming(struct migd *d, const char *uuid, json_t *body, evac_cb cb, void *arg, char *err,
                size_t errsz)
{
    json_t *options = NULL;
    int rc = read_options(body, &options, err, errsz);
    if (rc != 0)
        return rc;
    json_t *evacs = evac_named(d, uuid, err, errsz);
    size_t i;
    json_t *ev;
    rc = evacs == NULL ? -ENOENT : 0;
    json_array_foreach(evacs, i, ev)
    {
        if (rc == 0 && evac_is_homecoming(ev)) {
            mig_errf(err, errsz, "%s is a homecoming itself; name the evacuation it brings home", uuid);
            rc = -EINVAL;
        }
    }
    if (rc == 0)
        rc = evac_cns_free(d, evacs, err, errsz);
    for (struct homecoming_run *h = d->homecoming_runs; rc == 0 && h != NULL; h = h->next) {
        if (strcmp(h->evac, uuid) == 0) {
            mig_errf(err, errsz, "the homecoming of %s is being planned now; ask again in a moment",
                     uuid);
            rc = -EBUSY;
        }
    }
    json_t *done = rc == 0 ? homecoming_of(d, uuid) : NULL;
    if (rc != 0 || done != NULL) {
        json_decref(evacs);
        json_decref(options);
        if (done != NULL) {
            /* Asked again (cron): the homecoming on record, not a second one. */
            json_t *out = evac_json(d, done);
            json_decref(done);
            cb(arg, 0, NULL, NULL, out);
            json_decref(out);
        }
        return rc;
    }
    struct homecoming_run *r = mig_calloc(1, sizeof(*r));
    r->d = d;
    snprintf(r->evac, sizeof(r->evac), "%s", uuid);
    r->evacs = evacs;
    r->options = options;
    r->dry_run = json_is_true(json_object_get(body, "dry_run"));
    r->cb = cb;
    r->arg = arg;
    r->next = d->homecoming_runs;
    d->homecoming_runs = r;
    gather(r);
    rc = exec_new_calls(d, NULL, &hooks, r, &r->x);
    if (rc != 0) {
        run_free(r);
        mig_errf(err, errsz, "cannot start: %s", mig_strerror(rc));
        return rc;
    }
    mig_act_init(&r->chk.a, NULL, exec_env(r->x), -1, -1);
    r->chk.init = true;
    exec_call(r->x, check_step, &r->chk.a);
    return 0;
}

void evac_homecoming_cancel_all(struct migd *d)
{
    while (d->homecoming_runs != NULL)
        run_answer(d->homecoming_runs, MIG_ECANCELED, "ShuttingDown", "migd is shutting down", NULL);
}
