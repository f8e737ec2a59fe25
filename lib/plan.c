/*
 * plan.c: the action tables of a migration and of the operator's rollback
 * and cleanup (plan.h).  Reading a table tells an operator what migd will do,
 * in which order, on which CN, how it checks each thing is done, and how it
 * takes each back.  The orders carry the safety rules of product.md:
 *
 *  - nothing on the target is made bootable before the source is disabled
 *    (autoboot off, do-not-inventory), and the target's zone stays flagged
 *    do-not-inventory until the source's is, so the CNs' agents never
 *    report the VM from both;
 *  - the VM is started on the target before the inventory is written, so an
 *    API outage never keeps it down; from the start on (the point of no
 *    return) actions are retried forward, never undone;
 *  - undoing walks these tables backwards, so a zone is deleted before its
 *    datasets, the cores dataset before the zone's, and the source is
 *    enabled only after the target is stopped, flagged and detached.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "invariant.h"
#include "plan.h"
#include "util.h"

/* ---- when an instance applies ---- */

static bool nic_has_ip(const struct mig_job *job, int round, int item)
{
    (void)round;
    return item >= 0 && item < job->ctx.nnics && job->ctx.nics[item].ip[0] != '\0';
}

static bool nic_needs_reserve(const struct mig_job *job, int round, int item)
{
    return nic_has_ip(job, round, item) && job->ctx.nics[item].reserved_before != 1;
}

static bool nic_needs_restore(const struct mig_job *job, int round, int item)
{
    return nic_has_ip(job, round, item) && job->ctx.nics[item].reserved_before == 0;
}

static bool nic_has_mac(const struct mig_job *job, int round, int item)
{
    (void)round;
    return item >= 0 && item < job->ctx.nnics && job->ctx.nics[item].mac[0] != '\0';
}

static bool was_running(const struct mig_job *job, int round, int item)
{
    (void)round, (void)item;
    return job->vm_was_running == 1;
}

/* The VM is to run on the source after the rollback (see health.h for a gate's). */
static bool ran_on_target(const struct mig_job *job, int round, int item)
{
    (void)round, (void)item;
    return job->ctx.back_was_running == 1;
}

/* One import per image a dataset of the VM was cloned from (validation lists them). */
static bool has_image(const struct mig_job *job, int round, int item)
{
    (void)round;
    return item >= 0 && item < job->ctx.nimages;
}

/* ---- the tables ---- */

#define SRC MIG_SIDE_SOURCE
#define DST MIG_SIDE_TARGET
#define API MIG_SIDE_API
#define LOCAL MIG_SIDE_LOCAL

/* prepare */
static const struct mig_action_def PREPARE[] = {
    {"prepare.inspect_source", SRC, "vmadm get: whether the VM runs, its autoboot", MIG_ACT_READ,
     NULL, NULL, act_inspect, NULL, NULL},
    {"prepare.features_source", SRC,
     "zfs get receive_resume_token, zfs send -c: resumable and compressed streams?",
     MIG_ACT_READ, NULL, NULL, act_features, NULL, NULL},
    {"prepare.features_target", DST,
     "zfs get receive_resume_token, zfs send -c: resumable and compressed streams?",
     MIG_ACT_READ, NULL, NULL, act_features, NULL, NULL},
    {"prepare.check_target", DST, "zfs list: no dataset of the VM is there yet", MIG_ACT_READ,
     NULL, NULL, act_check_target, NULL, NULL},
};
/* per NIC */
static const struct mig_action_def READ_IP = {
    "prepare.read_ip", API, "NAPI GET the IP: was it reserved before the job?", MIG_ACT_READ,
    nic_has_ip, NULL, act_read_ip, NULL, NULL};
static const struct mig_action_def RESERVE_IP = {
    "prepare.reserve_ip", API, "NAPI PUT reserved=true on the IP", 0, nic_needs_reserve,
    probe_reserved_ip, act_reserve_ip, act_restore_ip, "ip"};
static const struct mig_action_def IMPORT_IMAGE = {
    "prepare.import_image", DST,
    "imgadm import an image a dataset is cloned from, so its first send is incremental", 0,
    has_image, probe_image, act_import_image, NULL, NULL};

/* bhyve: room for the snapshots under the top dataset's quota (act_quota.c) */
static bool is_bhyve(const struct mig_job *job, int round, int item)
{
    (void)round, (void)item;
    return mig_job_bhyve(job);
}
static const struct mig_action_def QUOTA_READ = {
    "prepare.quota_source", SRC, "zfs get quota, reservation: what to put back at the end",
    MIG_ACT_READ, is_bhyve, NULL, act_quota_read, NULL, NULL};
static const struct mig_action_def ROOM = {
    "sync.room", SRC, "zfs set quota: room for the round's snapshot (raised, never lowered)",
    MIG_ACT_REDO, is_bhyve, NULL, act_room, undo_room, "quota"};
static const struct mig_action_def SWITCH_ROOM = {
    "switch.room", SRC, "zfs set quota: room for the final snapshot", MIG_ACT_REDO, is_bhyve,
    NULL, act_room, undo_room, "quota"};
static const struct mig_action_def RETURN_ROOM = {
    "rollback.room", DST, "zfs set quota: room for a snapshot on the target", MIG_ACT_REDO,
    is_bhyve, NULL, act_room, undo_room, "quota"};
static const struct mig_action_def RETURN_QUOTA = {
    "rollback.quota_source", SRC, "zfs set quota, reservation: as they were before the job",
    MIG_ACT_FORWARD, is_bhyve, NULL, act_quota_restore, NULL, "quota"};
static const struct mig_action_def REMOVE_QUOTA = {
    "cleanup.quota_target", DST, "zfs set quota, reservation: as they were before the job",
    MIG_ACT_FORWARD, is_bhyve, NULL, act_quota_restore, NULL, "quota"};

/* sync round (per dataset) */
static const struct mig_action_def SNAPSHOT = {
    "sync.snapshot", SRC, "zfs snapshot -r of the round", MIG_ACT_BEST_EFFORT, NULL,
    probe_snapshot, act_snapshot, undo_snapshot, "snapshot"};
static const struct mig_action_def SEND = {
    "sync.send", SRC, "zfs send | zfs receive to the target, from the newest common snapshot",
    MIG_ACT_TRANSFER | MIG_ACT_UNDO_BLIND | MIG_ACT_PARALLEL, NULL, probe_sent_forward,
    act_send_forward, undo_send_forward, "dataset"};

/* The health gate (health.h): on for a VM that ran, unless min_up is 0. */
static bool gate_on(const struct mig_job *job, int round, int item)
{
    (void)round, (void)item;
    return job->vm_was_running == 1 && job->health.min_up_s > 0;
}

static bool gate_smf(const struct mig_job *job, int round, int item)
{
    return gate_on(job, round, item) && mig_health_smf_brand(job->brand);
}

static const struct mig_action_def HEALTH_BASELINE = {
    "switch.health_baseline", SRC, "svcs -z UUID -x: services in maintenance before the stop",
    MIG_ACT_READ, gate_smf, NULL, act_health_baseline, NULL, NULL};
static const struct mig_action_def VERIFY_HEALTH = {
    "verify.health", DST,
    "vmadm get, zoneadm list -p, svcs -z -x until up health.min_up_s, then health.command",
    MIG_ACT_READ, gate_on, NULL, act_verify_health, NULL, NULL};

/* switch */
static const struct mig_action_def SWITCH_BEGIN = {
    "switch.begin", LOCAL, "the downtime starts", 0, NULL, NULL, act_begin_switch, NULL, NULL};
static const struct mig_action_def SWITCH_STOP = {
    "switch.stop_source", SRC, "vmadm stop", 0, was_running, probe_stopped,
    act_stop, undo_stop, NULL};
static const struct mig_action_def SWITCH_SNAPSHOT = {
    "switch.snapshot", SRC, "zfs snapshot -r, final", MIG_ACT_BEST_EFFORT, NULL,
    probe_snapshot, act_snapshot, undo_snapshot, "snapshot"};
static const struct mig_action_def SWITCH_SEND = {
    "switch.send", SRC, "zfs send the last changes to the target",
    MIG_ACT_TRANSFER | MIG_ACT_PARALLEL, NULL, probe_sent_forward, act_send_forward, NULL, NULL};
/*
 * Staged in the first round, while the VM still runs: the target's zone,
 * configured and flagged do-not-inventory, and its cores dataset (after the
 * first receive: it is mounted inside the zone's dataset).
 */
static const struct mig_action_def STAGE[] = {
    {"sync.stage_config", SRC, "zonecfg export, to stage the zone on the target", MIG_ACT_READ,
     NULL, NULL, act_export_config, NULL, NULL},
    {"sync.stage_target", DST,
     "zonecfg -f -: the zone, configured, flagged do-not-inventory, autoboot off", 0, NULL,
     probe_configured_target, act_configure_target, act_delete_zone, "zone"},
    {"sync.stage_cores", DST, "zfs create zones/cores/UUID", MIG_ACT_BEST_EFFORT, NULL,
     probe_cores, act_create_cores, act_destroy_cores, "dataset"},
};

/*
 * The staged zone's restaging: ctx.config_changed is 1 when the check
 * before the stop found the source's zone changed, 2 when the recheck after
 * it found a change again.
 */
static bool config_changed(const struct mig_job *job, int round, int item)
{
    (void)round, (void)item;
    return job->ctx.config_changed == 1;
}
static bool config_changed_again(const struct mig_job *job, int round, int item)
{
    (void)round, (void)item;
    return job->ctx.config_changed == 2;
}

/*
 * Before the stop, what needs no stopped VM: a check that the staged
 * configuration still holds (restaged if not), the staged zone attached
 * (hidden and autoboot off, it neither shows nor boots while the source
 * runs; what it mounts, the zone's root, was received and checked in the
 * first round and is mounted since), and the final send's base.
 */
static const struct mig_action_def SWITCH_CHECK[] = {
    {"switch.check_config", SRC, "zonecfg export: did the zone change since it was staged?",
     MIG_ACT_READ, NULL, NULL, act_check_config, NULL, NULL},
    {"switch.unstage_target", DST, "zonecfg delete: the staged zone, when the source's changed",
     0, config_changed, NULL, act_delete_zone, NULL, NULL},
    {"switch.restage_target", DST, "zonecfg -f -: the changed configuration, flagged", 0,
     config_changed, probe_configured_target, act_configure_target, act_delete_zone, NULL},
    {"switch.attach_target", DST, "zoneadm attach, before the stop: hidden, autoboot off", 0,
     NULL, probe_attached, act_attach, act_detach, NULL},
};

/*
 * After the stop, only when the zone changed before it: changed again
 * since?  Then staged once more, inside the window: deleted (detached
 * first: act_delete_zone), configured and attached again.
 */
static const struct mig_action_def SWITCH_RECHECK[] = {
    {"switch.recheck_config", SRC, "zonecfg export: changed again since the check before the stop?",
     MIG_ACT_READ, config_changed, NULL, act_recheck_config, NULL, NULL},
    {"switch.unstage_again", DST, "zonecfg delete: the staged zone, when it changed again", 0,
     config_changed_again, NULL, act_delete_zone, NULL, NULL},
    {"switch.restage_again", DST, "zonecfg -f -: the configuration as it is now, flagged", 0,
     config_changed_again, probe_configured_target, act_configure_target, act_delete_zone, NULL},
    {"switch.attach_again", DST, "zoneadm attach: the zone as staged again", 0,
     config_changed_again, probe_attached, act_attach, act_detach, NULL},
};
static const struct mig_action_def SWITCH_BASE = {
    "switch.find_base", SRC, "zfs list, zfs get guid: the final send's base, before the stop",
    MIG_ACT_READ, NULL, NULL, act_find_base, NULL, NULL};

/*
 * The downtime window holds less than the hand procedure times: stop, the
 * final snapshot and send, start (the zone was attached before the stop).
 * The inventory's hand-over comes after the start, as in the manual
 * procedure: the source is disabled (autoboot off, hidden from its agent;
 * vmadm stop turned its autoboot off already), then the target is shown
 * with its autoboot, so that no instant has the VM bootable and shown on
 * two CNs.  Meanwhile the target runs hidden and the source is stopped:
 * its agent may report it stopped, which the record in VMAPI that follows
 * puts right.  Undone in reverse, the source is shown and bootable again
 * before the target is stopped (vmadm start turned its autoboot on): so the
 * undo of the show disables the target first, even when the show failed
 * midway (MIG_ACT_UNDO_BLIND: disabling a disabled zone changes nothing).
 */
static const struct mig_action_def SWITCH_TAIL[] = {
    {"switch.start_target", DST, "vmadm start", 0, was_running, probe_running,
     act_start, undo_start, NULL},
    {"switch.disable_source", SRC, "zonecfg: autoboot=false and do-not-inventory, one command",
     0, NULL, probe_disabled, act_disable, undo_disable, NULL},
    {"switch.show_target", DST, "zonecfg: autoboot as the VM's, no do-not-inventory, one command",
     MIG_ACT_UNDO_BLIND, NULL, probe_shown_target, act_show_target, act_disable, NULL},
    {"switch.health_start", DST, "zoneadm list -p: the zone id the health gate watches",
     MIG_ACT_READ, gate_on, NULL, act_health_start, NULL, NULL},
    {"switch.record_vmapi", API, "VMAPI PUT the target's vmadm get, read it back",
     MIG_ACT_FORWARD, NULL, probe_vmapi_target, act_record_vmapi_target, NULL, NULL},
};
static const struct mig_action_def SWITCH_NIC = {
    "switch.record_nic", API, "NAPI PUT cn_uuid=target on the NIC", MIG_ACT_FORWARD, nic_has_mac,
    probe_nic_target, act_record_nic_target, NULL, NULL};
static const struct mig_action_def SWITCH_VERIFY = {
    "switch.verify", API, "VMAPI and NAPI both name the target", MIG_ACT_FORWARD | MIG_ACT_READ,
    NULL, NULL, act_verify_target, NULL, NULL};

/*
 * Direct transfer (cn-commands.md): the job's own key, authorized on the
 * target for the receive only and given to the source with the target's
 * host keys; undone on failure and removed in the cleanup after a switch.
 */
static bool is_direct(const struct mig_job *job, int round, int item)
{
    (void)round, (void)item;
    return mig_job_direct(job);
}
static const struct mig_action_def DIRECT[] = {
    {"prepare.direct_key", LOCAL, "ssh-keygen: the job's own ed25519 key pair", 0, is_direct,
     NULL, act_direct_key, act_direct_forget, "key"},
    {"prepare.direct_target", DST,
     "authorized_keys: the job's key, from the source's IP, for zfs receive only", MIG_ACT_REDO,
     is_direct,
     NULL, act_direct_authorize, act_direct_unauthorize, "authorized_key"},
    {"prepare.direct_source", SRC, "/var/tmp/migd-JOB: the job's key and the target's host keys",
     MIG_ACT_REDO, is_direct, NULL, act_direct_source, act_direct_source_remove, "key_dir"},
};
static const struct mig_action_def DIRECT_END[] = {
    {"cleanup.direct_source", SRC, "rm -rf /var/tmp/migd-JOB: the job's key", MIG_ACT_FORWARD,
     is_direct, NULL, act_direct_source_remove, NULL, "key_dir"},
    {"cleanup.direct_target", DST, "authorized_keys: the job's line removed", MIG_ACT_FORWARD,
     is_direct, NULL, act_direct_unauthorize, NULL, "authorized_key"},
    {"cleanup.direct_key", LOCAL, "the job's key forgotten", MIG_ACT_FORWARD, is_direct, NULL,
     act_direct_forget, NULL, "key"},
};

/* cleanup after the switch */
static const struct mig_action_def CLEANUP[] = {
    {"cleanup.snapshots_source", SRC, "zfs destroy the job's snapshots but the final one",
     MIG_ACT_FORWARD, NULL, NULL, act_trim_snapshots, NULL, "snapshot"},
    {"cleanup.snapshots_target", DST, "zfs destroy the job's snapshots but the final one",
     MIG_ACT_FORWARD, NULL, NULL, act_trim_snapshots, NULL, "snapshot"},
};
static const struct mig_action_def RESTORE_IP = {
    "cleanup.restore_ip", API, "NAPI PUT reserved back to what it was", MIG_ACT_FORWARD,
    nic_needs_restore, probe_restored_ip, act_restore_ip, NULL, "ip"};

/*
 * The operator's rollback of a switched job: a migration back, with the same
 * care.  What was written on the target is sent back in a round while the VM
 * still runs there; it stops only for the last delta.
 */
static const struct mig_action_def RETURN_HEAD[] = {
    {"rollback.inspect_target", DST, "vmadm get: whether the VM runs there", MIG_ACT_READ, NULL,
     NULL, act_inspect, NULL, NULL},
};
static const struct mig_action_def RETURN_PRESNAPSHOT = {
    "rollback.presnapshot", DST, "zfs snapshot -r of what changed on the target, VM running",
    MIG_ACT_BEST_EFFORT, NULL, probe_snapshot, act_snapshot, undo_snapshot, "snapshot"};
static const struct mig_action_def RETURN_PRESEND = {
    "rollback.presend", DST, "zfs send it back to the source while the VM runs",
    MIG_ACT_TRANSFER | MIG_ACT_BEST_EFFORT, NULL, probe_sent_back, act_send_back,
    undo_send_back, "dataset"};
static const struct mig_action_def RETURN_BASE = {
    "rollback.find_base", DST, "zfs list, zfs get guid: the last send back's base, before the stop",
    MIG_ACT_READ, NULL, NULL, act_find_base, NULL, NULL};
static const struct mig_action_def RETURN_STOP[] = {
    {"rollback.begin", LOCAL, "the rollback's downtime starts", 0, NULL, NULL, act_begin_return,
     NULL, NULL},
    {"rollback.stop_target", DST, "vmadm stop", 0, ran_on_target, probe_stopped,
     act_stop, undo_stop, NULL},
};
static const struct mig_action_def RETURN_SNAPSHOT = {
    "rollback.snapshot", DST, "zfs snapshot -r of the last changes on the target",
    MIG_ACT_BEST_EFFORT, NULL, probe_snapshot, act_snapshot, undo_snapshot, "snapshot"};
static const struct mig_action_def RETURN_SEND = {
    "rollback.send", DST, "zfs send the last changes back to the source",
    MIG_ACT_TRANSFER | MIG_ACT_BEST_EFFORT, NULL, probe_sent_back, act_send_back,
    undo_send_back, "dataset"};
/*
 * The rollback's window, as the switch's: stop, snapshot, send, start.  The
 * source's copy starts hidden (it was flagged at the switch); then the
 * target is disabled and detached, and only then the source is shown again
 * with its autoboot as it was.
 */
static const struct mig_action_def RETURN_MID[] = {
    {"rollback.start_source", SRC, "vmadm start", 0, ran_on_target, probe_running,
     act_start, undo_start, NULL},
    {"rollback.disable_target", DST, "zonecfg: autoboot=false and do-not-inventory, one command",
     0, NULL, probe_disabled, act_disable, undo_disable, NULL},
    {"rollback.detach_target", DST, "zoneadm detach", 0, NULL, probe_detached,
     act_detach, act_attach, NULL},
    {"rollback.enable_source", SRC, "zonecfg: autoboot as it was, no do-not-inventory", 0, NULL,
     probe_enabled_source, act_enable_source, undo_enable_source, NULL},
    {"rollback.record_vmapi", API, "VMAPI PUT the source's vmadm get, read it back",
     MIG_ACT_FORWARD, NULL, probe_vmapi_source, act_record_vmapi_source, NULL, NULL},
};
static const struct mig_action_def RETURN_NIC = {
    "rollback.record_nic", API, "NAPI PUT cn_uuid=source on the NIC", MIG_ACT_FORWARD,
    nic_has_mac, probe_nic_source, act_record_nic_source, NULL, NULL};
static const struct mig_action_def RETURN_TAIL[] = {
    {"rollback.verify", API, "VMAPI and NAPI both name the source",
     MIG_ACT_FORWARD | MIG_ACT_READ, NULL, NULL, act_verify_source, NULL, NULL},
    {"rollback.delete_target_zone", DST, "zonecfg delete (flagged, detached)", MIG_ACT_FORWARD,
     NULL, NULL, act_delete_zone, NULL, "zone"},
    {"rollback.destroy_target_cores", DST, "zfs destroy zones/cores/UUID", MIG_ACT_FORWARD, NULL,
     NULL, act_destroy_cores, NULL, "dataset"},
};
static const struct mig_action_def RETURN_DATASET = {
    "rollback.destroy_target_dataset", DST, "zfs destroy -r the target's copy", MIG_ACT_FORWARD,
    NULL, NULL, act_destroy_dataset, NULL, "dataset"};
static const struct mig_action_def RETURN_END = {
    "rollback.snapshots_source", SRC, "zfs destroy every snapshot of the job", MIG_ACT_FORWARD,
    NULL, NULL, act_drop_snapshots, NULL, "snapshot"};

/* the operator's cleanup of a switched job's source copy */
static const struct mig_action_def REMOVE_HEAD[] = {
    {"cleanup.delete_source_zone", SRC, "zonecfg delete (flagged, detached)", MIG_ACT_FORWARD,
     NULL, NULL, act_delete_zone, NULL, NULL},
    {"cleanup.destroy_source_cores", SRC, "zfs destroy zones/cores/UUID", MIG_ACT_FORWARD, NULL,
     NULL, act_destroy_cores, NULL, "dataset"},
};
static const struct mig_action_def REMOVE_DATASET = {
    "cleanup.destroy_source_dataset", SRC, "zfs destroy -r the source's copy", MIG_ACT_FORWARD,
    NULL, NULL, act_destroy_dataset, NULL, "dataset"};
static const struct mig_action_def REMOVE_END = {
    "cleanup.final_snapshots_target", DST, "zfs destroy every snapshot of the job", MIG_ACT_FORWARD,
    NULL, NULL, act_drop_snapshots, NULL, "snapshot"};

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Every table, for finding a definition by its name. */
static const struct {
    const struct mig_action_def *defs;
    int n;
} TABLES[] = {
    {PREPARE, N(PREPARE)},         {&READ_IP, 1},           {&RESERVE_IP, 1},
    {&IMPORT_IMAGE, 1},            {&SNAPSHOT, 1},          {&SEND, 1},
    {&SWITCH_BEGIN, 1},            {&SWITCH_STOP, 1},       {&SWITCH_SNAPSHOT, 1},
    {&SWITCH_SEND, 1},             {SWITCH_TAIL, N(SWITCH_TAIL)}, {&SWITCH_NIC, 1},
    {SWITCH_CHECK, N(SWITCH_CHECK)}, {&SWITCH_BASE, 1},  {&RETURN_BASE, 1},
    {SWITCH_RECHECK, N(SWITCH_RECHECK)},
    {STAGE, N(STAGE)},             {DIRECT, N(DIRECT)},     {DIRECT_END, N(DIRECT_END)},
    {&QUOTA_READ, 1},              {&ROOM, 1},              {&SWITCH_ROOM, 1},
    {&RETURN_ROOM, 1},             {&RETURN_QUOTA, 1},      {&REMOVE_QUOTA, 1},
    {&SWITCH_VERIFY, 1},           {CLEANUP, N(CLEANUP)},   {&RESTORE_IP, 1},
    {RETURN_HEAD, N(RETURN_HEAD)}, {&RETURN_SNAPSHOT, 1},   {&RETURN_SEND, 1},
    {&RETURN_PRESNAPSHOT, 1},      {&RETURN_PRESEND, 1},    {RETURN_STOP, N(RETURN_STOP)},
    {RETURN_MID, N(RETURN_MID)},   {&RETURN_NIC, 1},        {RETURN_TAIL, N(RETURN_TAIL)},
    {&RETURN_DATASET, 1},          {&RETURN_END, 1},        {REMOVE_HEAD, N(REMOVE_HEAD)},
    {&REMOVE_DATASET, 1},          {&REMOVE_END, 1},        {&HEALTH_BASELINE, 1},
    {&VERIFY_HEALTH, 1},
};

/* ---- building plans ---- */

/* Fills one instance, with its key. */
static void step_init(struct mig_step *s, const struct mig_action_def *def, enum mig_phase phase,
                      int round, int item)
{
    s->def = def;
    s->phase = phase;
    s->round = round;
    s->item = item;
    char r[16] = "", key[128];
    if (round != -1) {
        r[0] = '@';
        mig_round_text(round, r + 1, sizeof(r) - 1);
    }
    if (item >= 0)
        snprintf(key, sizeof(key), "%s%s#%d", def->name, r, item);
    else
        snprintf(key, sizeof(key), "%s%s", def->name, r);
    memcpy(s->key, key, sizeof(key));
}

static void add(struct mig_plan *p, const struct mig_action_def *def, enum mig_phase phase,
                int round, int item)
{
    /* The tables are bounded by MIG_MAX_DATASETS and MIG_MAX_NICS. */
    MIG_INVARIANT(p->n < MIG_PLAN_MAX, "plan of more than %d actions at %s", MIG_PLAN_MAX,
                  def->name);
    step_init(&p->steps[p->n++], def, phase, round, item);
}

static void add_all(struct mig_plan *p, const struct mig_action_def *defs, int n,
                    enum mig_phase phase)
{
    for (int i = 0; i < n; i++)
        add(p, &defs[i], phase, -1, -1);
}

static void add_per_nic(struct mig_plan *p, const struct mig_job *job,
                        const struct mig_action_def *def, enum mig_phase phase)
{
    for (int i = 0; i < job->ctx.nnics; i++)
        add(p, def, phase, -1, i);
}

static void add_per_dataset(struct mig_plan *p, const struct mig_job *job,
                            const struct mig_action_def *def, enum mig_phase phase, int round)
{
    for (int i = 0; i < job->ctx.ndatasets; i++)
        add(p, def, phase, round, i);
}

void mig_plan_prepare(const struct mig_job *job, struct mig_plan *p)
{
    p->n = 0;
    add_all(p, PREPARE, N(PREPARE), MIG_PHASE_PREPARE);
    add_per_nic(p, job, &READ_IP, MIG_PHASE_PREPARE);
    add_per_nic(p, job, &RESERVE_IP, MIG_PHASE_PREPARE);
    add(p, &QUOTA_READ, MIG_PHASE_PREPARE, -1, -1);
    for (int i = 0; i < job->ctx.nimages; i++)
        add(p, &IMPORT_IMAGE, MIG_PHASE_PREPARE, -1, i);
    add_all(p, DIRECT, N(DIRECT), MIG_PHASE_PREPARE);
}

void mig_plan_round(const struct mig_job *job, int round, struct mig_plan *p)
{
    p->n = 0;
    add(p, &ROOM, MIG_PHASE_SYNC, round, -1);
    add_per_dataset(p, job, &SNAPSHOT, MIG_PHASE_SYNC, round);
    add_per_dataset(p, job, &SEND, MIG_PHASE_SYNC, round);
    if (round == 1)
        add_all(p, STAGE, N(STAGE), MIG_PHASE_SYNC);
}

void mig_plan_switch(const struct mig_job *job, struct mig_plan *p)
{
    p->n = 0;
    add(p, &HEALTH_BASELINE, MIG_PHASE_SWITCH, -1, -1);
    add_all(p, SWITCH_CHECK, N(SWITCH_CHECK), MIG_PHASE_SWITCH);
    add_per_dataset(p, job, &SWITCH_BASE, MIG_PHASE_SWITCH, MIG_ROUND_FINAL);
    add(p, &SWITCH_BEGIN, MIG_PHASE_SWITCH, -1, -1);
    add(p, &SWITCH_STOP, MIG_PHASE_SWITCH, -1, -1);
    add_all(p, SWITCH_RECHECK, N(SWITCH_RECHECK), MIG_PHASE_SWITCH);
    add(p, &SWITCH_ROOM, MIG_PHASE_SWITCH, MIG_ROUND_FINAL, -1);
    add_per_dataset(p, job, &SWITCH_SNAPSHOT, MIG_PHASE_SWITCH, MIG_ROUND_FINAL);
    add_per_dataset(p, job, &SWITCH_SEND, MIG_PHASE_SWITCH, MIG_ROUND_FINAL);
    add_all(p, SWITCH_TAIL, N(SWITCH_TAIL), MIG_PHASE_SWITCH);
    add_per_nic(p, job, &SWITCH_NIC, MIG_PHASE_SWITCH);
    add(p, &SWITCH_VERIFY, MIG_PHASE_SWITCH, -1, -1);
}

void mig_plan_cleanup(const struct mig_job *job, struct mig_plan *p)
{
    p->n = 0;
    add_all(p, DIRECT_END, N(DIRECT_END), MIG_PHASE_CLEANUP);
    add_all(p, CLEANUP, N(CLEANUP), MIG_PHASE_CLEANUP);
    add_per_nic(p, job, &RESTORE_IP, MIG_PHASE_CLEANUP);
}

void mig_plan_verify(const struct mig_job *job, struct mig_plan *p)
{
    p->n = 0;
    add(p, &VERIFY_HEALTH, MIG_PHASE_VERIFY, job->health.passes + 1, -1);
}

void mig_plan_return(const struct mig_job *job, struct mig_plan *p)
{
    p->n = 0;
    add_all(p, RETURN_HEAD, N(RETURN_HEAD), MIG_PHASE_ROLLBACK);
    add(p, &RETURN_ROOM, MIG_PHASE_ROLLBACK, MIG_ROUND_BACK_PRE, -1);
    add_per_dataset(p, job, &RETURN_PRESNAPSHOT, MIG_PHASE_ROLLBACK, MIG_ROUND_BACK_PRE);
    add_per_dataset(p, job, &RETURN_PRESEND, MIG_PHASE_ROLLBACK, MIG_ROUND_BACK_PRE);
    add_per_dataset(p, job, &RETURN_BASE, MIG_PHASE_ROLLBACK, MIG_ROUND_BACK);
    add_all(p, RETURN_STOP, N(RETURN_STOP), MIG_PHASE_ROLLBACK);
    add(p, &RETURN_ROOM, MIG_PHASE_ROLLBACK, MIG_ROUND_BACK, -1);
    add_per_dataset(p, job, &RETURN_SNAPSHOT, MIG_PHASE_ROLLBACK, MIG_ROUND_BACK);
    add_per_dataset(p, job, &RETURN_SEND, MIG_PHASE_ROLLBACK, MIG_ROUND_BACK);
    add_all(p, RETURN_MID, N(RETURN_MID), MIG_PHASE_ROLLBACK);
    add_per_nic(p, job, &RETURN_NIC, MIG_PHASE_ROLLBACK);
    add_all(p, RETURN_TAIL, N(RETURN_TAIL), MIG_PHASE_ROLLBACK);
    add_per_dataset(p, job, &RETURN_DATASET, MIG_PHASE_ROLLBACK, -1);
    add(p, &RETURN_END, MIG_PHASE_ROLLBACK, -1, -1);
    add(p, &RETURN_QUOTA, MIG_PHASE_ROLLBACK, -1, -1);
}

void mig_plan_remove_source(const struct mig_job *job, struct mig_plan *p)
{
    p->n = 0;
    add_all(p, REMOVE_HEAD, N(REMOVE_HEAD), MIG_PHASE_CLEANUP);
    add_per_dataset(p, job, &REMOVE_DATASET, MIG_PHASE_CLEANUP, -1);
    add(p, &REMOVE_END, MIG_PHASE_CLEANUP, -1, -1);
    add(p, &REMOVE_QUOTA, MIG_PHASE_CLEANUP, -1, -1);
}

/* The phase a definition's name starts with. */
static enum mig_phase phase_of(const char *name)
{
    char head[16];
    const char *dot = strchr(name, '.');
    size_t n = dot != NULL ? (size_t)(dot - name) : 0;
    enum mig_phase ph = MIG_PHASE_VALIDATE;
    if (n > 0 && n < sizeof(head)) {
        memcpy(head, name, n);
        head[n] = '\0';
        if (mig_phase_parse(head, &ph) != 0)
            ph = MIG_PHASE_VALIDATE;
    }
    return ph;
}

int mig_plan_step_from_key(const char *key, struct mig_step *out)
{
    char name[128];
    int round = -1, item = -1;
    size_t n = strcspn(key, "@#");
    if (n == 0 || n >= sizeof(name))
        return -ENOENT;
    memcpy(name, key, n);
    name[n] = '\0';
    const char *p = key + n;
    if (*p == '@') {
        p++;
        if (strncmp(p, "final", 5) == 0) {
            round = MIG_ROUND_FINAL;
            p += 5;
        } else if (strncmp(p, "back1", 5) == 0) {
            round = MIG_ROUND_BACK_PRE;
            p += 5;
        } else if (strncmp(p, "back", 4) == 0) {
            round = MIG_ROUND_BACK;
            p += 4;
        } else {
            char *end;
            long r = strtol(p, &end, 10);
            if (end == p || r < 1 || r > 100000)
                return -ENOENT;
            round = (int)r;
            p = end;
        }
    }
    if (*p == '#') {
        char *end;
        long i = strtol(p + 1, &end, 10);
        if (end == p + 1 || i < 0 || i >= MIG_PLAN_MAX)
            return -ENOENT;
        item = (int)i;
        p = end;
    }
    if (*p != '\0')
        return -ENOENT;
    for (int t = 0; t < N(TABLES); t++) {
        for (int i = 0; i < TABLES[t].n; i++) {
            if (strcmp(TABLES[t].defs[i].name, name) == 0) {
                step_init(out, &TABLES[t].defs[i], phase_of(name), round, item);
                return 0;
            }
        }
    }
    return -ENOENT;
}

/* ---- the dry run's plan ---- */

static void describe_plan(json_t *out, const struct mig_job *job, const struct mig_plan *p)
{
    for (int i = 0; i < p->n; i++) {
        const struct mig_step *s = &p->steps[i];
        if (s->def->applies != NULL && !s->def->applies(job, s->round, s->item))
            continue;
        const char *on = s->def->side == MIG_SIDE_SOURCE   ? job->source_hostname
                         : s->def->side == MIG_SIDE_TARGET ? job->target_hostname
                                                           : mig_side_name(s->def->side);
        json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s}", "action", s->key, "phase",
                                             mig_phase_name(s->phase), "on", on != NULL ? on : "",
                                             "does", s->def->does));
    }
}

json_t *mig_plan_describe(const struct mig_job *job)
{
    struct mig_plan *p = mig_calloc(1, sizeof(*p));
    json_t *out = json_array();
    mig_plan_prepare(job, p);
    describe_plan(out, job, p);
    mig_plan_round(job, 1, p);
    describe_plan(out, job, p);
    if (job->mode != MIG_MODE_FULL)
        json_array_append_new(
            out, json_pack("{s:s, s:s, s:s, s:s}", "action", "sync.rounds", "phase", "sync", "on",
                           job->source_hostname != NULL ? job->source_hostname : "",
                           "does",
                           job->mode == MIG_MODE_AUTO
                               ? "repeat the round with the changes until they are small, then "
                                 "switch"
                               : "repeat the round with the changes until migctl finish"));
    mig_plan_switch(job, p);
    describe_plan(out, job, p);
    mig_plan_cleanup(job, p);
    describe_plan(out, job, p);
    mig_plan_verify(job, p);
    describe_plan(out, job, p);
    free(p);
    return out;
}
