/*
 * test_executor.c: the engine, the executor and every action of the tables,
 * against a fake datacenter instead of SSH and HTTP.  The fake (struct
 * world) is a small model of two CNs and the APIs that answers the exact
 * commands and calls cn.c and triton.c build, so a probe sees what an act
 * did.  It lives in shared memory, so a job can be killed in a child
 * process at any journal point (exec_crash_arm: the real _exit path) and
 * resumed by a fresh engine in the parent from the same SQLite file.
 *
 * The tests: a migration of a running and of a stopped VM; an incremental
 * job through finish; an abort while waiting; a rollback and a cleanup of a
 * switched job; each walked once cleanly to list its actions, then killed at
 * every point of every action (before started, after started, after acted;
 * the undo walk's too) and resumed, checking the invariants every time.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "daemon.h"
#include "err.h"
#include "executor.h"
#include "keygen.h"
#include "log.h"
#include "ops.h"
#include "plan.h"
#include "store.h"
#include "unit.h"

#define VM "4f0a1c2e-6b7d-4e8f-9a0b-1c2d3e4f5a6b"
#define IMG "5e4d0f36-9d35-11ee-a9c2-0b1f2a6c1e12"
#define SRC_UUID "00000000-0000-4000-8000-000000000001"
#define DST_UUID "00000000-0000-4000-8000-000000000002"
#define NET "7a1a4b7e-63b8-4e2c-9a3c-2a0f5a8d0c11"
#define MAXSNAP 16

/* ---- the fake datacenter ---- */

struct fds {
    bool exists;
    int nsnap;
    char snap[MAXSNAP][96];
    unsigned long long guid[MAXSNAP];
    int data; /* what was written: a number that travels with snapshots */
    int snapdata[MAXSNAP];
    bool mounted; /* received with -u: unmounted until zfs mount */
    /* A resumable receive (-s) that was cut: the sender's snapshot `first`, the one being
     * received, waits for `zfs send -t TOKEN` (which finishes that one only, as ZFS's
     * does: the stream's later snapshots are sent again); the token is longer than 255
     * bytes, as real ones may be. */
    bool partial;
    int partial_first, partial_upto;
    char token[640];
};

struct fside {
    int zone; /* 0 none, 1 configured, 2 installed */
    int cfg;  /* a setting of the zone's configuration ("set max-lwps=N") */
    bool running, autoboot, hidden, cores, image;
    int zone_id;  /* zoneadm list -p: the id of its current boot */
    bool flapping; /* the zone restarts by itself between two looks (a new id each time) */
    struct fds ds;
    struct fds disk; /* a KVM's zones/UUID-disk0, a volume (W->kvm) */
};

struct world {
    struct fside side[2]; /* 0 source, 1 target */
    char vmapi_server[40];
    char vmapi_state[16];
    char nic_cn[2][40];
    bool reserved[2];
    unsigned long long next_guid;
    int ops;
    int transient_faults; /* fail this many ops with a transport error */
    /* Cut this many receives of a new dataset midway: the connection drops and the
     * target keeps the dataset without a snapshot (as zfs-fuse may). */
    int cut_receives;
    int transfer_retries; /* transfer.retries for the rig, 0: the default */
    bool resumable;       /* both CNs' zfs resume receives (zfs receive -s, send -t) */
    int cut_incrementals; /* with resumable: cut this many incremental receives midway */
    bool kvm;             /* the VM is a KVM: a disk (a volume) beside its zone's dataset */
    int in_flight, peak_in_flight; /* operations in flight now, and at most */
    bool cut_zone_only;   /* cut_receives cuts only the zone's dataset's receives */
    /* An operation on the disk whose command holds this text answers only when canceled
     * (a long stream, a slow read); "" none.  disk_relays: relays into the disk started. */
    char hold[64];
    int disk_relays;
    int cancels;          /* operations in flight canceled */
    int resumes;          /* how many streams were resumed from a token */
    char fail_once[48];   /* the next command holding this text fails once (exit 1) */
    /* Direct transfer: the job's line in the target's authorized_keys, the source's files. */
    int auth_lines;
    bool job_dir, job_id, job_known_hosts;
    /* product.md: never attached and bootable on both CNs; the first command after which
     * both were, and how many such commands. */
    int both_bootable;
    char both_bootable_after[160];
};

static struct world *W;

static const char *const MACS[2] = {"90:b8:d0:01:01:00", "90:b8:d0:01:01:01"};
static const char *const IPS[2] = {"192.0.2.10", "192.0.2.11"};

static void world_reset(bool running)
{
    memset(W, 0, sizeof(*W));
    struct fside *s = &W->side[0];
    s->zone = 2;
    s->running = running;
    s->autoboot = running;
    s->image = true;
    s->ds.exists = true;
    s->ds.mounted = true;
    s->ds.data = 7;
    s->cfg = 2000;
    W->side[1].image = false;
    snprintf(W->vmapi_server, sizeof(W->vmapi_server), SRC_UUID);
    snprintf(W->vmapi_state, sizeof(W->vmapi_state), running ? "running" : "stopped");
    snprintf(W->nic_cn[0], sizeof(W->nic_cn[0]), SRC_UUID);
    snprintf(W->nic_cn[1], sizeof(W->nic_cn[1]), SRC_UUID);
    W->reserved[0] = false;
    W->reserved[1] = true; /* reserved before the job: must stay so */
    W->next_guid = 1000;
}

/* The single-quoted words of a command, in order (at most max). */
static int quoted(const char *cmd, char out[][160], int max)
{
    int n = 0;
    for (const char *p = cmd; *p != '\0' && n < max; p++) {
        if (*p != '\'')
            continue;
        const char *e = strchr(p + 1, '\'');
        if (e == NULL)
            break;
        snprintf(out[n++], 160, "%.*s", (int)(e - p - 1), p + 1);
        p = e;
    }
    return n;
}

static int snap_index(const struct fds *d, const char *name)
{
    for (int i = 0; i < d->nsnap; i++)
        if (strcmp(d->snap[i], name) == 0)
            return i;
    return -1;
}

static const char *vm_state(const struct fside *s)
{
    return s->zone == 2 ? (s->running ? "running" : "stopped") : "configured";
}

/* An answer under construction. */
struct answer {
    struct mig_result res;
    char out[4096];
    char err[512];
    json_t *json;
};

static void fail_cmd(struct answer *a, const char *msg)
{
    a->res.exit_status = 1;
    snprintf(a->err, sizeof(a->err), "%s", msg);
}

static void run_relay(struct answer *a, int from, const char *send, const char *receive);

/* The direct transfer's commands (cn-commands.md); false when cmd is not one. */
static bool run_direct(struct answer *a, int side, const char *cmd, const char *input)
{
    a->res.exit_status = 0;
    if (strncmp(cmd, "umask 077; LC_ALL=C;", 20) == 0 && strstr(cmd, "grep -v -x -F") != NULL) {
        assert_int_equal(side, 1);
        W->auth_lines = 0;
    } else if (strncmp(cmd, "umask 077; LC_ALL=C;", 20) == 0) {
        assert_int_equal(side, 1);
        /* Only the source, only the receive of the job's dataset. */
        assert_non_null(strstr(cmd, "restrict,from=\"10.99.99.11\",command=\"case "
                                    "$SSH_ORIGINAL_COMMAND in '\\''zfs receive -u -F zones/"));
        assert_non_null(strstr(cmd, "no-pty,no-port-forwarding,no-agent-forwarding"));
        W->auth_lines = 1;
    } else if (strncmp(cmd, "rm -rf '/var/tmp/migd-", 22) == 0) {
        assert_int_equal(side, 0);
        W->job_dir = W->job_id = W->job_known_hosts = false;
    } else if (strncmp(cmd, "mkdir -m 700 '/var/tmp/migd-", 28) == 0) {
        assert_int_equal(side, 0);
        if (W->job_dir)
            fail_cmd(a, "mkdir: Failed to make directory; File exists");
        W->job_dir = true;
    } else if (strncmp(cmd, "umask 077 && cat > '/var/tmp/migd-", 34) == 0) {
        assert_int_equal(side, 0);
        assert_non_null(input);
        if (!W->job_dir)
            return fail_cmd(a, "cannot create: No such file or directory"), true;
        if (strstr(cmd, "/id'") != NULL) {
            assert_non_null(strstr(input, "BEGIN OPENSSH PRIVATE KEY"));
            W->job_id = true;
        } else {
            assert_memory_equal(input, "10.99.99.12 ssh-ed25519 ", 24);
            W->job_known_hosts = true;
        }
    } else if (strncmp(cmd, "zfs send -R -v", 14) == 0) {
        assert_int_equal(side, 0);
        const char *pipe = strstr(cmd, " | ssh -F /dev/null -T -b '10.99.99.11' ");
        assert_non_null(pipe);
        assert_non_null(strstr(pipe, "StrictHostKeyChecking=yes"));
        if (!W->job_id || !W->job_known_hosts || W->auth_lines != 1) {
            a->res.exit_status = 255;
            snprintf(a->err, sizeof(a->err), "root@10.99.99.12: Permission denied (publickey).");
            return true;
        }
        char send[1024];
        snprintf(send, sizeof(send), "%.*s", (int)(pipe - cmd), cmd);
        run_relay(a, 0, send, NULL);
    } else {
        return false;
    }
    return true;
}

/* A KVM's disk, beside its zone's dataset. */
#define DISK "zones/" VM "-disk0"

/* The dataset a command's quoted words name: the disk, or the zone's. */
static struct fds *fds_named(struct fside *s, char q[][160], int nq)
{
    for (int i = 0; i < nq; i++)
        if (strncmp(q[i], DISK, strlen(DISK)) == 0)
            return &s->disk;
    return &s->ds;
}

static void apply_ssh(struct answer *a, int side, const char *cmd, const char *input)
{
    if (run_direct(a, side, cmd, input))
        return;
    struct fside *s = &W->side[side];
    char q[4][160];
    int nq = quoted(cmd, q, 4);
    struct fds *D = fds_named(s, q, nq); /* the dataset the command names (the zone's by default) */
    a->res.exit_status = 0;
    if (W->fail_once[0] != '\0' && strstr(cmd, W->fail_once) != NULL) {
        W->fail_once[0] = '\0';
        return fail_cmd(a, "injected: the command failed once");
    }
    if (strncmp(cmd, "vmadm get", 9) == 0) {
        if (s->zone == 0)
            return fail_cmd(a, "vmadm: No such zone");
        snprintf(a->out, sizeof(a->out), "{\"uuid\":\"%s\",\"state\":\"%s\",\"autoboot\":%s}", VM,
                 vm_state(s), s->autoboot ? "true" : "false");
    } else if (strncmp(cmd, "vmadm stop", 10) == 0) {
        if (!s->running)
            return fail_cmd(a, "Unable to stop VM: VM is already not running");
        s->running = false;
        s->autoboot = false;
    } else if (strncmp(cmd, "vmadm start", 11) == 0) {
        if (s->running)
            return fail_cmd(a, "Unable to start VM: VM is already running");
        if (s->zone != 2)
            return fail_cmd(a, "Unable to start VM: not installed");
        s->running = true;
        s->autoboot = true;
        s->zone_id = s->zone_id > 0 ? s->zone_id + 1 : 5;
    } else if (strcmp(cmd, "zoneadm list -p") == 0) {
        int n = snprintf(a->out, sizeof(a->out), "0:global:running:/::liveimg:shared\n");
        if (s->running) {
            if (s->flapping)
                s->zone_id++;
            snprintf(a->out + n, sizeof(a->out) - (size_t)n,
                     "%d:%s:running:/zones/%s:%s:joyent:excl\n", s->zone_id, VM, VM, VM);
        }
    } else if (strncmp(cmd, "svcs -z ", 8) == 0) {
        if (!s->running)
            return fail_cmd(a, "svcs: Could not bind to repository server for zone");
    } else if (strcmp(cmd, "zoneadm list -pc") == 0) {
        int n = snprintf(a->out, sizeof(a->out), "0:global:running:/::liveimg:shared\n");
        if (s->zone != 0)
            snprintf(a->out + n, sizeof(a->out) - (size_t)n, "%s:%s:%s:/zones/%s:%s:joyent:excl\n",
                     s->running ? "5" : "-", VM,
                     s->zone == 1 ? "configured" : (s->running ? "running" : "installed"), VM, VM);
    } else if (strstr(cmd, "zoneadm -z") != NULL && strstr(cmd, " attach") != NULL) {
        if (s->zone != 1)
            return fail_cmd(a, "zoneadm: must be configured before attach");
        if (!s->ds.exists) /* the zone's own */
            return fail_cmd(a, "zoneadm: dataset does not exist");
        s->zone = 2;
    } else if (strstr(cmd, "zoneadm -z") != NULL && strstr(cmd, " detach") != NULL) {
        if (s->running)
            return fail_cmd(a, "zoneadm: must be halted before detach");
        if (s->zone != 2)
            return fail_cmd(a, "zoneadm: must be installed before detach");
        s->zone = 1;
    } else if (strstr(cmd, "zonecfg -z") != NULL && strstr(cmd, " export") != NULL) {
        if (s->zone == 0)
            return fail_cmd(a, "zonecfg: No such zone configured");
        snprintf(a->out, sizeof(a->out),
                 "create -b\nset zonepath=/zones/%s\nset autoboot=%s\nset max-lwps=%d\n%s", VM,
                 s->autoboot ? "true" : "false", s->cfg,
                 s->hidden ? "add attr\nset name=do-not-inventory\nset type=string\nset "
                             "value=true\nend\n"
                           : "");
    } else if (strstr(cmd, "zonecfg -z") != NULL && strstr(cmd, "-f -") != NULL) {
        if (s->zone != 0)
            return fail_cmd(a, "zonecfg: zone already exists");
        if (input == NULL || strstr(input, "create") == NULL)
            return fail_cmd(a, "zonecfg: no configuration on stdin");
        s->zone = 1;
        /* As zonecfg, a later set overrides an earlier one. */
        const char *ab = NULL;
        for (const char *p = input; (p = strstr(p, "set autoboot=")) != NULL; p++)
            ab = p;
        s->autoboot = ab != NULL && strncmp(ab, "set autoboot=true", 17) == 0;
        const char *lwps = strstr(input, "set max-lwps=");
        s->cfg = lwps != NULL ? atoi(lwps + 13) : -1;
        /* The zone must be created hidden: the agent would report it otherwise. */
        s->hidden = strstr(input, "set name=do-not-inventory") != NULL;
        assert_true(s->hidden);
    } else if (nq >= 2 && (strncmp(q[1], "set autoboot=", 13) == 0 ||
                           strncmp(q[1], "add attr", 8) == 0 ||
                           strncmp(q[1], "remove attr", 11) == 0)) {
        /* One or more ';'-joined subcommands; like zonecfg, each runs even after one fails. */
        if (s->zone == 0)
            return fail_cmd(a, "zonecfg: No such zone configured");
        bool failed = false;
        if (strstr(q[1], "set autoboot=true") != NULL)
            s->autoboot = true;
        if (strstr(q[1], "set autoboot=false") != NULL)
            s->autoboot = false;
        if (strstr(q[1], "add attr") != NULL) {
            if (s->hidden)
                failed = true;
            s->hidden = true;
        }
        if (strstr(q[1], "remove attr") != NULL) {
            if (!s->hidden)
                failed = true;
            s->hidden = false;
        }
        if (failed)
            return fail_cmd(a, strstr(q[1], "remove attr") != NULL
                                   ? "zonecfg: No such attr resource."
                                   : "zonecfg: attr do-not-inventory already exists");
    } else if (strstr(cmd, "zonecfg -z") != NULL && strstr(cmd, "delete -F") != NULL) {
        if (s->zone == 0)
            return fail_cmd(a, "zonecfg: No such zone configured");
        if (s->zone != 1)
            return fail_cmd(a, "Zone not in configured state; delete not allowed.");
        /* Flag before delete, as the agent would report an unflagged zone destroyed. */
        assert_true(s->hidden);
        s->zone = 0;
        s->hidden = false;
        s->autoboot = false;
    } else if (strstr(cmd, "receive_resume_token") != NULL) {
        if (!W->resumable)
            return fail_cmd(a, "bad property list: invalid property 'receive_resume_token'");
        if (nq == 2 && strcmp(q[1], "zones") == 0) {
            snprintf(a->out, sizeof(a->out), "-\n"); /* the pool: asked by act_features */
            return;
        }
        if (!D->exists)
            return fail_cmd(a, "cannot open: dataset does not exist");
        snprintf(a->out, sizeof(a->out), "%s\n", D->partial ? D->token : "-");
    } else if (strcmp(cmd, "zfs send -c") == 0) {
        /* The fake CN's zfs, like zfs-fuse, has no compressed sends. */
        return fail_cmd(a, "invalid option 'c'\nusage:\n\tsend [-RDp] [-[iI] snapshot] <snapshot>");
    } else if (strncmp(cmd, "zfs list -H -o name -t snapshot -d 1", 36) == 0) {
        if (strstr(q[0], "/cores/") != NULL) {
            if (!s->cores)
                return fail_cmd(a, "cannot open: dataset does not exist");
            return;
        }
        if (!D->exists)
            return fail_cmd(a, "cannot open: dataset does not exist");
        size_t n = 0;
        for (int i = 0; i < D->nsnap; i++)
            n += (size_t)snprintf(a->out + n, sizeof(a->out) - n, "%s@%s\n", q[0], D->snap[i]);
    } else if (strncmp(cmd, "zfs list -H -o name,type,mountpoint,zoned,canmount,mounted -r", 61) ==
               0) {
        if (!D->exists)
            return fail_cmd(a, "cannot open: dataset does not exist");
        if (D == &s->disk)
            snprintf(a->out, sizeof(a->out), "%s\tvolume\t-\t-\t-\t-\n", q[0]);
        else
            snprintf(a->out, sizeof(a->out), "%s\tfilesystem\t/%s\toff\ton\t%s\n", q[0], q[0],
                     D->mounted ? "yes" : "no");
    } else if (strncmp(cmd, "zfs mount", 9) == 0) {
        if (!D->exists)
            return fail_cmd(a, "cannot open: dataset does not exist");
        if (D->mounted)
            return fail_cmd(a, "cannot mount: filesystem already mounted");
        D->mounted = true;
    } else if (strncmp(cmd, "zfs list -H -p -o name,used,referenced,origin,type", 50) == 0) {
        if (!D->exists)
            return fail_cmd(a, "cannot open: dataset does not exist");
        snprintf(a->out, sizeof(a->out), "%s\t%d\t%d\t-\t%s\n", q[0], 1000 * D->data,
                 1000 * D->data, D == &s->disk ? "volume" : "filesystem");
    } else if (strncmp(cmd, "zfs get -H -p -o value 'guid'", 29) == 0) {
        const char *at = strchr(q[1], '@');
        int i = at != NULL && D->exists ? snap_index(D, at + 1) : -1;
        if (i < 0)
            return fail_cmd(a, "cannot open: dataset does not exist");
        snprintf(a->out, sizeof(a->out), "%llu\n", D->guid[i]);
    } else if (strncmp(cmd, "zfs snapshot -r", 15) == 0) {
        const char *at = strchr(q[0], '@');
        if (!D->exists || at == NULL)
            return fail_cmd(a, "cannot create snapshot: dataset does not exist");
        if (snap_index(D, at + 1) >= 0)
            return fail_cmd(a, "cannot create snapshot: dataset already exists");
        assert_true(D->nsnap < MAXSNAP);
        snprintf(D->snap[D->nsnap], 96, "%s", at + 1);
        D->snapdata[D->nsnap] = D->data;
        D->guid[D->nsnap++] = W->next_guid++;
    } else if (strncmp(cmd, "zfs destroy", 11) == 0) {
        const char *at = strchr(q[0], '@');
        if (at != NULL) {
            int i = D->exists ? snap_index(D, at + 1) : -1;
            if (i < 0)
                return fail_cmd(a, "could not find any snapshots to destroy");
            memmove(&D->snap[i], &D->snap[i + 1], (size_t)(D->nsnap - i - 1) * 96);
            memmove(&D->guid[i], &D->guid[i + 1],
                    (size_t)(D->nsnap - i - 1) * sizeof(D->guid[0]));
            memmove(&D->snapdata[i], &D->snapdata[i + 1],
                    (size_t)(D->nsnap - i - 1) * sizeof(int));
            D->nsnap--;
        } else if (strstr(q[0], "/cores/") != NULL) {
            if (!s->cores)
                return fail_cmd(a, "cannot open: dataset does not exist");
            s->cores = false;
        } else {
            if (!D->exists)
                return fail_cmd(a, "cannot open: dataset does not exist");
            if (s->running)
                return fail_cmd(a, "cannot destroy: dataset is busy");
            assert_true(s->zone == 0 || side == 1); /* never the source's in use */
            memset(D, 0, sizeof(*D));
        }
    } else if (strncmp(cmd, "zfs create", 10) == 0) {
        if (s->cores)
            return fail_cmd(a, "cannot create: dataset already exists");
        s->cores = true;
    } else if (strncmp(cmd, "imgadm get", 10) == 0) {
        if (!s->image) {
            a->res.exit_status = 3;
            snprintf(a->err, sizeof(a->err), "imgadm: image not installed");
        }
    } else if (strncmp(cmd, "imgadm import", 13) == 0) {
        s->image = true;
    } else {
        fail_msg("the fake CN does not know the command: %s", cmd);
    }
}

/* The sender's snapshots first..upto, received. */
static void copy_snapshots(struct answer *a, const struct fds *s, struct fds *d, int first,
                           int upto)
{
    for (int i = first; i <= upto; i++) {
        assert_true(d->nsnap < MAXSNAP);
        memcpy(d->snap[d->nsnap], s->snap[i], sizeof(d->snap[0]));
        d->guid[d->nsnap] = s->guid[i];
        d->snapdata[d->nsnap++] = s->snapdata[i];
    }
    d->data = s->snapdata[upto];
    a->res.bytes = 1000u * (unsigned)(upto - first + 1);
    a->res.src_status = a->res.dst_status = 0;
}

/* A partial receive's token: long, and naming what it waits for. */
static void make_token(struct fds *d, int first, int upto)
{
    d->partial = true;
    d->partial_first = first;
    d->partial_upto = upto;
    int n = snprintf(d->token, sizeof(d->token), "1-%x-%x-789c", first, upto);
    memset(d->token + n, 'a', 600 - (size_t)n);
    d->token[600] = '\0';
}

/* zfs send -t TOKEN | zfs receive -s ...: what the cut receive left, finished. */
static bool resume_stream(struct answer *a, struct fds *d, const char *send, const char *receive,
                          int *first, int *upto)
{
    assert_non_null(strstr(receive, "zfs receive -s -u -F")); /* resumable again */
    if (!d->partial || strstr(send, d->token) == NULL) {
        fail_cmd(a, "cannot receive resume stream: destination has no matching partial state");
        return false;
    }
    *first = d->partial_first;
    *upto = d->partial_upto;
    d->partial = false;
    W->resumes++;
    return true;
}

/*
 * zfs send -R [-I FROM] DS@SNAP | zfs receive [-s] -u -F DS, from side `from` to the
 * other; receive NULL: a direct send's (never resumable).
 */
static void run_relay(struct answer *a, int from, const char *send, const char *receive)
{
    struct fside *s = &W->side[from], *d = &W->side[1 - from];
    /* The dataset: the resumed receive's, or the sent snapshot's. */
    char q[4][160], r[4][160];
    int nq = quoted(send, q, 4), nr = receive != NULL ? quoted(receive, r, 4) : 0;
    bool resume = strncmp(send, "zfs send -t ", 12) == 0;
    struct fds *S = resume ? fds_named(s, r, nr) : fds_named(s, q, nq);
    struct fds *R = resume ? fds_named(d, r, nr) : fds_named(d, q, nq);
    bool resumable = receive != NULL && strstr(receive, "zfs receive -s") != NULL;
    assert_true(W->resumable || !resumable); /* -s only where both CNs were found to have it */
    a->res.exit_status = 0;
    int first = 0, upto = -1;
    if (resume) {
        if (resume_stream(a, R, send, receive != NULL ? receive : "", &first, &upto))
            copy_snapshots(a, S, R, first, upto);
        return;
    }
    if (R->partial)
        return fail_cmd(a, "cannot receive new filesystem stream: destination contains "
                           "partially-complete state from \"zfs receive -s\"");
    const char *base = nq == 2 ? q[0] : NULL;
    const char *at = strchr(q[nq - 1], '@');
    upto = at != NULL ? snap_index(S, at + 1) : -1;
    if (upto < 0)
        return fail_cmd(a, "cannot send: snapshot does not exist");
    if (base == NULL) {
        if (R->exists)
            return fail_cmd(a, "cannot receive new filesystem stream: destination exists");
    } else if (base[0] == '@') {
        int bs = snap_index(S, base + 1), bd = snap_index(R, base + 1);
        if (bs < 0 || bd < 0 || S->guid[bs] != R->guid[bd])
            return fail_cmd(a, "cannot receive incremental stream: most recent snapshot does not "
                               "match incremental source");
        first = bs + 1;
        /* -F: the receiver is rolled back to the base; later snapshots there go. */
        R->nsnap = bd + 1;
        if (resumable && W->cut_incrementals > 0 && first <= upto) {
            W->cut_incrementals--;
            make_token(R, first, first);
            a->res.err = MIG_ESSH;
            snprintf(a->res.detail, sizeof(a->res.detail), "connection dropped mid-stream");
            return;
        }
    } else {
        if (!d->image)
            return fail_cmd(a, "cannot receive: local origin for clone does not exist");
        if (R->exists)
            return fail_cmd(a, "cannot receive new filesystem stream: destination exists");
    }
    if (!R->exists) {
        memset(R, 0, sizeof(*R));
        R->exists = true;
        if (W->cut_receives > 0 && (!W->cut_zone_only || R == &d->ds)) {
            W->cut_receives--;
            if (resumable)
                make_token(R, first, first);
            a->res.err = MIG_ESSH;
            snprintf(a->res.detail, sizeof(a->res.detail), "connection dropped mid-stream");
            return;
        }
    }
    copy_snapshots(a, S, R, first, upto);
}

/* Runs a command on a side's CN, then checks product.md's rule on the world it leaves. */
static void run_ssh(struct answer *a, int side, const char *cmd, const char *input)
{
    apply_ssh(a, side, cmd, input);
    const struct fside *s = W->side;
    if (s[0].zone == 2 && s[0].autoboot && s[1].zone == 2 && s[1].autoboot &&
        W->both_bootable++ == 0)
        snprintf(W->both_bootable_after, sizeof(W->both_bootable_after), "%s", cmd);
}

static int nic_of(const char *mac_or_url)
{
    return strstr(mac_or_url, "010101") != NULL || strstr(mac_or_url, "01:01:01") != NULL;
}

static void run_http(struct answer *a, const struct mig_op *op)
{
    const char *url = op->url;
    a->res.http_status = 200;
    if (strstr(url, "/ips/") != NULL) {
        int k = strstr(url, IPS[1]) != NULL;
        if (strcmp(op->method, "PUT") == 0)
            W->reserved[k] = json_is_true(json_object_get(op->body, "reserved"));
        a->json = json_pack("{s:s, s:b}", "ip", IPS[k], "reserved", W->reserved[k]);
    } else if (strstr(url, "/vms/") != NULL) {
        if (strcmp(op->method, "PUT") == 0) {
            const char *su = json_string_value(json_object_get(op->body, "server_uuid"));
            const char *st = json_string_value(json_object_get(op->body, "state"));
            assert_non_null(su);
            assert_non_null(st);
            snprintf(W->vmapi_server, sizeof(W->vmapi_server), "%s", su);
            snprintf(W->vmapi_state, sizeof(W->vmapi_state), "%s", st);
        }
        a->json = json_pack("{s:s, s:s, s:s}", "uuid", VM, "server_uuid", W->vmapi_server, "state",
                            W->vmapi_state);
    } else if (strstr(url, "/nics?") != NULL) {
        a->json = json_pack("[{s:s, s:s}, {s:s, s:s}]", "mac", MACS[0], "cn_uuid", W->nic_cn[0],
                            "mac", MACS[1], "cn_uuid", W->nic_cn[1]);
    } else if (strstr(url, "/nics/") != NULL) {
        int k = nic_of(url);
        snprintf(W->nic_cn[k], sizeof(W->nic_cn[k]), "%s",
                 json_string_value(json_object_get(op->body, "cn_uuid")));
        a->json = json_pack("{s:s, s:s}", "mac", MACS[k], "cn_uuid", W->nic_cn[k]);
    } else {
        fail_msg("the fake APIs do not know %s %s", op->method, url);
    }
}

/* One pending delivery: the fake answers from the loop, as the adapters do. */
/* An operation in flight: its answer, delivered on the next turn of the loop. */
struct slot {
    uv_timer_t timer;
    struct ops *o;
    struct answer ans;
    bool pending;
};

/* The fake's operations in flight: one per owner (executor) at most. */
#define SLOTS 4
struct fake {
    struct slot slots[SLOTS];
};

static void on_deliver(uv_timer_t *t)
{
    struct slot *f = t->data;
    f->pending = false;
    W->in_flight--;
    struct answer ans = f->ans;
    memset(&f->ans, 0, sizeof(f->ans));
    ops_fake_deliver(f->o, &ans.res, ans.out, ans.err, ans.json);
    json_decref(ans.json);
}

/* The address of side in the fake datacenter (the job's ctx says the same). */
static const char *fake_ip(enum mig_side side)
{
    return side == MIG_SIDE_TARGET ? "10.99.99.12" : "10.99.99.11";
}

static void fake_run(void *arg, struct ops *o, const struct mig_op *op,
                     const struct mig_peers *peers)
{
    /* An operation reaches the CN of its side, as its peers name it, and is the job's. */
    if (op->kind == MIG_OP_SSH || op->kind == MIG_OP_RELAY)
        assert_string_equal(mig_peers_ip(peers, op->on), fake_ip(op->on));
    if (op->kind == MIG_OP_RELAY)
        assert_string_equal(mig_peers_ip(peers, op->to), fake_ip(op->to));
    assert_string_equal(peers->vm_uuid, VM);
    struct fake *fk = arg;
    struct slot *f = NULL;
    for (int k = 0; k < SLOTS; k++) {
        assert_false(fk->slots[k].pending && fk->slots[k].o == o); /* one at a time per owner */
        if (!fk->slots[k].pending && f == NULL)
            f = &fk->slots[k];
    }
    assert_non_null(f);
    if (++W->in_flight > W->peak_in_flight)
        W->peak_in_flight = W->in_flight;
    memset(&f->ans, 0, sizeof(f->ans));
    f->ans.res.exit_status = -1;
    f->o = o;
    W->ops++;
    if (W->transient_faults > 0) {
        W->transient_faults--;
        f->ans.res.err = MIG_ESSH;
        snprintf(f->ans.res.detail, sizeof(f->ans.res.detail), "connection dropped");
    } else if (op->kind == MIG_OP_SSH) {
        assert_non_null(op->cmd);
        run_ssh(&f->ans, op->on == MIG_SIDE_TARGET, op->cmd, op->input);
    } else if (op->kind == MIG_OP_RELAY) {
        assert_non_null(op->cmd);
        assert_non_null(op->cmd2);
        run_relay(&f->ans, op->on == MIG_SIDE_TARGET, op->cmd, op->cmd2);
        /* The receive's exec may list what it received: after a receive that succeeded. */
        const char *then = strstr(op->cmd2, " && ");
        if (then != NULL && f->ans.res.err == 0 && f->ans.res.exit_status == 0)
            run_ssh(&f->ans, op->to == MIG_SIDE_TARGET, then + 4, NULL);
    } else {
        assert_non_null(op->url);
        run_http(&f->ans, op);
    }
    f->pending = true;
    const char *on_disk = op->kind == MIG_OP_RELAY ? op->cmd2 : op->cmd;
    if (op->kind == MIG_OP_RELAY && strstr(op->cmd2, DISK) != NULL)
        W->disk_relays++;
    if (W->hold[0] != '\0' && on_disk != NULL && strstr(on_disk, DISK) != NULL &&
        strstr(on_disk, W->hold) != NULL)
        return; /* still running: fake_cancel answers it */
    uv_timer_start(&f->timer, on_deliver, 0, 0);
}

static void fake_cancel(void *arg, struct ops *o)
{
    struct fake *fk = arg;
    for (int k = 0; k < SLOTS; k++) {
        struct slot *f = &fk->slots[k];
        if (f->pending && f->o == o) {
            json_decref(f->ans.json);
            memset(&f->ans, 0, sizeof(f->ans));
            f->ans.res.err = MIG_ECANCELED;
            snprintf(f->ans.res.detail, sizeof(f->ans.res.detail), "canceled");
            W->cancels++;
            if (!uv_is_active((uv_handle_t *)&f->timer))
                uv_timer_start(&f->timer, on_deliver, 0, 0);
        }
    }
}

/* ---- a daemon around the engine ---- */

struct rig {
    uv_loop_t loop;
    struct mig_config *cfg;
    struct migd d;
    struct fake fake;
    struct ops_fake fops;
    char dir[64], db[128];
    const char *job_uuid;
    bool ended;
    char final_state[16];
    uv_timer_t guard; /* a job that never stops moving fails the test */
    uv_timer_t poll;  /* with want_increments: watches the job's rounds */
    int want_increments; /* >0: run until a waiting job has done this many incremental rounds */
};

static void on_watch(void *arg, json_t *job, bool final)
{
    struct rig *r = arg;
    if (!final || (r->want_increments > 0 &&
                   strcmp(json_string_value(json_object_get(job, "state")), "waiting") == 0))
        return;
    snprintf(r->final_state, sizeof(r->final_state), "%s",
             json_string_value(json_object_get(job, "state")));
    r->ended = true;
    uv_stop(&r->loop);
}

static void rig_open(struct rig *r)
{
    char err[256];
    assert_int_equal(uv_loop_init(&r->loop), 0);
    W->in_flight = 0; /* a killed run's answers never come */
    static const char cfg_text[] =
        "{\"apis\": {\"vmapi\": \"http://vmapi\", \"cnapi\": \"http://cnapi\","
        " \"napi\": \"http://napi\", \"imgapi\": \"http://imgapi\"},"
        " \"incremental\": {\"interval_s\": 1}}";
    assert_int_equal(mig_config_parse(cfg_text, strlen(cfg_text), &r->cfg, err, sizeof(err)), 0);
    /* Rounds back to back (a config cannot say 0 s; the engine handles it), three at most. */
    r->cfg->incremental.interval_s = 0;
    r->cfg->incremental.max_rounds = 3;
    /* The health gate has its own unit tests (test_lifecycle, test_health) and the lab's. */
    r->cfg->health.min_up_s = 0;
    if (W->transfer_retries > 0)
        r->cfg->transfer.retries = W->transfer_retries;
    char kh[160];
    snprintf(kh, sizeof(kh), "%s/known_hosts", r->dir);
    if (access(kh, R_OK) == 0) {
        free(r->cfg->ssh.known_hosts);
        r->cfg->ssh.known_hosts = strdup(kh);
    }
    memset(&r->d, 0, sizeof(r->d));
    r->d.loop = &r->loop;
    r->d.cfg = r->cfg;
    assert_int_equal(mig_store_open(r->db, &r->d.store, err, sizeof(err)), 0);
    /*
     * The campaign kills the process, it never cuts the power: with NORMAL
     * every commit a killed process made survives as with FULL (the WAL is
     * in the OS's cache), without the thousands of fsyncs FULL adds.
     */
    assert_int_equal(mig_store_set_synchronous(r->d.store, 1), 0);
    for (int k = 0; k < SLOTS; k++) {
        assert_int_equal(uv_timer_init(&r->loop, &r->fake.slots[k].timer), 0);
        r->fake.slots[k].timer.data = &r->fake.slots[k];
        r->fake.slots[k].pending = false;
    }
    assert_int_equal(uv_timer_init(&r->loop, &r->guard), 0);
    assert_int_equal(uv_timer_init(&r->loop, &r->poll), 0);
    r->poll.data = r;
    r->fops = (struct ops_fake){fake_run, fake_cancel, &r->fake};
    r->d.fake_ops = &r->fops;
    assert_int_equal(engine_new(&r->d, &r->d.engine), 0);
    r->ended = false;
    r->final_state[0] = '\0';
}

static void rig_close(struct rig *r)
{
    engine_free(r->d.engine);
    r->d.engine = NULL;
    /* Let the executors' closes finish; a pending fake answer is delivered to a closing ops. */
    uv_run(&r->loop, UV_RUN_DEFAULT);
    for (int k = 0; k < SLOTS; k++)
        uv_close((uv_handle_t *)&r->fake.slots[k].timer, NULL);
    uv_close((uv_handle_t *)&r->guard, NULL);
    uv_close((uv_handle_t *)&r->poll, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r->loop), 0);
    mig_store_close(r->d.store);
    mig_config_free(r->cfg);
}

static void on_guard(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Stops the loop once the waiting job has done the incremental rounds the rig wants. */
static void on_poll(uv_timer_t *t)
{
    struct rig *r = t->data;
    json_t *j = engine_job_json(r->d.engine, r->job_uuid);
    const char *st = json_string_value(json_object_get(j, "state"));
    json_int_t inc = json_integer_value(json_object_get(json_object_get(j, "progress"),
                                                        "increments"));
    if (st != NULL && strcmp(st, "waiting") == 0 && inc >= r->want_increments) {
        snprintf(r->final_state, sizeof(r->final_state), "%s", st);
        r->ended = true;
        uv_stop(&r->loop);
    }
    json_decref(j);
}

/* Runs the loop until the watched job stops moving (at most 120 s). */
static void rig_run(struct rig *r, bool acted)
{
    json_t *now = engine_job_json(r->d.engine, r->job_uuid);
    const char *st = json_string_value(json_object_get(now, "state"));
    assert_non_null(st);
    bool moving = strcmp(st, "queued") == 0 || strcmp(st, "running") == 0 ||
                  (strcmp(st, "waiting") == 0 &&
                   (acted || json_is_true(json_object_get(now, "aborting"))));
    if (!moving) {
        /* Not moving: nothing to run (a child may have taken it to its end). */
        snprintf(r->final_state, sizeof(r->final_state), "%s", st);
        json_decref(now);
        return;
    }
    json_decref(now);
    void *w = engine_watch(r->d.engine, r->job_uuid, on_watch, r);
    assert_non_null(w);
    r->ended = false;
    uv_timer_start(&r->guard, on_guard, 120000, 0);
    if (r->want_increments > 0)
        uv_timer_start(&r->poll, on_poll, 2, 2);
    engine_resume(r->d.engine);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&r->guard);
    uv_timer_stop(&r->poll);
    if (!r->ended) {
        engine_unwatch(r->d.engine, w);
        fail_msg("job %s did not stop moving within 120 s", r->job_uuid);
    }
    if (r->want_increments > 0)
        engine_unwatch(r->d.engine, w);
}

/* A job as a submission leaves it: queued, with every fact of the ctx. */
static struct mig_job *new_job(enum mig_mode mode, bool kvm)
{
    struct mig_job *job = mig_job_new();
    snprintf(job->vm_uuid, sizeof(job->vm_uuid), VM);
    job->vm_alias = strdup("web0");
    snprintf(job->brand, sizeof(job->brand), "joyent");
    snprintf(job->source_server_uuid, sizeof(job->source_server_uuid), SRC_UUID);
    snprintf(job->target_server_uuid, sizeof(job->target_server_uuid), DST_UUID);
    job->source_hostname = strdup("cn1");
    job->target_hostname = strdup("cn2");
    job->mode = mode;
    struct mig_job_ctx *c = &job->ctx;
    snprintf(c->source_ip, sizeof(c->source_ip), "10.99.99.11");
    snprintf(c->target_ip, sizeof(c->target_ip), "10.99.99.12");
    snprintf(c->image_uuid, sizeof(c->image_uuid), IMG);
    c->ndatasets = 1;
    snprintf(c->datasets[0].name, sizeof(c->datasets[0].name), "zones/" VM);
    snprintf(c->datasets[0].origin, sizeof(c->datasets[0].origin), "zones/" IMG "@final");
    mig_job_add_image(c, c->datasets[0].origin);
    if (kvm) {
        /* A KVM: its disk beside the zone's dataset, sent in the same rounds. */
        snprintf(job->brand, sizeof(job->brand), "kvm");
        c->ndatasets = 2;
        snprintf(c->datasets[1].name, sizeof(c->datasets[1].name), DISK);
    }
    c->nnics = 2;
    for (int i = 0; i < 2; i++) {
        snprintf(c->nics[i].mac, sizeof(c->nics[i].mac), "%s", MACS[i]);
        snprintf(c->nics[i].ip, sizeof(c->nics[i].ip), "%s", IPS[i]);
        snprintf(c->nics[i].network_uuid, sizeof(c->nics[i].network_uuid), NET);
        c->nics[i].reserved_before = -1;
    }
    return job;
}

/* ---- what must hold once a job has ended ---- */

/* How many CNs hold the VM: attached and not flagged do-not-inventory. */
static int holders(int *which)
{
    int n = 0;
    for (int i = 0; i < 2; i++) {
        if (W->side[i].zone == 2 && !W->side[i].hidden) {
            n++;
            *which = i;
        }
    }
    return n;
}

static int job_snaps(const struct fds *d)
{
    int n = 0;
    for (int i = 0; i < d->nsnap; i++)
        n += strncmp(d->snap[i], "migd-", 5) == 0;
    return n;
}

/* The job's snapshots on a side: the zone's dataset's, which a KVM's disk must match; -1 if not. */
static int job_snaps_of(const struct fside *f)
{
    int n = job_snaps(&f->ds);
    return W->kvm && job_snaps(&f->disk) != n ? -1 : n;
}

/* Checks the invariants for a job that ended with the VM on side `on`. */
static void check_world(int on, bool was_running, const char *label)
{
    int which = -1;
    if (holders(&which) != 1 || which != on)
        fail_msg("%s: %d CNs hold the VM (expected only %s)", label, holders(&which),
                 on ? "the target" : "the source");
    const struct fside *h = &W->side[on], *o = &W->side[1 - on];
    if (h->running != was_running)
        fail_msg("%s: the VM %s on %s", label, h->running ? "runs" : "does not run",
                 on ? "the target" : "the source");
    if (o->running)
        fail_msg("%s: the VM also runs on the other CN", label);
    if (h->ds.data != 7 && h->ds.data != 9)
        fail_msg("%s: the holder's data is %d", label, h->ds.data);
    if (W->kvm && (!h->disk.exists || h->disk.data != 7))
        fail_msg("%s: the holder's disk exists %d, data %d", label, h->disk.exists, h->disk.data);
    const char *server = on ? DST_UUID : SRC_UUID;
    if (strcmp(W->vmapi_server, server) != 0 ||
        strcmp(W->vmapi_state, was_running ? "running" : "stopped") != 0)
        fail_msg("%s: VMAPI says %s on %s", label, W->vmapi_state, W->vmapi_server);
    for (int k = 0; k < 2; k++)
        if (strcmp(W->nic_cn[k], server) != 0)
            fail_msg("%s: NAPI puts NIC %d on %s", label, k, W->nic_cn[k]);
    if (W->reserved[0] != false || W->reserved[1] != true)
        fail_msg("%s: IP reservations are %d,%d, not as before (0,1)", label, W->reserved[0],
                 W->reserved[1]);
    if (on == 0 && (o->zone != 0 || o->ds.exists || o->disk.exists || o->cores))
        fail_msg("%s: the target keeps zone %d, dataset %d, cores %d", label, o->zone,
                 o->ds.exists, o->cores);
    if (W->both_bootable != 0)
        fail_msg("%s: attached with autoboot on both CNs after %d commands, first after `%s`",
                 label, W->both_bootable, W->both_bootable_after);
}

/* ---- scenarios ---- */

enum scenario {
    SC_FULL,
    SC_STOPPED,
    SC_INCREMENTAL,
    SC_AUTO,
    SC_ABORT,
    SC_ROLLBACK,
    SC_CLEANUP,
    SC_CHANGED,
    SC_DIRECT,       /* full, transfer direct */
    SC_DIRECT_ABORT, /* incremental, transfer direct, aborted while waiting */
    SC_HEALTHY,      /* full, through the health gate: passes */
    SC_UNHEALTHY,    /* full, the zone restarts on the target in the gate: rolls back by itself */
    SC_RESUMABLE,    /* full, both CNs resume receives: the first receive and the next (on a base)
                        are cut, then resumed */
    SC_KVM,          /* auto, a KVM: a round sends its zone dataset and its disk at once */
};

static const char *const SC_NAMES[] = {"full",    "stopped",  "incremental", "auto",
                                       "abort",   "rollback", "cleanup",     "changed",
                                       "direct",  "direct-abort", "healthy", "unhealthy",
                                       "resumable", "kvm"};

static bool sc_gate(enum scenario sc)
{
    return sc == SC_HEALTHY || sc == SC_UNHEALTHY;
}

static bool sc_direct(enum scenario sc)
{
    return sc == SC_DIRECT || sc == SC_DIRECT_ABORT;
}

struct fixture {
    struct rig rig;
    char uuid[MIG_UUID_LEN + 1];
};

/* Puts the scenario's world and job in place (before its first run). */
static void scenario_setup(struct fixture *fx, enum scenario sc)
{
    snprintf(fx->rig.dir, sizeof(fx->rig.dir), "/tmp/test_executor.XXXXXX");
    assert_non_null(mkdtemp(fx->rig.dir));
    snprintf(fx->rig.db, sizeof(fx->rig.db), "%s/migd.sqlite", fx->rig.dir);
    world_reset(sc != SC_STOPPED);
    char err[256];
    struct mig_store *st;
    assert_int_equal(mig_store_open(fx->rig.db, &st, err, sizeof(err)), 0);
    struct mig_job *job = new_job(sc == SC_INCREMENTAL || sc == SC_ABORT || sc == SC_CHANGED ||
                                          sc == SC_DIRECT_ABORT
                                      ? MIG_MODE_INCREMENTAL
                                  : sc == SC_AUTO || sc == SC_KVM ? MIG_MODE_AUTO
                                                                  : MIG_MODE_FULL,
                                  sc == SC_KVM);
    if (sc_direct(sc)) {
        snprintf(job->transfer, sizeof(job->transfer), "direct");
        /* The head node's known_hosts holds the target's key (and another host's). */
        char priv[1024], pub[80], path[160];
        assert_int_equal(mig_keygen_ed25519("t", priv, sizeof(priv), pub, sizeof(pub), err,
                                            sizeof(err)),
                         0);
        snprintf(path, sizeof(path), "%s/known_hosts", fx->rig.dir);
        unit_write_file(path, "10.99.99.13 ssh-ed25519 %s\n10.99.99.12 ssh-ed25519 %s\n", pub, pub);
    }
    if (sc_gate(sc))
        mig_health_init(&job->health, 1); /* a window of 1 s: two looks */
    W->side[1].flapping = sc == SC_UNHEALTHY;
    W->resumable = sc == SC_RESUMABLE;
    W->kvm = sc == SC_KVM;
    if (W->kvm) {
        W->side[0].disk.exists = true;
        W->side[0].disk.data = 7;
    }
    if (sc == SC_RESUMABLE) {
        W->cut_receives = 1;     /* the first receive, of a new dataset */
        W->cut_incrementals = 1; /* and the next one, on top of a base */
    }
    snprintf(fx->uuid, sizeof(fx->uuid), "%s", job->uuid);
    assert_int_equal(mig_store_job_save(st, job), 0);
    mig_job_free(job);
    mig_store_close(st);
    fx->rig.job_uuid = fx->uuid;
}

static void cleanup_dir(struct fixture *fx)
{
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->rig.dir);
    assert_int_equal(system(cmd), 0);
}

/* The state the scenario's job has stopped moving in, after one run of the rig. */
static void run_until_still(struct fixture *fx)
{
    rig_open(&fx->rig);
    rig_run(&fx->rig, false);
    rig_close(&fx->rig);
}

/* Lets a waiting incremental job do one more round (or more). */
static void run_a_round(struct fixture *fx)
{
    rig_open(&fx->rig);
    fx->rig.want_increments = 1;
    rig_run(&fx->rig, true);
    fx->rig.want_increments = 0;
    rig_close(&fx->rig);
}

static void act(struct fixture *fx, const char *action)
{
    char msg[512];
    rig_open(&fx->rig);
    int rc = engine_action(fx->rig.d.engine, fx->uuid, action, msg, sizeof(msg));
    if (rc != 0)
        fail_msg("%s: %s", action, msg);
    rig_run(&fx->rig, true);
    rig_close(&fx->rig);
}

/* Drives the scenario from wherever its job is to its end; returns the final state. */
static void drive_to_end(struct fixture *fx, enum scenario sc, char *state, size_t statesz)
{
    for (int guard = 0; guard < 20; guard++) {
        run_until_still(fx);
        const char *st = fx->rig.final_state;
        if (sc == SC_INCREMENTAL && strcmp(st, "waiting") == 0) {
            run_a_round(fx);
            act(fx, "finish");
            st = fx->rig.final_state;
        }
        if (sc == SC_CHANGED && strcmp(st, "waiting") == 0) {
            /* The operator changes the VM after it was staged on the target. */
            W->side[0].cfg = 4000;
            act(fx, "finish");
            st = fx->rig.final_state;
        }
        if ((sc == SC_ABORT || sc == SC_DIRECT_ABORT) && strcmp(st, "waiting") == 0) {
            act(fx, "abort");
            st = fx->rig.final_state;
        }
        if (sc == SC_ROLLBACK && strcmp(st, "switched") == 0) {
            act(fx, "rollback");
            st = fx->rig.final_state;
        }
        if (sc == SC_CLEANUP && strcmp(st, "switched") == 0) {
            act(fx, "cleanup");
            st = fx->rig.final_state;
        }
        bool done = strcmp(st, "succeeded") == 0 || strcmp(st, "failed") == 0 ||
                    strcmp(st, "aborted") == 0 || strcmp(st, "rolled_back") == 0 ||
                    (strcmp(st, "switched") == 0 && sc != SC_ROLLBACK && sc != SC_CLEANUP);
        if (done) {
            snprintf(state, statesz, "%s", st);
            return;
        }
    }
    fail_msg("%s: the job never ended", SC_NAMES[sc]);
}

static void check_outcome(enum scenario sc, const char *state, const char *label)
{
    static const char *const want[] = {"switched", "switched",    "switched",  "switched",
                                       "aborted",  "rolled_back", "succeeded", "switched",
                                       "switched", "aborted",     "switched",  "rolled_back",
                                       "switched", "switched"};
    if (strcmp(state, want[sc]) != 0)
        fail_msg("%s: ended %s, not %s", label, state, want[sc]);
    bool running = sc != SC_STOPPED;
    check_world(sc == SC_ABORT || sc == SC_ROLLBACK || sc == SC_DIRECT_ABORT ||
                        sc == SC_UNHEALTHY
                    ? 0
                    : 1,
                running, label);
    /* No job key is left anywhere, whatever the outcome. */
    if (W->auth_lines != 0 || W->job_dir)
        fail_msg("%s: the job's key is left behind (%d authorized lines, directory %d)", label,
                 W->auth_lines, W->job_dir);
    const struct fside *src = &W->side[0], *dst = &W->side[1];
    if (src->ds.partial || dst->ds.partial || src->disk.partial || dst->disk.partial)
        fail_msg("%s: a partial receive is left (source %d, target %d)", label,
                 src->ds.partial || src->disk.partial, dst->ds.partial || dst->disk.partial);
    /* A KVM's two sends of a round ran at once, each in its own operation. */
    if (sc == SC_KVM && W->peak_in_flight < 2)
        fail_msg("%s: at most %d operation at once", label, W->peak_in_flight);
    /* The cut streams were resumed from their tokens, not sent again from the start. */
    if (sc == SC_RESUMABLE && (W->resumes < 2 || W->cut_receives != 0 || W->cut_incrementals != 0))
        fail_msg("%s: %d streams resumed, %d and %d cuts left", label, W->resumes,
                 W->cut_receives, W->cut_incrementals);
    switch (sc) {
    case SC_CHANGED:
        /* The target runs the configuration the source had at the stop. */
        if (dst->cfg != 4000)
            fail_msg("%s: the target's configuration is %d, the source's was 4000", label,
                     dst->cfg);
        __attribute__((fallthrough));
    case SC_RESUMABLE:
    case SC_KVM:
    case SC_FULL:
    case SC_DIRECT:
    case SC_STOPPED:
    case SC_INCREMENTAL:
    case SC_AUTO:
    case SC_HEALTHY:
        /* Only the final snapshots are left, the source is kept disabled. */
        if (job_snaps_of(src) != 1 || job_snaps_of(dst) != 1)
            fail_msg("%s: %d and %d job snapshots left", label, job_snaps_of(src),
                     job_snaps_of(dst));
        if (src->zone != 2 || src->autoboot || !src->hidden || !dst->cores)
            fail_msg("%s: source zone %d autoboot %d hidden %d, target cores %d", label,
                     src->zone, src->autoboot, src->hidden, dst->cores);
        break;
    case SC_ABORT:
    case SC_DIRECT_ABORT:
    case SC_ROLLBACK:
    case SC_UNHEALTHY:
        if (job_snaps_of(src) != 0)
            fail_msg("%s: %d job snapshots left on the source", label, job_snaps_of(src));
        if (src->autoboot != running)
            fail_msg("%s: source autoboot %d", label, src->autoboot);
        break;
    case SC_CLEANUP:
        if (src->zone != 0 || src->ds.exists || src->disk.exists || src->cores ||
            job_snaps_of(dst) != 0)
            fail_msg("%s: source copy left (zone %d, dataset %d) or %d target snapshots", label,
                     src->zone, src->ds.exists, job_snaps_of(dst));
        break;
    }
}

/* The fixture's database, opened; fails the test when it does not open. */
static struct mig_store *open_store(const struct fixture *fx)
{
    char err[256];
    struct mig_store *st;
    int rc = mig_store_open(fx->rig.db, &st, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s: %s", fx->rig.db, err);
    return st;
}

/* The journal of the job: its keys in order. */
static int journal_keys(struct fixture *fx, char keys[][128], int max)
{
    struct mig_store *st = open_store(fx);
    struct mig_action_rec *recs = NULL;
    size_t n = 0;
    assert_int_equal(mig_store_actions(st, fx->uuid, &recs, &n), 0);
    int k = 0;
    for (size_t i = 0; i < n && k < max; i++)
        snprintf(keys[k++], 128, "%s", recs[i].key);
    free(recs);
    mig_store_close(st);
    return k;
}

static void run_clean(enum scenario sc, struct fixture *fx, char keys[][128], int *nkeys)
{
    char state[16];
    scenario_setup(fx, sc);
    drive_to_end(fx, sc, state, sizeof(state));
    check_outcome(sc, state, SC_NAMES[sc]);
    *nkeys = journal_keys(fx, keys, 200);
    if (sc_direct(sc)) {
        /* The key is forgotten by the job too. */
        struct mig_store *st = open_store(fx);
        struct mig_job *job = NULL;
        assert_int_equal(mig_store_job_load(st, fx->uuid, &job), 0);
        assert_string_equal(job->ctx.direct_pub, "");
        assert_string_equal(job->ctx.direct_key, "");
        assert_string_equal(job->transfer, "direct");
        mig_job_free(job);
        mig_store_close(st);
    }
    cleanup_dir(fx);
}

static void test_clean_runs(void **state)
{
    (void)state;
    static char keys[200][128];
    for (int sc = SC_FULL; sc <= SC_KVM; sc++) {
        struct fixture fx = {0};
        int n = 0;
        run_clean((enum scenario)sc, &fx, keys, &n);
        assert_true(n > 5);
    }
}

/* Kills the job in a child at key:point, then resumes it here to its end. */
static void crash_and_resume(enum scenario sc, const char *spec, int *kills)
{
    struct fixture fx = {0};
    char label[256], state[16];
    scenario_setup(&fx, sc);
    snprintf(label, sizeof(label), "%s killed at %s", SC_NAMES[sc], spec);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mig_log_init("test", MIG_LOG_FATAL, NULL);
        exec_crash_arm(spec);
        drive_to_end(&fx, sc, state, sizeof(state));
        _exit(0); /* the point was not reached in this run */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status))
        fail_msg("%s: the child died with signal %d", label, WTERMSIG(status));
    /* The fakes are deterministic: a point the clean run passed, the child passes too. */
    if (WEXITSTATUS(status) != 99)
        fail_msg("%s: the child exited %d, the point not reached", label, WEXITSTATUS(status));
    (*kills)++;
    exec_crash_arm(NULL);
    drive_to_end(&fx, sc, state, sizeof(state));
    check_outcome(sc, state, label);
    cleanup_dir(&fx);
}

/* The crash points a clean run passes, each once ("KEY:POINT"). */
struct witnessed {
    char spec[400][160];
    int n;
};

static void witness(const char *key, const char *point, void *arg)
{
    struct witnessed *w = arg;
    char spec[160];
    snprintf(spec, sizeof(spec), "%s:%s", key, point);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->spec[i], spec) == 0)
            return;
    assert_true(w->n < 400);
    snprintf(w->spec[w->n++], sizeof(w->spec[0]), "%s", spec);
}

/*
 * Kills the job at every point its clean run passes (a point it never
 * passes, say an undo of a forward run, has nothing to kill), resumes it
 * and checks the outcome.
 */
static void campaign(enum scenario sc)
{
    static char keys[200][128];
    static struct witnessed w;
    struct fixture fx = {0};
    int n = 0, kills = 0;
    w.n = 0;
    exec_crash_witness(witness, &w);
    run_clean(sc, &fx, keys, &n);
    exec_crash_witness(NULL, NULL);
    for (int i = 0; i < w.n; i++)
        crash_and_resume(sc, w.spec[i], &kills);
    /* Every action of the journal was killed at its three forward points at least. */
    if (kills < 3 * n)
        fail_msg("%s: %d kills over %d actions", SC_NAMES[sc], kills, n);
    print_message("%-12s %3d actions, %4d kills, 0 violations\n", SC_NAMES[sc], n, kills);
}

static void test_campaign_full(void **state)
{
    (void)state;
    campaign(SC_FULL);
}

static void test_campaign_stopped(void **state)
{
    (void)state;
    campaign(SC_STOPPED);
}

static void test_campaign_incremental(void **state)
{
    (void)state;
    campaign(SC_INCREMENTAL);
}

static void test_campaign_auto(void **state)
{
    (void)state;
    campaign(SC_AUTO);
}

static void test_campaign_abort(void **state)
{
    (void)state;
    campaign(SC_ABORT);
}

static void test_campaign_rollback(void **state)
{
    (void)state;
    campaign(SC_ROLLBACK);
}

static void test_campaign_cleanup(void **state)
{
    (void)state;
    campaign(SC_CLEANUP);
}

static void test_campaign_config_changed_after_staging(void **state)
{
    (void)state;
    campaign(SC_CHANGED);
}

static void test_campaign_direct(void **state)
{
    (void)state;
    campaign(SC_DIRECT);
}

static void test_campaign_direct_abort(void **state)
{
    (void)state;
    campaign(SC_DIRECT_ABORT);
}

static void test_campaign_healthy(void **state)
{
    (void)state;
    campaign(SC_HEALTHY);
}

static void test_campaign_unhealthy(void **state)
{
    (void)state;
    campaign(SC_UNHEALTHY);
}

static void test_campaign_resumable(void **state)
{
    (void)state;
    campaign(SC_RESUMABLE);
}

static void test_campaign_kvm(void **state)
{
    (void)state;
    campaign(SC_KVM);
}

/*
 * Drives SC_FULL to its end, in a fixture of its own that it then removes,
 * after setting the world's faults: transient_faults, cut_receives and
 * transfer_retries, each left as the scenario sets it when negative.
 * OUT: st (16 bytes), the job's final state.
 */
static void run_full_with_faults(int transient_faults, int cut_receives, int transfer_retries,
                                 char *st)
{
    struct fixture fx = {0};
    scenario_setup(&fx, SC_FULL);
    if (transient_faults >= 0)
        W->transient_faults = transient_faults;
    if (cut_receives >= 0)
        W->cut_receives = cut_receives;
    if (transfer_retries >= 0)
        W->transfer_retries = transfer_retries;
    drive_to_end(&fx, SC_FULL, st, 16);
    cleanup_dir(&fx);
}

/* A transport failure in the middle is retried, not failed. */
static void test_transient_failure_retried(void **state)
{
    (void)state;
    char st[16];
    /* The first op of the prepare phase fails once with a dropped connection. */
    run_full_with_faults(1, -1, -1, st);
    check_outcome(SC_FULL, st, "transient");
}

/* A first receive cut midway leaves the dataset with no snapshot: the retry
 * removes it and sends again, and the job ends as a clean run does. */
static void test_a_cut_first_receive_is_cleared_and_sent_again(void **state)
{
    (void)state;
    char st[16];
    run_full_with_faults(-1, 1, -1, st);
    assert_int_equal(W->cut_receives, 0);
    check_outcome(SC_FULL, st, "a cut first receive");
}

/* When every attempt is cut, the job fails and its undo removes what the cut
 * receives left: nothing of the VM stays on the target. */
static void test_a_failed_first_receive_leaves_nothing(void **state)
{
    (void)state;
    char st[16];
    run_full_with_faults(-1, 1000, 1, st);
    assert_string_equal(st, "failed");
    assert_true(W->cut_receives < 1000);
    check_world(0, true, "every first receive cut");
}

/*
 * A KVM whose zone dataset's first receive is always cut while the disk's
 * operation holding `hold` runs long: the job fails, and its undo removes
 * both datasets from the target.
 */
static void kvm_zone_stream_fails(const char *hold, const char *label)
{
    struct fixture fx = {0};
    char st[16];
    scenario_setup(&fx, SC_KVM);
    W->cut_receives = 1000;
    W->cut_zone_only = true;
    snprintf(W->hold, sizeof(W->hold), "%s", hold);
    W->transfer_retries = 1;
    drive_to_end(&fx, SC_KVM, st, sizeof(st));
    assert_string_equal(st, "failed");
    assert_true(W->peak_in_flight >= 2);
    check_world(0, true, label);
    cleanup_dir(&fx);
}

/* The stream that fails cuts the disk's, running beside it. */
static void test_a_failed_stream_of_a_group_stops_the_other(void **state)
{
    (void)state;
    kvm_zone_stream_fails("zfs receive", "a KVM's first receive cut beside a long one");
    assert_int_equal(W->cancels, 1); /* the disk's stream, cut by its sibling's failure */
}

/*
 * The disk's stream is cut while its action reads the disk's size, before
 * its send: the cut action starts no stream after the cut read (it would
 * ignore a failed size and send the whole disk).
 */
static void test_a_cut_stream_starts_nothing_after_the_cut(void **state)
{
    (void)state;
    kvm_zone_stream_fails("zfs list -H -p -o name,used",
                          "a KVM's first receive cut while its disk's size is read");
    assert_int_equal(W->cancels, 1);
    assert_int_equal(W->disk_relays, 0);
}

/* A stop that fails fails the switch: the VM runs on at the source, shown and bootable. */
static void test_a_failed_stop_rolls_back(void **state)
{
    (void)state;
    struct fixture fx = {0};
    char st[16];
    scenario_setup(&fx, SC_FULL);
    snprintf(W->fail_once, sizeof(W->fail_once), "vmadm stop");
    drive_to_end(&fx, SC_FULL, st, sizeof(st));
    assert_string_equal(W->fail_once, "");
    assert_string_equal(st, "failed");
    check_world(0, true, "a failed stop");
    assert_true(W->side[0].autoboot && !W->side[0].hidden);
    cleanup_dir(&fx);
}

/*
 * A switch that fails after the stop, at each command of its hand-over
 * (the target's start, the source's disable, the target's show), is undone:
 * the VM is back on the source as it was, shown, with its autoboot, and at
 * no moment of the undo were both copies attached with autoboot on
 * (check_world), though vmadm start turned the target's on.
 */
static void test_a_failed_hand_over_rolls_back(void **state)
{
    (void)state;
    static const struct {
        enum scenario sc;
        const char *fails;
    } cases[] = {
        {SC_FULL, "vmadm start"},
        {SC_FULL, "set autoboot=false; add attr"},
        {SC_FULL, "remove attr name=do-not-inventory"},
        {SC_STOPPED, "set autoboot=false; add attr"},
        {SC_STOPPED, "remove attr name=do-not-inventory"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct fixture fx = {0};
        char st[16], label[96];
        bool running = cases[k].sc == SC_FULL;
        snprintf(label, sizeof(label), "%s, `%s` failed", SC_NAMES[cases[k].sc], cases[k].fails);
        scenario_setup(&fx, cases[k].sc);
        snprintf(W->fail_once, sizeof(W->fail_once), "%s", cases[k].fails);
        drive_to_end(&fx, cases[k].sc, st, sizeof(st));
        if (W->fail_once[0] != '\0')
            fail_msg("%s: no command failed", label);
        if (strcmp(st, "failed") != 0)
            fail_msg("%s: ended %s", label, st);
        check_world(0, running, label);
        if (W->side[0].autoboot != running || W->side[0].hidden)
            fail_msg("%s: the source's autoboot %d, hidden %d", label, W->side[0].autoboot,
                     W->side[0].hidden);
        cleanup_dir(&fx);
    }
}

int main(void)
{
    W = mmap(NULL, sizeof(*W), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (W == MAP_FAILED)
        return 1;
    mig_log_init("test_executor", getenv("TEST_LOG") ? MIG_LOG_DEBUG : MIG_LOG_FATAL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_runs),
        cmocka_unit_test(test_transient_failure_retried),
        cmocka_unit_test(test_a_cut_first_receive_is_cleared_and_sent_again),
        cmocka_unit_test(test_a_failed_first_receive_leaves_nothing),
        cmocka_unit_test(test_a_failed_stream_of_a_group_stops_the_other),
        cmocka_unit_test(test_a_cut_stream_starts_nothing_after_the_cut),
        cmocka_unit_test(test_a_failed_stop_rolls_back),
        cmocka_unit_test(test_a_failed_hand_over_rolls_back),
        cmocka_unit_test(test_campaign_full),
        cmocka_unit_test(test_campaign_stopped),
        cmocka_unit_test(test_campaign_incremental),
        cmocka_unit_test(test_campaign_auto),
        cmocka_unit_test(test_campaign_abort),
        cmocka_unit_test(test_campaign_rollback),
        cmocka_unit_test(test_campaign_cleanup),
        cmocka_unit_test(test_campaign_config_changed_after_staging),
        cmocka_unit_test(test_campaign_direct),
        cmocka_unit_test(test_campaign_direct_abort),
        cmocka_unit_test(test_campaign_healthy),
        cmocka_unit_test(test_campaign_unhealthy),
        cmocka_unit_test(test_campaign_resumable),
        cmocka_unit_test(test_campaign_kvm),
    };
    /* TEST_FILTER=test_campaign_rollback runs one test (a pattern, as cmocka takes it). */
    if (getenv("TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
