/*
 * control.c: the REST control API of product.md, served as HTTP/1.1 by h2o
 * (libuv flavour) on a Unix domain socket of mode 0600.  This file is the
 * one adapter between h2o and the rest of migd: it owns h2o, the listening
 * socket and the connections, and hands each request to the route table
 * (control_routes.c); control_int.h says which file does what else.
 * Errors are {"code": "...", "message": "..."} as Triton's services answer
 * them, and every refused request is logged at info with its rule.
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
 * Load.  Connections are capped below the descriptor limit; a connection
 * beyond the cap is answered 503 before h2o sees it.  POST /jobs are
 * admitted by control_admit.c; pages of GET /jobs and watch streams are
 * sent a piece at a time by control_stream.c.
 *
 * Lifetimes.  Stopping answers what is pending (control_admit_stop), ends
 * every stream and page (control_stream_stop), shuts every connection down
 * so that h2o closes it through its own error path, and frees the server
 * once the last connection's handle is closed and the engine has answered
 * every submission it holds (control_maybe_finish).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <h2o.h>
#include <h2o/http1.h>

#include "control_int.h"
#include "log.h"
#include "util.h"

/* Connections at once: half the descriptor limit, within these bounds. */
#define CONNS_MIN 16
#define CONNS_MAX 1024

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
    control_echo(text, tn, body, sizeof(body));
    if (body[0] == '\0')
        snprintf(body, sizeof(body), "%s", req->res.reason != NULL ? req->res.reason : "error");

    int status = req->res.status;
    char msg[512];
    if (status == 413)
        snprintf(msg, sizeof(msg), "the body is larger than %d bytes (64 KiB)", CONTROL_MAX_BODY);
    else if (status == 404 && req->path_normalized.base != NULL) {
        char path[ECHO_MAX + 8];
        control_echo(req->path_normalized.base, req->path_normalized.len, path, sizeof(path));
        snprintf(msg, sizeof(msg), "%s does not exist", path);
    } else if (status == 400)
        snprintf(msg, sizeof(msg), "malformed request: %s", body);
    else
        snprintf(msg, sizeof(msg), "%s", body);
    const char *code = h2o_error_code(status);
    control_log_refusal(req->method, req->path, NULL, status, code, msg);

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

/* ---- requests ---- */

/* The handler h2o calls for every request. */
static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct control *c = ((struct route_handler *)self)->c;
    if (c->stopping) {
        control_respond_error(req, 503, "ServiceUnavailable", "migd is shutting down");
        return 0;
    }
    char m[32], p[ECHO_MAX + 8];
    control_echo(req->method.base, req->method.len, m, sizeof(m));
    control_echo(req->path.base, req->path.len, p, sizeof(p));
    log_debug("control: %s %s", m, p);
    if (control_check_request_text(req) != 0)
        return 0;
    control_route(c, req);
    return 0;
}

/* ---- connections ---- */

/* Disposes of h2o and frees c once nothing is left (control_int.h). */
void control_maybe_finish(struct control *c)
{
    if (!c->stopping || c->finished || c->listener_open || c->slicer_open ||
        !h2o_linklist_is_empty(&c->conns) || c->nchecking > 0)
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
                     status, control_status_reason(status), MIGD_VERSION,
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
    control_log_refusal(none, none, NULL, 400, "BadRequest", msg);
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
        control_log_refusal(none, none, NULL, 503, "ServiceUnavailable", msg);
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

static void on_slicer_closed(uv_handle_t *handle)
{
    struct control *c = handle->data;
    c->slicer_open = false;
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
    h2o_linklist_init_anchor(&c->conns);
    control_admit_init(c);
    control_stream_init(c);
    uv_idle_init(d->loop, &c->slicer);
    c->slicer.data = c;
    c->slicer_open = true;

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
        uv_close((uv_handle_t *)&c->slicer, on_slicer_closed);
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
    /* Requests waiting for a turn or for the engine get an answer now: the engine goes next. */
    control_admit_stop(c);
    /* Streams end after what they have queued; pages waiting for a slice end now. */
    control_stream_stop(c);
    uv_close((uv_handle_t *)&c->slicer, on_slicer_closed);
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
