/*
 * daemon.h: the private header of migd, prototypes grouped by the file that
 * defines them.  main.c owns the loop and the long-lived pieces; engine.c
 * and its engine_*.c run jobs through the steps of product.md; control.c
 * serves the REST API.
 */
#ifndef MIGD_DAEMON_H
#define MIGD_DAEMON_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "config.h"
#include "http.h"
#include "job.h"
#include "ssh.h"
#include "store.h"
#include "validate.h"

struct engine;
struct control;
struct ops_fake;

/* The daemon: every long-lived piece, created by main.c. */
struct migd {
    uv_loop_t *loop;
    struct mig_config *cfg;
    struct mig_store *store;
    struct mig_ssh_pool *ssh;
    struct mig_http *http;
    struct engine *engine;
    struct control *control;
    int64_t started_ms;
    const struct ops_fake *fake_ops; /* unit tests: stands in for ssh and http (ops.h); NULL */
    struct evac_run *evac_runs;      /* evacuations and estimates being planned (evacuate.c) */
    struct rolling_run *rolling_runs; /* rolling drains being planned (evac_rolling.c) */
    struct unreserve_run *unreserve_runs; /* evacuations' CNs being given back (evac_unreserve.c) */
    struct homecoming_run *homecoming_runs; /* homecomings being planned (evac_homecoming.c) */
    bool rollbacks_waiting; /* a homecoming's rollback may wait to start (homecoming_rollbacks.c) */
};

/* engine.c and engine_*.c (engine_int.h says which holds what) */

/* Creates the engine; no job moves until engine_resume. */
int engine_new(struct migd *d, struct engine **out);
/*
 * Resumes every job that was running or waiting when the daemon stopped,
 * reports the job rows that cannot be read, and starts scheduling.  Called
 * once the daemon holds its lock and its socket.
 */
void engine_resume(struct engine *e);
/* Stops scheduling; running steps are abandoned (they resume at next start). */
void engine_free(struct engine *e);

/*
 * Result of a submit: err 0 and the job (borrowed, valid during the
 * callback) when created (or, for a dry run, planned); err MIG_EREFUSED with
 * r naming the rule; another negative code with r->message saying why.
 */
typedef void (*engine_submit_cb)(void *arg, int err, const struct mig_refusal *r,
                                 const struct mig_job *job, json_t *plan);

/*
 * Checks a migration as asked (req, borrowed: lib/request.h) and creates its
 * job (a dry run: only its plan).  cb runs exactly once, never before this
 * returns.  Returns 0, or a negative code (cb will not run).
 */
struct mig_request;
int engine_submit(struct engine *e, const struct mig_request *req, engine_submit_cb cb, void *arg);

/*
 * Acts on a job: "finish", "abort", "rollback" or "cleanup".  Returns 0 and
 * a sentence saying what will happen in msg, -ENOENT for an unknown job,
 * -EINVAL with msg saying why the action does not apply in the job's state
 * (or what the job is busy with), or MIG_EDB when the request could not be
 * recorded (nothing changed; msg says so).
 */
int engine_action(struct engine *e, const char *job_uuid, const char *action, char *msg,
                  size_t msgsz);

/* The job's current public JSON (live or from the store); new reference or NULL. */
json_t *engine_job_json(struct engine *e, const char *job_uuid);
/*
 * One page of jobs as a JSON array, oldest first, filtered (state/vm_uuid
 * may be NULL), at most limit (0: all) after skipping offset; unreadable
 * rows are appended to the first page.  New reference, NULL on a database
 * error.
 */
json_t *engine_jobs_json(struct engine *e, const char *state, const char *vm_uuid, bool all,
                         int64_t limit, int64_t offset);
/* {jobs: {state: count}, active, unreadable}, from counters in memory: for /ping. */
json_t *engine_stats_json(struct engine *e);
/* An evacuation changed state (from NULL: new), for the metrics. */
void engine_count_evacuation(struct engine *e, const char *from, const char *to);
/* The Prometheus text of /metrics (malloc'd, *len bytes), from counters in memory. */
char *engine_metrics_text(struct engine *e, size_t *len);

/*
 * Watch a job: fn(arg, job_json, final) runs on every change of the job
 * (state, phase, progress), with final true on the last call (the job ended
 * or is waiting/switched and stopped moving).  Returns a handle for
 * engine_unwatch, or NULL for an unknown job.
 */
typedef void (*engine_watch_fn)(void *arg, json_t *job, bool final);
void *engine_watch(struct engine *e, const char *job_uuid, engine_watch_fn fn, void *arg);
/*
 * True when a watch of the job ends now: it is final or switched, or waits
 * for finish with nothing asked of it (as the events' `final` says).
 */
bool engine_job_at_rest(struct engine *e, const char *job_uuid);
void engine_unwatch(struct engine *e, void *handle);
/*
 * "A job's run ended": fn(arg, job) runs each time a job stops moving (it
 * rests switched or waiting for nothing, or ended), job borrowed for the
 * call.  The evacuator follows its jobs this way; the engine knows none of
 * its subscribers.  At most ENGINE_MAX_SUBSCRIBERS.  0 or -ENOSPC.
 */
#define ENGINE_MAX_SUBSCRIBERS 4
typedef void (*engine_ended_fn)(void *arg, const struct mig_job *job);
int engine_subscribe_ended(struct engine *e, engine_ended_fn fn, void *arg);
/*
 * fn(arg) runs on each of the engine's ticks (every few seconds), once the
 * jobs on record are resumed: for what waits on the clock (a window) rather
 * than on a job.  At most ENGINE_MAX_SUBSCRIBERS.  0 or -ENOSPC.
 */
typedef void (*engine_tick_fn)(void *arg);
int engine_subscribe_tick(struct engine *e, engine_tick_fn fn, void *arg);
/* How many jobs switch now into or out of CN cn (limits.switches_per_cn counts them). */
int engine_switches_on(struct engine *e, const char *cn);
/* How many jobs of evacuation evac_uuid are being worked on (its --max-parallel counts them). */
int engine_evac_runs(struct engine *e, const char *evac_uuid);
/*
 * The rollback of switched job job_uuid as a homecoming's (evac_homecoming.c):
 * the job is re-tagged with the homecoming's uuid and --max-parallel in the
 * same write that starts its return, so the homecoming follows it from then
 * on.  0 with msg; -ENOENT; -EINVAL when the job is not switched at rest;
 * MIG_EDB.
 */
int engine_return_home(struct engine *e, const char *job_uuid, const char *homecoming,
                       int parallel, char *msg, size_t msgsz);
/*
 * Evacuation evac_uuid paused (held) or resumed: while held, its queued
 * jobs do not start and its jobs ready to switch do not (their rounds go
 * on); on release they go on at once.  In memory: the evacuator keeps it
 * on record and tells the engine again at start.
 */
void engine_hold(struct engine *e, const char *evac_uuid, bool held);

/* evacuate.c */

/* An evacuation's answer: err 0 and evac (borrowed), or err with a rule code and a line. */
typedef void (*evac_cb)(void *arg, int err, const char *code, const char *message, json_t *evac);
/* Answers once through cb, then drops out (a new reference, or NULL). */
void evac_answer(evac_cb cb, void *arg, int err, const char *code, const char *msg, json_t *out);
/*
 * Evacuates a CN (POST /evacuations body: server, mode, to[], max_parallel,
 * no_reserve, dry_run, allow_older_platform): plans, reserves the CN,
 * records the evacuation and queues its jobs; run again, queues nothing
 * twice.  cb runs once, from the loop.  0, or -EINVAL with a line in err.
 */
int evac_start(struct migd *d, json_t *body, evac_cb cb, void *arg, char *err, size_t errsz);
/*
 * The estimate of a VM (uuid or alias) or a CN (uuid or hostname): the plan
 * an evacuation would make (state "plan"), with bytes and seconds per VM and
 * the window; nothing is recorded.  GET /estimate.
 */
int estimate_start(struct migd *d, const char *what, evac_cb cb, void *arg, char *err,
                   size_t errsz);
/*
 * migctl doctor (GET /doctor, daemon/doctor.c): visits the set-up CNs (all,
 * or those cns names: an array of uuids or hostnames) and answers cb with
 * {checked, vms, findings, counts, took_ms}.  Read-only, unless fix: then
 * the fixable findings are fixed and the report adds {fixed, left} (and
 * each finding fixed, or left with why).  0, or -EINVAL / -ENOTSUP with err
 * (cb never runs).
 */
int doctor_start(struct migd *d, json_t *cns, bool fix, evac_cb cb, void *arg, char *err,
                 size_t errsz);
/* An evacuation record with its live progress and what needs an operator.  New reference. */
json_t *evac_json(struct migd *d, json_t *record);
/* Every evacuation with its progress.  New reference, NULL on a database error. */
json_t *evac_list_json(struct migd *d);
/* A job of evacuation evac_uuid ended: the evacuation ends with its last job. */
void evac_job_ended(struct migd *d, const char *evac_uuid);
/*
 * At start, before any job moves: follows the engine's jobs as they end, and
 * ends an evacuation whose last job ended while migd was down.
 */
void evac_resume(struct migd *d);
/* At shutdown, before the engine goes: every plan being made answers ShuttingDown. */
void evac_cancel_all(struct migd *d);
/*
 * Records and queues the jobs of an evacuation made elsewhere (a
 * homecoming, evac_homecoming.c): record has uuid, server_uuid, hostname, options (mode,
 * max_parallel, cleanup_after_s, window) and a plan whose entries name
 * vm_uuid and target_uuid.  cb answers as evac_start's.  0.
 */
int evac_queue(struct migd *d, json_t *record, evac_cb cb, void *arg);
/*
 * Checks the options an evacuation gives its jobs (body: mode,
 * cleanup_after_s, window, max_parallel); the window into win.  0, or
 * -EINVAL with a line in err.
 */
int evac_options_check(json_t *body, struct mig_window *win, char *err, size_t errsz);
/* Orders an evacuation's plan (entries with target_uuid, bytes): smallest first, those that stay last. */
void evac_plan_sort(json_t *plan);
/* True when an evacuation record is a homecoming of another's VMs ("kind": "homecoming"). */
bool evac_is_homecoming(json_t *evac);
/* True when an evacuation (its record, or evac_json's view) has not ended: running, paused or queued. */
bool evac_unfinished(json_t *evac);
/* The entries of plan with a target whose VM has no unfinished job: what queuing it would add. */
size_t evac_queueable(struct migd *d, json_t *plan);
/* True while an evacuation of server_uuid is being planned or queued (its run is in flight). */
bool evac_planning(struct migd *d, const char *server_uuid);

/* evac_rolling.c */

/*
 * A rolling drain (POST /evacuations with servers[] and max_cns): every CN
 * is planned with the others avoided, reserved, and recorded as one
 * evacuation each, "queued" but for the first max_cns, which start; when
 * one ends, the next queued CN starts with a fresh plan.  Run again with the
 * same CNs, it queues nothing new and answers the progress.  cb runs once.
 * 0, or -EINVAL with a line in err.
 */
int rolling_start(struct migd *d, json_t *body, evac_cb cb, void *arg, char *err, size_t errsz);
/* The rolling drain uuid with every CN's evacuation and progress, or NULL.  New reference. */
json_t *rolling_json(struct migd *d, const char *uuid);
/* At start, after evac_resume: follows the drains' jobs and starts CNs whose turn came. */
void rolling_resume(struct migd *d);
/* At shutdown, with evac_cancel_all: every drain being planned answers ShuttingDown. */
void rolling_cancel_all(struct migd *d);
/* Starts the CNs of drain uuid whose turn has come (after a resume). */
void rolling_resume_turns(struct migd *d, const char *uuid);

/* cn_reserve.c */

struct cn_reserve;
/* The CNs' reservation was set (err 0), or could not be, at the CN code and message say. */
typedef void (*cn_reserve_cb)(void *arg, int err, const char *code, const char *message);
/*
 * Marks the CNs (uuids, an array of strings) reserved or not in CNAPI, one
 * after the other; cb once done.  The handle is the caller's to free
 * (cn_reserve_free, which also stops it, then without cb); NULL when it
 * could not start, or uuids is empty.
 */
struct cn_reserve *cn_reserve_start(struct migd *d, json_t *uuids, bool reserved, cn_reserve_cb cb,
                                    void *arg);
void cn_reserve_free(struct cn_reserve *r);

/* evac_pause.c */

/*
 * The evacuations uuid names: itself, or every CN's of the drain uuid.  New
 * array; NULL with "no evacuation UUID" in err when none.
 */
json_t *evac_named(struct migd *d, const char *uuid, char *err, size_t errsz);

/*
 * Pauses (pause) or resumes the evacuation uuid, or every CN of the drain
 * uuid: on record, then the engine holds or releases its jobs.  0 and *out
 * the evacuation or drain (new reference); -ENOENT, -EALREADY (it ended)
 * or MIG_EDB with a line in err.
 */
int evac_pause(struct migd *d, const char *uuid, bool pause, json_t **out, char *err,
               size_t errsz);
/* At start, before any job moves: the engine holds the paused evacuations' jobs again. */
void evac_pause_resume(struct migd *d);

/* evac_unreserve.c */

/*
 * migctl evacuate --unreserve EVAC: the CNs of the evacuation uuid (or of
 * every CN of the drain uuid), once it has ended, are marked not reserved in
 * CNAPI and on its record; cb answers with the evacuation or drain.  Returns
 * 0 (cb follows), -ENOENT or -EBUSY (not ended) with a line in err.
 */
int evac_unreserve(struct migd *d, const char *uuid, evac_cb cb, void *arg, char *err,
                   size_t errsz);
/*
 * True (0) when none of the evacuations' CNs is being emptied: each has
 * ended and no unfinished evacuation or drain holds its CN again; else
 * -EBUSY with a line in err.  What --unreserve and --return ask first.
 */
int evac_cns_free(struct migd *d, json_t *evacs, char *err, size_t errsz);
/* The evacuations' records say their CNs are not reserved (CNAPI has it already): 0 or MIG_EDB. */
int evac_mark_unreserved(struct migd *d, json_t *evacs);
/* At shutdown: every unreserve in flight answers ShuttingDown. */
void evac_unreserve_cancel_all(struct migd *d);

/* evac_homecoming.c */

/*
 * migctl evacuate --return EVAC: once the evacuation uuid (or every CN of
 * the drain uuid) has ended and its CNs run again, the VMs it moved that
 * still run where it put them go back to their CNs, as a homecoming record
 * ("kind": "homecoming") with a plan and jobs (body: dry_run, mode,
 * max_parallel, window, cleanup_after_s); its CNs are given back in CNAPI
 * first.  Asked again, the homecoming on record.  0 (cb follows), or -ENOENT,
 * -EBUSY (not ended), -EINVAL with a line in err.
 */
int evac_homecoming(struct migd *d, const char *uuid, json_t *body, evac_cb cb, void *arg, char *err,
                size_t errsz);
/* At shutdown: every homecoming being planned answers ShuttingDown. */
void evac_homecoming_cancel_all(struct migd *d);

/* homecoming_rollbacks.c */

/*
 * Starts the homecomings' rollbacks (switched jobs brought home by their
 * rollback) that may start now: not paused, within --max-parallel, a free
 * switch slot, inside the window.  Runs on every engine tick and job end.
 */
void homecoming_rollbacks_due(struct migd *d);
/* At start: look on every engine tick (the homecomings on record first). */
void homecoming_rollbacks_follow(struct migd *d);

/* control.c */

/*
 * Serves the REST API of product.md on the Unix socket path (mode 0600).
 * Returns 0 or a negative code with a line in err.
 */
int control_start(struct migd *d, const char *socket_path, struct control **out, char *err,
                  size_t errsz);
/* Closes the listener and every connection; on_closed(arg) after all is freed. */
void control_stop(struct control *c, void (*on_closed)(void *arg), void *arg);

#endif
