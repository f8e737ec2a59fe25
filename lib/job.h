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

#include "util.h"

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
    MIG_NEVENTS
};

struct mig_progress {
    int64_t bytes_sent;
    int64_t bytes_total;
    int64_t rate_bytes_s;
    int64_t eta_s; /* -1: unknown */
    int increments;
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
    struct mig_progress progress;
    int vm_was_running; /* -1 unknown, 0, 1 */
    int64_t downtime_ms; /* -1: none yet */
    int64_t created, started, finished; /* ms since epoch; 0: not yet */
    char *error_code;   /* NULL when no error */
    char *error_message;
    enum mig_phase error_phase;
    bool dry_run, allow_older_platform, cleanup_source;
    bool finish_requested; /* incremental: operator asked to finish */
    bool abort_requested;
    /*
     * The engine's durable working state (IP reservations as found, snapshot
     * names, image, quotas, ...): persisted with the job so that a restarted
     * daemon can continue.  Owned by the job; never NULL.
     */
    json_t *ctx;
};

/* Allocates a job with a new uuid, state queued, phase validate, empty ctx. */
struct mig_job *mig_job_new(void);
void mig_job_free(struct mig_job *job);

const char *mig_job_state_name(enum mig_job_state s);
int mig_job_state_parse(const char *s, enum mig_job_state *out);
const char *mig_phase_name(enum mig_phase p);
int mig_phase_parse(const char *s, enum mig_phase *out);
const char *mig_mode_name(enum mig_mode m);
int mig_mode_parse(const char *s, enum mig_mode *out);

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

/* Sets the job's error (copies strings) with the current phase. */
void mig_job_set_error(struct mig_job *job, const char *code, const char *message);

/* The public JSON form of product.md.  New reference. */
json_t *mig_job_to_json(const struct mig_job *job);
/*
 * The full form kept in the store: the public form plus ctx and the flags.
 * mig_job_from_record parses it back.  Returns 0 or MIG_EPARSE.
 */
json_t *mig_job_to_record(const struct mig_job *job);
int mig_job_from_record(json_t *rec, struct mig_job **out);

#endif
