/*
 * local_exec.c: a head-node command under libuv (local_exec.h).  POSIX
 * only: a process group, SIGKILL, a pipe shared by stdout and stderr.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "local_exec.h"
#include "util.h"

extern char **environ;

#define OUT_KEEP 4096
#define GRACE_MS 200 /* after the exit, how long to wait for the pipe's last bytes */

struct local_exec {
    uv_process_t proc;
    uv_pipe_t pipe;
    uv_timer_t timer;
    local_exec_done_fn done;
    void *arg;
    int open_handles;
    bool exited, eof, answered, killed_by_timeout, canceled;
    int exit_status;
    unsigned timeout_s;
    char out[OUT_KEEP];
    size_t out_len;
    char rd[4096];
};

static void on_closed(uv_handle_t *h)
{
    struct local_exec *x = h->data;
    if (--x->open_handles == 0)
        free(x);
}

static void close_all(struct local_exec *x)
{
    uv_close((uv_handle_t *)&x->proc, on_closed);
    if (!uv_is_closing((uv_handle_t *)&x->pipe))
        uv_close((uv_handle_t *)&x->pipe, on_closed);
    uv_close((uv_handle_t *)&x->timer, on_closed);
}

/* The command exited and its output is read (or the grace is over): answer, then close. */
static void answer(struct local_exec *x)
{
    if (x->answered)
        return;
    x->answered = true;
    uv_timer_stop(&x->timer);
    struct local_exec_result r = {.err = 0, .exit_status = x->exit_status, .out = x->out,
                                  .out_len = x->out_len};
    if (x->canceled) {
        r.err = MIG_ECANCELED;
        r.exit_status = -1;
        snprintf(r.detail, sizeof(r.detail), "canceled");
    } else if (x->killed_by_timeout) {
        r.err = MIG_ETIMEDOUT;
        r.exit_status = -1;
        snprintf(r.detail, sizeof(r.detail), "no answer within %u s: killed", x->timeout_s);
    }
    x->done(x->arg, &r);
    close_all(x);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct local_exec *x = h->data;
    *buf = uv_buf_init(x->rd, sizeof(x->rd));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct local_exec *x = s->data;
    if (n < 0) {
        x->eof = true;
        uv_read_stop(s);
        if (x->exited)
            answer(x);
        return;
    }
    /* Keep the last OUT_KEEP bytes: a probe's verdict is at its end. */
    size_t len = (size_t)n;
    if (len >= OUT_KEEP) {
        memcpy(x->out, buf->base + len - OUT_KEEP, OUT_KEEP);
        x->out_len = OUT_KEEP;
        return;
    }
    if (x->out_len + len > OUT_KEEP) {
        size_t drop = x->out_len + len - OUT_KEEP;
        memmove(x->out, x->out + drop, x->out_len - drop);
        x->out_len -= drop;
    }
    memcpy(x->out + x->out_len, buf->base, len);
    x->out_len += len;
}

static void kill_group(struct local_exec *x)
{
    /* Detached: the child leads its own group, which takes its children along. */
    if (!x->exited && x->proc.pid > 0)
        kill(-x->proc.pid, SIGKILL);
}

static void on_timer(uv_timer_t *t)
{
    struct local_exec *x = t->data;
    if (x->exited) {
        answer(x); /* the grace after the exit is over */
        return;
    }
    x->killed_by_timeout = true;
    kill_group(x);
}

static void on_child_exit(uv_process_t *p, int64_t status, int sig)
{
    struct local_exec *x = p->data;
    x->exited = true;
    x->exit_status = sig != 0 ? 128 + sig : (int)status;
    if (x->eof) {
        answer(x);
        return;
    }
    uv_timer_stop(&x->timer);
    uv_timer_start(&x->timer, on_timer, GRACE_MS, 0);
}

int local_exec_start(uv_loop_t *loop, const char *cmd, const char *const *env_extra,
                     unsigned timeout_s, local_exec_done_fn done, void *arg,
                     struct local_exec **out)
{
    size_t nenv = 0, nextra = 0;
    while (environ[nenv] != NULL)
        nenv++;
    while (env_extra != NULL && env_extra[nextra] != NULL)
        nextra++;
    char **env = mig_calloc(nenv + nextra + 1, sizeof(*env));
    for (size_t i = 0; i < nenv; i++)
        env[i] = environ[i];
    for (size_t i = 0; i < nextra; i++)
        env[nenv + i] = (char *)env_extra[i];

    uv_file fds[2];
    int rc = uv_pipe(fds, 0, 0);
    if (rc != 0) {
        free(env);
        return rc;
    }
    struct local_exec *x = mig_calloc(1, sizeof(*x));
    x->done = done;
    x->arg = arg;
    x->timeout_s = timeout_s;
    x->exit_status = -1;
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = fds[1]},
        {.flags = UV_INHERIT_FD, .data.fd = fds[1]},
    };
    uv_process_options_t opts = {.exit_cb = on_child_exit, .file = "/bin/sh", .args = argv, .env = env,
                                 .flags = UV_PROCESS_DETACHED, .stdio_count = 3, .stdio = stdio};
    x->proc.data = x;
    rc = uv_spawn(loop, &x->proc, &opts);
    free(env);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        /* A failed spawn still initialised the handle: it must be closed before it is freed. */
        x->open_handles = 1;
        uv_close((uv_handle_t *)&x->proc, on_closed);
        return rc;
    }
    x->open_handles = 3;
    uv_pipe_init(loop, &x->pipe, 0);
    x->pipe.data = x;
    uv_timer_init(loop, &x->timer);
    x->timer.data = x;
    if (uv_pipe_open(&x->pipe, fds[0]) != 0 ||
        uv_read_start((uv_stream_t *)&x->pipe, on_alloc, on_read) != 0) {
        x->eof = true; /* no output then; the exit still answers */
    }
    uv_timer_start(&x->timer, on_timer, (uint64_t)timeout_s * 1000, 0);
    *out = x;
    return 0;
}

void local_exec_cancel(struct local_exec *x)
{
    if (x->answered)
        return;
    x->canceled = true;
    kill_group(x);
}
