/*
 * ssh.c: libssh2 on libuv (see ssh.h), the pool: its sessions and
 * operations, their lifetimes, the kick that steps busy sessions again and
 * the tick.  A connection's machine is in ssh_session.c, channels and exec
 * in ssh_chan.c, relays and their token buckets in ssh_relay.c, the
 * diagnosis of a refused key in ssh_auth.c; ssh_int.h holds what they share.
 *
 * Lifetimes: operations are marked finished (their callback runs at once)
 * and reaped only when no callback of ours is on the stack; sessions are
 * freed only in their poll handle's close callback; the pool only when all
 * its handles are closed.  A pool-wide tick timer enforces deadlines
 * (connect, command, relay idle), refills relay token buckets, throttles
 * progress reports and sends keepalives, one function per concern.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libssh2.h>

#include "err.h"
#include "log.h"
#include "pump.h"
#include "ssh.h"
#include "ssh_int.h"
#include "util.h"

#define TICK_MS 50
#define IDLE_TICK_MS 1000

static void pool_schedule_tick(struct mig_ssh_pool *pool);

/* ---- operations ---- */

/*
 * Ends op once: abandons its channels and runs the caller's callback.  The op
 * stays in pool->ops, marked, until pool_reap frees it.
 */
void ssh_op_finish(struct op *op, int err)
{
    if (op->finished)
        return;
    if (err == 0 && op->kind == OP_EXEC && op->ch.out.truncated) {
        /* A parser must never act on half a `zfs list`. */
        err = MIG_EPARSE;
        snprintf(op->detail, sizeof(op->detail),
                 "%s: the command's output exceeded %u MiB and was cut; nothing was read from it",
                 op->ch.s->host, EXEC_OUT_MAX >> 20);
    }
    op->finished = true;
    op->err = err;
    if (err != 0 && op->detail[0] == '\0')
        snprintf(op->detail, sizeof(op->detail), "%s", mig_strerror(err));
    if (err != 0) {
        /*
         * A stream cut short (canceled, timed out, one side failed): its
         * commands may still run on the CN, holding the snapshot they send
         * ("dataset is busy") or the dataset they receive, until their
         * connection ends.  So it ends now.
         */
        for (int i = 0; i < 2; i++)
            if (op->s[i] != NULL && op->s[i]->owner != NULL)
                op->s[i]->reusable = false;
    }
    if (op->kind == OP_EXEC) {
        ssh_chan_abandon(&op->ch);
        struct mig_ssh_result r;
        ssh_chan_result(&op->ch, err, op->detail, &r);
        op->exec_cb(op->arg, &r);
    } else {
        ssh_chan_abandon(&op->src);
        ssh_chan_abandon(&op->dst);
        struct mig_ssh_relay_result r = {.err_code = err, .bytes = op->pump.bytes_out};
        ssh_chan_result(&op->src, err, op->detail, &r.src);
        ssh_chan_result(&op->dst, err, op->detail, &r.dst);
        if (err != 0)
            snprintf(r.detail, sizeof(r.detail), "%s", op->detail);
        op->relay_cb(op->arg, &r);
    }
}

static void op_free(struct op *op)
{
    if (op->kind == OP_EXEC)
        ssh_chan_free(&op->ch);
    else
        ssh_relay_free(op);
    free(op);
}

/* Returns >0 on progress, 0 when blocked; errors end op here. */
int ssh_op_step(struct op *op)
{
    int rc;
    if (op->kind == OP_EXEC) {
        rc = ssh_chan_step(op, &op->ch);
        if (rc >= 0 && op->ch.st == CH_DONE) {
            ssh_op_finish(op, 0);
            return 1;
        }
    } else {
        rc = ssh_relay_step(op);
    }
    if (rc >= 0)
        return rc;
    if (rc == ERR_SESSION) {
        struct session *s = op->fatal;
        char detail[256];
        snprintf(detail, sizeof(detail), "%s", op->detail);
        op->fatal = NULL;
        ssh_sess_fail(s, MIG_ESSH, detail);
        ssh_op_finish(op, MIG_ESSH); /* no-op unless op was on the other session */
    } else {
        ssh_op_finish(op, rc);
    }
    return 1;
}

/* ---- pool bookkeeping ---- */

static void on_pool_handle_closed(uv_handle_t *h);

void ssh_pool_maybe_free(struct mig_ssh_pool *pool)
{
    if (!pool->closing || pool->handles > 0 || pool->depth > 0 || pool->ops != NULL)
        return;
    void (*cb)(void *) = pool->on_closed;
    void *arg = pool->closed_arg;
    free((char *)pool->opts.user);
    free((char *)pool->opts.identity);
    free((char *)pool->opts.known_hosts);
    free((char *)pool->opts.ciphers);
    free(pool);
    libssh2_exit();
    if (cb)
        cb(arg);
}

/* Frees finished operations; retires sessions no longer reusable and unused. */
static void pool_reap(struct mig_ssh_pool *pool)
{
    struct op **pp = &pool->ops;
    while (*pp) {
        struct op *op = *pp;
        if (op->finished) {
            *pp = op->next;
            op_free(op);
        } else {
            pp = &op->next;
        }
    }
    for (struct session *s = pool->sessions, *next; s; s = next) {
        next = s->next;
        if (s->reusable || s->st == S_DEAD)
            continue;
        bool used = false;
        for (struct op *op = pool->ops; op && !used; op = op->next)
            used = op->s[0] == s || op->s[1] == s;
        if (!used)
            ssh_sess_fail(s, MIG_ESSH, "session retired");
    }
    pool_schedule_tick(pool);
}

void ssh_pool_enter(struct mig_ssh_pool *pool)
{
    pool->depth++;
}

void ssh_pool_leave(struct mig_ssh_pool *pool)
{
    if (--pool->depth > 0)
        return;
    pool_reap(pool);
    ssh_pool_maybe_free(pool);
}

static void on_kick(uv_idle_t *h);

void ssh_pool_kick(struct mig_ssh_pool *pool)
{
    if (!pool->closing)
        uv_idle_start(&pool->kick, on_kick);
}

/* ---- timers ---- */

static void on_kick(uv_idle_t *h)
{
    struct mig_ssh_pool *pool = h->data;
    uv_idle_stop(&pool->kick);
    ssh_pool_enter(pool);
    /* Serve only the kicks pending now; a dispatch that kicks again (still
     * busy) is served on the next loop turn, after timers and other I/O. */
    for (struct session *s = pool->sessions; s; s = s->next) {
        s->kick_now = s->kick;
        s->kick = false;
    }
    for (;;) {
        struct session *s = pool->sessions;
        while (s && !s->kick_now)
            s = s->next;
        if (s == NULL)
            break;
        s->kick_now = false;
        ssh_sess_dispatch(s);
    }
    ssh_pool_leave(pool);
}

/* Ends op when it was canceled or its deadline passed; true when it did. */
static bool op_tick_end(struct op *op, int64_t now)
{
    if (op->cancel) {
        snprintf(op->detail, sizeof(op->detail), "canceled");
        ssh_op_finish(op, MIG_ECANCELED);
        return true;
    }
    if (op->deadline_ms == 0 || now < op->deadline_ms)
        return false;
    if (op->stream_idle_s > 0)
        snprintf(op->detail, sizeof(op->detail), "%s: the stream showed no progress for %d s",
                 op->ch.s->host, op->stream_idle_s);
    else
        snprintf(op->detail, sizeof(op->detail), "%s: command timed out after %d s", op->ch.s->host,
                 op->timeout_s);
    ssh_op_finish(op, MIG_ETIMEDOUT);
    return true;
}

/*
 * Per operation: cancellation and deadline, then a relay's own cap, idle
 * deadline and progress.  True when a relay may run again.
 */
static bool tick_ops(struct mig_ssh_pool *pool, int64_t now)
{
    bool wake = false;
    for (struct op *op = pool->ops; op; op = op->next) {
        if (op->finished || op_tick_end(op, now) || op->kind != OP_RELAY)
            continue;
        if (ssh_relay_tick(op, now))
            wake = true;
    }
    return wake;
}

static void on_tick(uv_timer_t *h)
{
    struct mig_ssh_pool *pool = h->data;
    int64_t now = ssh_now_ms(pool);

    ssh_pool_enter(pool);
    ssh_sess_tick_stream_idle(pool, now);
    ssh_sess_tick_connect(pool, now);
    ssh_sess_tick_keepalive(pool);
    bool wake = ssh_relay_tick_buckets(pool, now);
    wake = tick_ops(pool, now) || wake;
    if (wake)
        ssh_pool_kick(pool);
    ssh_pool_leave(pool);
}

static void pool_schedule_tick(struct mig_ssh_pool *pool)
{
    if (pool->closing)
        return;
    int ms = 0;
    bool streams = false; /* stream sessions to close once idle */
    for (struct session *s = pool->sessions; s && !streams; s = s->next)
        streams = s->owner != NULL;
    if (pool->ops != NULL)
        ms = TICK_MS;
    else if (pool->sessions != NULL && (pool->opts.keepalive_s > 0 || streams))
        ms = IDLE_TICK_MS;
    if (ms == pool->tick_ms)
        return;
    pool->tick_ms = ms;
    if (ms == 0)
        uv_timer_stop(&pool->tick);
    else
        uv_timer_start(&pool->tick, on_tick, (uint64_t)ms, (uint64_t)ms);
}

/* ---- public API ---- */

int mig_ssh_pool_new(uv_loop_t *loop, const struct mig_ssh_opts *opts, struct mig_ssh_pool **out)
{
    if (opts->identity == NULL || opts->known_hosts == NULL)
        return -EINVAL;
    if (libssh2_init(0) != 0)
        return MIG_ESSH;
    struct mig_ssh_pool *pool = mig_calloc(1, sizeof(*pool));
    pool->loop = loop;
    pool->opts = *opts;
    pool->opts.user = mig_strdup(opts->user ? opts->user : "root");
    pool->opts.identity = mig_strdup(opts->identity);
    pool->opts.known_hosts = mig_strdup(opts->known_hosts);
    pool->opts.ciphers = mig_strdup(opts->ciphers);
    if (pool->opts.port <= 0)
        pool->opts.port = 22;
    uv_timer_init(loop, &pool->tick);
    pool->tick.data = pool;
    uv_idle_init(loop, &pool->kick);
    pool->kick.data = pool;
    pool->handles = 2;
    *out = pool;
    return 0;
}

static void on_pool_handle_closed(uv_handle_t *h)
{
    struct mig_ssh_pool *pool = h->data;
    pool->handles--;
    ssh_pool_maybe_free(pool);
}

void mig_ssh_pool_close(struct mig_ssh_pool *pool, void (*on_closed)(void *arg), void *arg)
{
    if (pool->closing)
        return;
    ssh_pool_enter(pool);
    pool->closing = true;
    pool->on_closed = on_closed;
    pool->closed_arg = arg;
    for (struct op *op = pool->ops; op; op = op->next) {
        snprintf(op->detail, sizeof(op->detail), "canceled: SSH pool closing");
        ssh_op_finish(op, MIG_ECANCELED);
    }
    while (pool->sessions)
        ssh_sess_fail(pool->sessions, MIG_ECANCELED, "canceled: SSH pool closing");
    uv_close((uv_handle_t *)&pool->tick, on_pool_handle_closed);
    uv_close((uv_handle_t *)&pool->kick, on_pool_handle_closed);
    ssh_pool_leave(pool);
}

/* Registers op and makes its sessions step it on the next loop iteration. */
void ssh_pool_add_op(struct mig_ssh_pool *pool, struct op *op)
{
    struct op **pp = &pool->ops;
    while (*pp)
        pp = &(*pp)->next;
    *pp = op;
    for (int i = 0; i < 2; i++)
        if (op->s[i])
            op->s[i]->kick = true;
    ssh_pool_kick(pool);
    pool_schedule_tick(pool);
}

void mig_ssh_cancel(struct mig_ssh_pool *pool, void *arg)
{
    bool any = false;
    for (struct op *op = pool->ops; op; op = op->next) {
        if (!op->finished && op->arg == arg) {
            op->cancel = true;
            any = true;
        }
    }
    if (any)
        pool_schedule_tick(pool);
}

void mig_ssh_forget(struct mig_ssh_pool *pool, const char *host)
{
    for (struct session *s = pool->sessions; s; s = s->next)
        if (strcmp(s->host, host) == 0)
            s->reusable = false; /* closed once its operations end */
    ssh_pool_enter(pool);
    ssh_pool_leave(pool);
}
