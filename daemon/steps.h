/*
 * steps.h: the steps of a migration (product.md "The migration, step by
 * step") as a table the engine walks.  Each step is idempotent: it may be
 * run again from its start after a restart, and it records what it did in
 * job->ctx before it moves on.
 */
#ifndef MIGD_STEPS_H
#define MIGD_STEPS_H

#include "run.h"

struct step_def {
    enum mig_phase phase;
    run_step_fn fn;
    const char *does; /* what the step does, for the operator */
};

/* The steps in order, indexed by enum mig_phase. */
extern const struct step_def steps_table[MIG_PHASE_NPHASES];

/* Fetches the VM (VMAPI) and the servers (CNAPI) into the run. */
void step_load(struct run *r);
/* Validates a submission; on success fills r->job and r->plan. */
void step_validate(struct run *r);
/* Undoes what a job did before its switch, leaving the source as it was. */
void step_rollback(struct run *r);
/* Sends a switched VM back to its source and deletes the target's copy. */
void step_rollback_switched(struct run *r);
/* Deletes the source copy of a switched job (migctl cleanup). */
void step_cleanup_source(struct run *r);

/* Sets the job's error from the failing operation and ends the step. */
void steps_fail(struct run *r, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
