/*
 * actions.h: the action functions the tables of plan.c are made of
 * (private to lib/).  act_zone.c: zones and instances (vmadm, zoneadm,
 * zonecfg); act_zfs.c: datasets, snapshots, streams, images; act_api.c:
 * NAPI and VMAPI.  Each is a coroutine over operations (act.h); names end
 * in the side they act on where a function exists for both.
 */
#ifndef MIG_ACTIONS_H
#define MIG_ACTIONS_H

#include "act.h"

/* act_zone.c */
int act_inspect_source(struct mig_act *a);
int act_inspect_target(struct mig_act *a);
int act_begin_switch(struct mig_act *a);
int act_begin_return(struct mig_act *a);
int act_stop_source(struct mig_act *a);
int act_stop_target(struct mig_act *a);
int act_start_source(struct mig_act *a);
int act_start_target(struct mig_act *a);
int probe_stopped_source(struct mig_act *a);
int probe_stopped_target(struct mig_act *a);
int probe_running_source(struct mig_act *a);
int probe_running_target(struct mig_act *a);
int undo_stop_source(struct mig_act *a);  /* starts it again if it ran */
int undo_stop_target(struct mig_act *a);
int undo_start_source(struct mig_act *a); /* stops it */
int undo_start_target(struct mig_act *a);
int act_export_config(struct mig_act *a);
int act_check_config(struct mig_act *a);
int act_disable_source(struct mig_act *a);
int act_disable_target(struct mig_act *a);
int probe_disabled_source(struct mig_act *a);
int probe_disabled_target(struct mig_act *a);
int undo_disable_source(struct mig_act *a);
int undo_disable_target(struct mig_act *a);
int act_enable_source(struct mig_act *a);
int probe_enabled_source(struct mig_act *a);
int undo_enable_source(struct mig_act *a);
int act_lift_target(struct mig_act *a);
int act_configure_target(struct mig_act *a);
int probe_configured_target(struct mig_act *a);
int act_delete_zone_source(struct mig_act *a); /* flag first, detach if needed, delete */
int act_delete_zone_target(struct mig_act *a);
int act_attach_target(struct mig_act *a);
int act_attach_source(struct mig_act *a);
int probe_attached_target(struct mig_act *a);
int probe_attached_source(struct mig_act *a);
int act_detach_target(struct mig_act *a);
int act_detach_source(struct mig_act *a);
int probe_detached_target(struct mig_act *a);
int probe_detached_source(struct mig_act *a);
int act_hide_source(struct mig_act *a);
int act_hide_target(struct mig_act *a);
int act_show_source(struct mig_act *a);
int act_show_target(struct mig_act *a);
int probe_hidden_source(struct mig_act *a);
int probe_hidden_target(struct mig_act *a);
int probe_shown_source(struct mig_act *a);
int probe_shown_target(struct mig_act *a);
int act_autoboot_off_source(struct mig_act *a);
int act_autoboot_off_target(struct mig_act *a);
int act_autoboot_restore_source(struct mig_act *a); /* to autoboot_before */
int act_autoboot_on_target(struct mig_act *a);
int probe_autoboot_off_source(struct mig_act *a);
int probe_autoboot_off_target(struct mig_act *a);
int probe_autoboot_restored_source(struct mig_act *a);

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
int act_room_source(struct mig_act *a);
int act_room_target(struct mig_act *a);
int undo_room_source(struct mig_act *a);
int undo_room_target(struct mig_act *a);
int act_quota_restore_source(struct mig_act *a);
int act_quota_restore_target(struct mig_act *a);

/* act_zfs.c */
int act_features_source(struct mig_act *a);
int act_features_target(struct mig_act *a);
int act_check_target(struct mig_act *a);
int act_import_image(struct mig_act *a);
int probe_image(struct mig_act *a);
int act_snapshot_source(struct mig_act *a);
int act_snapshot_target(struct mig_act *a);
int probe_snapshot_source(struct mig_act *a);
int probe_snapshot_target(struct mig_act *a);
int undo_snapshot_source(struct mig_act *a);
int undo_snapshot_target(struct mig_act *a);
int act_send_forward(struct mig_act *a); /* source -> target */
int act_send_back(struct mig_act *a);    /* target -> source */
int probe_sent_forward(struct mig_act *a);
int probe_sent_back(struct mig_act *a);
int undo_send_forward(struct mig_act *a); /* round 1 only: the target's copy goes */
int undo_send_back(struct mig_act *a);    /* the back snapshot on the source goes */
int act_create_cores(struct mig_act *a);
int probe_cores(struct mig_act *a);
int act_destroy_cores_target(struct mig_act *a);
int act_destroy_cores_source(struct mig_act *a);
int act_destroy_dataset_target(struct mig_act *a);
int act_destroy_dataset_source(struct mig_act *a);
int act_trim_snapshots_source(struct mig_act *a); /* the job's, but the final one */
int act_trim_snapshots_target(struct mig_act *a);
int act_drop_snapshots_source(struct mig_act *a); /* every snapshot of the job */
int act_drop_snapshots_target(struct mig_act *a);

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
