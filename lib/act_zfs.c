/*
 * act_zfs.c: the actions on datasets: checking the target is clean,
 * installing the origin image, snapshots, the streams between the CNs, the
 * cores dataset, and removing what the job made.  A stream always continues
 * from the newest snapshot both sides hold, matched by name and guid, so a
 * retried or resumed send never starts from scratch when it need not; a
 * resumable receive is used only where both CNs were found to support it.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "cn.h"
#include "err.h"
#include "util.h"

#define VM(a) ((a)->job->vm_uuid)
#define CTX(a) (&(a)->job->ctx)
#define HOST(a, side) mig_job_side_host((a)->job, (side))
#define DS(a) (CTX(a)->datasets[(a)->item].name)

/* ---- what a CN supports ---- */

/*
 * What the side's zfs supports, asked once in prepare and kept on record so
 * that every round sends alike.  Resumable streams: by asking for the
 * property, which an older zfs refuses.  Compressed sends: by `zfs send -c`
 * with nothing to send, which such a zfs refuses only for the missing
 * snapshot (an answer it does not give is taken as no).
 */
int act_features(struct mig_act *a)
{
    bool src = a->side == MIG_SIDE_SOURCE;
    ACT_BEGIN(a);
    ACT_SSH(a, a->side, mig_cmd_zfs_get("receive_resume_token", a->env->pool), NULL);
    if (a->res->err != 0)
        return mig_act_fail_res(a, "ProbeFailed", "asking %s's zfs for resumable streams",
                                HOST(a, a->side));
    *(src ? &CTX(a)->resumable_source : &CTX(a)->resumable_target) = a->res->exit_status == 0;
    ACT_SSH(a, a->side, mig_cmd_zfs_send_c_probe(), NULL);
    if (a->res->err != 0)
        return mig_act_fail_res(a, "ProbeFailed", "asking %s's zfs for compressed sends",
                                HOST(a, a->side));
    *(src ? &CTX(a)->compressed_source : &CTX(a)->compressed_target) =
        a->res->exit_status != 0 && mig_parse_send_c_probe(a->res->errout) == 1;
    ACT_END(a);
}

/*
 * The target must hold nothing of this VM before the first send: a receive
 * with -F would otherwise replace a dataset this job did not create.
 */
int act_check_target(struct mig_act *a)
{
    ACT_BEGIN(a);
    for (a->i = 0; a->i <= CTX(a)->ndatasets; a->i++) {
        if (a->i < CTX(a)->ndatasets) {
            snprintf(a->scratch, sizeof(a->scratch), "%s", CTX(a)->datasets[a->i].name);
        } else {
            snprintf(a->scratch, sizeof(a->scratch), "%s/cores/%s", a->env->pool, VM(a));
        }
        ACT_SSH(a, MIG_SIDE_TARGET, mig_cmd_zfs_list_snapshots(a->scratch), NULL);
        if (a->res->err != 0)
            return mig_act_fail_res(a, "ProbeFailed", "looking for %s on %s", a->scratch,
                                    HOST(a, MIG_SIDE_TARGET));
        if (a->res->exit_status == 0)
            return mig_act_fail(a, "TargetHasData",
                                "target CN %s already has dataset %s; remove it or choose another "
                                "target",
                                HOST(a, MIG_SIDE_TARGET), a->scratch);
        if (!mig_res_err_has(a->res, "does not exist"))
            return mig_act_fail_res(a, "ProbeFailed", "looking for %s on %s", a->scratch,
                                    HOST(a, MIG_SIDE_TARGET));
    }
    ACT_END(a);
}

/* ---- the origin image ---- */

/* The image of the action's item (ctx.images). */
#define IMAGE(a) (&CTX(a)->images[a->item])

int act_import_image(struct mig_act *a)
{
    char why[256];
    ACT_BEGIN(a);
    ACT_SSH(a, MIG_SIDE_TARGET, mig_cmd_imgadm_import(IMAGE(a)->uuid), NULL);
    if (a->res->err != 0)
        return mig_act_fail_res(a, "ImportFailed", "imgadm import %s on %s", IMAGE(a)->uuid,
                                HOST(a, MIG_SIDE_TARGET));
    if (a->res->exit_status != 0) {
        /* A dataset of the VM is its clone, and the replication stream carries a
         * clone as an incremental from its origin: without the image the receive
         * would fail, so stop before any byte moves.  IMGAPI may be down for a
         * while: retried, unless the image is unknown to it. */
        mig_res_why(a->res, why, sizeof(why));
        int rc = mig_act_fail(a, "ImportFailed",
                              "target CN %s cannot import image %s, which a dataset of the VM is "
                              "a clone of: %s",
                              HOST(a, MIG_SIDE_TARGET), IMAGE(a)->uuid, why);
        a->transient = strstr(why, "NotFound") == NULL && strstr(why, "not found") == NULL;
        return rc;
    }
    IMAGE(a)->on_target = 1;
    ACT_END(a);
}

int probe_image(struct mig_act *a)
{
    ACT_BEGIN(a);
    ACT_SSH(a, MIG_SIDE_TARGET, mig_cmd_imgadm_get(IMAGE(a)->uuid), NULL);
    if (a->res->err != 0)
        return mig_act_fail_res(a, "ProbeFailed", "imgadm get %s on %s", IMAGE(a)->uuid,
                                HOST(a, MIG_SIDE_TARGET));
    if (a->res->exit_status != 0)
        return MIG_ACT_ABSENT;
    IMAGE(a)->on_target = 1;
    ACT_END(a);
}

/* ---- snapshots ---- */

/* True when `zfs list -t snapshot` output (lines "ds@snap") has ds@snap. */
static bool lists_snapshot(const char *out, const char *ds, const char *snap)
{
    size_t dl = strlen(ds), sl = strlen(snap);
    for (const char *p = out; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (len == dl + 1 + sl && strncmp(p, ds, dl) == 0 && p[dl] == '@' &&
            strncmp(p + dl + 1, snap, sl) == 0)
            return true;
        p = nl != NULL ? nl + 1 : NULL;
    }
    return false;
}

int act_snapshot(struct mig_act *a)
{
    char snap[128];
    mig_snap_name(a->job, a->round, snap);
    ACT_BEGIN(a);
    ACT_SSH(a, a->side, mig_cmd_zfs_snapshot(DS(a), snap), NULL);
    if (!mig_res_ok(a->res) && !(a->res->err == 0 && mig_res_err_has(a->res, "already exists")))
        return mig_act_fail_res(a, "SnapshotFailed", "zfs snapshot %s@%s on %s", DS(a), snap,
                                HOST(a, a->side));
    ACT_END(a);
}

int probe_snapshot(struct mig_act *a)
{
    char snap[128];
    mig_snap_name(a->job, a->round, snap);
    ACT_BEGIN(a);
    ACT_SSH(a, a->side, mig_cmd_zfs_list_snapshots(DS(a)), NULL);
    if (a->res->err != 0)
        return mig_act_fail_res(a, "ProbeFailed", "listing %s's snapshots on %s", DS(a),
                                HOST(a, a->side));
    return a->res->exit_status == 0 && lists_snapshot(a->res->out, DS(a), snap) ? MIG_ACT_DONE
                                                                                : MIG_ACT_ABSENT;
    ACT_END(a);
}

/* Destroys DS@snap (recursively) on side; a snapshot already gone is fine. */
static int destroy_snapshot_on(struct mig_act *a, enum mig_side side, const char *ds,
                               const char *snap)
{
    snprintf(a->object, sizeof(a->object), "%s@%s", ds, snap);
    ACT_BEGIN(a);
    ACT_SSH(a, side, mig_cmd_zfs_destroy_snapshot(ds, snap, true), NULL);
    if (!mig_res_ok(a->res) &&
        !(a->res->err == 0 && (mig_res_err_has(a->res, "could not find") ||
                               mig_res_err_has(a->res, "does not exist"))))
        return mig_act_fail_res(a, "DestroyFailed", "zfs destroy %s@%s on %s", ds, snap,
                                HOST(a, side));
    ACT_END(a);
}

int undo_snapshot(struct mig_act *a)
{
    char snap[128];
    mig_snap_name(a->job, a->round, snap);
    return destroy_snapshot_on(a, a->side, DS(a), snap);
}

/* ---- streams ---- */

/*
 * In `zfs list -t snapshot -d 1 DS` output (oldest first), the short name
 * of the newest snapshot of this job (prefix "migd-JOB-") into out ("" when
 * none).
 */
static void newest_of_job(const char *out, const char *ds, const char *prefix, char *buf,
                          size_t bufsz)
{
    size_t dl = strlen(ds), pl = strlen(prefix);
    buf[0] = '\0';
    for (const char *p = out; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (len > dl + 1 + pl && len - dl - 1 < bufsz && strncmp(p, ds, dl) == 0 && p[dl] == '@' &&
            strncmp(p + dl + 1, prefix, pl) == 0) {
            memcpy(buf, p + dl + 1, len - dl - 1);
            buf[len - dl - 1] = '\0';
        }
        p = nl != NULL ? nl + 1 : NULL;
    }
}

/*
 * Why a direct send failed, in one line: the last line of its stderr that is
 * not zfs's progress or estimate (those come first and say nothing of the
 * failure): ssh's refusal, or the receiver's complaint.
 */
static void direct_failure(const struct mig_result *res, char *buf, size_t bufsz)
{
    if (res->err != 0) {
        snprintf(buf, bufsz, "%s", res->detail);
        return;
    }
    const char *best = NULL;
    size_t best_len = mig_direct_failure_line(res->errout, &best);
    if (best == NULL)
        snprintf(buf, bufsz, "exit %d", res->exit_status);
    else
        snprintf(buf, bufsz, "exit %d: %.*s", res->exit_status, (int)(best_len > 200 ? 200 : best_len),
                 best);
}

/* The job's total with this dataset's size as its listing says now. */
static void resize(struct mig_act *a)
{
    struct mig_zfs_dataset *rows = NULL;
    int n = mig_parse_zfs_list(a->res->out, &rows);
    if (n > 0) {
        int64_t fresh = 0;
        for (int k = 0; k < n; k++)
            fresh += (int64_t)mig_zfs_send_bytes(&rows[k]);
        struct mig_dataset *d = &CTX(a)->datasets[a->item];
        a->job->progress.bytes_total += fresh - d->used;
        d->used = fresh;
    }
    free(rows);
}

/* ---- the stream of one dataset between the CNs ---- */

/*
 * What send_between is asked: send (act), tell whether the send happened
 * (probe), or only find the base of a downtime's send before the stop
 * (act_find_base), so that the downtime window need not.
 */
enum send_mode { SEND_ACT, SEND_PROBE, SEND_FIND_BASE };

/* What every sub-step of a send is given: its direction and what it is asked. */
struct send_ask {
    enum mig_side from, to;
    enum send_mode mode;
};

/* What the receiver was found to hold of the dataset, beside a base of the job's. */
enum receiver_holds {
    HOLDS_NOTHING_OF_ROUND = 0, /* no dataset, or snapshots of earlier rounds or of others */
    HOLDS_THIS_ROUND,           /* the round's snapshot itself: the send happened */
    HOLDS_BARE_DATASET,         /* the dataset without one snapshot: a receive was cut */
};

/* What a send learns across its operations (a->scratch, zeroed when the run starts). */
struct send_seen {
    char base[256]; /* what the stream starts from: "" a full stream, "@snap" one of the
                       job's, "pool/IMG@final" the origin image */
    char token[MIG_RESUME_TOKEN_MAX]; /* the receiver's receive_resume_token; "" none */
    enum receiver_holds holds;
    uint64_t guid; /* the receiver's guid of base, compared with the sender's */
    int mounts;    /* settling: the mounts done */
    int left;      /* settling: the datasets left to mount, the one being mounted included */
};
ACT_STATE_FITS(struct send_seen);
#define SEEN(a) ACT_STATE(a, struct send_seen)

/*
 * send_between's sub-steps, in a->part; each is a coroutine of its own,
 * started at pc 0 by go().  A send asks the receiver what it holds (ASK),
 * compares a common snapshot by guid (COMPARE), resumes a partial receive
 * (RESUME) or clears what a cut first receive left (CLEAR_CUT), sends
 * (SEND) and settles what arrived (SETTLE, SETTLE_LISTED when the
 * receive's exec listed it already); act_find_base ends in KEEP_BASE.
 */
enum send_part {
    PART_ASK = 0,
    PART_COMPARE,
    PART_KEEP_BASE,
    PART_RESUME,
    PART_CLEAR_CUT,
    PART_SEND,
    PART_SETTLE,
    PART_SETTLE_LISTED,
};

/* A sub-step's answer: go on with the sub-step go() set. */
enum { SEND_GO_ON = 16 };

static int go(struct mig_act *a, enum send_part part)
{
    a->part = part;
    a->pc = 0;
    return SEND_GO_ON;
}

static bool both_resumable(struct mig_act *a)
{
    return CTX(a)->resumable_source == 1 && CTX(a)->resumable_target == 1;
}

/* A first stream starts from the origin image where the target has it installed, else whole. */
static void start_from_origin(struct mig_act *a)
{
    const char *origin = CTX(a)->datasets[a->item].origin;
    SEEN(a)->base[0] = '\0';
    if (mig_job_origin_on_target(CTX(a), origin))
        snprintf(SEEN(a)->base, sizeof(SEEN(a)->base), "%s", origin);
}

/*
 * ASK: what the receiver holds decides where the stream starts: the round's
 * snapshot itself means the send already happened; else the newest snapshot
 * of the job it holds is the base (compared by guid next); a receiver
 * without the dataset gets a stream from the origin image (when installed
 * there and going forward) or a full one; one with the dataset and no base
 * may hold a partial receive.
 */
static int ask_receiver(struct mig_act *a, const struct send_ask *q)
{
    enum mig_side from = q->from, to = q->to;
    enum send_mode mode = q->mode;
    struct send_seen *s = SEEN(a);
    struct mig_dataset *ds = &CTX(a)->datasets[a->item];
    char snap[128], prefix[128], name[256];
    ACT_BEGIN(a);
    s->base[0] = '\0';
    s->holds = HOLDS_NOTHING_OF_ROUND;
    if (mode == SEND_ACT && ds->final_base[0] != '\0' && ds->final_base_round == a->round) {
        /*
         * Found and compared by guid before the stop, in this run, with no
         * partial receive waiting (act_find_base): nothing but this
         * job touches the receiver's copy since.  Once only: a retry of the
         * send asks again, from the start.
         */
        snprintf(s->base, sizeof(s->base), "@%s", ds->final_base);
        ds->final_base[0] = '\0';
        return go(a, PART_SEND);
    }
    ACT_SSH(a, to, mig_cmd_zfs_list_snapshots(DS(a)), NULL);
    if (a->res->err != 0 || (a->res->exit_status != 0 && !mig_res_err_has(a->res, "does not exist")))
        return mig_act_fail_res(a, "SendFailed", "listing %s's snapshots on %s", DS(a),
                                HOST(a, to));
    if (a->res->exit_status != 0) {
        /* The receiver has no such dataset. */
        if (mode == SEND_FIND_BASE)
            return MIG_ACT_DONE; /* the send finds out again, and says so */
        if (mode == SEND_PROBE)
            return MIG_ACT_ABSENT;
        if (from != MIG_SIDE_SOURCE)
            return go(a, PART_SEND);
        start_from_origin(a);
        /*
         * The first send of the dataset: its size again, now that the round's
         * snapshot has committed every write (sizes read at submission may
         * predate the last ones), before any byte moves.
         */
        ACT_SSH(a, from, mig_cmd_zfs_list_tree(DS(a)), NULL);
        if (mig_res_ok(a->res))
            resize(a);
        return go(a, PART_SEND);
    }
    mig_snap_name(a->job, a->round, snap);
    snprintf(prefix, sizeof(prefix), "migd-%s-", a->job->uuid);
    if (lists_snapshot(a->res->out, DS(a), snap)) {
        s->holds = HOLDS_THIS_ROUND;
        snprintf(s->base, sizeof(s->base), "@%s", snap);
    } else {
        newest_of_job(a->res->out, DS(a), prefix, name, sizeof(name));
        if (name[0] != '\0')
            snprintf(s->base, sizeof(s->base), "@%s", name);
    }
    if (s->base[0] != '\0')
        return go(a, PART_COMPARE);
    if (mode == SEND_FIND_BASE)
        return MIG_ACT_DONE;
    if (mode == SEND_PROBE)
        return MIG_ACT_ABSENT;
    const char *out = a->res->out != NULL ? a->res->out : "";
    if (strspn(out, " \t\r\n") == strlen(out))
        s->holds = HOLDS_BARE_DATASET;
    return go(a, PART_RESUME); /* a resumable partial receive, or what an interrupted one left */
    ACT_END(a);
}

/* COMPARE: the same snapshot on both sides, by guid: a name alone is never trusted. */
static int compare_base(struct mig_act *a, const struct send_ask *q)
{
    enum mig_side from = q->from, to = q->to;
    enum send_mode mode = q->mode;
    struct send_seen *s = SEEN(a);
    uint64_t guid = 0;
    ACT_BEGIN(a);
    ACT_SSH(a, to, mig_cmd_zfs_get_snap("guid", DS(a), s->base + 1), NULL);
    if (!mig_res_ok(a->res) || mig_parse_guid(a->res->out, &s->guid) != 0)
        return mig_act_fail_res(a, "SendFailed", "reading the guid of %s%s on %s", DS(a), s->base,
                                HOST(a, to));
    ACT_SSH(a, from, mig_cmd_zfs_get_snap("guid", DS(a), s->base + 1), NULL);
    if (!mig_res_ok(a->res) || mig_parse_guid(a->res->out, &guid) != 0)
        return mig_act_fail_res(a, "SendFailed", "reading the guid of %s%s on %s", DS(a), s->base,
                                HOST(a, from));
    if (guid != s->guid)
        return mig_act_fail(a, "NoCommonSnapshot",
                            "%s%s differs between %s and %s (guid); no common snapshot to send from",
                            DS(a), s->base, HOST(a, from), HOST(a, to));
    if (mode == SEND_FIND_BASE)
        return go(a, PART_KEEP_BASE);
    if (s->holds == HOLDS_THIS_ROUND)
        return go(a, PART_SETTLE); /* sent already: what arrived is checked and mounted */
    if (mode == SEND_PROBE)
        return MIG_ACT_ABSENT;
    return go(a, PART_RESUME);
    ACT_END(a);
}

/*
 * KEEP_BASE, act_find_base's end: the compared base kept for the downtime's
 * send, unless the round's snapshot is there already (the send settles it)
 * or a partial receive waits there (the send resumes it, and asks again).
 */
static int keep_base(struct mig_act *a, const struct send_ask *q)
{
    enum mig_side to = q->to;
    struct send_seen *s = SEEN(a);
    struct mig_dataset *ds = &CTX(a)->datasets[a->item];
    ACT_BEGIN(a);
    if (s->holds == HOLDS_THIS_ROUND)
        return MIG_ACT_DONE;
    if (both_resumable(a)) {
        ACT_SSH(a, to, mig_cmd_zfs_get("receive_resume_token", DS(a)), NULL);
        if (!mig_res_ok(a->res) ||
            mig_parse_resume_token(a->res->out, s->token, sizeof(s->token)) != 0)
            return MIG_ACT_DONE;
    }
    snprintf(ds->final_base, sizeof(ds->final_base), "%s", s->base + 1);
    ds->final_base_round = a->round;
    ACT_END(a);
}

/*
 * Where a send goes when no partial receive waits: a bare dataset left by
 * this job's cut first receive is cleared first; else the stream needs its
 * base.
 */
static int without_token(struct mig_act *a, enum mig_side from, enum mig_side to)
{
    struct send_seen *s = SEEN(a);
    s->token[0] = '\0';
    if (s->holds == HOLDS_BARE_DATASET && from == MIG_SIDE_SOURCE && a->round == 1)
        return go(a, PART_CLEAR_CUT);
    if (s->base[0] == '\0')
        return mig_act_fail(a, "NoCommonSnapshot",
                            "%s on %s holds no snapshot of this job; it cannot be sent to "
                            "incrementally",
                            DS(a), HOST(a, to));
    return go(a, PART_SEND);
}

/*
 * RESUME: with resumable streams on both CNs, an interrupted receive is
 * resumed from its token; then the send starts over from ASK, since what
 * is left is sent from the snapshot that arrived.
 */
static int resume_partial(struct mig_act *a, const struct send_ask *q)
{
    enum mig_side from = q->from, to = q->to;
    struct send_seen *s = SEEN(a);
    int rc;
    ACT_BEGIN(a);
    if (!both_resumable(a))
        return without_token(a, from, to);
    ACT_SSH(a, to, mig_cmd_zfs_get("receive_resume_token", DS(a)), NULL);
    rc = mig_res_ok(a->res) ? mig_parse_resume_token(a->res->out, s->token, sizeof(s->token))
                            : -1;
    if (rc < 0 && s->holds == HOLDS_BARE_DATASET) {
        /* Unknown whether a partial receive waits there: never remove it blind. */
        rc = mig_act_fail_res(a, "SendFailed", "reading %s's receive_resume_token on %s", DS(a),
                              HOST(a, to));
        a->transient = true;
        return rc;
    }
    if (rc <= 0)
        return without_token(a, from, to);
    ACT_RELAY(a, from, mig_cmd_zfs_send_resume(s->token), to,
              mig_cmd_zfs_receive_resumable(DS(a)));
    if (!mig_res_ok(a->res))
        return mig_act_fail_res(a, "SendFailed", "resuming the stream of %s to %s", DS(a),
                                HOST(a, to));
    return go(a, PART_ASK);
    ACT_END(a);
}

/*
 * CLEAR_CUT: the target has the dataset, no snapshot at all and no token:
 * what this job's first receive left when it was cut (act_check_target
 * proved there was no such dataset before the job).  An illumos receive
 * without -s removes it itself; zfs-fuse, killed mid-stream, may not.
 * Removed, then sent whole again.
 */
static int clear_cut_receive(struct mig_act *a, const struct send_ask *q)
{
    enum mig_side to = q->to;
    ACT_BEGIN(a);
    ACT_SSH(a, to, mig_cmd_zfs_destroy(DS(a), true), NULL);
    if (!mig_res_ok(a->res) && !(a->res->err == 0 && mig_res_err_has(a->res, "does not exist")))
        return mig_act_fail_res(a, "SendFailed", "removing what a cut receive left of %s on %s",
                                DS(a), HOST(a, to));
    start_from_origin(a);
    SEEN(a)->holds = HOLDS_NOTHING_OF_ROUND;
    return go(a, PART_SEND);
    ACT_END(a);
}

/* Puts in a->op the direct send of snap from base: straight from the source to the
 * target, with the job's key (act_direct.c). */
static void direct_send(struct mig_act *a, const char *snap, const char *base)
{
    struct mig_direct_send d = {.dataset = DS(a),
                                .snap = snap,
                                .from = base,
                                .job_uuid = a->job->uuid,
                                .src_ip = CTX(a)->source_ip,
                                .dst_ip = CTX(a)->target_ip,
                                .user = a->env->ssh_user,
                                .port = a->env->ssh_port,
                                .cipher = CTX(a)->direct_plain_cipher ? NULL : MIG_DIRECT_CIPHERS,
                                .compressed = mig_job_compressed(a->job)};
    mig_act_ssh(a, MIG_SIDE_SOURCE, mig_cmd_zfs_send_direct(&d), NULL);
    a->op.progress = true;
}

/*
 * SEND: the round's snapshot from base, straight from the source with the
 * job's key when the job is direct, else relayed through the head node.
 */
static int send_stream(struct mig_act *a, const struct send_ask *q)
{
    enum mig_side from = q->from, to = q->to;
    struct send_seen *s = SEEN(a);
    const char *base = s->base[0] != '\0' ? s->base : NULL;
    char snap[128];
    int rc;
    mig_snap_name(a->job, a->round, snap);
    ACT_BEGIN(a);
    if (from == MIG_SIDE_SOURCE && mig_job_direct(a->job)) {
        direct_send(a, snap, base);
        ACT_AWAIT(a);
        if (!mig_res_ok(a->res) && !CTX(a)->direct_plain_cipher && a->res->err == 0 &&
            (mig_res_err_has(a->res, "no matching cipher") ||
             mig_res_err_has(a->res, "Unknown cipher"))) {
            /* An ssh or sshd without those ciphers: again at once, with ssh's own choice. */
            CTX(a)->direct_plain_cipher = 1;
            return go(a, PART_ASK);
        }
        if (!mig_res_ok(a->res)) {
            char why[300];
            direct_failure(a->res, why, sizeof(why));
            rc = mig_act_fail(a, "SendFailed", "sending %s@%s from %s straight to %s: %s", DS(a),
                              snap, HOST(a, from), HOST(a, to), why);
            a->transient = a->res->err != -EINVAL && a->res->err != MIG_EHOSTKEY &&
                           a->res->exit_status != 255;
            return rc;
        }
        return go(a, PART_SETTLE);
    }
    /* The receive's exec lists what it brought once it succeeded: no command more. */
    ACT_RELAY(a, from, mig_cmd_zfs_send(DS(a), snap, base, mig_job_compressed(a->job)), to,
              mig_cmd_and(both_resumable(a) ? mig_cmd_zfs_receive_resumable(DS(a))
                                            : mig_cmd_zfs_receive(DS(a), true),
                          mig_cmd_zfs_list_mounts(DS(a))));
    if (!mig_res_ok(a->res)) {
        rc = mig_act_fail_res(a, "SendFailed", "sending %s@%s from %s to %s", DS(a), snap,
                              HOST(a, from), HOST(a, to));
        a->transient = a->res->err != -EINVAL && a->res->err != MIG_EHOSTKEY;
        return rc;
    }
    return go(a, PART_SETTLE_LISTED);
    ACT_END(a);
}

/*
 * SETTLE: what a receive brought.  The receive mounted nothing (-u): every
 * mountpoint the stream brought is checked, then what the global zone would
 * mount is mounted, parent first, from a fresh listing each time; the last
 * one needs no listing after it (a mount changes no other row).  With
 * SETTLE_LISTED the first listing is in a->res already: the receive's own
 * exec printed it.
 */
static int settle_received(struct mig_act *a, const struct send_ask *q)
{
    enum mig_side to = q->to;
    bool probe_only = q->mode == SEND_PROBE;
    struct send_seen *s = SEEN(a);
    char name[256], why[320];
    int rc;
    ACT_BEGIN(a);
    for (s->mounts = 0;; s->mounts++) {
        if (s->mounts > 0 || a->part != PART_SETTLE_LISTED)
            ACT_SSH(a, to, mig_cmd_zfs_list_mounts(DS(a)), NULL);
        if (!mig_res_ok(a->res))
            return mig_act_fail_res(a, "SendFailed", "listing what %s received of %s",
                                    HOST(a, to), DS(a));
        rc = mig_check_received(a->res->out, DS(a), name, sizeof(name), why, sizeof(why));
        s->left = rc;
        if (rc == -EPERM)
            return mig_act_fail(a, "ReceiveRefused",
                                "%s on %s: %s; nothing of it is mounted", DS(a), HOST(a, to),
                                why);
        if (rc < 0)
            return mig_act_fail(a, "SendFailed", "cannot read the listing of %s on %s", DS(a),
                                HOST(a, to));
        if (name[0] == '\0')
            return MIG_ACT_DONE;
        if (probe_only)
            return MIG_ACT_ABSENT; /* received, not mounted yet: acting again mounts it */
        if (s->mounts >= 2 * MIG_MAX_DATASETS)
            return mig_act_fail(a, "SendFailed", "%s on %s stays unmounted", name, HOST(a, to));
        ACT_SSH(a, to, mig_cmd_zfs_mount(name), NULL);
        if (!mig_res_ok(a->res) && !(a->res->err == 0 && mig_res_err_has(a->res, "already mounted")))
            return mig_act_fail_res(a, "SendFailed", "mounting what %s received of %s",
                                    HOST(a, to), DS(a));
        if (s->left == 1)
            break; /* the last one: mounted */
    }
    ACT_END(a);
}

/*
 * Sends this round's snapshot of dataset item from `from` to `to`, or
 * probes or finds its base (mode): its sub-steps one after the other, as
 * each says, until one answers the executor.
 */
static int send_between(struct mig_act *a, enum mig_side from, enum mig_side to,
                        enum send_mode mode)
{
    static int (*const steps[])(struct mig_act *, const struct send_ask *) = {
        [PART_ASK] = ask_receiver,         [PART_COMPARE] = compare_base,
        [PART_KEEP_BASE] = keep_base,      [PART_RESUME] = resume_partial,
        [PART_CLEAR_CUT] = clear_cut_receive, [PART_SEND] = send_stream,
        [PART_SETTLE] = settle_received,   [PART_SETTLE_LISTED] = settle_received,
    };
    const struct send_ask q = {from, to, mode};
    for (;;) {
        assert(a->part >= 0 && a->part < (int)(sizeof(steps) / sizeof(steps[0])));
        int rc = steps[a->part](a, &q);
        if (rc != SEND_GO_ON)
            return rc;
    }
}

int act_send_forward(struct mig_act *a)
{
    return send_between(a, MIG_SIDE_SOURCE, MIG_SIDE_TARGET, SEND_ACT);
}

int act_send_back(struct mig_act *a)
{
    return send_between(a, MIG_SIDE_TARGET, MIG_SIDE_SOURCE, SEND_ACT);
}

int probe_sent_forward(struct mig_act *a)
{
    return send_between(a, MIG_SIDE_SOURCE, MIG_SIDE_TARGET, SEND_PROBE);
}

int probe_sent_back(struct mig_act *a)
{
    return send_between(a, MIG_SIDE_TARGET, MIG_SIDE_SOURCE, SEND_PROBE);
}

int act_find_base(struct mig_act *a)
{
    if (a->part == PART_ASK && a->pc == 0)
        CTX(a)->datasets[a->item].final_base[0] = '\0';
    enum mig_side to = a->side == MIG_SIDE_SOURCE ? MIG_SIDE_TARGET : MIG_SIDE_SOURCE;
    return send_between(a, a->side, to, SEND_FIND_BASE);
}

/* Destroys a dataset tree on side; one already gone is fine. */
static int destroy_dataset_on(struct mig_act *a, enum mig_side side, const char *ds)
{
    snprintf(a->object, sizeof(a->object), "%s", ds);
    ACT_BEGIN(a);
    ACT_SSH(a, side, mig_cmd_zfs_destroy(ds, true), NULL);
    if (!mig_res_ok(a->res) && !(a->res->err == 0 && mig_res_err_has(a->res, "does not exist")))
        return mig_act_fail_res(a, "DestroyFailed", "zfs destroy -r %s on %s", ds, HOST(a, side));
    ACT_END(a);
}

/*
 * The first round created the target's copy (act_check_target proved there
 * was none): undoing it removes the dataset.  Later rounds add snapshots
 * to that copy and need no undo of their own.
 */
int undo_send_forward(struct mig_act *a)
{
    char prefix[MIG_DATASET_LEN + 64];
    if (a->round != 1)
        return MIG_ACT_DONE;
    /*
     * Any migd job's snapshot: this job's, or one an earlier job of the VM
     * could not remove from the source (a leftover), which this job's
     * replication stream carried along.
     */
    snprintf(prefix, sizeof(prefix), "%s@migd-", DS(a));
    snprintf(a->object, sizeof(a->object), "%s", DS(a));
    ACT_BEGIN(a);
    /* Run without the probe (MIG_ACT_UNDO_BLIND): a dataset there that holds a
     * snapshot no migd stream brought is somebody else's, and stays. */
    ACT_SSH(a, MIG_SIDE_TARGET, mig_cmd_zfs_list_snapshots(DS(a)), NULL);
    if (a->res->err == 0 && a->res->exit_status != 0 && mig_res_err_has(a->res, "does not exist"))
        return MIG_ACT_DONE;
    if (!mig_res_ok(a->res))
        return mig_act_fail_res(a, "DestroyFailed", "listing %s's snapshots on %s", DS(a),
                                HOST(a, MIG_SIDE_TARGET));
    for (const char *p = a->res->out; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (len > 0 && strncmp(p, prefix, strlen(prefix)) != 0)
            return mig_act_fail(a, "DestroyRefused",
                                "%s on %s holds snapshot %.*s, which no migd job made; left as "
                                "it is",
                                DS(a), HOST(a, MIG_SIDE_TARGET), (int)len, p);
        p = nl != NULL ? nl + 1 : p + len;
    }
    ACT_SSH(a, MIG_SIDE_TARGET, mig_cmd_zfs_destroy(DS(a), true), NULL);
    if (!mig_res_ok(a->res) && !(a->res->err == 0 && mig_res_err_has(a->res, "does not exist")))
        return mig_act_fail_res(a, "DestroyFailed", "zfs destroy -r %s on %s", DS(a),
                                HOST(a, MIG_SIDE_TARGET));
    ACT_END(a);
}

/* The source received this round's snapshot of the target's changes: it goes. */
int undo_send_back(struct mig_act *a)
{
    char snap[128];
    mig_snap_name(a->job, a->round, snap);
    return destroy_snapshot_on(a, MIG_SIDE_SOURCE, DS(a), snap);
}

int act_destroy_dataset(struct mig_act *a)
{
    return destroy_dataset_on(a, a->side, DS(a));
}

/* ---- the cores dataset ---- */

int act_create_cores(struct mig_act *a)
{
    ACT_BEGIN(a);
    ACT_SSH(a, MIG_SIDE_TARGET, mig_cmd_zfs_create_cores(a->env->pool, VM(a)), NULL);
    if (!mig_res_ok(a->res) && !(a->res->err == 0 && mig_res_err_has(a->res, "exists")))
        return mig_act_fail_res(a, "CoresFailed", "creating the cores dataset of %s on %s", VM(a),
                                HOST(a, MIG_SIDE_TARGET));
    ACT_END(a);
}

/* The VM's cores dataset, named anew on every entry of a coroutine (a local does not
 * survive an await). */
#define CORES_NAME(a, buf) snprintf((buf), sizeof(buf), "%s/cores/%s", (a)->env->pool, VM(a))

int probe_cores(struct mig_act *a)
{
    char cores[MIG_DATASET_LEN];
    CORES_NAME(a, cores);
    ACT_BEGIN(a);
    ACT_SSH(a, MIG_SIDE_TARGET, mig_cmd_zfs_list_snapshots(cores), NULL);
    if (a->res->err != 0)
        return mig_act_fail_res(a, "ProbeFailed", "looking for %s on %s", cores,
                                HOST(a, MIG_SIDE_TARGET));
    return a->res->exit_status == 0 ? MIG_ACT_DONE : MIG_ACT_ABSENT;
    ACT_END(a);
}

/* The cores dataset is mounted inside the zone's: it goes before the zone's dataset. */
static int destroy_cores_on(struct mig_act *a, enum mig_side side)
{
    char cores[MIG_DATASET_LEN];
    CORES_NAME(a, cores);
    return destroy_dataset_on(a, side, cores);
}

int act_destroy_cores(struct mig_act *a)
{
    return destroy_cores_on(a, a->side);
}

/* ---- removing the job's snapshots ---- */

/*
 * Destroys this job's snapshots of every dataset on side, all of them or
 * all but the final one, one at a time from a fresh listing each time (so
 * a repeat after a crash simply finds less to do).  a->i: the dataset.
 */
static int drop_snapshots_on(struct mig_act *a, enum mig_side side, bool keep_final)
{
    char prefix[128], final[128], name[256];
    snprintf(prefix, sizeof(prefix), "migd-%s-", a->job->uuid);
    mig_snap_name(a->job, MIG_ROUND_FINAL, final);
    ACT_BEGIN(a);
    for (a->i = 0; a->i < CTX(a)->ndatasets; a->i++) {
        for (;;) {
            ACT_SSH(a, side, mig_cmd_zfs_list_snapshots(CTX(a)->datasets[a->i].name), NULL);
            if (a->res->err == 0 && a->res->exit_status != 0 &&
                mig_res_err_has(a->res, "does not exist"))
                break;
            if (!mig_res_ok(a->res))
                return mig_act_fail_res(a, "DestroyFailed", "listing %s's snapshots on %s",
                                        CTX(a)->datasets[a->i].name, HOST(a, side));
            /* The oldest of the job's snapshots that goes. */
            a->scratch[0] = '\0';
            {
                const char *ds = CTX(a)->datasets[a->i].name;
                size_t dl = strlen(ds), pl = strlen(prefix);
                for (const char *p = a->res->out; p != NULL && *p != '\0' && a->scratch[0] == '\0';) {
                    const char *nl = strchr(p, '\n');
                    size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
                    if (len > dl + 1 + pl && len - dl - 1 < sizeof(name) &&
                        strncmp(p, ds, dl) == 0 && p[dl] == '@' &&
                        strncmp(p + dl + 1, prefix, pl) == 0) {
                        memcpy(name, p + dl + 1, len - dl - 1);
                        name[len - dl - 1] = '\0';
                        if (!(keep_final && strcmp(name, final) == 0))
                            snprintf(a->scratch, sizeof(a->scratch), "%s", name);
                    }
                    p = nl != NULL ? nl + 1 : NULL;
                }
            }
            if (a->scratch[0] == '\0')
                break;
            ACT_SSH(a, side,
                    mig_cmd_zfs_destroy_snapshot(CTX(a)->datasets[a->i].name, a->scratch, true),
                    NULL);
            snprintf(a->object, sizeof(a->object), "%s@%s", CTX(a)->datasets[a->i].name,
                     a->scratch);
            if (!mig_res_ok(a->res) && !(a->res->err == 0 && mig_res_err_has(a->res, "could not find")))
                return mig_act_fail_res(a, "DestroyFailed", "zfs destroy %s@%s on %s",
                                        CTX(a)->datasets[a->i].name, a->scratch, HOST(a, side));
        }
    }
    ACT_END(a);
}

int act_trim_snapshots(struct mig_act *a)
{
    return drop_snapshots_on(a, a->side, true);
}

int act_drop_snapshots(struct mig_act *a)
{
    return drop_snapshots_on(a, a->side, false);
}
