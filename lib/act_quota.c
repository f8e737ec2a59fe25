/*
 * act_quota.c: room for a bhyve VM's snapshots.  vmadm gives a bhyve VM's
 * top dataset a quota and a reservation of exactly its disks' sizes and its
 * own (seed 002, RFD 148), and a disk volume reserves its whole size
 * (refreservation), so a snapshot of a disk, which pins the disk's data
 * while the reservation must stay whole, does not fit under the quota.  The
 * job reads the quota and reservation once (journaled before anything
 * changes), raises the quota before each snapshot to what the next one needs
 * (the tree's use now, plus every dataset's referenced data, plus a margin),
 * and puts both back exactly once the job's snapshots are gone: on the
 * source by the undo of the first round (abort, failure) or at the end of a
 * rollback; on the target when the source copy is removed.  While a job
 * rests switched its final snapshots stay (a rollback sends from them), and
 * so does the room they take.
 */
#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "cn.h"
#include "err.h"
#include "util.h"

#define CTX(a) (&(a)->job->ctx)
#define TOP(a) (CTX(a)->datasets[0].name)
#define HOST(a, side) mig_job_side_host((a)->job, (side))

/* What a snapshot may pin beyond the data: metadata, a few blocks written meanwhile. */
#define ROOM_MARGIN (64LL << 20)

bool mig_job_bhyve(const struct mig_job *job)
{
    return strcmp(job->brand, "bhyve") == 0;
}

/* What the quota actions keep across their operations (act.h ACT_STATE). */
struct quota_seen {
    int64_t quota;  /* act_quota_read: the source's quota, until its reservation is read */
    int64_t needed; /* make_room: the tree's use plus what one more snapshot can pin */
};
ACT_STATE_FITS(struct quota_seen);
#define SEEN(a) ACT_STATE(a, struct quota_seen)

static int read_number(struct mig_act *a, int64_t *out, const char *prop, enum mig_side side)
{
    uint64_t v;
    if (!mig_res_ok(a->res) || mig_parse_zfs_number(a->res->out, &v) != 0 || v > INT64_MAX)
        return mig_act_fail_res(a, "QuotaFailed", "reading the %s of %s on %s", prop, TOP(a),
                                HOST(a, side));
    *out = (int64_t)v;
    return 0;
}

/*
 * Sets prop of the VM's top dataset on side to n bytes (n kept across the
 * await); a failure ends the action with QuotaFailed and why, a format of
 * (dataset, CN, value).  value, a char[32] of the caller's frame, is written
 * again after the await: a local does not survive it.
 */
#define SET_NUMBER(a, side, prop, n, why)                                                          \
    do {                                                                                           \
        snprintf(value, sizeof(value), "%lld", (long long)(n));                                    \
        ACT_SSH((a), (side), mig_cmd_zfs_set((prop), value, TOP(a)), NULL);                        \
        if (!mig_res_ok((a)->res)) {                                                               \
            snprintf(value, sizeof(value), "%lld", (long long)(n));                                \
            return mig_act_fail_res((a), "QuotaFailed", why, TOP(a), HOST((a), (side)), value);    \
        }                                                                                          \
    } while (0)

/* prepare: the source's quota and reservation as they are, before anything changes. */
int act_quota_read(struct mig_act *a)
{
    int64_t v = 0;
    ACT_BEGIN(a);
    ACT_SSH(a, MIG_SIDE_SOURCE, mig_cmd_zfs_get("quota", TOP(a)), NULL);
    if (read_number(a, &v, "quota", MIG_SIDE_SOURCE) != 0)
        return MIG_ACT_FAIL;
    SEEN(a)->quota = v;
    ACT_SSH(a, MIG_SIDE_SOURCE, mig_cmd_zfs_get("reservation", TOP(a)), NULL);
    if (read_number(a, &v, "reservation", MIG_SIDE_SOURCE) != 0)
        return MIG_ACT_FAIL;
    CTX(a)->quota_before = SEEN(a)->quota;
    CTX(a)->reservation_before = v;
    ACT_END(a);
}

/*
 * Before a round's snapshot on `side`: the quota raised (never lowered) to
 * the tree's use plus what one more snapshot of every dataset can pin.
 */
static int make_room(struct mig_act *a, enum mig_side side)
{
    struct mig_zfs_dataset *rows = NULL;
    char value[32];
    int n;
    uint64_t q;
    ACT_BEGIN(a);
    ACT_SSH(a, side, mig_cmd_zfs_list_tree(TOP(a)), NULL);
    if (!mig_res_ok(a->res) || (n = mig_parse_zfs_list(a->res->out, &rows)) < 1)
        return free(rows), mig_act_fail_res(a, "QuotaFailed", "listing %s on %s", TOP(a),
                                            HOST(a, side));
    SEEN(a)->needed = (int64_t)rows[0].used + ROOM_MARGIN;
    for (int i = 0; i < n; i++)
        SEEN(a)->needed += (int64_t)rows[i].referenced;
    free(rows);
    ACT_SSH(a, side, mig_cmd_zfs_get("quota", TOP(a)), NULL);
    if (!mig_res_ok(a->res) || mig_parse_zfs_number(a->res->out, &q) != 0)
        return mig_act_fail_res(a, "QuotaFailed", "reading the quota of %s on %s", TOP(a),
                                HOST(a, side));
    if (q == 0 || (int64_t)q >= SEEN(a)->needed)
        return MIG_ACT_DONE; /* no quota, or room enough */
    SET_NUMBER(a, side, "quota", SEEN(a)->needed, "raising the quota of %s on %s to %s bytes");
    ACT_END(a);
}

int act_room(struct mig_act *a)
{
    return make_room(a, a->side);
}

/* The quota and reservation the VM had, back on `side`. */
static int restore_on(struct mig_act *a, enum mig_side side)
{
    char value[32];
    ACT_BEGIN(a);
    if (CTX(a)->quota_before < 0 || CTX(a)->reservation_before < 0)
        return MIG_ACT_DONE; /* never read, so never raised */
    SET_NUMBER(a, side, "quota", CTX(a)->quota_before, "putting the quota of %s on %s back to %s");
    SET_NUMBER(a, side, "reservation", CTX(a)->reservation_before,
               "putting the reservation of %s on %s back to %s");
    ACT_END(a);
}

/*
 * The undo of a round's room.  On the source only the first round's puts
 * the quota back (its snapshot, undone just before, was the last of the
 * job's there); a rollback's room on the target stays with the target's
 * copy, which the rollback removes.
 */
int undo_room(struct mig_act *a)
{
    if (a->side != MIG_SIDE_SOURCE || a->round != 1)
        return MIG_ACT_DONE;
    return restore_on(a, MIG_SIDE_SOURCE);
}

int act_quota_restore(struct mig_act *a)
{
    return restore_on(a, a->side);
}
