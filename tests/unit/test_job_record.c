/*
 * test_job_record.c: the job's stored form (lib/job_record.c).  The record
 * texts below were written by migd before the record had a codec of its own
 * (when it was the API form patched): the codec must still write exactly
 * them, byte for byte, and read them back to the same job, or databases
 * already on disk would load differently.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "job.h"
#include "job_record.h"

/* A job with every member set, ctx included, and values a default never has. */
static struct mig_job *rich_job(void)
{
    struct mig_job *job = mig_job_new();
    strcpy(job->uuid, "3f1c7a52-8e0b-4d6a-9c2e-5b7d1a0e4f63");
    strcpy(job->vm_uuid, "6a1b2c3d-1111-4222-8333-444455556666");
    job->vm_alias = mig_strdup("web \"01\"");
    strcpy(job->brand, "bhyve");
    strcpy(job->source_server_uuid, "00000000-0000-0000-0000-0000000000a1");
    strcpy(job->target_server_uuid, "00000000-0000-0000-0000-0000000000a2");
    job->source_hostname = mig_strdup("cn1");
    job->target_hostname = mig_strdup("cn2");
    job->mode = MIG_MODE_INCREMENTAL;
    job->state = MIG_JOB_RUNNING;
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
    job->phase = MIG_PHASE_PREPARE;
    mig_job_set_error(job, "RemoteFailed", "zfs receive exited 1 on cn2\nüber");
    job->phase = MIG_PHASE_SWITCH;
    job->dry_run = true;
    job->allow_older_platform = true;
    job->cleanup_source = true;
    snprintf(job->transfer, sizeof(job->transfer), "direct");
    strcpy(job->evacuation, "9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d");
    job->evac_parallel = 3;
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
    job->nleftovers = 2;
    job->leftovers[0] = (struct mig_leftover){.key = "cleanup.snapshots",
                                              .undo = false,
                                              .cn = "cn1",
                                              .kind = "snapshot",
                                              .name = "zones/x@migd-1",
                                              .reason = "dataset is busy",
                                              .since_ms = 1707350500000LL,
                                              .next_ms = 1707350530000LL,
                                              .tries = 2};
    job->leftovers[1] = (struct mig_leftover){.key = "prepare.reserve_ips",
                                              .undo = true,
                                              .cn = "api",
                                              .kind = "ip",
                                              .name = "10.0.0.5",
                                              .reason = "NAPI said 503",
                                              .since_ms = 1707350501000LL,
                                              .next_ms = 1707350561000LL,
                                              .tries = 0};
    struct mig_job_ctx *c = &job->ctx;
    snprintf(c->source_ip, sizeof(c->source_ip), "10.99.99.11");
    snprintf(c->target_ip, sizeof(c->target_ip), "10.99.99.12");
    snprintf(c->image_uuid, sizeof(c->image_uuid), "5e4d0f36-9d35-11ee-a9c2-0b1f2a6c1e12");
    c->ndatasets = 2;
    snprintf(c->datasets[0].name, sizeof(c->datasets[0].name), "zones/x");
    snprintf(c->datasets[0].origin, sizeof(c->datasets[0].origin),
             "zones/5e4d0f36-9d35-11ee-a9c2-0b1f2a6c1e12@final");
    c->datasets[0].used = 123456789012LL;
    snprintf(c->datasets[1].name, sizeof(c->datasets[1].name), "zones/x-disk0");
    c->datasets[1].used = 5;
    c->nnics = 2;
    snprintf(c->nics[0].mac, sizeof(c->nics[0].mac), "90:b8:d0:01:02:03");
    snprintf(c->nics[0].ip, sizeof(c->nics[0].ip), "10.0.0.5");
    snprintf(c->nics[0].network_uuid, sizeof(c->nics[0].network_uuid),
             "7a1a4b7e-63b8-4e2c-9a3c-2a0f5a8d0c11");
    c->nics[0].reserved_before = 0;
    snprintf(c->nics[1].mac, sizeof(c->nics[1].mac), "90:b8:d0:01:02:04");
    c->nics[1].reserved_before = 1;
    c->nimages = 2;
    snprintf(c->images[0].uuid, sizeof(c->images[0].uuid), "5e4d0f36-9d35-11ee-a9c2-0b1f2a6c1e12");
    c->images[0].on_target = 1;
    snprintf(c->images[1].uuid, sizeof(c->images[1].uuid), "7080194a-046b-5103-b946-9dc545e914b1");
    c->images[1].on_target = -1;
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
    c->wake_ms = 1707350470000LL;
    c->quota_before = 10737418240LL;
    c->reservation_before = 0;
    snprintf(c->target_request, sizeof(c->target_request), "cn2");
    snprintf(c->direct_key, sizeof(c->direct_key),
             "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbg==\n");
    snprintf(c->direct_pub, sizeof(c->direct_pub), "AAAAC3NzaC1lZDI1NTE5AAAAIA");
    mig_job_set_activity(job, "sending %s", "zones/x");
    return job;
}

/* A job as submitted, nothing learnt yet: the nulls and -1s of mig_job_new. */
static struct mig_job *fresh_job(void)
{
    struct mig_job *job = mig_job_new();
    strcpy(job->uuid, "0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a");
    strcpy(job->vm_uuid, "6a1b2c3d-1111-4222-8333-444455556666");
    job->created = 1707350400000LL;
    return job;
}

/* rich_job()'s record as the API-patching codec wrote it (commit da2fe74). */
static const char old_rich[] =
    "{\"uuid\":\"3f1c7a52-8e0b-4d6a-9c2e-5b7d1a0e4f63\",\"vm_uuid\":\"6a1b2c3d-1111-4222-8333"
    "-444455556666\",\"vm_alias\":\"web \\\"01\\\"\",\"brand\":\"bhyve\",\"source_server_uuid"
    "\":\"00000000-0000-0000-0000-0000000000a1\",\"target_server_uuid\":\"00000000-0000-0000-"
    "0000-0000000000a2\",\"source_hostname\":\"cn1\",\"target_hostname\":\"cn2\",\"mode\":\"i"
    "ncremental\",\"state\":\"running\",\"phase\":\"switch\",\"aborting\":true,\"activity\":\""
    "sending zones/x\",\"cleanup_source\":true,\"transfer\":\"direct\",\"limit_mbps\":160,\"e"
    "vacuation\":\"9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d\",\"rounds\":[{\"n\":1,\"bytes\":1000"
    "000,\"duration_ms\":2000,\"rate_bytes_s\":500000,\"predicted_downtime_ms\":null},{\"n\":"
    "2,\"bytes\":4096,\"duration_ms\":100,\"rate_bytes_s\":40960,\"predicted_downtime_ms\":21"
    "00}],\"downtime_breakdown\":{\"actions\":[{\"action\":\"switch.stop_source\",\"ms\":42},"
    "{\"action\":\"switch.start_target\",\"ms\":51}],\"daemon_ms\":9},\"rollback_downtime_ms\""
    ":777,\"progress\":{\"bytes_sent\":123456789012,\"bytes_total\":223456789012,\"rate_bytes"
    "_s\":130000000,\"eta_s\":77,\"increments\":3},\"vm_was_running\":true,\"downtime_ms\":43"
    "21,\"created\":\"2024-02-08T00:00:00.123Z\",\"started\":\"2024-02-08T00:00:01.456Z\",\"f"
    "inished\":\"2024-02-08T00:01:39.789Z\",\"error\":{\"code\":\"RemoteFailed\",\"message\":"
    "\"zfs receive exited 1 on cn2\\nüber\",\"phase\":\"prepare\"},\"leftovers\":[{\"key\":\""
    "cleanup.snapshots\",\"undo\":false,\"cn\":\"cn1\",\"kind\":\"snapshot\",\"name\":\"zones"
    "/x@migd-1\",\"reason\":\"dataset is busy\",\"since_ms\":1707350500000,\"next_ms\":170735"
    "0530000,\"tries\":2},{\"key\":\"prepare.reserve_ips\",\"undo\":true,\"cn\":\"api\",\"kin"
    "d\":\"ip\",\"name\":\"10.0.0.5\",\"reason\":\"NAPI said 503\",\"since_ms\":1707350501000"
    ",\"next_ms\":1707350561000,\"tries\":0}],\"ctx\":{\"source_ip\":\"10.99.99.11\",\"target"
    "_ip\":\"10.99.99.12\",\"image_uuid\":\"5e4d0f36-9d35-11ee-a9c2-0b1f2a6c1e12\",\"datasets"
    "\":[{\"name\":\"zones/x\",\"origin\":\"zones/5e4d0f36-9d35-11ee-a9c2-0b1f2a6c1e12@final\""
    ",\"used\":123456789012},{\"name\":\"zones/x-disk0\",\"origin\":\"\",\"used\":5}],\"nics\""
    ":[{\"mac\":\"90:b8:d0:01:02:03\",\"ip\":\"10.0.0.5\",\"network_uuid\":\"7a1a4b7e-63b8-4e"
    "2c-9a3c-2a0f5a8d0c11\",\"reserved_before\":0},{\"mac\":\"90:b8:d0:01:02:04\",\"ip\":\"\""
    ",\"network_uuid\":\"\",\"reserved_before\":1}],\"images\":[{\"uuid\":\"5e4d0f36-9d35-11e"
    "e-a9c2-0b1f2a6c1e12\",\"on_target\":1},{\"uuid\":\"7080194a-046b-5103-b946-9dc545e914b1\""
    ",\"on_target\":-1}],\"autoboot_before\":1,\"resumable_source\":0,\"resumable_target\":1,"
    "\"zonecfg\":\"create -b\\nset zonepath=\\\"/zones/x\\\"\\n\",\"rounds\":3,\"last_delta\""
    ":4096,\"stop_ms\":1707350450000,\"back_was_running\":0,\"back_stop_ms\":1707350460000,\""
    "target_request\":\"cn2\",\"activity\":\"sending zones/x\",\"config_changed\":1,\"stalled"
    "\":1,\"snap_ms\":1707350440000,\"write_bytes_s\":40000000,\"quota_before\":10737418240,\""
    "reservation_before\":0,\"wake_ms\":1707350470000,\"direct_key\":\"-----BEGIN OPENSSH PRI"
    "VATE KEY-----\\nb3Blbg==\\n\",\"direct_pub\":\"AAAAC3NzaC1lZDI1NTE5AAAAIA\"},\"task\":\""
    "return\",\"evac_parallel\":3,\"undoing\":true,\"dry_run\":true,\"allow_older_platform\":"
    "true,\"finish_requested\":true,\"abort_requested\":true,\"created_ms\":1707350400123,\"s"
    "tarted_ms\":1707350401456,\"finished_ms\":1707350499789}";

/* fresh_job()'s record, likewise. */
static const char old_fresh[] =
    "{\"uuid\":\"0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a\",\"vm_uuid\":\"6a1b2c3d-1111-4222-8333"
    "-444455556666\",\"vm_alias\":null,\"brand\":null,\"source_server_uuid\":null,\"target_se"
    "rver_uuid\":null,\"source_hostname\":null,\"target_hostname\":null,\"mode\":\"full\",\"s"
    "tate\":\"queued\",\"phase\":\"validate\",\"aborting\":false,\"activity\":null,\"cleanup_"
    "source\":false,\"transfer\":\"relay\",\"limit_mbps\":0,\"evacuation\":null,\"rounds\":[]"
    ",\"downtime_breakdown\":null,\"rollback_downtime_ms\":null,\"progress\":{\"bytes_sent\":"
    "0,\"bytes_total\":0,\"rate_bytes_s\":0,\"eta_s\":-1,\"increments\":0},\"vm_was_running\""
    ":null,\"downtime_ms\":null,\"created\":\"2024-02-08T00:00:00.000Z\",\"started\":null,\"f"
    "inished\":null,\"error\":null,\"leftovers\":[],\"ctx\":{\"source_ip\":\"\",\"target_ip\""
    ":\"\",\"image_uuid\":\"\",\"datasets\":[],\"nics\":[],\"images\":[],\"autoboot_before\":"
    "-1,\"resumable_source\":-1,\"resumable_target\":-1,\"zonecfg\":null,\"rounds\":0,\"last_"
    "delta\":-1,\"stop_ms\":0,\"back_was_running\":-1,\"back_stop_ms\":0,\"target_request\":\""
    "\",\"activity\":\"\",\"config_changed\":0,\"stalled\":0,\"snap_ms\":0,\"write_bytes_s\":"
    "-1,\"quota_before\":-1,\"reservation_before\":-1,\"wake_ms\":0},\"task\":\"migrate\",\"e"
    "vac_parallel\":0,\"undoing\":false,\"dry_run\":false,\"allow_older_platform\":false,\"fi"
    "nish_requested\":false,\"abort_requested\":false,\"created_ms\":1707350400000,\"started_"
    "ms\":0,\"finished_ms\":0}";

/* Every member of the two jobs is the same (ctx included). */
static void assert_jobs_equal(const struct mig_job *a, const struct mig_job *b)
{
    assert_string_equal(a->uuid, b->uuid);
    assert_string_equal(a->vm_uuid, b->vm_uuid);
    if (a->vm_alias == NULL || b->vm_alias == NULL)
        assert_ptr_equal(a->vm_alias, b->vm_alias);
    else
        assert_string_equal(a->vm_alias, b->vm_alias);
    assert_string_equal(a->brand, b->brand);
    assert_string_equal(a->source_server_uuid, b->source_server_uuid);
    assert_string_equal(a->target_server_uuid, b->target_server_uuid);
    if (a->source_hostname == NULL || b->source_hostname == NULL)
        assert_ptr_equal(a->source_hostname, b->source_hostname);
    else
        assert_string_equal(a->source_hostname, b->source_hostname);
    if (a->target_hostname == NULL || b->target_hostname == NULL)
        assert_ptr_equal(a->target_hostname, b->target_hostname);
    else
        assert_string_equal(a->target_hostname, b->target_hostname);
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
        assert_string_equal(a->error_message, b->error_message);
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
    for (int i = 0; i < a->nleftovers; i++) {
        const struct mig_leftover *x = &a->leftovers[i], *y = &b->leftovers[i];
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

    const struct mig_job_ctx *c = &a->ctx, *d = &b->ctx;
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
    if (c->zonecfg == NULL || d->zonecfg == NULL)
        assert_ptr_equal(c->zonecfg, d->zonecfg);
    else
        assert_string_equal(c->zonecfg, d->zonecfg);
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
}

/* The record's text, as the store writes it (json_dumps JSON_COMPACT). */
static char *record_text(const struct mig_job *job)
{
    json_t *rec = mig_job_to_record(job);
    char *text = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    assert_non_null(text);
    return text;
}

/* A job loaded from a record's text; fails the test when it does not load. */
static struct mig_job *record_load(const char *text)
{
    json_t *rec = json_loads(text, 0, NULL);
    assert_non_null(rec);
    struct mig_job *job = NULL;
    assert_int_equal(mig_job_from_record(rec, &job), 0);
    json_decref(rec);
    assert_non_null(job);
    return job;
}

/* The codec writes today exactly the text the old code path wrote. */
static void test_writes_the_old_text(void **state)
{
    (void)state;
    struct mig_job *(*make[])(void) = {rich_job, fresh_job};
    const char *old[] = {old_rich, old_fresh};
    for (size_t i = 0; i < 2; i++) {
        struct mig_job *job = make[i]();
        char *text = record_text(job);
        assert_string_equal(text, old[i]);
        free(text);
        mig_job_free(job);
    }
}

/* A record on disk from before the codec loads to the job that wrote it. */
static void test_old_text_loads_to_the_same_job(void **state)
{
    (void)state;
    struct mig_job *(*make[])(void) = {rich_job, fresh_job};
    const char *old[] = {old_rich, old_fresh};
    for (size_t i = 0; i < 2; i++) {
        struct mig_job *want = make[i]();
        struct mig_job *got = record_load(old[i]);
        assert_jobs_equal(got, want);
        /* and saved again, it is the same text: a load and save changes nothing */
        char *again = record_text(got);
        assert_string_equal(again, old[i]);
        free(again);
        mig_job_free(got);
        mig_job_free(want);
    }
}

/* Every member survives write and read. */
static void test_round_trip(void **state)
{
    (void)state;
    struct mig_job *job = rich_job();
    char *text = record_text(job);
    struct mig_job *back = record_load(text);
    assert_jobs_equal(back, job);
    free(text);
    mig_job_free(back);
    mig_job_free(job);
}

/* The health gate and the cleanup timer come back as they were written. */
static void test_gate_and_timer_round_trip(void **state)
{
    (void)state;
    struct mig_job *job = rich_job();
    job->cleanup_after_s = 86400;
    job->cleanup_at = 1700000123456;
    mig_health_init(&job->health, 30);
    job->health.state = MIG_HEALTH_CHECKING;
    job->health.since_ms = 1700000000000;
    job->health.zone_id = 14;
    job->health.passes = 3;
    job->health.smf_baseline = 1;
    snprintf(job->health.smf_before, sizeof(job->health.smf_before), "svc:/site/x:default");
    mig_health_note(&job->health, MIG_CHECK_ZONE_ID, true, 1700000003000, "zone id 14");
    char *text = record_text(job);
    struct mig_job *back = record_load(text);
    assert_jobs_equal(back, job);
    assert_int_equal(back->cleanup_after_s, 86400);
    assert_int_equal(back->cleanup_at, 1700000123456);
    assert_int_equal(back->health.state, MIG_HEALTH_CHECKING);
    assert_int_equal(back->health.min_up_s, 30);
    assert_int_equal(back->health.since_ms, 1700000000000);
    assert_int_equal(back->health.zone_id, 14);
    assert_int_equal(back->health.passes, 3);
    assert_string_equal(back->health.smf_before, "svc:/site/x:default");
    assert_int_equal(back->health.checks[MIG_CHECK_ZONE_ID].ok, 1);
    assert_int_equal(back->health.checks[MIG_CHECK_RUNNING].ok, -1);
    free(text);
    mig_job_free(back);
    mig_job_free(job);
}

/* migctl pause JOB is on record only while set: an older record is a job that is not paused. */
/* zfs send -c as prepare found it: on record once known, so every round sends alike. */
static void test_compressed_round_trip(void **state)
{
    (void)state;
    struct mig_job *job = fresh_job();
    char *text = record_text(job);
    assert_null(strstr(text, "compressed"));
    free(text);
    job->ctx.compressed_source = 1;
    job->ctx.compressed_target = 0;
    text = record_text(job);
    assert_non_null(strstr(text, "\"compressed_source\":1,\"compressed_target\":0"));
    struct mig_job *back = record_load(text);
    assert_jobs_equal(back, job);
    free(text);
    mig_job_free(back);
    mig_job_free(job);
}

static void test_paused_round_trip(void **state)
{
    (void)state;
    struct mig_job *job = fresh_job();
    char *text = record_text(job);
    assert_null(strstr(text, "paused"));
    free(text);
    job->paused = true;
    text = record_text(job);
    assert_non_null(strstr(text, "\"paused\":true"));
    struct mig_job *back = record_load(text);
    assert_true(back->paused);
    assert_jobs_equal(back, job);
    free(text);
    mig_job_free(back);
    mig_job_free(job);
}

/*
 * The record keeps what the API shows otherwise: the real phase while
 * undoing (the API says "rollback"), and the progress as counted (the API
 * shows a job at rest as sent in full, with no ETA).
 */
static void test_record_is_not_the_api_form(void **state)
{
    (void)state;
    struct mig_job *job = rich_job();
    job->state = MIG_JOB_SWITCHED;
    json_t *api = mig_job_to_json(job), *rec = mig_job_to_record(job);
    assert_string_equal(json_string_value(json_object_get(api, "phase")), "rollback");
    assert_string_equal(json_string_value(json_object_get(rec, "phase")), "switch");
    json_t *ap = json_object_get(api, "progress"), *rp = json_object_get(rec, "progress");
    assert_int_equal(json_integer_value(json_object_get(ap, "bytes_total")), 123456789012LL);
    assert_int_equal(json_integer_value(json_object_get(rp, "bytes_total")), 223456789012LL);
    assert_true(json_is_null(json_object_get(ap, "eta_s")));
    assert_int_equal(json_integer_value(json_object_get(rp, "eta_s")), 77);
    /* What only the record holds. */
    assert_null(json_object_get(api, "ctx"));
    assert_non_null(json_object_get(rec, "ctx"));
    json_decref(api);
    json_decref(rec);
    mig_job_free(job);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writes_the_old_text),
        cmocka_unit_test(test_old_text_loads_to_the_same_job),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_gate_and_timer_round_trip),
        cmocka_unit_test(test_paused_round_trip),
        cmocka_unit_test(test_compressed_round_trip),
        cmocka_unit_test(test_record_is_not_the_api_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
