/*
 * http.h: the libcurl-on-libuv adapter (multi_socket API, uv_poll_t per
 * socket, one uv_timer_t for curl's timeouts).  Requests carry JSON; answers
 * are parsed with jansson.  Idempotent requests (GET, PUT, HEAD, DELETE) are
 * retried with exponential backoff on transport errors and on 502/503/504,
 * within a bounded total time.  Callers see only completions.
 */
#ifndef MIG_HTTP_H
#define MIG_HTTP_H

#include <jansson.h>
#include <uv.h>

struct mig_http;

struct mig_http_req {
    const char *method;   /* "GET", "PUT", "POST", ... */
    const char *url;      /* absolute URL */
    json_t *body;         /* borrowed; NULL: no body */
    const char *unix_socket; /* NULL, or a Unix socket path to connect through */
    long timeout_ms;      /* one attempt; 0: 30 s */
    long total_ms;        /* all attempts of a retried request; 0: 120 s */
    int retries;          /* extra attempts for idempotent requests; -1: default 5 */
};

struct mig_http_resp {
    int err_code;      /* 0 when an HTTP answer arrived; else MIG_EHTTP, MIG_ETIMEDOUT, MIG_ECANCELED */
    long status;       /* HTTP status, 0 when none */
    json_t *json;      /* parsed body or NULL (empty or not JSON); borrowed: json_incref to keep */
    const char *body;  /* raw body, NUL-terminated; valid during the callback */
    size_t body_len;
    int attempts;
    char detail[256];  /* one line for the operator when err_code != 0 */
};

typedef void (*mig_http_cb)(void *arg, const struct mig_http_resp *resp);

/* Creates a client on loop.  Returns 0 or a negative code. */
int mig_http_new(uv_loop_t *loop, struct mig_http **out);

/*
 * Cancels outstanding requests (their callbacks run with MIG_ECANCELED),
 * closes every handle and calls on_closed(arg) after the client is freed.
 */
void mig_http_close(struct mig_http *http, void (*on_closed)(void *arg), void *arg);

/*
 * Cancels the requests started with arg: each callback runs once, with
 * MIG_ECANCELED, from the loop (never from inside this call).
 */
void mig_http_cancel(struct mig_http *http, void *arg);

/*
 * Starts a request; the request struct and its strings are copied.  cb runs
 * exactly once, never before this call returns.  Returns 0 or a negative code.
 */
int mig_http_request(struct mig_http *http, const struct mig_http_req *req, mig_http_cb cb,
                     void *arg);

#endif
