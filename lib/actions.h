/*
 * actions.h: the action functions the tables of plan.c are made of
 * (private to lib/).  act_zone.c: zones and instances (vmadm, zoneadm,
 * zonecfg); act_zfs.c: datasets, snapshots, streams, images; act_api.c:
 * NAPI and VMAPI.  Each is a coroutine over operations (act.h).  A function
 * that can work on either CN works on its plan row's side (a->side); a
 * name that ends in _source or _target is a function for that CN alone
 * (the API ones: the CN the inventory is to name).
 */
#ifndef MIG_ACTIONS_H
#define MIG_ACTIONS_H

#include "act.h"

/* act_health.c: the health gate (phase verify) */
int act_health_baseline(struct mig_act *a); /* source, before the stop: svcs in maintenance */
int act_health_start(struct mig_act *a);    /* target, after its start: the zone id watched */
int act_verify_health(struct mig_act *a);   /* target: one pass of the gate */

/* act_zone.c */
int act_inspect(struct mig_act *a); /* source: running? autoboot; target: running? */
int act_begin_switch(struct mig_act *a);
int act_begin_return(struct mig_act *a);
int act_stop(struct mig_act *a);
int act_start(struct mig_act *a);
int probe_stopped(struct mig_act *a);
int probe_running(struct mig_act *a);
int undo_stop(struct mig_act *a);  /* starts it again if it ran */
int undo_start(struct mig_act *a); /* stops it */
int act_export_config(struct mig_act *a);
int act_check_config(struct mig_act *a);
int act_disable(struct mig_act *a);
int probe_disabled(struct mig_act *a);
int undo_disable(struct mig_act *a);
int act_enable_source(struct mig_act *a);
int probe_enabled_source(struct mig_act *a);
int undo_enable_source(struct mig_act *a);
int act_show_target(struct mig_act *a);
int probe_shown_target(struct mig_act *a);
int act_configure_target(struct mig_act *a);
int probe_configured_target(struct mig_act *a);
int act_delete_zone(struct mig_act *a); /* flag first, detach if needed, delete */
int act_attach(struct mig_act *a);
int probe_attached(struct mig_act *a);
int act_detach(struct mig_act *a);
int probe_detached(struct mig_act *a);

/* act_direct.c: the direct transfer's key (cn-commands.md) */
bool mig_job_direct(const struct mig_job *job);
int act_direct_key(struct mig_act *a);     /* local: the job's key pair */
int act_direct_forget(struct mig_act *a);  /* local: wiped from the job */
int act_direct_authorize(struct mig_act *a);
int act_direct_unauthorize(struct mig_act *a);
int act_direct_source(struct mig_act *a);  /* /var/tmp/migd-JOB: key and known_hosts */
int act_direct_source_remove(struct mig_act *a);

/* act_quota.c: room for a bhyve VM's snapshots */
bool mig_job_bhyve(const struct mig_job *job);
int act_quota_read(struct mig_act *a);
int act_room(struct mig_act *a);
int undo_room(struct mig_act *a);
int act_quota_restore(struct mig_act *a);

/* act_zfs.c */
int act_features(struct mig_act *a);
int act_check_target(struct mig_act *a);
int act_import_image(struct mig_act *a);
int probe_image(struct mig_act *a);
int act_snapshot(struct mig_act *a);
int probe_snapshot(struct mig_act *a);
int undo_snapshot(struct mig_act *a);
int act_send_forward(struct mig_act *a); /* source -> target */
int act_send_back(struct mig_act *a);    /* target -> source */
int probe_sent_forward(struct mig_act *a);
/*
 * Before the stop: the base of the send inside the downtime (the newest
 * snapshot of the job both sides hold, guids compared), from the row's
 * side to the other: the switch's final send (source), a return's last
 * send back (target).  Kept in memory for that send, which then skips the
 * three reads in the window.  Finding none is not a failure: the send
 * looks again and says why.
 */
int act_find_base(struct mig_act *a);
/*
 * After the stop, when the check before it found the zone changed (and
 * restaged it): zonecfg export again; a change since is restaged in the
 * window (ctx.config_changed 2).
 */
int act_recheck_config(struct mig_act *a);
int probe_sent_back(struct mig_act *a);
int undo_send_forward(struct mig_act *a); /* round 1 only: the target's copy goes */
int undo_send_back(struct mig_act *a);    /* the back snapshot on the source goes */
int act_create_cores(struct mig_act *a);
int probe_cores(struct mig_act *a);
int act_destroy_cores(struct mig_act *a);
int act_destroy_dataset(struct mig_act *a);
int act_trim_snapshots(struct mig_act *a); /* the job's, but the final one */
int act_drop_snapshots(struct mig_act *a); /* every snapshot of the job */

/* act_api.c */
int act_read_ip(struct mig_act *a);
int act_reserve_ip(struct mig_act *a);
int probe_reserved_ip(struct mig_act *a);
int act_restore_ip(struct mig_act *a);
int probe_restored_ip(struct mig_act *a);
int act_record_vmapi_target(struct mig_act *a);
int act_record_vmapi_source(struct mig_act *a);
int probe_vmapi_target(struct mig_act *a);
int probe_vmapi_source(struct mig_act *a);
int act_record_nic_target(struct mig_act *a);
int act_record_nic_source(struct mig_act *a);
int probe_nic_target(struct mig_act *a);
int probe_nic_source(struct mig_act *a);
int act_verify_target(struct mig_act *a);
int act_verify_source(struct mig_act *a);

#endif
