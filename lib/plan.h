/*
 * plan.h: the action tables of a job, and the plans built from them.  A plan
 * is the ordered list of action instances one part of a job walks: the
 * prepare phase, one sync round, the switch, the cleanup after it, the
 * operator's rollback of a switched job, the deletion of its source copy.
 * The executor walks plans; the dry run prints them; `show -v` and the crash
 * campaign read the journal they leave, keyed by each instance's key.
 *
 * Keys: the action's name, then "@R" for a round and "#I" for an item
 * (dataset or NIC index): "sync.send@2#0", "prepare.reserve_ip#1",
 * "switch.attach_target".
 */
#ifndef MIG_PLAN_H
#define MIG_PLAN_H

#include <jansson.h>

#include "act.h"
#include "job.h"

/* One action instance of a plan. */
struct mig_step {
    const struct mig_action_def *def;
    enum mig_phase phase;
    int round; /* -1: none */
    int item;  /* -1: none */
    char key[128];
};

#define MIG_PLAN_MAX 160

struct mig_plan {
    int n;
    struct mig_step steps[MIG_PLAN_MAX];
};

/*
 * Builds the plan of one part of the job into p (replacing it).  Every
 * instance of every action of that part is listed, whether or not it
 * applies; the executor asks each def's applies() when it gets there.
 */
void mig_plan_prepare(const struct mig_job *job, struct mig_plan *p);
/* Sync round `round` (1, 2, ...): snapshot every dataset, send each. */
void mig_plan_round(const struct mig_job *job, int round, struct mig_plan *p);
void mig_plan_switch(const struct mig_job *job, struct mig_plan *p);
void mig_plan_cleanup(const struct mig_job *job, struct mig_plan *p);
/* One pass of the health gate (phase verify): its round is the pass's number. */
void mig_plan_verify(const struct mig_job *job, struct mig_plan *p);
/* The operator's rollback of a switched job (phase rollback). */
void mig_plan_return(const struct mig_job *job, struct mig_plan *p);
/* The operator's cleanup of a switched job's source copy (phase cleanup). */
void mig_plan_remove_source(const struct mig_job *job, struct mig_plan *p);

/*
 * Finds the action instance a journal key names (for the undo walk and
 * show -v).  0 and *out, or -ENOENT for a key no table has.
 */
int mig_plan_step_from_key(const char *key, struct mig_step *out);

/*
 * The whole migration as the operator will see it happen, for the dry run:
 * an array of {action, phase, on, does} in order, sync rounds shown once
 * (with a note for incremental modes), instances that do not apply to this
 * job left out.  New reference.
 */
json_t *mig_plan_describe(const struct mig_job *job);

#endif
