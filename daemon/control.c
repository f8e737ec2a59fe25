/*
 * control.c: the REST control API of product.md, served as HTTP/1.1 by h2o
 * (libuv flavour) on a Unix domain socket of mode 0600.  This file is the
 * one adapter between h2o and the rest of migd: handlers parse the request,
 * call the engine (daemon.h) and answer JSON; errors are
 * {"code": "...", "message": "..."} as Triton's services answer them, and
 * every refused request is logged at info with its rule.
 *
 * Every answer is JSON, h2o's own included.  h2o 2.2.5 answers some
 * requests itself: a request head it cannot parse gets fixed plain-text
 * bytes written straight to the socket (no hook), and a body over the limit
 * (413), a broken chunked body or Content-Length (400), an unknown Expect
 * (417) and a path no handler takes (404) go through h2o_send_error_generic
 * as text/plain.  So: (1) each connection's request head is parsed here,
 * with the same parser h2o uses (picohttpparser), before h2o sees the
 * connection, and a malformed or oversized head is answered here in JSON;
 * (2) a filter on every path rewrites h2o's text/plain errors into
 * {code, message}; (3) each connection carries one request (Connection:
 * close), so no request ever reaches h2o's parser without passing (1).
 *
 * Load.  At most SUBMIT_CHECKING_MAX POST /jobs are being checked by the
 * engine at once (each holds an API connection and SSH sessions); up to
 * SUBMIT_WAITING_MAX more wait in order; beyond that a submission is 503
 * with Retry-After.  Connections are capped below the descriptor limit.  A
 * watch stream keeps at most one line queued behind the one being sent: a
 * watcher that does not read gets the latest state, not every update.
 *
 * Lifetimes.  A POST /jobs waits for the engine's asynchronous answer; the
 * client may go away first, so the engine holds a reference to a small
 * shared context that a guard object in the request's pool detaches when h2o
 * disposes of the request.  A watch stream is a generator whose stop
 * callback and pool disposal both unregister it from the engine.  Stopping
 * answers what is pending, ends every stream, shuts every connection down so
 * that h2o closes it through its own error path, and frees the server once
 * the last connection's handle is closed and the engine has answered every
 * submission it holds.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
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
/* POST /jobs being checked by the engine at once, and waiting for a turn. */
#define SUBMIT_CHECKING_MAX 16
#define SUBMIT_WAITING_MAX 64
/* Connections at once: half the descriptor limit, within these bounds. */
#define CONNS_MIN 16
#define CONNS_MAX 1024
/* What a path or message may echo of the request, in bytes. */
#define ECHO_MAX 200

#define CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/*
 * picohttpparser, which h2o is built on and exports, but whose header
 * Debian's libh2o-dev does not ship.  Returns the head's length, -2 when
 * incomplete, -1 when malformed.
 */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);

/* One accepted connection: the pipe h2o reads and writes. */
struct conn {
    uv_pipe_t pipe;
    struct control *c;
    h2o_linklist_t link;              /* in control.conns */
    h2o_socket_t *sock;               /* over pipe; h2o's once the head is handed over */
    h2o_timeout_entry_t head_timeout; /* linked while the first head is awaited */
    size_t head_seen;                 /* bytes of head parsed so far (picohttpparser's last_len) */
    struct timeval connected_at;
    char *answer; /* a canned answer being written (head refused); freed on close */
};

struct control {
    struct migd *d;
    char *path;
    uv_pipe_t listener;
    bool listener_open; /* uv_pipe_init done: must be closed */
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_linklist_t conns; /* struct conn */
    int nconns, max_conns;
    h2o_linklist_t checking;  /* struct submit, with the engine and a client */
    h2o_linklist_t waiting;   /* struct submit, queued for a turn */
    int nchecking, nwaiting;  /* nchecking counts the engine's, client or not */
    int64_t check_ms;         /* moving average of a check's duration */
    h2o_timeout_entry_t pump; /* starts waiting submissions on the next turn */
    h2o_linklist_t watches;   /* struct watch, streams still open */
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

/* The filter that turns h2o's own plain-text errors into JSON (file comment). */
struct json_errors_filter {
    h2o_filter_t super;
    struct control *c;
};

struct json_error_ostream {
    h2o_ostream_t super;
    bool sent;
};

/*
 * A POST /jobs: waiting for a turn (body held), then checked by the engine
 * until on_submit_done (see the file comment).
 */
struct submit {
    struct control *c;
    h2o_req_t *req; /* NULL once answered or gone */
    json_t *body;   /* while waiting */
    bool waiting;
    int64_t started_ms;
    h2o_linklist_t link; /* in c->waiting, or c->checking while req is set */
};

/* A GET /jobs/:uuid/watch stream. */
struct watch {
    h2o_generator_t super;
    struct control *c;
    h2o_req_t *req; /* NULL once the final chunk is handed over or the request is gone */
    void *handle;   /* engine_watch handle; NULL when not (or no longer) registered */
    char *pending;  /* the latest line not yet handed to h2o (one at most) */
    size_t pending_len;
    char *inflight; /* the buffer h2o is sending; freed on proceed or disposal */
    bool sending;
    bool final_queued;
    h2o_linklist_t link;
};

static void watch_flush(struct watch *w);
static void control_maybe_finish(struct control *c);

/* ---- text: UTF-8 and what may be echoed ---- */

/* Length of the valid UTF-8 sequence at s (len bytes left), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned ch = s[0];
    size_t n;
    uint32_t cp;
    if (ch < 0x80)
        return 1;
    if (ch < 0xc2)
        return 0; /* a continuation byte, or an overlong 2-byte form */
    if (ch < 0xe0) {
        n = 2;
        cp = ch & 0x1f;
    } else if (ch < 0xf0) {
        n = 3;
        cp = ch & 0x0f;
    } else if (ch < 0xf5) {
        n = 4;
        cp = ch & 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* True when s[0..len) is UTF-8 as JSON requires it (what jansson accepts). */
static bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* Replaces each byte of s (a C string) that is not part of valid UTF-8 with '?'. */
static void utf8_scrub(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0) {
            p[i++] = '?';
            continue;
        }
        i += n;
    }
}

/*
 * Writes s[0..len) into out (outsz bytes, NUL-terminated) as it may appear
 * in a message or a log line: printable ASCII and valid UTF-8 as they are,
 * any other byte as %XX; cut after ECHO_MAX bytes with "...".
 */
static void echo(const char *s, size_t len, char *out, size_t outsz)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, limit = outsz < ECHO_MAX + 4 ? outsz - 4 : ECHO_MAX;
    for (size_t i = 0; i < len;) {
        size_t n = p[i] >= 0x20 && p[i] < 0x7f ? 1 : p[i] >= 0x80 ? utf8_seq(p + i, len - i) : 0;
        size_t need = n != 0 ? n : 3;
        if (o + need > limit) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (n != 0) {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        } else {
            out[o++] = '%';
            out[o++] = hex[p[i] >> 4];
            out[o++] = hex[p[i] & 15];
            i++;
        }
    }
    out[o] = '\0';
}

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
    case 413:
        return "Payload Too Large";
    case 417:
        return "Expectation Failed";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return status >= 500 ? "Internal Server Error" : "Bad Request";
    }
}

/*
 * Logs a refused request at info (a failure of migd's own at warn): one
 * line with the method, the path as sent, the status, the code and the
 * message; job_uuid (may be NULL) files it in that job's log too.
 */
static void log_refusal(h2o_iovec_t method, h2o_iovec_t path, const char *job_uuid, int status,
                        const char *code, const char *msg)
{
    char m[32], p[ECHO_MAX + 8];
    echo(method.base, method.base != NULL ? method.len : 0, m, sizeof(m));
    echo(path.base, path.base != NULL ? path.len : 0, p, sizeof(p));
    mig_log(status >= 500 && status != 503 ? MIG_LOG_WARN : MIG_LOG_INFO, job_uuid, NULL,
            "request refused: %s %s: %d %s: %s", m[0] != '\0' ? m : "-", p[0] != '\0' ? p : "-",
            status, code, msg);
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
        /* Every string in an answer is valid UTF-8 (see respond_error): out of memory. */
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

/*
 * Answers {code, message} with status and logs the refusal (log_refusal);
 * job_uuid (may be NULL) is the job the refusal is about.  The message is
 * cut at a character and any byte that is not UTF-8 becomes '?', so the
 * answer can always be encoded.
 */
static void respond_error_job(h2o_req_t *req, const char *job_uuid, int status, const char *code,
                              const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void respond_error_job(h2o_req_t *req, const char *job_uuid, int status, const char *code,
                              const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(msg)) {
        /* Cut: drop the partial character the cut may have left. */
        size_t end = strlen(msg);
        size_t start = end;
        while (start > 0 && ((unsigned char)msg[start - 1] & 0xc0) == 0x80)
            start--;
        if (start > 0 && (unsigned char)msg[start - 1] >= 0xc0 &&
            utf8_seq((unsigned char *)msg + start - 1, end - start + 1) == 0)
            msg[start - 1] = '\0';
    }
    utf8_scrub(msg);
    log_refusal(req->method, req->path, job_uuid, status, code, msg);
    respond_json(req, status, json_pack("{s:s, s:s}", "code", code, "message", msg));
}

#define respond_error(req, status, code, ...)                                                      \
    respond_error_job(req, NULL, status, code, __VA_ARGS__)

static void respond_bad_method(h2o_req_t *req, const char *allow)
{
    char path[ECHO_MAX + 8];
    echo(req->path_normalized.base, req->path_normalized.len, path, sizeof(path));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    respond_error(req, 405, "BadMethod", "%.*s is not allowed on %s (allowed: %s)",
                  (int)req->method.len, req->method.base, path, allow);
}

/* ---- h2o's own answers, as JSON ---- */

/* The code of an error answer h2o wrote itself, by status. */
static const char *h2o_error_code(int status)
{
    switch (status) {
    case 400:
        return "BadRequest";
    case 404:
        return "ResourceNotFound";
    case 405:
        return "BadMethod";
    case 413:
        return "RequestEntityTooLarge";
    case 417:
        return "ExpectationFailed";
    case 503:
        return "ServiceUnavailable";
    default:
        return status >= 500 ? "InternalError" : "BadRequest";
    }
}

/* Replaces h2o's text body (bufs) by {code, message}; h2o's text ends the message. */
static void on_json_error_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs,
                               size_t bufcnt, h2o_send_state_t state)
{
    struct json_error_ostream *o = (struct json_error_ostream *)self;
    if (o->sent) {
        h2o_ostream_send_next(self, req, NULL, 0, state);
        return;
    }
    o->sent = true;
    char text[ECHO_MAX + 1];
    size_t tn = 0;
    for (size_t i = 0; i < bufcnt && tn < sizeof(text) - 1; i++) {
        size_t k = bufs[i].len < sizeof(text) - 1 - tn ? bufs[i].len : sizeof(text) - 1 - tn;
        memcpy(text + tn, bufs[i].base, k);
        tn += k;
    }
    char body[ECHO_MAX + 8];
    echo(text, tn, body, sizeof(body));
    if (body[0] == '\0')
        snprintf(body, sizeof(body), "%s", req->res.reason != NULL ? req->res.reason : "error");

    int status = req->res.status;
    char msg[512];
    if (status == 413)
        snprintf(msg, sizeof(msg), "the body is larger than %d bytes (64 KiB)", CONTROL_MAX_BODY);
    else if (status == 404 && req->path_normalized.base != NULL) {
        char path[ECHO_MAX + 8];
        echo(req->path_normalized.base, req->path_normalized.len, path, sizeof(path));
        snprintf(msg, sizeof(msg), "%s does not exist", path);
    } else if (status == 400)
        snprintf(msg, sizeof(msg), "malformed request: %s", body);
    else
        snprintf(msg, sizeof(msg), "%s", body);
    const char *code = h2o_error_code(status);
    log_refusal(req->method, req->path, NULL, status, code, msg);

    json_t *j = json_pack("{s:s, s:s}", "code", code, "message", msg);
    char *dumped = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    h2o_iovec_t out = h2o_iovec_init(H2O_STRLIT("{\"code\":\"InternalError\",\"message\":\"\"}\n"));
    if (dumped != NULL) {
        size_t len = strlen(dumped);
        char *line = h2o_mem_alloc_pool(&req->pool, len + 1);
        memcpy(line, dumped, len);
        line[len] = '\n';
        out = h2o_iovec_init(line, len + 1);
        free(dumped);
    }
    /* Headers are written with the first send that reaches the socket: still ours to set. */
    req->res.content_length = out.len;
    ssize_t ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (ct != -1)
        req->res.headers.entries[ct].value = h2o_iovec_init(H2O_STRLIT("application/json"));
    else
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/json"));
    bool head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    h2o_ostream_send_next(self, req, head ? NULL : &out, head ? 0 : 1, state);
}

/*
 * Every response passes here first: one request per connection (so each
 * head is checked by on_head_read), and h2o's text/plain errors (ours are
 * application/json) get a JSON body.
 */
static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    req->http1_is_persistent = 0;
    if (req->res.status >= 400) {
        ssize_t ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
        if (ct == -1 ||
            !h2o_memis(req->res.headers.entries[ct].value.base,
                       req->res.headers.entries[ct].value.len, H2O_STRLIT("application/json"))) {
            struct json_error_ostream *o =
                (void *)h2o_add_ostream(req, sizeof(struct json_error_ostream), slot);
            o->super.do_send = on_json_error_send;
            o->sent = false;
            slot = &o->super.next;
        }
    }
    h2o_setup_next_ostream(req, slot);
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

/*
 * Percent-decodes s[0..len) ('+' is a space) into a pool string (*outlen
 * bytes); NULL when an escape is malformed.  NUL bytes are kept: callers
 * refuse them.
 */
static char *url_decode(h2o_mem_pool_t *pool, const char *s, size_t len, size_t *outlen)
{
    char *out = h2o_mem_alloc_pool(pool, len + 1), *p = out;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= len || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
                return NULL;
            *p++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *p++ = s[i] == '+' ? ' ' : s[i];
        }
    }
    *p = '\0';
    *outlen = (size_t)(p - out);
    return out;
}

/*
 * Checks what every handler may echo: the path (as h2o decoded it) and the
 * query (decoded) must be UTF-8 without NUL bytes.  Returns 0, or -EINVAL
 * after answering 400 InvalidArgument.
 */
static int check_request_text(h2o_req_t *req)
{
    const char *path = req->path_normalized.base;
    size_t plen = req->path_normalized.len;
    if (!utf8_valid(path, plen)) {
        respond_error(req, 400, "InvalidArgument", "the path is not valid UTF-8");
        return -EINVAL;
    }
    if (memchr(path, '\0', plen) != NULL) {
        respond_error(req, 400, "InvalidArgument", "the path holds a NUL byte");
        return -EINVAL;
    }
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *q = req->path.base + req->query_at + 1;
    size_t qlen = req->path.len - req->query_at - 1;
    size_t dlen;
    char *decoded = url_decode(&req->pool, q, qlen, &dlen);
    if (decoded == NULL) {
        respond_error(req, 400, "InvalidArgument", "malformed query string (a bad %%-escape)");
        return -EINVAL;
    }
    /* UTF-8 split at ASCII '&' and '=' stays UTF-8: checking the whole checks each part. */
    if (!utf8_valid(decoded, dlen)) {
        respond_error(req, 400, "InvalidArgument", "the query string is not valid UTF-8");
        return -EINVAL;
    }
    if (memchr(decoded, '\0', dlen) != NULL) {
        respond_error(req, 400, "InvalidArgument", "the query string holds a NUL byte");
        return -EINVAL;
    }
    return 0;
}

struct query_param {
    const char *name;
    const char *value; /* OUT: NULL when absent */
};

/*
 * Parses the query string into params (a NULL-name terminated table of the
 * names allowed).  Returns 0, or -EINVAL after answering 400 for an unknown
 * name or a malformed value.  check_request_text has passed.
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
            size_t kl, vl;
            char *key = url_decode(&req->pool, q, (size_t)(kend - q), &kl);
            char *val = eq != NULL ? url_decode(&req->pool, eq + 1, (size_t)(stop - eq - 1), &vl)
                                   : url_decode(&req->pool, "", 0, &vl);
            if (key == NULL || val == NULL) {
                respond_error(req, 400, "InvalidArgument", "malformed query string");
                return -EINVAL;
            }
            struct query_param *p = params;
            while (p->name != NULL && strcmp(p->name, key) != 0)
                p++;
            if (p->name == NULL) {
                char k[ECHO_MAX + 8];
                echo(key, kl, k, sizeof(k));
                respond_error(req, 400, "InvalidArgument", "unknown query parameter \"%s\"", k);
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
    json_t *body =
        json_pack("{s:s, s:I, s:i, s:o, s:O}", "version", MIGD_VERSION, "uptime_s",
                  (json_int_t)(up < 0 ? 0 : up), "pid", (int)getpid(), "jobs", jobs_by_state(stats),
                  "unreadable", json_object_get(stats, "unreadable"));
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
                                   {"limit", NULL}, {"offset", NULL},  {NULL, NULL}};
    if (parse_query(req, params) != 0)
        return;
    /* Pages as Triton's APIs page: limit (1..1000, default 1000) and offset. */
    int64_t limit = JOBS_PAGE_MAX, offset = 0;
    if (params[3].value != NULL &&
        (parse_count(params[3].value, &limit) != 0 || limit < 1 || limit > JOBS_PAGE_MAX)) {
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
        respond_error(req, 400, "InvalidArgument", "state \"%.*s\" is not a job state", ECHO_MAX,
                      state);
        return;
    }
    if (vm_uuid != NULL && !mig_uuid_valid(vm_uuid)) {
        respond_error(req, 400, "InvalidArgument", "vm_uuid \"%.*s\" is not a UUID", ECHO_MAX,
                      vm_uuid);
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
                      "unknown action \"%.*s\" (finish, abort, rollback or cleanup)", ECHO_MAX,
                      action);
        return;
    }
    char msg[512] = "";
    int rc = engine_action(c->d->engine, uuid, action, msg, sizeof(msg));
    if (rc == -ENOENT) {
        respond_error(req, 404, "ResourceNotFound", "job %s not found", uuid);
    } else if (rc == -EINVAL) {
        respond_error_job(req, uuid, 409, "InvalidState", "%s",
                          msg[0] != '\0' ? msg : "not in this state");
    } else if (rc == MIG_EDB) {
        respond_error_job(req, uuid, 500, "DatabaseError", "%s",
                          msg[0] != '\0' ? msg
                                         : "the database refused a write; nothing was changed");
    } else if (rc != 0) {
        respond_error_job(req, uuid, 500, "InternalError", "%s: %s", action,
                          msg[0] != '\0' ? msg : mig_strerror(rc));
    } else {
        /* In the job's log too, with its VM, as every record about a job. */
        json_t *job = engine_job_json(c->d->engine, uuid);
        mig_log(MIG_LOG_INFO, uuid, json_string_value(json_object_get(job, "vm_uuid")),
                "job %s: %s requested over the control API: %s", uuid, action, msg);
        json_decref(job);
        respond_json(req, 200,
                     json_pack("{s:s, s:s, s:s}", "job", uuid, "action", action, "message", msg));
    }
}

/* ---- POST /jobs ---- */

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
        json_decref(s->body);
        s->body = NULL;
    }
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

/*
 * The API a refusal is about when the API could not be reached or failed
 * (a transport failure or a 5xx); NULL when the refusal is the API's
 * considered answer (a 4xx, a malformed object) or about something else.
 * The engine's messages put the cause after "<API>: ": either "HTTP <status>
 * ..." or the transport's "<METHOD> <url>: <why>" (lib/act.c mig_res_why).
 */
static const char *refusal_unavailable_api(const struct mig_refusal *r)
{
    static const struct {
        const char *rule, *api;
    } apis[] = {{"VmapiError", "VMAPI"},
                {"CnapiError", "CNAPI"},
                {"NapiError", "NAPI"},
                {"ImgapiError", "IMGAPI"}};
    if (r == NULL || r->rule == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(apis) / sizeof(apis[0]); i++) {
        if (strcmp(r->rule, apis[i].rule) != 0)
            continue;
        char key[16];
        snprintf(key, sizeof(key), "%s: ", apis[i].api);
        const char *why = strstr(r->message, key);
        if (why == NULL)
            return NULL;
        why += strlen(key);
        if (strncmp(why, "HTTP ", 5) == 0) {
            long status = strtol(why + 5, NULL, 10);
            return status >= 500 && status <= 599 ? apis[i].api : NULL;
        }
        return *why != '\0' ? apis[i].api : NULL;
    }
    return NULL;
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
            respond_json(req, 200, json_pack("{s:b, s:O}", "dry_run", 1, "plan", plan));
        } else if (err == 0 && job != NULL) {
            respond_json(req, 201, mig_job_to_json(job));
        } else if (err == 0) {
            respond_error(req, 500, "InternalError", "the engine returned neither job nor plan");
        } else if (err == MIG_EREFUSED && (api = refusal_unavailable_api(r)) != NULL) {
            /* The rule stays in the message: scripts and operators grep for it. */
            respond_error(req, 503, "ServiceUnavailable", "%s is unavailable (%s): %s", api,
                          r->rule, r->message);
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
    pump_schedule(c);
    /* After a stop, the last answer may be what the server waited for (main.c frees the
     * engine right after control_stop, while the listener is still closing). */
    control_maybe_finish(c);
}

/* Hands s (waiting, with a client) to the engine: it holds a reference until on_submit_done. */
static void submit_start(struct control *c, struct submit *s)
{
    json_t *body = s->body;
    s->body = NULL;
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
    int rc = engine_submit(c->d->engine, body, on_submit_done, s);
    json_decref(body);
    if (rc != 0) {
        /* The callback will not run: drop its reference and answer here. */
        c->nchecking--;
        h2o_req_t *req = s->req;
        submit_detach(s);
        h2o_mem_release_shared(s);
        const char *code;
        int status = submit_error_status(rc, &code);
        respond_error(req, status, code, "cannot submit the job: %s", mig_strerror(rc));
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
            respond_error(req, 400, "InvalidArgument", "unknown key \"%.*s\"", ECHO_MAX, key);
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
        respond_error(req, 400, "InvalidArgument", "mode \"%.*s\" is not full, incremental or auto",
                      ECHO_MAX, mode);
        return -EINVAL;
    }
    const char *transfer = json_string_value(json_object_get(body, "transfer"));
    if (transfer != NULL && strcmp(transfer, "relay") != 0 && strcmp(transfer, "direct") != 0) {
        respond_error(req, 400, "InvalidArgument", "transfer \"%.*s\" is not relay or direct",
                      ECHO_MAX, transfer);
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
    /* The checks are cheap and came first; a turn with the engine is not. */
    if (c->nchecking >= SUBMIT_CHECKING_MAX && c->nwaiting >= SUBMIT_WAITING_MAX) {
        json_decref(body);
        char after[16];
        int secs = submit_retry_after(c);
        snprintf(after, sizeof(after), "%d", secs);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, after,
                       strlen(after));
        respond_error(req, 503, "ServiceUnavailable",
                      "too many submissions at once (%d being checked, %d waiting); retry in %d s",
                      c->nchecking, c->nwaiting, secs);
        return;
    }

    /* The guard in the request's pool holds the first reference (see the file comment). */
    struct submit *s = h2o_mem_alloc_shared(NULL, sizeof(*s), NULL);
    memset(s, 0, sizeof(*s));
    s->c = c;
    s->req = req;
    s->body = body;
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
    if (w->req == NULL || w->sending || (w->pending_len == 0 && !w->final_queued))
        return;
    h2o_req_t *req = w->req;
    h2o_iovec_t buf = h2o_iovec_init(w->pending, w->pending_len);
    free(w->inflight);
    w->inflight = w->pending;
    w->pending = NULL;
    w->pending_len = 0;
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
    json_decref(job);
    watch_flush(w);
}

/* ---- POST /evacuations, GET /evacuations[/:uuid], GET /estimate ---- */

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
            respond_json(req, e->status, json_incref(evac));
        } else if (err == MIG_EREFUSED && (api = refusal_unavailable_api(&rf)) != NULL) {
            respond_error(req, 503, "ServiceUnavailable", "%s is unavailable (%s): %s", api,
                          code, rf.message);
        } else if (err == MIG_EREFUSED) {
            respond_error(req, 409, code != NULL ? code : "Refused", "%s", rf.message);
        } else {
            const char *status_code;
            int status = submit_error_status(err, &status_code);
            respond_error(req, status, code != NULL ? code : status_code, "%s",
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
    struct evac_req **guard = h2o_mem_alloc_shared(&req->pool, sizeof(*guard),
                                                   on_evac_req_disposed);
    *guard = e;
    h2o_mem_addref_shared(e);
    return e;
}

static void handle_evacuate(struct control *c, h2o_req_t *req)
{
    json_error_t jerr;
    json_t *body = req->entity.base != NULL ? json_loadb(req->entity.base, req->entity.len,
                                                         JSON_REJECT_DUPLICATES, &jerr)
                                            : NULL;
    if (!json_is_object(body)) {
        json_decref(body);
        respond_error(req, 400, "InvalidContent",
                      "the body must be a JSON object (server, mode, to, max_parallel, "
                      "no_reserve, dry_run)");
        return;
    }
    char err[256];
    struct evac_req *e = evac_req_new(c, req, 201);
    int rc = evac_start(c->d, body, on_evac_done, e, err, sizeof(err));
    json_decref(body);
    if (rc != 0) {
        e->req = NULL;
        h2o_mem_release_shared(e); /* the callback's reference: it will not run */
        respond_error(req, rc == -EINVAL ? 400 : 500, rc == -EINVAL ? "InvalidArgument" : "InternalError",
                      "%s", rc == -EINVAL ? err : mig_strerror(rc));
    }
}

static void handle_estimate(struct control *c, h2o_req_t *req)
{
    struct query_param params[] = {{"of", NULL}, {NULL, NULL}};
    if (parse_query(req, params) != 0)
        return;
    char err[256];
    struct evac_req *e = evac_req_new(c, req, 200);
    int rc = estimate_start(c->d, params[0].value, on_evac_done, e, err, sizeof(err));
    if (rc != 0) {
        e->req = NULL;
        h2o_mem_release_shared(e);
        respond_error(req, rc == -EINVAL ? 400 : 500, rc == -EINVAL ? "InvalidArgument" : "InternalError",
                      "%s", rc == -EINVAL ? err : mig_strerror(rc));
    }
}

static void handle_evacuation_get(struct control *c, h2o_req_t *req, const char *uuid)
{
    if (uuid == NULL) {
        json_t *all = evac_list_json(c->d);
        if (all == NULL)
            return respond_error(req, 500, "DatabaseError", "cannot read the evacuations");
        return respond_json(req, 200, all);
    }
    if (!mig_uuid_valid(uuid)) {
        char s[ECHO_MAX + 8];
        echo(uuid, strlen(uuid), s, sizeof(s));
        return respond_error(req, 400, "InvalidArgument", "\"%s\" is not an evacuation UUID", s);
    }
    json_t *rec = mig_store_evac_load(c->d->store, uuid);
    if (rec == NULL)
        return respond_error(req, 404, "ResourceNotFound", "no evacuation %s", uuid);
    json_t *out = evac_json(c->d, rec);
    json_decref(rec);
    respond_json(req, 200, out);
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
        if (!mig_uuid_valid(seg[1])) {
            char s[ECHO_MAX + 8];
            echo(seg[1], strlen(seg[1]), s, sizeof(s));
            return respond_error(req, 400, "InvalidArgument", "\"%s\" is not a job UUID", s);
        }
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
    if (n == 1 && strcmp(seg[0], "evacuations") == 0) {
        if (get)
            return handle_evacuation_get(c, req, NULL);
        if (post)
            return handle_evacuate(c, req);
        return respond_bad_method(req, "GET, HEAD, POST");
    }
    if (n == 2 && strcmp(seg[0], "evacuations") == 0) {
        if (!get)
            return respond_bad_method(req, "GET, HEAD");
        return handle_evacuation_get(c, req, seg[1]);
    }
    if (n == 1 && strcmp(seg[0], "estimate") == 0) {
        if (!get)
            return respond_bad_method(req, "GET, HEAD");
        return handle_estimate(c, req);
    }
    char path[ECHO_MAX + 8];
    echo(req->path_normalized.base, req->path_normalized.len, path, sizeof(path));
    respond_error(req, 404, "ResourceNotFound", "%s does not exist", path);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct control *c = ((struct route_handler *)self)->c;
    if (c->stopping) {
        respond_error(req, 503, "ServiceUnavailable", "migd is shutting down");
        return 0;
    }
    char m[32], p[ECHO_MAX + 8];
    echo(req->method.base, req->method.len, m, sizeof(m));
    echo(req->path.base, req->path.len, p, sizeof(p));
    log_debug("control: %s %s", m, p);
    if (check_request_text(req) != 0)
        return 0;
    route(c, req);
    return 0;
}

/* ---- connections ---- */

/*
 * Once stopping, every handle closed and every submission answered by the
 * engine (it holds references to c): dispose of h2o and free the server.
 */
static void control_maybe_finish(struct control *c)
{
    if (!c->stopping || c->finished || c->listener_open || !h2o_linklist_is_empty(&c->conns) ||
        c->nchecking > 0)
        return;
    c->finished = true;
    if (h2o_timeout_is_linked(&c->pump))
        h2o_timeout_unlink(&c->pump);
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
    if (h2o_timeout_is_linked(&conn->head_timeout))
        h2o_timeout_unlink(&conn->head_timeout);
    h2o_linklist_unlink(&conn->link);
    c->nconns--;
    free(conn->answer);
    free(conn);
    control_maybe_finish(c);
}

static void on_answer_written(h2o_socket_t *sock, const char *err)
{
    (void)err;
    h2o_socket_close(sock);
}

/*
 * Answers a connection that h2o never sees (its head refused, or too many
 * connections) with {code, message} in one write, then closes it.
 */
static void conn_answer(struct conn *conn, int status, const char *code, const char *msg,
                        int retry_after)
{
    json_t *j = json_pack("{s:s, s:s}", "code", code, "message", msg);
    char *body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    char extra[40] = "";
    if (retry_after > 0)
        snprintf(extra, sizeof(extra), "Retry-After: %d\r\n", retry_after);
    conn->answer =
        mig_asprintf("HTTP/1.1 %d %s\r\nServer: migd/%s\r\nContent-Type: "
                     "application/json\r\nContent-Length: %zu\r\nConnection: "
                     "close\r\n%s\r\n%s\n",
                     status, status_reason(status), MIGD_VERSION,
                     body != NULL ? strlen(body) + 1 : 3, extra, body != NULL ? body : "{}");
    free(body);
    h2o_socket_read_stop(conn->sock);
    h2o_iovec_t buf = h2o_iovec_init(conn->answer, strlen(conn->answer));
    h2o_socket_write(conn->sock, &buf, 1, on_answer_written);
}

/* The first head did not arrive in time (h2o's req_timeout): close, as h2o does. */
static void on_head_timeout(h2o_timeout_entry_t *entry)
{
    struct conn *conn = CONTAINER_OF(entry, struct conn, head_timeout);
    h2o_socket_close(conn->sock);
}

static bool crlf_only(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

/*
 * Reads until the request head is complete, then hands the connection to
 * h2o (which parses the head again from the same buffer); a head h2o would
 * answer with its plain-text 400 is answered here in JSON.
 */
static void on_head_read(h2o_socket_t *sock, const char *err)
{
    struct conn *conn = sock->data;
    if (err != NULL) {
        if (h2o_timeout_is_linked(&conn->head_timeout))
            h2o_timeout_unlink(&conn->head_timeout);
        h2o_socket_close(sock);
        return;
    }
    size_t len = sock->input->size < H2O_MAX_REQLEN ? sock->input->size : H2O_MAX_REQLEN;
    const char *method, *path;
    size_t method_len, path_len, num_headers = H2O_MAX_HEADERS;
    int minor;
    struct phr_header headers[H2O_MAX_HEADERS];
    int rc = phr_parse_request(sock->input->bytes, len, &method, &method_len, &path, &path_len,
                               &minor, headers, &num_headers, conn->head_seen);
    conn->head_seen = len;
    if (rc == -2 && len < H2O_MAX_REQLEN)
        return;
    h2o_timeout_unlink(&conn->head_timeout);
    if (rc > 0) {
        h2o_socket_read_stop(sock);
        h2o_http1_accept(&conn->c->accept_ctx, sock, conn->connected_at);
        return;
    }
    h2o_iovec_t none = {NULL, 0};
    if (rc == -1 && len <= 4 && crlf_only(sock->input->bytes, len)) {
        h2o_socket_close(sock); /* what h2o does with stray line ends */
        return;
    }
    char msg[128];
    if (rc == -2)
        snprintf(msg, sizeof(msg), "malformed request: the request head is longer than %d bytes",
                 H2O_MAX_REQLEN);
    else
        snprintf(msg, sizeof(msg), "malformed request: not an HTTP/1.x request head");
    log_refusal(none, none, NULL, 400, "BadRequest", msg);
    conn_answer(conn, 400, "BadRequest", msg, 0);
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
    c->nconns++;
    int rc = uv_accept(listener, (uv_stream_t *)&conn->pipe);
    if (rc != 0 || c->stopping) {
        if (rc != 0)
            log_warn("control: accept failed: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&conn->pipe, on_conn_closed);
        return;
    }
    gettimeofday(&conn->connected_at, NULL);
    conn->sock = h2o_uv_socket_create((uv_stream_t *)&conn->pipe, on_conn_closed);
    conn->sock->data = conn;
    if (c->nconns > c->max_conns) {
        char msg[128];
        snprintf(msg, sizeof(msg), "too many connections (%d); retry in 1 s", c->max_conns);
        h2o_iovec_t none = {NULL, 0};
        log_refusal(none, none, NULL, 503, "ServiceUnavailable", msg);
        conn_answer(conn, 503, "ServiceUnavailable", msg, 1);
        return;
    }
    conn->head_timeout.cb = on_head_timeout;
    h2o_timeout_link(c->ctx.loop, &c->ctx.http1.req_timeout, &conn->head_timeout);
    h2o_socket_read_start(conn->sock, on_head_read);
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
    if (chmod(path, 0600) != 0 || listen(fd, 128) != 0) {
        e = errno;
        close(fd);
        unlink(path);
        snprintf(err, errsz, "cannot chmod or listen on %s: %s", path, strerror(e));
        return -e;
    }
    return fd;
}

/* Half the descriptor limit, within CONNS_MIN..CONNS_MAX: the rest is for jobs. */
static int conns_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return CONNS_MAX;
    rlim_t half = rl.rlim_cur / 2;
    return half < CONNS_MIN ? CONNS_MIN : half > CONNS_MAX ? CONNS_MAX : (int)half;
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
    c->max_conns = conns_limit();
    c->pump.cb = on_pump;
    h2o_linklist_init_anchor(&c->conns);
    h2o_linklist_init_anchor(&c->checking);
    h2o_linklist_init_anchor(&c->waiting);
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
    /* h2o answers some errors before routing, on the host's fallback path: both get the filter. */
    h2o_pathconf_t *paths[] = {pathconf, &host->fallback_path};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct json_errors_filter *f = (void *)h2o_create_filter(paths[i], sizeof(*f));
        f->super.on_setup_ostream = on_setup_ostream;
        f->c = c;
    }
    h2o_context_init(&c->ctx, d->loop, &c->config);
    c->accept_ctx.ctx = &c->ctx;
    c->accept_ctx.hosts = c->config.hosts;

    uv_pipe_init(d->loop, &c->listener, 0);
    c->listener.data = c;
    c->listener_open = true;
    int rc = uv_pipe_open(&c->listener, fd);
    bool owned = rc == 0; /* from here uv_close closes fd */
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&c->listener, 128, on_connection);
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
    if (h2o_timeout_is_linked(&c->pump))
        h2o_timeout_unlink(&c->pump);

    /* Requests waiting for a turn or for the engine get an answer now: the engine goes next. */
    h2o_linklist_t *lists[] = {&c->waiting, &c->checking};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        while (!h2o_linklist_is_empty(lists[i])) {
            struct submit *s = CONTAINER_OF(lists[i]->next, struct submit, link);
            h2o_req_t *req = s->req;
            submit_detach(s);
            respond_error(req, 503, "ServiceUnavailable", "migd is shutting down");
        }
    }
    /* Streams end cleanly after what they have queued. */
    while (!h2o_linklist_is_empty(&c->watches)) {
        struct watch *w = CONTAINER_OF(c->watches.next, struct watch, link);
        watch_unregister(w);
        w->final_queued = true;
        watch_flush(w);
    }
    /* h2o (or on_head_read) notices EOF or a failed write, and closes each one. */
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
