/*
 * act_direct.c: the actions of a direct transfer (cn-commands.md, "Direct
 * transfer").  The head node makes a key pair for the job, authorizes its
 * public half on the target for one thing only (from the source's admin IP,
 * a forced `zfs receive`, no pty, no forwarding), and gives the source the
 * private half with a known_hosts holding exactly the keys the head node
 * trusts for the target.  Every piece is journaled like any other action,
 * so an abort, a failure or a crash removes it, and the job's cleanup
 * removes it after a success.  Each act first removes what an interrupted
 * attempt may have left, so acting again is harmless.
 */
#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "cn.h"
#include "err.h"
#include "keygen.h"
#include "known_hosts.h"
#include "util.h"
#include "validate.h"

#define CTX(a) (&(a)->job->ctx)
#define JOB_UUID(a) ((a)->job->uuid)
#define HOST(a, side) mig_job_side_host((a)->job, (side))

bool mig_job_direct(const struct mig_job *job)
{
    return strcmp(job->transfer, "direct") == 0;
}

/* ---- the key pair (on the head node) ---- */

int act_direct_key(struct mig_act *a)
{
    if (CTX(a)->direct_pub[0] != '\0')
        return MIG_ACT_DONE; /* made by an earlier attempt, and saved */
    char comment[64], err[256];
    snprintf(comment, sizeof(comment), "migd-job-%s", JOB_UUID(a));
    if (mig_keygen_ed25519(comment, CTX(a)->direct_key, sizeof(CTX(a)->direct_key),
                           CTX(a)->direct_pub, sizeof(CTX(a)->direct_pub), err, sizeof(err)) != 0)
        return mig_act_fail(a, "DirectKeyFailed", "%s", err);
    return MIG_ACT_DONE;
}

/* Forgets the key: nothing can use it once both CNs' copies are gone. */
int act_direct_forget(struct mig_act *a)
{
    memset(CTX(a)->direct_key, 0, sizeof(CTX(a)->direct_key));
    memset(CTX(a)->direct_pub, 0, sizeof(CTX(a)->direct_pub));
    return MIG_ACT_DONE;
}

/* ---- the target's authorized_keys ---- */

int act_direct_authorize(struct mig_act *a)
{
    ACT_BEGIN(a);
    if (CTX(a)->direct_pub[0] == '\0')
        return mig_act_fail(a, "DirectKeyFailed", "the job has no key to authorize on %s",
                            HOST(a, MIG_SIDE_TARGET));
    /* Exactly one line of this job, whatever an interrupted attempt left. */
    ACT_SSH(a, MIG_SIDE_TARGET, mig_cmd_unauthorize_key(JOB_UUID(a)), NULL);
    if (!mig_res_ok(a->res))
        return mig_act_fail_res(a, "DirectKeyFailed", "cleaning %s's authorized_keys",
                                HOST(a, MIG_SIDE_TARGET));
    ACT_SSH(a, MIG_SIDE_TARGET,
            mig_cmd_authorize_key(JOB_UUID(a), CTX(a)->source_ip, a->env->pool,
                                  CTX(a)->direct_pub),
            NULL);
    if (!mig_res_ok(a->res))
        return mig_act_fail_res(a, "DirectKeyFailed",
                                "authorizing the job's key on %s for the receive only",
                                HOST(a, MIG_SIDE_TARGET));
    ACT_END(a);
}

int act_direct_unauthorize(struct mig_act *a)
{
    ACT_BEGIN(a);
    ACT_SSH(a, MIG_SIDE_TARGET, mig_cmd_unauthorize_key(JOB_UUID(a)), NULL);
    if (!mig_res_ok(a->res))
        return mig_act_fail_res(a, "DirectKeyFailed",
                                "removing the job's key from %s's authorized_keys",
                                HOST(a, MIG_SIDE_TARGET));
    ACT_END(a);
}

/* ---- the source's /var/tmp/migd-JOB ---- */

int act_direct_source(struct mig_act *a)
{
    char err[256];
    char *lines = NULL;
    int rc;
    ACT_BEGIN(a);
    if (CTX(a)->direct_key[0] == '\0')
        return mig_act_fail(a, "DirectKeyFailed", "the job has no key to give %s",
                            HOST(a, MIG_SIDE_SOURCE));
    ACT_SSH(a, MIG_SIDE_SOURCE, mig_cmd_job_dir_remove(JOB_UUID(a)), NULL);
    if (!mig_res_ok(a->res))
        return mig_act_fail_res(a, "DirectKeyFailed", "cleaning /var/tmp on %s",
                                HOST(a, MIG_SIDE_SOURCE));
    ACT_SSH(a, MIG_SIDE_SOURCE, mig_cmd_job_dir_create(JOB_UUID(a)), NULL);
    if (!mig_res_ok(a->res))
        return mig_act_fail_res(a, "DirectKeyFailed", "making the job's directory on %s",
                                HOST(a, MIG_SIDE_SOURCE));
    ACT_SSH(a, MIG_SIDE_SOURCE, mig_cmd_job_file_write(JOB_UUID(a), "id"),
            mig_strdup(CTX(a)->direct_key));
    if (!mig_res_ok(a->res))
        return mig_act_fail_res(a, "DirectKeyFailed", "giving %s the job's key",
                                HOST(a, MIG_SIDE_SOURCE));
    /* What the head node trusts for the target, and nothing else (never "no" checking). */
    rc = mig_known_host_lines(a->env->known_hosts, CTX(a)->target_ip, a->env->ssh_port, &lines,
                              err, sizeof(err));
    if (rc != 0)
        return mig_act_fail(a, MIG_RULE_HOSTKEY,
                            "no host key to give %s for target %s: %s; add the target's key to "
                            "the head node's known_hosts",
                            HOST(a, MIG_SIDE_SOURCE), HOST(a, MIG_SIDE_TARGET), err);
    ACT_SSH(a, MIG_SIDE_SOURCE, mig_cmd_job_file_write(JOB_UUID(a), "known_hosts"), lines);
    if (!mig_res_ok(a->res))
        return mig_act_fail_res(a, "DirectKeyFailed", "giving %s the target's host keys",
                                HOST(a, MIG_SIDE_SOURCE));
    ACT_END(a);
}

int act_direct_source_remove(struct mig_act *a)
{
    ACT_BEGIN(a);
    ACT_SSH(a, MIG_SIDE_SOURCE, mig_cmd_job_dir_remove(JOB_UUID(a)), NULL);
    if (!mig_res_ok(a->res))
        return mig_act_fail_res(a, "DirectKeyFailed", "removing the job's key from %s",
                                HOST(a, MIG_SIDE_SOURCE));
    ACT_END(a);
}
