/*
 * job.c: the migration job model (job.h): names of states, phases, modes and
 * tasks, the state transition table, leftovers, and the public JSON form of
 * product.md.  The stored form is job_record.c's, apart on purpose.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "invariant.h"
#include "job.h"
#include "json_value.h"

/*
 * The state machine of a job.  Every change of state goes through this table
 * and nothing else; a (state, event) pair that is not listed is refused.
 * Read it as "in state FROM, event EVENT moves the job to TO".
 */
static const struct {
    enum mig_job_state from;
    enum mig_job_event event;
    enum mig_job_state to;
} transitions[] = {
    /* the normal path */
    {MIG_JOB_QUEUED, MIG_EV_START, MIG_JOB_RUNNING},
    {MIG_JOB_RUNNING, MIG_EV_SYNCED, MIG_JOB_WAITING},     /* incremental: in sync */
    {MIG_JOB_WAITING, MIG_EV_FINISH, MIG_JOB_RUNNING},     /* migctl finish */
    {MIG_JOB_RUNNING, MIG_EV_SWITCHED, MIG_JOB_SWITCHED},  /* on the target, source kept */
    /* the operator's rollback or cleanup of a switched job runs as a job again */
    {MIG_JOB_SWITCHED, MIG_EV_RETURN, MIG_JOB_RUNNING},
    {MIG_JOB_SWITCHED, MIG_EV_REMOVE, MIG_JOB_RUNNING},
    {MIG_JOB_RUNNING, MIG_EV_CLEANED, MIG_JOB_SUCCEEDED},  /* source copy deleted */
    {MIG_JOB_RUNNING, MIG_EV_KEPT, MIG_JOB_SWITCHED},      /* it gave up: still on the target */
    /* a step failed (and its rollback ran) */
    {MIG_JOB_QUEUED, MIG_EV_FAIL, MIG_JOB_FAILED},
    {MIG_JOB_RUNNING, MIG_EV_FAIL, MIG_JOB_FAILED},
    {MIG_JOB_WAITING, MIG_EV_FAIL, MIG_JOB_FAILED},
    {MIG_JOB_SWITCHED, MIG_EV_FAIL, MIG_JOB_FAILED},
    /* migctl abort: only before the switch */
    {MIG_JOB_QUEUED, MIG_EV_ABORT, MIG_JOB_ABORTED},
    {MIG_JOB_RUNNING, MIG_EV_ABORT, MIG_JOB_ABORTED},
    {MIG_JOB_WAITING, MIG_EV_ABORT, MIG_JOB_ABORTED},
    /* migctl rollback: the VM is back on the source */
    {MIG_JOB_RUNNING, MIG_EV_ROLLED_BACK, MIG_JOB_ROLLED_BACK},
    /* daemon restarted: an unfinished job continues where it was */
    {MIG_JOB_QUEUED, MIG_EV_RESUME, MIG_JOB_QUEUED},
    {MIG_JOB_RUNNING, MIG_EV_RESUME, MIG_JOB_RUNNING},
    {MIG_JOB_WAITING, MIG_EV_RESUME, MIG_JOB_WAITING},
    {MIG_JOB_SWITCHED, MIG_EV_RESUME, MIG_JOB_SWITCHED},
};

static const char *const state_names[MIG_JOB_NSTATES] = {
    [MIG_JOB_QUEUED] = "queued",       [MIG_JOB_RUNNING] = "running",
    [MIG_JOB_WAITING] = "waiting",     [MIG_JOB_SWITCHED] = "switched",
    [MIG_JOB_SUCCEEDED] = "succeeded", [MIG_JOB_FAILED] = "failed",
    [MIG_JOB_ABORTED] = "aborted",     [MIG_JOB_ROLLED_BACK] = "rolled_back",
};

static const char *const phase_names[MIG_PHASE_NPHASES] = {
    [MIG_PHASE_VALIDATE] = "validate", [MIG_PHASE_PREPARE] = "prepare", [MIG_PHASE_SYNC] = "sync",
    [MIG_PHASE_SWITCH] = "switch",     [MIG_PHASE_VERIFY] = "verify",
    [MIG_PHASE_CLEANUP] = "cleanup",
    [MIG_PHASE_ROLLBACK] = "rollback",
};

static const char *const task_names[MIG_NTASKS] = {
    [MIG_TASK_MIGRATE] = "migrate",
    [MIG_TASK_RETURN] = "return",
    [MIG_TASK_REMOVE_SOURCE] = "remove_source",
};

static const char *const mode_names[] = {
    [MIG_MODE_FULL] = "full",
    [MIG_MODE_INCREMENTAL] = "incremental",
    [MIG_MODE_AUTO] = "auto",
};
#define NMODES ((int)(sizeof(mode_names) / sizeof(mode_names[0])))

/* Looks s up in a table of n names; the index or -EINVAL. */
static int name_lookup(const char *const *names, int n, const char *s)
{
    if (s == NULL)
        return -EINVAL;
    for (int i = 0; i < n; i++)
        if (names[i] != NULL && strcmp(names[i], s) == 0)
            return i;
    return -EINVAL;
}

/*
 * The name and the parser of each enum the record and the API spell out
 * (job.h): PREFIX_name returns the name, or "unknown" for an out-of-range
 * value; PREFIX_parse puts the value named s into *out and returns 0, or
 * -EINVAL with *out untouched.  Defined here: mig_job_state_name and
 * _parse, mig_phase_name and _parse, mig_mode_name and _parse,
 * mig_task_name and _parse.
 */
#define NAMED_ENUM(prefix, type, names, n)                                                         \
    const char *prefix##_name(type v)                                                              \
    {                                                                                              \
        return ((unsigned)v < (unsigned)(n)) ? names[v] : "unknown";                               \
    }                                                                                              \
    int prefix##_parse(const char *s, type *out)                                                   \
    {                                                                                              \
        int i = name_lookup(names, (n), s);                                                        \
        if (i < 0)                                                                                 \
            return i;                                                                              \
        *out = (type)i;                                                                            \
        return 0;                                                                                  \
    }

NAMED_ENUM(mig_job_state, enum mig_job_state, state_names, MIG_JOB_NSTATES)
NAMED_ENUM(mig_phase, enum mig_phase, phase_names, MIG_PHASE_NPHASES)
NAMED_ENUM(mig_mode, enum mig_mode, mode_names, NMODES)
NAMED_ENUM(mig_task, enum mig_task, task_names, MIG_NTASKS)

/* A final state: the job is over and the table has no row leaving it. */
bool mig_job_state_final(enum mig_job_state s)
{
    return s == MIG_JOB_SUCCEEDED || s == MIG_JOB_FAILED || s == MIG_JOB_ABORTED ||
           s == MIG_JOB_ROLLED_BACK;
}

/* A job holds its VM (blocks a second job for it) until it is final. */
bool mig_job_state_holds_vm(enum mig_job_state s)
{
    return (unsigned)s < MIG_JOB_NSTATES && !mig_job_state_final(s);
}

/* Allocates a queued job with a fresh uuid, created now; caller frees. */
struct mig_job *mig_job_new(void)
{
    struct mig_job *job = mig_calloc(1, sizeof(*job));
    mig_uuid_new(job->uuid);
    job->mode = MIG_MODE_FULL;
    job->state = MIG_JOB_QUEUED;
    job->phase = MIG_PHASE_VALIDATE;
    job->progress.eta_s = -1;
    job->vm_was_running = -1;
    job->downtime_ms = -1;
    job->created = mig_now_ms();
    job->error_phase = MIG_PHASE_VALIDATE;
    job->task = MIG_TASK_MIGRATE;
    snprintf(job->transfer, sizeof(job->transfer), "relay");
    struct mig_job_ctx *c = &job->ctx;
    c->autoboot_before = c->back_was_running = -1;
    c->resumable_source = c->resumable_target = -1;
    c->compressed_source = c->compressed_target = -1;
    c->last_delta = -1;
    c->write_bytes_s = -1;
    c->quota_before = -1;
    c->reservation_before = -1;
    job->daemon_ms = -1;
    job->rollback_downtime_ms = -1;
    mig_health_init(&job->health, 0);
    return job;
}

/* Frees the job, its strings and its ctx reference.  NULL is a no-op. */
void mig_job_free(struct mig_job *job)
{
    if (job == NULL)
        return;
    free(job->vm_alias);
    free(job->source_hostname);
    free(job->target_hostname);
    free(job->error_code);
    free(job->error_message);
    free(job->ctx.zonecfg);
    free(job);
}

/* The state (state, ev) leads to by the table, or -1 when not allowed. */
int mig_job_next_state(enum mig_job_state state, enum mig_job_event ev)
{
    for (size_t i = 0; i < sizeof(transitions) / sizeof(transitions[0]); i++)
        if (transitions[i].from == state && transitions[i].event == ev)
            return (int)transitions[i].to;
    return -1;
}

/*
 * Moves the job by ev.  The first move into running stamps `started`.
 * `finished` is when the job last came to rest: entering switched or a final
 * state stamps it, and a switched job that runs again (a rollback, the
 * removal of the source) is unfinished until it rests again.  So a job's
 * started..finished is the time it held its slot and its CNs.  -EINVAL and
 * no change when not allowed.
 */
int mig_job_apply(struct mig_job *job, enum mig_job_event ev)
{
    int next = mig_job_next_state(job->state, ev);
    if (next < 0)
        return -EINVAL;
    enum mig_job_state before = job->state;
    job->state = (enum mig_job_state)next;
    if (job->state == MIG_JOB_RUNNING && job->started == 0)
        job->started = mig_now_ms();
    if (before == MIG_JOB_SWITCHED && job->state == MIG_JOB_RUNNING)
        job->finished = 0;
    if ((mig_job_state_final(job->state) || job->state == MIG_JOB_SWITCHED) &&
        job->finished == 0)
        job->finished = mig_now_ms();
    return 0;
}

/* Replaces the job's error with copies of code and message, in the current phase. */
bool mig_job_pausable(const struct mig_job *job)
{
    return job->task == MIG_TASK_MIGRATE && !job->abort_requested && !job->undoing &&
           job->phase < MIG_PHASE_SWITCH &&
           (job->state == MIG_JOB_QUEUED || job->state == MIG_JOB_RUNNING ||
            job->state == MIG_JOB_WAITING);
}

void mig_job_set_error(struct mig_job *job, const char *code, const char *message)
{
    char *c = mig_strdup(code);
    char *m = mig_strdup(message);
    free(job->error_code);
    free(job->error_message);
    job->error_code = c;
    job->error_message = m;
    job->error_phase = job->phase;
}

void mig_job_log_round(struct mig_job *job, const struct mig_round *r)
{
    for (int i = 0; i < job->nround_log; i++) {
        if (job->round_log[i].n == r->n) {
            job->round_log[i] = *r;
            return;
        }
    }
    if (job->nround_log == MIG_MAX_ROUND_LOG) {
        memmove(&job->round_log[0], &job->round_log[1],
                (MIG_MAX_ROUND_LOG - 1) * sizeof(job->round_log[0]));
        job->nround_log--;
    }
    job->round_log[job->nround_log++] = *r;
}

/* --- leftovers ----------------------------------------------------------- */

#define LEFTOVER_FIRST_MS (30 * 1000)
#define LEFTOVER_MAX_MS (60 * 60 * 1000)

static struct mig_leftover *leftover_find(struct mig_job *job, const char *key, bool undo)
{
    for (int i = 0; i < job->nleftovers; i++)
        if (job->leftovers[i].undo == undo && strcmp(job->leftovers[i].key, key) == 0)
            return &job->leftovers[i];
    return NULL;
}

int mig_job_leftover_note(struct mig_job *job, const struct mig_leftover *lo, int64_t now)
{
    struct mig_leftover *e = leftover_find(job, lo->key, lo->undo);
    if (e == NULL) {
        if (job->nleftovers == MIG_MAX_LEFTOVERS)
            return -ENOSPC;
        e = &job->leftovers[job->nleftovers++];
        *e = *lo;
        e->since_ms = now;
        e->tries = 0;
    } else {
        /* Its identity stays; what the CN said last and the count move on. */
        snprintf(e->reason, sizeof(e->reason), "%s", lo->reason);
        e->tries++;
    }
    int64_t wait = LEFTOVER_FIRST_MS;
    for (int i = 0; i < e->tries && wait < LEFTOVER_MAX_MS; i++)
        wait *= 2;
    e->next_ms = now + (wait < LEFTOVER_MAX_MS ? wait : LEFTOVER_MAX_MS);
    return 0;
}

bool mig_job_leftover_clear(struct mig_job *job, const char *key, bool undo)
{
    struct mig_leftover *e = leftover_find(job, key, undo);
    if (e == NULL)
        return false;
    size_t at = (size_t)(e - job->leftovers);
    memmove(e, e + 1, (size_t)(job->nleftovers - 1 - (int)at) * sizeof(*e));
    job->nleftovers--;
    return true;
}

int64_t mig_job_leftover_due(const struct mig_job *job)
{
    int64_t due = 0;
    for (int i = 0; i < job->nleftovers; i++)
        if (due == 0 || job->leftovers[i].next_ms < due)
            due = job->leftovers[i].next_ms;
    return due;
}

void mig_job_leftover_retry_now(struct mig_job *job, int64_t now)
{
    for (int i = 0; i < job->nleftovers; i++)
        job->leftovers[i].next_ms = now;
}

bool mig_leftover_blocks(const struct mig_job *job, const struct mig_leftover *lo)
{
    if (strcmp(lo->kind, "dataset") != 0 && strcmp(lo->kind, "zone") != 0)
        return false;
    /* Where the VM lives now: a copy elsewhere is what a new migration there would meet. */
    bool moved = job->state == MIG_JOB_SWITCHED || job->state == MIG_JOB_SUCCEEDED ||
                 (job->state == MIG_JOB_FAILED && job->phase >= MIG_PHASE_CLEANUP);
    const char *home = moved ? job->target_hostname : job->source_hostname;
    return home == NULL || strcmp(lo->cn, home) != 0;
}

void mig_job_clear_error(struct mig_job *job)
{
    free(job->error_code);
    free(job->error_message);
    job->error_code = job->error_message = NULL;
}

enum mig_phase mig_job_shown_phase(const struct mig_job *job)
{
    return job->undoing ? MIG_PHASE_ROLLBACK : job->phase;
}

void mig_job_set_activity(struct mig_job *job, const char *fmt, ...)
{
    if (fmt == NULL) {
        job->ctx.activity[0] = '\0';
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(job->ctx.activity, sizeof(job->ctx.activity), fmt, ap);
    va_end(ap);
}

void mig_job_set_zonecfg(struct mig_job *job, const char *text)
{
    char *copy = text != NULL ? mig_strdup(text) : NULL;
    free(job->ctx.zonecfg);
    job->ctx.zonecfg = copy;
}

/* --- JSON forms ---------------------------------------------------------- */

/* The job's leftovers as the API shows them. */
static json_t *leftovers_json(const struct mig_job *job)
{
    json_t *a = json_array();
    for (int i = 0; i < job->nleftovers; i++) {
        const struct mig_leftover *e = &job->leftovers[i];
        json_array_append_new(
            a, json_pack("{s:s, s:s, s:s, s:s, s:o, s:i, s:o, s:b}", "cn", e->cn, "kind", e->kind,
                         "name", e->name, "reason", e->reason, "since", mig_json_time(e->since_ms),
                         "tries", e->tries, "next_retry", mig_json_time(e->next_ms), "blocks",
                         mig_leftover_blocks(job, e)));
    }
    return a;
}

/*
 * A job at rest moves no more bytes: what it sent is the whole of it once the
 * VM moved, and its rate is its average over its sends (null when none).
 */
static void progress_shown(const struct mig_job *job, struct mig_progress *p)
{
    *p = job->progress;
    bool moved = job->state == MIG_JOB_SWITCHED || job->state == MIG_JOB_SUCCEEDED;
    if (moved)
        p->bytes_total = p->bytes_sent;
    if (!mig_job_state_final(job->state) && job->state != MIG_JOB_SWITCHED)
        return;
    int64_t bytes = 0, ms = 0;
    for (int i = 0; i < job->nround_log; i++) {
        bytes += job->round_log[i].bytes;
        ms += job->round_log[i].duration_ms;
    }
    p->rate_bytes_s = ms > 0 ? bytes * 1000 / ms : -1;
    p->eta_s = -1;
}

/*
 * {opens, closes, tz} as asked (local HH:MM), and the instants of the
 * window that is open now or opens next (next_open, next_close); null
 * without a window.
 */
static json_t *window_json(const struct mig_window *w, int64_t now)
{
    if (!w->set)
        return json_null();
    int64_t o = 0, c = 0;
    bool known = mig_window_at(w, now, &o, &c) == 0;
    char opens[8], closes[8];
    snprintf(opens, sizeof(opens), "%02d:%02d", w->open_min / 60, w->open_min % 60);
    snprintf(closes, sizeof(closes), "%02d:%02d", w->close_min / 60, w->close_min % 60);
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:b}", "opens", opens, "closes", closes, "tz",
                     w->tz, "next_open", known ? mig_json_time(o) : json_null(), "next_close",
                     known ? mig_json_time(c) : json_null(), "open", known && o <= now);
}

/* The rounds on record, oldest first. */
static json_t *rounds_json(const struct mig_job *job)
{
    json_t *rounds = json_array();
    for (int i = 0; i < job->nround_log; i++) {
        const struct mig_round *r = &job->round_log[i];
        json_array_append_new(
            rounds, json_pack("{s:i, s:I, s:I, s:I, s:o}", "n", r->n, "bytes", (json_int_t)r->bytes,
                              "duration_ms", (json_int_t)r->duration_ms, "rate_bytes_s",
                              (json_int_t)r->rate_bytes_s, "predicted_downtime_ms",
                              mig_json_count(r->predicted_downtime_ms)));
    }
    return rounds;
}

/* The switch's window action by action, or null when there was none. */
static json_t *breakdown_json(const struct mig_job *job)
{
    if (job->nbreakdown == 0)
        return json_null();
    json_t *parts = json_array();
    for (int i = 0; i < job->nbreakdown; i++)
        json_array_append_new(parts, json_pack("{s:s, s:I}", "action", job->breakdown[i].action,
                                               "ms", (json_int_t)job->breakdown[i].ms));
    return json_pack("{s:o, s:o}", "actions", parts, "daemon_ms", mig_json_count(job->daemon_ms));
}

/* The members both forms share, first (job.h); the record keeps job->phase. */
void mig_job_json_head(json_t *o, const struct mig_job *job, enum mig_phase phase)
{
    json_object_set_new(o, "uuid", json_string(job->uuid));
    json_object_set_new(o, "vm_uuid", mig_json_field(job->vm_uuid));
    json_object_set_new(o, "vm_alias", mig_json_str(job->vm_alias));
    json_object_set_new(o, "brand", mig_json_field(job->brand));
    json_object_set_new(o, "source_server_uuid", mig_json_field(job->source_server_uuid));
    json_object_set_new(o, "target_server_uuid", mig_json_field(job->target_server_uuid));
    json_object_set_new(o, "source_hostname", mig_json_str(job->source_hostname));
    json_object_set_new(o, "target_hostname", mig_json_str(job->target_hostname));
    json_object_set_new(o, "mode", json_string(mig_mode_name(job->mode)));
    json_object_set_new(o, "state", json_string(mig_job_state_name(job->state)));
    json_object_set_new(o, "phase", json_string(mig_phase_name(phase)));
    json_object_set_new(o, "aborting",
                        json_boolean(job->abort_requested && job->state != MIG_JOB_ABORTED));
    json_object_set_new(o, "activity", mig_json_field(job->ctx.activity));
    json_object_set_new(o, "cleanup_source", json_boolean(job->cleanup_source));
    json_object_set_new(o, "transfer", json_string(job->transfer));
}

/* The members both forms share, later: rounds, downtimes, times, error (job.h). */
void mig_job_json_outcome(json_t *o, const struct mig_job *job, json_t *progress)
{
    json_object_set_new(o, "rounds", rounds_json(job));
    json_object_set_new(o, "downtime_breakdown", breakdown_json(job));
    json_object_set_new(o, "rollback_downtime_ms", mig_json_count(job->rollback_downtime_ms));
    json_object_set_new(o, "progress", progress);
    json_object_set_new(o, "vm_was_running",
                        job->vm_was_running < 0 ? json_null()
                                                : json_boolean(job->vm_was_running != 0));
    json_object_set_new(o, "downtime_ms", mig_json_count(job->downtime_ms));
    json_object_set_new(o, "created", mig_json_time(job->created));
    json_object_set_new(o, "started", mig_json_time(job->started));
    json_object_set_new(o, "finished", mig_json_time(job->finished));
    json_t *error =
        mig_json_error(job->error_code, job->error_message, mig_phase_name(job->error_phase));
    if (error == NULL)
        MIG_DIE("out of memory");
    json_object_set_new(o, "error", error);
}

/* Public JSON of product.md "Job model".  New reference; aborts on OOM. */
json_t *mig_job_to_json(const struct mig_job *job)
{
    struct mig_progress shown;
    progress_shown(job, &shown);
    json_t *progress =
        json_pack("{s:I, s:I, s:o, s:o, s:i}", "bytes_sent", (json_int_t)shown.bytes_sent,
                  "bytes_total", (json_int_t)shown.bytes_total, "rate_bytes_s",
                  mig_json_count(shown.rate_bytes_s),
                  "eta_s",
                  /* An ETA only while bytes move: none once done, or unknown. */
                  job->progress.eta_s >= 0 && job->state == MIG_JOB_RUNNING
                      ? json_integer(job->progress.eta_s)
                      : json_null(),
                  "increments", job->progress.increments);
    json_t *o = json_object();
    if (progress == NULL || o == NULL)
        MIG_DIE("out of memory");

    mig_job_json_head(o, job, mig_job_shown_phase(job));
    /* zfs send -c: null until prepare asked both CNs, then the same for every round. */
    json_object_set_new(o, "send_compressed",
                        job->ctx.compressed_source < 0 || job->ctx.compressed_target < 0
                            ? json_null()
                            : json_boolean(mig_job_compressed(job)));
    json_object_set_new(o, "limit_mbps", json_integer(job->limit_mbps));
    json_object_set_new(o, "evacuation", mig_json_field(job->evacuation));
    /* migctl pause JOB: only while it could still go on (an ended job is not paused). */
    json_object_set_new(o, "paused", json_boolean(job->paused && mig_job_pausable(job)));
    mig_job_json_outcome(o, job, progress);
    json_object_set_new(o, "leftovers", leftovers_json(job));
    json_object_set_new(o, "health", mig_health_to_json(&job->health));
    json_object_set_new(o, "cleanup_at", mig_json_time(job->cleanup_at));
    json_object_set_new(o, "window", window_json(&job->window, mig_now_ms()));
    return o;
}

/* --- the images of the ctx ------------------------------------------------ */

/* The IMAGE of "POOL/IMAGE@final", into out; false for any other origin. */
static bool origin_image(const char *origin, char out[MIG_UUID_LEN + 1])
{
    const char *at = strchr(origin, '@'), *slash = strrchr(origin, '/');
    if (at == NULL || slash == NULL || slash > at || strcmp(at, "@final") != 0 ||
        at - slash - 1 != MIG_UUID_LEN)
        return false;
    memcpy(out, slash + 1, MIG_UUID_LEN);
    out[MIG_UUID_LEN] = '\0';
    return mig_uuid_valid(out);
}

int mig_job_add_image(struct mig_job_ctx *c, const char *origin)
{
    char uuid[MIG_UUID_LEN + 1];
    if (!origin_image(origin, uuid))
        return -1;
    for (int i = 0; i < c->nimages; i++)
        if (strcmp(c->images[i].uuid, uuid) == 0)
            return i;
    if (c->nimages == MIG_MAX_IMAGES)
        return -2;
    struct mig_image *m = &c->images[c->nimages];
    snprintf(m->uuid, sizeof(m->uuid), "%s", uuid);
    m->on_target = -1;
    return c->nimages++;
}

bool mig_job_origin_on_target(const struct mig_job_ctx *c, const char *origin)
{
    char uuid[MIG_UUID_LEN + 1];
    if (!origin_image(origin, uuid))
        return false;
    for (int i = 0; i < c->nimages; i++)
        if (strcmp(c->images[i].uuid, uuid) == 0)
            return c->images[i].on_target == 1;
    return false;
}

bool mig_job_compressed(const struct mig_job *job)
{
    return job->ctx.compressed_source == 1 && job->ctx.compressed_target == 1;
}
