/*
 * submit.h: the checks of a submission (product.md step 1, "validate"),
 * written as one read-only coroutine over operations (act.h) so that the
 * daemon runs it like any action, only without a journal: nothing it does
 * changes a CN or an API.  It finds the VM (by uuid or unique alias), the
 * source and the target (named, or placed), applies the rules of
 * validate.h, reaches both CNs over SSH (host keys checked), and fills the
 * job: its servers, hostnames, and the ctx facts every later action uses
 * (admin IPs, datasets with their origins and sizes, NICs, image).
 */
#ifndef MIG_SUBMIT_H
#define MIG_SUBMIT_H

#include <jansson.h>

#include "act.h"

struct mig_submit {
    struct mig_act a;   /* first member: the coroutine receives &s->a */
    json_t *vm;         /* VMAPI's object of the VM */
    json_t *servers;    /* CNAPI's servers, with capacity and sysinfo */
    json_t *src, *dst;  /* borrowed from servers */
    int64_t disk_mib;   /* what the VM needs on the target */
    json_t *tree;       /* every dataset sent (a bhyve disk below the zone's too), for the plan */
    /* Inputs of the placement when no target is named (place.h): set before the first step. */
    const char *spread_tag; /* placement.spread_tag; NULL: none */
    json_t *avoid;          /* CN uuids being drained (owned; may be NULL) */
    json_t *others;         /* with spread_tag and no target: every active VM */
};

/* Starts a submission's checks for job (whose vm_uuid or vm_alias and ctx.target_request are set). */
void mig_submit_init(struct mig_submit *s, struct mig_job *job, const struct mig_act_env *env);
/* Frees what s holds (not the job). */
void mig_submit_clear(struct mig_submit *s);

/*
 * The coroutine: MIG_ACT_OP, MIG_ACT_DONE (the job may be created), or
 * MIG_ACT_FAIL with a->err_code the rule that refused (validate.h's
 * MIG_RULE_* or an API's error code) and a->err_msg one line saying what
 * is wrong and what to do.
 */
int mig_submit_step(struct mig_act *a);

/*
 * The dry run's answer once the checks passed: the VM, where it goes, the
 * data to move with each dataset's origin, the estimate (which honours
 * limit_mbps), and every action in order.  New reference.
 */
json_t *mig_submit_plan(struct mig_submit *s, int limit_mbps);

#endif
