/*
 * control_jobs.c: the handlers of /jobs: list (GET /jobs, its pages sent by
 * control_stream.c), submit (POST /jobs, admitted by control_admit.c), a
 * job (GET /jobs/:uuid), an action on it (POST /jobs/:uuid?action=), its
 * journal, its log, and a watch of it (control_stream.c).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <h2o.h>

#include "control_int.h"
#include "err.h"
#include "log.h"
#include "request.h"
#include "util.h"

#define JOBS_PAGE_MAX 1000

/* Parses a count (decimal, 0..10^12); 0 or -EINVAL. */
static int parse_count(const char *s, int64_t *out)
{
    int64_t v = 0;
    if (s == NULL || *s == '\0' || strlen(s) > 12)
        return -EINVAL;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 0;
}

/* Parses a boolean query value; -EINVAL for anything but true/false/1/0. */
static int parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0 || strcmp(s, "") == 0)
        *out = true;
    else if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
        *out = false;
    else
        return -EINVAL;
    return 0;
}

/* ---- GET /jobs, GET /jobs/:uuid, GET /jobs/:uuid/log ---- */

void control_jobs_list(struct control *c, h2o_req_t *req, const char *id)
{
    (void)id;
    struct query_param params[] = {{"state", NULL}, {"vm_uuid", NULL}, {"all", NULL},
                                   {"limit", NULL}, {"offset", NULL},  {NULL, NULL}};
    if (control_parse_query(req, params) != 0)
        return;
    /* Pages as Triton's APIs page: limit (1..1000, default 1000) and offset. */
    int64_t limit = JOBS_PAGE_MAX, offset = 0;
    if (params[3].value != NULL &&
        (parse_count(params[3].value, &limit) != 0 || limit < 1 || limit > JOBS_PAGE_MAX)) {
        control_respond_error(req, 400, "InvalidArgument", "limit must be 1 to %d", JOBS_PAGE_MAX);
        return;
    }
    if (params[4].value != NULL && parse_count(params[4].value, &offset) != 0) {
        control_respond_error(req, 400, "InvalidArgument",
                              "offset must be a number of jobs (0 or more)");
        return;
    }
    const char *state = params[0].value, *vm_uuid = params[1].value;
    bool all = false;
    enum mig_job_state st;
    if (state != NULL && mig_job_state_parse(state, &st) != 0) {
        control_respond_error(req, 400, "InvalidArgument", "state \"%.*s\" is not a job state",
                              ECHO_MAX, state);
        return;
    }
    if (vm_uuid != NULL && !mig_uuid_valid(vm_uuid)) {
        control_respond_error(req, 400, "InvalidArgument", "vm_uuid \"%.*s\" is not a UUID",
                              ECHO_MAX, vm_uuid);
        return;
    }
    if (params[2].value != NULL && parse_bool(params[2].value, &all) != 0) {
        control_respond_error(req, 400, "InvalidArgument", "all must be true or false");
        return;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        control_page_start(c, req, state, vm_uuid, all, limit, offset);
        return;
    }
    /* HEAD: the length of the page in one piece, as ever. */
    json_t *jobs = engine_jobs_json(c->d->engine, state, vm_uuid, all, limit, offset);
    if (jobs == NULL) {
        control_respond_error(req, 500, "InternalError", "cannot list jobs");
        return;
    }
    control_respond_json(req, 200, jobs);
}

/* The job's JSON, or NULL after answering 404. */
static json_t *find_job(struct control *c, h2o_req_t *req, const char *uuid)
{
    json_t *job = engine_job_json(c->d->engine, uuid);
    if (job == NULL)
        control_respond_error(req, 404, "ResourceNotFound", "job %s not found", uuid);
    return job;
}

void control_job_get(struct control *c, h2o_req_t *req, const char *uuid)
{
    json_t *job = find_job(c, req, uuid);
    if (job != NULL)
        control_respond_json(req, 200, job);
}

/*
 * Answers {"job": uuid, key: what read_part gives} for a job migd knows (404
 * otherwise), or 500 with code when the store cannot read its `what`.
 */
static void respond_job_part(struct control *c, h2o_req_t *req, const char *uuid, const char *key,
                             json_t *(*read_part)(struct mig_store *st, const char *job_uuid),
                             const char *code, const char *what)
{
    json_t *job = find_job(c, req, uuid);
    if (job == NULL)
        return;
    json_decref(job);
    json_t *part = read_part(c->d->store, uuid);
    if (part == NULL) {
        control_respond_error(req, 500, code, "cannot read the %s of job %s", what, uuid);
        return;
    }
    control_respond_json(req, 200, json_pack("{s:s, s:o}", "job", uuid, key, part));
}

/* GET /jobs/:uuid/actions: the journal, for migctl show -v. */
void control_job_actions(struct control *c, h2o_req_t *req, const char *uuid)
{
    respond_job_part(c, req, uuid, "actions", mig_store_actions_json, "DatabaseError", "journal");
}

void control_job_log(struct control *c, h2o_req_t *req, const char *uuid)
{
    respond_job_part(c, req, uuid, "log", mig_store_log, "InternalError", "log");
}

/* ---- POST /jobs/:uuid?action= ---- */

#define JOB_ACTIONS "finish, abort, rollback, cleanup, cancel_timer, pause or resume"

static bool job_action_known(const char *action)
{
    static const char *const known[] = {"finish", "abort",        "rollback", "cleanup",
                                        "cancel_timer", "pause", "resume"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(action, known[i]) == 0)
            return true;
    return false;
}

void control_job_action(struct control *c, h2o_req_t *req, const char *uuid)
{
    struct query_param params[] = {{"action", NULL}, {NULL, NULL}};
    if (control_parse_query(req, params) != 0)
        return;
    const char *action = params[0].value;
    if (action == NULL) {
        control_respond_error(req, 400, "InvalidArgument", "action is required (" JOB_ACTIONS ")");
        return;
    }
    if (!job_action_known(action)) {
        control_respond_error(req, 400, "InvalidArgument", "unknown action \"%.*s\" (" JOB_ACTIONS ")",
                              ECHO_MAX, action);
        return;
    }
    char msg[512] = "";
    int rc = engine_action(c->d->engine, uuid, action, msg, sizeof(msg));
    if (rc == -ENOENT) {
        control_respond_error(req, 404, "ResourceNotFound", "job %s not found", uuid);
    } else if (rc == -EINVAL) {
        control_respond_error_job(req, uuid, 409, "InvalidState", "%s",
                                  msg[0] != '\0' ? msg : "not in this state");
    } else if (rc == MIG_EDB) {
        control_respond_error_job(
            req, uuid, 500, "DatabaseError", "%s",
            msg[0] != '\0' ? msg : "the database refused a write; nothing was changed");
    } else if (rc != 0) {
        control_respond_error_job(req, uuid, 500, "InternalError", "%s: %s", action,
                                  msg[0] != '\0' ? msg : mig_strerror(rc));
    } else {
        /* In the job's log too, with its VM, as every record about a job. */
        json_t *job = engine_job_json(c->d->engine, uuid);
        mig_log(MIG_LOG_INFO, uuid, json_string_value(json_object_get(job, "vm_uuid")),
                "job %s: %s requested over the control API: %s", uuid, action, msg);
        json_decref(job);
        control_respond_json(
            req, 200, json_pack("{s:s, s:s, s:s}", "job", uuid, "action", action, "message", msg));
    }
}

/* ---- POST /jobs ---- */

void control_jobs_submit(struct control *c, h2o_req_t *req, const char *id)
{
    (void)id;
    if (req->query_at != SIZE_MAX) {
        struct query_param none[] = {{NULL, NULL}};
        if (control_parse_query(req, none) != 0)
            return;
    }
    json_error_t jerr;
    json_t *body = req->entity.base != NULL ? json_loadb(req->entity.base, req->entity.len,
                                                         JSON_REJECT_DUPLICATES, &jerr)
                                            : NULL;
    if (body == NULL) {
        control_respond_error(req, 400, "InvalidContent", "the body must be a JSON object: %s",
                              req->entity.base != NULL ? jerr.text : "no body");
        return;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        control_respond_error(req, 400, "InvalidContent", "the body must be a JSON object");
        return;
    }
    struct mig_request request;
    char why[256];
    mig_request_init(&request);
    int prc = mig_request_parse(body, &request, why, sizeof(why));
    json_decref(body);
    if (prc != 0) {
        mig_request_clear(&request);
        control_respond_error(req, 400, "InvalidArgument", "%s", why);
        return;
    }
    /* The checks are cheap and came first; a turn with the engine is not. */
    control_admit_submit(c, req, &request);
}

/* ---- GET /jobs/:uuid/watch ---- */

void control_job_watch(struct control *c, h2o_req_t *req, const char *uuid)
{
    json_t *job = find_job(c, req, uuid);
    if (job == NULL)
        return;
    control_watch_start(c, req, uuid, job);
    json_decref(job);
}
