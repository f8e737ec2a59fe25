/*
 * ops.h: runs the operations of act.h for one owner, one at a time, through
 * the adapters (ssh.h, http.h) and a timer for sleeps.  Every completion,
 * even one that could not start, comes back from the loop as a struct
 * mig_result, never from inside the call that started it.  The owner knows
 * nothing of libssh2, libcurl or libuv handles.
 */
#ifndef MIGD_OPS_H
#define MIGD_OPS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "act.h"
#include "cn.h"
#include "daemon.h"
#include "local_exec.h"

typedef void (*ops_done_fn)(void *owner, const struct mig_result *res);
typedef void (*ops_progress_fn)(void *owner, uint64_t bytes);

struct ops {
    struct migd *d;
    void *owner;
    ops_done_fn done;
    ops_progress_fn progress; /* relays: bytes moved so far, at most every 250 ms */
    uv_timer_t timer;         /* sleeps, and completions of operations that could not start */
    bool busy;                /* an operation (or a sleep) is outstanding */
    bool deliver;             /* the timer delivers res (an op that could not start) */
    bool closing;
    bool unsaved;             /* the job is not in the store yet: log without its uuid */
    bool stream;              /* the SSH op is a direct send: its stderr says its progress */
    struct mig_send_progress sent; /* the stream's progress lines so far */
    struct local_exec *exec;       /* an EXEC op's command while it runs */
    void (*on_closed)(void *arg);
    void *closed_arg;
    struct mig_result res; /* the last result; its strings below live until the next op */
    char *out, *errout;
    json_t *json;
};

/* Sets o up on d's loop for owner.  0 or a negative code. */
int ops_init(struct ops *o, struct migd *d, void *owner, ops_done_fn done,
             ops_progress_fn progress);

/*
 * Starts op for peers (the side's address, and whose op it is for the log).
 * The struct is read during the call, or copied when the op waits its turn
 * on a CN (mig_op.serial); the strings it points to must live until done
 * runs, as op's.  A fake (ops_fake.run) must not keep the pointer.  http_retries:
 * extra attempts the HTTP client makes on its own (-1: its default; 0 when
 * the caller retries itself).  limit_bytes_s caps a relay (0: none).  done
 * runs exactly once, from the loop.  o must not be busy.
 */
void ops_start(struct ops *o, const struct mig_op *op, const struct mig_peers *peers,
               int http_retries, uint64_t limit_bytes_s);
/* done runs after ms with res.err 0 (or MIG_ECANCELED when canceled). */
void ops_sleep(struct ops *o, uint64_t ms);
/* Cancels what is outstanding: done runs soon, from the loop, with MIG_ECANCELED. */
void ops_cancel(struct ops *o);
/*
 * Cancels what is outstanding, delivers nothing more to the owner, and
 * calls on_closed(arg) once nothing refers to o any more (o may then be freed).
 */
void ops_close(struct ops *o, void (*on_closed)(void *arg), void *arg);

/*
 * Unit tests put a fake world behind the operations: run(arg, o, op, peers)
 * decides the outcome and later (from the loop, never from inside run)
 * calls ops_fake_deliver with it.
 */
struct ops_fake {
    void (*run)(void *arg, struct ops *o, const struct mig_op *op, const struct mig_peers *peers);
    /* Cancels o's outstanding operation: it must still be delivered, with MIG_ECANCELED. */
    void (*cancel)(void *arg, struct ops *o);
    void *arg;
};
/*
 * Completes o's outstanding operation with res (copied) and the given
 * stdout, stderr (may be NULL) and JSON body (borrowed; may be NULL).
 */
void ops_fake_deliver(struct ops *o, const struct mig_result *res, const char *out,
                      const char *errout, json_t *json);

#endif
