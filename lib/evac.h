/*
 * evac.h: the plan of an evacuation, and the estimates migctl estimate and
 * the plan share.  mig_evac_step is a read-only coroutine over operations
 * (act.h), like a submission's checks: it finds the CN in CNAPI, lists its
 * VMs in VMAPI, asks the CN how much data each holds (one `zfs list` of the
 * pool), and places them (place.h).  The time a VM takes is its data over
 * the rate measured between the two CNs (or a stated default until one is),
 * plus a fixed part for the rest of a job; a whole evacuation's window is
 * the VMs run smallest first on max_parallel lanes.  Pure but for the ops.
 */
#ifndef MIG_EVAC_H
#define MIG_EVAC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "act.h"
#include "place.h"

/* The rate assumed between two CNs until one was measured (relay in the lab: ~85 MB/s). */
#define MIG_DEFAULT_RATE_BYTES_S (50 * 1000 * 1000)
/* What a job takes besides its data (checks, snapshots, the switch, the inventory) until measured. */
#define MIG_JOB_FIXED_S 10

struct mig_evac {
    struct mig_act a;           /* first member: the coroutine receives &e->a */
    /* inputs */
    char server[256];           /* the CN to empty: uuid or hostname */
    const char *const *to;      /* targets allowed (uuids or hostnames), nto of them */
    size_t nto;
    bool allow_older_platform;
    bool estimate_only;         /* server may name a VM instead (migctl estimate VM|CN) */
    char vm[64];                /* set when the plan is of one VM (uuid or alias) */
    const char *spread_tag;     /* placement.spread_tag, NULL: none (then others stays NULL) */
    json_t *avoid;              /* CN uuids in unfinished evacuations' sets; owned; may be NULL */
    /* results */
    json_t *servers;            /* CNAPI's servers */
    json_t *source;             /* borrowed from servers */
    json_t *vms;                /* VMAPI's VMs on the CN (active) */
    json_t *used;               /* {vm_uuid: bytes} from the CN's zfs list */
    json_t *others;             /* with spread_tag: every active VM (VMAPI, page by page) */
    struct mig_place *plan;
    /* the CN it empties, as CNAPI names it once found */
    char source_uuid[MIG_UUID_LEN + 1];
    char source_hostname[256];
    char source_ip[MIG_IP_LEN];
    struct mig_peers peers; /* where its operations go: the CN above; no job */
};

/*
 * Sets up an evacuation's coroutine (no job: its operations go to
 * e->peers, which the runner of its calls borrows).
 */
void mig_evac_init(struct mig_evac *e, const struct mig_act_env *env);
void mig_evac_clear(struct mig_evac *e);

/*
 * The coroutine: MIG_ACT_OP, MIG_ACT_DONE, or MIG_ACT_FAIL with err_code a
 * rule (TargetNotFound for an unknown CN, VmNotFound, CnapiError, ...) and
 * err_msg one line.
 */
int mig_evac_step(struct mig_act *a);

/*
 * {vm_uuid: bytes} from the pool's `zfs list -H -p -o name,used,referenced,...`:
 * the data a first send moves (mig_zfs_send_bytes) of a VM's zones/UUID, of
 * each dataset below it (a bhyve disk, a delegated dataset) and of its
 * zones/UUID-diskN volumes (KVM).  Anything else (images, cores)
 * is not a VM's.
 */
json_t *mig_evac_used_by_vm(const char *zfs_list_out);

/* The bytes a VM's datasets use on the CN (from the zfs list), or its quota when unknown. */
int64_t mig_evac_bytes(const struct mig_evac *e, json_t *vm);

/*
 * Seconds one VM of bytes takes: its data at rate_bytes_s (<= 0: the
 * default; capped by limit_mbps when that is set) plus overhead_ms for the
 * rest of the job (< 0: MIG_JOB_FIXED_S).
 */
int64_t mig_estimate_s(int64_t bytes, int64_t rate_bytes_s, int64_t overhead_ms, int limit_mbps);

/*
 * The window of n jobs of seconds[] (run in the given order) on parallel
 * lanes, each starting as soon as a lane frees: the makespan.
 */
int64_t mig_estimate_window_s(const int64_t *seconds, size_t n, int parallel);
/*
 * The same, also giving when each one starts (starts[i], seconds from the
 * beginning; starts may be NULL): a rolling drain's CNs on max_cns lanes.
 */
int64_t mig_estimate_starts(const int64_t *seconds, size_t n, int parallel, int64_t *starts);

/*
 * How far an evacuation's plan entry got, from its job's public JSON (a job
 * that cannot be read counts as moving): still moving (queued, at work),
 * waiting (a homecoming's rollback not started yet: "by": "rollback" with
 * the job switched and not tagged by record_uuid; homecoming_rollbacks.c
 * starts it), done, or failed.  A job that another record rolls back (a
 * homecoming) is no longer record_uuid's to follow: it left, as that
 * record wanted, and counts as done there.
 */
enum mig_evac_outcome { MIG_EVAC_MOVING, MIG_EVAC_WAITING, MIG_EVAC_DONE, MIG_EVAC_FAILED };
enum mig_evac_outcome mig_evac_entry_outcome(const char *record_uuid, json_t *entry, json_t *job);

#endif
