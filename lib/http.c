/*
 * http.c: the libcurl-on-libuv adapter (see http.h).  One curl multi handle
 * per client drives every transfer through the multi_socket API: curl's
 * socket callback maps each socket to a uv_poll_t of its own, curl's timer
 * callback to one uv_timer_t.  Finished transfers are collected with
 * curl_multi_info_read after every curl_multi_socket_action, outside any curl
 * callback, and are either completed or, for idempotent methods that failed
 * transiently, parked on a per-request backoff timer and re-added later.
 * Bodies are sent as compact JSON; answers over 16 MiB fail the request; the
 * connect phase is bounded by 10 s or the attempt's timeout, whichever is less.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "http.h"
#include "log.h"
#include "util.h"

#define HTTP_BODY_MAX (16u * 1024 * 1024) /* a larger answer is an error */
#define HTTP_TIMEOUT_MS 30000L            /* one attempt, when req->timeout_ms is 0 */
#define HTTP_CONNECT_TIMEOUT_MS 10000L    /* connect phase, capped by the attempt */
#define HTTP_TOTAL_MS 120000L             /* all attempts, when req->total_ms is 0 */
#define HTTP_RETRIES 5                    /* extra attempts, when req->retries is -1 */
#define HTTP_BACKOFF_FIRST_MS 250
#define HTTP_BACKOFF_MAX_MS 5000
#define HTTP_MAX_PER_HOST 16 /* connections to one API at once */

#ifndef MIGD_VERSION
#define MIGD_VERSION "0"
#endif

/* One socket curl asked us to watch; freed only in on_sock_closed. */
struct http_sock {
    uv_poll_t poll;
    struct mig_http *http;
    curl_socket_t fd;
    struct http_sock *prev, *next; /* http->socks: live (not closing) sockets */
};

/* One request, across all its attempts; freed only in on_xfer_closed. */
struct http_xfer {
    struct mig_http *http;
    struct http_xfer *prev, *next; /* http->xfers: outstanding requests */
    CURL *easy;
    struct curl_slist *headers;
    char *method;
    char *url;
    char *unix_socket;
    char *body; /* compact JSON sent, or NULL */
    size_t body_len;
    bool idempotent;
    bool in_multi;     /* added to http->multi, not yet removed */
    bool too_big;      /* the answer exceeded HTTP_BODY_MAX */
    bool canceled;     /* mig_http_cancel: fails on its backoff timer */
    long timeout_ms;   /* per attempt */
    uint64_t deadline; /* uv_now() limit for all attempts */
    int max_attempts;
    int attempts;
    char *resp;
    size_t resp_len;
    size_t resp_cap;
    char errbuf[CURL_ERROR_SIZE];
    uv_timer_t backoff; /* waits between attempts; always initialized */
    mig_http_cb cb;
    void *arg;
};

struct mig_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer; /* curl's timeout */
    struct http_sock *socks;
    struct http_xfer *xfers;
    uint64_t rng;       /* xorshift state for backoff jitter */
    int pending_closes; /* uv_close calls whose callback has not run yet */
    bool closing;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

static void check_multi_info(struct mig_http *http);
static void on_backoff(uv_timer_t *handle);

/* Frees the client once it is closing and every handle's close has completed. */
static void maybe_free(struct mig_http *http)
{
    if (!http->closing || http->pending_closes > 0)
        return;
    void (*on_closed)(void *) = http->on_closed;
    void *arg = http->closed_arg;
    free(http);
    curl_global_cleanup();
    if (on_closed != NULL)
        on_closed(arg);
}

/* ---- sockets and the curl timer ---- */

/*
 * The close of one of http's handles is over: frees the struct that held it
 * (owner), and http itself when that was the last close it waited for.
 */
static void handle_closed(struct mig_http *http, void *owner)
{
    free(owner);
    http->pending_closes--;
    maybe_free(http);
}

static void on_sock_closed(uv_handle_t *handle)
{
    struct http_sock *s = handle->data;
    handle_closed(s->http, s);
}

/*
 * Unlinks s and closes its poll handle.  The struct is never reused: curl may
 * open a new socket with the same fd number before on_sock_closed runs, and
 * that socket gets a fresh http_sock (libuv releases the fd at uv_close).
 */
static void sock_close(struct http_sock *s)
{
    struct mig_http *http = s->http;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        http->socks = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    http->pending_closes++;
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void socket_action(struct mig_http *http, curl_socket_t fd, int flags)
{
    int running = 0;
    CURLMcode mc = curl_multi_socket_action(http->multi, fd, flags, &running);
    if (mc != CURLM_OK)
        log_error("http: curl_multi_socket_action: %s", curl_multi_strerror(mc));
    check_multi_info(http);
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    struct http_sock *s = handle->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    /* s may be closed by curl during the action; it stays valid until its close cb. */
    socket_action(s->http, s->fd, flags);
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching one socket. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct mig_http *http = userp;
    struct http_sock *s = socketp;
    (void)easy;

    if (what == CURL_POLL_REMOVE) {
        if (s != NULL)
            sock_close(s);
        return 0;
    }
    if (s == NULL) {
        s = mig_calloc(1, sizeof(*s));
        s->http = http;
        s->fd = fd;
        int rc = uv_poll_init_socket(http->loop, &s->poll, fd);
        if (rc != 0) {
            log_error("http: uv_poll_init_socket(%d): %s", (int)fd, uv_strerror(rc));
            free(s);
            return -1;
        }
        s->poll.data = s;
        s->next = http->socks;
        if (s->next != NULL)
            s->next->prev = s;
        http->socks = s;
        CURLMcode mc = curl_multi_assign(http->multi, fd, s);
        if (mc != CURLM_OK) {
            log_error("http: curl_multi_assign: %s", curl_multi_strerror(mc));
            sock_close(s);
            return -1;
        }
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    int rc = uv_poll_start(&s->poll, events, on_poll);
    if (rc != 0) {
        log_error("http: uv_poll_start(%d): %s", (int)fd, uv_strerror(rc));
        return -1;
    }
    return 0;
}

static void on_timeout(uv_timer_t *handle)
{
    struct mig_http *http = handle->data;
    socket_action(http, CURL_SOCKET_TIMEOUT, 0);
}

/*
 * CURLMOPT_TIMERFUNCTION: (re)arm or stop the one timer.  A zero timeout is
 * honoured from the loop on its next turn, never by acting from inside curl.
 */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct mig_http *http = userp;
    (void)multi;
    if (http->closing)
        return 0;
    if (timeout_ms < 0) {
        uv_timer_stop(&http->timer);
        return 0;
    }
    int rc = uv_timer_start(&http->timer, on_timeout, (uint64_t)timeout_ms, 0);
    if (rc != 0) {
        log_error("http: uv_timer_start: %s", uv_strerror(rc));
        return -1;
    }
    return 0;
}

/* ---- requests ---- */

static void on_xfer_closed(uv_handle_t *handle)
{
    struct http_xfer *x = handle->data;
    handle_closed(x->http, x);
}

/* Releases everything but the struct itself, which on_xfer_closed frees. */
static void xfer_destroy(struct http_xfer *x)
{
    struct mig_http *http = x->http;
    if (x->in_multi) {
        CURLMcode mc = curl_multi_remove_handle(http->multi, x->easy);
        if (mc != CURLM_OK)
            log_error("http: curl_multi_remove_handle: %s", curl_multi_strerror(mc));
        x->in_multi = false;
    }
    if (x->easy != NULL)
        curl_easy_cleanup(x->easy);
    x->easy = NULL;
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    free(x->method);
    free(x->url);
    free(x->unix_socket);
    free(x->body);
    free(x->resp);
    x->method = x->url = x->unix_socket = x->body = x->resp = NULL;
    http->pending_closes++;
    uv_close((uv_handle_t *)&x->backoff, on_xfer_closed);
}

static void xfer_unlink(struct http_xfer *x)
{
    struct mig_http *http = x->http;
    if (x->prev != NULL)
        x->prev->next = x->next;
    else if (http->xfers == x)
        http->xfers = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

/*
 * Delivers the one callback of x and destroys it.  x is unlinked first so a
 * callback that closes the client does not see it again.
 */
static void xfer_finish(struct http_xfer *x, struct mig_http_resp *resp)
{
    xfer_unlink(x);
    resp->attempts = x->attempts;
    if (resp->body == NULL) {
        resp->body = x->resp != NULL ? x->resp : "";
        resp->body_len = x->resp != NULL ? x->resp_len : 0;
    }
    x->cb(x->arg, resp);
    json_decref(resp->json);
    xfer_destroy(x);
}

static void xfer_fail(struct http_xfer *x, int err, const char *why)
{
    struct mig_http_resp resp = {.err_code = err};
    resp.body = "";
    if (x->attempts > 1)
        snprintf(resp.detail, sizeof(resp.detail), "%s %s: %s (after %d attempts)", x->method,
                 x->url, why, x->attempts);
    else
        snprintf(resp.detail, sizeof(resp.detail), "%s %s: %s", x->method, x->url, why);
    xfer_finish(x, &resp);
}

static size_t on_curl_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct http_xfer *x = userp;
    size_t n = size * nmemb;
    if (n > HTTP_BODY_MAX - x->resp_len) {
        x->too_big = true;
        return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
    }
    if (x->resp_len + n + 1 > x->resp_cap) {
        size_t cap = x->resp_cap != 0 ? x->resp_cap : 4096;
        while (cap < x->resp_len + n + 1)
            cap *= 2;
        x->resp = mig_realloc(x->resp, cap);
        x->resp_cap = cap;
    }
    memcpy(x->resp + x->resp_len, data, n);
    x->resp_len += n;
    x->resp[x->resp_len] = '\0';
    return n;
}

/* Transport failures worth another attempt of an idempotent request. */
static bool transient_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
        return true;
    default:
        return false;
    }
}

static uint64_t next_random(struct mig_http *http)
{
    uint64_t v = http->rng;
    v ^= v << 13;
    v ^= v >> 7;
    v ^= v << 17;
    http->rng = v;
    return v;
}

/* Backoff before attempt number x->attempts + 1: doubling from 250 ms, capped, plus 0-25%. */
static uint64_t backoff_ms(struct http_xfer *x)
{
    uint64_t ms = HTTP_BACKOFF_FIRST_MS;
    for (int i = 1; i < x->attempts && ms < HTTP_BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > HTTP_BACKOFF_MAX_MS)
        ms = HTTP_BACKOFF_MAX_MS;
    return ms + next_random(x->http) % (ms / 4 + 1);
}

/* Describes a transport failure: the OS error when curl has one, else curl's message. */
static void transport_reason(struct http_xfer *x, CURLcode rc, char *out, size_t outsz)
{
    long os_errno = 0;
    if (rc == CURLE_COULDNT_CONNECT &&
        curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK && os_errno != 0)
        snprintf(out, outsz, "%s", strerror((int)os_errno));
    else if (x->too_big)
        snprintf(out, outsz, "answer larger than %u bytes", HTTP_BODY_MAX);
    else if (x->errbuf[0] != '\0')
        snprintf(out, outsz, "%s", x->errbuf);
    else
        snprintf(out, outsz, "%s", curl_easy_strerror(rc));
}

/* One attempt of x ended with rc: retry, or complete the request. */
static void xfer_done(struct http_xfer *x, CURLcode rc)
{
    struct mig_http *http = x->http;
    long status = 0;
    if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
        status = 0;

    bool retryable = rc == CURLE_OK ? (status == 502 || status == 503 || status == 504)
                                    : (transient_error(rc) && !x->too_big);
    char why[CURL_ERROR_SIZE + 32];
    if (rc == CURLE_OK)
        snprintf(why, sizeof(why), "HTTP %ld", status);
    else
        transport_reason(x, rc, why, sizeof(why));

    if (retryable && x->idempotent && x->attempts < x->max_attempts) {
        uint64_t delay = backoff_ms(x);
        uint64_t now = uv_now(http->loop);
        if (now + delay < x->deadline) {
            log_warn("http: %s %s: %s; retrying in %llu ms (attempt %d of %d)", x->method, x->url,
                     why, (unsigned long long)delay, x->attempts + 1, x->max_attempts);
            int urc = uv_timer_start(&x->backoff, on_backoff, delay, 0);
            if (urc == 0)
                return;
            log_error("http: uv_timer_start: %s", uv_strerror(urc));
        }
    }

    if (rc != CURLE_OK) {
        xfer_fail(x, rc == CURLE_OPERATION_TIMEDOUT ? MIG_ETIMEDOUT : MIG_EHTTP, why);
        return;
    }
    struct mig_http_resp resp = {.err_code = 0, .status = status};
    resp.body = x->resp != NULL ? x->resp : "";
    resp.body_len = x->resp_len;
    if (x->resp_len > 0)
        resp.json = json_loadb(x->resp, x->resp_len, JSON_DECODE_ANY, NULL);
    if (status < 200 || status > 299) {
        if (x->attempts > 1)
            snprintf(resp.detail, sizeof(resp.detail), "%s %s: HTTP %ld (after %d attempts)",
                     x->method, x->url, status, x->attempts);
        else
            snprintf(resp.detail, sizeof(resp.detail), "%s %s: HTTP %ld", x->method, x->url,
                     status);
    }
    xfer_finish(x, &resp);
}

/* Completes every finished transfer; stops as soon as a callback closed the client. */
static void check_multi_info(struct mig_http *http)
{
    CURLMsg *msg;
    int left;
    while (!http->closing && (msg = curl_multi_info_read(http->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result; /* msg is invalid after remove_handle */
        struct http_xfer *x = NULL;
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x) != CURLE_OK || x == NULL) {
            log_error("http: finished transfer without a request");
            continue;
        }
        CURLMcode mc = curl_multi_remove_handle(http->multi, easy);
        if (mc != CURLM_OK)
            log_error("http: curl_multi_remove_handle: %s", curl_multi_strerror(mc));
        x->in_multi = false;
        xfer_done(x, rc);
    }
}

/*
 * Arms and adds the easy handle for attempt x->attempts + 1.  Returns 0, or
 * -1 with the reason in why; the caller completes or discards x.
 */
static int attempt_add(struct http_xfer *x, char *why, size_t whysz)
{
    struct mig_http *http = x->http;
    uint64_t now = uv_now(http->loop);
    long remaining = x->deadline > now ? (long)(x->deadline - now) : 1;
    long timeout = x->timeout_ms < remaining ? x->timeout_ms : remaining;
    long connect_timeout = timeout < HTTP_CONNECT_TIMEOUT_MS ? timeout : HTTP_CONNECT_TIMEOUT_MS;

    free(x->resp);
    x->resp = NULL;
    x->resp_len = x->resp_cap = 0;
    x->too_big = false;
    x->errbuf[0] = '\0';
    x->attempts++;

    CURLcode rc = curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, timeout);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout);
    if (rc != CURLE_OK) {
        snprintf(why, whysz, "%s", curl_easy_strerror(rc));
        return -1;
    }
    /* Adding never transfers: curl only asks for a timeout, served from the loop. */
    CURLMcode mc = curl_multi_add_handle(http->multi, x->easy);
    if (mc != CURLM_OK) {
        snprintf(why, whysz, "%s", curl_multi_strerror(mc));
        return -1;
    }
    x->in_multi = true;
    return 0;
}

static void on_backoff(uv_timer_t *handle)
{
    struct http_xfer *x = handle->data;
    char why[128];
    if (x->canceled) {
        xfer_fail(x, MIG_ECANCELED, "canceled");
        return;
    }
    if (attempt_add(x, why, sizeof(why)) != 0)
        xfer_fail(x, MIG_EHTTP, why);
}

/* Sets the options that stay the same for every attempt. */
static CURLcode xfer_setup(struct http_xfer *x)
{
    CURL *e = x->easy;
    CURLcode rc = CURLE_OK;
#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)

    SETOPT(CURLOPT_URL, x->url);
    SETOPT(CURLOPT_PRIVATE, (void *)x);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_WRITEFUNCTION, on_curl_write);
    SETOPT(CURLOPT_WRITEDATA, (void *)x);
    SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
    SETOPT(CURLOPT_USERAGENT, "migd/" MIGD_VERSION);
    if (x->unix_socket != NULL)
        SETOPT(CURLOPT_UNIX_SOCKET_PATH, x->unix_socket);

    if (x->body != NULL) {
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
        SETOPT(CURLOPT_POSTFIELDS, x->body);
        if (strcmp(x->method, "POST") != 0)
            SETOPT(CURLOPT_CUSTOMREQUEST, x->method);
    } else if (strcmp(x->method, "GET") == 0) {
        SETOPT(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(x->method, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else if (strcmp(x->method, "POST") == 0) {
        SETOPT(CURLOPT_POSTFIELDSIZE, 0L);
        SETOPT(CURLOPT_POSTFIELDS, "");
    } else {
        SETOPT(CURLOPT_CUSTOMREQUEST, x->method);
    }

    /* "Expect:" stops curl waiting for a 100 Continue before sending large bodies. */
    static const char *const headers[] = {"Accept: application/json", "Expect:"};
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        struct curl_slist *l = curl_slist_append(x->headers, headers[i]);
        if (l == NULL)
            return CURLE_OUT_OF_MEMORY;
        x->headers = l;
    }
    if (x->body != NULL) {
        struct curl_slist *l = curl_slist_append(x->headers, "Content-Type: application/json");
        if (l == NULL)
            return CURLE_OUT_OF_MEMORY;
        x->headers = l;
    }
    SETOPT(CURLOPT_HTTPHEADER, x->headers);
#undef SETOPT
    return rc;
}

/*
 * Copies req, adds its first attempt and returns 0; cb runs later from the
 * loop.  -EINVAL for a malformed req, MIG_ECANCELED once the client is
 * closing, MIG_EHTTP when curl refuses the handle (cb never runs then).
 */
int mig_http_request(struct mig_http *http, const struct mig_http_req *req, mig_http_cb cb,
                     void *arg)
{
    if (http == NULL || req == NULL || req->method == NULL || req->url == NULL || cb == NULL ||
        req->method[0] == '\0')
        return -EINVAL;
    if (http->closing)
        return MIG_ECANCELED;

    struct http_xfer *x = mig_calloc(1, sizeof(*x));
    x->http = http;
    x->cb = cb;
    x->arg = arg;
    x->method = mig_strdup(req->method);
    x->url = mig_strdup(req->url);
    x->unix_socket = mig_strdup(req->unix_socket);
    if (req->body != NULL) {
        x->body = json_dumps(req->body, JSON_COMPACT | JSON_ENCODE_ANY);
        if (x->body == NULL) {
            free(x->method);
            free(x->url);
            free(x->unix_socket);
            free(x);
            return MIG_EPARSE;
        }
        x->body_len = strlen(x->body);
    }
    x->idempotent = strcmp(x->method, "GET") == 0 || strcmp(x->method, "HEAD") == 0 ||
                    strcmp(x->method, "PUT") == 0 || strcmp(x->method, "DELETE") == 0;
    x->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : HTTP_TIMEOUT_MS;
    long total = req->total_ms > 0 ? req->total_ms : HTTP_TOTAL_MS;
    x->deadline = uv_now(http->loop) + (uint64_t)total;
    int retries = req->retries < 0 ? HTTP_RETRIES : req->retries;
    x->max_attempts = x->idempotent ? 1 + retries : 1;

    /* From here x is torn down through xfer_destroy, which closes the timer. */
    uv_timer_init(http->loop, &x->backoff);
    x->backoff.data = x;
    x->easy = curl_easy_init();
    CURLcode rc = x->easy != NULL ? xfer_setup(x) : CURLE_FAILED_INIT;
    if (rc != CURLE_OK) {
        log_error("http: %s %s: %s", x->method, x->url, curl_easy_strerror(rc));
        xfer_destroy(x);
        return MIG_EHTTP;
    }
    char why[128];
    if (attempt_add(x, why, sizeof(why)) != 0) {
        log_error("http: %s %s: %s", x->method, x->url, why);
        xfer_destroy(x);
        return MIG_EHTTP;
    }
    x->next = http->xfers;
    if (x->next != NULL)
        x->next->prev = x;
    http->xfers = x;
    return 0;
}

/* Creates the multi handle and its timer on loop; 0 or MIG_EHTTP (*out NULL). */
int mig_http_new(uv_loop_t *loop, struct mig_http **out)
{
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return MIG_EHTTP;
    struct mig_http *http = mig_calloc(1, sizeof(*http));
    http->loop = loop;
    http->rng = uv_hrtime() ^ ((uint64_t)(uintptr_t)http << 16) ^ 0x9e3779b97f4a7c15ull;
    if (http->rng == 0)
        http->rng = 1;
    http->multi = curl_multi_init();
    if (http->multi == NULL) {
        free(http);
        curl_global_cleanup();
        return MIG_EHTTP;
    }
    CURLMcode mc = curl_multi_setopt(http->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(http->multi, CURLMOPT_SOCKETDATA, (void *)http);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(http->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(http->multi, CURLMOPT_TIMERDATA, (void *)http);
    /* A bounded number of connections per API: more requests wait in curl's queue. */
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(http->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)HTTP_MAX_PER_HOST);
    if (mc != CURLM_OK) {
        log_error("http: curl_multi_setopt: %s", curl_multi_strerror(mc));
        curl_multi_cleanup(http->multi);
        free(http);
        curl_global_cleanup();
        return MIG_EHTTP;
    }
    uv_timer_init(loop, &http->timer);
    http->timer.data = http;
    *out = http;
    return 0;
}

static void on_timer_closed(uv_handle_t *handle)
{
    struct mig_http *http = handle->data;
    http->pending_closes--;
    maybe_free(http);
}

void mig_http_cancel(struct mig_http *http, void *arg)
{
    for (struct http_xfer *x = http->xfers; x != NULL; x = x->next) {
        if (x->arg != arg || x->canceled)
            continue;
        if (x->in_multi) {
            CURLMcode mc = curl_multi_remove_handle(http->multi, x->easy);
            if (mc != CURLM_OK)
                log_error("http: curl_multi_remove_handle: %s", curl_multi_strerror(mc));
            x->in_multi = false;
        }
        x->canceled = true;
        uv_timer_stop(&x->backoff);
        uv_timer_start(&x->backoff, on_backoff, 0, 0);
    }
}

/*
 * Cancels every request synchronously (each callback runs once, with
 * MIG_ECANCELED, before this returns), then closes the handles; on_closed
 * runs from the loop after the client is freed.  Safe to call from a request
 * callback; a second call is ignored.
 */
void mig_http_close(struct mig_http *http, void (*on_closed)(void *arg), void *arg)
{
    if (http == NULL || http->closing)
        return;
    http->closing = true;
    http->on_closed = on_closed;
    http->closed_arg = arg;

    /* Detach every request first, so callbacks that start requests are refused. */
    struct http_xfer *list = http->xfers;
    http->xfers = NULL;
    while (list != NULL) {
        struct http_xfer *x = list;
        list = x->next;
        if (list != NULL)
            list->prev = NULL;
        x->next = x->prev = NULL;
        uv_timer_stop(&x->backoff);
        if (x->in_multi) {
            CURLMcode mc = curl_multi_remove_handle(http->multi, x->easy);
            if (mc != CURLM_OK)
                log_error("http: curl_multi_remove_handle: %s", curl_multi_strerror(mc));
            x->in_multi = false;
        }
        struct mig_http_resp resp = {.err_code = MIG_ECANCELED};
        snprintf(resp.detail, sizeof(resp.detail), "%s %s: canceled", x->method, x->url);
        xfer_finish(x, &resp);
    }

    CURLMcode mc = curl_multi_cleanup(http->multi);
    if (mc != CURLM_OK)
        log_error("http: curl_multi_cleanup: %s", curl_multi_strerror(mc));
    http->multi = NULL;
    while (http->socks != NULL)
        sock_close(http->socks);
    http->pending_closes++;
    uv_close((uv_handle_t *)&http->timer, on_timer_closed);
}
