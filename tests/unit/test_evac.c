/*
 * test_evac.c: the pure parts of an evacuation's plan (lib/evac.c): what
 * each VM holds from one listing of the pool, one VM's time, and the window
 * of many on parallel lanes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "evac.h"
#include "unit.h"

#define VM_A "1f0e9d3a-5c2b-4e6f-8a7b-0c1d2e3f4a5b"
#define VM_K "2a1b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d"
#define IMAGE "9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"

static void test_used_by_vm(void **state)
{
    (void)state;
    /* zfs list -H -p -o name,used,referenced,origin,type -r -t filesystem,volume zones */
    const char *out = "zones\t9000000\t100\t-\tfilesystem\n"
                      "zones/" IMAGE "\t500\t500\t-\tfilesystem\n"
                      "zones/" VM_A "\t4000\t300\tzones/" IMAGE "@final\tfilesystem\n"
                      "zones/" VM_A "/data\t3000\t3000\t-\tfilesystem\n"
                      "zones/cores\t70\t70\t-\tfilesystem\n"
                      "zones/cores/" VM_A "\t60\t60\t-\tfilesystem\n"
                      "zones/" VM_K "\t100\t100\t-\tfilesystem\n"
                      "zones/" VM_K "-disk0\t20000\t20000\t-\tvolume\n"
                      "zones/" VM_K "-disk1\t7000\t7000\t-\tvolume\n"
                      "zones/not-a-uuid\t5\t5\t-\tfilesystem\n";
    json_t *used = mig_evac_used_by_vm(out);
    assert_non_null(used);
    /* What a send moves: each dataset's referenced bytes, its children's too; not its used
     * (reservations, snapshots); cores are not the VM's. */
    assert_int_equal(json_integer_value(json_object_get(used, VM_A)), 300 + 3000);
    /* A KVM VM: its zone dataset and every disk volume. */
    assert_int_equal(json_integer_value(json_object_get(used, VM_K)), 27100);
    /* The image (a uuid too) is listed: no VM has it, so nothing asks for it. */
    assert_int_equal(json_object_size(used), 3);
    json_decref(used);

    used = mig_evac_used_by_vm("garbage without tabs\n");
    assert_non_null(used);
    assert_int_equal(json_object_size(used), 0);
    json_decref(used);
}

static void test_estimate_of_one_vm(void **state)
{
    (void)state;
    /* Nothing measured: the default rate and the default fixed part. */
    assert_int_equal(mig_estimate_s(MIG_DEFAULT_RATE_BYTES_S * 30LL, -1, -1, 0),
                     30 + MIG_JOB_FIXED_S);
    /* Measured: 10 MB/s and 4.5 s besides the data. */
    assert_int_equal(mig_estimate_s(100 * 1000 * 1000LL, 10 * 1000 * 1000, 4500, 0), 15);
    /* The job's cap, when lower than what was measured: 8 Mbit/s = 1 MB/s. */
    assert_int_equal(mig_estimate_s(100 * 1000 * 1000LL, 10 * 1000 * 1000, 0, 8), 100);
    /* A cap above the measured rate changes nothing. */
    assert_int_equal(mig_estimate_s(100 * 1000 * 1000LL, 10 * 1000 * 1000, 0, 1000), 10);
    /* Rounded up to whole seconds; no data: the fixed part alone. */
    assert_int_equal(mig_estimate_s(1, 10 * 1000 * 1000, 0, 0), 1);
    assert_int_equal(mig_estimate_s(0, -1, 2000, 0), 2);
}

static void test_window_on_lanes(void **state)
{
    (void)state;
    const int64_t s[] = {10, 20, 30, 40};
    /* One lane: the sum. */
    assert_int_equal(mig_estimate_window_s(s, 4, 1), 100);
    /* Two lanes, smallest first, each job on the lane that frees first:
     * lane A 10+30, lane B 20+40. */
    assert_int_equal(mig_estimate_window_s(s, 4, 2), 60);
    /* More lanes than jobs: the longest job. */
    assert_int_equal(mig_estimate_window_s(s, 4, 8), 40);
    assert_int_equal(mig_estimate_window_s(s, 0, 2), 0);
    /* Nonsense parallelism is one lane; more than 64 lanes is 64. */
    assert_int_equal(mig_estimate_window_s(s, 4, 0), 100);
    int64_t many[100];
    for (int i = 0; i < 100; i++)
        many[i] = 1;
    assert_int_equal(mig_estimate_window_s(many, 100, 1000), 2);
}

/* A rolling drain's CNs on max_cns lanes: when each starts, and the whole. */
static void test_starts_on_lanes(void **state)
{
    (void)state;
    const int64_t cns[] = {300, 100, 200};
    int64_t starts[3] = {-1, -1, -1};
    /* One at a time: each starts when the one before ends. */
    assert_int_equal(mig_estimate_starts(cns, 3, 1, starts), 600);
    assert_int_equal(starts[0], 0);
    assert_int_equal(starts[1], 300);
    assert_int_equal(starts[2], 400);
    /* Two at once: the third takes the lane that frees first (the 100 s one). */
    assert_int_equal(mig_estimate_starts(cns, 3, 2, starts), 300);
    assert_int_equal(starts[0], 0);
    assert_int_equal(starts[1], 0);
    assert_int_equal(starts[2], 100);
    /* No starts wanted: the window alone, as mig_estimate_window_s. */
    assert_int_equal(mig_estimate_starts(cns, 3, 2, NULL), mig_estimate_window_s(cns, 3, 2));
}

/* outcome of (entry by, job state and phase, job's tag) in record "E" */
static enum mig_evac_outcome outcome_in(const char *by, const char *state, const char *phase,
                                        const char *tag)
{
    json_t *entry = by != NULL ? json_pack("{s:s}", "by", by) : json_object();
    json_t *job = state != NULL ? json_pack("{s:s, s:s, s:s}", "state", state, "phase", phase,
                                            "evacuation", tag)
                                : NULL;
    enum mig_evac_outcome o = mig_evac_entry_outcome("E", entry, job);
    json_decref(entry);
    json_decref(job);
    return o;
}

static enum mig_evac_outcome outcome(const char *by, const char *state, const char *tag)
{
    return outcome_in(by, state, "sync", tag);
}

static void test_entry_outcome(void **state)
{
    (void)state;
    /* An evacuation's job: it left once switched or succeeded. */
    assert_int_equal(outcome(NULL, "queued", "E"), MIG_EVAC_MOVING);
    assert_int_equal(outcome(NULL, "running", "E"), MIG_EVAC_MOVING);
    assert_int_equal(outcome(NULL, "waiting", "E"), MIG_EVAC_MOVING);
    assert_int_equal(outcome(NULL, "switched", "E"), MIG_EVAC_DONE);
    assert_int_equal(outcome(NULL, "succeeded", "E"), MIG_EVAC_DONE);
    assert_int_equal(outcome(NULL, "failed", "E"), MIG_EVAC_FAILED);
    assert_int_equal(outcome(NULL, "aborted", "E"), MIG_EVAC_FAILED);
    /* Rolled back under its own tag (its health gate, or by hand): it did not leave. */
    assert_int_equal(outcome(NULL, "rolled_back", "E"), MIG_EVAC_FAILED);
    /* Rolled back by a homecoming (re-tagged H): it left, then came home. */
    assert_int_equal(outcome(NULL, "rolled_back", "H"), MIG_EVAC_DONE);
    assert_int_equal(outcome_in(NULL, "running", "rollback", "H"), MIG_EVAC_DONE); /* going home */
    assert_int_equal(outcome(NULL, "switched", "H"), MIG_EVAC_DONE); /* its rollback gave up */
    /* Another record's job still migrating (taken as its own): not this one's to count done. */
    assert_int_equal(outcome_in(NULL, "running", "sync", "H"), MIG_EVAC_MOVING);
    assert_int_equal(outcome(NULL, NULL, NULL), MIG_EVAC_MOVING);
    /* A homecoming's rollback (record "E" is the homecoming here). */
    assert_int_equal(outcome("rollback", "switched", "X"), MIG_EVAC_WAITING); /* not started */
    assert_int_equal(outcome("rollback", "running", "E"), MIG_EVAC_MOVING);
    assert_int_equal(outcome("rollback", "rolled_back", "E"), MIG_EVAC_DONE);
    /* Rolled back by hand meanwhile (its tag untouched): home all the same. */
    assert_int_equal(outcome("rollback", "rolled_back", "X"), MIG_EVAC_DONE);
    assert_int_equal(outcome("rollback", "switched", "E"), MIG_EVAC_FAILED); /* gave up */
    /* Cleaned up by hand meanwhile: its copy is gone, it cannot roll back. */
    assert_int_equal(outcome("rollback", "succeeded", "X"), MIG_EVAC_FAILED);
}

UNIT_TEST_MAIN(NULL, NULL,
               cmocka_unit_test(test_used_by_vm),
               cmocka_unit_test(test_estimate_of_one_vm),
               cmocka_unit_test(test_window_on_lanes),
               cmocka_unit_test(test_starts_on_lanes),
               cmocka_unit_test(test_entry_outcome))
