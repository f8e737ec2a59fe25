/*
 * control_admit.c: admission of POST /jobs.  At most SUBMIT_CHECKING_MAX
 * submissions are being checked by the engine at once (each holds an API
 * connection and SSH sessions); up to SUBMIT_WAITING_MAX more wait in order;
 * beyond that a submission is 503 with Retry-After.
 *
 * A submission waits for the engine's asynchronous answer; the client may
 * go away first, so the engine holds a reference to a small shared context
 * (struct submit) that a guard object in the request's pool detaches when h2o
 * disposes of the request.  At stop, every submission waiting or being
 * checked is answered 503 at once, and the server is freed only once the
 * engine has answered every one it holds (control_maybe_finish).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <h2o.h>

#include "control_int.h"
#include "err.h"
#include "request.h"
#include "util.h"

/* POST /jobs being checked by the engine at once, and waiting for a turn. */
#define SUBMIT_CHECKING_MAX 16
#define SUBMIT_WAITING_MAX 64

/*
 * A POST /jobs: waiting for a turn (body held), then checked by the engine
 * until on_submit_done (see the file comment).
 */
struct submit {
    struct control *c;
    h2o_req_t *req;             /* NULL once answered or gone */
    struct mig_request request; /* while waiting (its strings are freed when it leaves) */
    bool waiting;
    int64_t started_ms;
    h2o_linklist_t link; /* in c->waiting, or c->checking while req is set */
};

static void pump_schedule(struct control *c);

/* The client is answered or gone: no answer from here on. */
static void submit_detach(struct submit *s)
{
    s->req = NULL;
    if (h2o_linklist_is_linked(&s->link))
        h2o_linklist_unlink(&s->link);
    if (s->waiting) {
        s->waiting = false;
        s->c->nwaiting--;
        mig_request_clear(&s->request);
    }
}

/* The request's pool is being cleared: the client is gone or was answered. */
static void on_submit_req_disposed(void *p)
{
    struct submit *s = *(struct submit **)p;
    submit_detach(s);
    h2o_mem_release_shared(s);
}

static void on_submit_done(void *arg, int err, const struct mig_refusal *r,
                           const struct mig_job *job, json_t *plan)
{
    struct submit *s = arg;
    struct control *c = s->c;
    h2o_req_t *req = s->req;
    int64_t took = mig_now_ms() - s->started_ms;
    c->nchecking--;
    c->check_ms = (c->check_ms * 7 + (took > 0 ? took : 0)) / 8;
    if (req != NULL) {
        submit_detach(s);
        const char *api;
        if (err == 0 && plan != NULL && (job == NULL || job->dry_run)) {
            control_respond_json(req, 200, json_pack("{s:b, s:O}", "dry_run", 1, "plan", plan));
        } else if (err == 0 && job != NULL) {
            control_respond_json(req, 201, mig_job_to_json(job));
        } else if (err == 0) {
            control_respond_error(req, 500, "InternalError",
                                  "the engine returned neither job nor plan");
        } else if (err == MIG_EREFUSED && (api = control_refusal_unavailable_api(r)) != NULL) {
            /* The rule stays in the message: scripts and operators grep for it. */
            control_respond_error(req, 503, "ServiceUnavailable", "%s is unavailable (%s): %s", api,
                                  r->rule, r->message);
        } else if (err == MIG_EREFUSED) {
            control_respond_error(
                req, 409, r != NULL && r->rule != NULL ? r->rule : "Refused", "%s",
                r != NULL && r->message[0] != '\0' ? r->message : mig_strerror(err));
        } else {
            const char *code;
            int status = control_error_status(err, &code);
            control_respond_error(req, status, code, "%s",
                                  r != NULL && r->message[0] != '\0' ? r->message
                                                                     : mig_strerror(err));
        }
    }
    h2o_mem_release_shared(s);
    pump_schedule(c);
    /* After a stop, the last answer may be what the server waited for (main.c frees the
     * engine right after control_stop, while the listener is still closing). */
    control_maybe_finish(c);
}

/* Hands s (waiting, with a client) to the engine: it holds a reference until on_submit_done. */
static void submit_start(struct control *c, struct submit *s)
{
    struct mig_request request = s->request;
    mig_request_init(&s->request); /* taken over: freed here after the engine copied it */
    if (s->waiting) {
        s->waiting = false;
        c->nwaiting--;
    }
    if (h2o_linklist_is_linked(&s->link))
        h2o_linklist_unlink(&s->link);
    h2o_linklist_insert(&c->checking, &s->link);
    s->started_ms = mig_now_ms();
    c->nchecking++;
    h2o_mem_addref_shared(s);
    int rc = engine_submit(c->d->engine, &request, on_submit_done, s);
    mig_request_clear(&request);
    if (rc != 0) {
        /* The callback will not run: drop its reference and answer here. */
        c->nchecking--;
        h2o_req_t *req = s->req;
        submit_detach(s);
        h2o_mem_release_shared(s);
        const char *code;
        int status = control_error_status(rc, &code);
        control_respond_error(req, status, code, "cannot submit the job: %s", mig_strerror(rc));
    }
}

/* Starts waiting submissions while there is room (runs from h2o's zero timeout). */
static void on_pump(h2o_timeout_entry_t *entry)
{
    struct control *c = CONTAINER_OF(entry, struct control, pump);
    while (!c->stopping && c->nchecking < SUBMIT_CHECKING_MAX &&
           !h2o_linklist_is_empty(&c->waiting))
        submit_start(c, CONTAINER_OF(c->waiting.next, struct submit, link));
}

/* Not from the engine's callback itself: the engine is still finishing the last one. */
static void pump_schedule(struct control *c)
{
    if (!c->stopping && !h2o_linklist_is_empty(&c->waiting) && !h2o_timeout_is_linked(&c->pump))
        h2o_timeout_link(c->ctx.loop, &c->ctx.zero_timeout, &c->pump);
}

/* Seconds until a refused submission may find room: the queue's expected wait, 1..60. */
static int submit_retry_after(struct control *c)
{
    int64_t ms = (c->check_ms > 0 ? c->check_ms : 1000) * (c->nwaiting / SUBMIT_CHECKING_MAX + 1);
    int64_t s = (ms + 999) / 1000;
    return s < 1 ? 1 : s > 60 ? 60 : (int)s;
}

void control_admit_init(struct control *c)
{
    c->pump.cb = on_pump;
    h2o_linklist_init_anchor(&c->checking);
    h2o_linklist_init_anchor(&c->waiting);
}

/* The queue's 503, or a turn now or later (control_int.h). */
void control_admit_submit(struct control *c, h2o_req_t *req, struct mig_request *request)
{
    /* Its checks passed (control_jobs.c) and were cheap; a turn with the engine is not. */
    if (c->nchecking >= SUBMIT_CHECKING_MAX && c->nwaiting >= SUBMIT_WAITING_MAX) {
        mig_request_clear(request);
        char after[16];
        int secs = submit_retry_after(c);
        snprintf(after, sizeof(after), "%d", secs);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, after,
                       strlen(after));
        control_respond_error(
            req, 503, "ServiceUnavailable",
            "too many submissions at once (%d being checked, %d waiting); retry in %d s",
            c->nchecking, c->nwaiting, secs);
        return;
    }

    /* The guard in the request's pool holds the first reference (see the file comment). */
    struct submit *s = h2o_mem_alloc_shared(NULL, sizeof(*s), NULL);
    memset(s, 0, sizeof(*s));
    s->c = c;
    s->req = req;
    s->request = *request;
    mig_request_init(request); /* taken over */
    s->waiting = true;
    c->nwaiting++;
    h2o_linklist_insert(&c->waiting, &s->link);
    struct submit **guard =
        h2o_mem_alloc_shared(&req->pool, sizeof(*guard), on_submit_req_disposed);
    *guard = s;
    if (c->nchecking < SUBMIT_CHECKING_MAX && c->waiting.next == &s->link)
        submit_start(c, s);
    else
        pump_schedule(c);
}

/* Requests waiting for a turn or for the engine get an answer now: the engine goes next. */
void control_admit_stop(struct control *c)
{
    if (h2o_timeout_is_linked(&c->pump))
        h2o_timeout_unlink(&c->pump);
    h2o_linklist_t *lists[] = {&c->waiting, &c->checking};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        while (!h2o_linklist_is_empty(lists[i])) {
            struct submit *s = CONTAINER_OF(lists[i]->next, struct submit, link);
            h2o_req_t *req = s->req;
            submit_detach(s);
            control_respond_error(req, 503, "ServiceUnavailable", "migd is shutting down");
        }
    }
}
