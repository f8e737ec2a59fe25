/*
 * test_request.c: a POST /jobs body into a request (lib/request.c): what is
 * taken, the defaults, and the one-line answer for each thing that can be
 * wrong with a body.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "request.h"
#include "util.h"
#include "unit.h"

static int parse(const char *text, struct mig_request *req, char *err, size_t errsz)
{
    json_error_t jerr;
    json_t *body = json_loads(text, 0, &jerr);
    assert_non_null(body);
    int rc = mig_request_parse(body, req, err, errsz);
    json_decref(body);
    return rc;
}

static void test_taken(void **state)
{
    (void)state;
    struct mig_request req;
    char err[256] = "";
    mig_request_init(&req);
    assert_int_equal(parse("{\"vm_uuid\": \"web0\", \"target\": \"cn2\", \"mode\": \"auto\","
                           " \"dry_run\": true, \"allow_older_platform\": true,"
                           " \"cleanup_source\": false, \"transfer\": \"direct\","
                           " \"limit_mbps\": 160, \"min_up_s\": 90, \"cleanup_after_s\": 604800}",
                           &req, err, sizeof(err)),
                     0);
    assert_int_equal(req.min_up_s, 90);
    assert_int_equal(req.cleanup_after_s, 604800);
    assert_string_equal(req.vm, "web0");
    assert_string_equal(req.target, "cn2");
    assert_int_equal(req.mode, MIG_MODE_AUTO);
    assert_true(req.dry_run && req.allow_older_platform && !req.cleanup_source);
    assert_string_equal(req.transfer, "direct");
    assert_int_equal(req.limit_mbps, 160);
    assert_string_equal(req.evacuation, ""); /* never from the API */
    /* The defaults: full, placed, the configuration's transfer and cap; nulls are absent. */
    assert_int_equal(parse("{\"vm_uuid\": \"3b1e0c9a-35c4-4b4e-9a7e-2f7f1d0c1a11\","
                           " \"target\": null, \"limit_mbps\": null}",
                           &req, err, sizeof(err)),
                     0);
    assert_null(req.target);
    assert_int_equal(req.mode, MIG_MODE_FULL);
    assert_string_equal(req.transfer, "");
    assert_int_equal(req.limit_mbps, -1);
    assert_int_equal(req.min_up_s, -1);        /* health.min_up_s */
    assert_int_equal(req.cleanup_after_s, -1); /* cleanup.after_s */
    mig_request_clear(&req);
    assert_null(req.vm);
}

static void test_refused(void **state)
{
    (void)state;
    static const struct {
        const char *body, *why;
    } cases[] = {
        {"{}", "vm_uuid is required"},
        {"{\"vm_uuid\": null}", "vm_uuid must be a string"},
        {"{\"vm_uuid\": 7}", "vm_uuid must be a string"},
        {"{\"vm_uuid\": \"a\", \"dryrun\": true}", "unknown key \"dryrun\""},
        {"{\"vm_uuid\": \"a\", \"dry_run\": \"yes\"}", "dry_run must be a boolean"},
        {"{\"vm_uuid\": \"a\", \"limit_mbps\": 1.5}", "limit_mbps must be an integer"},
        {"{\"vm_uuid\": \"a\", \"limit_mbps\": -1}", "limit_mbps must be 0 (no cap) to 1000000 Mbit/s"},
        {"{\"vm_uuid\": \"a\", \"mode\": \"fast\"}", "mode \"fast\" is not full, incremental or auto"},
        {"{\"vm_uuid\": \"a\", \"transfer\": \"scp\"}", "transfer \"scp\" is not relay or direct"},
        {"{\"vm_uuid\": \"a\", \"min_up_s\": 86401}", "min_up_s must be 0 (no health gate) to 86400 s"},
        {"{\"vm_uuid\": \"a\", \"min_up_s\": \"30s\"}", "min_up_s must be an integer"},
        {"{\"vm_uuid\": \"a\", \"cleanup_after_s\": -1}",
         "cleanup_after_s must be 0 (only by hand) to 31622400 s (366 days)"},
        {"[]", "the body must be a JSON object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mig_request req;
        char err[256] = "";
        mig_request_init(&req);
        assert_int_equal(parse(cases[i].body, &req, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, cases[i].why);
        mig_request_clear(&req);
    }
}

/* migctl's DURATION (--min-up, --cleanup-after): digits and s, m, h or d. */
static void test_durations(void **state)
{
    (void)state;
    int64_t v = -1;
    assert_int_equal(mig_duration_parse("90m", 86400, &v), 0);
    assert_int_equal(v, 5400);
    assert_int_equal(mig_duration_parse("24h", 86400, &v), 0);
    assert_int_equal(v, 86400);
    assert_int_equal(mig_duration_parse("7d", 366LL * 86400, &v), 0);
    assert_int_equal(v, 604800);
    assert_int_equal(mig_duration_parse("45", 86400, &v), 0);
    assert_int_equal(v, 45);
    assert_int_equal(mig_duration_parse("0", 86400, &v), 0);
    assert_int_equal(v, 0);
    static const char *const bad[] = {"", "m", "-5m", "5 m", "5mm", "5w", "1.5h", "2d", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 17;
        assert_int_equal(mig_duration_parse(bad[i], 86400, &v), -EINVAL);
        assert_int_equal(v, 17); /* untouched */
    }
}

UNIT_TEST_MAIN(NULL, NULL,
               cmocka_unit_test(test_taken),
               cmocka_unit_test(test_durations),
               cmocka_unit_test(test_refused))
