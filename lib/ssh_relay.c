/*
 * ssh_relay.c: relays of the SSH adapter (see ssh_int.h).  A relay runs a
 * producer's channel and a consumer's channel, each on its owner's stream
 * session, and moves the first's stdout into the second's stdin through the
 * bounded pump (pump.h), within two kinds of token buckets: the relay's own
 * cap (mig_ssh_relay_opts.limit_bytes_s) and each CN's cap shared by all
 * the relays into or out of it (mig_ssh_opts.host_limit_bytes_s).  The tick
 * refills both, enforces the idle deadline and reports progress.
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

#define RELAY_BUFFER_DEFAULT (1u << 20)
#define PROGRESS_MS 250
/* Bytes a relay may read per step, so that a fast stream cannot starve the loop. */
#define RELAY_SLICE (1u << 20)

/*
 * What a bucket may hold: a quarter of a second's worth, at least one
 * packet.  The tick refills every TICK_MS (50 ms); a loop busy for longer
 * (a journal write under load) delays it, and a bucket holding less than
 * the delay's worth would drop what the cap allowed: a 20 MB/s cap gave
 * 17 MB/s on a loaded CI machine with a tenth of a second.
 */
static double relay_burst(double bytes_s)
{
    double burst = bytes_s / 4.0;
    return burst < CHAN_PACKET ? CHAN_PACKET : burst;
}

/* Whether the len bytes at text (not NUL-terminated) hold needle. */
static bool text_has(const char *text, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; text != NULL && i + n <= len; i++)
        if (memcmp(text + i, needle, n) == 0)
            return true;
    return false;
}

const struct mig_ssh_result *mig_ssh_relay_speaker(const struct mig_ssh_relay_result *res)
{
    bool src_failed = res->src.exit_status > 0 && res->src.err_len > 0;
    bool dst_echoes = text_has(res->dst.err, res->dst.err_len, "failed to read from stream");
    bool dst_speaks = res->dst.exit_status != 0 && !(src_failed && dst_echoes);
    return dst_speaks ? &res->dst : &res->src;
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
    int rc = ssh_chan_error(op, c, (int)n, "read");
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
    c->write_pending = ssh_would_block((int)n);
    int rc = ssh_chan_error(op, c, (int)n, "write");
    return rc == 0 ? MIG_EAGAIN : rc;
}

static const struct mig_pump_io relay_io = {relay_read, relay_write};

/* Returns >0 on progress, 0 when blocked, or an error; finishes op when done. */
int ssh_relay_step(struct op *op)
{
    int progress = 0;
    int rc;

    if ((rc = ssh_chan_step(op, &op->src)) < 0)
        return rc;
    progress |= rc;
    if ((rc = ssh_chan_step(op, &op->dst)) < 0)
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
                if ((rc = ssh_chan_step(op, &op->src)) < 0)
                    return rc;
                if ((rc = ssh_chan_step(op, &op->dst)) < 0)
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
        ssh_op_finish(op, 0);
        return 1;
    }
    return progress;
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
    b->refill_ms = ssh_now_ms(pool);
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
    /* Each end on a connection of the owner's own: see ssh_sess_get. */
    char detail[256];
    int rc = 0;
    struct session *src = ssh_sess_get(pool, src_host, arg, &rc, detail, sizeof(detail));
    struct session *dst =
        src != NULL ? ssh_sess_get(pool, dst_host, arg, &rc, detail, sizeof(detail)) : NULL;
    if (dst == NULL) {
        /* A fresh source session nobody uses is closed by the idle check. */
        log_warn("ssh: %s", detail);
        return rc;
    }
    struct op *op = mig_calloc(1, sizeof(*op));
    size_t bufsz = opts && opts->buffer_bytes ? opts->buffer_bytes : RELAY_BUFFER_DEFAULT;
    rc = mig_pump_init(&op->pump, bufsz);
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
    op->refill_ms = op->moved_ms = op->progress_ms = ssh_now_ms(pool);
    op->tokens = 0;
    if (op->limit != 0)
        op->tokens = relay_burst((double)op->limit);
    op->s[0] = src;
    op->s[1] = dst;
    ssh_chan_init(&op->src, op->s[0], src_cmd);
    ssh_chan_init(&op->dst, op->s[1], dst_cmd);
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
    ssh_pool_add_op(pool, op);
    return 0;
}

void ssh_relay_free(struct op *op)
{
    for (int i = 0; i < 2; i++)
        if (op->cn[i] != NULL && op->cn[i]->users > 0)
            op->cn[i]->users--;
    ssh_chan_free(&op->src);
    ssh_chan_free(&op->dst);
    mig_pump_free(&op->pump);
}

/* Marks op's sessions to be stepped: tokens came back. */
static void relay_wake(struct op *op)
{
    op->s[0]->kick = true;
    op->s[1]->kick = true;
}

/* Refills every relay's share of b, the cap of one CN. */
static bool bucket_refill(struct mig_ssh_pool *pool, struct bucket *b, int64_t now)
{
    double limit = (double)pool->opts.host_limit_bytes_s;
    int users = b->users > 0 ? b->users : 1;
    bool wake = false;
    /* Each relay on the CN: its share of what the cap allowed since the last tick. */
    double add = limit * (double)(now - b->refill_ms) / 1000.0 / users;
    double burst = relay_burst(limit / users);
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
                relay_wake(op);
                wake = true;
            }
        }
    }
    return wake;
}

bool ssh_relay_tick_buckets(struct mig_ssh_pool *pool, int64_t now)
{
    bool wake = false;
    if (pool->opts.host_limit_bytes_s == 0)
        return false;
    for (int i = 0; i < pool->nbuckets; i++)
        if (bucket_refill(pool, &pool->buckets[i], now))
            wake = true;
    return wake;
}

/* Refills op's own cap; true when it may run again. */
static bool relay_refill(struct op *op, int64_t now)
{
    if (op->limit == 0)
        return false;
    double before = op->tokens;
    op->tokens += (double)op->limit * (double)(now - op->refill_ms) / 1000.0;
    double burst = relay_burst((double)op->limit);
    if (op->tokens > burst)
        op->tokens = burst;
    op->refill_ms = now;
    if (before < 1.0 && op->tokens >= 1.0) {
        relay_wake(op);
        return true;
    }
    return false;
}

/* Fails op when no byte moved for its idle timeout; true when it did. */
static bool relay_idle_expired(struct op *op, int64_t now)
{
    if (op->pump.bytes_out != op->moved_seen) {
        op->moved_seen = op->pump.bytes_out;
        op->moved_ms = now;
        return false;
    }
    if (op->idle_s <= 0 || now - op->moved_ms < (int64_t)op->idle_s * 1000)
        return false;
    snprintf(op->detail, sizeof(op->detail),
             "relay %s -> %s: no data moved for %d s (after %llu bytes)", op->src.s->host,
             op->dst.s->host, op->idle_s, (unsigned long long)op->pump.bytes_out);
    ssh_op_finish(op, MIG_ETIMEDOUT);
    return true;
}

/* Reports the bytes moved, at most every PROGRESS_MS and only when they changed. */
static void relay_report_progress(struct op *op, int64_t now)
{
    if (op->progress != NULL && now - op->progress_ms >= PROGRESS_MS &&
        op->pump.bytes_out != op->progress_sent) {
        op->progress_ms = now;
        op->progress_sent = op->pump.bytes_out;
        op->progress(op->arg, op->pump.bytes_out);
    }
}

bool ssh_relay_tick(struct op *op, int64_t now)
{
    bool wake = relay_refill(op, now);
    if (!relay_idle_expired(op, now))
        relay_report_progress(op, now);
    return wake;
}
