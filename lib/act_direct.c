/*
 * act_direct.c: the actions of a direct transfer (cn-commands.md, "Direct
 * transfer").  The head node makes a key pair for the job, authorizes its
 * public half on the target for one thing only (from the source's admin IP,
 * `restrict`, a forced command that runs the receive of the job's own
 * datasets and refuses any other, no pty, no forwarding), and gives the source the
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

/* The parts of the job's key line, with the array of dataset names k points into. */
struct direct_key {
    const char *names[MIG_DIRECT_MAX_DATASETS];
    struct mig_direct_key k;
};

/*
 * The job's key as the target authorizes it: the same line every time for
 * the same job (its key, source and datasets are in the job), which is what
 * lets the removal match the whole line.
 */
static void direct_key(struct mig_act *a, struct direct_key *dk)
{
    int n = CTX(a)->ndatasets;
    if (n > MIG_DIRECT_MAX_DATASETS)
        n = MIG_DIRECT_MAX_DATASETS + 1; /* refused by the builder */
    for (int i = 0; i < n && i < MIG_DIRECT_MAX_DATASETS; i++)
        dk->names[i] = CTX(a)->datasets[i].name;
    dk->k = (struct mig_direct_key){.job_uuid = JOB_UUID(a),
                                    .src_ip = CTX(a)->source_ip,
                                    .pubkey_b64 = CTX(a)->direct_pub,
                                    .datasets = dk->names,
                                    .ndatasets = n};
}

/*
 * The target's serialised edit of authorized_keys (mig_op.serial): migd runs
 * one at a time per CN; the lock in the command covers other processes.
 * Like ACT_SSH, it resumes with the answer in a->res; a failed edit ends the
 * action as DirectKeyFailed, with what (a format naming the target by %s).
 */
#define AK_EDIT(a, cmd, what)                                                                      \
    do {                                                                                           \
        mig_act_ssh((a), MIG_SIDE_TARGET, (cmd), NULL);                                            \
        (a)->op.serial = true;                                                                     \
        ACT_AWAIT(a);                                                                              \
        if (!mig_res_ok((a)->res))                                                                 \
            return mig_act_fail_res((a), "DirectKeyFailed", what, HOST(a, MIG_SIDE_TARGET));      \
    } while (0)

int act_direct_authorize(struct mig_act *a)
{
    struct direct_key dk;
    direct_key(a, &dk);
    ACT_BEGIN(a);
    if (CTX(a)->direct_pub[0] == '\0')
        return mig_act_fail(a, "DirectKeyFailed", "the job has no key to authorize on %s",
                            HOST(a, MIG_SIDE_TARGET));
    /* Exactly one line of this job, whatever an interrupted attempt left. */
    AK_EDIT(a, mig_cmd_unauthorize_key(&dk.k), "cleaning %s's authorized_keys");
    AK_EDIT(a, mig_cmd_authorize_key(&dk.k),
            "authorizing the job's key on %s for the receive only");
    ACT_END(a);
}

/* No key: nothing was authorized with it (it is made and saved before the authorize). */
int act_direct_unauthorize(struct mig_act *a)
{
    struct direct_key dk;
    direct_key(a, &dk);
    ACT_BEGIN(a);
    if (CTX(a)->direct_pub[0] == '\0')
        return MIG_ACT_DONE;
    AK_EDIT(a, mig_cmd_unauthorize_key(&dk.k), "removing the job's key from %s's authorized_keys");
    ACT_END(a);
}

/* ---- the source's /var/tmp/migd-JOB ---- */

/*
 * ACT_SSH on the source; a command that failed ends the action as
 * DirectKeyFailed, with what (a format naming the source by %s).
 */
#define SOURCE_SSH(a, cmd, input, what)                                                            \
    do {                                                                                           \
        ACT_SSH((a), MIG_SIDE_SOURCE, (cmd), (input));                                             \
        if (!mig_res_ok((a)->res))                                                                 \
            return mig_act_fail_res((a), "DirectKeyFailed", what, HOST(a, MIG_SIDE_SOURCE));      \
    } while (0)

int act_direct_source(struct mig_act *a)
{
    char err[256];
    char *lines = NULL;
    int rc;
    ACT_BEGIN(a);
    if (CTX(a)->direct_key[0] == '\0')
        return mig_act_fail(a, "DirectKeyFailed", "the job has no key to give %s",
                            HOST(a, MIG_SIDE_SOURCE));
    SOURCE_SSH(a, mig_cmd_job_dir_remove(JOB_UUID(a)), NULL, "cleaning /var/tmp on %s");
    SOURCE_SSH(a, mig_cmd_job_dir_create(JOB_UUID(a)), NULL, "making the job's directory on %s");
    SOURCE_SSH(a, mig_cmd_job_file_write(JOB_UUID(a), "id"), mig_strdup(CTX(a)->direct_key),
               "giving %s the job's key");
    /* What the head node trusts for the target, and nothing else (never "no" checking). */
    rc = mig_known_host_lines(a->env->known_hosts, CTX(a)->target_ip, a->env->ssh_port, &lines,
                              err, sizeof(err));
    if (rc != 0)
        return mig_act_fail(a, MIG_RULE_HOSTKEY,
                            "no host key to give %s for target %s: %s; add the target's key to "
                            "the head node's known_hosts",
                            HOST(a, MIG_SIDE_SOURCE), HOST(a, MIG_SIDE_TARGET), err);
    SOURCE_SSH(a, mig_cmd_job_file_write(JOB_UUID(a), "known_hosts"), lines,
               "giving %s the target's host keys");
    ACT_END(a);
}

int act_direct_source_remove(struct mig_act *a)
{
    ACT_BEGIN(a);
    SOURCE_SSH(a, mig_cmd_job_dir_remove(JOB_UUID(a)), NULL, "removing the job's key from %s");
    ACT_END(a);
}
