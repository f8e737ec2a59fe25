/*
 * test_doctor.c: the comparisons of migctl doctor (lib/doctor.c) on facts
 * as the CNs print them: each kind of finding, its severity and its fix,
 * and what must never be reported (an unfinished job's own snapshots, a
 * VM where VMAPI places it, a copy a job is moving now).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "doctor.h"
#include "unit.h"

#define VM "6a1b2c3d-1111-4222-8333-444455556666"
#define VM2 "7b2c3d4e-2222-4333-8444-555566667777"
#define CN1 "00000000-0000-0000-0000-0000000000a1"
#define CN2 "00000000-0000-0000-0000-0000000000a2"
#define JOB_DONE "11111111-1111-4111-8111-111111111111"
#define JOB_SWITCHED "22222222-2222-4222-8222-222222222222"
#define JOB_GHOST "33333333-3333-4333-8333-333333333333"

static const char *ZONE_RUNNING = "0:global:running:/::liveimg:shared\n"
                                  "7:" VM ":running:/zones/" VM ":" VM ":joyent:excl\n";
static const char *ZONE_INSTALLED = "0:global:running:/::liveimg:shared\n"
                                    "-:" VM ":installed:/zones/" VM ":" VM ":joyent:excl\n";
static const char *NO_ZONES = "0:global:running:/::liveimg:shared\n";

static json_t *vms_on(const char *server, const char *state)
{
    return json_pack("[{s:s, s:s, s:s}]", "uuid", VM, "server_uuid", server, "state", state);
}

static json_t *job(const char *uuid, const char *state, const char *src, const char *dst)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "uuid", uuid, "vm_uuid", VM, "state",
                     state, "source_hostname", src, "target_hostname", dst, "created",
                     "2026-12-06T01:00:00.000Z");
}

/* A one-job list: job(uuid, state, src, dst). */
static json_t *one_job(const char *uuid, const char *state, const char *src, const char *dst)
{
    return json_pack("[o]", job(uuid, state, src, dst));
}

/* cn1 or cn2 (n) with these zones, and no snapshots, keys, flags, error or resume tokens. */
static struct mig_doctor_cn cn_zones(int n, const char *zones)
{
    return (struct mig_doctor_cn){n == 1 ? "cn1" : "cn2", n == 1 ? CN1 : CN2, "", zones, "", "",
                                  NULL, ""};
}

/* cn1 running the VM, with these snapshots and authorized keys (and no flags, error or tokens). */
static struct mig_doctor_cn cn1_snapshots(const char *snapshots, const char *keys)
{
    return (struct mig_doctor_cn){"cn1", CN1, snapshots, ZONE_RUNNING, keys, "", NULL, ""};
}

/* Drops the references held on a doctor run's findings, VMs and jobs. */
static void release(json_t *out, json_t *vms, json_t *jobs)
{
    json_decref(out);
    json_decref(vms);
    json_decref(jobs);
}

/*
 * Doctor's findings on the n CNs cns, with VMAPI placing the VM running on
 * cn1 and jobs (released here) the jobs migd knows; trust_unknown as
 * mig_doctor_findings takes it.
 */
static json_t *findings_on_cn1(const struct mig_doctor_cn *cns, size_t n, json_t *jobs,
                               bool trust_unknown)
{
    json_t *vms = vms_on(CN1, "running");
    json_t *out = mig_doctor_findings(cns, n, vms, jobs, NULL, trust_unknown);
    json_decref(vms);
    json_decref(jobs);
    return out;
}

/* findings_on_cn1(cns, n, jobs, true) finds nothing. */
static void expect_no_findings(const struct mig_doctor_cn *cns, size_t n, json_t *jobs)
{
    json_t *out = findings_on_cn1(cns, n, jobs, true);
    assert_int_equal(json_array_size(out), 0);
    json_decref(out);
}

/* The one finding of kind, failing unless there is exactly one. */
static json_t *only(json_t *findings, const char *kind)
{
    json_t *hit = NULL;
    size_t i;
    json_t *f;
    int n = 0;
    json_array_foreach(findings, i, f)
        if (strcmp(json_string_value(json_object_get(f, "kind")), kind) == 0) {
            hit = f;
            n++;
        }
    assert_int_equal(n, 1);
    return hit;
}

static const char *s(json_t *f, const char *key)
{
    return json_string_value(json_object_get(f, key));
}

static void test_nothing_wrong(void **state)
{
    (void)state;
    struct mig_doctor_cn cns[] = {cn1_snapshots("zones/" VM "@migd-" JOB_SWITCHED "-3\n", ""),
                                  cn_zones(2, NO_ZONES)};
    /* A switched job's final snapshot is its own; the VM runs where VMAPI says. */
    expect_no_findings(cns, 2, one_job(JOB_SWITCHED, "switched", "cn2", "cn1"));
}

static void test_snapshots_and_keys_of_ended_jobs(void **state)
{
    (void)state;
    const char *snapshots = "zones/" VM "@migd-" JOB_DONE "-1\nzones/" VM "@migd-" JOB_GHOST
                        "-2\nzones/" VM "@daily\n";
    const char *keys = " migd-job-" JOB_DONE "\n/var/tmp/migd-" JOB_GHOST "\n";
    struct mig_doctor_cn cns[] = {cn1_snapshots(snapshots, keys)};
    json_t *out = findings_on_cn1(cns, 1, one_job(JOB_DONE, "failed", "cn1", "cn2"), true);
    assert_int_equal(json_array_size(out), 4);
    size_t i;
    json_t *f;
    int snaps = 0;
    json_array_foreach(out, i, f)
    {
        if (strcmp(s(f, "kind"), "snapshot") != 0)
            continue;
        snaps++;
        assert_string_equal(s(f, "severity"), "warning");
        if (strstr(s(f, "name"), JOB_DONE) != NULL) {
            assert_string_equal(s(f, "job"), JOB_DONE);
            assert_non_null(strstr(s(f, "what"), "which ended failed"));
        } else {
            assert_true(json_is_null(json_object_get(f, "job")));
            assert_non_null(strstr(s(f, "what"), "which migd does not know"));
        }
        assert_non_null(strstr(s(f, "fix"), "zfs destroy zones/"));
    }
    assert_int_equal(snaps, 2); /* not the operator's @daily */
    json_t *k = only(out, "authorized_key");
    assert_string_equal(s(k, "job"), JOB_DONE);
    assert_non_null(strstr(s(k, "fix"), "\" migd-job-" JOB_DONE "\""));
    json_t *d = only(out, "key_dir");
    assert_string_equal(s(d, "fix"), "rm -rf /var/tmp/migd-" JOB_GHOST " (on cn1)");
    json_decref(out);
}

static void test_copies_kept_stray_and_only(void **state)
{
    (void)state;
    /* A switched job keeps the source copy: info, with its job. */
    struct mig_doctor_cn cns[] = {cn_zones(1, ZONE_INSTALLED), cn_zones(2, ZONE_RUNNING)};
    json_t *vms = vms_on(CN2, "running");
    json_t *jobs = one_job(JOB_SWITCHED, "switched", "cn1", "cn2");
    json_t *out = mig_doctor_findings(cns, 2, vms, jobs, NULL, true);
    json_t *z = only(out, "zone");
    assert_string_equal(s(z, "severity"), "info");
    assert_string_equal(s(z, "job"), JOB_SWITCHED);
    assert_non_null(strstr(s(z, "fix"), "migctl cleanup " JOB_SWITCHED));
    json_decref(out);
    json_decref(jobs);

    /* The job ended (rolled back, failed): a stray copy, removable. */
    jobs = one_job(JOB_DONE, "failed", "cn2", "cn1");
    out = mig_doctor_findings(cns, 2, vms, jobs, NULL, true);
    z = only(out, "zone");
    assert_string_equal(s(z, "severity"), "warning");
    assert_string_equal(s(z, "job"), JOB_DONE);
    assert_non_null(strstr(s(z, "fix"), "zonecfg -z " VM " delete -F"));
    json_decref(out);

    /* VMAPI places it where no zone is: the copy on cn1 is the only one, never removed. */
    struct mig_doctor_cn alone[] = {cn_zones(1, ZONE_INSTALLED), cn_zones(2, NO_ZONES)};
    json_decref(vms);
    vms = vms_on(CN2, "stopped");
    out = mig_doctor_findings(alone, 2, vms, jobs, NULL, true);
    z = only(out, "zone");
    assert_string_equal(s(z, "severity"), "critical");
    assert_non_null(strstr(s(z, "fix"), "never removed by migd"));
    json_decref(out);

    /* A job moves it now: nothing to say about its copies. */
    json_decref(jobs);
    jobs = one_job(JOB_SWITCHED, "running", "cn1", "cn2");
    json_decref(vms);
    vms = vms_on(CN2, "running");
    out = mig_doctor_findings(cns, 2, vms, jobs, NULL, true);
    assert_int_equal(json_array_size(out), 0);
    release(out, vms, jobs);
}

static void test_running_twice_nowhere_and_elsewhere(void **state)
{
    (void)state;
    json_t *jobs = json_array();
    struct mig_doctor_cn both[] = {cn_zones(1, ZONE_RUNNING), cn_zones(2, ZONE_RUNNING)};
    json_t *vms = vms_on(CN1, "running");
    json_t *out = mig_doctor_findings(both, 2, vms, jobs, NULL, true);
    assert_string_equal(s(only(out, "running_twice"), "severity"), "critical");
    json_decref(out);

    struct mig_doctor_cn none[] = {cn_zones(1, ZONE_INSTALLED), cn_zones(2, NO_ZONES)};
    out = mig_doctor_findings(none, 2, vms, jobs, NULL, true);
    json_t *f = only(out, "not_running");
    assert_string_equal(s(f, "severity"), "critical");
    assert_string_equal(s(f, "cn"), "cn1");
    json_decref(out);

    struct mig_doctor_cn there[] = {cn_zones(1, NO_ZONES), cn_zones(2, ZONE_RUNNING)};
    out = mig_doctor_findings(there, 2, vms, jobs, NULL, true);
    f = only(out, "vmapi_server");
    assert_string_equal(s(f, "cn"), "cn2");
    assert_string_equal(s(f, "fix"), "svcadm restart vm-agent (on cn2): its agent reports it");
    release(out, vms, jobs);
}

static void test_unreachable_and_unlisted(void **state)
{
    (void)state;
    json_t *jobs = json_array();
    struct mig_doctor_cn cns[] = {
        {"cn1", CN1, NULL, NULL, NULL, NULL, "ssh 10.0.0.1: connection refused", NULL},
        cn_zones(2, ZONE_INSTALLED),
    };
    /* VMAPI places it on a CN that was not checked: a copy, but nobody can say whose. */
    json_t *vms = json_pack("[{s:s, s:s, s:s}]", "uuid", VM, "server_uuid",
                            "00000000-0000-0000-0000-0000000000a9", "state", "running");
    json_t *out = mig_doctor_findings(cns, 2, vms, jobs, NULL, true);
    json_t *u = only(out, "unreachable");
    assert_non_null(strstr(s(u, "what"), "connection refused"));
    json_t *z = only(out, "zone");
    assert_string_equal(s(z, "severity"), "warning");
    assert_non_null(strstr(s(z, "what"), "not checked"));
    json_decref(out);
    /* A zone of a VM VMAPI does not list at all: the only copy migd can see. */
    json_decref(vms);
    vms = json_pack("[{s:s, s:s, s:s}]", "uuid", VM2, "server_uuid", CN2, "state", "running");
    out = mig_doctor_findings(cns + 1, 1, vms, jobs, NULL, true);
    assert_string_equal(s(only(out, "zone"), "severity"), "critical");
    assert_string_equal(s(only(out, "not_running"), "name"), VM2);
    release(out, vms, jobs);
}

/* autoboot and do-not-inventory as /etc/zones/UUID.xml has them, through grep -H. */
#define XML_LINE(ab) "/etc/zones/" VM ".xml:<zone name=\"" VM "\" zonepath=\"/zones/" VM \
                     "\" autoboot=\"" ab "\" brand=\"joyent\">\n"
#define DNI_LINE "/etc/zones/" VM ".xml:  <attr name=\"do-not-inventory\" type=\"string\" " \
                 "value=\"true\" />\n"

static void test_zone_flags(void **state)
{
    (void)state;
    json_t *jobs = json_array();
    json_t *vms = vms_on(CN2, "running");
    /* The old copy on cn1 was never disabled: both would boot it. */
    struct mig_doctor_cn twice[] = {
        {"cn1", CN1, "", ZONE_INSTALLED, "", XML_LINE("true"), NULL, ""},
        {"cn2", CN2, "", ZONE_RUNNING, "", XML_LINE("true"), NULL, ""},
    };
    json_t *out = mig_doctor_findings(twice, 2, vms, jobs, NULL, true);
    json_t *f = only(out, "bootable_twice");
    assert_string_equal(s(f, "cn"), "cn1");
    assert_string_equal(s(f, "severity"), "critical");
    assert_false(json_is_true(json_object_get(f, "fixable")));
    json_decref(out);

    /* Disabled and hidden as a job leaves it: only the stray copy is said, not the flags. */
    struct mig_doctor_cn kept[] = {
        {"cn1", CN1, "", ZONE_INSTALLED, "", XML_LINE("false") DNI_LINE, NULL, ""},
        {"cn2", CN2, "", ZONE_RUNNING, "", XML_LINE("true"), NULL, ""},
    };
    out = mig_doctor_findings(kept, 2, vms, jobs, NULL, true);
    assert_int_equal(json_array_size(out), 1);
    assert_string_equal(s(json_array_get(out, 0), "kind"), "zone");
    json_decref(out);

    /* Where VMAPI places it, a flag left on: the agent ignores it, a reboot leaves it down. */
    struct mig_doctor_cn left[] = {
        {"cn2", CN2, "", ZONE_RUNNING, "", XML_LINE("false") DNI_LINE, NULL, ""},
    };
    out = mig_doctor_findings(left, 1, vms, jobs, NULL, true);
    f = only(out, "flags");
    assert_string_equal(s(f, "fix"), "on cn2: zonecfg -z " VM
                                     " 'remove attr name=do-not-inventory; set autoboot=true'");
    release(out, vms, jobs);
}

/* Unreadable job rows: a thing of an unknown job is reported, never fixed. */
static void test_unknown_jobs_are_not_fixed_when_rows_are_unreadable(void **state)
{
    (void)state;
    struct mig_doctor_cn cns[] = {
        cn1_snapshots("zones/" VM "@migd-" JOB_GHOST "-1\nzones/" VM "@migd-" JOB_DONE "-1\n", "")};
    json_t *out = findings_on_cn1(cns, 1, one_job(JOB_DONE, "aborted", "cn1", "cn2"), false);
    assert_int_equal(json_array_size(out), 2);
    size_t i;
    json_t *f;
    json_array_foreach(out, i, f)
        assert_int_equal(json_is_true(json_object_get(f, "fixable")),
                         strstr(s(f, "name"), JOB_DONE) != NULL);
    json_decref(out);
}

/* A VM that a job moves now (queued, running, waiting) is never judged: its zones are in motion. */
static void test_a_vm_in_motion_is_not_judged(void **state)
{
    (void)state;
    struct mig_doctor_cn cns[] = {cn_zones(1, ZONE_RUNNING), cn_zones(2, ZONE_RUNNING)};
    static const char *const states[] = {"queued", "running", "waiting"};
    for (int k = 0; k < 3; k++)
        expect_no_findings(cns, 2, one_job(JOB_SWITCHED, states[k], "cn1", "cn2"));
}

/* A migd snapshot another tool holds is reported, never fixed; an unheld one is fixable. */
static void test_held_snapshots(void **state)
{
    (void)state;
    const char *snapshots = "zones/" VM "@migd-" JOB_DONE "-1\t2\nzones/" VM "@migd-" JOB_DONE
                        "-2\t0\nzones/" VM "@daily\t1\n";
    struct mig_doctor_cn cns[] = {cn1_snapshots(snapshots, "")};
    json_t *out = findings_on_cn1(cns, 1, one_job(JOB_DONE, "succeeded", "cn2", "cn1"), true);
    assert_int_equal(json_array_size(out), 2);
    json_t *held = only(out, "held_snapshot");
    assert_string_equal(s(held, "name"), "zones/" VM "@migd-" JOB_DONE "-1");
    assert_string_equal(s(held, "job"), JOB_DONE);
    assert_false(json_is_true(json_object_get(held, "fixable")));
    assert_non_null(strstr(s(held, "what"), "2 user hold(s)"));
    assert_non_null(strstr(s(held, "fix"), "zfs holds -H zones/" VM "@migd-" JOB_DONE "-1"));
    json_t *free_one = only(out, "snapshot");
    assert_string_equal(s(free_one, "name"), "zones/" VM "@migd-" JOB_DONE "-2");
    assert_true(json_is_true(json_object_get(free_one, "fixable")));
    json_decref(out);
}

/*
 * A partial receive no unfinished job will resume is a leftover (never fixed
 * by migd); one that the VM's running job targets is not; "-" is none.
 */
static void test_resume_tokens(void **state)
{
    (void)state;
    const char *tokens = "zones\t-\nzones/" VM "\t1-abc-def\nzones/" VM "@migd-x\t-\n"
                         "zones/" VM2 "-disk0\t1-0123\n";
    struct mig_doctor_cn cns[] = {
        cn_zones(1, ZONE_RUNNING),
        {"cn2", CN2, "", NO_ZONES, "", "", NULL, tokens},
    };
    json_t *out = findings_on_cn1(cns, 2, one_job(JOB_DONE, "failed", "cn1", "cn2"), true);
    assert_int_equal(json_array_size(out), 2);
    size_t i;
    json_t *f;
    json_array_foreach(out, i, f)
    {
        assert_string_equal(s(f, "kind"), "resume_token");
        assert_string_equal(s(f, "cn"), "cn2");
        assert_false(json_is_true(json_object_get(f, "fixable")));
        assert_non_null(strstr(s(f, "fix"), "zfs receive -A "));
    }
    assert_string_equal(s(json_array_get(out, 0), "name"), "zones/" VM);
    assert_string_equal(s(json_array_get(out, 0), "job"), JOB_DONE);
    assert_string_equal(s(json_array_get(out, 1), "vm_uuid"), VM2);
    assert_true(json_is_null(json_object_get(json_array_get(out, 1), "job")));
    json_decref(out);
    /* A job on its way to cn2 resumes its own stream. */
    out = findings_on_cn1(cns, 2, one_job(JOB_SWITCHED, "running", "cn1", "cn2"), true);
    assert_int_equal(json_array_size(out), 1);
    assert_string_equal(s(json_array_get(out, 0), "vm_uuid"), VM2);
    json_decref(out);
}

/*
 * NAPI still holds an IP an ended job reserved: fixable when no later job of
 * the VM found it reserved; an IP NAPI says is free, or could not say, is
 * not a leftover (the second is reported as unread).
 */
static void test_reserved_ips(void **state)
{
    (void)state;
    struct mig_doctor_cn cns[] = {cn_zones(1, ZONE_RUNNING)};
    json_t *vms = vms_on(CN1, "running");
    json_t *jobs = one_job(JOB_DONE, "rolled_back", "cn1", "cn2");
    json_t *ips = json_pack(
        "[{s:s, s:s, s:s, s:s, s:b, s:b}, {s:s, s:s, s:s, s:s, s:b, s:b},"
        " {s:s, s:s, s:s, s:s, s:b, s:b}, {s:s, s:s, s:s, s:s, s:b, s:s}]",
        "job", JOB_DONE, "vm_uuid", VM, "ip", "192.0.2.10", "network_uuid", CN2, "reserved", 1,
        "newest", 1, "job", JOB_DONE, "vm_uuid", VM, "ip", "192.0.2.11", "network_uuid", CN2,
        "reserved", 1, "newest", 0, "job", JOB_DONE, "vm_uuid", VM, "ip", "192.0.2.12",
        "network_uuid", CN2, "reserved", 0, "newest", 1, "job", JOB_DONE, "vm_uuid", VM, "ip",
        "192.0.2.13", "network_uuid", CN2, "newest", 1, "err", "NAPI: timed out");
    /* An IP NAPI gave to another instance since is none of the job's business. */
    json_array_append_new(ips, json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:s}", "job", JOB_DONE,
                                         "vm_uuid", VM, "ip", "192.0.2.14", "network_uuid", CN2,
                                         "reserved", 1, "newest", 1, "belongs_to_uuid", VM2));
    json_t *out = mig_doctor_findings(cns, 1, vms, jobs, ips, true);
    assert_int_equal(json_array_size(out), 3);
    json_t *a = json_array_get(out, 0), *b = json_array_get(out, 1), *c = json_array_get(out, 2);
    assert_string_equal(s(a, "kind"), "ip_reserved");
    assert_string_equal(s(a, "name"), "192.0.2.10 (network " CN2 ")");
    assert_string_equal(s(a, "job"), JOB_DONE);
    assert_true(json_is_true(json_object_get(a, "fixable")));
    assert_non_null(strstr(s(a, "fix"), "/ips/192.0.2.10 {\"reserved\": false}"));
    assert_string_equal(s(b, "name"), "192.0.2.11 (network " CN2 ")");
    assert_false(json_is_true(json_object_get(b, "fixable")));
    assert_non_null(strstr(s(b, "what"), "a later job"));
    assert_string_equal(s(c, "name"), "192.0.2.13 (network " CN2 ")");
    assert_false(json_is_true(json_object_get(c, "fixable")));
    assert_non_null(strstr(s(c, "what"), "timed out"));
    json_decref(out);
    json_decref(ips);
    json_decref(vms);
    json_decref(jobs);
}

UNIT_TEST_MAIN(NULL, NULL,
               cmocka_unit_test(test_nothing_wrong),
               cmocka_unit_test(test_snapshots_and_keys_of_ended_jobs),
               cmocka_unit_test(test_copies_kept_stray_and_only),
               cmocka_unit_test(test_running_twice_nowhere_and_elsewhere),
               cmocka_unit_test(test_unreachable_and_unlisted),
               cmocka_unit_test(test_unknown_jobs_are_not_fixed_when_rows_are_unreadable),
               cmocka_unit_test(test_a_vm_in_motion_is_not_judged),
               cmocka_unit_test(test_zone_flags),
               cmocka_unit_test(test_held_snapshots),
               cmocka_unit_test(test_resume_tokens),
               cmocka_unit_test(test_reserved_ips))
