/*
 * control.c: the REST control API of product.md, served as HTTP/1.1 by h2o
 * (libuv flavour) on a Unix domain socket of mode 0600.  This file is the
 * one adapter between h2o and the rest of migd: handlers parse the request,
 * call the engine (daemon.h) and answer JSON; errors are
 * {"code": "...", "message": "..."} as Triton's services answer them.
 *
 * Lifetimes.  A POST /jobs waits for the engine's asynchronous answer; the
 * client may go away first, so the engine holds a reference to a small
 * shared context that a guard object in the request's pool detaches when h2o
 * disposes of the request.  A watch stream is a generator whose stop
 * callback and pool disposal both unregister it from the engine.  Stopping
 * answers what is pending, ends every stream, shuts every connection down so
 * that h2o closes it through its own error path, and frees the server once
 * the last connection's handle is closed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <h2o.h>
#include <h2o/http1.h>

#include "daemon.h"
#include "err.h"
#include "log.h"
#include "util.h"

#define CONTROL_MAX_BODY (64 * 1024)

#define CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* One accepted connection: the pipe h2o reads and writes. */
struct conn {
    uv_pipe_t pipe;
    struct control *c;
    h2o_linklist_t link; /* in control.conns */
};

struct control {
    struct migd *d;
    char *path;
    uv_pipe_t listener;
    bool listener_open; /* uv_pipe_init done: must be closed */
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_linklist_t conns;   /* struct conn */
    h2o_linklist_t submits; /* struct submit, requests still waiting for the engine */
    h2o_linklist_t watches; /* struct watch, streams still open */
    bool stopping;
    bool finished;
    void (*on_closed)(void *arg);
    void *on_closed_arg;
};

/* The handler h2o calls for every request; it finds its server through c. */
struct route_handler {
    h2o_handler_t super;
    struct control *c;
};

/* A POST /jobs waiting for engine_submit's callback (see the file comment). */
struct submit {
    struct control *c;
    h2o_req_t *req; /* NULL once answered or gone */
    h2o_linklist_t link;
};

/* A GET /jobs/:uuid/watch stream. */
struct watch {
    h2o_generator_t super;
    struct control *c;
    h2o_req_t *req; /* NULL once the final chunk is handed over or the request is gone */
    void *handle;   /* engine_watch handle; NULL when not (or no longer) registered */
    char *pending;  /* lines not yet handed to h2o */
    size_t pending_len, pending_cap;
    char *inflight; /* the buffer h2o is sending; freed on proceed or disposal */
    bool sending;
    bool final_queued;
    h2o_linklist_t link;
};

static void watch_flush(struct watch *w);

/* ---- responses ---- */

static const char *status_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

/* Sends body (a string of len bytes) as the whole response. */
static void respond_text(h2o_req_t *req, int status, const char *type, const char *body, size_t len)
{
    static h2o_generator_t generator = {NULL, NULL};
    h2o_iovec_t buf = h2o_strdup(&req->pool, body, len);

    req->res.status = status;
    req->res.reason = status_reason(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    h2o_start_response(req, &generator);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
}

/* Sends body (stolen) as JSON followed by a newline. */
static void respond_json(h2o_req_t *req, int status, json_t *body)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    if (text == NULL) {
        static const char oom[] =
            "{\"code\":\"InternalError\",\"message\":\"cannot encode the answer\"}\n";
        respond_text(req, 500, "application/json", oom, sizeof(oom) - 1);
        return;
    }
    size_t len = strlen(text);
    char *line = h2o_mem_alloc_pool(&req->pool, len + 1);
    memcpy(line, text, len);
    line[len] = '\n';
    free(text);
    respond_text(req, status, "application/json", line, len + 1);
}

static void respond_error(h2o_req_t *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void respond_error(h2o_req_t *req, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    respond_json(req, status, json_pack("{s:s, s:s}", "code", code, "message", msg));
}

static void respond_bad_method(h2o_req_t *req, const char *allow)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    respond_error(req, 405, "BadMethod", "%.*s is not allowed on %.*s (allowed: %s)",
                  (int)req->method.len, req->method.base, (int)req->path_normalized.len,
                  req->path_normalized.base, allow);
}

/* ---- request parsing ---- */

static bool method_is(h2o_req_t *req, const char *m)
{
    return req->method.len == strlen(m) && memcmp(req->method.base, m, req->method.len) == 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len) ('+' is a space) into a pool string; NULL when malformed. */
static char *url_decode(h2o_mem_pool_t *pool, const char *s, size_t len)
{
    char *out = h2o_mem_alloc_pool(pool, len + 1), *p = out;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= len || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
                return NULL;
            char ch = (char)(hi * 16 + lo);
            if (ch == '\0')
                return NULL;
            *p++ = ch;
            i += 2;
        } else {
            *p++ = s[i] == '+' ? ' ' : s[i];
        }
    }
    *p = '\0';
    return out;
}

struct query_param {
    const char *name;
    const char *value; /* OUT: NULL when absent */
};

/*
 * Parses the query string into params (a NULL-name terminated table of the
 * names allowed).  Returns 0, or -EINVAL after answering 400 for an unknown
 * name or a malformed value.
 */
static int parse_query(h2o_req_t *req, struct query_param *params)
{
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *q = req->path.base + req->query_at + 1;
    const char *end = req->path.base + req->path.len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp != NULL ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        const char *kend = eq != NULL ? eq : stop;
        if (kend > q) {
            char *key = url_decode(&req->pool, q, (size_t)(kend - q));
            char *val = eq != NULL ? url_decode(&req->pool, eq + 1, (size_t)(stop - eq - 1))
                                   : url_decode(&req->pool, "", 0);
            if (key == NULL || val == NULL) {
                respond_error(req, 400, "InvalidArgument", "malformed query string");
                return -EINVAL;
            }
            struct query_param *p = params;
            while (p->name != NULL && strcmp(p->name, key) != 0)
                p++;
            if (p->name == NULL) {
                respond_error(req, 400, "InvalidArgument", "unknown query parameter \"%s\"", key);
                return -EINVAL;
            }
            p->value = val;
        }
        q = stop + 1;
    }
    return 0;
}

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

/* ---- GET /ping and GET /metrics ---- */

/* Counts by state for every state name, from the engine's stats. */
static json_t *jobs_by_state(json_t *stats)
{
    json_t *src = json_object_get(stats, "jobs");
    json_t *out = json_object();
    for (int s = 0; s < MIG_JOB_NSTATES; s++) {
        const char *name = mig_job_state_name((enum mig_job_state)s);
        json_t *n = json_object_get(src, name);
        json_object_set_new(out, name,
                            json_integer(json_is_integer(n) ? json_integer_value(n) : 0));
    }
    return out;
}

static void handle_ping(struct control *c, h2o_req_t *req)
{
    json_t *stats = engine_stats_json(c->d->engine);
    int64_t up = (mig_now_ms() - c->d->started_ms) / 1000;
    json_t *body = json_pack("{s:s, s:I, s:i, s:o, s:O}", "version", MIGD_VERSION, "uptime_s",
                             (json_int_t)(up < 0 ? 0 : up), "pid", (int)getpid(), "jobs",
                             jobs_by_state(stats), "unreadable",
                             json_object_get(stats, "unreadable"));
    json_decref(stats);
    respond_json(req, 200, body);
}

static void handle_metrics(struct control *c, h2o_req_t *req)
{
    size_t len = 0;
    char *out = engine_metrics_text(c->d->engine, &len);
    respond_text(req, 200, "text/plain; version=0.0.4", out, len);
    free(out);
}

/* ---- GET /jobs, GET /jobs/:uuid, GET /jobs/:uuid/log ---- */

static void handle_jobs_list(struct control *c, h2o_req_t *req)
{
    struct query_param params[] = {{"state", NULL}, {"vm_uuid", NULL}, {"all", NULL},
                                   {"limit", NULL}, {"offset", NULL}, {NULL, NULL}};
    if (parse_query(req, params) != 0)
        return;
    /* Pages as Triton's APIs page: limit (1..1000, default 1000) and offset. */
    int64_t limit = JOBS_PAGE_MAX, offset = 0;
    if (params[3].value != NULL && (parse_count(params[3].value, &limit) != 0 || limit < 1 ||
                                    limit > JOBS_PAGE_MAX)) {
        respond_error(req, 400, "InvalidArgument", "limit must be 1 to %d", JOBS_PAGE_MAX);
        return;
    }
    if (params[4].value != NULL && parse_count(params[4].value, &offset) != 0) {
        respond_error(req, 400, "InvalidArgument", "offset must be a number of jobs (0 or more)");
        return;
    }
    const char *state = params[0].value, *vm_uuid = params[1].value;
    bool all = false;
    enum mig_job_state st;
    if (state != NULL && mig_job_state_parse(state, &st) != 0) {
        respond_error(req, 400, "InvalidArgument", "state \"%s\" is not a job state", state);
        return;
    }
    if (vm_uuid != NULL && !mig_uuid_valid(vm_uuid)) {
        respond_error(req, 400, "InvalidArgument", "vm_uuid \"%s\" is not a UUID", vm_uuid);
        return;
    }
    if (params[2].value != NULL && parse_bool(params[2].value, &all) != 0) {
        respond_error(req, 400, "InvalidArgument", "all must be true or false");
        return;
    }
    json_t *jobs = engine_jobs_json(c->d->engine, state, vm_uuid, all, limit, offset);
    if (jobs == NULL) {
        respond_error(req, 500, "InternalError", "cannot list jobs");
        return;
    }
    respond_json(req, 200, jobs);
}

/* The job's JSON, or NULL after answering 404. */
static json_t *find_job(struct control *c, h2o_req_t *req, const char *uuid)
{
    json_t *job = engine_job_json(c->d->engine, uuid);
    if (job == NULL)
        respond_error(req, 404, "ResourceNotFound", "job %s not found", uuid);
    return job;
}

static void handle_job_get(struct control *c, h2o_req_t *req, const char *uuid)
{
    json_t *job = find_job(c, req, uuid);
    if (job != NULL)
        respond_json(req, 200, job);
}

/* GET /jobs/:uuid/actions: the journal, for migctl show -v. */
static void handle_job_actions(struct control *c, h2o_req_t *req, const char *uuid)
{
    json_t *job = find_job(c, req, uuid);
    if (job == NULL)
        return;
    json_decref(job);
    json_t *actions = mig_store_actions_json(c->d->store, uuid);
    if (actions == NULL) {
        respond_error(req, 500, "DatabaseError", "cannot read the journal of job %s", uuid);
        return;
    }
    respond_json(req, 200, json_pack("{s:s, s:o}", "job", uuid, "actions", actions));
}

static void handle_job_log(struct control *c, h2o_req_t *req, const char *uuid)
{
    json_t *job = find_job(c, req, uuid);
    if (job == NULL)
        return;
    json_decref(job);
    json_t *log = mig_store_log(c->d->store, uuid);
    if (log == NULL) {
        respond_error(req, 500, "InternalError", "cannot read the log of job %s", uuid);
        return;
    }
    respond_json(req, 200, json_pack("{s:s, s:o}", "job", uuid, "log", log));
}

/* ---- POST /jobs/:uuid?action= ---- */

static void handle_job_action(struct control *c, h2o_req_t *req, const char *uuid)
{
    struct query_param params[] = {{"action", NULL}, {NULL, NULL}};
    if (parse_query(req, params) != 0)
        return;
    const char *action = params[0].value;
    if (action == NULL) {
        respond_error(req, 400, "InvalidArgument",
                      "action is required (finish, abort, rollback or cleanup)");
        return;
    }
    if (strcmp(action, "finish") != 0 && strcmp(action, "abort") != 0 &&
        strcmp(action, "rollback") != 0 && strcmp(action, "cleanup") != 0) {
        respond_error(req, 400, "InvalidArgument",
                      "unknown action \"%s\" (finish, abort, rollback or cleanup)", action);
        return;
    }
    char msg[512] = "";
    int rc = engine_action(c->d->engine, uuid, action, msg, sizeof(msg));
    if (rc == -ENOENT) {
        respond_error(req, 404, "ResourceNotFound", "job %s not found", uuid);
    } else if (rc == -EINVAL) {
        respond_error(req, 409, "InvalidState", "%s", msg[0] != '\0' ? msg : "not in this state");
    } else if (rc == MIG_EDB) {
        respond_error(req, 500, "DatabaseError", "%s",
                      msg[0] != '\0' ? msg : "the database refused a write; nothing was changed");
    } else if (rc != 0) {
        respond_error(req, 500, "InternalError", "%s: %s", action,
                      msg[0] != '\0' ? msg : mig_strerror(rc));
    } else {
        log_info("job %s: %s requested over the control API", uuid, action);
        respond_json(req, 200,
                     json_pack("{s:s, s:s, s:s}", "job", uuid, "action", action, "message", msg));
    }
}

/* ---- POST /jobs ---- */

static void submit_detach(struct submit *s)
{
    s->req = NULL;
    if (h2o_linklist_is_linked(&s->link))
        h2o_linklist_unlink(&s->link);
}

/* The request's pool is being cleared: the client is gone or was answered. */
static void on_submit_req_disposed(void *p)
{
    struct submit *s = *(struct submit **)p;
    submit_detach(s);
    h2o_mem_release_shared(s);
}

/* HTTP status and code for an engine error that is not a refusal. */
static int submit_error_status(int err, const char **code)
{
    switch (err) {
    case -EINVAL:
    case MIG_EPARSE:
        *code = "InvalidArgument";
        return 400;
    case -ENOENT:
        *code = "ResourceNotFound";
        return 404;
    case -EBUSY:
    case -EAGAIN:
    case MIG_EHTTP:
    case MIG_ETIMEDOUT:
    case MIG_EAPI:
    case MIG_ESSH:
    case MIG_ECANCELED:
        *code = "ServiceUnavailable";
        return 503;
    default:
        *code = "InternalError";
        return 500;
    }
}

static void on_submit_done(void *arg, int err, const struct mig_refusal *r,
                           const struct mig_job *job, json_t *plan)
{
    struct submit *s = arg;
    h2o_req_t *req = s->req;
    if (req != NULL) {
        submit_detach(s);
        if (err == 0 && plan != NULL && (job == NULL || job->dry_run)) {
            respond_json(req, 200, json_pack("{s:b, s:O}", "dry_run", 1, "plan", plan));
        } else if (err == 0 && job != NULL) {
            respond_json(req, 201, mig_job_to_json(job));
        } else if (err == 0) {
            respond_error(req, 500, "InternalError", "the engine returned neither job nor plan");
        } else if (err == MIG_EREFUSED) {
            respond_error(req, 409, r != NULL && r->rule != NULL ? r->rule : "Refused", "%s",
                          r != NULL && r->message[0] != '\0' ? r->message : mig_strerror(err));
        } else {
            const char *code;
            int status = submit_error_status(err, &code);
            respond_error(req, status, code, "%s",
                          r != NULL && r->message[0] != '\0' ? r->message : mig_strerror(err));
        }
    }
    h2o_mem_release_shared(s);
}

/* Checks the POST /jobs body's keys and types; answers 400 and returns -EINVAL when wrong. */
static int check_submit_body(h2o_req_t *req, json_t *body)
{
    static const struct {
        const char *key;
        int type; /* JSON_STRING, JSON_TRUE (any boolean) or JSON_INTEGER */
        bool required;
    } keys[] = {{"vm_uuid", JSON_STRING, true},
                {"target", JSON_STRING, false},
                {"mode", JSON_STRING, false},
                {"dry_run", JSON_TRUE, false},
                {"allow_older_platform", JSON_TRUE, false},
                {"cleanup_source", JSON_TRUE, false},
                {"transfer", JSON_STRING, false},
                {"limit_mbps", JSON_INTEGER, false}};
    enum { NKEYS = sizeof(keys) / sizeof(keys[0]) };
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        size_t i;
        for (i = 0; i < NKEYS && strcmp(keys[i].key, key) != 0; i++)
            ;
        if (i == NKEYS) {
            respond_error(req, 400, "InvalidArgument", "unknown key \"%s\"", key);
            return -EINVAL;
        }
        if (json_is_null(v) && !keys[i].required)
            continue;
        bool ok = keys[i].type == JSON_STRING    ? json_is_string(v)
                  : keys[i].type == JSON_INTEGER ? json_is_integer(v)
                                                 : json_is_boolean(v);
        if (!ok) {
            respond_error(req, 400, "InvalidArgument", "%s must be %s", key,
                          keys[i].type == JSON_STRING    ? "a string"
                          : keys[i].type == JSON_INTEGER ? "an integer"
                                                         : "a boolean");
            return -EINVAL;
        }
    }
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].required && json_object_get(body, keys[i].key) == NULL) {
            respond_error(req, 400, "InvalidArgument", "%s is required", keys[i].key);
            return -EINVAL;
        }
    }
    const char *mode = json_string_value(json_object_get(body, "mode"));
    enum mig_mode m;
    if (mode != NULL && mig_mode_parse(mode, &m) != 0) {
        respond_error(req, 400, "InvalidArgument", "mode \"%s\" is not full, incremental or auto",
                      mode);
        return -EINVAL;
    }
    const char *transfer = json_string_value(json_object_get(body, "transfer"));
    if (transfer != NULL && strcmp(transfer, "relay") != 0 && strcmp(transfer, "direct") != 0) {
        respond_error(req, 400, "InvalidArgument", "transfer \"%s\" is not relay or direct",
                      transfer);
        return -EINVAL;
    }
    json_t *limit = json_object_get(body, "limit_mbps");
    if (json_is_integer(limit) &&
        (json_integer_value(limit) < 0 || json_integer_value(limit) > 1000000)) {
        respond_error(req, 400, "InvalidArgument",
                      "limit_mbps must be 0 (no cap) to 1000000 Mbit/s");
        return -EINVAL;
    }
    return 0;
}

static void handle_jobs_submit(struct control *c, h2o_req_t *req)
{
    if (req->query_at != SIZE_MAX) {
        struct query_param none[] = {{NULL, NULL}};
        if (parse_query(req, none) != 0)
            return;
    }
    json_error_t jerr;
    json_t *body = req->entity.base != NULL ? json_loadb(req->entity.base, req->entity.len,
                                                         JSON_REJECT_DUPLICATES, &jerr)
                                            : NULL;
    if (body == NULL) {
        respond_error(req, 400, "InvalidContent", "the body must be a JSON object: %s",
                      req->entity.base != NULL ? jerr.text : "no body");
        return;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        respond_error(req, 400, "InvalidContent", "the body must be a JSON object");
        return;
    }
    if (check_submit_body(req, body) != 0) {
        json_decref(body);
        return;
    }

    /* One reference for the engine's callback, one for the guard in the request's pool. */
    struct submit *s = h2o_mem_alloc_shared(NULL, sizeof(*s), NULL);
    memset(s, 0, sizeof(*s));
    s->c = c;
    s->req = req;
    h2o_linklist_insert(&c->submits, &s->link);
    struct submit **guard =
        h2o_mem_alloc_shared(&req->pool, sizeof(*guard), on_submit_req_disposed);
    *guard = s;
    h2o_mem_addref_shared(s);

    int rc = engine_submit(c->d->engine, body, on_submit_done, s);
    json_decref(body);
    if (rc != 0) {
        /* The callback will not run: drop its reference and answer here. */
        submit_detach(s);
        h2o_mem_release_shared(s);
        const char *code;
        int status = submit_error_status(rc, &code);
        respond_error(req, status, code, "cannot submit the job: %s", mig_strerror(rc));
    }
}

/* ---- GET /jobs/:uuid/watch ---- */

static void watch_unregister(struct watch *w)
{
    if (w->handle != NULL) {
        engine_unwatch(w->c->d->engine, w->handle);
        w->handle = NULL;
    }
    if (h2o_linklist_is_linked(&w->link))
        h2o_linklist_unlink(&w->link);
}

/* Queues one line: the job's JSON and a newline. */
static void watch_append(struct watch *w, json_t *job)
{
    char *text = json_dumps(job, JSON_COMPACT);
    if (text == NULL)
        return;
    size_t n = strlen(text);
    if (w->pending_len + n + 1 > w->pending_cap) {
        w->pending_cap = (w->pending_len + n + 1) * 2;
        char *grown = realloc(w->pending, w->pending_cap);
        if (grown == NULL)
            abort();
        w->pending = grown;
    }
    memcpy(w->pending + w->pending_len, text, n);
    w->pending[w->pending_len + n] = '\n';
    w->pending_len += n + 1;
    free(text);
}

/* Hands the queued lines to h2o unless a send is in flight (h2o allows one). */
static void watch_flush(struct watch *w)
{
    if (w->req == NULL || w->sending || (w->pending_len == 0 && !w->final_queued))
        return;
    h2o_req_t *req = w->req;
    h2o_iovec_t buf = h2o_iovec_init(w->pending, w->pending_len);
    free(w->inflight);
    w->inflight = w->pending;
    w->pending = NULL;
    w->pending_len = w->pending_cap = 0;
    w->sending = true;
    h2o_send_state_t state = H2O_SEND_STATE_IN_PROGRESS;
    if (w->final_queued) {
        /* h2o stops calling proceed/stop after the final send; inflight is freed on disposal. */
        state = H2O_SEND_STATE_FINAL;
        w->req = NULL;
        watch_unregister(w);
    }
    h2o_send(req, &buf, buf.len != 0 ? 1 : 0, state);
}

static void on_watch_event(void *arg, json_t *job, bool final)
{
    struct watch *w = arg;
    if (w->req == NULL || w->final_queued)
        return;
    watch_append(w, job);
    if (final) {
        /* The engine drops its watch after the final call. */
        w->handle = NULL;
        w->final_queued = true;
    }
    watch_flush(w);
}

static void on_watch_proceed(h2o_generator_t *self, h2o_req_t *req)
{
    (void)req;
    struct watch *w = CONTAINER_OF(self, struct watch, super);
    free(w->inflight);
    w->inflight = NULL;
    w->sending = false;
    watch_flush(w);
}

/* h2o gives up the stream (the client went away): no more sends. */
static void on_watch_stop(h2o_generator_t *self, h2o_req_t *req)
{
    (void)req;
    struct watch *w = CONTAINER_OF(self, struct watch, super);
    w->req = NULL;
    watch_unregister(w);
}

static void on_watch_disposed(void *p)
{
    struct watch *w = p;
    w->req = NULL;
    watch_unregister(w);
    free(w->pending);
    free(w->inflight);
    w->pending = w->inflight = NULL;
}

static void handle_job_watch(struct control *c, h2o_req_t *req, const char *uuid)
{
    json_t *job = find_job(c, req, uuid);
    if (job == NULL)
        return;
    struct watch *w = h2o_mem_alloc_shared(&req->pool, sizeof(*w), on_watch_disposed);
    memset(w, 0, sizeof(*w));
    w->super.proceed = on_watch_proceed;
    w->super.stop = on_watch_stop;
    w->c = c;
    w->req = req;

    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/x-ndjson"));
    h2o_start_response(req, &w->super);

    /*
     * The first line is the job as it is now.  A job that is over, or switched
     * (nothing moves until rollback or cleanup), ends the stream there.
     */
    watch_append(w, job);
    enum mig_job_state st;
    const char *state = json_string_value(json_object_get(job, "state"));
    if (state != NULL && mig_job_state_parse(state, &st) == 0 &&
        (mig_job_state_final(st) || st == MIG_JOB_SWITCHED)) {
        w->final_queued = true;
    } else {
        h2o_linklist_insert(&c->watches, &w->link);
        w->handle = engine_watch(c->d->engine, uuid, on_watch_event, w);
        if (w->handle == NULL)
            w->final_queued = true;
    }
    json_decref(job);
    watch_flush(w);
}

/* ---- routing ---- */

/* Splits the normalized path into at most max segments (pool strings); -1 when more. */
static int split_path(h2o_req_t *req, char **seg, int max)
{
    const char *p = req->path_normalized.base, *end = p + req->path_normalized.len;
    int n = 0;
    while (p < end) {
        while (p < end && *p == '/')
            p++;
        if (p == end)
            break;
        const char *s = p;
        while (p < end && *p != '/')
            p++;
        if (n == max)
            return -1;
        seg[n++] = h2o_strdup(&req->pool, s, (size_t)(p - s)).base;
    }
    return n;
}

static void route(struct control *c, h2o_req_t *req)
{
    char *seg[4];
    int n = split_path(req, seg, 4);
    bool get = method_is(req, "GET") || method_is(req, "HEAD"), post = method_is(req, "POST");

    if (n == 1 && strcmp(seg[0], "ping") == 0) {
        if (!get)
            return respond_bad_method(req, "GET, HEAD");
        return handle_ping(c, req);
    }
    if (n == 1 && strcmp(seg[0], "metrics") == 0) {
        if (!get)
            return respond_bad_method(req, "GET, HEAD");
        return handle_metrics(c, req);
    }
    if (n == 1 && strcmp(seg[0], "jobs") == 0) {
        if (get)
            return handle_jobs_list(c, req);
        if (post)
            return handle_jobs_submit(c, req);
        return respond_bad_method(req, "GET, HEAD, POST");
    }
    if ((n == 2 || n == 3) && strcmp(seg[0], "jobs") == 0) {
        if (!mig_uuid_valid(seg[1]))
            return respond_error(req, 400, "InvalidArgument", "\"%s\" is not a job UUID", seg[1]);
        if (n == 2) {
            if (get)
                return handle_job_get(c, req, seg[1]);
            if (post)
                return handle_job_action(c, req, seg[1]);
            return respond_bad_method(req, "GET, HEAD, POST");
        }
        if (strcmp(seg[2], "watch") == 0 || strcmp(seg[2], "log") == 0 ||
            strcmp(seg[2], "actions") == 0) {
            if (!get)
                return respond_bad_method(req, "GET, HEAD");
            if (seg[2][0] == 'w')
                return handle_job_watch(c, req, seg[1]);
            if (seg[2][0] == 'a')
                return handle_job_actions(c, req, seg[1]);
            return handle_job_log(c, req, seg[1]);
        }
    }
    if ((n == 1 || n == 2) && strcmp(seg[0], "evacuations") == 0) {
        if (n == 1 ? !post : !get)
            return respond_bad_method(req, n == 1 ? "POST" : "GET, HEAD");
        return respond_error(req, 501, "NotImplemented", "evacuations are not implemented yet");
    }
    respond_error(req, 404, "ResourceNotFound", "%.*s does not exist",
                  (int)req->path_normalized.len, req->path_normalized.base);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct control *c = ((struct route_handler *)self)->c;
    if (c->stopping) {
        respond_error(req, 503, "ServiceUnavailable", "migd is shutting down");
        return 0;
    }
    log_debug("control: %.*s %.*s", (int)req->method.len, req->method.base, (int)req->path.len,
              req->path.base);
    route(c, req);
    return 0;
}

/* ---- connections ---- */

/* Once stopping and every handle is closed: dispose of h2o and free the server. */
static void control_maybe_finish(struct control *c)
{
    if (!c->stopping || c->finished || c->listener_open || !h2o_linklist_is_empty(&c->conns))
        return;
    c->finished = true;
    /*
     * h2o_context_dispose runs the loop once (UV_RUN_NOWAIT) to finish closing
     * its timers, which live inside c; we are in a close callback, so the outer
     * loop is not iterating I/O events at this point.
     */
    h2o_context_dispose(&c->ctx);
    h2o_config_dispose(&c->config);
    void (*on_closed)(void *) = c->on_closed;
    void *arg = c->on_closed_arg;
    free(c->path);
    free(c);
    if (on_closed != NULL)
        on_closed(arg);
}

static void on_conn_closed(uv_handle_t *handle)
{
    struct conn *conn = CONTAINER_OF(handle, struct conn, pipe);
    struct control *c = conn->c;
    h2o_linklist_unlink(&conn->link);
    free(conn);
    control_maybe_finish(c);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct control *c = listener->data;
    if (status != 0) {
        log_warn("control: accept failed: %s", uv_strerror(status));
        return;
    }
    struct conn *conn = mig_calloc(1, sizeof(*conn));
    conn->c = c;
    uv_pipe_init(c->d->loop, &conn->pipe, 0);
    h2o_linklist_insert(&c->conns, &conn->link);
    int rc = uv_accept(listener, (uv_stream_t *)&conn->pipe);
    if (rc != 0 || c->stopping) {
        if (rc != 0)
            log_warn("control: accept failed: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&conn->pipe, on_conn_closed);
        return;
    }
    struct timeval now;
    gettimeofday(&now, NULL);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&conn->pipe, on_conn_closed);
    h2o_http1_accept(&c->accept_ctx, sock, now);
}

static void on_listener_closed(uv_handle_t *handle)
{
    struct control *c = handle->data;
    c->listener_open = false;
    control_maybe_finish(c);
}

/*
 * Creates the listening socket at path with mode 0600: a stale socket (no
 * one accepting) is replaced, a live one or another kind of file is not.
 * Returns the fd or a negative code with a line in err.
 */
static int listen_socket(const char *path, char *err, size_t errsz)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errsz, "socket path %s is too long", path);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);

    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errsz,
                     "%s exists and is not a socket; remove it or choose another socket", path);
            return -EEXIST;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(probe);
            snprintf(err, errsz, "another migd is serving %s", path);
            return -EADDRINUSE;
        }
        if (probe >= 0)
            close(probe);
        if (unlink(path) != 0 && errno != ENOENT) {
            int e = errno;
            snprintf(err, errsz, "cannot remove stale socket %s: %s", path, strerror(e));
            return -e;
        }
    }

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errsz, "socket: %s", strerror(e));
        return -e;
    }
    /* The umask makes the socket 0600 from the moment it exists. */
    mode_t old = umask(077);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    umask(old);
    if (rc != 0) {
        close(fd);
        snprintf(err, errsz, "cannot bind %s: %s", path, strerror(e));
        return -e;
    }
    /* Listening at once shortens the window in which a client finds the path but is refused. */
    if (chmod(path, 0600) != 0 || listen(fd, 64) != 0) {
        e = errno;
        close(fd);
        unlink(path);
        snprintf(err, errsz, "cannot chmod or listen on %s: %s", path, strerror(e));
        return -e;
    }
    return fd;
}

int control_start(struct migd *d, const char *socket_path, struct control **out, char *err,
                  size_t errsz)
{
    *out = NULL;
    int fd = listen_socket(socket_path, err, errsz);
    if (fd < 0)
        return fd;

    struct control *c = mig_calloc(1, sizeof(*c));
    c->d = d;
    c->path = mig_strdup(socket_path);
    h2o_linklist_init_anchor(&c->conns);
    h2o_linklist_init_anchor(&c->submits);
    h2o_linklist_init_anchor(&c->watches);

    h2o_config_init(&c->config);
    c->config.max_request_entity_size = CONTROL_MAX_BODY;
    c->config.http1.upgrade_to_http2 = 0; /* HTTP/1.1 only, as product.md says */
    c->config.server_name = h2o_iovec_init(H2O_STRLIT("migd/" MIGD_VERSION));
    h2o_hostconf_t *host =
        h2o_config_register_host(&c->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, "/", 0);
    struct route_handler *handler = (void *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->c = c;
    h2o_context_init(&c->ctx, d->loop, &c->config);
    c->accept_ctx.ctx = &c->ctx;
    c->accept_ctx.hosts = c->config.hosts;

    uv_pipe_init(d->loop, &c->listener, 0);
    c->listener.data = c;
    c->listener_open = true;
    int rc = uv_pipe_open(&c->listener, fd);
    bool owned = rc == 0; /* from here uv_close closes fd */
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&c->listener, 64, on_connection);
    if (rc != 0) {
        snprintf(err, errsz, "cannot listen on %s: %s", socket_path, uv_strerror(rc));
        if (!owned)
            close(fd);
        unlink(socket_path);
        /* Freed once the handle is closed, as in a stop. */
        c->stopping = true;
        uv_close((uv_handle_t *)&c->listener, on_listener_closed);
        return rc;
    }
    *out = c;
    return 0;
}

void control_stop(struct control *c, void (*on_closed)(void *arg), void *arg)
{
    c->stopping = true;
    c->on_closed = on_closed;
    c->on_closed_arg = arg;
    /*
     * HTTP/1 only needs the flag (no keep-alive from now on);
     * h2o_context_request_shutdown would also arm HTTP/2's one-second GOAWAY
     * timer, which must not be pending when the context is disposed.
     */
    c->ctx.shutdown_requested = 1;

    /* Requests waiting for the engine get an answer now: the engine goes next. */
    while (!h2o_linklist_is_empty(&c->submits)) {
        struct submit *s = CONTAINER_OF(c->submits.next, struct submit, link);
        h2o_req_t *req = s->req;
        submit_detach(s);
        respond_error(req, 503, "ServiceUnavailable", "migd is shutting down");
    }
    /* Streams end cleanly after what they have queued. */
    while (!h2o_linklist_is_empty(&c->watches)) {
        struct watch *w = CONTAINER_OF(c->watches.next, struct watch, link);
        watch_unregister(w);
        w->final_queued = true;
        watch_flush(w);
    }
    /* h2o notices EOF (idle connections) or a failed write, and closes each one. */
    for (h2o_linklist_t *l = c->conns.next; l != &c->conns; l = l->next) {
        struct conn *conn = CONTAINER_OF(l, struct conn, link);
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&conn->pipe, &fd) == 0)
            shutdown(fd, SHUT_RDWR);
    }
    if (unlink(c->path) != 0 && errno != ENOENT)
        log_warn("control: cannot remove %s: %s", c->path, strerror(errno));
    uv_close((uv_handle_t *)&c->listener, on_listener_closed);
}
