/*
 * ssh.h: the libssh2-on-libuv adapter.  One non-blocking session per CN,
 * driven by a uv_poll_t, reused by every job's short commands to that CN,
 * with many channels at once; a stream (a relay's two ends, a direct send)
 * runs on a connection of its owner's own, closed as soon as a stream on it
 * ends early (OpenSSH keeps a session whose command still runs after its
 * channel closes: only the connection's end stops an interrupted `zfs send`,
 * which holds its snapshot until then), or after two idle minutes.  Host keys are checked against known_hosts before any
 * authentication.  Callers see only completions: no EAGAIN, no sockets.
 *
 * Two operations: mig_ssh_exec runs one command and captures its output and
 * exit status; mig_ssh_relay runs a producer on one CN and a consumer on
 * another and pumps the first's stdout into the second's stdin through a
 * bounded buffer (see pump.h), which is how a zfs stream crosses.
 */
#ifndef MIG_SSH_H
#define MIG_SSH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct mig_ssh_opts {
    const char *user;        /* "root" */
    int port;                /* 22 */
    const char *identity;    /* private key file (PEM); public key is identity + ".pub" if present */
    const char *known_hosts; /* OpenSSH known_hosts file; hosts absent from it are refused */
    int connect_timeout_s;   /* TCP connect + handshake + auth */
    int keepalive_s;         /* 0: none */
    const char *ciphers;     /* libssh2 cipher preference list; NULL: aes128-gcm@openssh.com
                                where offered, then aes128-ctr */
    uint64_t host_limit_bytes_s; /* bytes/s into or out of one host, shared by its relays; 0: none */
};

struct mig_ssh_pool;

/*
 * Creates a pool of sessions on loop.  Copies opts.  Returns 0 or a negative
 * code; *out is owned by the caller and released with mig_ssh_pool_close.
 */
int mig_ssh_pool_new(uv_loop_t *loop, const struct mig_ssh_opts *opts,
                     struct mig_ssh_pool **out);

/*
 * Cancels every operation (their callbacks run with MIG_ECANCELED), closes
 * every session and handle, and calls on_closed(arg) once all libuv handles
 * are closed; the pool is freed before on_closed runs.
 */
void mig_ssh_pool_close(struct mig_ssh_pool *pool, void (*on_closed)(void *arg), void *arg);

/*
 * Result of one remote command.  out and err are NUL-terminated and owned by
 * the adapter: valid only during the callback.  err_code is 0 when the
 * command ran to completion (exit_status is then meaningful) or a negative
 * code: MIG_EHOSTKEY, MIG_ESSH (connect/auth/channel/dropped connection),
 * MIG_ETIMEDOUT, MIG_ECANCELED.
 */
struct mig_ssh_result {
    int err_code;
    int exit_status;
    const char *out;
    size_t out_len;
    const char *err;
    size_t err_len;
    char detail[256]; /* one line saying what went wrong, for err_code != 0 */
};

typedef void (*mig_ssh_exec_cb)(void *arg, const struct mig_ssh_result *res);

/*
 * Runs cmd on host (an address from CNAPI's "Admin IP", validated by the
 * caller) and writes stdin_data (may be NULL) to its stdin, then EOF.
 * Captures up to 8 MiB of stdout (more fails the command with MIG_EPARSE: no
 * caller may parse half an output) and 64 KiB of stderr.  timeout_s bounds
 * the whole command (0: no bound).  cb runs exactly once, never before this
 * call returns.  Returns 0 or a negative code (then cb does not run), e.g.
 * -EMFILE when no socket can be had.
 */
int mig_ssh_exec(struct mig_ssh_pool *pool, const char *host, const char *cmd,
                 const char *stdin_data, size_t stdin_len, int timeout_s, mig_ssh_exec_cb cb,
                 void *arg);

/* A chunk of a command's stderr as it arrives (any size, not NUL-terminated). */
typedef void (*mig_ssh_stderr_cb)(void *arg, const char *data, size_t n);

/*
 * Like mig_ssh_exec for a long stream run on host (a direct `zfs send |
 * ssh`): no stdin, no bound on the whole command but idle_timeout_s without
 * a byte on stderr (its progress lines), each stderr chunk also given to
 * on_stderr(arg) as it arrives, and the last 64 KiB of stderr kept for the
 * result (its failure is at its end).
 */
int mig_ssh_exec_stream(struct mig_ssh_pool *pool, const char *host, const char *cmd,
                        int idle_timeout_s, mig_ssh_stderr_cb on_stderr, mig_ssh_exec_cb cb,
                        void *arg);

struct mig_ssh_relay_result {
    int err_code;          /* 0 or a negative code as for exec */
    uint64_t bytes;        /* bytes moved from source to target */
    struct mig_ssh_result src, dst;
    char detail[256];
};

struct mig_ssh_relay_opts {
    size_t buffer_bytes;   /* pump buffer; 0: 1 MiB */
    uint64_t limit_bytes_s; /* 0: no cap */
    int idle_timeout_s;    /* fail when no byte moves for this long; 0: none */
};

typedef void (*mig_ssh_progress_cb)(void *arg, uint64_t bytes);
typedef void (*mig_ssh_relay_cb)(void *arg, const struct mig_ssh_relay_result *res);

/*
 * Which side of a failed relay says why: the consumer first (it says why a
 * stream was refused), but a consumer that only saw its stream end early
 * ("failed to read from stream") echoes a producer that failed, which
 * says why.  &res->src or &res->dst.
 */
const struct mig_ssh_result *mig_ssh_relay_speaker(const struct mig_ssh_relay_result *res);

/*
 * Runs src_cmd on src_host and dst_cmd on dst_host and pumps src's stdout to
 * dst's stdin with bounded memory: src is not read while the buffer is full
 * (dst's window closed).  When src's stdout ends, dst's stdin gets EOF.  Both
 * exit statuses and stderrs are reported.  If either side fails, the other
 * channel is closed.  Both ends run on connections of arg's own (reused by
 * arg's next streams), closed when the relay ends in any failure or
 * cancellation.  progress(arg, total) runs at most every 250 ms.
 * done runs exactly once.  Returns 0 or a negative code (then done does not run).
 */
int mig_ssh_relay(struct mig_ssh_pool *pool, const char *src_host, const char *src_cmd,
                  const char *dst_host, const char *dst_cmd,
                  const struct mig_ssh_relay_opts *opts, mig_ssh_progress_cb progress,
                  mig_ssh_relay_cb done, void *arg);

/*
 * Cancels the operations started with arg: their channels are closed (the
 * remote commands see EOF or a hang-up) and their callbacks run with
 * MIG_ECANCELED from the loop, never from inside this call.
 */
void mig_ssh_cancel(struct mig_ssh_pool *pool, void *arg);

/* Drops the cached session to host, if any (e.g. after the CN rebooted). */
void mig_ssh_forget(struct mig_ssh_pool *pool, const char *host);

#endif
