/*
 * executor.h: walks a plan (plan.h) for one job, with the journal.  For each
 * action instance: journal "started" (committed) -> act -> journal "done",
 * the job's ctx (the action's results) committed with it.  On a resume, a
 * done action is skipped and a started one is probed first ("is it already
 * so?"), then acted or skipped.  The undo walk goes over the journal
 * backwards and undoes only what was started, probing first.
 *
 * Failures: a transient one is retried with backoff (a transfer up to
 * transfer.retries times, an API call for a bounded time, an action past
 * the point of no return until it succeeds), saying what it waits for in
 * the job's activity; a removal that cannot risk the VM (its def names what
 * it leaves) is tried twice within seconds, then becomes a leftover of the
 * job (job.h) and the walk goes on; a journal write that fails pauses the walk before its
 * next remote action, retrying every few seconds.  The executor knows no
 * action by name; the engine decides what to walk.
 */
#ifndef MIGD_EXECUTOR_H
#define MIGD_EXECUTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "act.h"
#include "crash_point.h"
#include "daemon.h"
#include "ops.h"
#include "plan.h"
#include "store.h"

struct exec;

struct exec_hooks {
    /* The job changed in memory (progress, activity): tell its watchers. */
    void (*changed)(void *owner);
    /*
     * The walk (or call, or sleep) ended: err 0, MIG_ECANCELED when
     * interrupted, or the failure (the job's error is set).
     */
    void (*finished)(void *owner, int err);
};

/* Creates an executor for job (borrowed: the owner keeps it alive).  0 or a negative code. */
int exec_new(struct migd *d, struct mig_job *job, const struct exec_hooks *hooks, void *owner,
             struct exec **out);
/*
 * Creates an executor of calls only (exec_call, exec_sleep): no job, no
 * journal, no walk.  Its operations go where peers say (borrowed: the owner
 * keeps it alive and may fill it in as a call learns an address); NULL for
 * API calls alone.  An evacuation reads its CN this way.  0 or a negative code.
 */
int exec_new_calls(struct migd *d, const struct mig_peers *peers, const struct exec_hooks *hooks,
                   void *owner, struct exec **out);
/* Stops whatever runs (nothing more reaches the owner) and frees x once the loop lets go. */
void exec_free(struct exec *x);

/*
 * Walks plan forward (copied).  Consecutive rows of a MIG_ACT_PARALLEL
 * action (a round's sends, one per dataset) run at once, up to
 * transfer.streams, each journaled as any row (executor_group.c).
 */
void exec_run(struct exec *x, const struct mig_plan *plan);
/*
 * Walks the journal backwards, undoing the actions of the phases in mask
 * (bit 1 << phase) that were started and are not undone yet.
 */
void exec_undo(struct exec *x, unsigned phase_mask);
/*
 * Undoes exactly the steps of plan (copied; a job's leftovers left by undos),
 * as exec_undo would undo each: those the journal shows undone are skipped.
 */
void exec_undo_steps(struct exec *x, const struct mig_plan *plan);
/* Drives one coroutine to its end, without journal or retries (a submission's checks). */
void exec_call(struct exec *x, mig_act_fn fn, struct mig_act *a);
/* Sleeps ms (between sync rounds); exec_wake ends it early. */
void exec_sleep(struct exec *x, uint64_t ms);
/* Ends a sleep now; finished(0) follows. */
void exec_wake(struct exec *x);
/*
 * The operator aborted (or paused a first send): the operation in flight is
 * canceled (a stream is cut within a tick), and the cut action starts no
 * operation after it; every stream of a group is cut; a retry wait ends, and the walk
 * finishes with MIG_ECANCELED, except past the point of no return, where it
 * goes on.  why (static) is what the journal says of the cut action, e.g.
 * "interrupted by the operator's abort".  The next exec_run walks again.
 */
void exec_interrupt(struct exec *x, const char *why);

/* What the action functions know of the daemon (pool, API URLs); valid while x lives. */
const struct mig_act_env *exec_env(const struct exec *x);
/* True when the last failure was of an action past the point of no return. */
bool exec_failed_forward(const struct exec *x);
/* True when the walk (or a stream of its group) is paused on a journal write. */
bool exec_paused(const struct exec *x);
/* Bytes the last walk moved in streams (relays), its group's streams added up. */
uint64_t exec_streamed(const struct exec *x);

#endif
