/* job_fixture.c: see job_fixture.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "job_fixture.h"
#include "job_record.h"
#include "util.h"

void job_fixture_fill(struct mig_job *job)
{
    strcpy(job->vm_uuid, "6a1b2c3d-1111-4222-8333-444455556666");
    strcpy(job->source_server_uuid, "00000000-0000-0000-0000-0000000000a1");
    strcpy(job->target_server_uuid, "00000000-0000-0000-0000-0000000000a2");
    job->source_hostname = mig_strdup("cn1");
    job->target_hostname = mig_strdup("cn2");
    job->phase = MIG_PHASE_SWITCH;
    job->task = MIG_TASK_RETURN;
    job->progress = (struct mig_progress){.bytes_sent = 123456789012LL,
                                          .bytes_total = 223456789012LL,
                                          .rate_bytes_s = 130000000,
                                          .eta_s = 77,
                                          .increments = 3};
    job->vm_was_running = 1;
    job->downtime_ms = 4321;
    job->created = 1707350400123LL;
    job->started = 1707350401456LL;
    job->finished = 1707350499789LL;
    job->dry_run = true;
    job->allow_older_platform = true;
    job->cleanup_source = true;
    snprintf(job->transfer, sizeof(job->transfer), "direct");
    job->limit_mbps = 160;
    job->finish_requested = true;
    job->abort_requested = true;
    job->undoing = true;
    struct mig_round r1 = {1, 1000000, 2000, 500000, -1}, r2 = {2, 4096, 100, 40960, 2100};
    mig_job_log_round(job, &r1);
    mig_job_log_round(job, &r2);
    job->nbreakdown = 2;
    snprintf(job->breakdown[0].action, sizeof(job->breakdown[0].action), "switch.stop_source");
    job->breakdown[0].ms = 42;
    snprintf(job->breakdown[1].action, sizeof(job->breakdown[1].action), "switch.start_target");
    job->breakdown[1].ms = 51;
    job->daemon_ms = 9;
    job->rollback_downtime_ms = 777;

    struct mig_job_ctx *c = &job->ctx;
    snprintf(c->source_ip, sizeof(c->source_ip), "10.99.99.11");
    snprintf(c->target_ip, sizeof(c->target_ip), "10.99.99.12");
    snprintf(c->image_uuid, sizeof(c->image_uuid), "5e4d0f36-9d35-11ee-a9c2-0b1f2a6c1e12");
    c->ndatasets = 2;
    snprintf(c->datasets[0].name, sizeof(c->datasets[0].name), "zones/x");
    c->datasets[0].used = 123456789012LL;
    snprintf(c->datasets[1].name, sizeof(c->datasets[1].name), "zones/x-disk0");
    c->nnics = 1;
    snprintf(c->nics[0].mac, sizeof(c->nics[0].mac), "90:b8:d0:01:02:03");
    snprintf(c->nics[0].ip, sizeof(c->nics[0].ip), "10.0.0.5");
    snprintf(c->nics[0].network_uuid, sizeof(c->nics[0].network_uuid),
             "7a1a4b7e-63b8-4e2c-9a3c-2a0f5a8d0c11");
    c->nics[0].reserved_before = 0;
    c->autoboot_before = 1;
    c->resumable_source = 0;
    c->resumable_target = 1;
    mig_job_set_zonecfg(job, "create -b\nset zonepath=\"/zones/x\"\n");
    c->rounds = 3;
    c->last_delta = 4096;
    c->stop_ms = 1707350450000LL;
    c->back_was_running = 0;
    c->back_stop_ms = 1707350460000LL;
    c->config_changed = 1;
    c->stalled = 1;
    c->snap_ms = 1707350440000LL;
    c->write_bytes_s = 40000000;
    snprintf(c->target_request, sizeof(c->target_request), "cn2");
    mig_job_set_activity(job, "sending %s", "zones/x");
}

/* Two strings that may be NULL: both NULL, or the same text. */
static void assert_same_text(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void assert_same_ctx(const struct mig_job_ctx *c, const struct mig_job_ctx *d)
{
    assert_string_equal(c->source_ip, d->source_ip);
    assert_string_equal(c->target_ip, d->target_ip);
    assert_string_equal(c->image_uuid, d->image_uuid);
    assert_int_equal(c->ndatasets, d->ndatasets);
    for (int i = 0; i < c->ndatasets; i++) {
        assert_string_equal(c->datasets[i].name, d->datasets[i].name);
        assert_string_equal(c->datasets[i].origin, d->datasets[i].origin);
        assert_int_equal(c->datasets[i].used, d->datasets[i].used);
    }
    assert_int_equal(c->nnics, d->nnics);
    for (int i = 0; i < c->nnics; i++) {
        assert_string_equal(c->nics[i].mac, d->nics[i].mac);
        assert_string_equal(c->nics[i].ip, d->nics[i].ip);
        assert_string_equal(c->nics[i].network_uuid, d->nics[i].network_uuid);
        assert_int_equal(c->nics[i].reserved_before, d->nics[i].reserved_before);
    }
    assert_int_equal(c->nimages, d->nimages);
    for (int i = 0; i < c->nimages; i++) {
        assert_string_equal(c->images[i].uuid, d->images[i].uuid);
        assert_int_equal(c->images[i].on_target, d->images[i].on_target);
    }
    assert_int_equal(c->autoboot_before, d->autoboot_before);
    assert_int_equal(c->resumable_source, d->resumable_source);
    assert_int_equal(c->resumable_target, d->resumable_target);
    assert_int_equal(c->compressed_source, d->compressed_source);
    assert_int_equal(c->compressed_target, d->compressed_target);
    assert_same_text(c->zonecfg, d->zonecfg);
    assert_int_equal(c->rounds, d->rounds);
    assert_int_equal(c->last_delta, d->last_delta);
    assert_int_equal(c->stop_ms, d->stop_ms);
    assert_int_equal(c->back_was_running, d->back_was_running);
    assert_int_equal(c->back_stop_ms, d->back_stop_ms);
    assert_int_equal(c->config_changed, d->config_changed);
    assert_int_equal(c->stalled, d->stalled);
    assert_int_equal(c->snap_ms, d->snap_ms);
    assert_int_equal(c->write_bytes_s, d->write_bytes_s);
    assert_int_equal(c->wake_ms, d->wake_ms);
    assert_int_equal(c->quota_before, d->quota_before);
    assert_int_equal(c->reservation_before, d->reservation_before);
    assert_string_equal(c->target_request, d->target_request);
    assert_string_equal(c->direct_key, d->direct_key);
    assert_string_equal(c->direct_pub, d->direct_pub);
    assert_string_equal(c->activity, d->activity);
    /* and the ctx's JSON form, which holds whatever the list above may miss */
    json_t *cj = mig_job_ctx_to_json(c), *dj = mig_job_ctx_to_json(d);
    assert_true(json_equal(cj, dj));
    json_decref(cj);
    json_decref(dj);
}

void assert_leftovers_equal(const struct mig_leftover *x, const struct mig_leftover *y)
{
    assert_string_equal(x->key, y->key);
    assert_int_equal(x->undo, y->undo);
    assert_string_equal(x->cn, y->cn);
    assert_string_equal(x->kind, y->kind);
    assert_string_equal(x->name, y->name);
    assert_string_equal(x->reason, y->reason);
    assert_int_equal(x->since_ms, y->since_ms);
    assert_int_equal(x->next_ms, y->next_ms);
    assert_int_equal(x->tries, y->tries);
}

void assert_jobs_equal(const struct mig_job *a, const struct mig_job *b)
{
    assert_string_equal(a->uuid, b->uuid);
    assert_string_equal(a->vm_uuid, b->vm_uuid);
    assert_same_text(a->vm_alias, b->vm_alias);
    assert_string_equal(a->brand, b->brand);
    assert_string_equal(a->source_server_uuid, b->source_server_uuid);
    assert_string_equal(a->target_server_uuid, b->target_server_uuid);
    assert_same_text(a->source_hostname, b->source_hostname);
    assert_same_text(a->target_hostname, b->target_hostname);
    assert_int_equal(a->mode, b->mode);
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->phase, b->phase);
    assert_int_equal(a->task, b->task);
    assert_int_equal(a->progress.bytes_sent, b->progress.bytes_sent);
    assert_int_equal(a->progress.bytes_total, b->progress.bytes_total);
    assert_int_equal(a->progress.rate_bytes_s, b->progress.rate_bytes_s);
    assert_int_equal(a->progress.eta_s, b->progress.eta_s);
    assert_int_equal(a->progress.increments, b->progress.increments);
    assert_int_equal(a->vm_was_running, b->vm_was_running);
    assert_int_equal(a->downtime_ms, b->downtime_ms);
    assert_int_equal(a->created, b->created);
    assert_int_equal(a->started, b->started);
    assert_int_equal(a->finished, b->finished);
    if (a->error_code == NULL || b->error_code == NULL) {
        assert_ptr_equal(a->error_code, b->error_code);
    } else {
        assert_string_equal(a->error_code, b->error_code);
        assert_same_text(a->error_message, b->error_message);
        assert_int_equal(a->error_phase, b->error_phase);
    }
    assert_int_equal(a->dry_run, b->dry_run);
    assert_int_equal(a->allow_older_platform, b->allow_older_platform);
    assert_int_equal(a->cleanup_source, b->cleanup_source);
    assert_string_equal(a->transfer, b->transfer);
    assert_string_equal(a->evacuation, b->evacuation);
    assert_int_equal(a->evac_parallel, b->evac_parallel);
    assert_int_equal(a->limit_mbps, b->limit_mbps);
    assert_int_equal(a->finish_requested, b->finish_requested);
    assert_int_equal(a->abort_requested, b->abort_requested);
    assert_int_equal(a->paused, b->paused);
    assert_int_equal(a->undoing, b->undoing);
    assert_int_equal(a->nround_log, b->nround_log);
    for (int i = 0; i < a->nround_log; i++) {
        const struct mig_round *x = &a->round_log[i], *y = &b->round_log[i];
        assert_int_equal(x->n, y->n);
        assert_int_equal(x->bytes, y->bytes);
        assert_int_equal(x->duration_ms, y->duration_ms);
        assert_int_equal(x->rate_bytes_s, y->rate_bytes_s);
        assert_int_equal(x->predicted_downtime_ms, y->predicted_downtime_ms);
    }
    assert_int_equal(a->nbreakdown, b->nbreakdown);
    for (int i = 0; i < a->nbreakdown; i++) {
        assert_string_equal(a->breakdown[i].action, b->breakdown[i].action);
        assert_int_equal(a->breakdown[i].ms, b->breakdown[i].ms);
    }
    assert_int_equal(a->daemon_ms, b->daemon_ms);
    assert_int_equal(a->rollback_downtime_ms, b->rollback_downtime_ms);
    assert_int_equal(a->nleftovers, b->nleftovers);
    for (int i = 0; i < a->nleftovers; i++)
        assert_leftovers_equal(&a->leftovers[i], &b->leftovers[i]);
    assert_same_ctx(&a->ctx, &b->ctx);
}

/* The record's text, as the store writes it (json_dumps JSON_COMPACT). */
char *record_text(const struct mig_job *job)
{
    json_t *rec = mig_job_to_record(job);
    char *text = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    assert_non_null(text);
    return text;
}

/* A job loaded from a record's text; fails the test when it does not load. */
struct mig_job *record_load(const char *text)
{
    json_t *rec = json_loads(text, 0, NULL);
    assert_non_null(rec);
    struct mig_job *job = NULL;
    assert_int_equal(mig_job_from_record(rec, &job), 0);
    json_decref(rec);
    assert_non_null(job);
    return job;
}

struct mig_job *record_round_trip(const struct mig_job *job)
{
    char *text = record_text(job);
    struct mig_job *back = record_load(text);
    free(text);
    assert_jobs_equal(back, job);
    return back;
}
