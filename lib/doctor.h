/*
 * doctor.h: what migrations left behind, found from what the CNs, VMAPI and
 * the job records say (product.md "doctor").  Pure: daemon/doctor.c gathers
 * the facts (one SSH command per CN per kind of fact, one VMAPI call), this
 * file compares them and says, one finding each, what is wrong, which job
 * left it when known, how bad it is and the exact fix.
 */
#ifndef MIG_DOCTOR_H
#define MIG_DOCTOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * What one CN said: its hostname and uuid, and the output of
 * mig_cmd_doctor_snapshots (zfs list of the pool's snapshots, NAME or
 * NAME<TAB>USERREFS), mig_cmd_doctor_resume_tokens (each dataset's
 * receive_resume_token; "" where the CN's zfs has no resumable streams),
 * mig_cmd_zoneadm_list (zoneadm list -pc), mig_cmd_doctor_keys (migd's
 * job key lines in authorized_keys, its /var/tmp/migd-* directories) and
 * mig_cmd_doctor_zone_flags (each zone's autoboot and do-not-inventory).  A
 * NULL text is a fact that could not be read (err says why).
 */
struct mig_doctor_cn {
    const char *hostname;
    const char *uuid;
    const char *snapshots;
    const char *zones;
    const char *keys;
    const char *flags; /* mig_cmd_doctor_zone_flags: FILE:LINE, the autoboot and attr lines */
    const char *err;
    const char *tokens; /* mig_cmd_doctor_resume_tokens: NAME<TAB>TOKEN, "-" for none */
};

/*
 * The findings, as an array of {cn, kind, name, vm_uuid, job, severity,
 * what, fix, fixable}: kind is snapshot, zone, running_twice, not_running,
 * vmapi_server, bootable_twice, flags, authorized_key, key_dir or
 * unreachable; severity info (as
 * expected for now: a switched job's kept source copy), warning (removable
 * leftover, or an inventory that is wrong) or critical (a VM that may be
 * down or doubled, or the only copy of one).  vms is VMAPI's GET /vms
 * answer (active VMs), jobs an array of jobs in their public JSON form.
 * ips (NULL: none checked) what NAPI says now of the IPs that ended jobs
 * found unreserved and reserved for their move: [{job, vm_uuid, ip,
 * network_uuid, reserved (NAPI's flag now, absent: not read),
 * belongs_to_uuid (NAPI's, when it names an instance: another one's IP is
 * no leftover), err,
 * newest (no later job of the VM saw it reserved)}].
 * fixable: what `doctor --fix` does by itself because no VM's data is at
 * stake (a job's snapshot or key, VMAPI's record through the CN's agent);
 * the zones and VMs running twice or nowhere are always left to a human.
 * trust_unknown: every job is on record (no unreadable row), so a thing
 * of a job migd does not know may be fixed; otherwise only those of jobs
 * known to have ended.  The zones of a VM that a job is moving now (queued,
 * running, waiting) are not judged.
 * New reference.
 */
json_t *mig_doctor_findings(const struct mig_doctor_cn *cns, size_t ncns, json_t *vms,
                            json_t *jobs, json_t *ips, bool trust_unknown);

#endif
