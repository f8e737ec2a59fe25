/*
 * test_config.c: configuration parsing: defaults, product.md's full example,
 * the shipped etc/migd.json, and the refusals (unknown keys at any level,
 * wrong types and ranges, missing API URLs, malformed JSON), each with a
 * one-line message that names the key.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "unit.h"

#define APIS                                                                                       \
    "\"apis\": {\"vmapi\": \"http://vmapi.test\", \"cnapi\": \"http://cnapi.test\","               \
    " \"napi\": \"https://napi.test:8443\", \"imgapi\": \"http://10.0.0.9/\"}"

/* product.md's example, verbatim. */
static const char product_example[] =
    "{\n"
    "  \"datacenter\": \"us-east-1\",\n"
    "  \"db\": \"/var/db/migd/migd.sqlite\",\n"
    "  \"socket\": \"/var/run/migd.sock\",\n"
    "  \"log_level\": \"info\",\n"
    "  \"apis\": {\n"
    "    \"vmapi\": \"http://vmapi.us-east-1.example.com\",\n"
    "    \"cnapi\": \"http://cnapi.us-east-1.example.com\",\n"
    "    \"napi\":  \"http://napi.us-east-1.example.com\",\n"
    "    \"imgapi\": \"http://imgapi.us-east-1.example.com\"\n"
    "  },\n"
    "  \"ssh\": {\n"
    "    \"user\": \"root\",\n"
    "    \"port\": 22,\n"
    "    \"identity\": \"/root/.ssh/sdc.id_rsa\",\n"
    "    \"known_hosts\": \"/var/db/migd/known_hosts\",\n"
    "    \"connect_timeout_s\": 10,\n"
    "    \"keepalive_s\": 15\n"
    "  },\n"
    "  \"transfer\": { \"mode\": \"relay\", \"retries\": 5, \"limit_mbps\": 0 },\n"
    "  \"incremental\": { \"interval_s\": 60, \"auto_switch_bytes\": 268435456,\n"
    "                   \"max_downtime_s\": 10, \"max_rounds\": 20 },\n"
    "  \"limits\": { \"max_active_jobs\": 4, \"max_jobs_per_cn\": 2, \"cn_mbps\": 0,\n"
    "              \"switches_per_cn\": 1 },\n"
    "  \"health\": { \"min_up_s\": 30, \"command\": null, \"timeout_s\": 60,\n"
    "              \"on_failure\": \"rollback\" },\n"
    "  \"cleanup\": { \"after_s\": 0 },\n"
    "  \"placement\": { \"spread_tag\": null }\n"
    "}\n";

static struct mig_config *parse_ok(const char *text)
{
    struct mig_config *c = NULL;
    char err[512] = "";
    int rc = mig_config_parse(text, strlen(text), &c, err, sizeof(err));
    if (rc != 0)
        fail_msg("mig_config_parse: %d %s", rc, err);
    assert_non_null(c);
    return c;
}

/* The config file at path, loaded; fails the test with the loader's message when it does not. */
static struct mig_config *load_ok(const char *path)
{
    struct mig_config *c = NULL;
    char err[512] = "";
    int rc = mig_config_load(path, &c, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s: %s", path, err);
    return c;
}

/* Parsing text fails with rc and a one-line message containing want. */
static void expect_error(const char *text, int want_rc, const char *want)
{
    struct mig_config *c = (struct mig_config *)&c; /* must come back NULL */
    char err[512] = "";
    int rc = mig_config_parse(text, strlen(text), &c, err, sizeof(err));
    if (rc != want_rc || strstr(err, want) == NULL)
        fail_msg("config %s\n  rc %d (want %d), err '%s' (want '%s')", text, rc, want_rc, err,
                 want);
    assert_null(c);
    assert_null(strchr(err, '\n'));
}

/* A text the parser must refuse: its return code and a part of its message. */
struct bad_config {
    const char *text;
    int rc;
    const char *msg;
};

/* expect_error for each case in turn. */
static void expect_errors(const struct bad_config *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect_error(cases[i].text, cases[i].rc, cases[i].msg);
}

/* How a member of struct mig_config is compared. */
enum member_kind { STR, INT, I64 };

/* A member of struct mig_config: its name, where it lies and its kind. */
struct member {
    const char *name;
    size_t off;
    enum member_kind kind;
};

#define M(m, kind) {#m, offsetof(struct mig_config, m), kind}

/* Every member of struct mig_config, in its order. */
static const struct member members[] = {
    M(datacenter, STR),
    M(db, STR),
    M(socket, STR),
    M(log_level, INT),
    M(apis.vmapi, STR),
    M(apis.cnapi, STR),
    M(apis.napi, STR),
    M(apis.imgapi, STR),
    M(ssh.user, STR),
    M(ssh.port, INT),
    M(ssh.identity, STR),
    M(ssh.known_hosts, STR),
    M(ssh.connect_timeout_s, INT),
    M(ssh.keepalive_s, INT),
    M(ssh.ciphers, STR),
    M(transfer.mode, STR),
    M(transfer.retries, INT),
    M(transfer.limit_mbps, INT),
    M(transfer.streams, INT),
    M(incremental.interval_s, INT),
    M(incremental.auto_switch_bytes, I64),
    M(incremental.max_downtime_s, INT),
    M(incremental.max_rounds, INT),
    M(limits.max_active_jobs, INT),
    M(limits.max_jobs_per_cn, INT),
    M(limits.cn_mbps, INT),
    M(limits.switches_per_cn, INT),
    M(health.min_up_s, INT),
    M(health.command, STR),
    M(health.timeout_s, INT),
    M(health.on_failure, STR),
    M(cleanup.after_s, I64),
    M(placement.spread_tag, STR),
};

/*
 * Fails the test, naming the first member that differs, unless every member
 * of got equals want's (strings as text; a NULL string only equals NULL).
 */
static void assert_config(const struct mig_config *got, const struct mig_config *want)
{
    for (size_t i = 0; i < UNIT_COUNT(members); i++) {
        const char *g = (const char *)got + members[i].off;
        const char *w = (const char *)want + members[i].off;
        switch (members[i].kind) {
        case STR: {
            const char *gs = *(char *const *)g, *ws = *(char *const *)w;
            if (gs == NULL || ws == NULL ? gs != ws : strcmp(gs, ws) != 0)
                fail_msg("%s: '%s', want '%s'", members[i].name, gs ? gs : "(null)",
                         ws ? ws : "(null)");
            break;
        }
        case INT:
            if (*(const int *)g != *(const int *)w)
                fail_msg("%s: %d, want %d", members[i].name, *(const int *)g, *(const int *)w);
            break;
        case I64:
            if (*(const int64_t *)g != *(const int64_t *)w)
                fail_msg("%s: %lld, want %lld", members[i].name, (long long)*(const int64_t *)g,
                         (long long)*(const int64_t *)w);
            break;
        }
    }
}

/* What a config of only "apis" holds: every default. */
static const struct mig_config defaults = {
    .datacenter = "triton",
    .db = "/var/db/migd/migd.sqlite",
    .socket = "/var/run/migd.sock",
    .log_level = MIG_LOG_INFO,
    .apis = {.vmapi = "http://vmapi.test",
             .cnapi = "http://cnapi.test",
             .napi = "https://napi.test:8443",
             .imgapi = "http://10.0.0.9"}, /* trailing slash dropped */
    .ssh = {.user = "root",
            .port = 22,
            .identity = "/root/.ssh/sdc.id_rsa",
            .known_hosts = "/var/db/migd/known_hosts",
            .connect_timeout_s = 10,
            .keepalive_s = 15,
            .ciphers = NULL},
    .transfer = {.mode = "relay", .retries = 5, .limit_mbps = 0, .streams = 4},
    .incremental = {.interval_s = 60,
                    .auto_switch_bytes = 268435456,
                    .max_downtime_s = 10,
                    .max_rounds = 20},
    .limits = {.max_active_jobs = 4, .max_jobs_per_cn = 2, .cn_mbps = 0, .switches_per_cn = 1},
    .health = {.min_up_s = 30, .command = NULL, .timeout_s = 60, .on_failure = "rollback"},
    .cleanup = {.after_s = 0},
    .placement = {.spread_tag = NULL},
};

static void test_defaults(void **state)
{
    (void)state;
    struct mig_config *c = parse_ok("{" APIS "}");
    assert_config(c, &defaults);
    mig_config_free(c);
}

/* The keys added with the health gate, cleanup timer, switch spacing and spread tag. */
static void test_later_keys(void **state)
{
    (void)state;
    struct mig_config *c = parse_ok(
        "{" APIS ", \"health\": {\"min_up_s\": 0, \"command\": \"/opt/check --vm\","
        " \"timeout_s\": 5, \"on_failure\": \"report\"}, \"cleanup\": {\"after_s\": 86400},"
        " \"limits\": {\"switches_per_cn\": 2}, \"placement\": {\"spread_tag\": \"role\"}}");
    assert_int_equal(c->health.min_up_s, 0);
    assert_string_equal(c->health.command, "/opt/check --vm");
    assert_int_equal(c->health.timeout_s, 5);
    assert_string_equal(c->health.on_failure, "report");
    assert_int_equal(c->cleanup.after_s, 86400);
    assert_int_equal(c->limits.switches_per_cn, 2);
    assert_string_equal(c->placement.spread_tag, "role");
    mig_config_free(c);
}

static void test_product_example(void **state)
{
    (void)state;
    struct mig_config *c = parse_ok(product_example);
    assert_string_equal(c->datacenter, "us-east-1");
    assert_string_equal(c->apis.vmapi, "http://vmapi.us-east-1.example.com");
    assert_string_equal(c->apis.imgapi, "http://imgapi.us-east-1.example.com");
    assert_int_equal(c->ssh.port, 22);
    assert_int_equal(c->incremental.auto_switch_bytes, 268435456);
    assert_int_equal(c->limits.max_jobs_per_cn, 2);
    mig_config_free(c);
}

static void test_every_value_taken(void **state)
{
    (void)state;
    struct mig_config *c =
        parse_ok("{\"datacenter\": \"eu-1\", \"db\": \"/d/m.sqlite\", \"socket\": \"/r/m.sock\","
                 " \"log_level\": \"debug\", " APIS ","
                 " \"ssh\": {\"user\": \"migrator\", \"port\": 2222, \"identity\": \"/k/id\","
                 "  \"known_hosts\": \"/k/kh\", \"connect_timeout_s\": 3, \"keepalive_s\": 0,"
                 "  \"ciphers\": \"aes128-ctr,aes256-gcm@openssh.com\"},"
                 " \"transfer\": {\"mode\": \"direct\", \"retries\": 0, \"limit_mbps\": 800,"
                 "  \"streams\": 1},"
                 " \"incremental\": {\"interval_s\": 5, \"auto_switch_bytes\": 17179869184},"
                 " \"limits\": {\"max_active_jobs\": 10, \"max_jobs_per_cn\": 3}}");
    struct mig_config want = defaults;
    want.datacenter = "eu-1";
    want.db = "/d/m.sqlite";
    want.socket = "/r/m.sock";
    want.log_level = MIG_LOG_DEBUG;
    want.ssh.user = "migrator";
    want.ssh.port = 2222;
    want.ssh.identity = "/k/id";
    want.ssh.known_hosts = "/k/kh";
    want.ssh.connect_timeout_s = 3;
    want.ssh.keepalive_s = 0;
    want.ssh.ciphers = "aes128-ctr,aes256-gcm@openssh.com";
    want.transfer.mode = "direct";
    want.transfer.retries = 0;
    want.transfer.limit_mbps = 800;
    want.transfer.streams = 1;
    want.incremental.interval_s = 5;
    want.incremental.auto_switch_bytes = 17179869184LL; /* > 32 bits */
    want.limits.max_active_jobs = 10;
    want.limits.max_jobs_per_cn = 3;
    assert_config(c, &want);
    mig_config_free(c);

    c = parse_ok("{" APIS ", \"ssh\": {\"ciphers\": null}}");
    assert_null(c->ssh.ciphers);
    mig_config_free(c);
}

#define PORT_MSG "\"ssh.port\" must be an integer between 1 and 65535"

/*
 * Every text the parser must refuse that a case can spell out: unknown keys,
 * wrong types and ranges, missing API URLs, malformed JSON (one case a line).
 */
/* clang-format off */
static const struct bad_config refusals[] = {
    /* Unknown keys at any level. */
    {"{" APIS ", \"datacentre\": \"x\"}", -EINVAL, "unknown key \"datacentre\""},
    {"{" APIS ", \"ssh\": {\"prot\": 22}}", -EINVAL, "unknown key \"ssh.prot\""},
    {"{" APIS ", \"limits\": {\"max_active_jobs\": 2, \"max_jobs\": 1}}", -EINVAL, "unknown key \"limits.max_jobs\""},
    {"{\"apis\": {\"vmapi\": \"http://a\", \"cnapi\": \"http://a\", \"napi\": \"http://a\", \"imgapi\": \"http://a\", \"papi\": \"http://a\"}}", -EINVAL, "unknown key \"apis.papi\""},
    /* A typo is reported as a typo, not as the key it was meant to be. */
    {"{\"apis\": {\"vmapi\": \"http://a\", \"cnap\": \"http://a\"}}", -EINVAL, "unknown key \"apis.cnap\""},
    /* A key with quotes or a newline is quoted, keeping the message on one line. */
    {"{" APIS ", \"a\\\"b\\nc\": 1}", -EINVAL, "unknown key \"a\\\"b\\nc\""},
    {"{" APIS ", \"health\": {\"min_up\": 3}}", -EINVAL, "unknown key \"health.min_up\""},

    /* Wrong types and ranges. */
    {"{" APIS ", \"ssh\": {\"port\": \"22\"}}", -EINVAL, PORT_MSG},
    {"{" APIS ", \"ssh\": {\"port\": 22.0}}", -EINVAL, PORT_MSG},
    {"{" APIS ", \"ssh\": {\"port\": 0}}", -EINVAL, PORT_MSG},
    {"{" APIS ", \"ssh\": {\"port\": 65536}}", -EINVAL, PORT_MSG},
    {"{" APIS ", \"ssh\": {\"port\": null}}", -EINVAL, PORT_MSG},
    {"{" APIS ", \"ssh\": []}", -EINVAL, "\"ssh\" must be an object"},
    {"{" APIS ", \"db\": 5}", -EINVAL, "\"db\" must be a non-empty string"},
    {"{" APIS ", \"socket\": \"\"}", -EINVAL, "\"socket\" must be a non-empty string"},
    {"{" APIS ", \"ssh\": {\"user\": \"ro\\not\"}}", -EINVAL, "\"ssh.user\" must be a non-empty string"},
    {"{" APIS ", \"log_level\": \"loud\"}", -EINVAL, "\"log_level\" must be one of"},
    {"{" APIS ", \"log_level\": 30}", -EINVAL, "\"log_level\" must be one of"},
    {"{" APIS ", \"transfer\": {\"mode\": \"udp\"}}", -EINVAL, "\"transfer.mode\" must be \"relay\" or \"direct\""},
    {"{" APIS ", \"transfer\": {\"retries\": true}}", -EINVAL, "\"transfer.retries\" must be an integer between 0 and 100"},
    {"{" APIS ", \"transfer\": {\"limit_mbps\": -1}}", -EINVAL, "\"transfer.limit_mbps\" must be an integer between 0 and"},
    {"{" APIS ", \"transfer\": {\"streams\": 0}}", -EINVAL, "\"transfer.streams\" must be an integer between 1 and 8"},
    {"{" APIS ", \"transfer\": {\"streams\": 9}}", -EINVAL, "\"transfer.streams\" must be an integer between 1 and 8"},
    {"{" APIS ", \"incremental\": {\"auto_switch_bytes\": 0}}", -EINVAL, "\"incremental.auto_switch_bytes\" must be an integer of at least 1"},
    {"{" APIS ", \"incremental\": {\"interval_s\": 0}}", -EINVAL, "\"incremental.interval_s\" must be an integer between 1 and 86400"},
    {"{" APIS ", \"limits\": {\"max_jobs_per_cn\": 0}}", -EINVAL, "\"limits.max_jobs_per_cn\" must be an integer between 1 and 1000"},
    {"{" APIS ", \"ssh\": {\"ciphers\": \"aes128-ctr,,x\"}}", -EINVAL, "\"ssh.ciphers\" must be a comma-separated list"},
    {"{" APIS ", \"ssh\": {\"ciphers\": \"aes; rm -rf /\"}}", -EINVAL, "\"ssh.ciphers\" must be a comma-separated list"},
    /* The health gate's and the cleanup timer's keys. */
    {"{" APIS ", \"health\": {\"on_failure\": \"ignore\"}}", -EINVAL, "\"health.on_failure\" must be \"rollback\" or \"report\""},
    {"{" APIS ", \"health\": {\"command\": \"\"}}", -EINVAL, "\"health.command\" must be a non-empty string or null"},
    {"{" APIS ", \"cleanup\": {\"after_s\": -1}}", -EINVAL, "\"cleanup.after_s\" must be an integer between 0 and 31622400"},

    /* The API URLs are required (the cnapi URLs refused: test_apis_required). */
    {"{}", -EINVAL, "missing required key \"apis.vmapi\""},
    {"{\"db\": \"/x\"}", -EINVAL, "missing required key \"apis.vmapi\""},
    {"{\"apis\": {\"vmapi\": \"http://a\", \"cnapi\": \"http://a\", \"napi\": \"http://a\"}}", -EINVAL, "missing required key \"apis.imgapi\""},
    {"{\"apis\": \"http://a\"}", -EINVAL, "\"apis\" must be an object"},

    /* Malformed JSON. */
    {"{\"db\": }", MIG_EPARSE, "invalid JSON at line 1"},
    {"{" APIS ",\n\"db\": \"/a\",\n\"db\": \"/b\"}", MIG_EPARSE, "duplicate"},
    {"", MIG_EPARSE, "invalid JSON"},
    {"{" APIS "} trailing", MIG_EPARSE, "invalid JSON"},
    {"[1, 2]", -EINVAL, "must be a JSON object"},
    /* Duplicate keys inside a nested object too. */
    {"{" APIS ", \"ssh\": {\"port\": 22, \"port\": 2222}}", MIG_EPARSE, "duplicate"},
};
/* clang-format on */

static void test_refusals(void **state)
{
    (void)state;
    expect_errors(refusals, UNIT_COUNT(refusals));
}

/* Each URL that is not an http:// or https:// one is refused, naming apis.cnapi. */
static void test_api_urls(void **state)
{
    (void)state;
    const char *url_msg = "\"apis.cnapi\" must be an http:// or https:// URL";
    static const char *const bad[] = {"ftp://cnapi", "cnapi.test", "http://",
                                      "https:///x",  "http://a b", ""};
    char text[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text),
                 "{\"apis\": {\"vmapi\": \"http://a\", \"cnapi\": \"%s\", \"napi\": "
                 "\"http://a\", \"imgapi\": \"http://a\"}}",
                 bad[i]);
        expect_error(text, -EINVAL, url_msg);
    }
    expect_error("{\"apis\": {\"vmapi\": \"http://a\", \"cnapi\": 80, \"napi\": "
                 "\"http://a\", \"imgapi\": \"http://a\"}}",
                 -EINVAL, url_msg);
}

static void test_load_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_config.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/migd.json", dir);

    struct mig_config *c = (struct mig_config *)&c;
    char err[512] = "";
    assert_int_equal(mig_config_load(path, &c, err, sizeof(err)), -ENOENT);
    assert_null(c);
    assert_non_null(strstr(err, path));

    unit_write_file(path, "%s", "{" APIS ", \"ssh\": {\"prot\": 22}}");
    assert_int_equal(mig_config_load(path, &c, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "unknown key \"ssh.prot\""));

    unit_write_file(path, "%s", product_example);
    c = load_ok(path);
    assert_string_equal(c->datacenter, "us-east-1");
    mig_config_free(c);
    unlink(path);
    rmdir(dir);
}

static void test_shipped_example(void **state)
{
    (void)state;
    /* etc/migd.json sits next to schema/ in the source tree. */
    struct mig_config *c = load_ok(MIGD_SCHEMA_DIR "/../etc/migd.json");
    assert_string_equal(c->transfer.mode, "relay");
    assert_non_null(c->apis.vmapi);
    mig_config_free(c);
}

UNIT_TEST_MAIN(NULL, NULL,
               cmocka_unit_test(test_defaults),
               cmocka_unit_test(test_later_keys),
               cmocka_unit_test(test_product_example),
               cmocka_unit_test(test_every_value_taken),
               cmocka_unit_test(test_refusals),
               cmocka_unit_test(test_api_urls),
               cmocka_unit_test(test_load_file),
               cmocka_unit_test(test_shipped_example))
