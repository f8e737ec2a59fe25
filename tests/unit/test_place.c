/*
 * test_place.c: the placement planner (lib/place.c): which CN each VM of an
 * evacuation goes to, that a plan never counts more RAM or disk onto a CN
 * than it has, that every exclusion and skip names its rule, that the same
 * input gives the same plan, and that the planner agrees with
 * mig_validate_target on every VM it places or refuses.
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
#include "place.h"
#include "validate.h"
#include "unit.h"

#define PLAT "20240208T000000Z"
#define OLDPLAT "20230101T000000Z"
#define OWNER "cc0c0b36-0f7c-4bd3-a08e-1a3a4a2c2f11"
#define ADMIN "930896af-bf8c-48d4-885c-6573a94b1853"
#define GIB 1024

/* A uuid per kind and number, from a ring of buffers so that several fit in one call. */
static const char *uuid_of(char kind, int n)
{
    static char ring[32][37];
    static int next;
    char *b = ring[next++ % 32];
    snprintf(b, 37, "%c%c%c%c%c%c%c%c-0000-4000-8000-%012d", kind, kind, kind, kind, kind, kind,
             kind, kind, n);
    return b;
}
#define CNU(n) uuid_of('c', n)
#define VMU(n) uuid_of('a', n)

/* A JSON array of the comma-separated names in csv. */
static json_t *names(const char *csv)
{
    json_t *a = json_array();
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", csv);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save))
        json_array_append_new(a, json_string(t));
    return a;
}

/* A CN that may receive VMs (set up, running, not reserved, not the head node). */
static json_t *cn(int n, const char *host, int64_t ram_mib, int64_t disk_mib, const char *tags)
{
    json_t *s =
        json_pack("{s:s, s:s, s:b, s:b, s:s, s:b, s:s, s:I, s:I, s:I,"
                  " s:{s:s, s:s, s:s, s:{s:{s:o}}}}",
                  "uuid", CNU(n), "hostname", host, "setup", 1, "reserved", 0, "status", "running",
                  "headnode", 0, "current_platform", PLAT, "ram", (json_int_t)262144,
                  "unreserved_ram", (json_int_t)ram_mib, "unreserved_disk", (json_int_t)disk_mib,
                  "sysinfo", "UUID", CNU(n), "Admin IP", "10.99.99.13", "Live Image", PLAT,
                  "Network Interfaces", "ixgbe0", "NIC Names", names(tags));
    assert_non_null(s);
    return s;
}

/* A running joyent VM on cn 1 (the source), one NIC per tag in csv. */
static json_t *vm(int n, const char *alias, int64_t ram_mib, int64_t quota_gib, const char *tags)
{
    json_t *nics = json_array();
    json_t *t = names(tags);
    size_t i;
    json_t *tag;
    json_array_foreach(t, i, tag)
    {
        char mac[32];
        snprintf(mac, sizeof(mac), "90:b8:d0:00:%02x:%02zx", n & 0xff, i);
        json_array_append_new(nics, json_pack("{s:s, s:O}", "mac", mac, "nic_tag", tag));
    }
    json_decref(t);
    json_t *v =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:{}, s:{}, s:o}", "uuid", VMU(n),
                  "alias", alias, "brand", "joyent", "state", "running", "server_uuid", CNU(1),
                  "owner_uuid", OWNER, "ram", (json_int_t)ram_mib, "quota", (json_int_t)quota_gib,
                  "tags", "internal_metadata", "nics", nics);
    assert_non_null(v);
    return v;
}

struct fixture {
    json_t *servers, *vms;
    struct mig_place *p;
    struct mig_refusal r;
    struct mig_place_opts o; /* source cn 1 unless a test says otherwise */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->servers = json_array();
    f->vms = json_array();
    f->o.source = "cn1";
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    json_decref(f->servers);
    json_decref(f->vms);
    mig_place_free(f->p);
    free(f);
    return 0;
}

static void add(json_t *arr, json_t *item)
{
    assert_int_equal(json_array_append_new(arr, item), 0);
}

/* The usual source: cn1, every tag the tests use, lots of room (it is never a target). */
static void add_source(struct fixture *f)
{
    add(f->servers, cn(1, "cn1", 256 * GIB, 4000 * GIB, "admin,external,internal,storage"));
}

/* The head node hn, as CNAPI lists it: never a target. */
static void add_headnode(struct fixture *f, int n, int64_t ram_mib, const char *tags)
{
    json_t *hn = cn(n, "hn", ram_mib, 1000 * GIB, tags);
    json_object_set_new(hn, "headnode", json_true());
    add(f->servers, hn);
}

/* Plans with f->o and expects success. */
static struct mig_place *plan(struct fixture *f)
{
    mig_place_free(f->p);
    f->p = NULL;
    memset(&f->r, 0, sizeof(f->r));
    assert_int_equal(mig_place_plan(f->servers, f->vms, &f->o, &f->p, &f->r), 0);
    assert_non_null(f->p);
    assert_int_equal(f->p->nplaced + f->p->nskipped + f->p->nunplaced, f->p->nvms);
    return f->p;
}

/* Plans with f->o and expects the whole plan refused, with rule and message. */
static void expect_refused(struct fixture *f, const char *rule, const char *message)
{
    mig_place_free(f->p);
    f->p = NULL;
    assert_int_equal(mig_place_plan(f->servers, f->vms, &f->o, &f->p, &f->r), MIG_EREFUSED);
    assert_null(f->p);
    assert_string_equal(f->r.rule, rule);
    assert_string_equal(f->r.message, message);
}

/*
 * The index of the element whose uuid is u in the n elements at base (each
 * size bytes, its char *uuid at uuid_off); fails the test, naming what and u,
 * when there is none.
 */
static size_t index_of(const void *base, size_t n, size_t size, size_t uuid_off, const char *u,
                       const char *what)
{
    for (size_t i = 0; i < n; i++) {
        const char *elem = (const char *)base + i * size;
        if (strcmp(*(char *const *)(elem + uuid_off), u) == 0)
            return i;
    }
    fail_msg("%s %s is not in the plan", what, u);
    return 0;
}

/* VM n of the plan, failing the test when it is not in it. */
static const struct mig_place_vm *vm_of(const struct mig_place *p, int n)
{
    return &p->vms[index_of(p->vms, p->nvms, sizeof(p->vms[0]),
                            offsetof(struct mig_place_vm, uuid), VMU(n), "VM")];
}

/* CN n of the plan, failing the test when it is not in it. */
static const struct mig_place_cn *cn_of(const struct mig_place *p, int n)
{
    return &p->cns[index_of(p->cns, p->ncns, sizeof(p->cns[0]),
                            offsetof(struct mig_place_cn, uuid), CNU(n), "CN")];
}

/* VM n goes to CN n, for the reason why (NULL: not checked). */
static void expect_target(const struct mig_place *p, int vmn, int cnn, const char *why)
{
    const struct mig_place_vm *v = vm_of(p, vmn);
    if (v->target == NULL)
        fail_msg("VM %d not placed: %s: %s", vmn, v->rule, v->why);
    assert_string_equal(v->target->uuid, CNU(cnn));
    assert_null(v->rule);
    assert_false(v->skipped);
    if (why != NULL)
        assert_string_equal(v->why, why);
}

/* VM n goes nowhere, by rule, for the reason why. */
static void expect_none(const struct mig_place *p, int vmn, bool skipped, const char *rule,
                        const char *why)
{
    const struct mig_place_vm *v = vm_of(p, vmn);
    assert_null(v->target);
    assert_int_equal(v->skipped, skipped);
    assert_non_null(v->rule);
    assert_string_equal(v->rule, rule);
    assert_string_equal(v->why, why);
}

/* expect_none with the reason formatted from fmt (a VM's uuid, mostly). */
static void expect_nonef(const struct mig_place *p, int vmn, bool skipped, const char *rule,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void expect_nonef(const struct mig_place *p, int vmn, bool skipped, const char *rule,
                         const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    expect_none(p, vmn, skipped, rule, why);
}

/* --- NIC tags ------------------------------------------------------------------ */

static void test_nic_tags(void **state)
{
    struct fixture *f = *state;
    add_source(f);
    add(f->servers, cn(2, "cn2", 64 * GIB, 1000 * GIB, "admin,external"));
    add(f->servers, cn(3, "cn3", 64 * GIB, 1000 * GIB, "admin,internal"));
    add_headnode(f, 4, 64 * GIB, "admin,external,internal,storage");

    add(f->vms, vm(1, "web", GIB, 10, "external"));
    add(f->vms, vm(2, "db", GIB, 10, "external,storage"));    /* only the source and hn */
    add(f->vms, vm(3, "bak", GIB, 10, "backup"));             /* nobody */
    add(f->vms, vm(4, "both", GIB, 10, "external,internal")); /* no single CN */
    add(f->vms, vm(5, "int", GIB, 10, "internal,internal"));
    add(f->vms, vm(6, "nonic", GIB, 10, "")); /* fits anywhere eligible */
    const struct mig_place *p = plan(f);

    expect_target(p, 1, 2,
                  "the only CN that fits: 63 GiB RAM free after placement; has NIC tags "
                  "external");
    expect_nonef(p, 2, false, MIG_RULE_NIC_TAG,
                 "no eligible target CN has NIC tag storage, which VM db (%s) uses", VMU(2));
    expect_nonef(p, 3, false, MIG_RULE_NIC_TAG, "no CN has NIC tag backup, which VM bak (%s) uses",
                 VMU(3));
    expect_nonef(p, 4, false, MIG_RULE_NIC_TAG,
                 "no eligible target CN has all the NIC tags of VM both (%s): external, internal",
                 VMU(4));
    expect_target(p, 5, 3,
                  "the only CN that fits: 63 GiB RAM free after placement; has NIC tags "
                  "internal");
    expect_target(p, 6, 2,
                  "most free RAM after placement: 62 GiB, the best of 2 CNs that fit, tied with "
                  "1 other, first by hostname; needs no NIC tag");
    assert_int_equal(p->nplaced, 3);
    assert_int_equal(p->nunplaced, 3);
    assert_int_equal(p->nskipped, 0);

    /* Tags listed under a link aggregation count, as validate.h says. */
    json_t *aggr = json_pack("{s:{s:[s]}}", "aggr0", "NIC Names", "backup");
    json_object_set_new(json_object_get(json_array_get(f->servers, 2), "sysinfo"),
                        "Link Aggregations", aggr);
    p = plan(f);
    expect_target(p, 3, 3, NULL);
}

/* Gives a CN an underlay vnic carrying the overlay rules in csv (sysinfo, as Triton's). */
static json_t *with_underlay(json_t *server, const char *rules)
{
    json_object_set_new(json_object_get(server, "sysinfo"), "Virtual Network Interfaces",
                        json_pack("{s:{s:s, s:s, s:o}}", "sdc_underlay0", "Link Status", "up",
                                  "Host Interface", "ixgbe1", "Overlay Nic Tags", names(rules)));
    return server;
}

/* --- fabric NICs --------------------------------------------------------------- */

static void test_fabric(void **state)
{
    struct fixture *f = *state;
    add(f->servers,
        with_underlay(cn(1, "cn1", 256 * GIB, 4000 * GIB, "admin,external"), "sdc_overlay"));
    add(f->servers,
        with_underlay(cn(2, "cn2", 32 * GIB, 1000 * GIB, "admin,external"), "sdc_overlay"));
    add(f->servers, cn(3, "cn3", 64 * GIB, 1000 * GIB, "admin,external,sdc_underlay"));
    add(f->servers, with_underlay(cn(4, "cn4", 16 * GIB, 1000 * GIB, "admin"), "other_overlay"));

    add(f->vms, vm(1, "fab", GIB, 10, "sdc_overlay/4151198"));
    add(f->vms, vm(2, "both", GIB, 10, "external,sdc_overlay/4151198"));
    add(f->vms, vm(3, "other", GIB, 10, "other_overlay/12"));
    add(f->vms, vm(4, "nobody", GIB, 10, "user_overlay/5"));
    add(f->vms, vm(5, "plain", GIB, 10, "external")); /* cn3 has the most RAM */
    const struct mig_place *p = plan(f);

    /* cn3 has the most RAM, but carries no overlay: its NIC tag alone is no underlay. */
    expect_target(p, 1, 2,
                  "the only CN that fits: 31 GiB RAM free after placement; has NIC "
                  "tags sdc_overlay/4151198");
    expect_target(p, 2, 2, NULL);
    expect_target(p, 3, 4, NULL);
    expect_nonef(p, 4, false, MIG_RULE_UNDERLAY,
                 "no CN has an underlay carrying overlay tag user_overlay, which the fabric NIC "
                 "user_overlay/5 of VM nobody (%s) needs",
                 VMU(4));
    expect_target(p, 5, 3, NULL);

    /* Only cn3 and cn4 allowed: the underlay is missing among the eligible CNs. */
    const char *to[] = {"cn3", "cn4"};
    f->o.to = to;
    f->o.nto = 2;
    p = plan(f);
    expect_nonef(
        p, 1, false, MIG_RULE_UNDERLAY,
        "no eligible target CN has an underlay carrying overlay tag sdc_overlay, which the "
        "fabric NIC sdc_overlay/4151198 of VM fab (%s) needs",
        VMU(1));
    /* cn4 (sorted fourth) carries sdc_overlay too, but not the external tag. */
    with_underlay(json_array_get(f->servers, 3), "other_overlay,sdc_overlay");
    p = plan(f);
    /* Each NIC's need is met by some CN, not both by one: the NIC tag rule lists them. */
    expect_nonef(p, 2, false, MIG_RULE_NIC_TAG,
                 "no eligible target CN has all the NIC tags of VM both (%s): external, "
                 "sdc_overlay/4151198",
                 VMU(2));
    expect_target(p, 1, 4, NULL);
}

/* --- capacity ---------------------------------------------------------------- */

static void test_ram_never_overcommitted(void **state)
{
    struct fixture *f = *state;
    add_source(f);
    for (int c = 2; c <= 4; c++) {
        char host[8];
        snprintf(host, sizeof(host), "cn%d", c);
        add(f->servers, cn(c, host, 10 * GIB, 1000 * GIB, "external"));
    }
    /* Room, but not the tag: never a candidate, and the refusal says why it is not counted. */
    add(f->servers, cn(5, "cn5", 32 * GIB, 1000 * GIB, "internal"));
    for (int i = 1; i <= 40; i++)
        add(f->vms, vm(i, "small", GIB, 1, "external"));
    add(f->vms, vm(41, "huge", 16 * GIB, 1, "external"));
    const struct mig_place *p = plan(f);

    /* Largest first: the huge VM is decided before any small one took room. */
    assert_string_equal(p->vms[0].uuid, VMU(41));
    expect_none(p, 41, false, MIG_RULE_RAM,
                "needs 16 GiB RAM, the most free on a CN with its NIC tags (external) is 10 GiB "
                "on cn2");
    /* Equal VMs, in uuid order, go round the CNs: each time the most free, first by hostname. */
    for (int i = 1; i <= 30; i++)
        expect_target(p, i, 2 + (i - 1) % 3, NULL);
    for (int i = 31; i <= 40; i++)
        expect_none(p, i, false, MIG_RULE_RAM,
                    "needs 1 GiB RAM, the most free on a CN with its NIC tags (external) is 0 GiB "
                    "on cn2 (after 10 VMs of this plan)");
    for (int c = 2; c <= 4; c++) {
        const struct mig_place_cn *x = cn_of(p, c);
        assert_int_equal(x->ram_free_mib, 0);
        assert_int_equal(x->ram_planned_mib, 10 * GIB);
        assert_int_equal(x->nplanned, 10);
        assert_int_equal(x->disk_planned_mib, 10 * GIB);
    }
    assert_int_equal(cn_of(p, 1)->nplanned, 0);
    assert_int_equal(cn_of(p, 5)->nplanned, 0);
    assert_int_equal(cn_of(p, 5)->ram_free_mib, 32 * GIB);
    assert_int_equal(p->nplaced, 30);
    assert_int_equal(p->nunplaced, 11);

    /* Counted from the VMs too: each CN's total is what its VMs add up to. */
    int64_t sum[5] = {0};
    for (size_t i = 0; i < p->nvms; i++)
        if (p->vms[i].target != NULL)
            sum[p->vms[i].target - p->cns] += p->vms[i].ram_mib;
    assert_int_equal(p->ncns, 5);
    for (size_t c = 0; c < p->ncns; c++) {
        assert_int_equal(sum[c], p->cns[c].ram_planned_mib);
        assert_true(p->cns[c].ram_free_mib >= 0);
    }
}

static void test_disk_never_overcommitted(void **state)
{
    struct fixture *f = *state;
    add_source(f);
    add(f->servers, cn(2, "cn2", 100 * GIB, 50 * GIB, "external")); /* RAM, little disk */
    add(f->servers, cn(3, "cn3", 50 * GIB, 100 * GIB, "external")); /* disk, less RAM */
    add(f->vms, vm(1, "fat", GIB, 60, "external"));
    for (int i = 2; i <= 6; i++)
        add(f->vms, vm(i, "thin", GIB, 20, "external"));
    const struct mig_place *p = plan(f);

    /* Most disk first among equal RAM: the 60 GiB one fits only on cn3. */
    assert_string_equal(p->vms[0].uuid, VMU(1));
    expect_target(p, 1, 3,
                  "the only CN that fits: 49 GiB RAM free after placement; has NIC tags "
                  "external");
    expect_target(p, 2, 2, NULL); /* cn2 has more RAM while its disk lasts */
    expect_target(p, 3, 2, NULL);
    expect_target(p, 4, 3, NULL); /* cn2 has 10 GiB of disk left */
    expect_target(p, 5, 3, NULL);
    expect_none(p, 6, false, MIG_RULE_DISK,
                "needs 20 GiB disk, the most free on a CN with room for its RAM is 10 GiB on cn2 "
                "(after 2 VMs of this plan)");
    assert_int_equal(cn_of(p, 2)->disk_free_mib, 10 * GIB);
    assert_int_equal(cn_of(p, 3)->disk_free_mib, 0);
    assert_int_equal(cn_of(p, 3)->disk_planned_mib, 100 * GIB);

    /* bhyve: the quota and every disk count, as submit.c counts them. */
    json_array_clear(f->vms);
    json_t *hvm = vm(7, "hvm", 2 * GIB, 10, "external");
    json_object_set_new(hvm, "brand", json_string("bhyve"));
    json_object_set_new(
        hvm, "disks",
        json_pack("[{s:I}, {s:I}]", "size", (json_int_t)10240, "size", (json_int_t)20480));
    add(f->vms, hvm);
    p = plan(f);
    assert_int_equal(vm_of(p, 7)->disk_mib, 40960);
    expect_target(p, 7, 2, NULL);
    assert_int_equal(cn_of(p, 2)->disk_free_mib, 10 * GIB);
}

/* --- the target list ------------------------------------------------------------ */

static void test_to_honoured(void **state)
{
    struct fixture *f = *state;
    add_source(f);
    add(f->servers, cn(2, "cn2", 128 * GIB, 1000 * GIB, "external"));
    add(f->servers, cn(3, "cn3", 64 * GIB, 1000 * GIB, "external"));
    add(f->servers, cn(4, "cn4", 64 * GIB, 1000 * GIB, "external"));
    add_headnode(f, 5, 512 * GIB, "external");
    add(f->vms, vm(1, "a", GIB, 10, "external"));
    add(f->vms, vm(2, "b", GIB, 10, "external"));

    const struct mig_place *p = plan(f);
    expect_target(p, 1, 2, NULL);
    expect_target(p, 2, 2, NULL);

    /* By uuid and by hostname; cn2 has the most RAM but is not listed. */
    const char *to[] = {CNU(3), "cn4"};
    f->o.to = to;
    f->o.nto = 2;
    p = plan(f);
    expect_target(p, 1, 3, NULL);
    expect_target(p, 2, 4, NULL);
    assert_false(cn_of(p, 2)->eligible);
    assert_string_equal(cn_of(p, 2)->rule, MIG_PLACE_RULE_NOT_IN_TO);
    assert_string_equal(cn_of(p, 2)->why, "cn2 is not in the target list");
    assert_int_equal(cn_of(p, 2)->nplanned, 0);

    /* A listed CN that a rule excludes: the reason is the rule's. */
    const char *only_hn[] = {"hn"};
    f->o.to = only_hn;
    f->o.nto = 1;
    p = plan(f);
    expect_none(p, 1, false, MIG_RULE_TARGET_HEADNODE,
                "no eligible target CN: target hn is the head node; VMs are not migrated to the "
                "head node");
    const char *only_src[] = {"cn1"};
    f->o.to = only_src;
    p = plan(f);
    expect_none(p, 1, false, MIG_RULE_TARGET_SAME, "no eligible target CN: cn1 is the source CN");

    /* A name CNAPI does not know refuses the whole plan. */
    const char *bad[] = {"cn3", "cn9"};
    f->o.to = bad;
    f->o.nto = 2;
    expect_refused(f, MIG_RULE_TARGET_UNKNOWN,
                   "target CN cn9 is not among CNAPI's servers; check the CN uuid or hostname in "
                   "the target list");
}

/* --- determinism ------------------------------------------------------------------- */

static void test_ties_broken_by_hostname_then_uuid(void **state)
{
    struct fixture *f = *state;
    add_source(f);
    add(f->servers, cn(2, "b-cn", 32 * GIB, 1000 * GIB, "external")); /* smaller uuid */
    add(f->servers, cn(3, "a-cn", 32 * GIB, 1000 * GIB, "external"));
    add(f->vms, vm(1, "web", GIB, 10, "external"));
    const struct mig_place *p = plan(f);
    expect_target(p, 1, 3,
                  "most free RAM after placement: 31 GiB, the best of 2 CNs that fit, tied with "
                  "1 other, first by hostname; has NIC tags external");

    /* Same hostname (CNAPI should not allow it, but then): the smaller uuid. */
    json_array_clear(f->servers);
    add_source(f);
    add(f->servers, cn(5, "twin", 32 * GIB, 1000 * GIB, "external"));
    add(f->servers, cn(4, "twin", 32 * GIB, 1000 * GIB, "external"));
    p = plan(f);
    expect_target(p, 1, 4, NULL);
}

/* A datacenter with many ties: 8 equal CNs, 60 VMs of three sizes. */
static void build_tied_dc(json_t *servers, json_t *vms, bool reversed)
{
    json_t *s = json_array(), *v = json_array();
    add(s, cn(1, "cn1", 256 * GIB, 4000 * GIB, "external"));
    for (int c = 2; c <= 9; c++) {
        char host[8];
        snprintf(host, sizeof(host), "cn%d", c);
        add(s, cn(c, host, 14 * GIB, 200 * GIB, "external"));
    }
    for (int i = 1; i <= 60; i++)
        add(v, vm(i, "t", (1 + i % 3) * GIB, 10 * (1 + i % 2), "external"));
    for (size_t k = 0; k < json_array_size(s); k++)
        add(servers, json_incref(json_array_get(s, reversed ? json_array_size(s) - 1 - k : k)));
    for (size_t k = 0; k < json_array_size(v); k++)
        add(vms, json_incref(json_array_get(v, reversed ? json_array_size(v) - 1 - k : k)));
    json_decref(s);
    json_decref(v);
}

static void test_same_input_same_plan(void **state)
{
    struct fixture *f = *state;
    build_tied_dc(f->servers, f->vms, false);
    json_t *a = mig_place_json(plan(f));
    json_t *again = mig_place_json(plan(f));
    json_array_clear(f->servers);
    json_array_clear(f->vms);
    build_tied_dc(f->servers, f->vms, true);
    json_t *b = mig_place_json(plan(f));
    char *sa = json_dumps(a, JSON_COMPACT), *sb = json_dumps(b, JSON_COMPACT),
         *sagain = json_dumps(again, JSON_COMPACT);
    assert_string_equal(sa, sagain);
    assert_string_equal(sa, sb); /* input order does not matter */
    /* 8 x 14 GiB = 112 GiB for 20 x (1+2+3) GiB = 120 GiB: some do not fit. */
    assert_int_equal(f->p->nplaced, 52); /* 20 x 3 + 20 x 2 + 12 x 1 GiB = 112 GiB */
    assert_int_equal(f->p->nunplaced, 8);
    for (size_t c = 0; c < f->p->ncns; c++)
        assert_int_equal(f->p->cns[c].ram_free_mib, c == 0 ? 256 * GIB : 0);
    /* Placement order: RAM descending, then disk descending, then uuid. */
    for (size_t i = 1; i < f->p->nvms; i++) {
        const struct mig_place_vm *x = &f->p->vms[i - 1], *y = &f->p->vms[i];
        assert_true(x->ram_mib > y->ram_mib ||
                    (x->ram_mib == y->ram_mib &&
                     (x->disk_mib > y->disk_mib ||
                      (x->disk_mib == y->disk_mib && strcmp(x->uuid, y->uuid) < 0))));
    }
    free(sa);
    free(sb);
    free(sagain);
    json_decref(a);
    json_decref(b);
    json_decref(again);
}

/* Largest first packs what smallest first would not: 4 x 2 GiB and 1 x 8 GiB on 2 x 8 GiB. */
static void test_largest_first(void **state)
{
    struct fixture *f = *state;
    add_source(f);
    add(f->servers, cn(2, "cn2", 8 * GIB, 1000 * GIB, "external"));
    add(f->servers, cn(3, "cn3", 8 * GIB, 1000 * GIB, "external"));
    for (int i = 1; i <= 4; i++)
        add(f->vms, vm(i, "small", 2 * GIB, 10, "external"));
    add(f->vms, vm(5, "big", 8 * GIB, 10, "external"));
    const struct mig_place *p = plan(f);
    /*
     * Smallest first would spread the small ones 2+2 over both CNs (most free
     * RAM), leaving 4 GiB on each and no room for the big one.
     */
    assert_int_equal(p->nplaced, 5);
    assert_string_equal(p->vms[0].uuid, VMU(5));
    for (int i = 1; i <= 4; i++)
        assert_string_equal(p->vms[i].uuid, VMU(i));
    expect_target(p, 5, 2,
                  "most free RAM after placement: 0 GiB, the best of 2 CNs that fit, tied with 1 "
                  "other, first by hostname; has NIC tags external");
    for (int i = 1; i <= 4; i++)
        expect_target(p, i, 3, NULL);
    assert_int_equal(cn_of(p, 2)->ram_free_mib, 0);
    assert_int_equal(cn_of(p, 3)->ram_free_mib, 0);
}

/* --- excluded CNs -------------------------------------------------------------------- */

static void add_excluded(struct fixture *f)
{
    json_t *s;
    add(f->servers, s = cn(3, "cn3", 64 * GIB, 1000 * GIB, "external"));
    json_object_set_new(s, "reserved", json_true());
    add(f->servers, s = cn(4, "cn4", 64 * GIB, 1000 * GIB, "external"));
    json_object_set_new(s, "setup", json_false());
    add(f->servers, s = cn(5, "cn5", 64 * GIB, 1000 * GIB, "external"));
    json_object_set_new(s, "status", json_string("unknown"));
    add(f->servers, s = cn(6, "cn6", 64 * GIB, 1000 * GIB, "external"));
    json_object_set_new(s, "current_platform", json_string(OLDPLAT));
    add(f->servers, s = cn(7, "cn7", 64 * GIB, 1000 * GIB, "external"));
    json_object_del(s, "unreserved_ram");
    add_headnode(f, 9, 512 * GIB, "external");
}

static void expect_excluded(const struct mig_place *p, int n, const char *rule, const char *why)
{
    const struct mig_place_cn *c = cn_of(p, n);
    assert_false(c->eligible);
    assert_string_equal(c->rule, rule);
    assert_string_equal(c->why, why);
    assert_int_equal(c->nplanned, 0);
}

static void test_excluded_cns(void **state)
{
    struct fixture *f = *state;
    add_source(f);
    add_excluded(f);
    json_t *newer = cn(8, "cn8", 8 * GIB, 1000 * GIB, "external"); /* least RAM, but eligible */
    json_object_set_new(newer, "current_platform", json_string("20250101T000000Z"));
    add(f->servers, newer);
    add(f->vms, vm(1, "web", GIB, 10, "external"));
    const struct mig_place *p = plan(f);

    expect_target(p, 1, 8,
                  "the only CN that fits: 7 GiB RAM free after placement; has NIC tags "
                  "external");
    assert_true(cn_of(p, 8)->eligible);
    assert_null(cn_of(p, 8)->rule);
    assert_null(cn_of(p, 8)->why);
    expect_excluded(p, 1, MIG_RULE_TARGET_SAME, "cn1 is the source CN");
    expect_excluded(p, 3, MIG_RULE_TARGET_RESERVED,
                    "target cn3 is reserved; unreserve it in CNAPI or pick another CN");
    expect_excluded(p, 4, MIG_RULE_TARGET_SETUP,
                    "target cn4 is not set up (setup=false); set it up or pick another CN");
    expect_excluded(p, 5, MIG_RULE_TARGET_RUNNING,
                    "target cn5 has status unknown, not running; bring it back or pick another CN");
    expect_excluded(p, 6, MIG_RULE_PLATFORM,
                    "target cn6 runs platform " OLDPLAT ", older than the source's " PLAT
                    "; use -D to allow");
    expect_excluded(p, 7, MIG_RULE_RAM,
                    "target cn7 reports no unreserved_ram (CNAPI capacity missing); retry when "
                    "CNAPI has it");
    expect_excluded(p, 9, MIG_RULE_TARGET_HEADNODE,
                    "target hn is the head node; VMs are not migrated to the head node");
    assert_string_equal(p->source->uuid, CNU(1));
    /* The plan lists CNs by hostname, then uuid. */
    const char *order[] = {"cn1", "cn3", "cn4", "cn5", "cn6", "cn7", "cn8", "hn"};
    assert_int_equal(p->ncns, 8);
    for (size_t i = 0; i < 8; i++)
        assert_string_equal(p->cns[i].hostname, order[i]);

    /* Without cn8, nothing is eligible: every excluded CN is named with its rule. */
    json_array_remove(f->servers, json_array_size(f->servers) - 1);
    p = plan(f);
    expect_none(p, 1, false, MIG_PLACE_RULE_NO_TARGET,
                "no eligible target CN among 6: cn3 TargetReserved, cn4 TargetNotSetup, cn5 "
                "TargetNotRunning, cn6 TargetPlatformOlder, cn7 TargetInsufficientRam, hn "
                "TargetIsHeadnode");

    /* -D: the older platform is allowed. */
    f->o.allow_older_platform = true;
    p = plan(f);
    expect_target(p, 1, 6, NULL);
    assert_true(cn_of(p, 6)->eligible);

    /* Only the older CN, without -D: its rule is the VM's. */
    f->o.allow_older_platform = false;
    json_array_clear(f->servers);
    add_source(f);
    json_t *old = cn(6, "cn6", 64 * GIB, 1000 * GIB, "external");
    json_object_set_new(old, "current_platform", json_string(OLDPLAT));
    add(f->servers, old);
    p = plan(f);
    expect_none(p, 1, false, MIG_RULE_PLATFORM,
                "no eligible target CN: target cn6 runs platform " OLDPLAT
                ", older than the source's " PLAT "; use -D to allow");
}

/* --- skipped VMs -------------------------------------------------------------------------- */

static void test_skipped_vms(void **state)
{
    struct fixture *f = *state;
    add_source(f);
    add(f->servers, cn(2, "cn2", 64 * GIB, 1000 * GIB, "external"));
    json_t *v;
    add(f->vms, v = vm(1, "vmapi0", GIB, 10, "external"));
    json_object_set_new(json_object_get(v, "tags"), "smartdc_role", json_string("vmapi"));
    add(f->vms, v = vm(2, "nat0", GIB, 10, "external"));
    json_object_set_new(json_object_get(v, "internal_metadata"), "com.joyent:ipnat_subnet",
                        json_string("10.0.0.0/24"));
    add(f->vms, v = vm(3, "adminvm", GIB, 10, "external"));
    json_object_set_new(v, "owner_uuid", json_string(ADMIN));
    add(f->vms, v = vm(4, "prov", GIB, 10, "external"));
    json_object_set_new(v, "state", json_string("provisioning"));
    add(f->vms, v = vm(5, "dock", GIB, 10, "external"));
    json_object_set_new(v, "brand", json_string("docker"));
    add(f->vms, v = vm(6, "elsewhere", GIB, 10, "external"));
    json_object_set_new(v, "server_uuid", json_string(CNU(2)));
    add(f->vms, v = vm(7, "off", 3 * GIB, 10, "external"));
    json_object_set_new(v, "state", json_string("stopped"));
    f->o.admin_uuid = ADMIN;
    const struct mig_place *p = plan(f);

    expect_nonef(p, 1, true, MIG_RULE_VM_CORE,
                 "VM vmapi0 (%s) is a Triton core zone (tags.smartdc_role=vmapi); core zones are "
                 "moved with Triton's own tools, not migd",
                 VMU(1));
    expect_nonef(
        p, 2, true, MIG_RULE_VM_NAT,
        "VM nat0 (%s) is a NAT zone (internal_metadata com.joyent:ipnat_subnet=10.0.0.0/24); "
        "Triton recreates NAT zones itself, they are not migrated",
        VMU(2));
    expect_nonef(p, 3, true, MIG_RULE_VM_CORE,
                 "VM adminvm (%s) is owned by the admin user " ADMIN
                 ", so it is a Triton core zone; "
                 "core zones are moved with Triton's own tools, not migd",
                 VMU(3));
    expect_nonef(p, 4, true, MIG_RULE_VM_STATE,
                 "VM prov (%s) is provisioning; only running or stopped VMs can be migrated",
                 VMU(4));
    expect_nonef(p, 5, true, MIG_RULE_VM_BRAND,
                 "VM dock (%s) has brand docker, which migd does not migrate (supported: joyent, "
                 "joyent-minimal, lx, bhyve, kvm)",
                 VMU(5));
    expect_nonef(
        p, 6, true, MIG_PLACE_RULE_NOT_ON_SOURCE,
        "VM elsewhere (%s) is on CN cn2, not on the source cn1; plan it from the CN it is on",
        VMU(6));
    expect_target(p, 7, 2,
                  "the only CN that fits: 61 GiB RAM free after placement; has NIC tags "
                  "external");
    assert_int_equal(p->nskipped, 6);
    assert_int_equal(p->nplaced, 1);
    /* A skipped VM takes no room. */
    assert_int_equal(cn_of(p, 2)->ram_planned_mib, 3 * GIB);
    assert_int_equal(cn_of(p, 2)->nplanned, 1);
}

/* --- one VM (migctl migrate VM without a target) ------------------------------------------- */

static void test_one_vm(void **state)
{
    struct fixture *f = *state;
    add_source(f);
    add(f->servers, cn(2, "cn2", 64 * GIB, 1000 * GIB, "admin,external,internal"));
    add(f->servers, cn(3, "cn3", 61 * GIB, 1000 * GIB, "admin,external,internal"));
    add(f->vms, vm(1, "web01", 4 * GIB, 25, "external,internal"));
    mig_place_free(f->p);
    f->p = NULL;
    /* No options at all: the source is the VM's own CN. */
    assert_int_equal(mig_place_plan(f->servers, f->vms, NULL, &f->p, &f->r), 0);
    assert_string_equal(f->p->source->uuid, CNU(1));
    assert_int_equal(f->p->nvms, 1);
    const char *why = "most free RAM after placement: 60 GiB, the best of 2 CNs that fit; has NIC "
                      "tags external, internal";
    expect_target(f->p, 1, 2, why);

    json_t *got = mig_place_json(f->p);
    json_t *want = json_pack("[{s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:b, s:n, s:s}]", "vm_uuid",
                             VMU(1), "alias", "web01", "brand", "joyent", "ram", 4096, "disk_mib",
                             25600, "target_uuid", CNU(2), "target_hostname", "cn2", "skipped", 0,
                             "rule", "why", why);
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);

    /* Too big for anyone: no target, and the JSON says so. */
    json_object_set_new(json_array_get(f->vms, 0), "ram", json_integer(128 * GIB));
    json_object_del(json_array_get(f->vms, 0), "alias");
    f->o.source = NULL;
    const struct mig_place *p = plan(f);
    got = mig_place_json(p);
    want = json_pack("[{s:s, s:n, s:s, s:i, s:i, s:n, s:n, s:b, s:s, s:s}]", "vm_uuid", VMU(1),
                     "alias", "brand", "joyent", "ram", 128 * GIB, "disk_mib", 25600, "target_uuid",
                     "target_hostname", "skipped", 0, "rule", MIG_RULE_RAM, "why",
                     "needs 128 GiB RAM, the most free is 64 GiB on cn2");
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);

    /* A VM that names no CN, and no source given: nothing to plan from. */
    json_object_del(json_array_get(f->vms, 0), "server_uuid");
    expect_refused(f, MIG_PLACE_RULE_SOURCE_UNKNOWN,
                   "no source CN: none was given and no VM has a server_uuid; name the CN to "
                   "evacuate");
    f->o.source = "cn42";
    expect_refused(f, MIG_PLACE_RULE_SOURCE_UNKNOWN,
                   "source CN cn42 is not among CNAPI's servers; check the CN uuid or hostname");

    /* No VM, no source: an empty plan. */
    json_array_clear(f->vms);
    f->o.source = NULL;
    p = plan(f);
    assert_int_equal(p->nvms, 0);
    assert_null(p->source);
    json_t *empty = mig_place_json(p);
    assert_int_equal(json_array_size(empty), 0);
    json_decref(empty);
}

static void test_bad_input(void **state)
{
    struct fixture *f = *state;
    json_t *obj = json_object();
    assert_int_equal(mig_place_plan(obj, f->vms, &f->o, &f->p, &f->r), MIG_EPARSE);
    assert_null(f->p);
    assert_int_equal(mig_place_plan(f->servers, obj, &f->o, &f->p, &f->r), MIG_EPARSE);
    assert_null(f->p);
    json_decref(obj);
    /* A server without a uuid is no candidate; a VM entry that is no object is skipped. */
    add_source(f);
    add(f->servers, json_pack("{s:s}", "hostname", "ghost"));
    add(f->servers, cn(2, "cn2", 64 * GIB, 1000 * GIB, "external"));
    add(f->vms, json_string("not a vm"));
    add(f->vms, vm(1, "web", GIB, 10, "external"));
    const struct mig_place *p = plan(f);
    assert_int_equal(p->ncns, 2);
    expect_target(p, 1, 2, NULL);
    assert_int_equal(p->nskipped, 1);
    assert_string_equal(p->vms[1].rule, MIG_RULE_VM_UNKNOWN);
}

/* --- agreement with validate.c -----------------------------------------------------------------
 */

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 8) & 0xffffff;
}

static void replay_agrees(struct fixture *f, const struct mig_place *p);

/*
 * A random datacenter planned, then replayed through mig_validate_target
 * with each CN's unreserved values lowered by what the plan put there before:
 * every placed VM must pass on its target, every VM the plan could not place
 * must fail on every CN, and every excluded CN must fail for its rule.
 */
static void test_agrees_with_validate(void **state)
{
    struct fixture *f = *state;
    static const char *tagsets[] = {"external",          "internal",         "storage",
                                    "external,internal", "external,storage", ""};
    uint32_t seed = 42;
    add_source(f);
    for (int c = 2; c <= 13; c++) {
        char host[8];
        snprintf(host, sizeof(host), "cn%02d", c);
        json_t *s = cn(c, host, (8 + lcg(&seed) % 57) * GIB, (100 + lcg(&seed) % 400) * GIB,
                       tagsets[lcg(&seed) % 5]);
        if (c == 3)
            json_object_set_new(s, "reserved", json_true());
        if (c == 7)
            json_object_set_new(s, "current_platform", json_string(OLDPLAT));
        add(f->servers, s);
    }
    for (int i = 1; i <= 100; i++)
        add(f->vms,
            vm(i, "r", (1 + lcg(&seed) % 16) * 512, 5 + lcg(&seed) % 96, tagsets[lcg(&seed) % 6]));
    const struct mig_place *p = plan(f);
    /* This seed's datacenter is tight: both capacity rules stop VMs. */
    assert_int_equal(p->nplaced, 45);
    assert_int_equal(p->nunplaced, 55);
    size_t by_ram = 0, by_disk = 0;
    for (size_t i = 0; i < p->nvms; i++) {
        by_ram += p->vms[i].rule != NULL && strcmp(p->vms[i].rule, MIG_RULE_RAM) == 0;
        by_disk += p->vms[i].rule != NULL && strcmp(p->vms[i].rule, MIG_RULE_DISK) == 0;
    }
    assert_true(by_ram > 0 && by_disk > 0);
    replay_agrees(f, p);
    assert_string_equal(cn_of(p, 3)->rule, MIG_RULE_TARGET_RESERVED);
    assert_string_equal(cn_of(p, 7)->rule, MIG_RULE_PLATFORM);
}

/*
 * The same with fabric NICs: some CNs carry an underlay for sdc_overlay, one
 * for another overlay only, and the VMs mix fabric and plain NICs.
 */
static void test_agrees_with_validate_on_fabrics(void **state)
{
    struct fixture *f = *state;
    static const char *tagsets[] = {"external",
                                    "sdc_overlay/4151198",
                                    "external,sdc_overlay/4151198",
                                    "sdc_overlay/4151198,sdc_overlay/77",
                                    "internal,other_overlay/9",
                                    "storage",
                                    "external,user_overlay/3"};
    static const char *underlays[] = {NULL, "sdc_overlay", "other_overlay",
                                      "other_overlay,sdc_overlay"};
    uint32_t seed = 7;
    add(f->servers,
        with_underlay(cn(1, "cn1", 256 * GIB, 4000 * GIB, "admin,external,internal,storage"),
                      "other_overlay,sdc_overlay"));
    for (int c = 2; c <= 13; c++) {
        char host[8];
        snprintf(host, sizeof(host), "cn%02d", c);
        json_t *s = cn(c, host, (8 + lcg(&seed) % 57) * GIB, (100 + lcg(&seed) % 400) * GIB,
                       lcg(&seed) % 2 ? "external,internal" : "external,storage");
        const char *u = underlays[lcg(&seed) % 4];
        add(f->servers, u != NULL ? with_underlay(s, u) : s);
    }
    for (int i = 1; i <= 100; i++)
        add(f->vms,
            vm(i, "r", (1 + lcg(&seed) % 16) * 512, 5 + lcg(&seed) % 96, tagsets[lcg(&seed) % 7]));
    const struct mig_place *p = plan(f);
    size_t placed_fabric = 0, by_underlay = 0;
    for (size_t i = 0; i < p->nvms; i++) {
        const struct mig_place_vm *v = &p->vms[i];
        by_underlay += v->rule != NULL && strcmp(v->rule, MIG_RULE_UNDERLAY) == 0;
        if (v->target != NULL && strstr(v->why, "_overlay/") != NULL)
            placed_fabric++;
    }
    /* This seed places fabric VMs and refuses some for the underlay. */
    assert_true(placed_fabric > 0);
    assert_true(by_underlay > 0);
    replay_agrees(f, p);
}

/*
 * Replays plan p through mig_validate_target, with each CN's unreserved
 * values lowered by what the plan put there before: every placed VM must
 * pass on its target, every VM the plan could not place must fail on every
 * CN, and the plan's totals must be the replay's.
 */
static void replay_agrees(struct fixture *f, const struct mig_place *p)
{
    size_t n = json_array_size(f->servers);
    int64_t *ram = calloc(n, sizeof(*ram)), *disk = calloc(n, sizeof(*disk));
    json_t *src = json_array_get(f->servers, 0);
    for (size_t i = 0; i < p->nvms; i++) {
        const struct mig_place_vm *v = &p->vms[i];
        assert_null(strchr(v->why, '\n'));
        json_t *vmj = NULL;
        for (size_t k = 0; k < json_array_size(f->vms) && vmj == NULL; k++)
            if (strcmp(json_string_value(json_object_get(json_array_get(f->vms, k), "uuid")),
                       v->uuid) == 0)
                vmj = json_array_get(f->vms, k);
        assert_non_null(vmj);
        for (size_t s = 0; s < n; s++) {
            json_t *copy = json_deep_copy(json_array_get(f->servers, s));
            const char *uuid = json_string_value(json_object_get(copy, "uuid"));
            json_object_set_new(
                copy, "unreserved_ram",
                json_integer(json_integer_value(json_object_get(copy, "unreserved_ram")) - ram[s]));
            json_object_set_new(
                copy, "unreserved_disk",
                json_integer(json_integer_value(json_object_get(copy, "unreserved_disk")) -
                             disk[s]));
            struct mig_refusal r;
            int rc = mig_validate_target(vmj, src, copy, v->disk_mib, false, &r);
            if (v->target != NULL && strcmp(v->target->uuid, uuid) == 0) {
                if (rc != 0)
                    fail_msg("placed VM %s refused by validate: %s", v->uuid, r.message);
                ram[s] += v->ram_mib;
                disk[s] += v->disk_mib;
            } else if (v->target == NULL) {
                assert_int_equal(rc, MIG_EREFUSED);
            }
            json_decref(copy);
        }
    }
    /* The plan's own totals are the replay's. */
    for (size_t s = 0; s < n; s++) {
        const char *uuid =
            json_string_value(json_object_get(json_array_get(f->servers, s), "uuid"));
        for (size_t c = 0; c < p->ncns; c++)
            if (strcmp(p->cns[c].uuid, uuid) == 0) {
                assert_int_equal(p->cns[c].ram_planned_mib, ram[s]);
                assert_int_equal(p->cns[c].disk_planned_mib, disk[s]);
                assert_true(p->cns[c].ram_free_mib >= 0 || p->cns[c].nplanned == 0);
                assert_true(p->cns[c].disk_free_mib >= 0 || p->cns[c].nplanned == 0);
            }
    }
    free(ram);
    free(disk);
}

/* --- placement.spread_tag and CNs being evacuated ----------------------------------- */

/* VM n with tags.role = role, owned by owner, on CN on (another CN than the source: VMAPI's list). */
static json_t *tagged(int n, const char *alias, const char *role, const char *owner, int on)
{
    json_t *v = vm(n, alias, GIB, 10, "");
    json_object_set_new(json_object_get(v, "tags"), "role", json_string(role));
    json_object_set_new(v, "owner_uuid", json_string(owner));
    json_object_set_new(v, "server_uuid", json_string(CNU(on)));
    return v;
}

static void test_spread_tag(void **state)
{
    struct fixture *f = *state;
    add_source(f);
    add(f->servers, cn(2, "cn2", 64 * GIB, 1000 * GIB, ""));
    add(f->servers, cn(3, "cn3", 48 * GIB, 1000 * GIB, ""));
    add(f->servers, cn(4, "cn4", 32 * GIB, 1000 * GIB, ""));
    add(f->vms, tagged(1, "db1", "db", OWNER, 1));
    add(f->vms, tagged(2, "db2", "db", OWNER, 1));
    add(f->vms, tagged(3, "web1", "web", OWNER, 1));
    /* Where the rest of the datacenter runs: and the VMs being placed, as VMAPI lists them too. */
    json_t *others = json_deep_copy(f->vms);
    add(others, tagged(10, "db0", "db", OWNER, 2));
    add(others, tagged(11, "theirs", "db", ADMIN, 3)); /* another owner's db: no bar */
    add(others, tagged(12, "web0", "web", OWNER, 4));
    f->o.spread_tag = "role";
    f->o.others = others;

    const struct mig_place *p = plan(f);
    expect_target(p, 1, 3,
                  "most free RAM after placement: 47 GiB, the best of 2 CNs that fit; needs no "
                  "NIC tag; not beside another role=db of its owner: cn2 (db0)");
    expect_target(p, 2, 4, NULL); /* cn2 runs db0, cn3 now db1 */
    expect_target(p, 3, 2, NULL); /* cn4 runs web0 */
    assert_non_null(strstr(vm_of(p, 3)->why, "not beside another role=web of its owner: cn4 (web0)"));

    /* A fourth db has nowhere to go apart from the others: it stays, and says who is where. */
    add(f->vms, tagged(4, "db3", "db", OWNER, 1));
    p = plan(f);
    expect_nonef(p, 4, false, MIG_PLACE_RULE_SPREAD,
                 "VM db3 (%s) stays: every CN that fits runs another role=db of its owner: cn2 "
                 "(db0), cn3 (db1), cn4 (db2)",
                 VMU(4));
    assert_int_equal(p->nplaced, 3);
    assert_int_equal(p->nunplaced, 1);

    /* Capacity is said before the spread: a VM too large for every CN says so. */
    json_object_set_new(json_array_get(f->vms, 3), "ram", json_integer(100 * GIB));
    p = plan(f);
    assert_string_equal(vm_of(p, 4)->rule, MIG_RULE_RAM);

    /* Without the tag set, the group means nothing: every VM goes to the CN with most RAM free. */
    f->o.spread_tag = NULL;
    json_object_set_new(json_array_get(f->vms, 3), "ram", json_integer(GIB));
    p = plan(f);
    assert_int_equal(p->nplaced, 4);
    expect_target(p, 1, 2, NULL);
    expect_target(p, 2, 2, NULL);
    json_decref(others);
}

static void test_cns_being_evacuated(void **state)
{
    struct fixture *f = *state;
    add_source(f);
    add(f->servers, cn(2, "cn2", 32 * GIB, 1000 * GIB, "external"));
    add(f->servers, cn(3, "cn3", 64 * GIB, 1000 * GIB, "external")); /* most RAM, but drained next */
    add(f->vms, vm(1, "web", GIB, 10, "external"));
    json_t *avoid = json_pack("[s, s]", CNU(1), CNU(3));
    f->o.avoid = avoid;
    const struct mig_place *p = plan(f);
    expect_target(p, 1, 2, "the only CN that fits: 31 GiB RAM free after placement; has NIC tags external");
    expect_excluded(p, 3, MIG_PLACE_RULE_EVACUATING,
                    "cn3 is being evacuated (an unfinished evacuation drains it)");
    expect_excluded(p, 1, MIG_RULE_TARGET_SAME, "cn1 is the source CN"); /* not "evacuated" */

    /* Only drained CNs left: the VM stays and the plan says why. */
    json_array_append_new(avoid, json_string(CNU(2)));
    p = plan(f);
    expect_none(p, 1, false, MIG_PLACE_RULE_EVACUATING, /* the rule they share */
                "no eligible target CN among 2: cn2 TargetBeingEvacuated, cn3 "
                "TargetBeingEvacuated");
    json_decref(avoid);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

UNIT_TEST_MAIN(NULL, NULL,
               T(test_nic_tags),
               T(test_fabric),
               T(test_ram_never_overcommitted),
               T(test_disk_never_overcommitted),
               T(test_to_honoured),
               T(test_ties_broken_by_hostname_then_uuid),
               T(test_same_input_same_plan),
               T(test_largest_first),
               T(test_excluded_cns),
               T(test_skipped_vms),
               T(test_one_vm),
               T(test_bad_input),
               T(test_agrees_with_validate),
               T(test_agrees_with_validate_on_fabrics),
               T(test_spread_tag),
               T(test_cns_being_evacuated))
