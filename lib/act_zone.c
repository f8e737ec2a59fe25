/*
 * act_zone.c: the actions on zones and instances (vmadm, zoneadm, zonecfg),
 * each written once: the side it works on is its plan row's (a->side).
 * What SmartOS refuses is handled as cn-commands.md says: `vmadm start` of
 * a running VM and `vmadm stop` of a stopped one fail (so "already so" is
 * success here), `zonecfg delete` needs a detached zone, a zone is flagged
 * do-not-inventory before it is deleted so the CN's agent never reports a
 * VM that lives elsewhere as destroyed.
 */
#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "cn.h"
#include "err.h"
#include "util.h"

#define VM(a) ((a)->job->vm_uuid)
#define HOST(a, side) mig_job_side_host((a)->job, (side))

/* Sets the job's downtime once: from the stop to now. */
static void mark_downtime(struct mig_job *job)
{
    if (job->downtime_ms < 0 && job->ctx.stop_ms > 0)
        job->downtime_ms = mig_now_ms() - job->ctx.stop_ms;
}

/* Sets a rollback's own downtime once: from its stop on the target to now. */
static void mark_rollback_downtime(struct mig_job *job)
{
    if (job->rollback_downtime_ms < 0 && job->ctx.back_stop_ms > 0)
        job->rollback_downtime_ms = mig_now_ms() - job->ctx.back_stop_ms;
}

/* ---- inspecting ---- */

/*
 * vmadm get on the row's side: on the source, whether the VM runs and its
 * autoboot (what the job puts back); on the target (a rollback), whether
 * it runs there.
 */
int act_inspect(struct mig_act *a)
{
    char state[32];
    int autoboot;
    const char *code = a->side == MIG_SIDE_SOURCE ? "SourceVmadmFailed" : "TargetVmadmFailed";
    ACT_BEGIN(a);
    ACT_SSH(a, a->side, mig_cmd_vmadm_get(VM(a)), NULL);
    if (!mig_res_ok(a->res))
        return mig_act_fail_res(a, code, "vmadm get %s on %s", VM(a), HOST(a, a->side));
    if (mig_parse_vmadm_get(a->res->out, state, sizeof(state), &autoboot) != 0)
        return mig_act_fail(a, code, "vmadm get %s on %s printed no VM state", VM(a),
                            HOST(a, a->side));
    if (a->side == MIG_SIDE_SOURCE) {
        if (a->job->vm_was_running < 0)
            a->job->vm_was_running = strcmp(state, "running") == 0;
        a->job->ctx.autoboot_before = autoboot >= 0 ? autoboot : a->job->vm_was_running;
    } else if (a->job->ctx.back_was_running < 0) {
        a->job->ctx.back_was_running = strcmp(state, "running") == 0;
    }
    ACT_END(a);
}

/* The switch's downtime starts here (a local action, so the time is journaled before the stop). */
int act_begin_switch(struct mig_act *a)
{
    if (a->job->ctx.stop_ms == 0)
        a->job->ctx.stop_ms = mig_now_ms();
    return MIG_ACT_DONE;
}

int act_begin_return(struct mig_act *a)
{
    if (a->job->ctx.back_stop_ms == 0)
        a->job->ctx.back_stop_ms = mig_now_ms();
    return MIG_ACT_DONE;
}

/*
 * What this file's actions learn of the VM's zone on a side, kept across
 * their operations (act.h ACT_STATE).
 */
struct zone_seen {
    char state[64]; /* zoneadm list's: "configured", "installed", "running", ...; "": no zone */
    int running;    /* vmadm get: 1 running, 0 not (or no such VM) */
    int hidden;     /* zonecfg export: do-not-inventory set (1) or not (0) */
    int autoboot;   /* zonecfg export: 1, 0, -1 (not set) */
};
ACT_STATE_FITS(struct zone_seen);
#define SEEN(a) ACT_STATE(a, struct zone_seen)

/* ---- stop and start ---- */

/*
 * After `vmadm get` ran on side: 0 with SEEN(a)->running 1 (running), 0 (not
 * running or no such VM); MIG_ACT_FAIL when the CN could not be asked.
 */
static int running_result(struct mig_act *a, enum mig_side side)
{
    char state[32];
    int autoboot;
    if (a->res->err != 0)
        return mig_act_fail_res(a, "ProbeFailed", "vmadm get %s on %s", VM(a), HOST(a, side));
    if (a->res->exit_status != 0) {
        SEEN(a)->running = 0;
        return 0;
    }
    if (mig_parse_vmadm_get(a->res->out, state, sizeof(state), &autoboot) != 0)
        return mig_act_fail(a, "ProbeFailed", "vmadm get %s on %s printed no VM state", VM(a),
                            HOST(a, side));
    SEEN(a)->running = strcmp(state, "running") == 0;
    return 0;
}

/* `vmadm start` (want_running) or `vmadm stop` of the VM. */
static char *state_cmd(struct mig_act *a, bool want_running)
{
    return want_running ? mig_cmd_vmadm_start(VM(a)) : mig_cmd_vmadm_stop(VM(a), false);
}

/*
 * After state_cmd ran on side: 0, or MIG_ACT_FAIL.  A start of a running VM
 * and a stop of a stopped one fail in vmadm, yet the effect is there (a
 * first attempt, or someone else, made it so).
 */
static int state_cmd_result(struct mig_act *a, enum mig_side side, bool want_running)
{
    if (mig_res_ok(a->res) ||
        (a->res->err == 0 &&
         mig_res_err_has(a->res, want_running ? "already running" : "not running")))
        return 0;
    return mig_act_fail_res(a, want_running ? "StartFailed" : "StopFailed", "vmadm %s %s on %s",
                            want_running ? "start" : "stop", VM(a), HOST(a, side));
}

/* Starts (want_running) or stops the VM on side, without asking first. */
static int change_state(struct mig_act *a, enum mig_side side, bool want_running)
{
    int rc;
    ACT_BEGIN(a);
    ACT_SSH(a, side, state_cmd(a, want_running), NULL);
    if ((rc = state_cmd_result(a, side, want_running)) != 0)
        return rc;
    ACT_END(a);
}

/*
 * DONE when the VM on side runs (want_running) or does not; otherwise
 * ABSENT for a probe, or, with change, DONE once start or stop made it so.
 */
static int reach_state(struct mig_act *a, enum mig_side side, bool want_running, bool change)
{
    int rc;
    ACT_BEGIN(a);
    ACT_SSH(a, side, mig_cmd_vmadm_get(VM(a)), NULL);
    if ((rc = running_result(a, side)) != 0)
        return rc;
    if ((SEEN(a)->running == 1) == want_running)
        return MIG_ACT_DONE;
    if (!change)
        return MIG_ACT_ABSENT;
    ACT_SSH(a, side, state_cmd(a, want_running), NULL);
    if ((rc = state_cmd_result(a, side, want_running)) != 0)
        return rc;
    ACT_END(a);
}

/*
 * The VM is up again where it now runs: on the target, the switch's
 * downtime ends; on the source, a rollback's.
 */
static void mark_up(struct mig_act *a)
{
    if (a->side == MIG_SIDE_TARGET)
        mark_downtime(a->job);
    else
        mark_rollback_downtime(a->job);
}

int act_stop(struct mig_act *a)
{
    return change_state(a, a->side, false);
}

int act_start(struct mig_act *a)
{
    int rc = change_state(a, a->side, true);
    if (rc == MIG_ACT_DONE)
        mark_up(a);
    return rc;
}

int probe_stopped(struct mig_act *a)
{
    return reach_state(a, a->side, false, false);
}

int probe_running(struct mig_act *a)
{
    int rc = reach_state(a, a->side, true, false);
    if (rc == MIG_ACT_DONE)
        mark_up(a);
    return rc;
}

/* Running again where it was stopped, if it ran there before (the job's or the rollback's). */
int undo_stop(struct mig_act *a)
{
    int ran = a->side == MIG_SIDE_SOURCE ? a->job->vm_was_running : a->job->ctx.back_was_running;
    if (ran != 1)
        return MIG_ACT_DONE;
    return reach_state(a, a->side, true, true);
}

int undo_start(struct mig_act *a)
{
    return reach_state(a, a->side, false, true);
}

/* ---- zone configuration ---- */

int act_export_config(struct mig_act *a)
{
    ACT_BEGIN(a);
    ACT_SSH(a, MIG_SIDE_SOURCE, mig_cmd_zonecfg_export(VM(a)), NULL);
    if (!mig_res_ok(a->res) || a->res->out[0] == '\0')
        return mig_act_fail_res(a, "ZonecfgFailed", "zonecfg export of %s on %s", VM(a),
                                HOST(a, MIG_SIDE_SOURCE));
    mig_job_set_zonecfg(a->job, a->res->out);
    ACT_END(a);
}

/*
 * Creates the zone on the target from the source's export, flagged
 * do-not-inventory in the same command: the target's agent never sees it
 * unflagged while the source still holds the VM.
 */
int act_configure_target(struct mig_act *a)
{
    ACT_BEGIN(a);
    if (a->job->ctx.zonecfg == NULL)
        return mig_act_fail(a, "ZonecfgFailed", "no exported configuration of %s to apply",
                            VM(a));
    ACT_SSH(a, MIG_SIDE_TARGET, mig_cmd_zonecfg_import_stdin(VM(a)),
            mig_zonecfg_staged(a->job->ctx.zonecfg));
    if (!mig_res_ok(a->res))
        return mig_act_fail_res(a, "ZonecfgFailed", "zonecfg -z %s -f - on %s", VM(a),
                                HOST(a, MIG_SIDE_TARGET));
    ACT_END(a);
}

/*
 * After `zoneadm list -pc` ran on side: 0 with the zone's state in
 * SEEN(a)->state, or MIG_ACT_FAIL.
 */
static int zone_state_result(struct mig_act *a, enum mig_side side)
{
    struct mig_zone z;
    if (!mig_res_ok(a->res))
        return mig_act_fail_res(a, "ZoneadmFailed", "zoneadm list on %s", HOST(a, side));
    int rc = mig_parse_zoneadm_find(a->res->out, VM(a), &z);
    if (rc == -ENOENT)
        SEEN(a)->state[0] = '\0';
    else if (rc == 0)
        snprintf(SEEN(a)->state, sizeof(SEEN(a)->state), "%s", z.state);
    else
        return mig_act_fail(a, "ZoneadmFailed", "zoneadm list on %s: unreadable output",
                            HOST(a, side));
    return 0;
}

/*
 * Runs `zoneadm list -pc` on side and leaves the zone's state in SEEN(a)->state
 * (zone_state_result); a failure ends the action.  Like ACT_SSH, it returns
 * from the action and resumes it with the answer.
 */
#define READ_ZONE_STATE(a, side)                                                                   \
    do {                                                                                           \
        ACT_SSH((a), (side), mig_cmd_zoneadm_list(), NULL);                                        \
        int zone_rc_ = zone_state_result((a), (side));                                             \
        if (zone_rc_ != 0)                                                                         \
            return zone_rc_;                                                                       \
    } while (0)

static bool attached_state(const char *state)
{
    return strcmp(state, "installed") == 0 || strcmp(state, "running") == 0;
}

static bool configured_state(const char *state)
{
    return state[0] != '\0';
}

/* DONE when the zone's state on side (zone_state_result's, "" for none) is one want() accepts. */
static int zone_state_is(struct mig_act *a, enum mig_side side, bool (*want)(const char *state))
{
    ACT_BEGIN(a);
    READ_ZONE_STATE(a, side);
    return want(SEEN(a)->state) ? MIG_ACT_DONE : MIG_ACT_ABSENT;
    ACT_END(a);
}

int probe_configured_target(struct mig_act *a)
{
    return zone_state_is(a, MIG_SIDE_TARGET, configured_state);
}

int act_attach(struct mig_act *a)
{
    ACT_BEGIN(a);
    ACT_SSH(a, a->side, mig_cmd_zoneadm_attach(VM(a)), NULL);
    if (!mig_res_ok(a->res))
        return mig_act_fail_res(a, "AttachFailed", "zoneadm -z %s attach on %s", VM(a),
                                HOST(a, a->side));
    ACT_END(a);
}

/* DONE when the zone on the row's side is attached (installed or running), else ABSENT. */
int probe_attached(struct mig_act *a)
{
    return zone_state_is(a, a->side, attached_state);
}

/* Detaches the zone on the row's side unless it is not attached; refuses a running zone. */
int act_detach(struct mig_act *a)
{
    ACT_BEGIN(a);
    READ_ZONE_STATE(a, a->side);
    if (strcmp(SEEN(a)->state, "running") == 0)
        return mig_act_fail(a, "DetachFailed", "zone %s still runs on %s; not detached", VM(a),
                            HOST(a, a->side));
    if (strcmp(SEEN(a)->state, "installed") != 0)
        return MIG_ACT_DONE; /* configured or absent: not attached */
    ACT_SSH(a, a->side, mig_cmd_zoneadm_detach(VM(a)), NULL);
    if (!mig_res_ok(a->res))
        return mig_act_fail_res(a, "DetachFailed", "zoneadm -z %s detach on %s", VM(a),
                                HOST(a, a->side));
    ACT_END(a);
}

/* The probe of a detach: DONE when not attached. */
int probe_detached(struct mig_act *a)
{
    int rc = probe_attached(a);
    return rc == MIG_ACT_DONE ? MIG_ACT_ABSENT : rc == MIG_ACT_ABSENT ? MIG_ACT_DONE : rc;
}

/* ---- flags: do-not-inventory and autoboot ---- */

/*
 * After `zonecfg export` ran on side: 0 with SEEN(a)->hidden and ->autoboot;
 * 1 when there is no such zone; MIG_ACT_FAIL.
 */
static int flags_result(struct mig_act *a, enum mig_side side)
{
    int autoboot;
    bool hidden;
    if (a->res->err == 0 && a->res->exit_status != 0 && mig_res_err_has(a->res, "No such"))
        return 1;
    if (!mig_res_ok(a->res))
        return mig_act_fail_res(a, "ZonecfgFailed", "zonecfg export of %s on %s", VM(a),
                                HOST(a, side));
    if (mig_parse_zonecfg_flags(a->res->out, &autoboot, &hidden) != 0)
        return mig_act_fail(a, "ZonecfgFailed", "zonecfg export of %s on %s: unreadable", VM(a),
                            HOST(a, side));
    SEEN(a)->hidden = hidden;
    SEEN(a)->autoboot = autoboot;
    return 0;
}

/*
 * Whether the source's zone changed since it was last staged on the target
 * (autoboot aside: vmadm stop changes it): ctx.config_changed = mark when it
 * did, and the export becomes what is staged next.
 */
static int compare_config(struct mig_act *a, int mark)
{
    ACT_BEGIN(a);
    ACT_SSH(a, MIG_SIDE_SOURCE, mig_cmd_zonecfg_export(VM(a)), NULL);
    if (!mig_res_ok(a->res) || a->res->out[0] == '\0')
        return mig_act_fail_res(a, "ZonecfgFailed", "zonecfg export of %s on %s", VM(a),
                                HOST(a, MIG_SIDE_SOURCE));
    if (!mig_zonecfg_same(a->res->out, a->job->ctx.zonecfg)) {
        a->job->ctx.config_changed = mark;
        mig_job_set_zonecfg(a->job, a->res->out);
    }
    ACT_END(a);
}

/* Before the stop: a change is applied by the next two actions (unstage, restage). */
int act_check_config(struct mig_act *a)
{
    return compare_config(a, 1);
}

int act_recheck_config(struct mig_act *a)
{
    return compare_config(a, 2);
}

/*
 * Whether the flags flags_result read are hidden (do-not-inventory set,
 * autoboot off) or, when !hidden, shown with the given autoboot.
 */
static bool flags_are(struct mig_act *a, bool hidden, bool autoboot)
{
    return SEEN(a)->hidden == (hidden ? 1 : 0) && SEEN(a)->autoboot == (!hidden && autoboot ? 1 : 0);
}

/*
 * Hides the zone on side (autoboot off, hidden from the CN's agent) or shows
 * it again with the given autoboot, in one command.  zonecfg runs every
 * subcommand even when one fails, so a failure is judged by what the export
 * then shows.  No zone: a failed hide, a show with nothing to do.
 */
static int set_flags(struct mig_act *a, enum mig_side side, bool hidden, bool autoboot)
{
    const char *code = hidden ? "DisableFailed" : "EnableFailed";
    int rc;
    ACT_BEGIN(a);
    ACT_SSH(a, side,
            hidden ? mig_cmd_zonecfg_disable(VM(a)) : mig_cmd_zonecfg_enable(VM(a), autoboot),
            NULL);
    if (mig_res_ok(a->res))
        return MIG_ACT_DONE;
    ACT_SSH(a, side, mig_cmd_zonecfg_export(VM(a)), NULL);
    rc = flags_result(a, side);
    if (rc == 1)
        return hidden ? mig_act_fail(a, code, "no zone %s on %s", VM(a), HOST(a, side))
                      : MIG_ACT_DONE;
    if (rc != 0)
        return rc;
    if (flags_are(a, hidden, autoboot))
        return MIG_ACT_DONE;
    return mig_act_fail(a, code, "zone %s on %s: autoboot %d, do-not-inventory %s", VM(a),
                        HOST(a, side), SEEN(a)->autoboot, SEEN(a)->hidden == 1 ? "set" : "not set");
    ACT_END(a);
}

/* The probe of set_flags: DONE when the zone on side has those flags; no zone: ABSENT. */
static int probe_flags(struct mig_act *a, enum mig_side side, bool hidden, bool autoboot)
{
    int rc;
    ACT_BEGIN(a);
    ACT_SSH(a, side, mig_cmd_zonecfg_export(VM(a)), NULL);
    rc = flags_result(a, side);
    if (rc == 1)
        return MIG_ACT_ABSENT;
    if (rc != 0)
        return rc;
    return flags_are(a, hidden, autoboot) ? MIG_ACT_DONE : MIG_ACT_ABSENT;
    ACT_END(a);
}

static int disable_on(struct mig_act *a, enum mig_side side)
{
    return set_flags(a, side, true, false);
}

/* Shown to its agent again with the given autoboot, in one command; no zone: nothing to do. */
static int enable_on(struct mig_act *a, enum mig_side side, bool autoboot)
{
    return set_flags(a, side, false, autoboot);
}

int act_disable(struct mig_act *a)
{
    return disable_on(a, a->side);
}

int probe_disabled(struct mig_act *a)
{
    return probe_flags(a, a->side, true, false);
}

/*
 * Shown to its agent again: the source as it was before the job (autoboot
 * as it was), the target as it ran before the rollback (autoboot on).
 */
int undo_disable(struct mig_act *a)
{
    return enable_on(a, a->side,
                     a->side == MIG_SIDE_SOURCE ? a->job->ctx.autoboot_before != 0 : true);
}

/* The rollback gives the source back its autoboot and its agent in one command. */
int act_enable_source(struct mig_act *a)
{
    int rc = enable_on(a, MIG_SIDE_SOURCE, a->job->ctx.autoboot_before != 0);
    if (rc == MIG_ACT_DONE && a->job->ctx.back_was_running != 1)
        mark_rollback_downtime(a->job);
    return rc;
}

int probe_enabled_source(struct mig_act *a)
{
    return probe_flags(a, MIG_SIDE_SOURCE, false, a->job->ctx.autoboot_before != 0);
}

int undo_enable_source(struct mig_act *a)
{
    return disable_on(a, MIG_SIDE_SOURCE);
}

/*
 * The target's autoboot once the VM is its: on after vmadm start (which
 * set it), else as the source's was before the job (it was staged off).
 */
static bool target_autoboot(const struct mig_job *job)
{
    return job->vm_was_running == 1 || job->ctx.autoboot_before != 0;
}

/* A stopped VM is "up" once the target is shown: its downtime ends there. */
static int shown_target(struct mig_act *a, int rc)
{
    if (rc == MIG_ACT_DONE && a->job->vm_was_running != 1)
        mark_downtime(a->job);
    return rc;
}

/* The inventory's hand-over: the target shown to its agent, with its autoboot, in one command. */
int act_show_target(struct mig_act *a)
{
    return shown_target(a, enable_on(a, MIG_SIDE_TARGET, target_autoboot(a->job)));
}

int probe_shown_target(struct mig_act *a)
{
    return shown_target(a, probe_flags(a, MIG_SIDE_TARGET, false, target_autoboot(a->job)));
}

/* ---- deleting a zone ---- */

/*
 * Deletes the zone's configuration on the row's side as SmartOS allows it:
 * flagged do-not-inventory first (so the CN's agent reports nothing),
 * detached when attached, then `zonecfg delete -F`.  No zone: done.  A
 * running zone is never touched.
 */
int act_delete_zone(struct mig_act *a)
{
    const enum mig_side side = a->side;
    int rc;
    ACT_BEGIN(a);
    READ_ZONE_STATE(a, side);
    if (SEEN(a)->state[0] == '\0')
        return MIG_ACT_DONE;
    if (strcmp(SEEN(a)->state, "running") == 0)
        return mig_act_fail(a, "DeleteFailed", "zone %s runs on %s; not deleted", VM(a),
                            HOST(a, side));
    ACT_SSH(a, side, mig_cmd_zonecfg_export(VM(a)), NULL);
    rc = flags_result(a, side);
    if (rc == 1)
        return MIG_ACT_DONE;
    if (rc != 0)
        return rc;
    if (SEEN(a)->hidden != 1) {
        ACT_SSH(a, side, mig_cmd_zonecfg_do_not_inventory(VM(a)), NULL);
        if (!mig_res_ok(a->res))
            return mig_act_fail_res(a, "DeleteFailed", "flagging %s do-not-inventory on %s", VM(a),
                                    HOST(a, side));
    }
    if (strcmp(SEEN(a)->state, "installed") == 0) {
        ACT_SSH(a, side, mig_cmd_zoneadm_detach(VM(a)), NULL);
        if (!mig_res_ok(a->res))
            return mig_act_fail_res(a, "DeleteFailed", "zoneadm -z %s detach on %s", VM(a),
                                    HOST(a, side));
    }
    ACT_SSH(a, side, mig_cmd_zonecfg_delete(VM(a)), NULL);
    if (!mig_res_ok(a->res) && !(a->res->err == 0 && mig_res_err_has(a->res, "No such")))
        return mig_act_fail_res(a, "DeleteFailed", "zonecfg -z %s delete on %s", VM(a),
                                HOST(a, side));
    ACT_END(a);
}
