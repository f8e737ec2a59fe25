/*
 * fuzz_control.c: a libFuzzer target for the control API's request
 * handling (daemon/control.c), built with -DMIGD_FUZZ=ON (clang, libFuzzer,
 * ASan, UBSan).
 *
 * Each input is the bytes a client sends on one connection.  The real
 * control server (control_start: the head check, h2o's HTTP/1 parser, the
 * JSON error filter, routing, query and body checks, the submission queue,
 * watch streams) runs on a libuv loop in this process, on a Unix socket, in
 * front of a stub engine defined here (the engine_* functions of daemon.h)
 * and a real, empty store.  The input is written to the socket, the write
 * side is shut, and the loop runs until the server closes the connection.
 *
 * Besides the sanitizers, the answer itself is checked, and a violation is
 * a crash (a finding):
 *  - nothing, or HTTP/1.1 responses (a 100 Continue, then one final answer)
 *    with "connection: close", complete by Content-Length or chunked (or,
 *    to an HTTP/1.0 client, by the close);
 *  - every status >= 400 is application/json {"code": string,
 *    "message": string} (h2o's own answers included);
 *  - every status >= 400 logged exactly one "request refused" line, and no
 *    other answer logged one.
 *
 * The stub engine answers by the request's content: a submission's outcome
 * by its vm_uuid's last character, a job's state by its uuid's last
 * character, an action's result by the uuid's second-to-last character
 * (some messages hold bytes that are not UTF-8, as a CN's stderr may).
 *
 * Run: fuzz_control [-max_total_time=60] [-dict=tests/fuzz/control.dict] CORPUS_DIR
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "err.h"
#include "log.h"
#include "util.h"

/* ---- the stub engine ---- */

struct stub_submit {
    engine_submit_cb cb;
    void *arg;
    char outcome;
    struct stub_submit *next;
};

struct stub_watch {
    engine_watch_fn fn;
    void *arg;
    char uuid[MIG_UUID_LEN + 1];
    int events;
    bool removed;
    struct stub_watch *next;
};

/* An evacuation or estimate being "planned": answered on the next tick. */
struct stub_evac {
    evac_cb cb;
    void *arg;
    char outcome;
    struct stub_evac *next;
};

struct engine {
    uv_timer_t tick;
    struct stub_submit *submits;
    struct stub_watch *watches;
    struct stub_evac *evacs;
};

static void stub_arm(struct engine *e);

/* A job's public JSON: its state by the uuid's last character. */
static json_t *stub_job(const char *uuid, int step)
{
    static const char *states[] = {"succeeded", "running", "waiting", "switched",
                                   "queued",    "failed",  "aborted", "rolled_back"};
    char last = uuid[strlen(uuid) - 1];
    const char *state = states[(last - '0') & 7];
    return json_pack("{s:s, s:s, s:s, s:i, s:{s:I, s:I}}", "uuid", uuid, "vm_uuid",
                     "00000000-0000-0000-0000-0000000000aa", "state", state, "step", step,
                     "progress", "bytes_sent", (json_int_t)step * 1000, "bytes_total",
                     (json_int_t)10000);
}

json_t *engine_job_json(struct engine *e, const char *job_uuid)
{
    (void)e;
    if (!mig_uuid_valid(job_uuid))
        return NULL;
    char last = job_uuid[strlen(job_uuid) - 1];
    if (last < '0' || last > '7')
        return NULL;
    return stub_job(job_uuid, 0);
}

json_t *engine_jobs_json(struct engine *e, const char *state, const char *vm_uuid, bool all,
                         int64_t limit, int64_t offset)
{
    (void)e;
    (void)all;
    if (state != NULL && strcmp(state, "failed") == 0)
        return NULL; /* as a database error */
    json_t *out = json_array();
    for (int64_t i = offset; i < 5 && i < offset + limit; i++) {
        char uuid[MIG_UUID_LEN + 1];
        snprintf(uuid, sizeof(uuid), "00000000-0000-0000-0000-00000000000%d", (int)i);
        json_t *job = stub_job(uuid, 0);
        if (vm_uuid != NULL)
            json_object_set_new(job, "vm_uuid", json_string(vm_uuid));
        json_array_append_new(out, job);
    }
    return out;
}

json_t *engine_stats_json(struct engine *e)
{
    (void)e;
    return json_pack("{s:{s:i, s:i}, s:i, s:i}", "jobs", "running", 1, "succeeded", 2, "active", 1,
                     "unreadable", 0);
}

char *engine_metrics_text(struct engine *e, size_t *len)
{
    (void)e;
    char *out = mig_strdup("# TYPE migd_jobs gauge\nmigd_jobs{state=\"running\"} 1\n");
    *len = strlen(out);
    return out;
}

int engine_action(struct engine *e, const char *job_uuid, const char *action, char *msg,
                  size_t msgsz)
{
    (void)e;
    switch (job_uuid[strlen(job_uuid) - 2]) {
    case '1':
        return -ENOENT;
    case '2':
        snprintf(msg, msgsz, "job %s is busy with \xff\xfe %s", job_uuid, action);
        return -EINVAL;
    case '3':
        snprintf(msg, msgsz, "the database refused a write");
        return MIG_EDB;
    case '4':
        return -EIO;
    default:
        snprintf(msg, msgsz, "%s will happen", action);
        return 0;
    }
}

int engine_submit(struct engine *e, json_t *body, engine_submit_cb cb, void *arg)
{
    const char *vm = json_string_value(json_object_get(body, "vm_uuid"));
    char outcome = vm != NULL && vm[0] != '\0' ? vm[strlen(vm) - 1] : '0';
    if (outcome == 'x')
        return -EINVAL;
    if (outcome == 'y')
        return MIG_EDB;
    struct stub_submit *s = mig_calloc(1, sizeof(*s));
    s->cb = cb;
    s->arg = arg;
    s->outcome = outcome;
    s->next = e->submits;
    e->submits = s;
    stub_arm(e);
    return 0;
}

/* Answers one submission as its outcome character says. */
static void stub_answer(struct stub_submit *s)
{
    struct mig_refusal r = {.rule = NULL};
    switch (s->outcome) {
    case '1': {
        json_t *plan = json_pack("{s:[s,s]}", "actions", "prepare.snapshot", "sync.send");
        s->cb(s->arg, 0, NULL, NULL, plan);
        json_decref(plan);
        return;
    }
    case '2':
        r.rule = "VmAlreadyMigrating";
        snprintf(r.message, sizeof(r.message), "VM already has unfinished job");
        break;
    case '3':
        r.rule = "VmapiError";
        snprintf(r.message, sizeof(r.message),
                 "cannot read VM x from VMAPI: GET http://127.0.0.1:9/vms/x: Connection refused");
        break;
    case '4':
        r.rule = "CnapiError";
        snprintf(r.message, sizeof(r.message),
                 "cannot list servers from CNAPI: HTTP 503 ServiceUnavailableError: down");
        break;
    case '5':
        r.rule = "NapiError";
        snprintf(r.message, sizeof(r.message), "NAPI: HTTP 404 \xc3\x28 not found");
        break;
    case '6':
        r.rule = "ImgapiError";
        snprintf(r.message, sizeof(r.message), "IMGAPI returned garbage");
        break;
    case '7':
        r.rule = "ShuttingDown";
        snprintf(r.message, sizeof(r.message), "migd is shutting down");
        s->cb(s->arg, MIG_ECANCELED, &r, NULL, NULL);
        return;
    case '8':
        r.rule = "InternalError";
        memset(r.message, 'z', sizeof(r.message) - 2);
        r.message[sizeof(r.message) - 3] = '\xe2'; /* a character cut short */
        r.message[sizeof(r.message) - 2] = '\0';
        s->cb(s->arg, MIG_EDB, &r, NULL, NULL);
        return;
    case '9':
        s->cb(s->arg, 0, NULL, NULL, NULL);
        return;
    default: {
        struct mig_job *job = mig_job_new();
        snprintf(job->vm_uuid, sizeof(job->vm_uuid), "00000000-0000-0000-0000-0000000000bb");
        s->cb(s->arg, 0, NULL, job, NULL);
        mig_job_free(job);
        return;
    }
    }
    s->cb(s->arg, MIG_EREFUSED, &r, NULL, NULL);
}

bool engine_job_at_rest(struct engine *e, const char *job_uuid)
{
    json_t *job = engine_job_json(e, job_uuid);
    const char *st = json_string_value(json_object_get(job, "state"));
    /* st lives in job: decided before the reference goes. */
    bool rest = st == NULL || (strcmp(st, "running") != 0 && strcmp(st, "queued") != 0);
    json_decref(job);
    return rest;
}

void *engine_watch(struct engine *e, const char *job_uuid, engine_watch_fn fn, void *arg)
{
    json_t *job = engine_job_json(e, job_uuid);
    json_decref(job);
    if (job == NULL || job_uuid[strlen(job_uuid) - 1] == '7')
        return NULL; /* a job that vanished between the lookup and the watch */
    struct stub_watch *w = mig_calloc(1, sizeof(*w));
    w->fn = fn;
    w->arg = arg;
    snprintf(w->uuid, sizeof(w->uuid), "%s", job_uuid);
    w->next = e->watches;
    e->watches = w;
    stub_arm(e);
    return w;
}

void engine_unwatch(struct engine *e, void *handle)
{
    for (struct stub_watch *w = e->watches; w != NULL; w = w->next)
        if (w == handle)
            w->removed = true;
}

/* One turn of the stub: answers every submission, moves every watched job one step. */
/* The evacuate.c functions control.c calls: answers by the name's last character. */
static int stub_evac(struct migd *d, const char *name, evac_cb cb, void *arg, char *err,
                     size_t errsz)
{
    if (name == NULL || name[0] == '\0') {
        snprintf(err, errsz, "a server is required");
        return -EINVAL;
    }
    struct stub_evac *v = mig_calloc(1, sizeof(*v));
    v->cb = cb;
    v->arg = arg;
    v->outcome = name[strlen(name) - 1];
    v->next = d->engine->evacs;
    d->engine->evacs = v;
    stub_arm(d->engine);
    return 0;
}

int evac_start(struct migd *d, json_t *body, evac_cb cb, void *arg, char *err, size_t errsz)
{
    return stub_evac(d, json_string_value(json_object_get(body, "server")), cb, arg, err, errsz);
}

int estimate_start(struct migd *d, const char *what, evac_cb cb, void *arg, char *err,
                   size_t errsz)
{
    return stub_evac(d, what, cb, arg, err, errsz);
}

json_t *evac_json(struct migd *d, json_t *record)
{
    (void)d;
    return json_deep_copy(record);
}

json_t *evac_list_json(struct migd *d)
{
    return mig_store_evac_list(d->store);
}

static void stub_evac_answer(struct stub_evac *v)
{
    switch (v->outcome) {
    case '1':
        v->cb(v->arg, MIG_EREFUSED, "TargetNotFound", "CNAPI has no server with that name", NULL);
        return;
    case '2':
        v->cb(v->arg, MIG_EREFUSED, "CnapiError",
              "cannot list servers from CNAPI: HTTP 503 ServiceUnavailableError: down", NULL);
        return;
    case '3':
        v->cb(v->arg, MIG_EDB, "DatabaseError", "cannot record the evacuation", NULL);
        return;
    default: {
        json_t *ev = json_pack("{s:s, s:s, s:[], s:[]}", "uuid",
                               "00000000-0000-0000-0000-0000000000cc", "state", "plan", "plan",
                               "attention");
        v->cb(v->arg, 0, NULL, NULL, ev);
        json_decref(ev);
    }
    }
}

static void on_stub_tick(uv_timer_t *t)
{
    struct engine *e = t->data;
    struct stub_evac *evacs = e->evacs;
    e->evacs = NULL;
    while (evacs != NULL) {
        struct stub_evac *v = evacs;
        evacs = v->next;
        stub_evac_answer(v);
        free(v);
    }
    struct stub_submit *subs = e->submits;
    e->submits = NULL;
    while (subs != NULL) {
        struct stub_submit *s = subs;
        subs = s->next;
        stub_answer(s);
        free(s);
    }
    for (struct stub_watch *w = e->watches; w != NULL; w = w->next) {
        if (w->removed)
            continue;
        w->events++;
        bool final = w->events >= 3;
        json_t *job = stub_job(w->uuid, w->events);
        w->fn(w->arg, job, final);
        json_decref(job);
        if (final)
            w->removed = true;
    }
    for (struct stub_watch **pp = &e->watches; *pp != NULL;) {
        struct stub_watch *w = *pp;
        if (w->removed) {
            *pp = w->next;
            free(w);
        } else {
            pp = &w->next;
        }
    }
    stub_arm(e);
}

static void stub_arm(struct engine *e)
{
    if ((e->submits != NULL || e->watches != NULL || e->evacs != NULL) &&
        !uv_is_active((uv_handle_t *)&e->tick))
        uv_timer_start(&e->tick, on_stub_tick, 0, 0);
}

/* ---- the client side of one input ---- */

struct client {
    uv_poll_t poll;
    int fd;
    const uint8_t *out;
    size_t out_len, out_off;
    bool shut;
    char *in;
    size_t in_len, in_cap;
    bool done;
};

static void on_client_io(uv_poll_t *p, int status, int events)
{
    struct client *cl = p->data;
    if (status < 0) {
        cl->done = true;
        return;
    }
    if ((events & UV_WRITABLE) && !cl->shut) {
        while (cl->out_off < cl->out_len) {
            ssize_t n = write(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off);
            if (n < 0)
                break;
            cl->out_off += (size_t)n;
        }
        if (cl->out_off == cl->out_len || (errno != EAGAIN && errno != EINTR)) {
            shutdown(cl->fd, SHUT_WR);
            cl->shut = true;
        }
    }
    if (events & (UV_READABLE | UV_DISCONNECT)) {
        for (;;) {
            if (cl->in_cap - cl->in_len < 4096) {
                cl->in_cap = cl->in_cap * 2 + 8192;
                cl->in = realloc(cl->in, cl->in_cap);
            }
            ssize_t n = read(cl->fd, cl->in + cl->in_len, cl->in_cap - cl->in_len - 1);
            if (n > 0) {
                cl->in_len += (size_t)n;
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EINTR))
                cl->done = true;
            break;
        }
    }
    if (cl->done)
        uv_poll_stop(p);
    else
        uv_poll_start(p, UV_READABLE | UV_DISCONNECT | (cl->shut ? 0 : UV_WRITABLE), on_client_io);
}

/* ---- checking the answer ---- */

static __attribute__((noreturn)) void finding(const char *why, const char *resp, size_t len)
{
    fprintf(stderr, "fuzz_control: %s; the answer (%zu bytes):\n%.*s\n", why, len,
            (int)(len < 4000 ? len : 4000), resp);
    abort();
}

/* The value of header name in head[0..len) (case-insensitive), or NULL; *vlen its length. */
static const char *header(const char *head, size_t len, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = memchr(head, '\n', len);
    const char *end = head + len;
    while (p != NULL && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - line) > nl + 1 && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (v < eol && *v == ' ')
                v++;
            *vlen = (size_t)(eol - v);
            if (*vlen > 0 && v[*vlen - 1] == '\r')
                (*vlen)--;
            return v;
        }
        p = eol;
    }
    return NULL;
}

/* Checks one connection's answer (see the file comment); returns the final status or 0. */
static int check_answer(const char *resp, size_t len)
{
    const char *p = resp, *end = resp + len;
    if (len == 0)
        return 0;
    for (;;) {
        if ((size_t)(end - p) < 12 || memcmp(p, "HTTP/1.1 ", 9) != 0)
            finding("not an HTTP/1.1 status line", resp, len);
        int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        const char *hend = NULL;
        for (const char *q = p; q + 4 <= end; q++) {
            if (memcmp(q, "\r\n\r\n", 4) == 0) {
                hend = q + 4;
                break;
            }
        }
        if (hend == NULL)
            finding("a response head without its end", resp, len);
        size_t hlen = (size_t)(hend - p);
        if (status >= 100 && status < 200) {
            p = hend; /* 100 Continue, then the answer (none if the body never came) */
            if (p == end)
                return 0;
            continue;
        }
        size_t vl;
        const char *v = header(p, hlen, "connection", &vl);
        if (v == NULL || vl != 5 || strncasecmp(v, "close", 5) != 0)
            finding("an answer without Connection: close", resp, len);
        const char *body = hend;
        size_t blen = (size_t)(end - hend);
        v = header(p, hlen, "content-length", &vl);
        if (v != NULL) {
            size_t cl = strtoul(v, NULL, 10);
            if (blen != cl && blen != 0) /* 0: the answer to a HEAD */
                finding("a body that is not its Content-Length", resp, len);
        } else if ((v = header(p, hlen, "transfer-encoding", &vl)) != NULL) {
            if (vl != 7 || strncasecmp(v, "chunked", 7) != 0)
                finding("a transfer-encoding that is not chunked", resp, len);
            if (blen < 5 || memcmp(end - 5, "0\r\n\r\n", 5) != 0)
                finding("a chunked answer without its last chunk", resp, len);
        } /* else delimited by the close (a stream to an HTTP/1.0 client) */
        if (status >= 400) {
            v = header(p, hlen, "content-type", &vl);
            if (v == NULL || vl != 16 || strncasecmp(v, "application/json", 16) != 0)
                finding("an error that is not application/json", resp, len);
            if (blen != 0) {
                json_error_t jerr;
                json_t *j = json_loadb(body, blen, 0, &jerr);
                if (!json_is_object(j) || !json_is_string(json_object_get(j, "code")) ||
                    !json_is_string(json_object_get(j, "message")) || json_object_size(j) != 2)
                    finding("an error body that is not {code, message}", resp, len);
                json_decref(j);
            }
        }
        return status;
    }
}

/* ---- the server, once ---- */

static uv_loop_t *loop;
static struct migd daemon_state;
static char sock_path[108];
static char *log_buf;
static size_t log_len;

static char work_dir[64];

/* Removes the socket, the database and their directory when libFuzzer exits. */
static void cleanup(void)
{
    static const char *files[] = {"migd.sock", "migd.sqlite", "migd.sqlite-wal", "migd.sqlite-shm",
                                  "migd.sqlite-journal"};
    char path[128];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", work_dir, files[i]);
        unlink(path);
    }
    rmdir(work_dir);
}

static void setup(void)
{
    loop = uv_default_loop();
    signal(SIGPIPE, SIG_IGN); /* the server may close before the whole input is written */
    static struct engine stub;
    uv_timer_init(loop, &stub.tick);
    stub.tick.data = &stub;
    snprintf(work_dir, sizeof(work_dir), "/tmp/fuzz_control.XXXXXX");
    if (mkdtemp(work_dir) == NULL)
        abort();
    atexit(cleanup);
    char db[256], err[256];
    snprintf(db, sizeof(db), "%s/migd.sqlite", work_dir);
    snprintf(sock_path, sizeof(sock_path), "%s/migd.sock", work_dir);
    daemon_state.loop = loop;
    daemon_state.engine = &stub;
    daemon_state.started_ms = mig_now_ms();
    mig_log_init("migd", MIG_LOG_FATAL, NULL); /* the store's schema steps */
    if (mig_store_open(db, &daemon_state.store, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_control: %s\n", err);
        abort();
    }
    if (control_start(&daemon_state, sock_path, &daemon_state.control, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_control: %s\n", err);
        abort();
    }
}

static size_t count(const char *hay, size_t len, const char *needle)
{
    size_t n = 0, nl = strlen(needle);
    for (size_t i = 0; i + nl <= len; i++)
        if (memcmp(hay + i, needle, nl) == 0)
            n++;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (loop == NULL)
        setup();
    /* The log of this input, in memory: every refusal must be in it, once. */
    FILE *log = open_memstream(&log_buf, &log_len);
    mig_log_init("migd", MIG_LOG_DEBUG, log);

    struct client cl = {.out = data, .out_len = size};
    cl.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
    if (cl.fd < 0 || connect(cl.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        abort();
    uv_poll_init(loop, &cl.poll, cl.fd);
    cl.poll.data = &cl;
    uv_poll_start(&cl.poll, UV_READABLE | UV_WRITABLE | UV_DISCONNECT, on_client_io);
    while (!cl.done)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&cl.poll, NULL);
    /* The server's side closes in this turn (or already has): nothing is left for the next input.
     */
    uv_run(loop, UV_RUN_NOWAIT);
    close(cl.fd);

    int status = check_answer(cl.in, cl.in_len);
    fflush(log);
    /* As bunyan writes it: a path that says "request refused" is escaped inside msg. */
    size_t refused = count(log_buf, log_len, "\"msg\":\"request refused: ");
    if (refused != (status >= 400 ? 1u : 0u)) {
        fprintf(stderr, "fuzz_control: %zu refusal lines for status %d; log:\n%.*s\n", refused,
                status, (int)log_len, log_buf);
        finding("a refusal not logged once", cl.in, cl.in_len);
    }
    mig_log_init("migd", MIG_LOG_DEBUG, NULL);
    fclose(log);
    free(log_buf);
    log_buf = NULL;
    free(cl.in);
    return 0;
}
