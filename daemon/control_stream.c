/*
 * control_stream.c: the answers sent a piece at a time: a page of GET /jobs,
 * built and sent in slices, one per turn of the loop, so that no request
 * waits behind a whole page; and the GET /jobs/:uuid/watch streams, which
 * keep at most one line queued behind the one being sent (a watcher that
 * does not read gets the latest state, not every update).
 *
 * Lifetimes.  A watch stream is a generator whose stop callback and pool
 * disposal both unregister it from the engine; a page of GET /jobs is a
 * generator in the request's pool too, taken off the slicer's queue by its
 * stop callback or its disposal.  At stop, every stream ends after what it
 * has queued and every page waiting for a slice is answered.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>

#include "control_int.h"
#include "log.h"

/*
 * What a page and a watch stream share: h2o's generator, the request, and
 * the one buffer h2o is sending (it takes one send at a time and reads the
 * buffer until it calls proceed).  Lives in the request's pool.
 */
struct stream {
    h2o_generator_t super;
    struct control *c;
    h2o_req_t *req; /* NULL once the final piece is handed over or the request is gone */
    char *inflight; /* the buffer h2o is sending; freed on proceed or disposal */
};

/* A GET /jobs/:uuid/watch stream. */
struct watch {
    struct stream s;
    void *handle;   /* engine_watch handle; NULL when not (or no longer) registered */
    char *pending;  /* the latest line not yet handed to h2o (one at most) */
    size_t pending_len;
    bool sending;
    bool final_queued;
    h2o_linklist_t link;
};

/*
 * A GET /jobs page, built and sent in slices of JOBS_SLICE jobs, one slice
 * per loop turn (see "GET /jobs" below).
 */
struct jobs_page {
    struct stream s;
    const char *state, *vm_uuid; /* the filter: the request's pool strings, or NULL */
    bool all;
    int64_t next;        /* the offset of the next slice */
    int64_t left;        /* jobs the page may still list */
    json_t *tail;        /* unreadable rows, held for the end of the page; or NULL */
    int64_t unreadable;  /* rows the store cannot read, as the engine counts them */
    int64_t skipped;     /* rows the slices so far came short by */
    bool started;        /* the response has started (its head goes with the first slice) */
    h2o_linklist_t link; /* in c->pages while waiting for its next slice */
};

static void on_slice(uv_idle_t *idle);

/* ---- streams ---- */

/* Makes buf (taken) the buffer in flight, freeing the one h2o has sent. */
static void stream_hand(struct stream *s, char *buf)
{
    free(s->inflight);
    s->inflight = buf;
}

/*
 * The request's pool is cleared: the stream goes with it.  Its stop lets
 * go of all it holds but the buffer in flight, which h2o may still be
 * reading when it gives up; nothing reads it now.
 */
static void on_stream_disposed(void *arg)
{
    struct stream *s = arg;
    s->super.stop(&s->super, s->req);
    stream_hand(s, NULL);
}

/*
 * A zeroed stream of size bytes (a struct that begins with its struct
 * stream) answering req for c, in req's pool.  h2o calls on_proceed once it
 * sent a piece and on_stop when it gives up; on_stop also runs when the
 * pool is cleared.
 */
static void *stream_new(struct control *c, h2o_req_t *req, size_t size,
                        void (*on_proceed)(h2o_generator_t *, h2o_req_t *),
                        void (*on_stop)(h2o_generator_t *, h2o_req_t *))
{
    struct stream *s = h2o_mem_alloc_shared(&req->pool, size, on_stream_disposed);
    memset(s, 0, size);
    s->super.proceed = on_proceed;
    s->super.stop = on_stop;
    s->c = c;
    s->req = req;
    return s;
}

/* Starts s's 200 answer of content type type; its body follows in pieces. */
static void stream_respond(struct stream *s, const char *type)
{
    h2o_req_t *req = s->req;
    req->res.status = 200;
    req->res.reason = control_status_reason(200);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    h2o_start_response(req, &s->super);
}

/* h2o sent the buffer in flight (its proceed on self): frees it.  Returns the stream. */
static struct stream *stream_sent(h2o_generator_t *self)
{
    struct stream *s = CONTAINER_OF(self, struct stream, super);
    stream_hand(s, NULL);
    return s;
}

/* ---- GET /jobs ---- */

/*
 * A page of GET /jobs is up to 1000 jobs: loading, encoding and sending it
 * in one piece takes tens of milliseconds, during which nothing else is
 * answered.  So a page is built in slices of at most JOBS_SLICE jobs (each
 * read with the engine's limit and offset; fewer when jobs cost more, see
 * SLICE_BUDGET_NS), and each slice is handed to h2o as one chunk of a
 * chunked answer.  One slice is built per turn of the loop,
 * for the first page waiting (a page waits again once h2o has sent its
 * previous slice), so a request that arrives meanwhile waits for at most
 * one slice.  The body is the bytes a page in one piece would have been:
 * "[", the jobs compact and comma-separated, "]\n".
 *
 * A page is a snapshot of each slice, not of the whole page: a job created
 * meanwhile may end it, and with a filter other than all=true a job that
 * leaves the filter while the page is built may shift the next slice by
 * one, as it may between two pages.  The unreadable rows the engine lists
 * with the first slice at offset 0 are held and sent at the end of the page,
 * where a page in one piece has them; as in one piece, the page covers
 * `limit` rows of the store, of which those it cannot read are left out.
 * A database error before the first slice is a 500; after it, the answer is
 * cut (no final chunk), which every HTTP client reports as an error.
 */
#define JOBS_SLICE 100
#define JOBS_SLICE_MIN 10
/*
 * What one slice may take of a loop turn.  A request needs two or three
 * turns (accept, read, answer), each of which may come after a slice: at
 * 2 ms a /ping waits well under 10 ms.  A slice of 100 jobs takes about
 * 7 ms on a quiet lab CN (70 us a job: load, encode, dump), more when the
 * CPU is shared, so the size follows the measured cost of a job, from
 * JOBS_SLICE_MIN to JOBS_SLICE.
 */
#define SLICE_BUDGET_NS 2000000

/* A growing buffer of bytes, for jansson's json_dump_callback. */
struct outbuf {
    char *p;
    size_t len, cap;
};

static int outbuf_add(const char *bytes, size_t n, void *arg)
{
    struct outbuf *b = arg;
    if (b->len + n > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        b->p = mig_realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, bytes, n);
    b->len += n;
    return 0;
}

/* Appends the elements of jobs [from, to) to b, each after "[" (the page's first) or ",". */
static void page_append(struct jobs_page *p, struct outbuf *b, json_t *jobs, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        outbuf_add(p->started || b->len != 0 ? "," : "[", 1, b);
        json_dump_callback(json_array_get(jobs, i), outbuf_add, b, JSON_COMPACT | JSON_ENCODE_ANY);
    }
}

/*
 * True for a row the engine lists as unreadable ({uuid, vm_uuid, state,
 * error: UnreadableRecord}); a job read from its record always has a phase.
 */
static bool unreadable_row(json_t *row)
{
    const char *code = json_string_value(json_object_get(json_object_get(row, "error"), "code"));
    return json_object_get(row, "phase") == NULL && code != NULL &&
           strcmp(code, "UnreadableRecord") == 0;
}

/* Jobs in the next slice: what fits SLICE_BUDGET_NS at the measured cost of a job. */
static int64_t slice_size(const struct control *c)
{
    if (c->job_ns == 0)
        return JOBS_SLICE;
    uint64_t n = SLICE_BUDGET_NS / c->job_ns;
    return n < JOBS_SLICE_MIN ? JOBS_SLICE_MIN : n > JOBS_SLICE ? JOBS_SLICE : (int64_t)n;
}

/* Waits for a turn of the slicer. */
static void page_queue(struct jobs_page *p)
{
    struct control *c = p->s.c;
    h2o_linklist_insert(&c->pages, &p->link);
    if (!uv_is_active((uv_handle_t *)&c->slicer))
        uv_idle_start(&c->slicer, on_slice);
}

/* Ends a page that cannot go on: a 503 or 500 before its head, a cut answer after it. */
static void page_fail(struct jobs_page *p, int status, const char *code, const char *msg)
{
    h2o_req_t *req = p->s.req;
    p->s.req = NULL;
    if (!p->started) {
        control_respond_error(req, status, code, "%s", msg);
        return;
    }
    log_warn("control: GET /jobs: %s after %lld jobs; the answer is cut", msg, (long long)p->next);
    h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
}

/* Builds the page's next slice and hands it to h2o (the last one as final). */
static void page_send_slice(struct jobs_page *p)
{
    struct control *c = p->s.c;
    uint64_t t0 = uv_hrtime();
    int64_t n = slice_size(c);
    if (n > p->left)
        n = p->left;
    json_t *jobs = engine_jobs_json(c->d->engine, p->state, p->vm_uuid, p->all, n, p->next);
    if (jobs == NULL) {
        page_fail(p, 500, "InternalError", "cannot list jobs");
        return;
    }
    size_t got = json_array_size(jobs), take = got;
    if (p->next == 0) {
        /* The unreadable rows the engine appends at offset 0 go at the end of the page. */
        while (take > 0 && unreadable_row(json_array_get(jobs, take - 1)))
            take--;
        if (take < got) {
            p->tail = json_array();
            for (size_t i = take; i < got; i++)
                json_array_append(p->tail, json_array_get(jobs, i));
        }
    }
    /*
     * The slice covers rows [next, next + n) of the store, of which the
     * unreadable ones are left out: a short slice is the end only when more
     * rows are missing than the store has unreadable ones.
     */
    p->next += n;
    p->left -= n;
    p->skipped += n - (int64_t)take;
    bool last = p->left == 0 || ((int64_t)take < n && p->skipped > p->unreadable);
    struct outbuf b = {NULL, 0, 0};
    page_append(p, &b, jobs, 0, take);
    json_decref(jobs);
    if (last) {
        if (p->tail != NULL)
            page_append(p, &b, p->tail, 0, json_array_size(p->tail));
        outbuf_add(p->started || b.len != 0 ? "]\n" : "[]\n", p->started || b.len != 0 ? 2 : 3, &b);
    }
    h2o_req_t *req = p->s.req;
    if (!p->started) {
        p->started = true;
        stream_respond(&p->s, "application/json");
    }
    stream_hand(&p->s, b.p);
    if (last)
        p->s.req = NULL; /* h2o calls neither proceed nor stop after the final send */
    h2o_iovec_t buf = h2o_iovec_init(b.p, b.len);
    h2o_send(req, &buf, 1, last ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
    if (n >= JOBS_SLICE_MIN) {
        /* Short slices (a page's end) say little about the cost of a job. */
        uint64_t per_job = (uv_hrtime() - t0) / (uint64_t)n;
        c->job_ns = c->job_ns == 0 ? per_job : (c->job_ns * 3 + per_job) / 4;
    }
}

/* One slice per loop turn (see above); the idle handle keeps the loop from blocking meanwhile. */
static void on_slice(uv_idle_t *idle)
{
    struct control *c = idle->data;
    if (!h2o_linklist_is_empty(&c->pages)) {
        struct jobs_page *p = CONTAINER_OF(c->pages.next, struct jobs_page, link);
        h2o_linklist_unlink(&p->link);
        page_send_slice(p);
    }
    if (h2o_linklist_is_empty(&c->pages))
        uv_idle_stop(idle);
}

/* h2o sent the previous slice: the page waits for its next turn. */
static void on_page_proceed(h2o_generator_t *self, h2o_req_t *req)
{
    (void)req;
    struct jobs_page *p = CONTAINER_OF(stream_sent(self), struct jobs_page, s);
    if (p->s.req == NULL)
        return;
    if (p->s.c->stopping)
        page_fail(p, 503, "ServiceUnavailable", "migd is shutting down");
    else
        page_queue(p);
}

/* h2o gives up the answer (the client went away), or the pool is cleared: no more slices. */
static void on_page_stop(h2o_generator_t *self, h2o_req_t *req)
{
    (void)req;
    struct jobs_page *p = CONTAINER_OF(self, struct jobs_page, s.super);
    p->s.req = NULL;
    if (h2o_linklist_is_linked(&p->link))
        h2o_linklist_unlink(&p->link);
    json_decref(p->tail);
    p->tail = NULL;
}

/* A GET /jobs page, from the next turn on (control_int.h). */
void control_page_start(struct control *c, h2o_req_t *req, const char *state, const char *vm_uuid,
                        bool all, int64_t limit, int64_t offset)
{
    struct jobs_page *p =
        stream_new(c, req, sizeof(*p), on_page_proceed, on_page_stop);
    p->state = state;
    p->vm_uuid = vm_uuid;
    p->all = all;
    p->next = offset;
    p->left = limit;
    json_t *stats = engine_stats_json(c->d->engine);
    p->unreadable = json_integer_value(json_object_get(stats, "unreadable"));
    json_decref(stats);
    page_queue(p);
}

/* ---- GET /jobs/:uuid/watch ---- */

static void watch_unregister(struct watch *w)
{
    if (w->handle != NULL) {
        engine_unwatch(w->s.c->d->engine, w->handle);
        w->handle = NULL;
    }
    if (h2o_linklist_is_linked(&w->link))
        h2o_linklist_unlink(&w->link);
}

/* The stream's request is gone, or has its final send: no more events. */
static void watch_drop(struct watch *w)
{
    w->s.req = NULL;
    watch_unregister(w);
}

/* Queues the job's JSON as the one pending line, replacing an older one not yet sent. */
static void watch_set_pending(struct watch *w, json_t *job)
{
    char *text = json_dumps(job, JSON_COMPACT);
    if (text == NULL)
        return;
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    if (line == NULL) {
        free(text);
        return;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    free(w->pending);
    w->pending = line;
    w->pending_len = n + 1;
}

/* Hands the pending line to h2o unless a send is in flight (h2o allows one). */
static void watch_flush(struct watch *w)
{
    if (w->s.req == NULL || w->sending || (w->pending_len == 0 && !w->final_queued))
        return;
    h2o_req_t *req = w->s.req;
    h2o_iovec_t buf = h2o_iovec_init(w->pending, w->pending_len);
    stream_hand(&w->s, w->pending);
    w->pending = NULL;
    w->pending_len = 0;
    w->sending = true;
    h2o_send_state_t state = H2O_SEND_STATE_IN_PROGRESS;
    if (w->final_queued) {
        /* h2o stops calling proceed/stop after the final send; inflight is freed on disposal. */
        state = H2O_SEND_STATE_FINAL;
        watch_drop(w);
    }
    h2o_send(req, &buf, buf.len != 0 ? 1 : 0, state);
}

static void on_watch_event(void *arg, json_t *job, bool final)
{
    struct watch *w = arg;
    if (w->s.req == NULL || w->final_queued)
        return;
    watch_set_pending(w, job);
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
    struct watch *w = CONTAINER_OF(stream_sent(self), struct watch, s);
    w->sending = false;
    watch_flush(w);
}

/* h2o gives up the stream (the client went away), or the pool is cleared: no more sends. */
static void on_watch_stop(h2o_generator_t *self, h2o_req_t *req)
{
    (void)req;
    struct watch *w = CONTAINER_OF(self, struct watch, s.super);
    watch_drop(w);
    free(w->pending);
    w->pending = NULL;
}

/* A watch stream, its first line job (control_int.h). */
void control_watch_start(struct control *c, h2o_req_t *req, const char *uuid, json_t *job)
{
    struct watch *w =
        stream_new(c, req, sizeof(*w), on_watch_proceed, on_watch_stop);
    stream_respond(&w->s, "application/x-ndjson");

    /*
     * The first line is the job as it is now.  A job that is over, or switched
     * (nothing moves until rollback or cleanup), ends the stream there.
     */
    watch_set_pending(w, job);
    if (engine_job_at_rest(c->d->engine, uuid)) {
        /* Final, switched, or waiting for finish: the watch ends with this line. */
        w->final_queued = true;
    } else {
        h2o_linklist_insert(&c->watches, &w->link);
        w->handle = engine_watch(c->d->engine, uuid, on_watch_event, w);
        if (w->handle == NULL)
            w->final_queued = true;
    }
    watch_flush(w);
}

/* ---- both ---- */

void control_stream_init(struct control *c)
{
    h2o_linklist_init_anchor(&c->watches);
    h2o_linklist_init_anchor(&c->pages);
}

/* Streams end cleanly after what they have queued; pages waiting for a slice end now. */
void control_stream_stop(struct control *c)
{
    while (!h2o_linklist_is_empty(&c->watches)) {
        struct watch *w = CONTAINER_OF(c->watches.next, struct watch, link);
        watch_unregister(w);
        w->final_queued = true;
        watch_flush(w);
    }
    /* The engine goes next; pages being sent end on their proceed. */
    while (!h2o_linklist_is_empty(&c->pages)) {
        struct jobs_page *p = CONTAINER_OF(c->pages.next, struct jobs_page, link);
        h2o_linklist_unlink(&p->link);
        page_fail(p, 503, "ServiceUnavailable", "migd is shutting down");
    }
}
