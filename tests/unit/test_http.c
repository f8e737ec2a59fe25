/*
 * test_http.c: the libcurl-on-libuv HTTP client against a real HTTP/1.1
 * server that runs on the same loop inside this process (TCP on 127.0.0.1
 * or a Unix socket) and answers each request from a script: a status and a
 * body, after an optional delay, or by closing the connection, or never.
 * Every test runs the loop until nothing is left and checks it closes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <uv.h>

#include "err.h"
#include "http.h"
#include "log.h"
#include "unit.h"
#include "util.h"

/* ---- the scripted server ---- */

enum step_action { ANSWER, CLOSE, HANG };

struct step {
    enum step_action action;
    int status;
    const char *body; /* NULL: echo {"method", "path", "n"} as JSON */
    int delay_ms;
};

struct srv;

struct srv_conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_timer_t delay;
    struct srv *srv;
    struct srv_conn *prev, *next;
    char *buf;
    size_t len, cap;
    const struct step *delayed; /* answer waiting for the delay timer */
    char delayed_body[512];
    int open_handles;
    bool closing;
};

struct srv {
    uv_loop_t *loop;
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } listener;
    bool is_unix;
    int port;
    char path[108];
    const struct step *steps;
    int nsteps;
    const char *hang_path; /* requests for this path are never answered */
    size_t fill;           /* nonzero: every body is this many 'a' bytes instead */
    bool no_keepalive;     /* answer "Connection: close": one request per connection */
    int accepted;
    int requests;
    struct srv_conn *conns;
    char last_method[16];
    char last_path[256];
    char last_headers[2048]; /* lowercased */
    char last_body[4096];
    size_t last_body_len;
};

static void on_srv_handle_closed(uv_handle_t *handle)
{
    struct srv_conn *c = handle->data;
    if (--c->open_handles == 0) {
        free(c->buf);
        free(c);
    }
}

static void conn_close(struct srv_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    struct srv *s = c->srv;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    uv_close(&c->h.handle, on_srv_handle_closed);
    uv_close((uv_handle_t *)&c->delay, on_srv_handle_closed);
}

struct srv_write {
    uv_write_t req;
    char *data;
};

static void on_srv_written(uv_write_t *req, int status)
{
    struct srv_write *w = req->data;
    (void)status;
    free(w->data);
    free(w);
}

static void conn_answer(struct srv_conn *c, const struct step *st, const char *body)
{
    struct srv_write *w = mig_calloc(1, sizeof(*w));
    size_t fill = c->srv->fill;
    size_t bodylen = fill > 0 ? fill : strlen(body);
    char *head =
        mig_asprintf("HTTP/1.1 %d Scripted\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s\r\n",
                     st->status, bodylen, c->srv->no_keepalive ? "Connection: close\r\n" : "");
    size_t headlen = strlen(head);
    w->data = mig_malloc(headlen + bodylen);
    memcpy(w->data, head, headlen);
    if (fill > 0)
        memset(w->data + headlen, 'a', bodylen);
    else
        memcpy(w->data + headlen, body, bodylen);
    free(head);
    w->req.data = w;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)(headlen + bodylen));
    if (uv_write(&w->req, &c->h.stream, &b, 1, on_srv_written) != 0) {
        free(w->data);
        free(w);
        conn_close(c);
    }
}

static void on_srv_delay(uv_timer_t *t)
{
    struct srv_conn *c = t->data;
    const struct step *st = c->delayed;
    c->delayed = NULL;
    conn_answer(c, st, c->delayed_body);
}

/* Handles one complete request; returns false when the connection was closed. */
static bool conn_request(struct srv_conn *c, const char *head, size_t headlen, const char *body,
                         size_t bodylen)
{
    struct srv *s = c->srv;
    int n = s->requests++;
    const struct step *st = &s->steps[n < s->nsteps ? n : s->nsteps - 1];

    sscanf(head, "%15s %255s", s->last_method, s->last_path);
    size_t hl = headlen < sizeof(s->last_headers) - 1 ? headlen : sizeof(s->last_headers) - 1;
    for (size_t i = 0; i < hl; i++)
        s->last_headers[i] = (char)tolower((unsigned char)head[i]);
    s->last_headers[hl] = '\0';
    s->last_body_len = bodylen < sizeof(s->last_body) - 1 ? bodylen : sizeof(s->last_body) - 1;
    memcpy(s->last_body, body, s->last_body_len);
    s->last_body[s->last_body_len] = '\0';

    if (st->action == CLOSE) {
        conn_close(c);
        return false;
    }
    if (st->action == HANG || (s->hang_path != NULL && strcmp(s->last_path, s->hang_path) == 0))
        return true;
    if (st->body != NULL)
        snprintf(c->delayed_body, sizeof(c->delayed_body), "%s", st->body);
    else
        snprintf(c->delayed_body, sizeof(c->delayed_body),
                 "{\"method\":\"%s\",\"path\":\"%s\",\"n\":%d}", s->last_method, s->last_path, n);
    if (st->delay_ms > 0) {
        c->delayed = st;
        uv_timer_start(&c->delay, on_srv_delay, (uint64_t)st->delay_ms, 0);
    } else {
        conn_answer(c, st, c->delayed_body);
    }
    return true;
}

static void on_srv_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct srv_conn *c = handle->data;
    (void)suggested;
    if (c->cap - c->len < 4096) {
        c->cap = c->cap ? c->cap * 2 : 8192;
        c->buf = realloc(c->buf, c->cap);
        assert_non_null(c->buf);
    }
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

/* The end of the header block in buf[0..len), or NULL. */
static char *find_head_end(char *buf, size_t len)
{
    for (size_t i = 0; i + 4 <= len; i++) {
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
            return buf + i;
    }
    return NULL;
}

static void on_srv_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct srv_conn *c = stream->data;
    (void)buf;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)nread;
    for (;;) {
        char *end = find_head_end(c->buf, c->len);
        if (end == NULL)
            return;
        size_t headlen = (size_t)(end - c->buf) + 4;
        size_t bodylen = 0;
        for (char *p = c->buf; p < end; p++) {
            if (strncasecmp(p, "\r\ncontent-length:", 17) == 0) {
                bodylen = strtoul(p + 17, NULL, 10);
                break;
            }
        }
        if (c->len < headlen + bodylen)
            return;
        char saved = c->buf[headlen - 1];
        c->buf[headlen - 1] = '\0';
        bool open = conn_request(c, c->buf, headlen - 1, c->buf + headlen, bodylen);
        c->buf[headlen - 1] = saved;
        if (!open)
            return;
        memmove(c->buf, c->buf + headlen + bodylen, c->len - headlen - bodylen);
        c->len -= headlen + bodylen;
    }
}

static void on_srv_connection(uv_stream_t *listener, int status)
{
    struct srv *s = listener->data;
    assert_int_equal(status, 0);
    struct srv_conn *c = mig_calloc(1, sizeof(*c));
    c->srv = s;
    if (s->is_unix)
        uv_pipe_init(s->loop, &c->h.pipe, 0);
    else
        uv_tcp_init(s->loop, &c->h.tcp);
    uv_timer_init(s->loop, &c->delay);
    c->h.handle.data = c;
    c->delay.data = c;
    c->open_handles = 2;
    c->next = s->conns;
    if (c->next != NULL)
        c->next->prev = c;
    s->conns = c;
    assert_int_equal(uv_accept(listener, &c->h.stream), 0);
    s->accepted++;
    assert_int_equal(uv_read_start(&c->h.stream, on_srv_alloc, on_srv_read), 0);
}

static void srv_start_common(struct srv *s, uv_loop_t *loop, const struct step *steps, int n)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->steps = steps;
    s->nsteps = n;
}

/* Starts a server on 127.0.0.1 on an ephemeral port. */
static void srv_start(struct srv *s, uv_loop_t *loop, const struct step *steps, int n)
{
    srv_start_common(s, loop, steps, n);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_init(loop, &s->listener.tcp), 0);
    s->listener.handle.data = s;
    assert_int_equal(uv_tcp_bind(&s->listener.tcp, (struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen(&s->listener.stream, 128, on_srv_connection), 0);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    assert_int_equal(uv_tcp_getsockname(&s->listener.tcp, (struct sockaddr *)&ss, &len), 0);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Starts a server on a fresh Unix socket path. */
static void srv_start_unix(struct srv *s, uv_loop_t *loop, const struct step *steps, int n)
{
    srv_start_common(s, loop, steps, n);
    s->is_unix = true;
    snprintf(s->path, sizeof(s->path), "/tmp/test_http.%d.sock", (int)getpid());
    unlink(s->path);
    assert_int_equal(uv_pipe_init(loop, &s->listener.pipe, 0), 0);
    s->listener.handle.data = s;
    assert_int_equal(uv_pipe_bind(&s->listener.pipe, s->path), 0);
    assert_int_equal(uv_listen(&s->listener.stream, 128, on_srv_connection), 0);
}

/* Closes the listener and every connection; the loop finishes the closes. */
static void srv_stop(struct srv *s)
{
    if (uv_is_closing(&s->listener.handle))
        return;
    uv_close(&s->listener.handle, NULL);
    while (s->conns != NULL)
        conn_close(s->conns);
    if (s->is_unix)
        unlink(s->path);
}

static char *srv_url(const struct srv *s, const char *path)
{
    return mig_asprintf("http://127.0.0.1:%d%s", s->port, path);
}

/* ---- the client side ---- */

struct result {
    bool done;
    int calls;
    int err;
    long status;
    int attempts;
    json_t *json; /* kept with json_incref */
    char *body;
    size_t body_len;
    char detail[256];
    uint64_t done_ms;
};

/* One test: the loop, the client, the server, and what to do when all answered. */
struct ctx {
    uv_loop_t loop;
    struct mig_http *http;
    struct srv srv;
    int expected;
    int completed;
    int closed;
    uint64_t start_ms;
};

struct call {
    struct ctx *ctx;
    struct result r;
};

static void on_http_closed(void *arg)
{
    struct ctx *ctx = arg;
    ctx->closed++;
}

static void finish_all(struct ctx *ctx)
{
    mig_http_close(ctx->http, on_http_closed, ctx);
    srv_stop(&ctx->srv);
}

static void on_response(void *arg, const struct mig_http_resp *resp)
{
    struct call *c = arg;
    c->r.calls++;
    c->r.done = true;
    c->r.err = resp->err_code;
    c->r.status = resp->status;
    c->r.attempts = resp->attempts;
    c->r.json = resp->json != NULL ? json_incref(resp->json) : NULL;
    assert_non_null(resp->body);
    assert_int_equal(resp->body[resp->body_len], '\0');
    c->r.body = mig_malloc(resp->body_len + 1);
    memcpy(c->r.body, resp->body, resp->body_len + 1);
    c->r.body_len = resp->body_len;
    snprintf(c->r.detail, sizeof(c->r.detail), "%s", resp->detail);
    c->r.done_ms = uv_now(&c->ctx->loop);
    if (++c->ctx->completed == c->ctx->expected)
        finish_all(c->ctx);
}

static void call_free(struct call *c)
{
    json_decref(c->r.json);
    free(c->r.body);
}

static void ctx_init(struct ctx *ctx, int expected)
{
    memset(ctx, 0, sizeof(*ctx));
    assert_int_equal(uv_loop_init(&ctx->loop), 0);
    assert_int_equal(mig_http_new(&ctx->loop, &ctx->http), 0);
    ctx->expected = expected;
    ctx->start_ms = uv_now(&ctx->loop);
}

/* Runs the loop until everything is closed; checks nothing was left open. */
static void ctx_run(struct ctx *ctx)
{
    uv_run(&ctx->loop, UV_RUN_DEFAULT);
    assert_int_equal(ctx->completed, ctx->expected);
    assert_int_equal(ctx->closed, 1);
    assert_int_equal(uv_loop_close(&ctx->loop), 0);
}

static void start(struct ctx *ctx, struct call *c, const char *method, const char *url,
                  json_t *body, long timeout_ms, long total_ms, int retries)
{
    memset(c, 0, sizeof(*c));
    c->ctx = ctx;
    struct mig_http_req req = {
        .method = method,
        .url = url,
        .body = body,
        .timeout_ms = timeout_ms,
        .total_ms = total_ms,
        .retries = retries,
    };
    assert_int_equal(mig_http_request(ctx->http, &req, on_response, c), 0);
    assert_false(c->r.done); /* never before the call returns */
}

/*
 * Most tests make one call against a fresh server: one_start sets up the loop,
 * the client, the scripted server and the URL of path on it (a test may change
 * the server or the URL before one_run); one_run makes the call, releases
 * body (the request must hold its own copy) and runs the loop to the end;
 * one_free frees what the call and the URL hold.
 */
struct one {
    struct ctx ctx;
    struct call c;
    char *url;
};

static void one_start(struct one *t, const struct step *steps, int nsteps, const char *path)
{
    ctx_init(&t->ctx, 1);
    srv_start(&t->ctx.srv, &t->ctx.loop, steps, nsteps);
    t->url = srv_url(&t->ctx.srv, path);
}

static void one_run(struct one *t, const char *method, json_t *body, long timeout_ms, long total_ms,
                    int retries)
{
    start(&t->ctx, &t->c, method, t->url, body, timeout_ms, total_ms, retries);
    json_decref(body); /* the request holds its own copy */
    ctx_run(&t->ctx);
}

static void one_free(struct one *t)
{
    call_free(&t->c);
    free(t->url);
}

/* one_start then one_run: the one call of a test that changes nothing in between. */
static void exchange(struct one *t, const struct step *steps, int nsteps, const char *path,
                     const char *method, json_t *body, long timeout_ms, long total_ms,
                     int retries)
{
    one_start(t, steps, nsteps, path);
    one_run(t, method, body, timeout_ms, total_ms, retries);
}

/* The tests of one call get their struct one from here (zeroed) ... */
static int one_setup(void **state)
{
    *state = mig_calloc(1, sizeof(struct one));
    return 0;
}

/* ... and it is freed here, whether the test passed or not. */
static int one_teardown(void **state)
{
    one_free(*state);
    free(*state);
    return 0;
}

/* Fails the test unless the call ended with err and HTTP status (-1: either) after attempts
 * attempts (-1: any number). */
static void expect_answer(const struct one *t, int err, int status, int attempts)
{
    assert_int_equal(t->c.r.err, err);
    if (status >= 0)
        assert_int_equal(t->c.r.status, status);
    if (attempts >= 0)
        assert_int_equal(t->c.r.attempts, attempts);
}

/* Fails the test unless the call was answered status with the body text, which is no JSON. */
static void expect_text_answer(const struct one *t, int status, const char *text)
{
    expect_answer(t, 0, status, -1);
    assert_null(t->c.r.json);
    assert_int_equal(t->c.r.body_len, strlen(text));
    assert_string_equal(t->c.r.body, text);
}

/* ---- tests ---- */

static void test_get_json(void **state)
{
    static const struct step steps[] = {{ANSWER, 200, "{\"uuid\":\"x\",\"ram\":1024}", 0}};
    struct one *t = *state;
    exchange(t, steps, 1, "/vms/x", "GET", NULL, 0, 0, -1);

    assert_int_equal(t->c.r.calls, 1);
    expect_answer(t, 0, 200, 1);
    assert_non_null(t->c.r.json);
    assert_string_equal(json_string_value(json_object_get(t->c.r.json, "uuid")), "x");
    assert_int_equal(json_integer_value(json_object_get(t->c.r.json, "ram")), 1024);
    assert_string_equal(t->ctx.srv.last_method, "GET");
    assert_string_equal(t->ctx.srv.last_path, "/vms/x");
    assert_non_null(strstr(t->ctx.srv.last_headers, "accept: application/json"));
}

static void test_put_body_exact(void **state)
{
    static const struct step steps[] = {{ANSWER, 200, "{\"ok\":true}", 0}};
    struct one *t = *state;
    exchange(t, steps, 1, "/nics/90b8d0575370", "PUT",
             json_pack("{s:s, s:b, s:i}", "cn_uuid", "564d-abc", "reserved", 1, "n", 7), 0, 0, -1);

    expect_answer(t, 0, 200, -1);
    assert_string_equal(t->ctx.srv.last_method, "PUT");
    assert_string_equal(t->ctx.srv.last_path, "/nics/90b8d0575370");
    assert_string_equal(t->ctx.srv.last_body,
                        "{\"cn_uuid\":\"564d-abc\",\"reserved\":true,\"n\":7}");
    assert_non_null(strstr(t->ctx.srv.last_headers, "content-type: application/json"));
    assert_null(strstr(t->ctx.srv.last_headers, "expect:"));
}

static void test_503_twice_then_200(void **state)
{
    static const struct step steps[] = {
        {ANSWER, 503, "{\"code\":\"ServiceUnavailable\"}", 0},
        {ANSWER, 503, "{\"code\":\"ServiceUnavailable\"}", 0},
        {ANSWER, 200, "{\"state\":\"running\"}", 0},
    };
    struct one *t = *state;
    exchange(t, steps, 3, "/vms/y", "GET", NULL, 0, 0, -1);

    expect_answer(t, 0, 200, 3);
    assert_int_equal(t->ctx.srv.requests, 3);
    assert_string_equal(json_string_value(json_object_get(t->c.r.json, "state")), "running");
    /* Two backoffs: at least 250 + 500 ms. */
    assert_true(t->c.r.done_ms - t->ctx.start_ms >= 750);
}

static void test_503_exhausted_is_an_answer(void **state)
{
    static const struct step steps[] = {{ANSWER, 503, "{\"code\":\"ServiceUnavailable\"}", 0}};
    struct one *t = *state;
    exchange(t, steps, 1, "/vms/z", "DELETE", NULL, 0, 0, 1);

    expect_answer(t, 0, 503, 2);
    assert_int_equal(t->ctx.srv.requests, 2);
    assert_string_equal(t->ctx.srv.last_method, "DELETE");
    assert_non_null(strstr(t->c.r.detail, "HTTP 503 (after 2 attempts)"));
}

static void test_post_503_not_retried(void **state)
{
    static const struct step steps[] = {{ANSWER, 503, "{\"code\":\"ServiceUnavailable\"}", 0}};
    struct one *t = *state;
    exchange(t, steps, 1, "/servers/s1", "POST", json_pack("{s:b}", "reserved", 1), 0, 0, -1);

    expect_answer(t, 0, 503, 1);
    assert_int_equal(t->ctx.srv.requests, 1);
    assert_string_equal(t->ctx.srv.last_method, "POST");
    assert_string_equal(t->ctx.srv.last_body, "{\"reserved\":true}");
}

static void test_404_not_retried(void **state)
{
    static const struct step steps[] = {
        {ANSWER, 404, "{\"code\":\"ResourceNotFound\",\"message\":\"VM not found\"}", 0}};
    struct one *t = *state;
    exchange(t, steps, 1, "/vms/nope", "GET", NULL, 0, 0, -1);

    expect_answer(t, 0, 404, 1);
    assert_string_equal(json_string_value(json_object_get(t->c.r.json, "code")), "ResourceNotFound");
}

/* A port that was just bound and released, so nothing listens there. */
static int closed_port(void)
{
    uv_loop_t loop;
    uv_tcp_t tcp;
    struct sockaddr_in addr;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(&loop, &tcp);
    assert_int_equal(uv_tcp_bind(&tcp, (struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_tcp_getsockname(&tcp, (struct sockaddr *)&ss, &len), 0);
    int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_close((uv_handle_t *)&tcp, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return port;
}

static void test_connection_refused(void **state)
{
    static const struct step steps[] = {{ANSWER, 200, "{}", 0}};
    struct one *t = *state;
    one_start(t, steps, 1, "/unused"); /* the server is unused; finish_all stops it */
    free(t->url);
    t->url = mig_asprintf("http://127.0.0.1:%d/vms/x", closed_port());
    one_run(t, "GET", NULL, 0, 0, 3);

    expect_answer(t, MIG_EHTTP, 0, 4);
    assert_null(t->c.r.json);
    assert_int_equal(t->c.r.body_len, 0);
    uint64_t elapsed = t->c.r.done_ms - t->ctx.start_ms;
    assert_true(elapsed >= 250 + 500 + 1000);
    assert_true(elapsed < 1750 * 5 / 4 + 1500);
    char want[256];
    snprintf(want, sizeof(want), "GET %s: Connection refused (after 4 attempts)", t->url);
    assert_string_equal(t->c.r.detail, want);
}

static void test_attempt_timeout(void **state)
{
    static const struct step steps[] = {{HANG, 0, NULL, 0}};
    struct one *t = *state;
    exchange(t, steps, 1, "/vms/slow", "GET", NULL, 200, 0, 1);

    expect_answer(t, MIG_ETIMEDOUT, -1, 2);
    assert_int_equal(t->ctx.srv.requests, 2);
    uint64_t elapsed = t->c.r.done_ms - t->ctx.start_ms;
    assert_true(elapsed >= 200 + 250 + 200);
    assert_true(elapsed < 3000);
    assert_non_null(strstr(t->c.r.detail, "(after 2 attempts)"));
}

static void test_total_time_bounds_retries(void **state)
{
    static const struct step steps[] = {{HANG, 0, NULL, 0}};
    struct one *t = *state;
    exchange(t, steps, 1, "/vms/slow", "GET", NULL, 300, 1000, -1);

    expect_answer(t, MIG_ETIMEDOUT, -1, -1);
    assert_true(t->c.r.attempts >= 2);
    assert_true(t->c.r.attempts < 6);
    uint64_t elapsed = t->c.r.done_ms - t->ctx.start_ms;
    assert_true(elapsed < 1000 + 200);
}

static void test_closed_without_answer_retried(void **state)
{
    static const struct step steps[] = {{CLOSE, 0, NULL, 0}, {ANSWER, 200, "[1,2,3]", 0}};
    struct one *t = *state;
    exchange(t, steps, 2, "/vms?state=active", "GET", NULL, 0, 0, -1);

    expect_answer(t, 0, 200, 2);
    assert_true(json_is_array(t->c.r.json));
    assert_int_equal(json_array_size(t->c.r.json), 3);
}

static void test_non_json_body(void **state)
{
    static const struct step steps[] = {{ANSWER, 200, "hello, not json", 0}};
    struct one *t = *state;
    exchange(t, steps, 1, "/ping", "GET", NULL, 0, 0, -1);

    expect_text_answer(t, 200, "hello, not json");
}

static void test_empty_body(void **state)
{
    static const struct step steps[] = {{ANSWER, 204, "", 0}};
    struct one *t = *state;
    exchange(t, steps, 1, "/servers/s1", "POST", NULL, 0, 0, -1);

    expect_text_answer(t, 204, "");
}

static void test_body_too_large(void **state)
{
    static const struct step steps[] = {{ANSWER, 200, "", 0}};
    struct one *t = *state;
    one_start(t, steps, 1, "/images/big");
    t->ctx.srv.fill = 16u * 1024 * 1024 + 1;
    one_run(t, "GET", NULL, 0, 0, -1);

    expect_answer(t, MIG_EHTTP, -1, -1);
    assert_int_equal(t->c.r.attempts, 1); /* not a transient failure */
    assert_int_equal(t->ctx.srv.requests, 1);
    assert_null(t->c.r.json);
    assert_non_null(strstr(t->c.r.detail, "answer larger than 16777216 bytes"));
}

#define NCONCURRENT 50

static void test_concurrent(void **state)
{
    (void)state;
    static const struct step steps[] = {{ANSWER, 200, NULL, 5}};
    struct ctx ctx;
    struct call *calls = mig_calloc(NCONCURRENT, sizeof(*calls));
    char *urls[NCONCURRENT];
    ctx_init(&ctx, NCONCURRENT);
    srv_start(&ctx.srv, &ctx.loop, steps, 1);
    for (int i = 0; i < NCONCURRENT; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/vms/%d", i);
        urls[i] = srv_url(&ctx.srv, path);
        start(&ctx, &calls[i], "GET", urls[i], NULL, 0, 0, -1);
    }
    ctx_run(&ctx);

    assert_int_equal(ctx.srv.requests, NCONCURRENT);
    for (int i = 0; i < NCONCURRENT; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/vms/%d", i);
        assert_int_equal(calls[i].r.calls, 1);
        assert_int_equal(calls[i].r.err, 0);
        assert_int_equal(calls[i].r.status, 200);
        assert_string_equal(json_string_value(json_object_get(calls[i].r.json, "path")), path);
        call_free(&calls[i]);
        free(urls[i]);
    }
    free(calls);
}

/* Sequential requests, each started from the previous one's callback. */
#define NSEQ 5

struct seq {
    struct ctx ctx;
    char *url;
    int done;
    int ok;
};

static void on_seq_response(void *arg, const struct mig_http_resp *resp)
{
    struct seq *s = arg;
    if (resp->err_code == 0 && resp->status == 200)
        s->ok++;
    s->ctx.completed++;
    if (++s->done < NSEQ) {
        struct mig_http_req req = {.method = "GET", .url = s->url, .retries = -1};
        assert_int_equal(mig_http_request(s->ctx.http, &req, on_seq_response, s), 0);
    } else {
        finish_all(&s->ctx);
    }
}

/* Makes the NSEQ requests for path in a row against a server that answers {} to each. */
static void seq_run(struct seq *s, const char *path, bool no_keepalive)
{
    static const struct step steps[] = {{ANSWER, 200, "{}", 0}};
    ctx_init(&s->ctx, NSEQ);
    s->done = s->ok = 0;
    srv_start(&s->ctx.srv, &s->ctx.loop, steps, 1);
    s->ctx.srv.no_keepalive = no_keepalive;
    s->url = srv_url(&s->ctx.srv, path);
    struct mig_http_req req = {.method = "GET", .url = s->url, .retries = -1};
    assert_int_equal(mig_http_request(s->ctx.http, &req, on_seq_response, s), 0);
    ctx_run(&s->ctx);
}

/* seq_run(path, no_keepalive): every request answered, over accepted connections. */
static void expect_seq(const char *path, bool no_keepalive, int accepted)
{
    struct seq s;
    seq_run(&s, path, no_keepalive);

    assert_int_equal(s.ok, NSEQ);
    assert_int_equal(s.ctx.srv.requests, NSEQ);
    assert_int_equal(s.ctx.srv.accepted, accepted);
    free(s.url);
}

static void test_keepalive_reuse(void **state)
{
    (void)state;
    expect_seq("/vms/k", false, 1);
}

/*
 * Each answer closes its connection, so curl closes a socket and opens the
 * next one (usually with the same fd number) before the old poll handle's
 * close callback has run.
 */
static void test_fresh_connection_each_time(void **state)
{
    (void)state;
    expect_seq("/vms/c", true, NSEQ);
}

/* Close with requests in flight and one waiting in backoff. */
struct closer {
    struct ctx ctx;
    uv_timer_t timer;
    int canceled;
    int others;
    bool closed_returned;
};

static void on_cancel_response(void *arg, const struct mig_http_resp *resp)
{
    struct closer *cl = arg;
    assert_false(cl->closed_returned);
    if (resp->err_code == MIG_ECANCELED)
        cl->canceled++;
    else
        cl->others++;
    cl->ctx.completed++;
    /* A request started while closing is refused, never queued. */
    struct mig_http_req req = {.method = "GET", .url = "http://127.0.0.1:1/", .retries = -1};
    assert_int_equal(mig_http_request(cl->ctx.http, &req, on_cancel_response, cl), MIG_ECANCELED);
}

static void on_close_timer(uv_timer_t *t)
{
    struct closer *cl = t->data;
    assert_int_equal(cl->ctx.completed, 0);
    finish_all(&cl->ctx);
    cl->closed_returned = true;
    assert_int_equal(cl->ctx.closed, 0); /* on_closed runs later, from the loop */
    uv_close((uv_handle_t *)&cl->timer, NULL);
}

static void test_close_in_flight(void **state)
{
    (void)state;
    static const struct step steps[] = {{HANG, 0, NULL, 0}};
    struct closer cl;
    memset(&cl, 0, sizeof(cl));
    ctx_init(&cl.ctx, 4);
    srv_start(&cl.ctx.srv, &cl.ctx.loop, steps, 1);
    char *url = srv_url(&cl.ctx.srv, "/vms/hang");
    char *refused = mig_asprintf("http://127.0.0.1:%d/vms/x", closed_port());
    struct mig_http_req req = {.method = "GET", .url = url, .retries = -1};
    for (int i = 0; i < 3; i++)
        assert_int_equal(mig_http_request(cl.ctx.http, &req, on_cancel_response, &cl), 0);
    req.url = refused; /* refused at once, then waits 250 ms in backoff */
    assert_int_equal(mig_http_request(cl.ctx.http, &req, on_cancel_response, &cl), 0);
    uv_timer_init(&cl.ctx.loop, &cl.timer);
    cl.timer.data = &cl;
    uv_timer_start(&cl.timer, on_close_timer, 150, 0);
    ctx_run(&cl.ctx);

    assert_int_equal(cl.canceled, 4);
    assert_int_equal(cl.others, 0);
    assert_int_equal(cl.ctx.srv.requests, 3);
    free(url);
    free(refused);
}

/* Closing from inside a completion callback, with another request still running. */
struct inner {
    struct ctx ctx;
    struct call slow;
    int fast_calls;
};

static void on_fast_response(void *arg, const struct mig_http_resp *resp)
{
    struct inner *in = arg;
    assert_int_equal(resp->err_code, 0);
    in->fast_calls++;
    in->ctx.completed++;
    finish_all(&in->ctx);
}

static void test_close_from_callback(void **state)
{
    (void)state;
    static const struct step steps[] = {{ANSWER, 200, "{}", 0}};
    struct inner in;
    memset(&in, 0, sizeof(in));
    ctx_init(&in.ctx, 2);
    srv_start(&in.ctx.srv, &in.ctx.loop, steps, 1);
    in.ctx.srv.hang_path = "/vms/slow";
    char *slow = srv_url(&in.ctx.srv, "/vms/slow");
    char *fast = srv_url(&in.ctx.srv, "/vms/fast");
    /* The slow call's on_response runs from inside the close: finish_all is then a no-op. */
    start(&in.ctx, &in.slow, "GET", slow, NULL, 0, 0, -1);
    struct mig_http_req req = {.method = "GET", .url = fast, .retries = -1};
    assert_int_equal(mig_http_request(in.ctx.http, &req, on_fast_response, &in), 0);
    ctx_run(&in.ctx);

    assert_int_equal(in.fast_calls, 1);
    assert_int_equal(in.slow.r.calls, 1);
    assert_int_equal(in.slow.r.err, MIG_ECANCELED);
    call_free(&in.slow);
    free(slow);
    free(fast);
}

static void test_unix_socket(void **state)
{
    (void)state;
    static const struct step steps[] = {{ANSWER, 200, NULL, 0}};
    struct ctx ctx;
    struct call c;
    ctx_init(&ctx, 1);
    srv_start_unix(&ctx.srv, &ctx.loop, steps, 1);
    memset(&c, 0, sizeof(c));
    c.ctx = &ctx;
    struct mig_http_req req = {
        .method = "GET",
        .url = "http://localhost/jobs/j1",
        .unix_socket = ctx.srv.path,
        .retries = -1,
    };
    assert_int_equal(mig_http_request(ctx.http, &req, on_response, &c), 0);
    ctx_run(&ctx);

    assert_int_equal(c.r.err, 0);
    assert_int_equal(c.r.status, 200);
    assert_string_equal(json_string_value(json_object_get(c.r.json, "path")), "/jobs/j1");
    assert_int_equal(access(ctx.srv.path, F_OK), -1);
    call_free(&c);
}

static void on_count(void *arg)
{
    (*(int *)arg)++;
}

static void test_bad_arguments(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct mig_http *http;
    int closed = 0;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(mig_http_new(&loop, &http), 0);
    struct mig_http_req req = {.method = NULL, .url = "http://127.0.0.1:1/"};
    assert_int_equal(mig_http_request(http, &req, on_response, NULL), -EINVAL);
    req.method = "GET";
    req.url = NULL;
    assert_int_equal(mig_http_request(http, &req, on_response, NULL), -EINVAL);
    mig_http_close(http, on_count, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The group's setup: the client's log lines are not the test's output. */
static int quiet_log(void **state)
{
    (void)state;
    mig_log_init("test_http", MIG_LOG_FATAL, NULL);
    return 0;
}

/* A test of one call, given its struct one by one_setup and rid of it by one_teardown. */
#define ONE(fn) cmocka_unit_test_setup_teardown(fn, one_setup, one_teardown)

UNIT_TEST_MAIN(quiet_log, NULL,
               ONE(test_get_json),
               ONE(test_put_body_exact),
               ONE(test_503_twice_then_200),
               ONE(test_503_exhausted_is_an_answer),
               ONE(test_post_503_not_retried),
               ONE(test_404_not_retried),
               ONE(test_connection_refused),
               ONE(test_attempt_timeout),
               ONE(test_total_time_bounds_retries),
               ONE(test_closed_without_answer_retried),
               ONE(test_non_json_body),
               ONE(test_empty_body),
               ONE(test_body_too_large),
               cmocka_unit_test(test_concurrent),
               cmocka_unit_test(test_keepalive_reuse),
               cmocka_unit_test(test_fresh_connection_each_time),
               cmocka_unit_test(test_close_in_flight),
               cmocka_unit_test(test_close_from_callback),
               cmocka_unit_test(test_unix_socket),
               cmocka_unit_test(test_bad_arguments))
