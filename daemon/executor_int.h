/*
 * executor_int.h: what the executor's files share (private to
 * daemon/executor*.c; the rest of migd sees executor.h).  executor.c: the
 * journaled walk of a plan, one action at a time; executor_group.c: a
 * group, the rows of a MIG_ACT_PARALLEL action (a round's sends, one per
 * dataset) run at once, each by a kid executor walking a plan of that one
 * row, so that each is journaled, probed, retried and killed exactly as a
 * row of a walk is.
 */
#ifndef MIGD_EXECUTOR_INT_H
#define MIGD_EXECUTOR_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "executor.h"

enum stage {
    ST_IDLE,
    ST_PROBE,      /* a started action's probe */
    ST_ACT,        /* an action */
    ST_UNDO_PROBE, /* the probe of a started action before undoing it */
    ST_UNDO,       /* an undo */
    ST_RETRY_WAIT, /* backoff before trying an action (or undo) again */
    ST_PAUSE,      /* a journal write failed: waiting to write it again */
    ST_CALL,       /* exec_call: a coroutine without journal */
    ST_SLEEP,      /* exec_sleep */
    ST_GROUP,      /* rows of a MIG_ACT_PARALLEL action running at once, each by a kid */
};

/* A kid: an executor of the group's rows, one row at a time. */
struct kid {
    struct exec *parent;
    struct exec *x; /* NULL until first needed */
    bool running;
};

/* A journal write to make, and what follows it. */
struct pending {
    enum mig_action_status status;
    char error[512];
    void (*then)(struct exec *x);
};

struct exec {
    struct migd *d;
    struct mig_job *job;            /* NULL: an executor of calls only (exec_new_calls) */
    const struct mig_peers *peers;  /* without a job: where its calls go (the owner's) */
    const struct exec_hooks *hooks;
    void *owner;
    struct ops ops;
    struct mig_act_env env;
    struct mig_plan plan; /* the walk: forward, or the journal's steps in undo order */
    int at;
    bool undo;
    enum stage stage;
    enum stage retry_stage; /* the stage a retry starts again in */
    struct mig_act act;     /* the running action function */
    struct mig_act *cur;    /* &act, or the caller's for exec_call */
    mig_act_fn fn;
    int attempt;
    int64_t first_fail_ms;
    bool interrupted;
    const char *interrupted_by; /* the journal's words for it: "the operator's abort" */
    bool failed_forward;
    struct mig_action_rec *journal; /* the job's journal as last read and written */
    size_t njournal;
    struct pending pending;
    int64_t relay_started_ms;
    uint64_t streamed;
    int64_t op_started_ms; /* when the operation in flight began */
    int64_t op_ms;         /* the current action's time in its operations */
    uint64_t op_bytes;     /* what the stream in flight has moved, as last counted */
    uint64_t rate;         /* the stream in flight's rate, bytes/s */
    /* A group (ST_GROUP): its rows are plan steps [at, group_end). */
    struct exec *parent;   /* a kid's: the executor whose group it runs */
    struct kid kids[MIG_MAX_STREAMS];
    int width;             /* kids at most (transfer.streams) */
    int group_next;        /* the first step of the group not taken yet */
    int group_end;
    int group_running;
    int group_err;         /* the first failure of a kid (a cut by interrupt last) */
    bool group_filling;
};

/* ---- executor.c ---- */

int exec_alloc(struct migd *d, struct mig_job *job, const struct mig_peers *peers,
               const struct exec_hooks *hooks, void *owner, struct exec **out);
/* The journal's status of key in x's copy of it, or -1 when it has none. */
int exec_jstatus(const struct exec *x, const char *key);
/* Reads the job's journal again into x's copy: 0 or a negative code. */
int exec_load_journal(struct exec *x);
/* Whether plan step i has work left: not done in x's journal, and it applies to the job. */
bool exec_row_pending(const struct exec *x, int i);
/* Walks on from step x->at. */
void exec_next_forward(struct exec *x);
/* The walk ended: the owner hears err. */
void exec_finish(struct exec *x, int err);

/* ---- executor_group.c ---- */

/*
 * Step x->at begins a group with two rows or more to do (and
 * transfer.streams allows two): they run at once, and the walk goes on
 * after them, or ends with the first failure once every kid has stopped.
 * False: the walk takes the row alone.
 */
bool exec_group_start(struct exec *x);

#endif
