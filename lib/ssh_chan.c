/*
 * ssh_chan.c: channels of the SSH adapter (see ssh_int.h).  A channel opens,
 * runs one command, feeds its stdin, captures its stdout and stderr (or
 * leaves stdout to a relay's pump), then closes and yields the exit status;
 * mig_ssh_exec and mig_ssh_exec_stream are operations of one channel.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libssh2.h>

#include "err.h"
#include "log.h"
#include "ssh.h"
#include "ssh_int.h"
#include "util.h"

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
        c->buf = mig_realloc(c->buf, cap);
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

/*
 * Turns a libssh2 failure on c into 0 (blocked: wait for the socket) or an
 * error for op: MIG_ESSH, or ERR_SESSION with op->fatal set.
 */
int ssh_chan_error(struct op *op, struct chan *c, int rc, const char *what)
{
    if (ssh_would_block(rc)) {
        ssh_sess_want(c->s);
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

/* ---- channels ---- */

void ssh_chan_init(struct chan *c, struct session *s, const char *cmd)
{
    *c = (struct chan){.s = s, .st = CH_WAIT, .cmd = mig_strdup(cmd)};
    capture_init(&c->out, EXEC_OUT_MAX);
    capture_init(&c->err, EXEC_ERR_MAX);
}

void ssh_chan_free(struct chan *c)
{
    free(c->cmd);
    free(c->in);
    free(c->out.buf);
    free(c->err.buf);
}

/* Drops the channel (sending CLOSE if needed) when an operation ends early. */
void ssh_chan_abandon(struct chan *c)
{
    if (c->ch != NULL) {
        if (c->write_pending && c->s->st != S_DEAD) {
            /* A half-sent packet of this channel would block every other
             * channel of the session: let the session retire. */
            c->s->reusable = false;
        }
        ssh_sess_bury(c->s, c->ch);
        c->ch = NULL;
    }
    c->st = CH_DONE;
}

/*
 * A libssh2 call on c answered rc < 0: what the step returns, the error
 * (detail in op) or, when it would block, the progress made so far.
 */
static int chan_stop(struct op *op, struct chan *c, int rc, const char *what, int progress)
{
    rc = ssh_chan_error(op, c, rc, what);
    return rc < 0 ? rc : progress;
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
                    op->deadline_ms = ssh_now_ms(op->pool) + (int64_t)op->stream_idle_s * 1000;
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
        return chan_stop(op, c, (int)n, "read", progress);
    }
    return progress;
}

/*
 * Advances one channel: open, exec, then (while running) stdin, EOF, stdout
 * and stderr capture, then close and exit status.  Returns >0 on progress, 0
 * when blocked, or an error (detail in op).
 */
int ssh_chan_step(struct op *op, struct chan *c)
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
            if (c->ch == NULL)
                return chan_stop(op, c, libssh2_session_last_errno(c->s->ssh), "channel open",
                                 progress);
            c->st = CH_EXEC;
            progress = 1;
            break;
        case CH_EXEC:
            rc = libssh2_channel_process_startup(c->ch, "exec", 4, c->cmd,
                                                 (unsigned)strlen(c->cmd));
            if (rc < 0)
                return chan_stop(op, c, rc, "exec", progress);
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
                    c->write_pending = ssh_would_block((int)n);
                    rc = ssh_chan_error(op, c, (int)n, "write");
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
                    rc = ssh_chan_error(op, c, rc, "send EOF");
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
            if (rc < 0)
                return chan_stop(op, c, rc, "close", progress);
            c->st = CH_WAIT_CLOSED;
            progress = 1;
            break;
        case CH_WAIT_CLOSED: {
            rc = libssh2_channel_wait_closed(c->ch);
            if (rc < 0)
                return chan_stop(op, c, rc, "close", progress);
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
            ssh_sess_bury(c->s, c->ch);
            c->ch = NULL;
            c->st = CH_DONE;
            return 1;
        }
        case CH_DONE:
            return progress;
        }
    }
}

void ssh_chan_result(const struct chan *c, int err, const char *detail, struct mig_ssh_result *r)
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

/*
 * An exec operation, not yet in the pool (the caller adds it), on the shared
 * session to host or, for a stream, on one of its owner's (arg).  NULL and
 * *err when no session can be had.
 */
static struct op *exec_op(struct mig_ssh_pool *pool, const char *host, const char *cmd,
                          const char *stdin_data, size_t stdin_len, int timeout_s,
                          bool stream, mig_ssh_exec_cb cb, void *arg, int *err)
{
    char detail[256];
    struct session *s = ssh_sess_get(pool, host, stream ? arg : NULL, err, detail, sizeof(detail));
    if (s == NULL) {
        log_warn("ssh: %s", detail);
        return NULL;
    }
    struct op *op = mig_calloc(1, sizeof(*op));
    op->pool = pool;
    op->kind = OP_EXEC;
    op->exec_cb = cb;
    op->arg = arg;
    op->timeout_s = timeout_s;
    op->deadline_ms = timeout_s > 0 ? ssh_now_ms(pool) + (int64_t)timeout_s * 1000 : 0;
    op->s[0] = s;
    ssh_chan_init(&op->ch, op->s[0], cmd);
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
    int err = 0;
    struct op *op = exec_op(pool, host, cmd, stdin_data, stdin_len, timeout_s, false, cb, arg,
                            &err);
    if (op == NULL)
        return err;
    ssh_pool_add_op(pool, op);
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
    int err = 0;
    struct op *op = exec_op(pool, host, cmd, NULL, 0, idle_timeout_s, true, cb, arg, &err);
    if (op == NULL)
        return err;
    op->stream_idle_s = idle_timeout_s;
    op->ch.err_tap = on_stderr;
    op->ch.tap_arg = arg;
    op->ch.err.keep_tail = true;
    ssh_pool_add_op(pool, op);
    return 0;
}
