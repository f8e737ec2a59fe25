/*
 * act_health.c: the health gate's actions (health.h).  The baseline is read
 * on the source just before the switch stops the VM; each pass of the gate
 * looks at the target once (vmadm get, zoneadm list -p, svcs -z -x for the
 * brands with SMF inside), and once the window is over runs health.command
 * on the head node.  A pass never fails the action for what it sees: it
 * writes the verdict into job->health and lifecycle.c decides.  Only a
 * target that cannot be asked fails it (transient: retried).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "cn.h"
#include "util.h"

#define VM(a) ((a)->job->vm_uuid)
#define HOST(a, side) mig_job_side_host((a)->job, (side))

/* Whether the window of min_up_s has passed since the VM was first seen running. */
static bool window_over(const struct mig_health *h, int64_t now)
{
    return h->since_ms > 0 && now - h->since_ms >= (int64_t)h->min_up_s * 1000;
}

/* The gate failed on check c: the verdict, for lifecycle.c to act on. */
static int gate_failed(struct mig_act *a, enum mig_health_check c)
{
    struct mig_health *h = &a->job->health;
    h->state = MIG_HEALTH_FAILED;
    h->passes = a->round;
    /*
     * The rollback that follows runs the VM on its source again, as before
     * the job, even when it is down on the target (which is why it failed):
     * rollback.inspect_target keeps this answer.
     */
    if (a->job->vm_was_running == 1)
        a->job->ctx.back_was_running = 1;
    snprintf(h->why, sizeof(h->why), "%s: %s", mig_health_check_name(c), h->checks[c].detail);
    mig_utf8_scrub(h->why);
    return MIG_ACT_DONE;
}

/* The last non-empty line of text, into buf. */
static void last_line(const char *text, char *buf, size_t bufsz)
{
    const char *end = text + strlen(text);
    while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
        end--;
    const char *start = end;
    while (start > text && start[-1] != '\n')
        start--;
    snprintf(buf, bufsz, "%.*s", (int)(end - start), start);
}

int act_health_baseline(struct mig_act *a)
{
    struct mig_health *h = &a->job->health;
    ACT_BEGIN(a);
    ACT_SSH(a, a->side, mig_cmd_svcs_explain(VM(a)), NULL);
    if (a->res->err != 0)
        return mig_act_fail_res(a, "SourceUnreachable", "svcs -z %s -x on %s", VM(a),
                                HOST(a, a->side));
    /* svcs that cannot answer (no repository yet) leaves no baseline: the gate then skips SMF. */
    h->smf_baseline = mig_res_ok(a->res) ? 1 : 0;
    if (h->smf_baseline)
        mig_smf_maintenance_parse(a->res->out, h->smf_before, sizeof(h->smf_before));
    ACT_END(a);
}

/*
 * Right after the start on the target: the zone id the gate watches and the
 * window's start, so that a restart while the cleanup runs counts too.
 */
int act_health_start(struct mig_act *a)
{
    struct mig_health *h = &a->job->health;
    struct mig_zone zone;
    ACT_BEGIN(a);
    if (h->zone_id >= 0)
        return MIG_ACT_DONE;
    ACT_SSH(a, a->side, mig_cmd_zoneadm_running(), NULL);
    /*
     * Never a reason to hold the switch up (the inventory comes next): a
     * target that does not answer, or a zone not listed yet, is the gate's
     * first look's to take, or to fail.
     */
    if (mig_res_ok(a->res) && mig_parse_zoneadm_find(a->res->out, VM(a), &zone) == 0 &&
        zone.zoneid >= 0) {
        h->zone_id = zone.zoneid;
        h->since_ms = mig_now_ms();
        h->state = MIG_HEALTH_CHECKING;
    }
    ACT_END(a);
}

int act_verify_health(struct mig_act *a)
{
    struct mig_job *job = a->job;
    struct mig_health *h = &job->health;
    char state[32], line[200], now_faults[512], fresh[512];
    int autoboot;
    struct mig_zone zone;
    ACT_BEGIN(a);
    /* A verdict on record stands: a pass after a restart never overturns it. */
    if (h->state == MIG_HEALTH_PASSED || h->state == MIG_HEALTH_FAILED)
        return MIG_ACT_DONE;
    if (h->state == MIG_HEALTH_NONE)
        h->state = MIG_HEALTH_CHECKING;
    ACT_SSH(a, a->side, mig_cmd_vmadm_get(VM(a)), NULL);
    if (a->res->err != 0)
        return mig_act_fail_res(a, "TargetUnreachable", "vmadm get %s on %s", VM(a),
                                HOST(a, a->side));
    if (!mig_res_ok(a->res) ||
        mig_parse_vmadm_get(a->res->out, state, sizeof(state), &autoboot) != 0) {
        last_line(a->res->errout, line, sizeof(line));
        mig_health_note(h, MIG_CHECK_RUNNING, false, mig_now_ms(), "vmadm get on %s failed: %s",
                        HOST(a, a->side), line);
        return gate_failed(a, MIG_CHECK_RUNNING);
    }
    if (strcmp(state, "running") != 0) {
        mig_health_note(h, MIG_CHECK_RUNNING, false, mig_now_ms(), "vmadm get on %s says %s",
                        HOST(a, a->side), state);
        return gate_failed(a, MIG_CHECK_RUNNING);
    }
    mig_health_note(h, MIG_CHECK_RUNNING, true, mig_now_ms(), "running on %s",
                    HOST(a, a->side));

    ACT_SSH(a, a->side, mig_cmd_zoneadm_running(), NULL);
    if (a->res->err != 0)
        return mig_act_fail_res(a, "TargetUnreachable", "zoneadm list -p on %s",
                                HOST(a, a->side));
    if (!mig_res_ok(a->res) || mig_parse_zoneadm_find(a->res->out, VM(a), &zone) != 0 ||
        zone.zoneid < 0) {
        mig_health_note(h, MIG_CHECK_ZONE_ID, false, mig_now_ms(),
                        "not in zoneadm list -p on %s: the zone is not running",
                        HOST(a, a->side));
        return gate_failed(a, MIG_CHECK_ZONE_ID);
    }
    if (h->zone_id < 0) {
        /* The window starts the first time the zone is seen up, with the id it booted with. */
        h->zone_id = zone.zoneid;
        h->since_ms = mig_now_ms();
    } else if (zone.zoneid != h->zone_id) {
        mig_health_note(h, MIG_CHECK_ZONE_ID, false, mig_now_ms(),
                        "zone id %lld, was %lld: the zone restarted", zone.zoneid,
                        (long long)h->zone_id);
        return gate_failed(a, MIG_CHECK_ZONE_ID);
    }
    mig_health_note(h, MIG_CHECK_ZONE_ID, true, mig_now_ms(), "zone id %lld since %lld s",
                    zone.zoneid, (long long)((mig_now_ms() - h->since_ms) / 1000));

    if (mig_health_smf_brand(job->brand) && h->smf_baseline) {
        ACT_SSH(a, a->side, mig_cmd_svcs_explain(VM(a)), NULL);
        if (a->res->err != 0)
            return mig_act_fail_res(a, "TargetUnreachable", "svcs -z %s -x on %s", VM(a),
                                    HOST(a, a->side));
        if (!mig_res_ok(a->res)) {
            /* A zone just booted may not answer yet; at the window's end it must. */
            last_line(a->res->errout, line, sizeof(line));
            mig_health_note(h, MIG_CHECK_SMF, false, mig_now_ms(), "svcs -z -x on %s: %s",
                            HOST(a, a->side), line);
            if (window_over(h, mig_now_ms()))
                return gate_failed(a, MIG_CHECK_SMF);
            h->checks[MIG_CHECK_SMF].ok = -1;
        } else {
            mig_smf_maintenance_parse(a->res->out, now_faults, sizeof(now_faults));
            if (mig_smf_new_faults(h->smf_before, now_faults, fresh, sizeof(fresh)) > 0) {
                mig_health_note(h, MIG_CHECK_SMF, false, mig_now_ms(),
                                "in maintenance on %s, not on %s before the stop: %s",
                                HOST(a, a->side), HOST(a, MIG_SIDE_SOURCE), fresh);
                return gate_failed(a, MIG_CHECK_SMF);
            }
            mig_health_note(h, MIG_CHECK_SMF, true, mig_now_ms(),
                            "no service newly in maintenance%s%s",
                            h->smf_before[0] != '\0' ? " (already before the stop: " : "",
                            h->smf_before[0] != '\0' ? h->smf_before : "");
            if (h->smf_before[0] != '\0')
                strncat(h->checks[MIG_CHECK_SMF].detail, ")",
                        sizeof(h->checks[MIG_CHECK_SMF].detail) -
                            strlen(h->checks[MIG_CHECK_SMF].detail) - 1);
        }
    }

    /* Not yet up long enough: the lifecycle sleeps and comes back for another pass. */
    if (!window_over(h, mig_now_ms())) {
        h->passes = a->round;
        return MIG_ACT_DONE;
    }
    if (a->env->health_command != NULL && a->env->health_command[0] != '\0') {
        mig_act_exec(a, mig_strdup(a->env->health_command), a->env->health_timeout_s);
        ACT_AWAIT(a);
        last_line(a->res->out, line, sizeof(line));
        if (!mig_res_ok(a->res)) {
            if (a->res->err != 0)
                mig_health_note(h, MIG_CHECK_COMMAND, false, mig_now_ms(), "%s: %s",
                                a->env->health_command, a->res->detail);
            else
                mig_health_note(h, MIG_CHECK_COMMAND, false, mig_now_ms(), "exit %d: %s",
                                a->res->exit_status, line[0] != '\0' ? line : "(no output)");
            return gate_failed(a, MIG_CHECK_COMMAND);
        }
        mig_health_note(h, MIG_CHECK_COMMAND, true, mig_now_ms(), "exit 0%s%s",
                        line[0] != '\0' ? ": " : "", line);
    }
    h->passes = a->round;
    h->state = MIG_HEALTH_PASSED;
    ACT_END(a);
}
