/*
 * control_evac.c: the handlers of evacuations, estimates and the doctor:
 * POST /evacuations (plan, reserve and queue a CN's jobs: evacuate.c), GET
 * /evacuations[/:id], POST /evacuations/:id/{pause,resume,unreserve,return}
 * (return: the homecoming), GET /estimate, GET /doctor and POST /doctor/fix
 * (doctor.c).  Planning is asynchronous; the request is reference-counted
 * as a submission is (control_admit.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>

#include "control_int.h"
#include "err.h"
#include "util.h"

/* An evacuation or estimate being planned; reference-counted like a submission. */
struct evac_req {
    struct control *c;
    h2o_req_t *req; /* NULL once answered or gone */
    int status;     /* the answer's status on success */
};

static void on_evac_req_disposed(void *p)
{
    struct evac_req *e = *(struct evac_req **)p;
    e->req = NULL;
    h2o_mem_release_shared(e);
}

static void on_evac_done(void *arg, int err, const char *code, const char *message, json_t *evac)
{
    struct evac_req *e = arg;
    h2o_req_t *req = e->req;
    e->req = NULL;
    if (req != NULL) {
        struct mig_refusal rf = {.rule = code};
        snprintf(rf.message, sizeof(rf.message), "%s", message != NULL ? message : "");
        const char *api;
        if (err == 0) {
            control_respond_json(req, e->status, json_incref(evac));
        } else if (err == MIG_EREFUSED && (api = control_refusal_unavailable_api(&rf)) != NULL) {
            control_respond_error(req, 503, "ServiceUnavailable", "%s is unavailable (%s): %s", api,
                                  code, rf.message);
        } else if (err == MIG_EREFUSED) {
            control_respond_error(req, 409, code != NULL ? code : "Refused", "%s", rf.message);
        } else {
            const char *status_code;
            int status = control_error_status(err, &status_code);
            control_respond_error(req, status, code != NULL ? code : status_code, "%s",
                                  rf.message[0] != '\0' ? rf.message : mig_strerror(err));
        }
    }
    struct control *c = e->c;
    h2o_mem_release_shared(e);
    control_maybe_finish(c);
}

/* A reference for the request's pool and one for the callback. */
static struct evac_req *evac_req_new(struct control *c, h2o_req_t *req, int status)
{
    struct evac_req *e = h2o_mem_alloc_shared(NULL, sizeof(*e), NULL);
    e->c = c;
    e->req = req;
    e->status = status;
    struct evac_req **guard =
        h2o_mem_alloc_shared(&req->pool, sizeof(*guard), on_evac_req_disposed);
    *guard = e;
    h2o_mem_addref_shared(e);
    return e;
}

/*
 * The start refused at once: the callback's reference goes unused, and the
 * request is answered status and code, with msg.
 */
static void evac_req_refused(struct evac_req *e, int status, const char *code, const char *msg)
{
    h2o_req_t *req = e->req;
    e->req = NULL;
    h2o_mem_release_shared(e);
    control_respond_error(req, status, code, "%s", msg);
}

void control_evacuate(struct control *c, h2o_req_t *req, const char *id)
{
    (void)id;
    json_error_t jerr;
    json_t *body = req->entity.base != NULL ? json_loadb(req->entity.base, req->entity.len,
                                                         JSON_REJECT_DUPLICATES, &jerr)
                                            : NULL;
    if (!json_is_object(body)) {
        json_decref(body);
        control_respond_error(req, 400, "InvalidContent",
                              "the body must be a JSON object (server or servers, max_cns, mode, "
                              "to, max_parallel, no_reserve, dry_run, cleanup_after_s, window)");
        return;
    }
    char err[256];
    struct evac_req *e = evac_req_new(c, req, 201);
    /* servers[]: a rolling drain of several CNs (evac_rolling.c); server: one CN. */
    int rc = json_object_get(body, "servers") != NULL
                 ? rolling_start(c->d, body, on_evac_done, e, err, sizeof(err))
                 : evac_start(c->d, body, on_evac_done, e, err, sizeof(err));
    json_decref(body);
    if (rc == -EEXIST)
        evac_req_refused(e, 409, "EvacuationRunning", err);
    else if (rc == -EINVAL)
        evac_req_refused(e, 400, "InvalidArgument", err);
    else if (rc != 0)
        evac_req_refused(e, 500, "InternalError", mig_strerror(rc));
}

void control_estimate(struct control *c, h2o_req_t *req, const char *id)
{
    (void)id;
    struct query_param params[] = {{"of", NULL}, {NULL, NULL}};
    if (control_parse_query(req, params) != 0)
        return;
    char err[256];
    struct evac_req *e = evac_req_new(c, req, 200);
    int rc = estimate_start(c->d, params[0].value, on_evac_done, e, err, sizeof(err));
    if (rc == -EINVAL)
        evac_req_refused(e, 400, "InvalidArgument", err);
    else if (rc != 0)
        evac_req_refused(e, 500, "InternalError", mig_strerror(rc));
}

/* GET /doctor[?cn=CN[,CN...]]: what migrations left behind (doctor.c); POST /doctor/fix. */
static void doctor(struct control *c, h2o_req_t *req, bool fix)
{
    struct query_param params[] = {{"cn", NULL}, {NULL, NULL}};
    if (control_parse_query(req, params) != 0)
        return;
    json_t *cns = json_array();
    if (params[0].value != NULL) {
        char *list = mig_strdup(params[0].value), *save = NULL;
        for (char *cn = strtok_r(list, ",", &save); cn != NULL; cn = strtok_r(NULL, ",", &save))
            json_array_append_new(cns, json_string(cn));
        free(list);
    }
    char err[256];
    struct evac_req *e = evac_req_new(c, req, 200);
    int rc = doctor_start(c->d, cns, fix, on_evac_done, e, err, sizeof(err));
    json_decref(cns);
    if (rc == -EINVAL)
        evac_req_refused(e, 400, "InvalidArgument", err);
    else if (rc != 0)
        evac_req_refused(e, 503, "ServiceUnavailable", err);
}

void control_doctor(struct control *c, h2o_req_t *req, const char *id)
{
    (void)id;
    doctor(c, req, false);
}

void control_doctor_fix(struct control *c, h2o_req_t *req, const char *id)
{
    (void)id;
    doctor(c, req, true);
}

void control_evacuations_list(struct control *c, h2o_req_t *req, const char *id)
{
    (void)id;
    json_t *all = evac_list_json(c->d);
    if (all == NULL)
        return control_respond_error(req, 500, "DatabaseError", "cannot read the evacuations");
    return control_respond_json(req, 200, all);
}

/*
 * The routes take any segment: a malformed UUID is a 400 here, after the
 * method's 405.  False once answered so.
 */
static bool evac_uuid_ok(h2o_req_t *req, const char *uuid)
{
    if (mig_uuid_valid(uuid))
        return true;
    char s[ECHO_MAX + 8];
    control_echo(uuid, strlen(uuid), s, sizeof(s));
    control_respond_error(req, 400, "InvalidArgument", "\"%s\" is not an evacuation UUID", s);
    return false;
}


void control_evacuation_get(struct control *c, h2o_req_t *req, const char *uuid)
{
    if (!evac_uuid_ok(req, uuid))
        return;
    json_t *rec = mig_store_evac_load(c->d->store, uuid);
    if (rec == NULL) {
        json_t *drain = rolling_json(c->d, uuid); /* a rolling drain: every CN's evacuation */
        if (drain != NULL)
            return control_respond_json(req, 200, drain);
        return control_respond_error(req, 404, "ResourceNotFound", "no evacuation %s", uuid);
    }
    json_t *out = evac_json(c->d, rec);
    json_decref(rec);
    control_respond_json(req, 200, out);
}

/* POST /evacuations/:id/pause and /resume: an evacuation, or a drain whole (evac_pause.c). */
static void pause_or_resume(struct control *c, h2o_req_t *req, const char *uuid, bool pause)
{
    if (!evac_uuid_ok(req, uuid))
        return;
    char err[256];
    json_t *out = NULL;
    int rc = evac_pause(c->d, uuid, pause, &out, err, sizeof(err));
    if (rc == 0)
        return control_respond_json(req, 200, out);
    if (rc == -ENOENT)
        return control_respond_error(req, 404, "ResourceNotFound", "%s", err);
    if (rc == -EALREADY)
        return control_respond_error(req, 409, "EvacuationEnded", "%s", err);
    control_respond_error(req, 500, "DatabaseError", "%s", err);
}

void control_evacuation_pause(struct control *c, h2o_req_t *req, const char *id)
{
    pause_or_resume(c, req, id, true);
}

void control_evacuation_resume(struct control *c, h2o_req_t *req, const char *id)
{
    pause_or_resume(c, req, id, false);
}

/* POST /evacuations/:id/unreserve: its CNs given back in CNAPI once it ended (evac_unreserve.c). */
void control_evacuation_unreserve(struct control *c, h2o_req_t *req, const char *uuid)
{
    if (!evac_uuid_ok(req, uuid))
        return;
    char err[256];
    struct evac_req *e = evac_req_new(c, req, 200);
    int rc = evac_unreserve(c->d, uuid, on_evac_done, e, err, sizeof(err));
    if (rc == -ENOENT)
        evac_req_refused(e, 404, "ResourceNotFound", err);
    else if (rc == -EBUSY)
        evac_req_refused(e, 409, "EvacuationRunning", err);
    else if (rc != 0)
        evac_req_refused(e, 500, "InternalError", err);
}

/* POST /evacuations/:id/return: its VMs back to their CNs (evac_homecoming.c). */
void control_evacuation_return(struct control *c, h2o_req_t *req, const char *uuid)
{
    if (!evac_uuid_ok(req, uuid))
        return;
    json_error_t jerr;
    json_t *body = req->entity.len > 0 ? json_loadb(req->entity.base, req->entity.len,
                                                    JSON_REJECT_DUPLICATES, &jerr)
                                       : json_object();
    if (!json_is_object(body)) {
        json_decref(body);
        return control_respond_error(req, 400, "InvalidContent",
                                     "the body must be a JSON object (dry_run, mode, max_parallel, "
                                     "window, cleanup_after_s)");
    }
    char err[256];
    struct evac_req *e = evac_req_new(c, req, 201);
    int rc = evac_homecoming(c->d, uuid, body, on_evac_done, e, err, sizeof(err));
    json_decref(body);
    if (rc == -ENOENT)
        evac_req_refused(e, 404, "ResourceNotFound", err);
    else if (rc == -EBUSY)
        evac_req_refused(e, 409, "EvacuationRunning", err);
    else if (rc == -EINVAL)
        evac_req_refused(e, 400, "InvalidArgument", err);
    else if (rc != 0)
        evac_req_refused(e, 500, "InternalError", err);
}
