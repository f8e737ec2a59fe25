/*
 * test_output.c: migctl's rendering (cli/output.c) as text: every string
 * from migd is escaped before a terminal sees it, progress tells the truth
 * (100% once moved, ETA "-" when unknown, no rate during the switch), an
 * error is shown once, list's input is checked, -j -o keeps the job's
 * shape, and the default table fits 80 columns.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "output.h"
#include "unit.h"

static void assert_escaped(const char *in, const char *want)
{
    char *got = out_escape(in);
    assert_string_equal(got, want);
    free(got);
}

static void test_escape(void **state)
{
    (void)state;
    assert_escaped("web0", "web0");
    assert_escaped("\x1b[31mred", "\\x1b[31mred");
    assert_escaped("a\tb\nc\rd", "a\\tb\\nc\\rd");
    assert_escaped("bell\x07"
                   "del\x7f",
                   "bell\\x07del\\x7f");
    assert_escaped("caf\xc3\xa9", "caf\xc3\xa9"); /* UTF-8 kept */
    assert_escaped("csi\xc2\x9b"
                   "2J",
                   "csi\\u009b2J"); /* C1 CSI */
    assert_escaped("rlo\xe2\x80\xae"
                   "txt",
                   "rlo\\u202etxt");                  /* bidi override */
    assert_escaped("bad\xff\xc3", "bad\\xff\\xc3");   /* not UTF-8 */
    assert_escaped("over\xc0\xaf", "over\\xc0\\xaf"); /* overlong '/' */
    assert_escaped("back\\slash", "back\\slash");
    assert_null(out_escape(NULL));
}

static void test_escaped_tree(void **state)
{
    (void)state;
    json_t *j = json_pack("{s:s, s:[s, i], s:{s:s}}", "vm_alias", "\x1b]0;owned\x07", "list",
                          "ok\n", 3, "k\x1b", "inner", "\x1b[2J");
    json_t *e = out_escaped(j);
    assert_string_equal(json_string_value(json_object_get(e, "vm_alias")), "\\x1b]0;owned\\x07");
    assert_string_equal(json_string_value(json_array_get(json_object_get(e, "list"), 0)), "ok\\n");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(e, "list"), 1)), 3);
    assert_string_equal(json_string_value(out_get(json_object_get(e, "k\\x1b"), "inner")),
                        "\\x1b[2J");
    /* The original is left as it was: -j prints it. */
    assert_string_equal(json_string_value(json_object_get(j, "vm_alias")), "\x1b]0;owned\x07");
    json_decref(e);
    json_decref(j);
}

static void test_cut(void **state)
{
    (void)state;
    char *s = out_cut("a-very-long-alias", 10);
    assert_string_equal(s, "a-very-...");
    free(s);
    s = out_cut("short", 10);
    assert_string_equal(s, "short");
    free(s);
    /* Characters, not bytes: five two-byte letters fit in five. */
    s = out_cut("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 5);
    assert_string_equal(s, "\xc3\xa9\xc3\xa9...");
    free(s);
}

static void test_units(void **state)
{
    (void)state;
    char buf[32];
    out_duration(-1, buf, sizeof(buf));
    assert_string_equal(buf, "-");
    out_duration(9, buf, sizeof(buf));
    assert_string_equal(buf, "0:09");
    out_duration(3661, buf, sizeof(buf));
    assert_string_equal(buf, "1:01:01");
    out_bytes(28 << 20, buf, sizeof(buf));
    assert_string_equal(buf, "28.0 MiB");
    out_bytes(512, buf, sizeof(buf));
    assert_string_equal(buf, "512 B");
}

static json_t *job_in(const char *state, const char *phase, json_int_t sent, json_int_t total)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:I, s:I, s:I, s:n, s:i}, s:n, "
                     "s:b, s:s, s:i, s:n}",
                     "uuid", "d08cf549-1111-4000-8000-000000000001", "vm_uuid",
                     "11111111-0000-4000-8000-000000000001", "vm_alias", "web0", "state", state,
                     "phase", phase, "source_hostname", "cn1", "target_hostname", "cn2", "progress",
                     "bytes_sent", sent, "bytes_total", total, "rate_bytes_s", (json_int_t)4096,
                     "eta_s", "increments", 1, "activity", "cleanup_source", 0, "transfer", "relay",
                     "limit_mbps", 0, "error");
}

/* The job's progress line is want; the job is released. */
static void expect_progress_line(json_t *job, const char *want)
{
    char line[1024];
    out_progress_line(job, line, sizeof(line));
    assert_string_equal(line, want);
    json_decref(job);
}

static void assert_field(json_t *job, const char *field, const char *want)
{
    char *got = out_field(job, field);
    assert_string_equal(got, want);
    free(got);
}

static void test_progress_field(void **state)
{
    (void)state;
    json_t *job = job_in("succeeded", "cleanup", 97, 100);
    assert_field(job, "progress", "100%");
    assert_field(job, "id", "d08cf549");
    assert_field(job, "target", "cn2");
    assert_field(job, "progress.eta_s", "-");
    json_decref(job);
    job = job_in("switched", "cleanup", 0, 0);
    assert_field(job, "progress", "100%");
    json_decref(job);
    /* A resumed send may pass the estimate: not done until it is. */
    job = job_in("running", "sync", 120, 100);
    assert_field(job, "progress", "99%");
    json_decref(job);
    job = job_in("queued", "validate", 0, 0);
    assert_field(job, "progress", "-");
    json_decref(job);
}

static void test_progress_line(void **state)
{
    (void)state;
    char line[1024];
    json_t *job = job_in("running", "sync", 40 << 20, 100 << 20);
    out_progress_line(job, line, sizeof(line));
    assert_non_null(strstr(line, "40.0 MiB / 100.0 MiB  40%"));
    assert_non_null(strstr(line, "ETA -"));
    json_decref(job);
    /* The switch is the switch: what runs, never a rate or an ETA. */
    job = job_in("running", "switch", 40 << 20, 100 << 20);
    json_object_set_new(job, "activity",
                        json_string("switch.attach_target on cn2: zoneadm attach"));
    expect_progress_line(job, "switch   switch.attach_target on cn2: zoneadm attach");
    job = job_in("succeeded", "cleanup", 97, 100);
    expect_progress_line(job, "succeeded 100%  97 B sent; the VM runs on cn2");
    job = job_in("running", "sync", 1, 2);
    json_object_set_new(job, "aborting", json_true());
    expect_progress_line(job, "aborting in sync");
    job = job_in("waiting", "sync", 1, 2);
    json_object_set_new(job, "paused", json_true());
    expect_progress_line(job, "paused in sync");
    /* An ended job is not shown paused, whatever its record says. */
    job = job_in("aborted", "sync", 1, 2);
    json_object_set_new(job, "paused", json_true());
    out_progress_line(job, line, sizeof(line));
    assert_true(strstr(line, "paused") == NULL);
    json_decref(job);
}

/* The text written to f (a tmpfile), malloc'd; f is closed. */
static char *text_of(FILE *f)
{
    long n = ftell(f);
    char *text = calloc(1, (size_t)n + 1);
    rewind(f);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return text;
}

/* What out_job_summary prints for job. */
static char *summary(json_t *job)
{
    FILE *f = tmpfile();
    out_job_summary(f, job);
    return text_of(f);
}

static int occurrences(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_summary_error_once_and_the_asked(void **state)
{
    (void)state;
    json_t *job = job_in("failed", "sync", 1, 2);
    json_object_set_new(job, "error",
                        json_pack("{s:s, s:s, s:s}", "code", "SendFailed", "message",
                                  "zfs send on cn1 exited 1: broken pipe", "phase", "sync"));
    json_object_set_new(job, "cleanup_source", json_true());
    json_object_set_new(job, "limit_mbps", json_integer(16));
    char *text = summary(job);
    assert_int_equal(occurrences(text, "broken pipe"), 1);
    assert_non_null(strstr(text, "transfer    relay, at most 16 Mbit/s\n"));
    assert_non_null(strstr(text, "source copy DELETED once the VM runs on the target"));
    free(text);
    json_decref(job);
}

static void test_list_check(void **state)
{
    (void)state;
    char err[2048];
    char *ok[] = {"state=succeeded", "vm_alias=web0", "aborting=false"};
    assert_int_equal(
        out_list_check("id,vm_alias,progress.bytes_sent", "-created,id", ok, 3, err, sizeof(err)),
        0);
    assert_int_equal(out_list_check("id,bogus", NULL, NULL, 0, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "unknown field \"bogus\" in -o; valid fields: id, uuid,"));
    assert_int_equal(out_list_check("id", "-bogus", NULL, 0, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "unknown sort key \"bogus\" in -s; valid sort keys: id,"));
    char *key[] = {"foo=bar"};
    assert_int_equal(out_list_check("id", NULL, key, 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "unknown filter key \"foo\"; valid keys: id,"));
    char *value[] = {"state=bogus"};
    assert_int_equal(out_list_check("id", NULL, value, 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "valid: queued, running, waiting, switched, succeeded, failed, "
                                "aborted, rolled_back"));
    char *bare[] = {"state"};
    assert_int_equal(out_list_check("id", NULL, bare, 1, err, sizeof(err)), -EINVAL);
    assert_string_equal(out_filter_state(ok, 3), "succeeded");
}

static void test_project(void **state)
{
    (void)state;
    json_t *job = job_in("running", "sync", 1, 2);
    json_t *p = out_project(job, "id,progress.bytes_sent,progress.eta_s,state");
    char *s = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"id\":\"d08cf549\",\"progress\":{\"bytes_sent\":1,\"eta_s\":null},"
                           "\"state\":\"running\"}");
    free(s);
    json_decref(p);
    json_decref(job);
}

static void test_table_fits_80(void **state)
{
    (void)state;
    json_t *jobs = json_array();
    json_t *job = job_in("rolled_back", "rollback", 1, 2);
    json_object_set_new(job, "vm_alias", json_string("a-very-long-alias-for-a-vm-in-production"));
    json_object_set_new(job, "source_hostname", json_string("cn-ams3-rack12-unit14"));
    json_object_set_new(job, "target_hostname", json_string("cn-ams3-rack19-unit02"));
    json_array_append_new(jobs, job);
    char err[256];
    FILE *f = tmpfile();
    struct out_table_opts opts = {"id,vm_alias,state,phase,progress,source,target", NULL, true,
                                  false, 80};
    assert_int_equal(out_table(f, jobs, &opts, err, sizeof(err)), 0);
    char *text = text_of(f);
    assert_non_null(strstr(
        text,
        "d08cf549  a-very-l...  rolled_back  rollback  50%       cn-ams3-...  cn-ams3-...\n"));
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n"))
        assert_true(strlen(line) <= 80);
    free(text);
    /* -p: whole values, ':' and '\' escaped. */
    json_object_set_new(json_array_get(jobs, 0), "vm_alias", json_string("a:b\\c"));
    f = tmpfile();
    struct out_table_opts p = {"id,vm_alias", NULL, true, true, 0};
    assert_int_equal(out_table(f, jobs, &p, err, sizeof(err)), 0);
    text = text_of(f);
    assert_string_equal(text, "d08cf549:a\\:b\\\\c\n");
    free(text);
    json_decref(jobs);
}

UNIT_TEST_MAIN(NULL, NULL,
               cmocka_unit_test(test_escape),
               cmocka_unit_test(test_escaped_tree),
               cmocka_unit_test(test_cut),
               cmocka_unit_test(test_units),
               cmocka_unit_test(test_progress_field),
               cmocka_unit_test(test_progress_line),
               cmocka_unit_test(test_summary_error_once_and_the_asked),
               cmocka_unit_test(test_list_check),
               cmocka_unit_test(test_project),
               cmocka_unit_test(test_table_fits_80))
