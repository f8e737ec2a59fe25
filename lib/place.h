/*
 * place.h: where each VM should go when no target CN is named: the plan of
 * `migctl evacuate CN` (every VM of the CN) and of `migctl migrate VM`
 * without TARGET_CN (a plan of one VM).  A pure function over the JSON that
 * CNAPI (`GET /servers?extras=capacity,sysinfo`) and VMAPI return: no I/O,
 * no loop.  The target rules are validate.h's; the plan adds the running
 * totals (what it already put on a CN counts against that CN's unreserved
 * RAM and disk) and the choice among the CNs that pass.
 */
#ifndef MIG_PLACE_H
#define MIG_PLACE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "validate.h"

/* Rules of the plan itself, beside validate.h's MIG_RULE_*. */
#define MIG_PLACE_RULE_SOURCE_UNKNOWN "SourceNotFound" /* the source is not in CNAPI's list */
#define MIG_PLACE_RULE_NOT_ON_SOURCE "VmNotOnSource"   /* VMAPI puts the VM on another CN */
#define MIG_PLACE_RULE_NOT_IN_TO "NotInTargetList"     /* a CN outside opts.to */
#define MIG_PLACE_RULE_NO_TARGET "NoEligibleTarget"    /* CNs excluded for several rules */
#define MIG_PLACE_RULE_EVACUATING "TargetBeingEvacuated" /* in an unfinished evacuation's set */
#define MIG_PLACE_RULE_SPREAD "SpreadConflict" /* every CN that fits runs one of its group */

struct mig_place_opts {
    /*
     * The CN the VMs leave (uuid or hostname).  NULL: the server_uuid of the
     * first VM, which is what a plan of one VM wants.  A VM whose
     * server_uuid names another CN is skipped (VmNotOnSource).
     */
    const char *source;
    const char *const *to; /* nto uuids or hostnames that limit the targets; nto 0: any CN */
    size_t nto;
    bool allow_older_platform; /* -D: a target may run an older platform */
    const char *admin_uuid;    /* VMs it owns are core zones (mig_validate_vm); may be NULL */
    /*
     * placement.spread_tag (NULL: none).  VMs of one owner with the same
     * value of this tag (spread.h) never go to one CN, nor to a CN that runs
     * one of them already (as others says); when every CN that fits runs
     * one, the VM stays, with MIG_PLACE_RULE_SPREAD and the CNs named.
     */
    const char *spread_tag;
    json_t *others; /* VMAPI's active VMs on any CN (borrowed; NULL: none known) */
    /*
     * CNs no VM may go to, by uuid or hostname (borrowed JSON array of
     * strings; may be NULL): every CN of an unfinished evacuation, running
     * or queued in a rolling drain, which will be drained itself
     * (MIG_PLACE_RULE_EVACUATING).
     */
    json_t *avoid;
};

/* One CNAPI server as the plan sees it.  Strings are owned by the plan. */
struct mig_place_cn {
    char *uuid;
    char *hostname;          /* the uuid when CNAPI reports none */
    bool eligible;           /* may receive VMs of this plan */
    const char *rule;        /* excluded: MIG_RULE_* or MIG_PLACE_RULE_*; else NULL */
    char *why;               /* excluded: one line saying why; else NULL */
    int64_t ram_free_mib;    /* unreserved RAM left once the plan is done */
    int64_t disk_free_mib;   /* unreserved disk left once the plan is done */
    int64_t ram_planned_mib; /* what the plan puts here */
    int64_t disk_planned_mib;
    size_t nplanned; /* VMs the plan puts here */
};

/* One VM's outcome.  Strings are owned by the plan. */
struct mig_place_vm {
    char *uuid;
    char *alias;                       /* NULL when the VM has none */
    char *brand;                       /* NULL when the VM has none */
    int64_t ram_mib;                   /* vm.ram */
    int64_t disk_mib;                  /* quota * 1024 plus disks[].size, as submit.c counts it */
    const struct mig_place_cn *target; /* into the plan's cns; NULL when not placed */
    bool skipped;                      /* the VM may not migrate at all (a VM rule) */
    const char *rule;                  /* NULL when placed; else the rule that decided */
    char *why;                         /* one line: why this target, or why none */
};

struct mig_place {
    struct mig_place_cn *cns; /* every server, sorted by hostname, then uuid */
    size_t ncns;
    const struct mig_place_cn *source; /* into cns; NULL only for a plan of no VM */
    struct mig_place_vm *vms;          /* in placement order (see place.c) */
    size_t nvms;
    size_t nplaced, nskipped, nunplaced; /* nplaced + nskipped + nunplaced == nvms */
};

/*
 * Plans where each VM of vms (a JSON array of VMAPI objects) goes among
 * servers (CNAPI's array with capacity and sysinfo); both are borrowed and
 * left unchanged; opts may be NULL (every default).  A VM is skipped when
 * mig_validate_vm refuses it or it is not on the source; otherwise it goes
 * to the CN that passes every rule of mig_validate_target, counting the RAM
 * and disk the plan already put there, and has the most RAM free after
 * placement (ties: the first by hostname, then uuid), or to none with the
 * rule that stopped it.
 *
 * Returns 0 with *out a new plan (free it with mig_place_free); MIG_EREFUSED
 * with *r filled when the source or an entry of opts->to is not in servers;
 * MIG_EPARSE when servers or vms is not an array.  The same input always
 * gives the same plan, whatever the order of the arrays.
 */
int mig_place_plan(json_t *servers, json_t *vms, const struct mig_place_opts *opts,
                   struct mig_place **out, struct mig_refusal *r);

/* Frees a plan and everything it owns; NULL is fine. */
void mig_place_free(struct mig_place *p);

/*
 * The plan as JSON, a new array in placement order of {vm_uuid, alias,
 * brand, ram, disk_mib, target_uuid, target_hostname, skipped, rule, why};
 * alias, brand, target_* and rule are null when absent.
 */
json_t *mig_place_json(const struct mig_place *p);

#endif
