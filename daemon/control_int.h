/*
 * control_int.h: the private header of the control API (daemon.h has its
 * public face, control_start and control_stop), prototypes grouped by the
 * file that defines them.  control.c owns h2o, the socket and the
 * connections; control_routes.c maps a request to its handler;
 * control_http.c reads requests and writes answers; control_admit.c queues
 * POST /jobs for the engine; control_stream.c sends GET /jobs pages and watch
 * streams a piece at a time; control_jobs.c, control_evac.c and
 * control_status.c are the handlers.
 */
#ifndef MIGD_CONTROL_INT_H
#define MIGD_CONTROL_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <h2o.h>
#include <jansson.h>

#include "daemon.h"

#define CONTROL_MAX_BODY (64 * 1024)
/* What a path or message may echo of the request, in bytes. */
#define ECHO_MAX 200

#define CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct control {
    struct migd *d;
    char *path;
    uv_pipe_t listener;
    bool listener_open; /* uv_pipe_init done: must be closed */
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_linklist_t conns; /* struct conn (control.c) */
    int nconns, max_conns;
    h2o_linklist_t checking;  /* struct submit (control_admit.c), with the engine and a client */
    h2o_linklist_t waiting;   /* struct submit, queued for a turn */
    int nchecking, nwaiting;  /* nchecking counts the engine's, client or not */
    int64_t check_ms;         /* moving average of a check's duration */
    uint64_t job_ns;          /* moving average of what a job costs a slice of GET /jobs */
    h2o_timeout_entry_t pump; /* starts waiting submissions on the next turn */
    h2o_linklist_t watches;   /* struct watch (control_stream.c), streams still open */
    h2o_linklist_t pages;     /* struct jobs_page (control_stream.c), waiting for their next slice */
    uv_idle_t slicer;         /* builds one slice of the first waiting page per loop turn */
    bool slicer_open;         /* uv_idle_init done: must be closed */
    bool stopping;
    bool finished;
    void (*on_closed)(void *arg);
    void *on_closed_arg;
};

/* control.c */

/*
 * Once stopping, every handle closed and every submission answered by the
 * engine (it holds references to c): disposes of h2o and frees the server.
 * Call after anything that may have been the last thing it waited for.
 */
void control_maybe_finish(struct control *c);

/* control_routes.c */

/* Answers req (its path and query checked by control_check_request_text) by the route table. */
void control_route(struct control *c, h2o_req_t *req);

/* control_http.c */

/*
 * Writes s[0..len) into out (outsz bytes, NUL-terminated) as it may appear
 * in a message or a log line: printable ASCII and valid UTF-8 as they are,
 * any other byte as %XX; cut after ECHO_MAX bytes with "...".
 */
void control_echo(const char *s, size_t len, char *out, size_t outsz);
/* The reason phrase of an HTTP status migd answers with. */
const char *control_status_reason(int status);
/*
 * Logs a refused request at info (a failure of migd's own at warn): one
 * line with the method, the path as sent, the status, the code and the
 * message; job_uuid (may be NULL) files it in that job's log too.
 */
void control_log_refusal(h2o_iovec_t method, h2o_iovec_t path, const char *job_uuid, int status,
                         const char *code, const char *msg);
/* Sends body (a string of len bytes, copied) as the whole response. */
void control_respond_text(h2o_req_t *req, int status, const char *type, const char *body,
                          size_t len);
/* Sends body (stolen) as JSON followed by a newline. */
void control_respond_json(h2o_req_t *req, int status, json_t *body);
/*
 * Answers {code, message} with status and logs the refusal
 * (control_log_refusal); job_uuid (may be NULL) is the job the refusal is
 * about.  The message is cut at a character and any byte that is not UTF-8
 * becomes '?', so the answer can always be encoded.
 */
void control_respond_error_job(h2o_req_t *req, const char *job_uuid, int status, const char *code,
                               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define control_respond_error(req, status, code, ...)                                              \
    control_respond_error_job(req, NULL, status, code, __VA_ARGS__)
/*
 * Checks what every handler may echo: the path (as h2o decoded it) and the
 * query (decoded) must be UTF-8 without NUL bytes.  Returns 0, or -EINVAL
 * after answering 400 InvalidArgument.
 */
int control_check_request_text(h2o_req_t *req);

struct query_param {
    const char *name;
    const char *value; /* OUT: NULL when absent */
};

/*
 * Parses the query string into params (a NULL-name terminated table of the
 * names allowed).  Returns 0, or -EINVAL after answering 400 for an unknown
 * name or a malformed value.  control_check_request_text has passed.
 */
int control_parse_query(h2o_req_t *req, struct query_param *params);
/* HTTP status and code (OUT: *code, static) for an engine error that is not a refusal. */
int control_error_status(int err, const char **code);
/*
 * The API a refusal is about when the API could not be reached or failed
 * (a transport failure or a 5xx); NULL when the refusal is the API's
 * considered answer (a 4xx, a malformed object) or about something else.
 */
const char *control_refusal_unavailable_api(const struct mig_refusal *r);

/* control_admit.c */

/* Readies c's submission queue (its lists and its pump); once, in control_start. */
void control_admit_init(struct control *c);
/*
 * Admits a POST /jobs whose request (taken over: cleared here, whatever
 * happens) passed its checks: hands it to the engine now, queues it for a
 * turn, or answers 503 with Retry-After when the queue is full.  The answer
 * comes when the engine's does.
 */
void control_admit_submit(struct control *c, h2o_req_t *req, struct mig_request *request);
/* At stop: every submission waiting or being checked is answered 503 now. */
void control_admit_stop(struct control *c);

/* control_stream.c */

/* Readies c's lists of streams and pages; once, in control_start. */
void control_stream_init(struct control *c);
/*
 * Starts a GET /jobs page (its arguments checked; state and vm_uuid are
 * strings of req's pool, or NULL): built and sent from the next loop turn on.
 */
void control_page_start(struct control *c, h2o_req_t *req, const char *state,
                        const char *vm_uuid, bool all, int64_t limit, int64_t offset);
/* Starts a GET /jobs/:uuid/watch stream whose first line is job (borrowed). */
void control_watch_start(struct control *c, h2o_req_t *req, const char *uuid, json_t *job);
/*
 * At stop: every watch stream ends after what it has queued, every page
 * waiting for a slice is answered 503 (or cut); pages being sent end on
 * their proceed.
 */
void control_stream_stop(struct control *c);

/*
 * The handlers (control_jobs.c, control_evac.c, control_status.c), as the
 * route table calls them: id is the path's parameter (the job or the
 * evacuation it names), or NULL for a route without one.  Each answers req,
 * now or later.
 */
typedef void control_handler_fn(struct control *c, h2o_req_t *req, const char *id);

/* control_jobs.c */
control_handler_fn control_jobs_list, control_jobs_submit, control_job_get, control_job_action,
    control_job_watch, control_job_log, control_job_actions;

/* control_evac.c */
control_handler_fn control_evacuations_list, control_evacuation_get, control_evacuate,
    control_evacuation_pause, control_evacuation_resume, control_evacuation_unreserve,
    control_evacuation_return,
    control_estimate, control_doctor, control_doctor_fix;

/* control_status.c */
control_handler_fn control_ping, control_metrics;

#endif
