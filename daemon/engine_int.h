/*
 * engine_int.h: what the files of the job engine share (private to
 * daemon/engine*.c; the rest of migd sees the engine's part of daemon.h).
 * engine.c: a job's run, carrying out what the lifecycle decides, and the
 * engine's own start, tick and end; engine_admit.c: which queued job starts
 * now, within the limits; engine_leftovers.c: the retries of what ended jobs
 * left behind; engine_submit.c: a submission's checks, before a job exists;
 * engine_action.c: the operators' actions; engine_watch.c: watchers and the
 * "job ended" subscribers; engine_query.c: the jobs, counters and metrics
 * as the API shows them.  Functions shared between them are named run_,
 * admit_, leftovers_, submissions_ or watch_ after their concern, grouped
 * below by the file that defines them; the rest are static.
 */
#ifndef MIGD_ENGINE_INT_H
#define MIGD_ENGINE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "daemon.h"
#include "executor.h"
#include "job.h"
#include "log.h"
#include "submit.h"

struct watcher {
    char job_uuid[MIG_UUID_LEN + 1];
    engine_watch_fn fn;
    void *arg;
    bool removed;
    struct watcher *next;
};

/* A job being worked on. */
struct jrun {
    struct engine *e;
    struct mig_job *job; /* owned */
    struct exec *x;
    int64_t round_sent_base; /* progress.bytes_sent when the current plan began */
    int64_t round_started_ms; /* when it began */
    bool sleeping;           /* between sync rounds: the executor's walk ended in a sleep */
    int64_t bytes_counted;   /* progress.bytes_sent already in the metrics */
    int retrying;            /* a job at rest retrying its leftovers: 1 forward ones, 2 undo
                                ones, 0 not (it holds no VM and counts in no limit) */
    bool ending;
    char told[200];          /* the last wait the log was told of: each is logged once */
    bool cut_by_pause;       /* its walk was interrupted by a pause (the first send) */
    struct jrun *next;
};

/* A submission being checked (no job in the store yet). */
struct submission {
    struct engine *e;
    struct mig_job *job; /* owned until saved or refused */
    struct exec *x;
    struct mig_submit sub;
    char transfer_note[200]; /* why a job that asked for direct runs through the relay */
    engine_submit_cb cb;
    void *arg;
    struct submission *next;
};

/* One subscriber of a list of the engine: ended for "job ended"'s, tick for the ticks'. */
struct engine_subscriber {
    engine_ended_fn ended;
    engine_tick_fn tick;
    void *arg;
};

struct engine {
    struct migd *d;
    struct jrun *runs;
    struct submission *submissions;
    struct watcher *watchers;
    int notifying;   /* >0 while watchers are being called */
    uv_timer_t tick; /* periodic scheduling */
    struct metrics *metrics;
    bool closing;
    /*
     * The job rows that cannot be read, found once at start (a row turns bad
     * only by hands outside migd): listed with the first page of GET /jobs
     * without a scan of every record per request.
     */
    struct mig_bad_job *bad;
    size_t nbad;
    struct engine_subscriber ended[ENGINE_MAX_SUBSCRIBERS]; /* who hears that a job's run ended */
    int nended;
    struct engine_subscriber ticks[ENGINE_MAX_SUBSCRIBERS]; /* who looks again on each tick */
    int nticks;
    json_t *held; /* {evacuation uuid: true}: the paused evacuations (engine_hold) */
    bool resumed; /* engine_resume ran: the jobs on record have their runs; scheduling may start */
};

#define jlog(job, level, ...) mig_log(level, (job)->uuid, (job)->vm_uuid, __VA_ARGS__)

/* engine.c */

/* The run of the job (not one ending), or NULL. */
struct jrun *run_find(struct engine *e, const char *job_uuid);
/*
 * A new run of job, linked in e->runs, which owns job from then on; NULL
 * when its executor cannot be made (job stays the caller's).
 */
struct jrun *run_new(struct engine *e, struct mig_job *job);
/* Saves the run's job: 0, or the store's error (logged). */
int run_save(struct jrun *r);
/* Ends a run: the final word to watchers, then frees it and lets the next job start. */
void run_end(struct jrun *r);
/* Walks the plan for the job's phase now. */
void run_plan(struct jrun *r);
/* Starts (or resumes) a job (owned from then on: freed when it cannot start). */
void run_start(struct engine *e, struct mig_job *job);

/* engine_admit.c */

/* Jobs being worked on (not those only retrying leftovers). */
int admit_active(struct engine *e);
/* Starts queued jobs, oldest first, within the limits; those that wait say for what. */
void admit_schedule(struct engine *e);
/* True when job belongs to a paused evacuation: it does not start, and does not switch. */
bool admit_held(const struct engine *e, const struct mig_job *job);

/* engine_leftovers.c */

/* Jobs at rest whose leftovers are due: each retried by a run of its own. */
void leftovers_retry_due(struct engine *e);
/* Runs the next walk of a leftover retry (r->retrying != 0), or ends the run after the last. */
void leftovers_walk(struct jrun *r);

/* engine_submit.c */

/* At shutdown: every submission being checked answers ShuttingDown and is freed. */
void submissions_cancel_all(struct engine *e);

/* engine_watch.c */

/* Tells the job's watchers of its change (the last word when it is final). */
void watch_notify(struct engine *e, const struct mig_job *job);
/* At shutdown: frees every watcher. */
void watch_free_all(struct engine *e);

#endif
