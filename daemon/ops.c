/*
 * ops.c: one owner's operations through the SSH and HTTP adapters (ops.h).
 * The result's strings are copies owned here, valid until the next op.  An
 * operation the adapters refuse to start, or a command a builder refused
 * (NULL), completes through the timer so the owner sees one path only.
 * A serial op (mig_op.serial) waits its turn behind the one running on
 * the same CN.
 */
#include <stdlib.h>
#include <string.h>

#include "cn.h"
#include "err.h"
#include "log.h"
#include "ops.h"
#include "util.h"

static void start_now(struct ops *o, const struct mig_op *op, const struct mig_peers *peers,
                      int http_retries, uint64_t limit_bytes_s);

/*
 * Serial ops: per CN (its admin IP), the one running and a FIFO of those
 * waiting.  Module state, as the daemon has one loop; a CN's entry exists
 * only while one of its serial ops runs.
 */
struct serial_wait {
    struct ops *o;
    const struct mig_op *op; /* the owner's, kept until its op completes */
    struct mig_peers peers;  /* its strings the owner's, as op's */
    int http_retries;
    uint64_t limit_bytes_s;
    struct serial_wait *next;
};
struct serial_cn {
    char host[64];
    struct ops *holder;
    struct serial_wait *head, *tail;
    struct serial_cn *next;
};
static struct serial_cn *serial_cns;

/* True when op may start now (not serial, or its CN is free: o holds it). */
static bool serial_admit(struct ops *o, const struct mig_op *op, const struct mig_peers *peers,
                         int http_retries, uint64_t limit_bytes_s)
{
    const char *host = mig_peers_ip(peers, op->on);
    if (!op->serial || op->kind != MIG_OP_SSH || host == NULL)
        return true;
    struct serial_cn *c = serial_cns;
    while (c != NULL && strcmp(c->host, host) != 0)
        c = c->next;
    if (c == NULL) {
        c = mig_calloc(1, sizeof(*c));
        snprintf(c->host, sizeof(c->host), "%s", host);
        c->next = serial_cns;
        serial_cns = c;
    }
    if (c->holder == NULL) {
        c->holder = o;
        return true;
    }
    struct serial_wait *w = mig_calloc(1, sizeof(*w));
    *w = (struct serial_wait){o, op, *peers, http_retries, limit_bytes_s, NULL};
    if (c->tail != NULL)
        c->tail->next = w;
    else
        c->head = w;
    c->tail = w;
    return false;
}

/* o's op ended: the CN it held goes to the next waiter, or is forgotten. */
static void serial_release(struct ops *o)
{
    for (struct serial_cn **pc = &serial_cns; *pc != NULL; pc = &(*pc)->next) {
        struct serial_cn *c = *pc;
        if (c->holder != o)
            continue;
        struct serial_wait *w = c->head;
        if (w == NULL) {
            *pc = c->next;
            free(c);
            return;
        }
        c->head = w->next;
        if (c->head == NULL)
            c->tail = NULL;
        c->holder = w->o;
        struct serial_wait next = *w;
        free(w);
        start_now(next.o, next.op, &next.peers, next.http_retries, next.limit_bytes_s);
        return;
    }
}

/* Takes o out of a CN's queue; true when it was waiting there. */
static bool serial_forget(struct ops *o)
{
    for (struct serial_cn *c = serial_cns; c != NULL; c = c->next) {
        struct serial_wait *prev = NULL;
        for (struct serial_wait *w = c->head; w != NULL; prev = w, w = w->next) {
            if (w->o != o)
                continue;
            if (prev != NULL)
                prev->next = w->next;
            else
                c->head = w->next;
            if (c->tail == w)
                c->tail = prev;
            free(w);
            return true;
        }
    }
    return false;
}

static void clear_result(struct ops *o)
{
    free(o->out);
    free(o->errout);
    json_decref(o->json);
    o->out = o->errout = NULL;
    o->json = NULL;
    memset(&o->res, 0, sizeof(o->res));
    o->res.exit_status = o->res.src_status = o->res.dst_status = -1;
}

static char *copy_text(const char *s, size_t len)
{
    char *p = mig_malloc(len + 1);
    if (len > 0)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* Points res's strings at the copies (never NULL). */
static void settle(struct ops *o)
{
    if (o->out == NULL)
        o->out = mig_strdup("");
    if (o->errout == NULL)
        o->errout = mig_strdup("");
    o->res.out = o->out;
    o->res.errout = o->errout;
    o->res.json = o->json;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct ops *o = h->data;
    if (o->on_closed != NULL)
        o->on_closed(o->closed_arg);
}

/* The outstanding operation completed: tell the owner, or finish closing. */
static void complete(struct ops *o)
{
    serial_release(o);
    o->busy = false;
    if (o->closing) {
        clear_result(o);
        uv_close((uv_handle_t *)&o->timer, on_timer_closed);
        return;
    }
    settle(o);
    o->done(o->owner, &o->res);
}

static void on_timer(uv_timer_t *t)
{
    struct ops *o = t->data;
    o->deliver = false;
    complete(o);
}

int ops_init(struct ops *o, struct migd *d, void *owner, ops_done_fn done,
             ops_progress_fn progress)
{
    memset(o, 0, sizeof(*o));
    o->d = d;
    o->owner = owner;
    o->done = done;
    o->progress = progress;
    clear_result(o);
    int rc = uv_timer_init(d->loop, &o->timer);
    if (rc != 0)
        return rc;
    o->timer.data = o;
    return 0;
}

/* Completes from the loop with err and a detail (an op that could not start). */
static void fail_later(struct ops *o, int err, const char *detail)
{
    o->res.err = err;
    snprintf(o->res.detail, sizeof(o->res.detail), "%s", detail);
    o->deliver = true;
    uv_timer_start(&o->timer, on_timer, 0, 0);
}

/* A direct send's stderr as it comes: zfs send -v's lines are its progress. */
static void on_stream_stderr(void *arg, const char *data, size_t n)
{
    struct ops *o = arg;
    uint64_t before = mig_send_progress_bytes(&o->sent);
    mig_send_progress_feed(&o->sent, data, n);
    uint64_t now = mig_send_progress_bytes(&o->sent);
    if (now != before && !o->closing && o->progress != NULL)
        o->progress(o->owner, now);
}

static void on_ssh_done(void *arg, const struct mig_ssh_result *r)
{
    struct ops *o = arg;
    if (o->stream)
        o->res.bytes = mig_send_progress_bytes(&o->sent);
    o->res.err = r->err_code;
    o->res.exit_status = r->exit_status;
    o->out = copy_text(r->out != NULL ? r->out : "", r->out != NULL ? r->out_len : 0);
    o->errout = copy_text(r->err != NULL ? r->err : "", r->err != NULL ? r->err_len : 0);
    snprintf(o->res.detail, sizeof(o->res.detail), "%s", r->detail);
    complete(o);
}

static void on_relay_progress(void *arg, uint64_t bytes)
{
    struct ops *o = arg;
    if (!o->closing && o->progress != NULL)
        o->progress(o->owner, bytes);
}

static void on_relay_done(void *arg, const struct mig_ssh_relay_result *r)
{
    struct ops *o = arg;
    o->res.err = r->err_code;
    o->res.bytes = r->bytes;
    o->res.src_status = r->src.exit_status;
    o->res.dst_status = r->dst.exit_status;
    /* The side that says why (the receiver, unless it only echoes the sender). */
    const struct mig_ssh_result *side = mig_ssh_relay_speaker(r);
    o->res.exit_status = side->exit_status;
    o->errout = copy_text(side->err != NULL ? side->err : "", side->err != NULL ? side->err_len : 0);
    /* What the consumer printed (a receive's exec may list what it received). */
    o->out = copy_text(r->dst.out != NULL ? r->dst.out : "", r->dst.out != NULL ? r->dst.out_len : 0);
    snprintf(o->res.detail, sizeof(o->res.detail), "%s", r->detail);
    if (!o->closing && o->progress != NULL)
        o->progress(o->owner, r->bytes);
    complete(o);
}

static void on_http_done(void *arg, const struct mig_http_resp *resp)
{
    struct ops *o = arg;
    o->res.err = resp->err_code;
    o->res.http_status = resp->status;
    o->json = json_incref(resp->json);
    o->out = copy_text(resp->body != NULL ? resp->body : "", resp->body != NULL ? resp->body_len : 0);
    snprintf(o->res.detail, sizeof(o->res.detail), "%s", resp->detail);
    complete(o);
}

static void on_exec_done(void *arg, const struct local_exec_result *r)
{
    struct ops *o = arg;
    o->exec = NULL;
    o->res.err = r->err;
    o->res.exit_status = r->exit_status;
    o->out = copy_text(r->out, r->out_len);
    snprintf(o->res.detail, sizeof(o->res.detail), "%s", r->detail);
    complete(o);
}

static const char *or_empty(const char *s)
{
    return s != NULL ? s : "";
}

/* A head-node command, with the job in its environment (product.md health.command). */
static int start_exec(struct ops *o, const struct mig_op *op, const struct mig_peers *peers,
                      char *detail, size_t detailsz)
{
    char env[4][320];
    snprintf(env[0], sizeof(env[0]), "MIGD_JOB=%s", or_empty(peers->job_uuid));
    snprintf(env[1], sizeof(env[1]), "MIGD_VM_UUID=%s", or_empty(peers->vm_uuid));
    snprintf(env[2], sizeof(env[2]), "MIGD_SOURCE=%s", or_empty(peers->host[MIG_SIDE_SOURCE]));
    snprintf(env[3], sizeof(env[3]), "MIGD_TARGET=%s", or_empty(peers->host[MIG_SIDE_TARGET]));
    const char *const extra[] = {env[0], env[1], env[2], env[3], NULL};
    mig_log(MIG_LOG_INFO, peers->job_uuid, peers->vm_uuid, "exec on the head node: %s", op->cmd);
    int rc = local_exec_start(o->d->loop, op->cmd, extra, op->timeout_s > 0 ? op->timeout_s : 60,
                              on_exec_done, o, &o->exec);
    if (rc != 0)
        snprintf(detail, detailsz, "cannot run %s: %s", op->cmd, uv_strerror(rc));
    return rc;
}

void ops_fake_deliver(struct ops *o, const struct mig_result *res, const char *out,
                      const char *errout, json_t *json)
{
    o->res = *res;
    o->out = mig_strdup(out != NULL ? out : "");
    o->errout = mig_strdup(errout != NULL ? errout : "");
    o->json = json_incref(json);
    complete(o);
}

void ops_start(struct ops *o, const struct mig_op *op, const struct mig_peers *peers,
               int http_retries, uint64_t limit_bytes_s)
{
    clear_result(o);
    o->busy = true;
    if (serial_admit(o, op, peers, http_retries, limit_bytes_s))
        start_now(o, op, peers, http_retries, limit_bytes_s);
}

static void start_now(struct ops *o, const struct mig_op *op, const struct mig_peers *peers,
                      int http_retries, uint64_t limit_bytes_s)
{
    if (o->d->fake_ops != NULL) {
        o->d->fake_ops->run(o->d->fake_ops->arg, o, op, peers);
        return;
    }
    int rc = -EINVAL;
    char detail[256] = "";
    const char *host = mig_peers_ip(peers, op->on);
    /* A submission's records are not stored: its job does not exist yet. */
    const char *jid = o->unsaved ? NULL : peers->job_uuid;
    const char *vm = peers->vm_uuid;
    switch (op->kind) {
    case MIG_OP_SSH:
        if (op->cmd == NULL || host == NULL) {
            snprintf(detail, sizeof(detail), "refused to build a command from an invalid name");
            break;
        }
        /* A stream (a direct send) runs as long as its data takes, while it shows progress. */
        o->stream = op->progress;
        memset(&o->sent, 0, sizeof(o->sent));
        mig_log(op->progress ? MIG_LOG_INFO : MIG_LOG_DEBUG, jid, vm, "ssh %s: %s",
                host, op->cmd);
        if (op->progress)
            rc = mig_ssh_exec_stream(o->d->ssh, host, op->cmd, 600, on_stream_stderr,
                                     on_ssh_done, o);
        else
            rc = mig_ssh_exec(o->d->ssh, host, op->cmd, op->input,
                              op->input != NULL ? strlen(op->input) : 0, 600, on_ssh_done, o);
        if (rc != 0)
            snprintf(detail, sizeof(detail), "ssh %s: %s", host, mig_strerror(rc));
        break;
    case MIG_OP_RELAY: {
        const char *to = mig_peers_ip(peers, op->to);
        if (op->cmd == NULL || op->cmd2 == NULL || host == NULL || to == NULL) {
            snprintf(detail, sizeof(detail), "refused to build a command from an invalid name");
            break;
        }
        mig_log(MIG_LOG_INFO, jid, vm, "relay %s: %s -> %s: %s", host, op->cmd,
                to, op->cmd2);
        struct mig_ssh_relay_opts opts = {
            .buffer_bytes = 0, .limit_bytes_s = limit_bytes_s, .idle_timeout_s = 600};
        rc = mig_ssh_relay(o->d->ssh, host, op->cmd, to, op->cmd2, &opts, on_relay_progress,
                           on_relay_done, o);
        if (rc != 0)
            snprintf(detail, sizeof(detail), "relay: %s", mig_strerror(rc));
        break;
    }
    case MIG_OP_HTTP: {
        if (op->url == NULL) {
            snprintf(detail, sizeof(detail), "%s %s: refused to build a URL from an invalid name",
                     op->api != NULL ? op->api : "API", op->method);
            break;
        }
        mig_log(MIG_LOG_DEBUG, jid, vm, "%s %s", op->method, op->url);
        struct mig_http_req req = {
            .method = op->method,
            .url = op->url,
            .body = op->body,
            .timeout_ms = 30000,
            .total_ms = 120000,
            .retries = http_retries,
        };
        rc = mig_http_request(o->d->http, &req, on_http_done, o);
        if (rc != 0)
            snprintf(detail, sizeof(detail), "%s %s: %s", op->method, op->url, mig_strerror(rc));
        break;
    }
    case MIG_OP_EXEC:
        if (op->cmd == NULL) {
            snprintf(detail, sizeof(detail), "no command");
            break;
        }
        rc = start_exec(o, op, peers, detail, sizeof(detail));
        break;
    case MIG_OP_NONE:
        snprintf(detail, sizeof(detail), "no operation");
        break;
    }
    if (rc != 0)
        fail_later(o, rc, detail);
}

void ops_sleep(struct ops *o, uint64_t ms)
{
    clear_result(o);
    o->busy = true;
    o->deliver = true;
    uv_timer_start(&o->timer, on_timer, ms, 0);
}

/* Asks whatever runs o's operation to end it; it answers from the loop. */
static void cancel_adapters(struct ops *o)
{
    if (o->d->fake_ops != NULL) {
        o->d->fake_ops->cancel(o->d->fake_ops->arg, o);
        return;
    }
    if (o->exec != NULL)
        local_exec_cancel(o->exec);
    if (o->d->ssh != NULL)
        mig_ssh_cancel(o->d->ssh, o);
    if (o->d->http != NULL)
        mig_http_cancel(o->d->http, o);
}

void ops_cancel(struct ops *o)
{
    if (!o->busy)
        return;
    if (serial_forget(o)) {
        /* Waiting for its CN: it never started. */
        o->res.err = MIG_ECANCELED;
        snprintf(o->res.detail, sizeof(o->res.detail), "canceled");
        o->deliver = true;
        uv_timer_start(&o->timer, on_timer, 0, 0);
        return;
    }
    if (o->deliver) {
        /* A sleep (or a refused op): end it now. */
        if (o->res.err == 0) {
            o->res.err = MIG_ECANCELED;
            snprintf(o->res.detail, sizeof(o->res.detail), "canceled");
        }
        uv_timer_stop(&o->timer);
        uv_timer_start(&o->timer, on_timer, 0, 0);
        return;
    }
    cancel_adapters(o);
}

void ops_close(struct ops *o, void (*on_closed)(void *arg), void *arg)
{
    o->closing = true;
    o->on_closed = on_closed;
    o->closed_arg = arg;
    if (serial_forget(o))
        o->busy = false; /* it never started: no adapter refers to o */
    if (o->busy && !o->deliver) {
        /* An adapter still refers to o: complete() closes the timer when it answers. */
        cancel_adapters(o);
        return;
    }
    clear_result(o);
    uv_close((uv_handle_t *)&o->timer, on_timer_closed);
}
