/*
 * job_record.c: the job's stored form (job_record.h), the JSON text the store
 * keeps in jobs.record, written and read straight from struct mig_job.  It
 * owes nothing to the API's form (job.c): the API may show a job differently
 * tomorrow, but a database written today must load the same then.  The text
 * it writes is byte for byte what migd wrote when the record was the API form
 * patched (tests/unit/test_job_record.c holds such a record), so the key order
 * below is part of the format.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "invariant.h"
#include "job.h"
#include "job_record.h"
#include "json_value.h"

/* --- writing ------------------------------------------------------------ */

/* Leftovers whole: which action to retry, and when. */
static json_t *leftovers_record(const struct mig_job *job)
{
    json_t *los = json_array();
    for (int i = 0; i < job->nleftovers; i++) {
        const struct mig_leftover *e = &job->leftovers[i];
        json_array_append_new(los, json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:I, s:I, s:i}", "key",
                                             e->key, "undo", e->undo, "cn", e->cn, "kind", e->kind,
                                             "name", e->name, "reason", e->reason, "since_ms",
                                             (json_int_t)e->since_ms, "next_ms",
                                             (json_int_t)e->next_ms, "tries", e->tries));
    }
    return los;
}

/*
 * The members "aborting", "activity" (a copy of ctx's) and the ISO times
 * "created", "started", "finished" are not read back: the record held them
 * since it began as the API's form, and they stay so the text stays as it
 * was.
 */
json_t *mig_job_to_record(const struct mig_job *job)
{
    const struct mig_progress *p = &job->progress;
    /* Progress as counted (the API shows it at rest); rate and ETA kept when -1. */
    json_t *progress = json_pack(
        "{s:I, s:I, s:I, s:I, s:i}", "bytes_sent", (json_int_t)p->bytes_sent, "bytes_total",
        (json_int_t)p->bytes_total, "rate_bytes_s", (json_int_t)p->rate_bytes_s, "eta_s",
        (json_int_t)p->eta_s, "increments", p->increments);
    json_t *o = json_object();
    if (progress == NULL || o == NULL)
        MIG_DIE("out of memory");

    /* The order of the members is the order they were always written in. */
    mig_job_json_head(o, job, job->phase);
    json_object_set_new(o, "limit_mbps", json_integer(job->limit_mbps));
    json_object_set_new(o, "evacuation", mig_json_field(job->evacuation));
    mig_job_json_outcome(o, job, progress);
    json_object_set_new(o, "leftovers", leftovers_record(job));
    json_object_set_new(o, "ctx", mig_job_ctx_to_json(&job->ctx));
    json_object_set_new(o, "task", json_string(mig_task_name(job->task)));
    json_object_set_new(o, "evac_parallel", json_integer(job->evac_parallel));
    json_object_set_new(o, "undoing", json_boolean(job->undoing));
    json_object_set_new(o, "dry_run", json_boolean(job->dry_run));
    json_object_set_new(o, "allow_older_platform", json_boolean(job->allow_older_platform));
    json_object_set_new(o, "finish_requested", json_boolean(job->finish_requested));
    json_object_set_new(o, "abort_requested", json_boolean(job->abort_requested));
    json_object_set_new(o, "created_ms", json_integer(job->created));
    json_object_set_new(o, "started_ms", json_integer(job->started));
    json_object_set_new(o, "finished_ms", json_integer(job->finished));
    /* Written when there is a timer or a gate to remember: older records stay as they were. */
    if (job->cleanup_after_s > 0 || job->cleanup_at > 0) {
        json_object_set_new(o, "cleanup_after_s", json_integer(job->cleanup_after_s));
        json_object_set_new(o, "cleanup_at", json_integer(job->cleanup_at));
    }
    if (job->health.min_up_s > 0 || job->health.state != MIG_HEALTH_NONE ||
        job->health.smf_baseline)
        json_object_set_new(o, "health", mig_health_to_record(&job->health));
    if (job->window.set) {
        char spec[MIG_WINDOW_SPEC_LEN];
        mig_window_format(&job->window, spec, sizeof(spec));
        json_object_set_new(o, "window", json_string(spec));
    }
    if (job->paused)
        json_object_set_new(o, "paused", json_true());
    return o;
}

/* --- reading ------------------------------------------------------------ */

/*
 * Readers for mig_job_from_record.  Each returns 0 or MIG_EPARSE; a missing
 * or null member leaves the default in place.
 */

/*
 * The one rule of every reader: *v is member key of o, NULL when it is
 * missing or null (the default stays); MIG_EPARSE when it is there but not
 * of type want (JSON_TRUE stands for a boolean, true or false).
 */
static int rd_member(json_t *o, const char *key, json_type want, json_t **v)
{
    *v = json_object_get(o, key);
    if (*v == NULL || json_is_null(*v)) {
        *v = NULL;
        return 0;
    }
    json_type t = json_is_boolean(*v) ? JSON_TRUE : json_typeof(*v);
    return t == want ? 0 : MIG_EPARSE;
}

static int rd_fixed(json_t *o, const char *key, char *buf, size_t size, bool uuid)
{
    json_t *v;
    if (rd_member(o, key, JSON_STRING, &v) < 0)
        return MIG_EPARSE;
    if (v == NULL)
        return 0;
    const char *s = json_string_value(v);
    if (strlen(s) >= size || (uuid && !mig_uuid_valid(s)))
        return MIG_EPARSE;
    strcpy(buf, s);
    return 0;
}

static int rd_str(json_t *o, const char *key, char **out)
{
    json_t *v;
    int rc = rd_member(o, key, JSON_STRING, &v);
    if (rc == 0 && v != NULL) {
        free(*out);
        *out = mig_strdup(json_string_value(v));
    }
    return rc;
}

static int rd_int(json_t *o, const char *key, int64_t *out)
{
    json_t *v;
    int rc = rd_member(o, key, JSON_INTEGER, &v);
    if (rc == 0 && v != NULL)
        *out = (int64_t)json_integer_value(v);
    return rc;
}

static int rd_bool(json_t *o, const char *key, bool *out)
{
    json_t *v;
    int rc = rd_member(o, key, JSON_TRUE, &v);
    if (rc == 0 && v != NULL)
        *out = json_is_true(v);
    return rc;
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
        json_array_append_new(nics,
                              json_pack("{s:s, s:s, s:s, s:i}", "mac", c->nics[i].mac, "ip",
                                        c->nics[i].ip, "network_uuid", c->nics[i].network_uuid,
                                        "reserved_before", c->nics[i].reserved_before));
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:o, s:i, s:i, s:i, s:o, s:i, s:I, s:I, s:i, s:I, s:s, s:s, "
        "s:i, "
        "s:i, s:I, s:I}",
        "source_ip", c->source_ip, "target_ip", c->target_ip, "image_uuid", c->image_uuid,
        "datasets", ds, "nics", nics, "images", images, "autoboot_before", c->autoboot_before,
        "resumable_source", c->resumable_source, "resumable_target", c->resumable_target, "zonecfg",
        mig_json_str(c->zonecfg), "rounds", c->rounds,
        "last_delta", (json_int_t)c->last_delta, "stop_ms", (json_int_t)c->stop_ms,
        "back_was_running", c->back_was_running, "back_stop_ms", (json_int_t)c->back_stop_ms,
        "target_request", c->target_request, "activity", c->activity, "config_changed",
        c->config_changed, "stalled", c->stalled, "snap_ms", (json_int_t)c->snap_ms,
        "write_bytes_s", (json_int_t)c->write_bytes_s);
    if (o != NULL) {
        json_object_set_new(o, "quota_before", json_integer(c->quota_before));
        json_object_set_new(o, "reservation_before", json_integer(c->reservation_before));
        json_object_set_new(o, "wake_ms", json_integer(c->wake_ms));
    }
    /* Each once prepare asked its CN (older records, and jobs before it, have neither). */
    if (o != NULL && c->compressed_source >= 0)
        json_object_set_new(o, "compressed_source", json_integer(c->compressed_source));
    if (o != NULL && c->compressed_target >= 0)
        json_object_set_new(o, "compressed_target", json_integer(c->compressed_target));
    if (o != NULL && c->direct_pub[0] != '\0') {
        json_object_set_new(o, "direct_key", json_string(c->direct_key));
        json_object_set_new(o, "direct_pub", json_string(c->direct_pub));
    }
    if (o == NULL) /* only on out of memory or invalid UTF-8, which no member can hold */
        MIG_DIE("out of memory");
    return o;
}

/* Reads an array member of objects with reader fn into n items of at most max; MIG_EPARSE. */
static int rd_array(json_t *o, const char *key, int max, int *n,
                    int (*fn)(json_t *item, int i, void *arg), void *arg)
{
    json_t *a;
    if (rd_member(o, key, JSON_ARRAY, &a) < 0)
        return MIG_EPARSE;
    if (a == NULL)
        return 0;
    if (json_array_size(a) > (size_t)max)
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
                   rd_fixed(item, "network_uuid", n->network_uuid, sizeof(n->network_uuid), false) <
                       0 ||
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
        rd_int(j, "write_bytes_s", &c.write_bytes_s) < 0 || rd_int(j, "wake_ms", &c.wake_ms) < 0 ||
        rd_int(j, "quota_before", &c.quota_before) < 0 ||
        rd_int(j, "reservation_before", &c.reservation_before) < 0 ||
        rd_int32(j, "compressed_source", &c.compressed_source) < 0 ||
        rd_int32(j, "compressed_target", &c.compressed_target) < 0 ||
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

static int rd_leftover(json_t *item, int i, void *arg)
{
    struct mig_leftover *e = &((struct mig_job *)arg)->leftovers[i];
    return rd_fixed(item, "key", e->key, sizeof(e->key), false) < 0 ||
                   rd_bool(item, "undo", &e->undo) < 0 ||
                   rd_fixed(item, "cn", e->cn, sizeof(e->cn), false) < 0 ||
                   rd_fixed(item, "kind", e->kind, sizeof(e->kind), false) < 0 ||
                   rd_fixed(item, "name", e->name, sizeof(e->name), false) < 0 ||
                   rd_fixed(item, "reason", e->reason, sizeof(e->reason), false) < 0 ||
                   rd_int(item, "since_ms", &e->since_ms) < 0 ||
                   rd_int(item, "next_ms", &e->next_ms) < 0 ||
                   rd_int32(item, "tries", &e->tries) < 0 || e->key[0] == '\0'
               ? MIG_EPARSE
               : 0;
}

/* Reads rounds, downtime_breakdown and rollback_downtime_ms. */
static int rd_timings(json_t *rec, struct mig_job *job)
{
    if (rd_array(rec, "rounds", MIG_MAX_ROUND_LOG, &job->nround_log, rd_round, job) < 0 ||
        rd_int(rec, "rollback_downtime_ms", &job->rollback_downtime_ms) < 0)
        return MIG_EPARSE;
    json_t *b;
    if (rd_member(rec, "downtime_breakdown", JSON_OBJECT, &b) < 0)
        return MIG_EPARSE;
    if (b == NULL)
        return 0;
    if (rd_array(b, "actions", MIG_MAX_BREAKDOWN, &job->nbreakdown, rd_part, job) < 0 ||
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
        if (mig_task_parse(task, &job->task) < 0)
            rc = MIG_EPARSE;
    }
    if (rc == 0 &&
        (rd_fixed(rec, "transfer", job->transfer, sizeof(job->transfer), false) < 0 ||
         rd_fixed(rec, "evacuation", job->evacuation, sizeof(job->evacuation), true) < 0))
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
         rd_array(rec, "leftovers", MIG_MAX_LEFTOVERS, &job->nleftovers, rd_leftover, job) < 0 ||
         rd_int(rec, "created_ms", &job->created) < 0 ||
         rd_int(rec, "started_ms", &job->started) < 0 ||
         rd_int(rec, "finished_ms", &job->finished) < 0 ||
         rd_bool(rec, "dry_run", &job->dry_run) < 0 ||
         rd_bool(rec, "allow_older_platform", &job->allow_older_platform) < 0 ||
         rd_bool(rec, "cleanup_source", &job->cleanup_source) < 0 ||
         rd_bool(rec, "finish_requested", &job->finish_requested) < 0 ||
         rd_bool(rec, "abort_requested", &job->abort_requested) < 0 ||
         rd_bool(rec, "paused", &job->paused) < 0 ||
         rd_bool(rec, "undoing", &job->undoing) < 0 ||
         rd_int32(rec, "limit_mbps", &job->limit_mbps) < 0 ||
         rd_int32(rec, "evac_parallel", &job->evac_parallel) < 0 ||
         rd_int(rec, "cleanup_after_s", &job->cleanup_after_s) < 0 ||
         rd_int(rec, "cleanup_at", &job->cleanup_at) < 0))
        rc = MIG_EPARSE;
    if (rc == 0 && mig_health_from_record(json_object_get(rec, "health"), &job->health) < 0)
        rc = MIG_EPARSE;
    /* A window on record passed these checks when it was asked for. */
    const char *window = json_string_value(json_object_get(rec, "window"));
    if (rc == 0 && window != NULL && mig_window_parse_saved(window, &job->window) != 0)
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
