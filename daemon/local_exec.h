/*
 * local_exec.h: one command run on the head node (health.command): /bin/sh
 * -c COMMAND in its own process group, with extra environment variables,
 * its stdout and stderr captured together (the last 4 KiB), killed with its
 * whole group when it outlives its timeout or is canceled.  The answer
 * always comes from the loop, exactly once.
 */
#ifndef MIGD_LOCAL_EXEC_H
#define MIGD_LOCAL_EXEC_H

#include <stddef.h>
#include <uv.h>

struct local_exec;

struct local_exec_result {
    int err;          /* 0: it ran to its end; MIG_ETIMEDOUT, MIG_ECANCELED, or a spawn error */
    int exit_status;  /* its exit code, 128+N for a signal, -1 when it did not end by itself */
    const char *out;  /* stdout and stderr as they came (the last 4 KiB); valid in the callback */
    size_t out_len;
    char detail[256]; /* one line when err != 0 */
};

typedef void (*local_exec_done_fn)(void *arg, const struct local_exec_result *r);

/*
 * Starts cmd with env_extra ("NAME=value" strings, NULL-terminated) added to
 * the daemon's environment.  0 and *out (valid until done runs), or a
 * negative libuv code (nothing started, done never runs).
 */
int local_exec_start(uv_loop_t *loop, const char *cmd, const char *const *env_extra,
                     unsigned timeout_s, local_exec_done_fn done, void *arg,
                     struct local_exec **out);

/* Kills it: done runs soon with MIG_ECANCELED. */
void local_exec_cancel(struct local_exec *x);

#endif
