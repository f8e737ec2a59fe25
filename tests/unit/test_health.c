/*
 * test_health.c: the health gate's record and what it reads on a CN
 * (lib/health.c, and the zone id column of cn_parse.c): svcs -x paragraphs
 * as illumos prints them, the faults that are new since the baseline, the
 * stored form that a restarted daemon reads back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cn.h"
#include "health.h"
#include "unit.h"

/* Two services in maintenance and one paragraph in another state, as svcs -z UUID -x prints. */
static const char SVCS[] =
    "svc:/network/http:apache (Apache 2 HTTP server)\n"
    "  Zone: 6a1b2c3d-1111-4222-8333-444455556666\n"
    " State: maintenance since Sun Dec  6 01:02:03 2026\n"
    "Reason: Start method exited with $SMF_EXIT_ERR_FATAL.\n"
    "   See: http://illumos.org/msg/SMF-8000-KS\n"
    "Impact: This service is not running.\n"
    "\n"
    "svc:/site/app:default (the app)\n"
    " State: degraded since Sun Dec  6 01:02:03 2026\n"
    "Impact: This service is degraded.\n"
    "\n"
    "svc:/system/cron:default (clock daemon)\n"
    " State: maintenance since Sun Dec  6 01:02:04 2026\n"
    "Reason: Maintenance requested by an administrator.\n";

static void test_smf_parse(void **state)
{
    (void)state;
    char buf[512];
    assert_int_equal(mig_smf_maintenance_parse(SVCS, buf, sizeof(buf)), 2);
    assert_string_equal(buf, "svc:/network/http:apache svc:/system/cron:default");
    assert_int_equal(mig_smf_maintenance_parse("", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    /* A list that does not fit keeps the whole FMRIs that do. */
    char small[30];
    assert_int_equal(mig_smf_maintenance_parse(SVCS, small, sizeof(small)), 1);
    assert_string_equal(small, "svc:/network/http:apache");
}

static void test_new_faults(void **state)
{
    (void)state;
    char buf[512];
    assert_int_equal(mig_smf_new_faults("svc:/a:x", "svc:/a:x", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    assert_int_equal(mig_smf_new_faults("svc:/a:x", "svc:/a:x svc:/b:y", buf, sizeof(buf)), 1);
    assert_string_equal(buf, "svc:/b:y");
    /* A prefix of a known FMRI is another service. */
    assert_int_equal(mig_smf_new_faults("svc:/a:xx", "svc:/a:x", buf, sizeof(buf)), 1);
    assert_int_equal(mig_smf_new_faults("", "svc:/a:x svc:/b:y", buf, sizeof(buf)), 2);
    assert_string_equal(buf, "svc:/a:x svc:/b:y");
    /* Fixed on the target (in maintenance before, fine now): nothing new. */
    assert_int_equal(mig_smf_new_faults("svc:/a:x svc:/b:y", "", buf, sizeof(buf)), 0);
}

static void test_zone_id(void **state)
{
    (void)state;
    static const char out[] = "0:global:running:/::liveimg:shared\n"
                              "7:6a1b2c3d-1111-4222-8333-444455556666:running:/zones/6a1b2c3d-"
                              "1111-4222-8333-444455556666:6a1b2c3d-1111-4222-8333-444455556666:"
                              "joyent:excl\n";
    struct mig_zone z;
    assert_int_equal(mig_parse_zoneadm_find(out, "6a1b2c3d-1111-4222-8333-444455556666", &z), 0);
    assert_int_equal(z.zoneid, 7);
    static const char installed[] = "-:6a1b2c3d-1111-4222-8333-444455556666:installed:/zones/x:"
                                    "6a1b2c3d-1111-4222-8333-444455556666:joyent:excl\n";
    assert_int_equal(
        mig_parse_zoneadm_find(installed, "6a1b2c3d-1111-4222-8333-444455556666", &z), 0);
    assert_int_equal(z.zoneid, -1);
}

static void test_brands(void **state)
{
    (void)state;
    assert_true(mig_health_smf_brand("joyent"));
    assert_true(mig_health_smf_brand("joyent-minimal"));
    assert_false(mig_health_smf_brand("lx"));
    assert_false(mig_health_smf_brand("bhyve"));
    assert_false(mig_health_smf_brand("kvm"));
}

static void test_record_round_trip(void **state)
{
    (void)state;
    struct mig_health h, back;
    mig_health_init(&h, 45);
    h.state = MIG_HEALTH_FAILED;
    h.since_ms = 1700000000123;
    h.zone_id = 7;
    h.smf_baseline = 1;
    h.passes = 12;
    snprintf(h.smf_before, sizeof(h.smf_before), "svc:/a:x");
    snprintf(h.why, sizeof(h.why), "zone_id: zone id 9, was 7: the zone restarted");
    mig_health_note(&h, MIG_CHECK_RUNNING, true, 1700000001000, "running on cn2");
    mig_health_note(&h, MIG_CHECK_ZONE_ID, false, 1700000002000, "zone id 9,\nwas 7");
    assert_string_equal(h.checks[MIG_CHECK_ZONE_ID].detail, "zone id 9, was 7"); /* one line */
    assert_int_equal(mig_health_failed_check(&h), MIG_CHECK_ZONE_ID);

    json_t *rec = mig_health_to_record(&h);
    assert_int_equal(mig_health_from_record(rec, &back), 0);
    json_decref(rec);
    assert_int_equal(back.state, MIG_HEALTH_FAILED);
    assert_int_equal(back.min_up_s, 45);
    assert_int_equal(back.since_ms, 1700000000123);
    assert_int_equal(back.zone_id, 7);
    assert_int_equal(back.smf_baseline, 1);
    assert_int_equal(back.passes, 12);
    assert_string_equal(back.smf_before, "svc:/a:x");
    assert_string_equal(back.why, h.why);
    assert_int_equal(back.checks[MIG_CHECK_RUNNING].ok, 1);
    assert_int_equal(back.checks[MIG_CHECK_ZONE_ID].ok, 0);
    assert_int_equal(back.checks[MIG_CHECK_SMF].ok, -1);
    assert_int_equal(back.checks[MIG_CHECK_ZONE_ID].at_ms, 1700000002000);

    /* The public form lists what was checked, and says why it failed. */
    json_t *pub = mig_health_to_json(&h);
    assert_string_equal(json_string_value(json_object_get(pub, "state")), "failed");
    assert_int_equal(json_array_size(json_object_get(pub, "checks")), 2);
    assert_string_equal(json_string_value(json_object_get(pub, "failure")), h.why);
    assert_string_equal(json_string_value(json_object_get(pub, "since")),
                        "2023-11-14T22:13:20.123Z");
    json_decref(pub);

    /* No gate: null in the API; a missing record member reads as no gate. */
    mig_health_init(&h, 0);
    pub = mig_health_to_json(&h);
    assert_true(json_is_null(pub));
    json_decref(pub);
    assert_int_equal(mig_health_from_record(NULL, &back), 0);
    assert_int_equal(back.state, MIG_HEALTH_NONE);

    /* A damaged record is refused, never half read. */
    json_t *bad = json_pack("{s:s}", "state", "sleeping");
    assert_int_equal(mig_health_from_record(bad, &back), -EINVAL);
    json_decref(bad);
    bad = json_pack("{s:s, s:[{s:s, s:b}]}", "state", "checking", "checks", "name", "uptime",
                    "ok", 1);
    assert_int_equal(mig_health_from_record(bad, &back), -EINVAL);
    json_decref(bad);
}

UNIT_TEST_MAIN(NULL, NULL,
               cmocka_unit_test(test_smf_parse),        cmocka_unit_test(test_new_faults),
               cmocka_unit_test(test_zone_id),          cmocka_unit_test(test_brands),
               cmocka_unit_test(test_record_round_trip))
