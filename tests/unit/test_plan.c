/*
 * test_plan.c: the action tables (lib/plan.c) as data: every key of every
 * plan is unique and names its instance back (the journal depends on it),
 * the orders carry the safety rules, and every action that changes a CN
 * or an API can be probed and undone, or is past the point of no return.
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

#include "plan.h"
#include "unit.h"

static struct mig_job *job_with(int ndatasets, int nnics)
{
    struct mig_job *job = mig_job_new();
    snprintf(job->vm_uuid, sizeof(job->vm_uuid), "4f0a1c2e-6b7d-4e8f-9a0b-1c2d3e4f5a6b");
    job->ctx.ndatasets = ndatasets;
    for (int i = 0; i < ndatasets; i++)
        snprintf(job->ctx.datasets[i].name, sizeof(job->ctx.datasets[i].name), "zones/d%d", i);
    job->ctx.nnics = nnics;
    for (int i = 0; i < nnics; i++) {
        snprintf(job->ctx.nics[i].mac, sizeof(job->ctx.nics[i].mac), "90:b8:d0:00:00:%02d", i);
        snprintf(job->ctx.nics[i].ip, sizeof(job->ctx.nics[i].ip), "192.0.2.%d", 10 + i);
    }
    return job;
}

/* Every plan of a job with two datasets and three NICs, in one list. */
static int all_steps(const struct mig_job *job, struct mig_step *out, int max)
{
    static struct mig_plan p;
    int n = 0;
    void (*builders[])(const struct mig_job *, struct mig_plan *) = {
        mig_plan_prepare, mig_plan_switch, mig_plan_cleanup, mig_plan_return,
        mig_plan_remove_source};
    for (size_t b = 0; b < sizeof(builders) / sizeof(builders[0]); b++) {
        builders[b](job, &p);
        for (int i = 0; i < p.n && n < max; i++)
            out[n++] = p.steps[i];
    }
    for (int r = 1; r <= 3; r++) {
        mig_plan_round(job, r, &p);
        for (int i = 0; i < p.n && n < max; i++)
            out[n++] = p.steps[i];
    }
    return n;
}

static void test_keys_are_unique_and_name_their_instance(void **state)
{
    (void)state;
    static struct mig_step steps[600];
    struct mig_job *job = job_with(2, 3);
    int n = all_steps(job, steps, 600);
    assert_true(n > 60);
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++)
            if (strcmp(steps[i].key, steps[j].key) == 0)
                fail_msg("key %s appears twice", steps[i].key);
        struct mig_step back;
        assert_int_equal(mig_plan_step_from_key(steps[i].key, &back), 0);
        assert_ptr_equal(back.def, steps[i].def);
        assert_int_equal(back.round, steps[i].round);
        assert_int_equal(back.item, steps[i].item);
        assert_int_equal(back.phase, steps[i].phase);
        assert_string_equal(back.key, steps[i].key);
    }
    struct mig_step none;
    assert_int_equal(mig_plan_step_from_key("switch.reboot_the_world", &none), -ENOENT);
    assert_int_equal(mig_plan_step_from_key("sync.send@x#0", &none), -ENOENT);
    assert_int_equal(mig_plan_step_from_key("sync.send@1#0junk", &none), -ENOENT);
    mig_job_free(job);
}

static void test_every_change_can_be_probed_and_undone(void **state)
{
    (void)state;
    static struct mig_step steps[600];
    struct mig_job *job = job_with(2, 3);
    int n = all_steps(job, steps, 600);
    for (int i = 0; i < n; i++) {
        const struct mig_action_def *d = steps[i].def;
        assert_non_null(d->act);
        assert_non_null(d->does);
        if (d->flags & MIG_ACT_FORWARD) {
            /* Past the point of no return: retried forward, nothing to undo. */
            assert_null(d->undo);
            continue;
        }
        if (d->flags & MIG_ACT_READ || d->side == MIG_SIDE_LOCAL)
            continue;
        if (d->flags & MIG_ACT_REDO) {
            /* Acting again clears what an interrupted attempt left: no probe; an undo. */
            assert_non_null(d->undo);
            continue;
        }
        /* A change before the point of no return: "is it already so?" and its undo. */
        bool unstage = strcmp(d->name, "switch.unstage_target") == 0 ||
                       strcmp(d->name, "switch.unstage_again") == 0;
        if (d->probe == NULL && !unstage)
            fail_msg("%s changes %s but has no probe", steps[i].key, mig_side_name(d->side));
        bool first_send = strcmp(d->name, "sync.send") == 0;
        /* Unstaging deletes the staged zone that restaging makes again (and undoes). */
        if (d->undo == NULL && strcmp(d->name, "switch.send") != 0 &&
            strcmp(d->name, "prepare.import_image") != 0 && !first_send && !unstage)
            fail_msg("%s has no undo", steps[i].key);
    }
    mig_job_free(job);
}

/* The index of the first step named name in p, or fails. */
static int at(const struct mig_plan *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (strncmp(p->steps[i].key, name, strlen(name)) == 0)
            return i;
    fail_msg("no %s in the plan", name);
    return -1;
}

/* The remote actions that apply to job from the step named from to the one named to. */
static int remote_in_window(const struct mig_job *job, const struct mig_plan *p, const char *from,
                            const char *to)
{
    int n = 0;
    for (int i = at(p, from); i <= at(p, to); i++) {
        const struct mig_action_def *d = p->steps[i].def;
        if ((d->side == MIG_SIDE_SOURCE || d->side == MIG_SIDE_TARGET) &&
            (d->applies == NULL || d->applies(job, p->steps[i].round, p->steps[i].item)))
            n++;
    }
    return n;
}

static void test_orders_carry_the_safety_rules(void **state)
{
    (void)state;
    static struct mig_plan p;
    struct mig_job *job = job_with(1, 1);
    mig_plan_switch(job, &p);
    /*
     * The source is stopped before its final snapshot, disabled before the
     * target is shown: never bootable and shown on two CNs at once.
     */
    assert_true(at(&p, "switch.stop_source") < at(&p, "switch.snapshot"));
    assert_true(at(&p, "switch.disable_source") < at(&p, "switch.show_target"));
    /* The downtime ends at the start: the inventory's hand-over comes after it. */
    assert_true(at(&p, "switch.start_target") < at(&p, "switch.disable_source"));
    /*
     * The staged zone (hidden, autoboot off) is attached before the stop,
     * once staged as the source's configuration is now.
     */
    assert_true(at(&p, "switch.restage_target") < at(&p, "switch.attach_target"));
    assert_true(at(&p, "switch.attach_target") < at(&p, "switch.begin"));
    /* What needs no stopped VM runs before the downtime starts. */
    assert_true(at(&p, "switch.check_config") < at(&p, "switch.begin"));
    assert_true(at(&p, "switch.restage_target") < at(&p, "switch.begin"));
    assert_true(at(&p, "switch.find_base") < at(&p, "switch.begin"));
    assert_true(at(&p, "switch.stop_source") < at(&p, "switch.recheck_config"));
    assert_true(at(&p, "switch.unstage_again") < at(&p, "switch.restage_again"));
    assert_true(at(&p, "switch.restage_again") < at(&p, "switch.attach_again"));
    assert_true(at(&p, "switch.attach_again") < at(&p, "switch.start_target"));
    /*
     * A running zone's window runs four remote actions, one fewer than the
     * hand procedure's five: stop, snapshot, send, start (no attach).
     */
    job->vm_was_running = 1;
    assert_int_equal(remote_in_window(job, &p, "switch.begin", "switch.start_target"), 4);
    /* Staged while the VM runs: nothing of the zone's setup is left in the window. */
    for (int i = at(&p, "switch.begin"); i < at(&p, "switch.start_target"); i++) {
        const char *k = p.steps[i].key;
        /* Only a change made while the check before the stop ran is looked at again. */
        bool again = strstr(k, "recheck_config") != NULL || strstr(k, "_again") != NULL;
        if (!again && (strstr(k, "configure") != NULL || strstr(k, "cores") != NULL ||
                       strstr(k, "stage") != NULL || strstr(k, "check_config") != NULL ||
                       strstr(k, "find_base") != NULL || strstr(k, "attach") != NULL))
            fail_msg("%s is inside the downtime window", k);
    }
    mig_plan_round(job, 1, &p);
    assert_true(at(&p, "sync.send@1") < at(&p, "sync.stage_target"));
    assert_true(at(&p, "sync.stage_target") < at(&p, "sync.stage_cores"));
    mig_plan_round(job, 2, &p);
    for (int i = 0; i < p.n; i++)
        assert_null(strstr(p.steps[i].key, "stage"));
    mig_plan_switch(job, &p);
    /* The VM runs on the target before the inventory is written: no API keeps it down. */
    assert_true(at(&p, "switch.start_target") < at(&p, "switch.record_vmapi"));
    assert_true(at(&p, "switch.record_vmapi") < at(&p, "switch.verify"));
    assert_true((p.steps[at(&p, "switch.record_vmapi")].def->flags & MIG_ACT_FORWARD) != 0);
    assert_true((p.steps[at(&p, "switch.start_target")].def->flags & MIG_ACT_FORWARD) == 0);

    mig_plan_return(job, &p);
    /* Back: the target is made unbootable before the source is enabled. */
    assert_true(at(&p, "rollback.disable_target") < at(&p, "rollback.enable_source"));
    assert_true(at(&p, "rollback.detach_target") < at(&p, "rollback.enable_source"));
    /* Its window ends at the source's start (the source's copy is still hidden then). */
    job->ctx.back_was_running = 1;
    assert_true(at(&p, "rollback.start_source") < at(&p, "rollback.disable_target"));
    assert_int_equal(remote_in_window(job, &p, "rollback.begin", "rollback.start_source"), 4);
    assert_true(at(&p, "rollback.send") < at(&p, "rollback.detach_target"));
    /* A round goes back while the VM still runs on the target; it stops for the last delta. */
    assert_true(at(&p, "rollback.presend") < at(&p, "rollback.stop_target"));
    assert_true(at(&p, "rollback.stop_target") < at(&p, "rollback.snapshot"));
    assert_true(at(&p, "rollback.begin") < at(&p, "rollback.stop_target"));
    /* The last send back's base is found while the VM still runs on the target. */
    assert_true(at(&p, "rollback.presend") < at(&p, "rollback.find_base"));
    assert_true(at(&p, "rollback.find_base") < at(&p, "rollback.begin"));
    /* The target's copy goes only after the source runs and the inventory names it. */
    assert_true(at(&p, "rollback.verify") < at(&p, "rollback.delete_target_zone"));
    assert_true(at(&p, "rollback.delete_target_zone") < at(&p, "rollback.destroy_target_dataset"));
    /* The cores dataset (mounted inside the zone's) before the zone's dataset. */
    assert_true(at(&p, "rollback.destroy_target_cores") <
                at(&p, "rollback.destroy_target_dataset"));

    mig_plan_remove_source(job, &p);
    assert_true(at(&p, "cleanup.delete_source_zone") < at(&p, "cleanup.destroy_source_dataset"));
    assert_true(at(&p, "cleanup.destroy_source_cores") <
                at(&p, "cleanup.destroy_source_dataset"));
    mig_job_free(job);
}

static void test_dry_run_lists_what_applies(void **state)
{
    (void)state;
    struct mig_job *job = job_with(1, 2);
    job->source_hostname = strdup("cn1");
    job->target_hostname = strdup("cn2");
    job->ctx.nics[1].reserved_before = 1; /* nothing to reserve for it */
    job->vm_was_running = 0;
    json_t *a = mig_plan_describe(job);
    bool stop = false, reserve1 = false, attach = false;
    size_t i;
    json_t *s;
    json_array_foreach(a, i, s)
    {
        const char *key = json_string_value(json_object_get(s, "action"));
        stop = stop || strcmp(key, "switch.stop_source") == 0;
        reserve1 = reserve1 || strcmp(key, "prepare.reserve_ip#1") == 0;
        if (strcmp(key, "switch.attach_target") == 0) {
            attach = true;
            assert_string_equal(json_string_value(json_object_get(s, "on")), "cn2");
        }
    }
    assert_false(stop);     /* a stopped VM is not stopped */
    assert_false(reserve1); /* an IP reserved before is left as it is */
    assert_true(attach);
    json_decref(a);
    mig_job_free(job);
}

UNIT_TEST_MAIN(NULL, NULL,
               cmocka_unit_test(test_keys_are_unique_and_name_their_instance),
               cmocka_unit_test(test_every_change_can_be_probed_and_undone),
               cmocka_unit_test(test_orders_carry_the_safety_rules),
               cmocka_unit_test(test_dry_run_lists_what_applies))
