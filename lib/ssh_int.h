/*
 * ssh_int.h: what the files of the SSH adapter share (private to lib/ssh*.c;
 * the rest of migd sees only ssh.h).  ssh.c: the pool, its operations and
 * its tick; ssh_session.c: one connection's machine (connect, handshake,
 * host key, auth) and its poll; ssh_chan.c: channels and exec; ssh_relay.c:
 * relays and their token buckets; ssh_auth.c: why a key was refused.
 * Functions shared between them are named ssh_pool_, ssh_op_, ssh_sess_,
 * ssh_chan_, ssh_relay_ or ssh_auth_ after their concern, grouped below by
 * the file that defines them; the rest are static.
 */
#ifndef MIG_SSH_INT_H
#define MIG_SSH_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libssh2.h>
#include <uv.h>

#include "pump.h"
#include "ssh.h"

#define EXEC_OUT_MAX (8u << 20)
#define EXEC_ERR_MAX (64u << 10)
/* Receive window we grant each channel: bounds what libssh2 buffers for us, hence the RSS of a
 * relay. */
#define CHAN_WINDOW (2u << 20)
#define CHAN_PACKET 32768     /* largest packet we accept */
#define ERR_SESSION (-20000)  /* internal: the error kills the whole session */
#define STREAM_IDLE_MS 120000 /* a stream connection unused this long is closed */

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
    void *owner;          /* streams: the one owner (op arg) whose streams it carries; NULL:
                             shared by every command to the host */
    int64_t idle_since_ms; /* streams: when its last operation ended (0: in use) */
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

static inline int64_t ssh_now_ms(struct mig_ssh_pool *pool)
{
    return (int64_t)uv_now(pool->loop);
}

/* A libssh2 return that means "wait for the socket", not a failure. */
static inline bool ssh_would_block(int rc)
{
    return rc == LIBSSH2_ERROR_EAGAIN || rc == LIBSSH2_ERROR_BAD_USE;
}

/* ssh.c: the pool and its operations */

/* Callbacks of ours on the stack: reaping (and freeing the pool) waits for leave's last. */
void ssh_pool_enter(struct mig_ssh_pool *pool);
void ssh_pool_leave(struct mig_ssh_pool *pool);
/* Dispatches the sessions marked kick on the next loop turn. */
void ssh_pool_kick(struct mig_ssh_pool *pool);
/* Frees the pool once it is closing and nothing of it is left; runs on_closed. */
void ssh_pool_maybe_free(struct mig_ssh_pool *pool);
/* Takes op (a new exec or relay) into the pool; its sessions step it next turn. */
void ssh_pool_add_op(struct mig_ssh_pool *pool, struct op *op);
/* Ends op once with err and runs its callback; freed later by the reaper. */
void ssh_op_finish(struct op *op, int err);
/* Steps op: >0 on progress, 0 when blocked; errors end op (and its session if fatal). */
int ssh_op_step(struct op *op);

/* ssh_session.c: one connection */

/*
 * The reusable session to host for owner (NULL: the one shared by short
 * commands), or a new one connecting; NULL with *err and detail when no
 * socket or handle can be had.
 */
struct session *ssh_sess_get(struct mig_ssh_pool *pool, const char *host, void *owner, int *err,
                             char *detail, size_t dsz);
/* Kills s: its operations end with err and detail; its handle closes. */
void ssh_sess_fail(struct session *s, int err, const char *detail);
/* Steps s and its operations until they block, then polls for what they wait on. */
void ssh_sess_dispatch(struct session *s);
void ssh_sess_update_poll(struct session *s);
/* Records the socket directions the last libssh2 call on s blocked on. */
void ssh_sess_want(struct session *s);
/* Hands a channel to s, which frees it without blocking. */
void ssh_sess_bury(struct session *s, LIBSSH2_CHANNEL *ch);
/* The tick's session work: connects past their deadline fail, keepalives go out,
 * stream sessions idle for STREAM_IDLE_MS retire. */
void ssh_sess_tick_connect(struct mig_ssh_pool *pool, int64_t now);
void ssh_sess_tick_keepalive(struct mig_ssh_pool *pool);
void ssh_sess_tick_stream_idle(struct mig_ssh_pool *pool, int64_t now);

/* ssh_chan.c: channels */

void ssh_chan_init(struct chan *c, struct session *s, const char *cmd);
void ssh_chan_free(struct chan *c);
/* Drops the channel (sending CLOSE if needed) when an operation ends early. */
void ssh_chan_abandon(struct chan *c);
/* Advances c: >0 on progress, 0 when blocked, or an error (detail in op). */
int ssh_chan_step(struct op *op, struct chan *c);
/* The result of c for a callback; points into c's captures. */
void ssh_chan_result(const struct chan *c, int err, const char *detail, struct mig_ssh_result *r);
/* A libssh2 failure on c as 0 (blocked), MIG_ESSH, or ERR_SESSION with op->fatal set. */
int ssh_chan_error(struct op *op, struct chan *c, int rc, const char *what);

/* ssh_relay.c: relays and token buckets */

/* Steps a relay: >0 on progress, 0 when blocked, or an error; finishes op when done. */
int ssh_relay_step(struct op *op);
/* Releases what a relay holds besides its op (channels, pump, bucket shares). */
void ssh_relay_free(struct op *op);
/* Refills every relay's share of its CNs' caps; true when one may run again. */
bool ssh_relay_tick_buckets(struct mig_ssh_pool *pool, int64_t now);
/* A relay's own cap refill, idle deadline and progress report; true when it may run again. */
bool ssh_relay_tick(struct op *op, int64_t now);

/* ssh_auth.c */

/* The one line (into detail) saying why host refused user's key identity, and what to do. */
void ssh_auth_refused(const char *host, const char *user, const char *identity, char *detail,
                      size_t dsz);

#endif
