/*
 * lifecycle.h: what a job does next.  One pure function reads the job's
 * durable record (task, phase, rounds, flags) and the outcome of what it
 * last did, and answers with one decision: walk a plan, sleep until the
 * next round, undo (which phases), or end, with the state transition(s),
 * phase or task to take first.  Beside the state x event table of job.c,
 * this table is the whole course of a job; daemon/engine.c only carries
 * its decisions out.  Because a decision depends on the record alone, a
 * restarted daemon decides as the run it replaces did.
 */
#ifndef MIG_LIFECYCLE_H
#define MIG_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include "job.h"

/* What the job last did, as the engine saw it end. */
enum mig_outcome {
    MIG_OUT_START,          /* started or resumed: decide from the record alone */
    MIG_OUT_DONE,           /* its plan walked to its end (a round is on record) */
    MIG_OUT_SLEPT,          /* a sleep between rounds ended, or was cut short */
    MIG_OUT_CANCELED,       /* the walk was interrupted (an abort; a pause of a first send) */
    MIG_OUT_FAILED,         /* an action failed before the point of no return */
    MIG_OUT_FAILED_FORWARD, /* an action failed past it: the VM stays where it runs */
    MIG_OUT_UNDONE,         /* the undo walk ended */
    MIG_OUT_UNDO_STOPPED,   /* the undo walk stopped where going on was unsafe */
    MIG_NOUTCOMES
};

enum mig_do {
    MIG_DO_PLAN,  /* walk the plan of the job's task and phase (after the changes below) */
    MIG_DO_SLEEP, /* sleep sleep_ms, then decide with MIG_OUT_SLEPT */
    MIG_DO_UNDO,  /* walk the journal backwards over undo_mask's phases */
    MIG_DO_END,   /* the run ends: the job rests in its (new) state */
};

/* Why a job sleeps, for its activity line. */
enum mig_wait {
    MIG_WAIT_NONE,
    MIG_WAIT_NEXT_ROUND, /* another round after incremental.interval_s */
    MIG_WAIT_STALLED,    /* the rounds stopped shrinking: waits for finish */
    MIG_WAIT_MAX_ROUNDS, /* incremental.max_rounds reached: waits for finish */
    MIG_WAIT_HEALTH,     /* the health gate: the next look at the VM on the target */
    MIG_WAIT_WINDOW,     /* ready to switch, outside its window: rounds until it opens */
    MIG_WAIT_SWITCH_SLOT, /* ready to switch: another switch holds its CN (switches_per_cn) */
    MIG_WAIT_PAUSED,     /* ready to switch, its evacuation paused: rounds until it resumes */
    MIG_WAIT_JOB_PAUSED, /* migctl pause JOB: no round, no switch until migctl resume */
};

/* How long a job waiting for a switch slot sleeps before it asks again. */
#define MIG_SWITCH_SLOT_RETRY_MS 1000

/*
 * What the engine applies to the job in memory, in this order (error, so
 * that it names the phase it happened in; task, phase, events), saves once, then carries out `what`: one durable write
 * per decision, so a crash leaves the job before or after it, never halfway.
 */
struct mig_next {
    enum mig_do what;
    int task;           /* the task to take (enum mig_task), -1: keep */
    int phase;          /* the phase to enter (enum mig_phase), -1: keep */
    bool clear_error;   /* the job's error goes */
    const char *error_code; /* an error to set (NULL: none) */
    const char *error_message;
    bool error_if_none; /* set it only when the job has no error yet */
    int events[2];      /* transitions to apply in order (enum mig_job_event), -1: none */
    unsigned undo_mask; /* MIG_DO_UNDO: bit 1 << phase */
    uint64_t sleep_ms;  /* MIG_DO_SLEEP */
    enum mig_wait wait; /* MIG_DO_SLEEP: why */
};

/* The settings a decision reads. */
struct mig_lifecycle_cfg {
    int64_t auto_switch_bytes; /* incremental.auto_switch_bytes */
    int64_t max_downtime_ms;   /* incremental.max_downtime_s, in ms */
    int max_rounds;            /* incremental.max_rounds */
    uint64_t interval_ms;      /* incremental.interval_s, in ms */
    uint64_t wait_ms;          /* how long a job that does no more rounds sleeps between looks */
    bool health_report;        /* health.on_failure is "report": a failed gate keeps the switch */
    /*
     * Not a setting but the engine's view at this decision: other jobs'
     * switches into or out of this job's CNs fill limits.switches_per_cn.
     */
    bool switch_slot_taken;
    /*
     * Also the engine's view: the job's evacuation is paused (migctl pause
     * EVAC).  A switch does not start; the rounds go on every interval, as
     * outside a window, so that the final delta stays small.
     */
    bool held;
};

/*
 * The health gate's pause between two passes: a tenth of the window, at
 * least 1 s and at most 60 s, and no later than just past the window's end.
 */
uint64_t mig_verify_interval_ms(const struct mig_job *job, int64_t now);

/*
 * When the job's switch may start, at or after now (ms since the epoch):
 * now without a window, or inside it when the last round's predicted
 * downtime ends before it closes; else the opening of the next window it
 * fits in.  INT64_MAX when the window's zone cannot be read.
 */
int64_t mig_switch_allowed_at(const struct mig_job *job, int64_t now);

/*
 * The decision for job after outcome at now (ms since the epoch).  Pure:
 * reads job, cfg and now only.  A sleep's end is on the record
 * (ctx.wake_ms: the engine sets it to now + sleep_ms with a MIG_DO_SLEEP
 * decision and clears it with any other), so a restart sleeps what is left
 * of it.  An outcome that no row of the table takes (a bug in the caller)
 * ends the run with the job failed, never a guess.
 */
struct mig_next mig_lifecycle_next(const struct mig_job *job, const struct mig_lifecycle_cfg *cfg,
                                   enum mig_outcome outcome, int64_t now);

/* "start", "done", ... for logs and tests. */
const char *mig_outcome_name(enum mig_outcome o);

#endif
