/*
 * ssh.c: libssh2 on libuv (see ssh.h).  Each session owns one non-blocking
 * socket and one uv_poll_t; the poll callback is the only place that drives
 * I/O on that session: it steps the connect/handshake/auth machine, then
 * every operation (exec or relay) that uses the session, until none makes
 * progress, then polls for the directions libssh2 said it was blocked on.
 * A relay uses two sessions and is stepped when either socket is ready,
 * since a write on one may depend on a read on the other.
 *
 * Lifetimes: operations are marked finished (their callback runs at once)
 * and reaped only when no callback of ours is on the stack; sessions are
 * freed only in their poll handle's close callback; the pool only when all
 * its handles are closed.  A pool-wide tick timer enforces deadlines
 * (connect, command, relay idle), refills relay token buckets, throttles
 * progress reports and sends keepalives.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh2.h>

#include "err.h"
#include "log.h"
#include "pump.h"
#include "ssh.h"
#include "util.h"

#define EXEC_OUT_MAX (8u << 20)
#define EXEC_ERR_MAX (64u << 10)
#define CHAN_WINDOW (2u << 20)       /* receive window we grant each channel: bounds what
                                        libssh2 buffers for us, hence the RSS of a relay */
#define CHAN_PACKET 32768            /* largest packet we accept */
#define RELAY_BUFFER_DEFAULT (1u << 20)
#define TICK_MS 50
#define IDLE_TICK_MS 1000
#define PROGRESS_MS 250
#define MAX_PASSES 4                 /* dispatch passes before yielding to the loop */
#define RELAY_SLICE (1u << 20)       /* bytes a relay may read per step, so that a
                                        fast stream cannot starve the loop */
#define ERR_SESSION (-20000)         /* internal: the error kills the whole session */

struct capture {
    char *buf;
    size_t len, cap, max;
    bool truncated;
    bool keep_tail; /* when full, drop the oldest half: a stream's failure is at its end */
};

enum sess_state { S_CONNECT, S_HANDSHAKE, S_AUTH, S_READY, S_DEAD };

struct session {
    struct mig_ssh_pool *pool;
    struct session *next; /* pool->sessions: every session not yet closing */
    char *host;
    enum sess_state st;
    int fd;
    uv_poll_t poll;
    int poll_events;
    LIBSSH2_SESSION *ssh;
    int want;             /* UV_READABLE|UV_WRITABLE wanted by blocked calls */
    bool reusable;        /* new operations may use it */
    bool kick;            /* dispatch on the next kick */
    bool kick_now;        /* kick being served: set again means "next turn" */
    bool peer_closed;     /* the socket reported a hang-up */
    int64_t deadline_ms;  /* connect timeout, while not ready */
    int pending_err;      /* failure found outside a callback */
    char pending_detail[200];
    LIBSSH2_CHANNEL **zombies; /* channels being freed without blocking */
    size_t nzombies, zcap;
};

enum chan_state { CH_WAIT, CH_OPEN, CH_EXEC, CH_RUN, CH_CLOSE, CH_WAIT_CLOSED, CH_DONE };

struct chan {
    struct session *s;
    LIBSSH2_CHANNEL *ch;
    enum chan_state st;
    char *cmd;
    char *in;                /* exec: stdin to send */
    size_t in_len, in_off;
    bool pump_in, pump_out;  /* relay: stdin fed / stdout drained by the pump */
    bool in_done;            /* nothing more for stdin: send EOF */
    bool eof_sent, out_eof, err_eof;
    bool write_pending;      /* last write answered EAGAIN: a packet is half sent */
    bool exited;             /* exit_status is known */
    struct capture out, err;
    int exit_status;
    mig_ssh_stderr_cb err_tap; /* stderr as it comes too (a stream's progress), or NULL */
    void *tap_arg;
};

enum op_kind { OP_EXEC, OP_RELAY };

struct op {
    struct mig_ssh_pool *pool;
    struct op *next;
    enum op_kind kind;
    bool finished;
    bool cancel; /* mig_ssh_cancel asked: finished with MIG_ECANCELED on the next tick */
    struct session *s[2];
    struct session *fatal; /* set by a step whose error kills a session */
    int err;
    char detail[256];
    int64_t deadline_ms;
    void *arg;
    /* exec */
    struct chan ch;
    mig_ssh_exec_cb exec_cb;
    int timeout_s;
    int stream_idle_s; /* exec_stream: the deadline moves with each stderr chunk */
    /* relay */
    struct chan src, dst;
    struct mig_pump pump;
    bool pump_done;
    uint64_t limit;
    double tokens;
    int64_t refill_ms;
    struct bucket *cn[2]; /* the source's and the target's shared caps, or NULL */
    double cn_tokens[2];  /* this relay's share of each, refilled by the tick */
    int idle_s;
    int64_t moved_ms;
    uint64_t moved_seen;
    int64_t progress_ms;
    uint64_t progress_sent;
    mig_ssh_progress_cb progress;
    mig_ssh_relay_cb relay_cb;
};

/*
 * A CN's shared bandwidth (opts.host_limit_bytes_s): every relay out of or
 * into that host gets an equal share of it, refilled by the tick into the
 * relay's own tokens (op->cn_tokens), so a relay whose data is always ready
 * cannot take what another one needs.  The cost: a share a relay cannot use
 * at that moment (a slow receiver) is not lent to the others; the cap is
 * an upper bound, never exceeded.
 */
struct bucket {
    char host[64];
    int64_t refill_ms;
    int users; /* relays drawing from it now */
};

#define MAX_BUCKETS 64

struct mig_ssh_pool {
    uv_loop_t *loop;
    struct mig_ssh_opts opts;
    struct bucket buckets[MAX_BUCKETS];
    int nbuckets;
    struct session *sessions;
    struct op *ops;
    uv_timer_t tick;
    uv_idle_t kick;
    int tick_ms;     /* current repeat, 0: stopped */
    int handles;     /* open libuv handles (tick, kick, one poll per session) */
    int depth;       /* nesting of our callbacks; reaping waits for 0 */
    bool closing;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

static void sess_dispatch(struct session *s);
static void sess_fail(struct session *s, int err, const char *detail);
static void sess_update_poll(struct session *s);
static void pool_schedule_tick(struct mig_ssh_pool *pool);
static void pool_kick(struct mig_ssh_pool *pool);
static void on_session_poll(uv_poll_t *h, int status, int events);

/* ---- small helpers ---- */

static int64_t now_ms(struct mig_ssh_pool *pool)
{
    return (int64_t)uv_now(pool->loop);
}

static void capture_init(struct capture *c, size_t max)
{
    *c = (struct capture){.max = max};
}

/* Appends what fits under the capture's limit; the rest is dropped (truncated). */
static void capture_add(struct capture *c, const char *p, size_t n)
{
    if (c->keep_tail && c->len + n > c->max && n <= c->max / 2) {
        size_t keep = c->max / 2;
        if (c->len > keep) {
            memmove(c->buf, c->buf + c->len - keep, keep);
            c->len = keep;
            c->truncated = true;
        }
    }
    if (c->len + n > c->max) {
        c->truncated = true;
        n = c->max - c->len;
    }
    if (n == 0)
        return;
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n + 1)
            cap *= 2;
        if (cap > c->max + 1)
            cap = c->max + 1;
        char *b = realloc(c->buf, cap);
        if (b == NULL)
            abort();
        c->buf = b;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, p, n);
    c->len += n;
    c->buf[c->len] = '\0';
}

static const char *capture_str(const struct capture *c)
{
    return c->buf ? c->buf : "";
}

/* Errors that leave the transport unusable, as opposed to one refused channel. */
static bool ssh_err_kills_session(int rc)
{
    switch (rc) {
    case LIBSSH2_ERROR_CHANNEL_OUTOFORDER:
    case LIBSSH2_ERROR_CHANNEL_FAILURE:
    case LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED:
    case LIBSSH2_ERROR_CHANNEL_UNKNOWN:
    case LIBSSH2_ERROR_CHANNEL_WINDOW_EXCEEDED:
    case LIBSSH2_ERROR_CHANNEL_PACKET_EXCEEDED:
    case LIBSSH2_ERROR_CHANNEL_CLOSED:
    case LIBSSH2_ERROR_CHANNEL_EOF_SENT:
    case LIBSSH2_ERROR_REQUEST_DENIED:
        return false;
    }
    return true;
}

/* Records the directions the last libssh2 call blocked on. */
static void sess_want(struct session *s)
{
    int dirs = libssh2_session_block_directions(s->ssh);
    int ev = 0;
    if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)
        ev |= UV_READABLE;
    if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
        ev |= UV_WRITABLE;
    /* Nothing reported (e.g. another channel's packet is half sent): the
     * socket becoming writable is what lets that packet, and us, go on. */
    s->want |= ev ? ev : UV_WRITABLE;
}

static bool would_block(int rc)
{
    return rc == LIBSSH2_ERROR_EAGAIN || rc == LIBSSH2_ERROR_BAD_USE;
}

/*
 * Turns a libssh2 failure on c into 0 (blocked: wait for the socket) or an
 * error for op: MIG_ESSH, or ERR_SESSION with op->fatal set.
 */
static int chan_ssh_error(struct op *op, struct chan *c, int rc, const char *what)
{
    if (would_block(rc)) {
        sess_want(c->s);
        return 0;
    }
    char *msg = NULL;
    libssh2_session_last_error(c->s->ssh, &msg, NULL, 0);
    snprintf(op->detail, sizeof(op->detail), "%s: %s: %s (%d)", c->s->host, what,
             msg ? msg : "unknown error", rc);
    if (ssh_err_kills_session(rc)) {
        op->fatal = c->s;
        return ERR_SESSION;
    }
    return MIG_ESSH;
}

/* Hands a channel to its session, which frees it without blocking. */
static void sess_bury(struct session *s, LIBSSH2_CHANNEL *ch)
{
    if (ch == NULL || s->st == S_DEAD)
        return; /* a dead session frees its channels with itself */
    if (s->nzombies == s->zcap) {
        s->zcap = s->zcap ? s->zcap * 2 : 4;
        LIBSSH2_CHANNEL **z = realloc(s->zombies, s->zcap * sizeof(*z));
        if (z == NULL)
            abort();
        s->zombies = z;
    }
    s->zombies[s->nzombies++] = ch;
    s->kick = true;
    pool_kick(s->pool);
}

/* ---- channels ---- */

static void chan_init(struct chan *c, struct session *s, const char *cmd)
{
    *c = (struct chan){.s = s, .st = CH_WAIT, .cmd = mig_strdup(cmd)};
    capture_init(&c->out, EXEC_OUT_MAX);
    capture_init(&c->err, EXEC_ERR_MAX);
}

static void chan_free(struct chan *c)
{
    free(c->cmd);
    free(c->in);
    free(c->out.buf);
    free(c->err.buf);
}

/* Drops the channel (sending CLOSE if needed) when an operation ends early. */
static void chan_abandon(struct chan *c)
{
    if (c->ch != NULL) {
        if (c->write_pending && c->s->st != S_DEAD) {
            /* A half-sent packet of this channel would block every other
             * channel of the session: let the session retire. */
            c->s->reusable = false;
        }
        sess_bury(c->s, c->ch);
        c->ch = NULL;
    }
    c->st = CH_DONE;
}

/* Reads one stream into a capture until it blocks or ends.  Returns >0 on
 * progress, 0 when blocked, or an error. */
static int chan_read_capture(struct op *op, struct chan *c, int stream, struct capture *cap,
                             bool *eof)
{
    char buf[32768];
    int progress = 0;

    while (!*eof) {
        ssize_t n = libssh2_channel_read_ex(c->ch, stream, buf, sizeof(buf));
        if (n > 0) {
            capture_add(cap, buf, (size_t)n);
            if (stream == SSH_EXTENDED_DATA_STDERR && c->err_tap != NULL) {
                if (op->stream_idle_s > 0)
                    op->deadline_ms = now_ms(op->pool) + (int64_t)op->stream_idle_s * 1000;
                c->err_tap(c->tap_arg, buf, (size_t)n);
            }
            progress = 1;
            continue;
        }
        if (n == 0) {
            /* End of this stream (a dropped transport is an error, not 0). */
            *eof = true;
            return 1;
        }
        int rc = chan_ssh_error(op, c, (int)n, "read");
        return rc < 0 ? rc : progress;
    }
    return progress;
}

/*
 * Advances one channel: open, exec, then (while running) stdin, EOF, stdout
 * and stderr capture, then close and exit status.  Returns >0 on progress, 0
 * when blocked, or an error (detail in op).
 */
static int chan_step(struct op *op, struct chan *c)
{
    int progress = 0;
    int rc;

    for (;;) {
        switch (c->st) {
        case CH_WAIT:
            if (c->s->st != S_READY)
                return progress;
            c->st = CH_OPEN;
            progress = 1;
            break;
        case CH_OPEN:
            c->ch = libssh2_channel_open_ex(c->s->ssh, "session", 7, CHAN_WINDOW, CHAN_PACKET,
                                            NULL, 0);
            if (c->ch == NULL) {
                rc = chan_ssh_error(op, c, libssh2_session_last_errno(c->s->ssh),
                                    "channel open");
                return rc < 0 ? rc : progress;
            }
            c->st = CH_EXEC;
            progress = 1;
            break;
        case CH_EXEC:
            rc = libssh2_channel_process_startup(c->ch, "exec", 4, c->cmd,
                                                 (unsigned)strlen(c->cmd));
            if (rc < 0) {
                rc = chan_ssh_error(op, c, rc, "exec");
                return rc < 0 ? rc : progress;
            }
            c->st = CH_RUN;
            progress = 1;
            break;
        case CH_RUN: {
            /* stdin */
            while (!c->pump_in && !c->in_done) {
                if (c->in_off == c->in_len) {
                    c->in_done = true;
                    break;
                }
                ssize_t n = libssh2_channel_write(c->ch, c->in + c->in_off, c->in_len - c->in_off);
                if (n < 0) {
                    c->write_pending = would_block((int)n);
                    rc = chan_ssh_error(op, c, (int)n, "write");
                    if (rc < 0)
                        return rc;
                    break;
                }
                c->write_pending = false;
                c->in_off += (size_t)n;
                progress = 1;
            }
            if (c->in_done && !c->eof_sent) {
                rc = libssh2_channel_send_eof(c->ch);
                if (rc < 0) {
                    rc = chan_ssh_error(op, c, rc, "send EOF");
                    if (rc < 0)
                        return rc;
                } else {
                    c->eof_sent = true;
                    progress = 1;
                }
            }
            if (!c->pump_out) {
                rc = chan_read_capture(op, c, 0, &c->out, &c->out_eof);
                if (rc < 0)
                    return rc;
                progress |= rc;
            }
            rc = chan_read_capture(op, c, SSH_EXTENDED_DATA_STDERR, &c->err, &c->err_eof);
            if (rc < 0)
                return rc;
            progress |= rc;
            /* Remote EOF on both streams ends the command; stdin still
             * pending is moot (a relay checks for that itself). */
            if (!(c->out_eof && c->err_eof))
                return progress;
            c->st = CH_CLOSE;
            progress = 1;
            break;
        }
        case CH_CLOSE:
            rc = libssh2_channel_close(c->ch);
            if (rc < 0) {
                rc = chan_ssh_error(op, c, rc, "close");
                return rc < 0 ? rc : progress;
            }
            c->st = CH_WAIT_CLOSED;
            progress = 1;
            break;
        case CH_WAIT_CLOSED: {
            rc = libssh2_channel_wait_closed(c->ch);
            if (rc < 0) {
                rc = chan_ssh_error(op, c, rc, "close");
                return rc < 0 ? rc : progress;
            }
            c->exit_status = libssh2_channel_get_exit_status(c->ch);
            char *sig = NULL;
            size_t siglen = 0;
            libssh2_channel_get_exit_signal(c->ch, &sig, &siglen, NULL, NULL, NULL, NULL);
            if (sig != NULL) {
                /* libssh2 reports 0 for a killed command; never let that pass. */
                char line[96];
                int l = snprintf(line, sizeof(line), "%skilled by signal %.*s\n",
                                 c->err.len ? "\n" : "", (int)siglen, sig);
                capture_add(&c->err, line, (size_t)l);
                c->exit_status = 255;
                libssh2_free(c->s->ssh, sig);
            }
            c->exited = true;
            sess_bury(c->s, c->ch);
            c->ch = NULL;
            c->st = CH_DONE;
            return 1;
        }
        case CH_DONE:
            return progress;
        }
    }
}

static void chan_result(const struct chan *c, int err, const char *detail,
                        struct mig_ssh_result *r)
{
    *r = (struct mig_ssh_result){
        .err_code = err,
        .exit_status = c->exited ? c->exit_status : -1,
        .out = capture_str(&c->out),
        .out_len = c->out.len,
        .err = capture_str(&c->err),
        .err_len = c->err.len,
    };
    if (err != 0)
        snprintf(r->detail, sizeof(r->detail), "%s", detail);
}

/* ---- operations ---- */

/*
 * Ends op once: abandons its channels and runs the caller's callback.  The op
 * stays in pool->ops, marked, until pool_reap frees it.
 */
static void op_finish(struct op *op, int err)
{
    if (op->finished)
        return;
    op->finished = true;
    op->err = err;
    if (err != 0 && op->detail[0] == '\0')
        snprintf(op->detail, sizeof(op->detail), "%s", mig_strerror(err));
    if (op->kind == OP_EXEC) {
        chan_abandon(&op->ch);
        struct mig_ssh_result r;
        chan_result(&op->ch, err, op->detail, &r);
        op->exec_cb(op->arg, &r);
    } else {
        chan_abandon(&op->src);
        chan_abandon(&op->dst);
        struct mig_ssh_relay_result r = {.err_code = err, .bytes = op->pump.bytes_out};
        chan_result(&op->src, err, op->detail, &r.src);
        chan_result(&op->dst, err, op->detail, &r.dst);
        if (err != 0)
            snprintf(r.detail, sizeof(r.detail), "%s", op->detail);
        op->relay_cb(op->arg, &r);
    }
}

static void op_free(struct op *op)
{
    for (int i = 0; i < 2; i++)
        if (op->cn[i] != NULL && op->cn[i]->users > 0)
            op->cn[i]->users--;
    if (op->kind == OP_EXEC) {
        chan_free(&op->ch);
    } else {
        chan_free(&op->src);
        chan_free(&op->dst);
        mig_pump_free(&op->pump);
    }
    free(op);
}

/* Pump adapters: the relay's source channel's stdout into its target's stdin. */
static ssize_t relay_read(void *arg, char *buf, size_t len)
{
    struct op *op = arg;
    struct chan *c = &op->src;
    ssize_t n = libssh2_channel_read(c->ch, buf, len);
    if (n > 0)
        return n;
    if (n == 0)
        return 0;
    int rc = chan_ssh_error(op, c, (int)n, "read");
    return rc == 0 ? MIG_EAGAIN : rc;
}

static ssize_t relay_write(void *arg, const char *buf, size_t len)
{
    struct op *op = arg;
    struct chan *c = &op->dst;
    ssize_t n = libssh2_channel_write(c->ch, buf, len);
    if (n >= 0) {
        c->write_pending = false;
        return n;
    }
    c->write_pending = would_block((int)n);
    int rc = chan_ssh_error(op, c, (int)n, "write");
    return rc == 0 ? MIG_EAGAIN : rc;
}

static const struct mig_pump_io relay_io = {relay_read, relay_write};

/* Returns >0 on progress, 0 when blocked, or an error; finishes op when done. */
static int relay_step(struct op *op)
{
    int progress = 0;
    int rc;

    if ((rc = chan_step(op, &op->src)) < 0)
        return rc;
    progress |= rc;
    if ((rc = chan_step(op, &op->dst)) < 0)
        return rc;
    progress |= rc;

    if (!op->pump_done && op->src.st == CH_RUN && op->dst.st == CH_RUN) {
        uint64_t budget = RELAY_SLICE;
        bool run = true;
        if (op->limit != 0 && (uint64_t)op->tokens < budget) {
            budget = (uint64_t)op->tokens;
            run = budget > 0;
        }
        for (int i = 0; i < 2; i++) {
            if (op->cn[i] == NULL)
                continue;
            if (op->cn_tokens[i] < 1.0)
                run = false;
            else if ((uint64_t)op->cn_tokens[i] < budget)
                budget = (uint64_t)op->cn_tokens[i];
        }
        if (run) {
            uint64_t in = op->pump.bytes_in, out = op->pump.bytes_out;
            rc = mig_pump_run(&op->pump, &relay_io, op, op, budget);
            if (op->limit != 0)
                op->tokens -= (double)(op->pump.bytes_in - in);
            for (int i = 0; i < 2; i++)
                if (op->cn[i] != NULL)
                    op->cn_tokens[i] -= (double)(op->pump.bytes_in - in);
            if (op->pump.bytes_in != in || op->pump.bytes_out != out)
                progress = 1;
            if (rc < 0)
                return rc;
            if (rc == 1) {
                op->pump_done = true;
                op->src.out_eof = true;
                op->dst.in_done = true;
                progress = 1;
                /* Let the channels see EOF/close now. */
                if ((rc = chan_step(op, &op->src)) < 0)
                    return rc;
                if ((rc = chan_step(op, &op->dst)) < 0)
                    return rc;
            }
        }
    }
    if (!op->pump_done && op->dst.st >= CH_CLOSE) {
        /* The target's command ended before the stream did. */
        if (op->dst.st == CH_DONE) {
            snprintf(op->detail, sizeof(op->detail),
                     "%s: target command exited (status %d) after %llu bytes, before the "
                     "stream ended",
                     op->dst.s->host, op->dst.exit_status,
                     (unsigned long long)op->pump.bytes_out);
            return MIG_EREMOTE;
        }
        return progress;
    }
    if (op->src.st == CH_DONE && op->dst.st == CH_DONE) {
        op_finish(op, 0);
        return 1;
    }
    return progress;
}

/* Returns >0 on progress, 0 when blocked; errors end op here. */
static int op_step(struct op *op)
{
    int rc;
    if (op->kind == OP_EXEC) {
        rc = chan_step(op, &op->ch);
        if (rc >= 0 && op->ch.st == CH_DONE) {
            op_finish(op, 0);
            return 1;
        }
    } else {
        rc = relay_step(op);
    }
    if (rc >= 0)
        return rc;
    if (rc == ERR_SESSION) {
        struct session *s = op->fatal;
        char detail[256];
        snprintf(detail, sizeof(detail), "%s", op->detail);
        op->fatal = NULL;
        sess_fail(s, MIG_ESSH, detail);
        op_finish(op, MIG_ESSH); /* no-op unless op was on the other session */
    } else {
        op_finish(op, rc);
    }
    return 1;
}

/* ---- pool bookkeeping ---- */

static void on_pool_handle_closed(uv_handle_t *h);

static void pool_maybe_free(struct mig_ssh_pool *pool)
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
            sess_fail(s, MIG_ESSH, "session retired");
    }
    pool_schedule_tick(pool);
}

static void pool_enter(struct mig_ssh_pool *pool)
{
    pool->depth++;
}

static void pool_leave(struct mig_ssh_pool *pool)
{
    if (--pool->depth > 0)
        return;
    pool_reap(pool);
    pool_maybe_free(pool);
}

static void on_kick(uv_idle_t *h);

static void pool_kick(struct mig_ssh_pool *pool)
{
    if (!pool->closing)
        uv_idle_start(&pool->kick, on_kick);
}

/* ---- sessions ---- */

static void sess_close_cb_free(struct session *s)
{
    if (s->ssh != NULL) {
        /* The socket is already shut down: nothing below can block long. */
        libssh2_session_set_blocking(s->ssh, 1);
        libssh2_session_free(s->ssh);
    }
    if (s->fd >= 0)
        close(s->fd);
    free(s->zombies);
    free(s->host);
    free(s);
}

static void on_session_closed(uv_handle_t *h)
{
    struct session *s = h->data;
    struct mig_ssh_pool *pool = s->pool;
    sess_close_cb_free(s);
    pool->handles--;
    pool_maybe_free(pool);
}

/*
 * Kills s: every operation on it ends with err (detail names the host), it
 * leaves the pool (the next operation reconnects) and its handle closes.
 */
static void sess_fail(struct session *s, int err, const char *detail)
{
    struct mig_ssh_pool *pool = s->pool;
    if (s->st == S_DEAD)
        return;
    bool was_up = s->st == S_READY || s->st == S_AUTH;
    if (s->st == S_READY && err != MIG_ECANCELED && strcmp(detail, "session retired") != 0)
        log_warn("ssh: session to %s failed: %s", s->host, detail);
    s->st = S_DEAD;
    for (struct session **pp = &pool->sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    for (struct op *op = pool->ops; op; op = op->next) {
        if (op->finished || (op->s[0] != s && op->s[1] != s))
            continue;
        snprintf(op->detail, sizeof(op->detail), "%s", detail);
        op_finish(op, err);
    }
    if (was_up && err != MIG_ECANCELED) {
        /* Best effort, never blocking: the peer may be gone. */
        libssh2_session_disconnect(s->ssh, "migd closing");
    }
    if (s->fd >= 0)
        shutdown(s->fd, SHUT_RDWR);
    uv_close((uv_handle_t *)&s->poll, on_session_closed);
}

static void sess_update_poll(struct session *s)
{
    if (s->st == S_DEAD)
        return;
    int ev = s->want;
    if (!s->peer_closed)
        ev |= UV_DISCONNECT;
    if (ev == s->poll_events)
        return;
    s->poll_events = ev;
    if (ev == 0)
        uv_poll_stop(&s->poll);
    else
        uv_poll_start(&s->poll, ev, on_session_poll);
}

/* Builds the host key method preference from the key types known_hosts has for host. */
static void sess_hostkey_prefs(struct session *s, LIBSSH2_KNOWNHOSTS *kh)
{
    struct mig_ssh_pool *pool = s->pool;
    char plain[300], bracketed[320];
    snprintf(plain, sizeof(plain), "%s", s->host);
    snprintf(bracketed, sizeof(bracketed), "[%s]:%d", s->host, pool->opts.port);
    const char *want = pool->opts.port == 22 ? plain : bracketed;
    bool ed = false, e256 = false, e384 = false, e521 = false, rsa = false;
    struct libssh2_knownhost *prev = NULL, *e;

    while (libssh2_knownhost_get(kh, &e, prev) == 0) {
        prev = e;
        if (e->name == NULL)
            continue; /* hashed entry: cannot tell which host it is for */
        bool match = false;
        /* name may be a comma-separated list */
        const char *p = e->name;
        size_t wl = strlen(want);
        while (*p) {
            const char *end = strchr(p, ',');
            size_t l = end ? (size_t)(end - p) : strlen(p);
            if (l == wl && strncmp(p, want, l) == 0)
                match = true;
            p += l;
            if (*p == ',')
                p++;
        }
        if (!match)
            continue;
        switch (e->typemask & LIBSSH2_KNOWNHOST_KEY_MASK) {
        case LIBSSH2_KNOWNHOST_KEY_ED25519: ed = true; break;
        case LIBSSH2_KNOWNHOST_KEY_ECDSA_256: e256 = true; break;
        case LIBSSH2_KNOWNHOST_KEY_ECDSA_384: e384 = true; break;
        case LIBSSH2_KNOWNHOST_KEY_ECDSA_521: e521 = true; break;
        case LIBSSH2_KNOWNHOST_KEY_SSHRSA: rsa = true; break;
        default: break;
        }
    }
    char prefs[256] = "";
    if (ed)
        strcat(prefs, "ssh-ed25519,");
    if (e256)
        strcat(prefs, "ecdsa-sha2-nistp256,");
    if (e384)
        strcat(prefs, "ecdsa-sha2-nistp384,");
    if (e521)
        strcat(prefs, "ecdsa-sha2-nistp521,");
    if (rsa)
        strcat(prefs, "rsa-sha2-512,rsa-sha2-256,ssh-rsa,");
    size_t l = strlen(prefs);
    if (l > 0) {
        prefs[l - 1] = '\0';
        libssh2_session_method_pref(s->ssh, LIBSSH2_METHOD_HOSTKEY, prefs);
    }
}

/* Sets the cipher preference: opts->ciphers, or the default filtered to what libssh2 has. */
static void sess_cipher_prefs(struct session *s)
{
    const char *want = s->pool->opts.ciphers;
    if (want != NULL) {
        libssh2_session_method_pref(s->ssh, LIBSSH2_METHOD_CRYPT_CS, want);
        libssh2_session_method_pref(s->ssh, LIBSSH2_METHOD_CRYPT_SC, want);
        return;
    }
    static const char *const defaults[] = {"aes128-gcm@openssh.com", "aes128-ctr"};
    const char **algs = NULL;
    int n = libssh2_session_supported_algs(s->ssh, LIBSSH2_METHOD_CRYPT_CS, &algs);
    char prefs[128] = "";
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        for (int j = 0; j < n; j++) {
            if (strcmp(algs[j], defaults[i]) == 0) {
                if (prefs[0])
                    strcat(prefs, ",");
                strcat(prefs, defaults[i]);
                break;
            }
        }
    }
    if (n > 0)
        libssh2_free(s->ssh, algs);
    if (prefs[0]) {
        libssh2_session_method_pref(s->ssh, LIBSSH2_METHOD_CRYPT_CS, prefs);
        libssh2_session_method_pref(s->ssh, LIBSSH2_METHOD_CRYPT_SC, prefs);
    }
}

/* Checks the server's host key against known_hosts.  Returns 0 or MIG_EHOSTKEY (detail set). */
static int sess_check_hostkey(struct session *s, char *detail, size_t dsz)
{
    struct mig_ssh_pool *pool = s->pool;
    size_t klen = 0;
    int ktype = 0;
    const char *key = libssh2_session_hostkey(s->ssh, &klen, &ktype);
    if (key == NULL) {
        snprintf(detail, dsz, "%s: no host key received", s->host);
        return MIG_EHOSTKEY;
    }
    int kbit;
    switch (ktype) {
    case LIBSSH2_HOSTKEY_TYPE_RSA: kbit = LIBSSH2_KNOWNHOST_KEY_SSHRSA; break;
    case LIBSSH2_HOSTKEY_TYPE_DSS: kbit = LIBSSH2_KNOWNHOST_KEY_SSHDSS; break;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: kbit = LIBSSH2_KNOWNHOST_KEY_ECDSA_256; break;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: kbit = LIBSSH2_KNOWNHOST_KEY_ECDSA_384; break;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: kbit = LIBSSH2_KNOWNHOST_KEY_ECDSA_521; break;
    case LIBSSH2_HOSTKEY_TYPE_ED25519: kbit = LIBSSH2_KNOWNHOST_KEY_ED25519; break;
    default:
        snprintf(detail, dsz, "%s: host key of unknown type %d", s->host, ktype);
        return MIG_EHOSTKEY;
    }
    LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s->ssh);
    if (kh == NULL) {
        snprintf(detail, dsz, "%s: cannot initialise known hosts", s->host);
        return MIG_EHOSTKEY;
    }
    int rc = libssh2_knownhost_readfile(kh, pool->opts.known_hosts, LIBSSH2_KNOWNHOST_FILE_OPENSSH);
    if (rc < 0) {
        libssh2_knownhost_free(kh);
        snprintf(detail, dsz, "%s: cannot read known_hosts file %s", s->host,
                 pool->opts.known_hosts);
        return MIG_EHOSTKEY;
    }
    struct libssh2_knownhost *found = NULL;
    rc = libssh2_knownhost_checkp(kh, s->host, pool->opts.port == 22 ? -1 : pool->opts.port,
                                  key, klen,
                                  LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | kbit,
                                  &found);
    libssh2_knownhost_free(kh);
    switch (rc) {
    case LIBSSH2_KNOWNHOST_CHECK_MATCH:
        return 0;
    case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
        snprintf(detail, dsz,
                 "%s: host key does NOT match the one in %s (key changed or impersonation)",
                 s->host, pool->opts.known_hosts);
        return MIG_EHOSTKEY;
    case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
        snprintf(detail, dsz, "%s: host (port %d) not found in %s with its key type", s->host,
                 pool->opts.port, pool->opts.known_hosts);
        return MIG_EHOSTKEY;
    default:
        snprintf(detail, dsz, "%s: host key check failed", s->host);
        return MIG_EHOSTKEY;
    }
}

/* ---- why public-key authentication was refused ---- */

/* The value of a base64 digit, or -1. */
static int b64_digit(int c)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c != '\0' ? strchr(digits, c) : NULL;
    return p != NULL ? (int)(p - digits) : -1;
}

/* Decodes base64 text (whitespace skipped, stops at '=' or '-') into out; returns the length. */
static size_t b64_decode(const char *text, unsigned char *out, size_t size)
{
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (const char *p = text; *p != '\0' && *p != '=' && *p != '-' && n < size; p++) {
        int d = b64_digit((unsigned char)*p);
        if (d < 0)
            continue;
        acc = (acc << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return n;
}

/* An SSH wire string at *pos in buf: its start and length; false when it overruns. */
static bool wire_string(const unsigned char *buf, size_t len, size_t *pos,
                        const unsigned char **str, size_t *slen)
{
    if (len - *pos < 4)
        return false;
    size_t n = (size_t)buf[*pos] << 24 | (size_t)buf[*pos + 1] << 16 | (size_t)buf[*pos + 2] << 8 |
               buf[*pos + 3];
    *pos += 4;
    if (n > len - *pos)
        return false;
    *str = buf + *pos;
    *slen = n;
    *pos += n;
    return true;
}

/*
 * The identity's key type as OpenSSH names it ("ssh-rsa", "ssh-ed25519",
 * "ecdsa-sha2-nistp256", ...) into out, "" when it cannot tell: the first
 * word of IDENTITY.pub; else the private key's PEM header (RSA, DSA, EC);
 * else, for an "OPENSSH PRIVATE KEY", the type of the public key it carries
 * (openssh-key-v1: magic, cipher, kdf, kdf options, key count, public key).
 */
static void identity_key_type(const char *identity, char *out, size_t size)
{
    char line[8192];
    out[0] = '\0';
    char *pub = mig_asprintf("%s.pub", identity);
    FILE *f = fopen(pub, "r");
    free(pub);
    if (f != NULL) {
        if (fgets(line, sizeof(line), f) != NULL)
            snprintf(out, size, "%.*s", (int)strcspn(line, " \t\r\n"), line);
        fclose(f);
        if (out[0] != '\0')
            return;
    }
    f = fopen(identity, "r");
    if (f == NULL)
        return;
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    if (strstr(line, "BEGIN RSA PRIVATE KEY") != NULL) {
        snprintf(out, size, "ssh-rsa");
    } else if (strstr(line, "BEGIN DSA PRIVATE KEY") != NULL) {
        snprintf(out, size, "ssh-dss");
    } else if (strstr(line, "BEGIN EC PRIVATE KEY") != NULL) {
        snprintf(out, size, "ecdsa");
    } else {
        const char *body = strstr(line, "BEGIN OPENSSH PRIVATE KEY-----");
        if (body == NULL)
            return;
        unsigned char raw[2048];
        size_t len = b64_decode(body + strlen("BEGIN OPENSSH PRIVATE KEY-----"), raw, sizeof(raw));
        static const char magic[] = "openssh-key-v1";
        size_t pos = sizeof(magic); /* with its NUL */
        const unsigned char *str = NULL, *key = NULL;
        size_t slen = 0, klen = 0, kpos = 0;
        if (len < pos || memcmp(raw, magic, sizeof(magic)) != 0)
            return;
        for (int i = 0; i < 3; i++) /* cipher, kdf, kdf options */
            if (!wire_string(raw, len, &pos, &str, &slen))
                return;
        if (len - pos < 4)
            return;
        pos += 4; /* the number of keys */
        if (!wire_string(raw, len, &pos, &key, &klen) ||
            !wire_string(key, klen, &kpos, &str, &slen))
            return;
        snprintf(out, size, "%.*s", (int)slen, (const char *)str);
    }
}

/*
 * The one line that says why the CN refused our public key, and what to do.
 * An RSA key signed by a libssh2 older than 1.11 goes out as "ssh-rsa"
 * (SHA-1), which OpenSSH 8.8 and later refuse unless their
 * PubkeyAcceptedAlgorithms allows it; any other refusal is the CN's
 * authorized_keys not accepting the key.
 */
static void auth_refused(const struct session *s, char *detail, size_t dsz)
{
    const struct mig_ssh_pool *pool = s->pool;
    char type[64];
    identity_key_type(pool->opts.identity, type, sizeof(type));
    if (strcmp(type, "ssh-rsa") == 0 && libssh2_version(0x010b00) == NULL)
        snprintf(detail, dsz,
                 "%s: public key refused: libssh2 %s signs RSA keys with ssh-rsa (SHA-1), which "
                 "OpenSSH 8.8+ refuses by default; use an ed25519 key, or a libssh2 with "
                 "rsa-sha2 (1.11+) (identity %s)",
                 s->host, libssh2_version(0), pool->opts.identity);
    else
        snprintf(detail, dsz,
                 "%s: public key refused: the CN does not accept %s's %s%skey; add it to "
                 "~%s/.ssh/authorized_keys on the CN (identity %s)",
                 s->host, pool->opts.user, type, type[0] != '\0' ? " " : "", pool->opts.user,
                 pool->opts.identity);
}

/* Session-level work: connect, handshake, auth, then freeing buried channels.
 * Returns false when the session died. */
static bool sess_step(struct session *s)
{
    struct mig_ssh_pool *pool = s->pool;
    char detail[256];
    int rc;

    if (s->pending_err != 0) {
        sess_fail(s, s->pending_err, s->pending_detail);
        return false;
    }
    switch (s->st) {
    case S_CONNECT: {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        if (soerr == EINPROGRESS || soerr == EALREADY) {
            s->want |= UV_WRITABLE;
            return true;
        }
        if (soerr != 0) {
            snprintf(detail, sizeof(detail), "%s:%d: connect: %s", s->host, pool->opts.port,
                     strerror(soerr));
            sess_fail(s, MIG_ESSH, detail);
            return false;
        }
        /* Connected only if the socket has a peer. */
        struct sockaddr_storage ss;
        socklen_t al = sizeof(ss);
        if (getpeername(s->fd, (struct sockaddr *)&ss, &al) < 0) {
            s->want |= UV_WRITABLE;
            return true;
        }
        s->st = S_HANDSHAKE;
    }
        /* fall through */
    case S_HANDSHAKE:
        rc = libssh2_session_handshake(s->ssh, s->fd);
        if (would_block(rc)) {
            sess_want(s);
            return true;
        }
        if (rc < 0) {
            char *msg = NULL;
            libssh2_session_last_error(s->ssh, &msg, NULL, 0);
            snprintf(detail, sizeof(detail), "%s:%d: SSH handshake failed: %s", s->host,
                     pool->opts.port, msg ? msg : "?");
            sess_fail(s, MIG_ESSH, detail);
            return false;
        }
        rc = sess_check_hostkey(s, detail, sizeof(detail));
        if (rc < 0) {
            sess_fail(s, rc, detail);
            return false;
        }
        s->st = S_AUTH;
        /* fall through */
    case S_AUTH: {
        char *pub = mig_asprintf("%s.pub", pool->opts.identity);
        bool have_pub = access(pub, R_OK) == 0;
        rc = libssh2_userauth_publickey_fromfile_ex(s->ssh, pool->opts.user,
                                                    (unsigned)strlen(pool->opts.user),
                                                    have_pub ? pub : NULL, pool->opts.identity,
                                                    NULL);
        free(pub);
        if (would_block(rc)) {
            sess_want(s);
            return true;
        }
        if (rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED || rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED) {
            auth_refused(s, detail, sizeof(detail));
            sess_fail(s, MIG_ESSH, detail);
            return false;
        }
        if (rc < 0) {
            char *msg = NULL;
            libssh2_session_last_error(s->ssh, &msg, NULL, 0);
            snprintf(detail, sizeof(detail), "%s: authentication as %s with %s failed: %s",
                     s->host, pool->opts.user, pool->opts.identity, msg ? msg : "?");
            sess_fail(s, MIG_ESSH, detail);
            return false;
        }
        s->st = S_READY;
        s->deadline_ms = 0;
        if (pool->opts.keepalive_s > 0)
            libssh2_keepalive_config(s->ssh, 0, (unsigned)pool->opts.keepalive_s);
        log_debug("ssh: session to %s:%d ready", s->host, pool->opts.port);
    }
        /* fall through */
    case S_READY:
        while (s->nzombies > 0) {
            rc = libssh2_channel_free(s->zombies[s->nzombies - 1]);
            if (would_block(rc)) {
                sess_want(s);
                break;
            }
            s->nzombies--;
        }
        return true;
    case S_DEAD:
        return false;
    }
    return false;
}

/*
 * Steps the session and every operation using it until nothing progresses,
 * then polls for what the blocked calls need.
 */
static void sess_dispatch(struct session *s)
{
    struct mig_ssh_pool *pool = s->pool;

    pool_enter(pool);
    s->want = 0;
    if (sess_step(s)) {
        int pass;
        bool progress = true;
        for (pass = 0; pass < MAX_PASSES && progress && s->st != S_DEAD; pass++) {
            progress = false;
            for (struct op *op = pool->ops; op; op = op->next) {
                if (op->finished || (op->s[0] != s && op->s[1] != s))
                    continue;
                if (op_step(op) > 0)
                    progress = true;
                if (s->st == S_DEAD)
                    break;
                /* The other session of a relay may now want something else. */
                struct session *o = op->s[0] == s ? op->s[1] : op->s[0];
                if (o != s && o != NULL)
                    sess_update_poll(o);
            }
            if (s->st == S_READY && s->nzombies > 0)
                sess_step(s);
        }
        if (progress && s->st != S_DEAD) {
            /* Still moving: come back after other handles had their turn. */
            s->kick = true;
            pool_kick(pool);
        }
        sess_update_poll(s);
    }
    pool_leave(pool);
}

static void on_session_poll(uv_poll_t *h, int status, int events)
{
    struct session *s = h->data;
    struct mig_ssh_pool *pool = s->pool;

    pool_enter(pool);
    if (status < 0) {
        char detail[200];
        snprintf(detail, sizeof(detail), "%s: socket error: %s", s->host, uv_strerror(status));
        sess_fail(s, MIG_ESSH, detail);
    } else {
        if (events & UV_DISCONNECT)
            s->peer_closed = true;
        sess_dispatch(s);
        if (s->peer_closed && s->st != S_DEAD) {
            bool used = false;
            for (struct op *op = pool->ops; op && !used; op = op->next)
                used = !op->finished && (op->s[0] == s || op->s[1] == s);
            if (!used) {
                char detail[200];
                snprintf(detail, sizeof(detail), "%s: connection closed by the host", s->host);
                sess_fail(s, MIG_ESSH, detail);
            } else {
                /* Ops still reading will see the end of the connection. */
                s->reusable = false;
            }
        }
    }
    pool_leave(pool);
}

/* Finds the reusable session to host or starts connecting a new one. */
static struct session *sess_get(struct mig_ssh_pool *pool, const char *host)
{
    for (struct session *s = pool->sessions; s; s = s->next)
        if (s->reusable && strcmp(s->host, host) == 0)
            return s;

    struct session *s = mig_calloc(1, sizeof(*s));
    s->pool = pool;
    s->host = mig_strdup(host);
    s->st = S_CONNECT;
    s->fd = -1;
    s->reusable = true;
    s->deadline_ms = pool->opts.connect_timeout_s > 0
                         ? now_ms(pool) + (int64_t)pool->opts.connect_timeout_s * 1000
                         : 0;

    struct sockaddr_storage ss = {0};
    socklen_t sl = 0;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)pool->opts.port);
        sl = sizeof(*sin);
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)pool->opts.port);
        sl = sizeof(*sin6);
    } else {
        /* Names are rare here (CNs are reached by admin IP); this blocks briefly. */
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
        int grc = getaddrinfo(host, NULL, &hints, &ai);
        if (grc == 0) {
            memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
            sl = ai->ai_addrlen;
            if (ss.ss_family == AF_INET)
                sin->sin_port = htons((uint16_t)pool->opts.port);
            else
                sin6->sin6_port = htons((uint16_t)pool->opts.port);
            freeaddrinfo(ai);
        } else {
            s->pending_err = MIG_ESSH;
            snprintf(s->pending_detail, sizeof(s->pending_detail), "%s: cannot resolve: %s",
                     host, gai_strerror(grc));
        }
    }
    if (s->pending_err == 0) {
        s->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->fd < 0) {
            s->pending_err = -errno;
            snprintf(s->pending_detail, sizeof(s->pending_detail), "%s: socket: %s", host,
                     strerror(errno));
        } else {
            int one = 1;
            setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            if (connect(s->fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
                s->pending_err = MIG_ESSH;
                snprintf(s->pending_detail, sizeof(s->pending_detail), "%s:%d: connect: %s",
                         host, pool->opts.port, strerror(errno));
            }
        }
    }
    s->ssh = libssh2_session_init_ex(NULL, NULL, NULL, s);
    if (s->ssh == NULL)
        abort();
    libssh2_session_set_blocking(s->ssh, 0);
    sess_cipher_prefs(s);
    if (s->pending_err == 0) {
        LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s->ssh);
        if (kh != NULL) {
            if (libssh2_knownhost_readfile(kh, pool->opts.known_hosts,
                                           LIBSSH2_KNOWNHOST_FILE_OPENSSH) >= 0)
                sess_hostkey_prefs(s, kh);
            libssh2_knownhost_free(kh);
        }
    }
    /* The poll handle exists for the whole life of the session: closing it frees s. */
    if (s->fd >= 0) {
        int prc = uv_poll_init(pool->loop, &s->poll, s->fd);
        if (prc < 0)
            abort(); /* a fresh socket that epoll refuses: nothing sane to do */
    } else {
        /* Without a socket, poll a dummy fd just to have a handle to close. */
        int dummy = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (dummy < 0 || uv_poll_init(pool->loop, &s->poll, dummy) < 0)
            abort();
        s->fd = dummy;
    }
    s->poll.data = s;
    pool->handles++;
    s->want = UV_WRITABLE;
    s->next = pool->sessions;
    pool->sessions = s;
    if (s->pending_err != 0) {
        s->kick = true;
        pool_kick(pool);
    } else {
        sess_update_poll(s);
    }
    return s;
}

/* ---- timers ---- */

static void on_kick(uv_idle_t *h)
{
    struct mig_ssh_pool *pool = h->data;
    uv_idle_stop(&pool->kick);
    pool_enter(pool);
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
        sess_dispatch(s);
    }
    pool_leave(pool);
}

static void on_tick(uv_timer_t *h)
{
    struct mig_ssh_pool *pool = h->data;
    int64_t now = now_ms(pool);
    bool kick = false;

    pool_enter(pool);
    for (struct session *s = pool->sessions, *next; s; s = next) {
        next = s->next;
        if (s->st != S_READY && s->deadline_ms != 0 && now >= s->deadline_ms) {
            char detail[200];
            snprintf(detail, sizeof(detail), "%s:%d: connect timed out after %d s", s->host,
                     pool->opts.port, pool->opts.connect_timeout_s);
            sess_fail(s, MIG_ETIMEDOUT, detail);
        } else if (s->st == S_READY && pool->opts.keepalive_s > 0) {
            int next_s = 0;
            int rc = libssh2_keepalive_send(s->ssh, &next_s);
            if (would_block(rc)) {
                sess_want(s);
                sess_update_poll(s);
            }
        }
    }
    if (pool->opts.host_limit_bytes_s != 0) {
        double limit = (double)pool->opts.host_limit_bytes_s;
        for (int i = 0; i < pool->nbuckets; i++) {
            struct bucket *b = &pool->buckets[i];
            int users = b->users > 0 ? b->users : 1;
            /* Each relay on the CN: its share of what the cap allowed since the last tick. */
            double add = limit * (double)(now - b->refill_ms) / 1000.0 / users;
            double burst = limit / 10.0 / users < CHAN_PACKET ? CHAN_PACKET : limit / 10.0 / users;
            b->refill_ms = now;
            for (struct op *op = pool->ops; op; op = op->next) {
                for (int k = 0; k < 2; k++) {
                    if (op->finished || op->cn[k] != b)
                        continue;
                    double before = op->cn_tokens[k];
                    op->cn_tokens[k] += add;
                    if (op->cn_tokens[k] > burst)
                        op->cn_tokens[k] = burst;
                    if (before < 1.0 && op->cn_tokens[k] >= 1.0) {
                        op->s[0]->kick = true;
                        op->s[1]->kick = true;
                        kick = true;
                    }
                }
            }
        }
    }
    for (struct op *op = pool->ops; op; op = op->next) {
        if (op->finished)
            continue;
        if (op->cancel) {
            snprintf(op->detail, sizeof(op->detail), "canceled");
            op_finish(op, MIG_ECANCELED);
            continue;
        }
        if (op->deadline_ms != 0 && now >= op->deadline_ms) {
            if (op->stream_idle_s > 0)
                snprintf(op->detail, sizeof(op->detail),
                         "%s: the stream showed no progress for %d s", op->ch.s->host,
                         op->stream_idle_s);
            else
                snprintf(op->detail, sizeof(op->detail), "%s: command timed out after %d s",
                         op->ch.s->host, op->timeout_s);
            op_finish(op, MIG_ETIMEDOUT);
            continue;
        }
        if (op->kind != OP_RELAY)
            continue;
        if (op->limit != 0) {
            double before = op->tokens;
            op->tokens += (double)op->limit * (double)(now - op->refill_ms) / 1000.0;
            /* Burst: a tenth of a second's worth, at least one packet. */
            double burst = (double)op->limit / 10.0;
            if (burst < CHAN_PACKET)
                burst = CHAN_PACKET;
            if (op->tokens > burst)
                op->tokens = burst;
            op->refill_ms = now;
            if (before < 1.0 && op->tokens >= 1.0) {
                op->s[0]->kick = true;
                op->s[1]->kick = true;
                kick = true;
            }
        }
        if (op->pump.bytes_out != op->moved_seen) {
            op->moved_seen = op->pump.bytes_out;
            op->moved_ms = now;
        } else if (op->idle_s > 0 && now - op->moved_ms >= (int64_t)op->idle_s * 1000) {
            snprintf(op->detail, sizeof(op->detail),
                     "relay %s -> %s: no data moved for %d s (after %llu bytes)",
                     op->src.s->host, op->dst.s->host, op->idle_s,
                     (unsigned long long)op->pump.bytes_out);
            op_finish(op, MIG_ETIMEDOUT);
            continue;
        }
        if (op->progress != NULL && now - op->progress_ms >= PROGRESS_MS &&
            op->pump.bytes_out != op->progress_sent) {
            op->progress_ms = now;
            op->progress_sent = op->pump.bytes_out;
            op->progress(op->arg, op->pump.bytes_out);
        }
    }
    if (kick)
        pool_kick(pool);
    pool_leave(pool);
}

static void pool_schedule_tick(struct mig_ssh_pool *pool)
{
    if (pool->closing)
        return;
    int ms = 0;
    if (pool->ops != NULL)
        ms = TICK_MS;
    else if (pool->sessions != NULL && pool->opts.keepalive_s > 0)
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
    pool_maybe_free(pool);
}

void mig_ssh_pool_close(struct mig_ssh_pool *pool, void (*on_closed)(void *arg), void *arg)
{
    if (pool->closing)
        return;
    pool_enter(pool);
    pool->closing = true;
    pool->on_closed = on_closed;
    pool->closed_arg = arg;
    for (struct op *op = pool->ops; op; op = op->next) {
        snprintf(op->detail, sizeof(op->detail), "canceled: SSH pool closing");
        op_finish(op, MIG_ECANCELED);
    }
    while (pool->sessions)
        sess_fail(pool->sessions, MIG_ECANCELED, "canceled: SSH pool closing");
    uv_close((uv_handle_t *)&pool->tick, on_pool_handle_closed);
    uv_close((uv_handle_t *)&pool->kick, on_pool_handle_closed);
    pool_leave(pool);
}

/* Registers op and makes its sessions step it on the next loop iteration. */
static void pool_add_op(struct mig_ssh_pool *pool, struct op *op)
{
    struct op **pp = &pool->ops;
    while (*pp)
        pp = &(*pp)->next;
    *pp = op;
    for (int i = 0; i < 2; i++)
        if (op->s[i])
            op->s[i]->kick = true;
    pool_kick(pool);
    pool_schedule_tick(pool);
}

/* An exec operation, not yet in the pool (the caller adds it). */
static struct op *exec_op(struct mig_ssh_pool *pool, const char *host, const char *cmd,
                          const char *stdin_data, size_t stdin_len, int timeout_s,
                          mig_ssh_exec_cb cb, void *arg)
{
    struct op *op = mig_calloc(1, sizeof(*op));
    op->pool = pool;
    op->kind = OP_EXEC;
    op->exec_cb = cb;
    op->arg = arg;
    op->timeout_s = timeout_s;
    op->deadline_ms = timeout_s > 0 ? now_ms(pool) + (int64_t)timeout_s * 1000 : 0;
    op->s[0] = sess_get(pool, host);
    chan_init(&op->ch, op->s[0], cmd);
    if (stdin_len > 0) {
        op->ch.in = mig_malloc(stdin_len);
        memcpy(op->ch.in, stdin_data, stdin_len);
        op->ch.in_len = stdin_len;
    }
    return op;
}

int mig_ssh_exec(struct mig_ssh_pool *pool, const char *host, const char *cmd,
                 const char *stdin_data, size_t stdin_len, int timeout_s, mig_ssh_exec_cb cb,
                 void *arg)
{
    if (pool->closing)
        return MIG_ECANCELED;
    if (host == NULL || cmd == NULL || cb == NULL)
        return -EINVAL;
    pool_add_op(pool, exec_op(pool, host, cmd, stdin_data, stdin_len, timeout_s, cb, arg));
    return 0;
}

int mig_ssh_exec_stream(struct mig_ssh_pool *pool, const char *host, const char *cmd,
                        int idle_timeout_s, mig_ssh_stderr_cb on_stderr, mig_ssh_exec_cb cb,
                        void *arg)
{
    if (pool->closing)
        return MIG_ECANCELED;
    if (host == NULL || cmd == NULL || cb == NULL || on_stderr == NULL)
        return -EINVAL;
    struct op *op = exec_op(pool, host, cmd, NULL, 0, idle_timeout_s, cb, arg);
    op->stream_idle_s = idle_timeout_s;
    op->ch.err_tap = on_stderr;
    op->ch.tap_arg = arg;
    op->ch.err.keep_tail = true;
    pool_add_op(pool, op);
    return 0;
}

/* The shared bucket of host (created on first use), or NULL when CNs are not capped. */
static struct bucket *bucket_of(struct mig_ssh_pool *pool, const char *host)
{
    if (pool->opts.host_limit_bytes_s == 0)
        return NULL;
    struct bucket *unused = NULL;
    for (int i = 0; i < pool->nbuckets; i++) {
        if (strcmp(pool->buckets[i].host, host) == 0)
            return &pool->buckets[i];
        if (pool->buckets[i].users == 0 && unused == NULL)
            unused = &pool->buckets[i];
    }
    struct bucket *b = unused;
    if (b == NULL && pool->nbuckets == MAX_BUCKETS)
        return NULL; /* beyond 64 CNs relaying at once, the per-job caps still hold */
    if (b == NULL)
        b = &pool->buckets[pool->nbuckets++];
    snprintf(b->host, sizeof(b->host), "%s", host);
    b->refill_ms = now_ms(pool);
    return b;
}

int mig_ssh_relay(struct mig_ssh_pool *pool, const char *src_host, const char *src_cmd,
                  const char *dst_host, const char *dst_cmd,
                  const struct mig_ssh_relay_opts *opts, mig_ssh_progress_cb progress,
                  mig_ssh_relay_cb done, void *arg)
{
    if (pool->closing)
        return MIG_ECANCELED;
    if (!src_host || !src_cmd || !dst_host || !dst_cmd || !done)
        return -EINVAL;
    struct op *op = mig_calloc(1, sizeof(*op));
    size_t bufsz = opts && opts->buffer_bytes ? opts->buffer_bytes : RELAY_BUFFER_DEFAULT;
    int rc = mig_pump_init(&op->pump, bufsz);
    if (rc < 0) {
        free(op);
        return rc;
    }
    op->pool = pool;
    op->kind = OP_RELAY;
    op->relay_cb = done;
    op->progress = progress;
    op->arg = arg;
    op->limit = opts ? opts->limit_bytes_s : 0;
    op->idle_s = opts ? opts->idle_timeout_s : 0;
    op->refill_ms = op->moved_ms = op->progress_ms = now_ms(pool);
    op->tokens = 0;
    if (op->limit != 0)
        op->tokens = op->limit / 10 > CHAN_PACKET ? (double)(op->limit / 10) : CHAN_PACKET;
    op->s[0] = sess_get(pool, src_host);
    op->s[1] = sess_get(pool, dst_host);
    chan_init(&op->src, op->s[0], src_cmd);
    chan_init(&op->dst, op->s[1], dst_cmd);
    op->src.pump_out = true;
    op->dst.pump_in = true;
    op->cn[0] = bucket_of(pool, src_host);
    op->cn[1] = bucket_of(pool, dst_host);
    for (int i = 0; i < 2; i++) {
        if (op->cn[i] != NULL) {
            op->cn[i]->users++;
            op->cn_tokens[i] = CHAN_PACKET; /* starts at once; the tick keeps it to its share */
        }
    }
    pool_add_op(pool, op);
    return 0;
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
    pool_enter(pool);
    pool_leave(pool);
}
