/*
 * test_job_record.c: the job's stored form (lib/job_record.c).  The record
 * texts below were written by migd before the record had a codec of its own
 * (when it was the API form patched): the codec must still write exactly
 * them, byte for byte, and read them back to the same job, or databases
 * already on disk would load differently.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "job.h"
#include "job_record.h"
#include "job_fixture.h"
#include "unit.h"

/*
 * A job with every member set, ctx included, and values a default never has:
 * the shared fixture's, and values of its own for the rest.
 */
static struct mig_job *rich_job(void)
{
    struct mig_job *job = mig_job_new();
    job_fixture_fill(job);
    strcpy(job->uuid, "3f1c7a52-8e0b-4d6a-9c2e-5b7d1a0e4f63");
    job->vm_alias = mig_strdup("web \"01\"");
    strcpy(job->brand, "bhyve");
    job->mode = MIG_MODE_INCREMENTAL;
    job->state = MIG_JOB_RUNNING;
    job->phase = MIG_PHASE_PREPARE;
    mig_job_set_error(job, "RemoteFailed", "zfs receive exited 1 on cn2\nüber");
    job->phase = MIG_PHASE_SWITCH;
    strcpy(job->evacuation, "9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d");
    job->evac_parallel = 3;
    job->nleftovers = 2;
    job->leftovers[0] = (struct mig_leftover){
        .key = "cleanup.snapshots", .undo = false, .cn = "cn1", .kind = "snapshot",
        .name = "zones/x@migd-1", .reason = "dataset is busy",
        .since_ms = 1707350500000LL, .next_ms = 1707350530000LL, .tries = 2};
    job->leftovers[1] = (struct mig_leftover){
        .key = "prepare.reserve_ips", .undo = true, .cn = "api", .kind = "ip",
        .name = "10.0.0.5", .reason = "NAPI said 503",
        .since_ms = 1707350501000LL, .next_ms = 1707350561000LL, .tries = 0};
    struct mig_job_ctx *c = &job->ctx;
    snprintf(c->datasets[0].origin, sizeof(c->datasets[0].origin),
             "zones/5e4d0f36-9d35-11ee-a9c2-0b1f2a6c1e12@final");
    c->datasets[1].used = 5;
    c->nnics = 2;
    snprintf(c->nics[1].mac, sizeof(c->nics[1].mac), "90:b8:d0:01:02:04");
    c->nics[1].reserved_before = 1;
    c->nimages = 2;
    snprintf(c->images[0].uuid, sizeof(c->images[0].uuid), "5e4d0f36-9d35-11ee-a9c2-0b1f2a6c1e12");
    c->images[0].on_target = 1;
    snprintf(c->images[1].uuid, sizeof(c->images[1].uuid), "7080194a-046b-5103-b946-9dc545e914b1");
    c->images[1].on_target = -1;
    c->wake_ms = 1707350470000LL;
    c->quota_before = 10737418240LL;
    c->reservation_before = 0;
    snprintf(c->direct_key, sizeof(c->direct_key),
             "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbg==\n");
    snprintf(c->direct_pub, sizeof(c->direct_pub), "AAAAC3NzaC1lZDI1NTE5AAAAIA");
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

/* The jobs whose records migd wrote before the codec, and the text it wrote. */
static const struct {
    struct mig_job *(*make)(void);
    const char *text;
} olds[] = {{rich_job, old_rich}, {fresh_job, old_fresh}};

/* Fails the test unless job's record text is want, byte for byte. */
static void assert_record_text(const struct mig_job *job, const char *want)
{
    char *text = record_text(job);
    assert_string_equal(text, want);
    free(text);
}

/* The codec writes today exactly the text the old code path wrote. */
static void test_writes_the_old_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < UNIT_COUNT(olds); i++) {
        struct mig_job *job = olds[i].make();
        assert_record_text(job, olds[i].text);
        mig_job_free(job);
    }
}

/* A record on disk from before the codec loads to the job that wrote it. */
static void test_old_text_loads_to_the_same_job(void **state)
{
    (void)state;
    for (size_t i = 0; i < UNIT_COUNT(olds); i++) {
        struct mig_job *want = olds[i].make();
        struct mig_job *got = record_load(olds[i].text);
        assert_jobs_equal(got, want);
        /* and saved again, it is the same text: a load and save changes nothing */
        assert_record_text(got, olds[i].text);
        mig_job_free(got);
        mig_job_free(want);
    }
}

/* Every member survives write and read. */
static void test_round_trip(void **state)
{
    (void)state;
    struct mig_job *job = rich_job();
    mig_job_free(record_round_trip(job));
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
    struct mig_job *back = record_round_trip(job);
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
    mig_job_free(back);
    mig_job_free(job);
}

/* Whether the record text of job holds needle. */
static bool record_holds(const struct mig_job *job, const char *needle)
{
    char *text = record_text(job);
    bool holds = strstr(text, needle) != NULL;
    free(text);
    return holds;
}

/* zfs send -c as prepare found it: on record once known, so every round sends alike. */
static void test_compressed_round_trip(void **state)
{
    (void)state;
    struct mig_job *job = fresh_job();
    assert_false(record_holds(job, "compressed"));
    job->ctx.compressed_source = 1;
    job->ctx.compressed_target = 0;
    assert_true(record_holds(job, "\"compressed_source\":1,\"compressed_target\":0"));
    mig_job_free(record_round_trip(job));
    mig_job_free(job);
}

/* migctl pause JOB is on record only while set: an older record is a job that is not paused. */
static void test_paused_round_trip(void **state)
{
    (void)state;
    struct mig_job *job = fresh_job();
    assert_false(record_holds(job, "paused"));
    job->paused = true;
    assert_true(record_holds(job, "\"paused\":true"));
    struct mig_job *back = record_round_trip(job);
    assert_true(back->paused);
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

UNIT_TEST_MAIN(NULL, NULL,
               cmocka_unit_test(test_writes_the_old_text),
               cmocka_unit_test(test_old_text_loads_to_the_same_job),
               cmocka_unit_test(test_round_trip),
               cmocka_unit_test(test_gate_and_timer_round_trip),
               cmocka_unit_test(test_paused_round_trip),
               cmocka_unit_test(test_compressed_round_trip),
               cmocka_unit_test(test_record_is_not_the_api_form))
