/*
 * job.h: the migration job model of product.md: states, phases, modes, the
 * public JSON form, and the state transition table that every change of a
 * job's state goes through.  Pure data and logic, no I/O.
 */
#ifndef MIG_JOB_H
#define MIG_JOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "health.h"
#include "util.h"
#include "window.h"

enum mig_job_state {
    MIG_JOB_QUEUED,
    MIG_JOB_RUNNING,
    MIG_JOB_WAITING,  /* incremental: synced, ready for finish */
    MIG_JOB_SWITCHED, /* running on the target, source kept */
    MIG_JOB_SUCCEEDED,
    MIG_JOB_FAILED,
    MIG_JOB_ABORTED,
    MIG_JOB_ROLLED_BACK,
    MIG_JOB_NSTATES
};

enum mig_phase {
    MIG_PHASE_VALIDATE,
    MIG_PHASE_PREPARE,
    MIG_PHASE_SYNC,
    MIG_PHASE_SWITCH,
    MIG_PHASE_CLEANUP,
    MIG_PHASE_VERIFY,   /* the health gate after the cleanup: the VM runs on the target, watched
                           (records store phase names, so the order may change) */
    MIG_PHASE_ROLLBACK, /* undoing a task, or the operator's rollback of a switched job */
    MIG_PHASE_NPHASES
};

enum mig_mode { MIG_MODE_FULL, MIG_MODE_INCREMENTAL, MIG_MODE_AUTO };

/* What happens to a job; the transition table maps (state, event) to a state. */
enum mig_job_event {
    MIG_EV_START,       /* the scheduler picks a queued job */
    MIG_EV_SYNCED,      /* incremental job is in sync and waits for finish */
    MIG_EV_FINISH,      /* operator: migctl finish */
    MIG_EV_SWITCHED,    /* switch and cleanup done, source kept */
    MIG_EV_CLEANED,     /* source copy deleted */
    MIG_EV_FAIL,        /* a step failed (after its rollback) */
    MIG_EV_ABORT,       /* operator: migctl abort, rollback done */
    MIG_EV_ROLLED_BACK, /* operator: migctl rollback done */
    MIG_EV_RESUME,      /* daemon restarted: a running job goes on */
    MIG_EV_RETURN,      /* operator: migctl rollback of a switched job begins */
    MIG_EV_REMOVE,      /* operator: migctl cleanup of a switched job begins */
    MIG_EV_KEPT,        /* that rollback or cleanup gave up: the VM stays on the target */
    MIG_NEVENTS
};

struct mig_progress {
    int64_t bytes_sent;
    int64_t bytes_total;
    int64_t rate_bytes_s;
    int64_t eta_s; /* -1: unknown */
    int increments;
};

/*
 * What a running job is doing: a migration (prepare .. cleanup), the
 * operator's rollback of a switched job (phase "rollback"), or the
 * operator's cleanup of a switched job's source copy (phase "cleanup").
 */
enum mig_task { MIG_TASK_MIGRATE, MIG_TASK_RETURN, MIG_TASK_REMOVE_SOURCE, MIG_NTASKS };

#define MIG_MAX_DATASETS 8 /* top-level datasets a VM may have: zones/UUID, KVM disks */
#define MIG_MAX_IMAGES 8   /* images the VM's datasets may be cloned from */
#define MIG_MAX_NICS 16
#define MIG_DATASET_LEN 256
#define MIG_IP_LEN 64

/* One top-level dataset the job sends, and the image snapshot it was cloned from. */
struct mig_dataset {
    char name[MIG_DATASET_LEN];   /* "zones/UUID", "zones/UUID-disk0" */
    char origin[MIG_DATASET_LEN]; /* "zones/IMAGE@final", or "" when not a clone */
    int64_t used;                 /* bytes, from zfs list at validation */
    /*
     * In memory only (never in the record, so a restart asks again): the
     * base ("migd-JOB-N") of the send of round final_base_round (the
     * switch's final one, or a return's last one back), found before the
     * stop (act_find_base); "" when not found or used already.
     */
    char final_base[128];
    int final_base_round;
};

/*
 * An image that a dataset of the VM is a clone of (its origin is
 * POOL/IMAGE@final): the VM's own, and for bhyve and KVM each disk's, which
 * may differ.  Imported on the target before the first send: a replication
 * stream (`send -R`) carries a clone as an incremental from its origin, so
 * the receive needs it.
 */
struct mig_image {
    char uuid[MIG_UUID_LEN + 1];
    int on_target; /* -1 not known yet, 1 there */
};

/* One NIC of the VM, as VMAPI described it at validation. */
struct mig_nic {
    char mac[24];                     /* "90:b8:d0:01:02:00" */
    char ip[MIG_IP_LEN];              /* "" when the NIC has no IP */
    char network_uuid[MIG_UUID_LEN + 1];
    int reserved_before;              /* NAPI's reserved flag before the job: -1 unknown, 0, 1 */
};

/*
 * The job's durable working state: facts learnt at validation and the
 * results of the actions taken so far.  Saved with every journal entry, so
 * an action's result is committed together with its "done" (store.h).
 * Integers use -1 for "not known yet".
 */
struct mig_job_ctx {
    char source_ip[MIG_IP_LEN]; /* admin IPs from CNAPI */
    char target_ip[MIG_IP_LEN];
    char image_uuid[MIG_UUID_LEN + 1]; /* the VM's origin image, "" when none */
    int ndatasets;
    struct mig_dataset datasets[MIG_MAX_DATASETS];
    int nnics;
    struct mig_nic nics[MIG_MAX_NICS];
    int nimages;          /* the images the VM's datasets (bhyve disks too) are clones of */
    struct mig_image images[MIG_MAX_IMAGES];
    int autoboot_before;  /* the source zone's autoboot when the job began */
    int resumable_source; /* the CN supports resumable streams (send -t / receive -s) */
    int resumable_target;
    /* the CN's zfs knows compressed sends (send -c); -1 before prepare asked (act_features) */
    int compressed_source;
    int compressed_target;
    /* In memory only: the CNs' ssh refused MIG_DIRECT_CIPHERS once; ssh chooses from then on. */
    int direct_plain_cipher;
    char *zonecfg;        /* the source's zonecfg export, taken at the switch; NULL before */
    int rounds;           /* snapshot rounds sent before the switch (1, 2, ...) */
    int64_t last_delta;   /* bytes of the last incremental round; -1 before one */
    int64_t stop_ms;      /* when the switch stopped the VM (ms since the epoch), 0: not yet */
    int back_was_running; /* rollback of a switched job: the VM ran on the target */
    int64_t back_stop_ms; /* when that rollback stopped it, 0: not yet */
    int config_changed;   /* the source's zone changed since it was staged on the target */
    int stalled;          /* the rounds stopped shrinking: no more rounds until finish */
    int64_t snap_ms;      /* when the last round's snapshot was taken (write rate) */
    int64_t write_bytes_s; /* the VM's write rate as the last round measured it, -1 */
    int64_t wake_ms;      /* a job sleeping between rounds wakes then (ms since the epoch);
                             0: not sleeping (a round runs, or none is due) */
    /*
     * bhyve: the top dataset's quota and reservation when the job began (-1:
     * not read), put back when the job's snapshots are gone (act_quota.c).
     */
    int64_t quota_before;
    int64_t reservation_before;
    char target_request[256]; /* the target as the operator named it ("" to place) */
    /*
     * Direct transfer: the job's own ed25519 key pair (made in prepare,
     * placed on both CNs, wiped when the job's key is removed).  The record
     * holding it is the 0600 database's, never shown by the API.
     */
    char direct_key[512];  /* the private key file's text, "" when none */
    char direct_pub[72];   /* the public key's base64, "" when none */
    char activity[256];   /* what the job does or waits for now, for watchers; "" when idle */
};

#define MIG_MAX_ROUND_LOG 64 /* the most recent rounds kept on record */
#define MIG_MAX_BREAKDOWN 24

/* One send of the job (product.md "rounds"): the first, each increment, the final one. */
struct mig_round {
    int n;                          /* 1, 2, ...; the final send is rounds + 1 */
    int64_t bytes;
    int64_t duration_ms;
    int64_t rate_bytes_s;
    int64_t predicted_downtime_ms;  /* what a switch now would cost, -1: unknown */
};

/*
 * What a job could not remove (a snapshot a backup tool holds, a dataset a
 * CN calls busy, an IP NAPI would not release) once the VM's place was
 * settled: never the job's outcome, but work left to retry.  It is retried
 * by running the action named by key again (its undo when undo is set),
 * with a backoff of up to an hour, across restarts, and at once by
 * `migctl cleanup JOB`.
 */
#define MIG_MAX_LEFTOVERS 16
struct mig_leftover {
    char key[128];     /* the journal key of the action whose work is left */
    bool undo;         /* left by that action's undo */
    char cn[64];       /* the CN's hostname, or "api" / "head node" */
    char kind[24];     /* snapshot, dataset, zone, authorized_key, key_dir, key, ip, quota */
    char name[256];    /* what exactly: "zones/UUID@migd-JOB-1" */
    char reason[256];  /* the last answer that refused it */
    int64_t since_ms;  /* when it was first left */
    int64_t next_ms;   /* the next automatic retry */
    int tries;         /* retries so far */
};

/* One action of the switch's downtime window and how long it took. */
struct mig_part {
    char action[64];
    int64_t ms;
};

struct mig_job {
    char uuid[MIG_UUID_LEN + 1];
    char vm_uuid[MIG_UUID_LEN + 1];
    char *vm_alias;
    char brand[32];
    char source_server_uuid[MIG_UUID_LEN + 1];
    char target_server_uuid[MIG_UUID_LEN + 1];
    char *source_hostname;
    char *target_hostname;
    enum mig_mode mode;
    enum mig_job_state state;
    enum mig_phase phase;
    enum mig_task task;
    struct mig_progress progress;
    int vm_was_running; /* -1 unknown, 0, 1 */
    int64_t downtime_ms; /* -1: none yet */
    int64_t created, started, finished; /* ms since epoch; 0: not yet */
    char *error_code;   /* NULL when no error */
    char *error_message;
    enum mig_phase error_phase;
    bool dry_run, allow_older_platform, cleanup_source;
    char transfer[8]; /* "relay" or "direct", as asked (config or migctl) */
    char evacuation[MIG_UUID_LEN + 1]; /* the evacuation that queued it, "" when none */
    int evac_parallel; /* that evacuation's --max-parallel, 0 when none */
    int limit_mbps;   /* the job's stream cap in Mbit/s, 0: none */
    /*
     * The cleanup timer: once switched with its health gate passed, the
     * source copy is deleted cleanup_after_s later (--cleanup-after, else
     * cleanup.after_s; 0: only by hand).  cleanup_at is when (ms since the
     * epoch), 0 when no timer runs (none asked, canceled, or used).
     */
    int64_t cleanup_after_s;
    int64_t cleanup_at;
    struct mig_window window; /* --window: its switch starts only inside it */
    bool finish_requested; /* incremental: operator asked to finish */
    bool abort_requested;  /* operator asked to abort: shown as "aborting" until aborted */
    /*
     * migctl pause JOB: it starts no round and no switch until resumed (a
     * queued job does not start; a first send in flight is cut and later
     * goes on from what the target holds).
     */
    bool paused;
    bool undoing;          /* walking the journal backwards (a rollback of the task) */
    int nround_log;
    struct mig_round round_log[MIG_MAX_ROUND_LOG];
    int nbreakdown;        /* the switch's window, action by action */
    struct mig_part breakdown[MIG_MAX_BREAKDOWN];
    int64_t daemon_ms;     /* the downtime less the remote commands' own time, -1: none */
    int64_t rollback_downtime_ms; /* a rollback's own downtime, -1: none */
    int nleftovers;
    struct mig_leftover leftovers[MIG_MAX_LEFTOVERS];
    struct mig_health health;
    struct mig_job_ctx ctx; /* owned by the job */
};

/* Appends (or replaces, same n) a round on record, dropping the oldest when full. */
void mig_job_log_round(struct mig_job *job, const struct mig_round *r);

/*
 * Notes (or updates, same key and undo) a leftover of the job at now; the
 * next automatic retry is set from its tries (30 s doubling, at most an
 * hour).  A full table keeps the oldest entries and drops the new one
 * (returns -ENOSPC; the journal still shows the action failed).
 */
int mig_job_leftover_note(struct mig_job *job, const struct mig_leftover *lo, int64_t now);
/* Drops the leftover of key (and undo), if any.  True when there was one. */
bool mig_job_leftover_clear(struct mig_job *job, const char *key, bool undo);
/* The earliest next retry of the job's leftovers, 0 when it has none. */
int64_t mig_job_leftover_due(const struct mig_job *job);
/* Makes every leftover due at now (the operator asked for a retry). */
void mig_job_leftover_retry_now(struct mig_job *job, int64_t now);
/*
 * Whether a leftover of this kind, left by job, stands in the way of a new
 * migration of the VM (a dataset or zone left on a CN where the VM is not):
 * the others are harmless (a snapshot, a key line, an IP still reserved).
 */
bool mig_leftover_blocks(const struct mig_job *job, const struct mig_leftover *lo);

/* Allocates a job with a new uuid, state queued, phase validate, empty ctx. */
struct mig_job *mig_job_new(void);
void mig_job_free(struct mig_job *job);

const char *mig_job_state_name(enum mig_job_state s);
int mig_job_state_parse(const char *s, enum mig_job_state *out);
const char *mig_phase_name(enum mig_phase p);
int mig_phase_parse(const char *s, enum mig_phase *out);
const char *mig_mode_name(enum mig_mode m);
int mig_mode_parse(const char *s, enum mig_mode *out);
const char *mig_task_name(enum mig_task t);
int mig_task_parse(const char *s, enum mig_task *out);

/* True for succeeded, failed, aborted, rolled_back: the job is over. */
bool mig_job_state_final(enum mig_job_state s);
/* True when a job in state s still holds its VM (blocks a second job). */
bool mig_job_state_holds_vm(enum mig_job_state s);

/*
 * Applies ev to job->state through the transition table.  Returns 0 and
 * updates job->state (and started/finished times), or -EINVAL when the table
 * has no such transition (the job is unchanged).
 */
int mig_job_apply(struct mig_job *job, enum mig_job_event ev);
/* The state (state, ev) leads to, or -1 when not allowed. */
int mig_job_next_state(enum mig_job_state state, enum mig_job_event ev);

/*
 * True when migctl pause may hold the job: a migration that has not begun
 * its switch, is not aborting and has not ended.
 */
bool mig_job_pausable(const struct mig_job *job);

/* Sets the job's error (copies strings) with the current phase. */
void mig_job_set_error(struct mig_job *job, const char *code, const char *message);
/* Clears the job's error. */
void mig_job_clear_error(struct mig_job *job);

/* The phase a job shows: "rollback" while undoing, else job->phase. */
enum mig_phase mig_job_shown_phase(const struct mig_job *job);
/* Sets ctx.activity (printf-style; NULL fmt clears it). */
void mig_job_set_activity(struct mig_job *job, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Replaces ctx.zonecfg with a copy of text (NULL clears). */
void mig_job_set_zonecfg(struct mig_job *job, const char *text);

/*
 * Notes the image that origin ("POOL/IMAGE@final") is a snapshot of, once.
 * Returns its index, -1 when origin is no image's @final (a clone of
 * something else), -2 when the table is full.
 */
int mig_job_add_image(struct mig_job_ctx *ctx, const char *origin);
/* True when origin is the @final of an image already on the target. */
bool mig_job_origin_on_target(const struct mig_job_ctx *ctx, const char *origin);

/*
 * The public JSON form of product.md.  New reference.  The stored form is
 * mig_job_to_record (job_record.h).
 */
json_t *mig_job_to_json(const struct mig_job *job);

/*
 * What the public form and the record (job_record.c) write alike, in the
 * order both always wrote it, on o (members set, nothing returned; aborts
 * on OOM).  mig_job_json_head: "uuid" to "state", then "phase" as given
 * (the API shows one the record does not keep), then "aborting",
 * "activity", "cleanup_source", "transfer".  mig_job_json_outcome:
 * "rounds", "downtime_breakdown", "rollback_downtime_ms", "progress" (the
 * caller's, stolen), "vm_was_running", "downtime_ms", "created",
 * "started", "finished", "error".
 */
void mig_job_json_head(json_t *o, const struct mig_job *job, enum mig_phase phase);
void mig_job_json_outcome(json_t *o, const struct mig_job *job, json_t *progress);

/*
 * Whether the job's sends are compressed (zfs send -c): both CNs' zfs
 * support it, as prepare found; decided once, so every round sends alike.
 */
bool mig_job_compressed(const struct mig_job *job);

#endif
