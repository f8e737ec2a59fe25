/*
 * job.c: the migration job model (job.h): names of states, phases and modes,
 * the state transition table, and the two JSON forms of a job (the public one
 * of product.md and the full record the store keeps).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "job.h"

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
    [MIG_PHASE_SWITCH] = "switch",     [MIG_PHASE_CLEANUP] = "cleanup",
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

/* Returns the job's state name, or "unknown" for an out-of-range value. */
const char *mig_job_state_name(enum mig_job_state s)
{
    return ((unsigned)s < MIG_JOB_NSTATES) ? state_names[s] : "unknown";
}

/* Parses a state name into *out; 0 or -EINVAL (*out untouched). */
int mig_job_state_parse(const char *s, enum mig_job_state *out)
{
    int i = name_lookup(state_names, MIG_JOB_NSTATES, s);
    if (i < 0)
        return i;
    *out = (enum mig_job_state)i;
    return 0;
}

/* Returns the phase name, or "unknown" for an out-of-range value. */
const char *mig_phase_name(enum mig_phase p)
{
    return ((unsigned)p < MIG_PHASE_NPHASES) ? phase_names[p] : "unknown";
}

/* Parses a phase name into *out; 0 or -EINVAL (*out untouched). */
int mig_phase_parse(const char *s, enum mig_phase *out)
{
    int i = name_lookup(phase_names, MIG_PHASE_NPHASES, s);
    if (i < 0)
        return i;
    *out = (enum mig_phase)i;
    return 0;
}

/* Returns the mode name, or "unknown" for an out-of-range value. */
const char *mig_mode_name(enum mig_mode m)
{
    return ((unsigned)m < (unsigned)NMODES) ? mode_names[m] : "unknown";
}

/* Parses a mode name into *out; 0 or -EINVAL (*out untouched). */
int mig_mode_parse(const char *s, enum mig_mode *out)
{
    int i = name_lookup(mode_names, NMODES, s);
    if (i < 0)
        return i;
    *out = (enum mig_mode)i;
    return 0;
}

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
    c->last_delta = -1;
    c->write_bytes_s = -1;
    c->quota_before = -1;
    c->reservation_before = -1;
    job->daemon_ms = -1;
    job->rollback_downtime_ms = -1;
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

/* A string, or JSON null for NULL. */
static json_t *str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* A fixed-size field: JSON null when empty (not yet known). */
static json_t *field_or_null(const char *s)
{
    return s[0] != '\0' ? json_string(s) : json_null();
}

/* An ISO 8601 time, or null when ms is 0 (not yet). */
static json_t *time_or_null(int64_t ms)
{
    if (ms == 0)
        return json_null();
    char buf[32];
    mig_time_iso(ms, buf);
    return json_string(buf);
}

/* Public JSON of product.md "Job model".  New reference; aborts on OOM. */
json_t *mig_job_to_json(const struct mig_job *job)
{
    json_t *progress =
        json_pack("{s:I, s:I, s:I, s:o, s:i}", "bytes_sent", (json_int_t)job->progress.bytes_sent,
                  "bytes_total", (json_int_t)job->progress.bytes_total, "rate_bytes_s",
                  (json_int_t)job->progress.rate_bytes_s, "eta_s",
                  /* An ETA only while bytes move: none once done, or unknown. */
                  job->progress.eta_s >= 0 && job->state == MIG_JOB_RUNNING
                      ? json_integer(job->progress.eta_s)
                      : json_null(),
                  "increments", job->progress.increments);
    json_t *error = json_null();
    if (job->error_code != NULL)
        error =
            json_pack("{s:s, s:o, s:s}", "code", job->error_code, "message",
                      str_or_null(job->error_message), "phase", mig_phase_name(job->error_phase));
    json_t *o = json_object();
    if (progress == NULL || error == NULL || o == NULL)
        abort();

    json_object_set_new(o, "uuid", json_string(job->uuid));
    json_object_set_new(o, "vm_uuid", field_or_null(job->vm_uuid));
    json_object_set_new(o, "vm_alias", str_or_null(job->vm_alias));
    json_object_set_new(o, "brand", field_or_null(job->brand));
    json_object_set_new(o, "source_server_uuid", field_or_null(job->source_server_uuid));
    json_object_set_new(o, "target_server_uuid", field_or_null(job->target_server_uuid));
    json_object_set_new(o, "source_hostname", str_or_null(job->source_hostname));
    json_object_set_new(o, "target_hostname", str_or_null(job->target_hostname));
    json_object_set_new(o, "mode", json_string(mig_mode_name(job->mode)));
    json_object_set_new(o, "state", json_string(mig_job_state_name(job->state)));
    json_object_set_new(o, "phase", json_string(mig_phase_name(mig_job_shown_phase(job))));
    json_object_set_new(o, "aborting",
                        json_boolean(job->abort_requested && job->state != MIG_JOB_ABORTED));
    json_object_set_new(o, "activity", field_or_null(job->ctx.activity));
    json_object_set_new(o, "cleanup_source", json_boolean(job->cleanup_source));
    json_object_set_new(o, "transfer", json_string(job->transfer));
    json_object_set_new(o, "limit_mbps", json_integer(job->limit_mbps));
    json_object_set_new(o, "evacuation", field_or_null(job->evacuation));
    json_t *rounds = json_array();
    for (int i = 0; i < job->nround_log; i++) {
        const struct mig_round *r = &job->round_log[i];
        json_array_append_new(
            rounds, json_pack("{s:i, s:I, s:I, s:I, s:o}", "n", r->n, "bytes", (json_int_t)r->bytes,
                              "duration_ms", (json_int_t)r->duration_ms, "rate_bytes_s",
                              (json_int_t)r->rate_bytes_s, "predicted_downtime_ms",
                              r->predicted_downtime_ms >= 0
                                  ? json_integer(r->predicted_downtime_ms)
                                  : json_null()));
    }
    json_object_set_new(o, "rounds", rounds);
    json_t *breakdown = json_null();
    if (job->nbreakdown > 0) {
        json_t *parts = json_array();
        for (int i = 0; i < job->nbreakdown; i++)
            json_array_append_new(parts, json_pack("{s:s, s:I}", "action", job->breakdown[i].action,
                                                   "ms", (json_int_t)job->breakdown[i].ms));
        breakdown = json_pack("{s:o, s:o}", "actions", parts, "daemon_ms",
                              job->daemon_ms >= 0 ? json_integer(job->daemon_ms) : json_null());
    }
    json_object_set_new(o, "downtime_breakdown", breakdown);
    json_object_set_new(o, "rollback_downtime_ms", job->rollback_downtime_ms >= 0
                                                       ? json_integer(job->rollback_downtime_ms)
                                                       : json_null());
    json_object_set_new(o, "progress", progress);
    json_object_set_new(o, "vm_was_running",
                        job->vm_was_running < 0 ? json_null()
                                                : json_boolean(job->vm_was_running != 0));
    json_object_set_new(o, "downtime_ms",
                        job->downtime_ms >= 0 ? json_integer(job->downtime_ms) : json_null());
    json_object_set_new(o, "created", time_or_null(job->created));
    json_object_set_new(o, "started", time_or_null(job->started));
    json_object_set_new(o, "finished", time_or_null(job->finished));
    json_object_set_new(o, "error", error);
    return o;
}

/* The store's form: public JSON + ctx, flags and raw ms times.  New reference. */
json_t *mig_job_to_record(const struct mig_job *job)
{
    json_t *o = mig_job_to_json(job);
    /* The record keeps the real phase; the public form shows "rollback" while undoing. */
    json_object_set_new(o, "phase", json_string(mig_phase_name(job->phase)));
    json_object_set_new(o, "ctx", mig_job_ctx_to_json(&job->ctx));
    /* The record keeps the last estimate, which the public form shows only while running. */
    json_object_set_new(json_object_get(o, "progress"), "eta_s", json_integer(job->progress.eta_s));
    json_object_set_new(o, "task", json_string(task_names[job->task]));
    json_object_set_new(o, "evac_parallel", json_integer(job->evac_parallel));
    json_object_set_new(o, "undoing", json_boolean(job->undoing));
    json_object_set_new(o, "dry_run", json_boolean(job->dry_run));
    json_object_set_new(o, "allow_older_platform", json_boolean(job->allow_older_platform));
    json_object_set_new(o, "cleanup_source", json_boolean(job->cleanup_source));
    json_object_set_new(o, "finish_requested", json_boolean(job->finish_requested));
    json_object_set_new(o, "abort_requested", json_boolean(job->abort_requested));
    json_object_set_new(o, "created_ms", json_integer(job->created));
    json_object_set_new(o, "started_ms", json_integer(job->started));
    json_object_set_new(o, "finished_ms", json_integer(job->finished));
    return o;
}

/*
 * Readers for mig_job_from_record.  Each returns 0 or MIG_EPARSE; a missing
 * or null member leaves the default in place.
 */
static int rd_fixed(json_t *o, const char *key, char *buf, size_t size, bool uuid)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return 0;
    const char *s = json_string_value(v);
    if (s == NULL || strlen(s) >= size || (uuid && !mig_uuid_valid(s)))
        return MIG_EPARSE;
    strcpy(buf, s);
    return 0;
}

static int rd_str(json_t *o, const char *key, char **out)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return MIG_EPARSE;
    free(*out);
    *out = mig_strdup(json_string_value(v));
    return 0;
}

static int rd_int(json_t *o, const char *key, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return MIG_EPARSE;
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static int rd_bool(json_t *o, const char *key, bool *out)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return MIG_EPARSE;
    *out = json_is_true(v);
    return 0;
}

/* An int member within [INT32_MIN, INT32_MAX]. */
static int rd_int32(json_t *o, const char *key, int *out)
{
    int64_t v = *out;
    if (rd_int(o, key, &v) < 0 || v < INT32_MIN || v > INT32_MAX)
        return MIG_EPARSE;
    *out = (int)v;
    return 0;
}

/* --- the typed context ---------------------------------------------------- */

/* The ctx's JSON form: every member by name; empty strings and unknowns kept as they are. */
json_t *mig_job_ctx_to_json(const struct mig_job_ctx *c)
{
    json_t *ds = json_array(), *nics = json_array(), *images = json_array();
    for (int i = 0; i < c->nimages; i++)
        json_array_append_new(images, json_pack("{s:s, s:i}", "uuid", c->images[i].uuid,
                                                "on_target", c->images[i].on_target));
    for (int i = 0; i < c->ndatasets; i++)
        json_array_append_new(ds, json_pack("{s:s, s:s, s:I}", "name", c->datasets[i].name,
                                            "origin", c->datasets[i].origin, "used",
                                            (json_int_t)c->datasets[i].used));
    for (int i = 0; i < c->nnics; i++)
        json_array_append_new(nics, json_pack("{s:s, s:s, s:s, s:i}", "mac", c->nics[i].mac, "ip",
                                              c->nics[i].ip, "network_uuid",
                                              c->nics[i].network_uuid, "reserved_before",
                                              c->nics[i].reserved_before));
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:o, s:i, s:i, s:i, s:o, s:i, s:I, s:I, s:i, s:I, s:s, s:s, s:i, "
        "s:i, s:I, s:I}",
        "source_ip", c->source_ip, "target_ip", c->target_ip, "image_uuid", c->image_uuid,
        "datasets", ds, "nics", nics, "images", images, "autoboot_before",
        c->autoboot_before, "resumable_source", c->resumable_source, "resumable_target",
        c->resumable_target, "zonecfg", c->zonecfg != NULL ? json_string(c->zonecfg) : json_null(),
        "rounds", c->rounds, "last_delta", (json_int_t)c->last_delta, "stop_ms",
        (json_int_t)c->stop_ms, "back_was_running", c->back_was_running, "back_stop_ms",
        (json_int_t)c->back_stop_ms, "target_request", c->target_request, "activity", c->activity,
        "config_changed", c->config_changed, "stalled", c->stalled,
        "snap_ms", (json_int_t)c->snap_ms, "write_bytes_s",
        (json_int_t)c->write_bytes_s);
    if (o != NULL) {
        json_object_set_new(o, "quota_before", json_integer(c->quota_before));
        json_object_set_new(o, "reservation_before", json_integer(c->reservation_before));
    }
    if (o != NULL && c->direct_pub[0] != '\0') {
        json_object_set_new(o, "direct_key", json_string(c->direct_key));
        json_object_set_new(o, "direct_pub", json_string(c->direct_pub));
    }
    if (o == NULL)
        abort(); /* only on out of memory or invalid UTF-8, which no member can hold */
    return o;
}

/* Reads an array member of objects with reader fn into n items of at most max; MIG_EPARSE. */
static int rd_array(json_t *o, const char *key, int max, int *n,
                    int (*fn)(json_t *item, int i, void *arg), void *arg)
{
    json_t *a = json_object_get(o, key);
    if (a == NULL || json_is_null(a))
        return 0;
    if (!json_is_array(a) || json_array_size(a) > (size_t)max)
        return MIG_EPARSE;
    size_t i;
    json_t *item;
    json_array_foreach(a, i, item)
    {
        if (!json_is_object(item) || fn(item, (int)i, arg) < 0)
            return MIG_EPARSE;
    }
    *n = (int)json_array_size(a);
    return 0;
}

static int rd_dataset(json_t *item, int i, void *arg)
{
    struct mig_dataset *d = &((struct mig_job_ctx *)arg)->datasets[i];
    return rd_fixed(item, "name", d->name, sizeof(d->name), false) < 0 ||
                   rd_fixed(item, "origin", d->origin, sizeof(d->origin), false) < 0 ||
                   rd_int(item, "used", &d->used) < 0
               ? MIG_EPARSE
               : 0;
}

static int rd_nic(json_t *item, int i, void *arg)
{
    struct mig_nic *n = &((struct mig_job_ctx *)arg)->nics[i];
    return rd_fixed(item, "mac", n->mac, sizeof(n->mac), false) < 0 ||
                   rd_fixed(item, "ip", n->ip, sizeof(n->ip), false) < 0 ||
                   rd_fixed(item, "network_uuid", n->network_uuid, sizeof(n->network_uuid),
                            false) < 0 ||
                   rd_int32(item, "reserved_before", &n->reserved_before) < 0
               ? MIG_EPARSE
               : 0;
}

static int rd_image(json_t *item, int i, void *arg)
{
    struct mig_image *m = &((struct mig_job_ctx *)arg)->images[i];
    m->on_target = -1;
    return !json_is_string(json_object_get(item, "uuid")) ||
                   rd_fixed(item, "uuid", m->uuid, sizeof(m->uuid), true) < 0 ||
                   rd_int32(item, "on_target", &m->on_target) < 0
               ? MIG_EPARSE
               : 0;
}

int mig_job_ctx_from_json(json_t *j, struct mig_job_ctx *out)
{
    if (!json_is_object(j))
        return MIG_EPARSE;
    struct mig_job_ctx c = *out;
    c.zonecfg = NULL;
    char *zonecfg = NULL;
    for (int i = 0; i < MIG_MAX_NICS; i++)
        c.nics[i].reserved_before = -1;
    if (rd_fixed(j, "source_ip", c.source_ip, sizeof(c.source_ip), false) < 0 ||
        rd_fixed(j, "target_ip", c.target_ip, sizeof(c.target_ip), false) < 0 ||
        rd_fixed(j, "image_uuid", c.image_uuid, sizeof(c.image_uuid), false) < 0 ||
        rd_array(j, "datasets", MIG_MAX_DATASETS, &c.ndatasets, rd_dataset, &c) < 0 ||
        rd_array(j, "nics", MIG_MAX_NICS, &c.nnics, rd_nic, &c) < 0 ||
        rd_array(j, "images", MIG_MAX_IMAGES, &c.nimages, rd_image, &c) < 0 ||
        rd_int32(j, "autoboot_before", &c.autoboot_before) < 0 ||
        rd_int32(j, "resumable_source", &c.resumable_source) < 0 ||
        rd_int32(j, "resumable_target", &c.resumable_target) < 0 ||
        rd_str(j, "zonecfg", &zonecfg) < 0 || rd_int32(j, "rounds", &c.rounds) < 0 ||
        rd_int(j, "last_delta", &c.last_delta) < 0 || rd_int(j, "stop_ms", &c.stop_ms) < 0 ||
        rd_int32(j, "back_was_running", &c.back_was_running) < 0 ||
        rd_int(j, "back_stop_ms", &c.back_stop_ms) < 0 ||
        rd_fixed(j, "target_request", c.target_request, sizeof(c.target_request), false) < 0 ||
        rd_fixed(j, "activity", c.activity, sizeof(c.activity), false) < 0 ||
        rd_int32(j, "config_changed", &c.config_changed) < 0 ||
        rd_int32(j, "stalled", &c.stalled) < 0 || rd_int(j, "snap_ms", &c.snap_ms) < 0 ||
        rd_int(j, "write_bytes_s", &c.write_bytes_s) < 0 ||
        rd_int(j, "quota_before", &c.quota_before) < 0 ||
        rd_int(j, "reservation_before", &c.reservation_before) < 0 ||
        rd_fixed(j, "direct_key", c.direct_key, sizeof(c.direct_key), false) < 0 ||
        rd_fixed(j, "direct_pub", c.direct_pub, sizeof(c.direct_pub), false) < 0) {
        free(zonecfg);
        return MIG_EPARSE;
    }
    /* A record from before images[]: the VM's image when a dataset was its clone
     * (image_needed, or the top dataset's origin), with what was known of it. */
    json_t *legacy = json_object_get(j, "image_on_target");
    if (json_object_get(j, "images") == NULL && json_is_integer(legacy) &&
        c.image_uuid[0] != '\0') {
        char origin[MIG_DATASET_LEN];
        snprintf(origin, sizeof(origin), "zones/%s@final", c.image_uuid);
        const char *top = c.ndatasets > 0 ? c.datasets[0].origin : "";
        const char *at = strchr(top, '/');
        c.nimages = 0;
        if (json_integer_value(json_object_get(j, "image_needed")) == 1 ||
            (at != NULL && strcmp(at, strchr(origin, '/')) == 0)) {
            c.nimages = 1;
            snprintf(c.images[0].uuid, sizeof(c.images[0].uuid), "%s", c.image_uuid);
            c.images[0].on_target = json_integer_value(legacy) == 1 ? 1 : -1;
        }
    }
    free(out->zonecfg);
    c.zonecfg = zonecfg;
    *out = c;
    return 0;
}

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

/* Reads the enum-valued members (state, phase, mode) and the error. */
static int rd_enums(json_t *rec, struct mig_job *job)
{
    if (mig_job_state_parse(json_string_value(json_object_get(rec, "state")), &job->state) < 0 ||
        mig_phase_parse(json_string_value(json_object_get(rec, "phase")), &job->phase) < 0 ||
        mig_mode_parse(json_string_value(json_object_get(rec, "mode")), &job->mode) < 0)
        return MIG_EPARSE;

    json_t *err = json_object_get(rec, "error");
    if (err != NULL && !json_is_null(err)) {
        if (!json_is_object(err) || !json_is_string(json_object_get(err, "code")))
            return MIG_EPARSE;
        const char *phase = json_string_value(json_object_get(err, "phase"));
        if (rd_str(err, "code", &job->error_code) < 0 ||
            rd_str(err, "message", &job->error_message) < 0 ||
            mig_phase_parse(phase, &job->error_phase) < 0)
            return MIG_EPARSE;
    }
    return 0;
}

/* Reads progress, vm_was_running and downtime_ms. */
static int rd_progress(json_t *rec, struct mig_job *job)
{
    json_t *p = json_object_get(rec, "progress");
    if (p != NULL && !json_is_null(p)) {
        int64_t increments = 0;
        if (!json_is_object(p) || rd_int(p, "bytes_sent", &job->progress.bytes_sent) < 0 ||
            rd_int(p, "bytes_total", &job->progress.bytes_total) < 0 ||
            rd_int(p, "rate_bytes_s", &job->progress.rate_bytes_s) < 0 ||
            rd_int(p, "eta_s", &job->progress.eta_s) < 0 ||
            rd_int(p, "increments", &increments) < 0 || increments < 0 || increments > INT32_MAX)
            return MIG_EPARSE;
        job->progress.increments = (int)increments;
    }
    json_t *vr = json_object_get(rec, "vm_was_running");
    if (vr != NULL && !json_is_null(vr)) {
        if (!json_is_boolean(vr))
            return MIG_EPARSE;
        job->vm_was_running = json_is_true(vr) ? 1 : 0;
    }
    return rd_int(rec, "downtime_ms", &job->downtime_ms);
}

static int rd_round(json_t *item, int i, void *arg)
{
    struct mig_round *r = &((struct mig_job *)arg)->round_log[i];
    r->predicted_downtime_ms = -1;
    return rd_int32(item, "n", &r->n) < 0 || rd_int(item, "bytes", &r->bytes) < 0 ||
                   rd_int(item, "duration_ms", &r->duration_ms) < 0 ||
                   rd_int(item, "rate_bytes_s", &r->rate_bytes_s) < 0 ||
                   rd_int(item, "predicted_downtime_ms", &r->predicted_downtime_ms) < 0
               ? MIG_EPARSE
               : 0;
}

static int rd_part(json_t *item, int i, void *arg)
{
    struct mig_part *p = &((struct mig_job *)arg)->breakdown[i];
    return rd_fixed(item, "action", p->action, sizeof(p->action), false) < 0 ||
                   rd_int(item, "ms", &p->ms) < 0
               ? MIG_EPARSE
               : 0;
}

/* Reads rounds, downtime_breakdown and rollback_downtime_ms. */
static int rd_timings(json_t *rec, struct mig_job *job)
{
    if (rd_array(rec, "rounds", MIG_MAX_ROUND_LOG, &job->nround_log, rd_round, job) < 0 ||
        rd_int(rec, "rollback_downtime_ms", &job->rollback_downtime_ms) < 0)
        return MIG_EPARSE;
    json_t *b = json_object_get(rec, "downtime_breakdown");
    if (b == NULL || json_is_null(b))
        return 0;
    if (!json_is_object(b) ||
        rd_array(b, "actions", MIG_MAX_BREAKDOWN, &job->nbreakdown, rd_part, job) < 0 ||
        rd_int(b, "daemon_ms", &job->daemon_ms) < 0)
        return MIG_EPARSE;
    return 0;
}

/*
 * Rebuilds a job from mig_job_to_record's form (rec is borrowed; ctx is deep
 * copied).  uuid, state, phase and mode are required; other members default
 * as in mig_job_new.  0 and *out (caller frees), or MIG_EPARSE and *out NULL.
 */
int mig_job_from_record(json_t *rec, struct mig_job **out)
{
    *out = NULL;
    if (!json_is_object(rec))
        return MIG_EPARSE;
    struct mig_job *job = mig_job_new();
    job->uuid[0] = '\0';
    job->created = 0;

    json_t *ctx = json_object_get(rec, "ctx");
    int rc = 0;
    if (ctx != NULL && !json_is_null(ctx))
        rc = mig_job_ctx_from_json(ctx, &job->ctx);
    const char *task = json_string_value(json_object_get(rec, "task"));
    if (rc == 0 && task != NULL) {
        int t = name_lookup(task_names, MIG_NTASKS, task);
        if (t < 0)
            rc = MIG_EPARSE;
        else
            job->task = (enum mig_task)t;
    }
    if (rc == 0 && (rd_fixed(rec, "transfer", job->transfer, sizeof(job->transfer), false) < 0 ||
                    rd_fixed(rec, "evacuation", job->evacuation, sizeof(job->evacuation), true) <
                        0))
        rc = MIG_EPARSE;
    if (rc == 0 &&
        (rd_fixed(rec, "uuid", job->uuid, sizeof(job->uuid), true) < 0 ||
         rd_fixed(rec, "vm_uuid", job->vm_uuid, sizeof(job->vm_uuid), true) < 0 ||
         rd_fixed(rec, "brand", job->brand, sizeof(job->brand), false) < 0 ||
         rd_fixed(rec, "source_server_uuid", job->source_server_uuid,
                  sizeof(job->source_server_uuid), true) < 0 ||
         rd_fixed(rec, "target_server_uuid", job->target_server_uuid,
                  sizeof(job->target_server_uuid), true) < 0 ||
         rd_str(rec, "vm_alias", &job->vm_alias) < 0 ||
         rd_str(rec, "source_hostname", &job->source_hostname) < 0 ||
         rd_str(rec, "target_hostname", &job->target_hostname) < 0 || rd_enums(rec, job) < 0 ||
         rd_progress(rec, job) < 0 || rd_timings(rec, job) < 0 ||
         rd_int(rec, "created_ms", &job->created) < 0 ||
         rd_int(rec, "started_ms", &job->started) < 0 ||
         rd_int(rec, "finished_ms", &job->finished) < 0 ||
         rd_bool(rec, "dry_run", &job->dry_run) < 0 ||
         rd_bool(rec, "allow_older_platform", &job->allow_older_platform) < 0 ||
         rd_bool(rec, "cleanup_source", &job->cleanup_source) < 0 ||
         rd_bool(rec, "finish_requested", &job->finish_requested) < 0 ||
         rd_bool(rec, "abort_requested", &job->abort_requested) < 0 ||
         rd_bool(rec, "undoing", &job->undoing) < 0 || rd_int32(rec, "limit_mbps", &job->limit_mbps) < 0 ||
         rd_int32(rec, "evac_parallel", &job->evac_parallel) < 0))
        rc = MIG_EPARSE;
    if (rc == 0 && job->uuid[0] == '\0')
        rc = MIG_EPARSE;
    if (rc < 0) {
        mig_job_free(job);
        return rc;
    }
    *out = job;
    return 0;
}
