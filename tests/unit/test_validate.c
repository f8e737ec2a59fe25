/* test_validate.c: the validation rules of product.md step 1 (lib/validate.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "validate.h"
#include "unit.h"

#define VM "6a1b2c3d-1111-4222-8333-444455556666"
#define IMG "9d4ed5b8-ec9c-11e2-bfc9-3b3e2ea5a0c2"
#define SRC "00000000-0000-0000-0000-0000000000a1"
#define TGT "00000000-0000-0000-0000-0000000000a3"
#define ADMIN "930896af-bf8c-48d4-885c-6573a94b1853"
#define OWNER "cc0c0b36-0f7c-4bd3-a08e-1a3a4a2c2f11"

/* A VM as VMAPI returns it, that may migrate. */
static const char *vm_text =
    "{\"uuid\": \"" VM "\", \"alias\": \"web01\", \"brand\": \"joyent\","
    " \"state\": \"running\", \"server_uuid\": \"" SRC "\", \"owner_uuid\": \"" OWNER "\","
    " \"ram\": 1024, \"quota\": 25, \"image_uuid\": \"" IMG "\","
    " \"tags\": {\"env\": \"prod\"}, \"internal_metadata\": {},"
    " \"nics\": [{\"mac\": \"90:b8:d0:00:00:01\", \"ip\": \"10.1.0.5\", \"nic_tag\": \"external\","
    "             \"primary\": true},"
    "            {\"mac\": \"90:b8:d0:00:00:02\", \"ip\": \"10.2.0.5\", \"nic_tag\": "
    "\"internal\"}]}";

/* A CNAPI server with extras=capacity,sysinfo. */
static json_t *server(const char *uuid, const char *hostname, const char *platform)
{
    json_t *s = json_pack(
        "{s:s, s:s, s:b, s:b, s:s, s:b, s:s, s:i, s:i, s:i, s:{s:s, s:s, s:s, s:{s:{s:[s,s]}, "
        "s:{s:[s]}}}}",
        "uuid", uuid, "hostname", hostname, "setup", 1, "reserved", 0, "status", "running",
        "headnode", 0, "current_platform", platform, "ram", 65536, "unreserved_ram", 4096,
        "unreserved_disk", 100000, "sysinfo", "UUID", uuid, "Admin IP", "10.99.99.13", "Live Image",
        platform, "Network Interfaces", "ixgbe0", "NIC Names", "admin", "internal", "ixgbe1",
        "NIC Names", "external");
    assert_non_null(s);
    return s;
}

struct fixture {
    json_t *vm, *source, *target;
    struct mig_refusal r;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->vm = json_loads(vm_text, 0, NULL);
    f->source = server(SRC, "cn1", "20240208T000000Z");
    f->target = server(TGT, "cn3", "20240208T000000Z");
    if (f->vm == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    json_decref(f->vm);
    json_decref(f->source);
    json_decref(f->target);
    free(f);
    return 0;
}

/* Asserts a refusal by rule, a one-line message that contains each of the needles. */
static void expect_refusal(int rc, const struct mig_refusal *r, const char *rule, ...)
{
    assert_int_equal(rc, MIG_EREFUSED);
    assert_string_equal(r->rule, rule);
    assert_true(strlen(r->message) > 0);
    assert_null(strchr(r->message, '\n'));
    va_list ap;
    va_start(ap, rule);
    for (const char *needle = va_arg(ap, const char *); needle != NULL;
         needle = va_arg(ap, const char *)) {
        if (strstr(r->message, needle) == NULL) {
            print_error("message [%s] lacks [%s]\n", r->message, needle);
            fail();
        }
    }
    va_end(ap);
}

static int check_target(struct fixture *f, int64_t disk_mib, bool allow_older)
{
    memset(&f->r, 0, sizeof(f->r));
    return mig_validate_target(f->vm, f->source, f->target, disk_mib, allow_older, &f->r);
}

/* --- the VM ---------------------------------------------------------------- */

static void test_vm_accepted(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(mig_validate_vm(f->vm, ADMIN, &f->r), 0);
    assert_int_equal(mig_validate_vm(f->vm, NULL, &f->r), 0);
    json_object_set_new(f->vm, "state", json_string("stopped"));
    assert_int_equal(mig_validate_vm(f->vm, ADMIN, &f->r), 0);
    static const char *brands[] = {"joyent", "joyent-minimal", "lx", "bhyve", "kvm"};
    for (size_t i = 0; i < 5; i++) {
        json_object_set_new(f->vm, "brand", json_string(brands[i]));
        assert_int_equal(mig_validate_vm(f->vm, ADMIN, &f->r), 0);
    }
    /* An explicit null role is no role. */
    json_object_set_new(json_object_get(f->vm, "tags"), "smartdc_role", json_null());
    assert_int_equal(mig_validate_vm(f->vm, ADMIN, &f->r), 0);
}

static void test_vm_unknown(void **state)
{
    struct fixture *f = *state;
    expect_refusal(mig_validate_vm(NULL, ADMIN, &f->r), &f->r, MIG_RULE_VM_UNKNOWN, NULL);
    json_t *arr = json_array();
    expect_refusal(mig_validate_vm(arr, ADMIN, &f->r), &f->r, MIG_RULE_VM_UNKNOWN, NULL);
    json_decref(arr);
}

static void test_vm_uuid(void **state)
{
    struct fixture *f = *state;
    json_object_set_new(f->vm, "uuid", json_string("6a1b2c3d; rm -rf /"));
    expect_refusal(mig_validate_vm(f->vm, ADMIN, &f->r), &f->r, MIG_RULE_VM_UUID,
                   "6a1b2c3d; rm -rf /", NULL);
}

static void test_vm_state(void **state)
{
    struct fixture *f = *state;
    static const char *states[] = {"provisioning", "failed", "destroyed", "incomplete"};
    for (size_t i = 0; i < 4; i++) {
        json_object_set_new(f->vm, "state", json_string(states[i]));
        expect_refusal(mig_validate_vm(f->vm, ADMIN, &f->r), &f->r, MIG_RULE_VM_STATE, "web01", VM,
                       states[i], NULL);
    }
    json_object_del(f->vm, "state");
    expect_refusal(mig_validate_vm(f->vm, ADMIN, &f->r), &f->r, MIG_RULE_VM_STATE, "web01", NULL);
}

static void test_vm_brand(void **state)
{
    struct fixture *f = *state;
    json_object_set_new(f->vm, "brand", json_string("sngl"));
    expect_refusal(mig_validate_vm(f->vm, ADMIN, &f->r), &f->r, MIG_RULE_VM_BRAND, "web01", "sngl",
                   NULL);
    json_object_del(f->vm, "brand");
    expect_refusal(mig_validate_vm(f->vm, ADMIN, &f->r), &f->r, MIG_RULE_VM_BRAND, NULL);
    assert_false(mig_brand_supported(NULL));
    assert_false(mig_brand_supported("Joyent"));
    assert_true(mig_brand_supported("joyent-minimal"));
}

static void test_vm_core_zone(void **state)
{
    struct fixture *f = *state;
    /* Owned by the admin user. */
    json_object_set_new(f->vm, "owner_uuid", json_string(ADMIN));
    expect_refusal(mig_validate_vm(f->vm, ADMIN, &f->r), &f->r, MIG_RULE_VM_CORE, "web01", ADMIN,
                   NULL);
    /* Without a known admin uuid, ownership alone does not refuse. */
    assert_int_equal(mig_validate_vm(f->vm, NULL, &f->r), 0);
    json_object_set_new(f->vm, "owner_uuid", json_string(OWNER));
    /* A role tag. */
    json_object_set_new(json_object_get(f->vm, "tags"), "smartdc_role", json_string("imgapi"));
    expect_refusal(mig_validate_vm(f->vm, NULL, &f->r), &f->r, MIG_RULE_VM_CORE, "web01",
                   "smartdc_role=imgapi", NULL);
}

static void test_vm_nat_zone(void **state)
{
    struct fixture *f = *state;
    json_object_set_new(json_object_get(f->vm, "internal_metadata"), "com.joyent:ipnat_subnet",
                        json_string("192.168.128.0/22"));
    expect_refusal(mig_validate_vm(f->vm, ADMIN, &f->r), &f->r, MIG_RULE_VM_NAT, "web01",
                   "192.168.128.0/22", NULL);
}

static void test_vm_message_is_one_line(void **state)
{
    struct fixture *f = *state;
    json_object_set_new(f->vm, "alias", json_string("evil\nalias\r"));
    json_object_set_new(f->vm, "state", json_string("failed"));
    expect_refusal(mig_validate_vm(f->vm, ADMIN, &f->r), &f->r, MIG_RULE_VM_STATE, "evil alias",
                   NULL);
    assert_null(strchr(f->r.message, '\r'));
    /* A NULL refusal is allowed: only the code comes back. */
    assert_int_equal(mig_validate_vm(f->vm, ADMIN, NULL), MIG_EREFUSED);
}

/* --- the target ------------------------------------------------------------ */

static void test_target_accepted(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(check_target(f, 20000, false), 0);
    /* Exactly enough RAM and disk. */
    assert_int_equal(check_target(f, 100000, false), 0);
    json_object_set_new(f->target, "unreserved_ram", json_integer(1024));
    assert_int_equal(check_target(f, 100000, false), 0);
    /* A newer platform. */
    json_object_set_new(f->target, "current_platform", json_string("20240301T000000Z"));
    assert_int_equal(check_target(f, 1, false), 0);
    /* reserved explicitly false; no NICs at all. */
    json_object_set_new(f->target, "reserved", json_false());
    json_object_set_new(f->vm, "nics", json_array());
    assert_int_equal(check_target(f, 1, false), 0);
}

static void test_target_unknown(void **state)
{
    struct fixture *f = *state;
    expect_refusal(mig_validate_target(f->vm, f->source, NULL, 1, false, &f->r), &f->r,
                   MIG_RULE_TARGET_UNKNOWN, NULL);
    json_t *empty = json_object();
    expect_refusal(mig_validate_target(f->vm, f->source, empty, 1, false, &f->r), &f->r,
                   MIG_RULE_TARGET_UNKNOWN, NULL);
    json_decref(empty);
}

static void test_target_same(void **state)
{
    struct fixture *f = *state;
    expect_refusal(mig_validate_target(f->vm, f->source, f->source, 1, false, &f->r), &f->r,
                   MIG_RULE_TARGET_SAME, "cn1", "web01", NULL);
    /* Without a source object, the VM's server_uuid says where it runs. */
    json_object_set_new(f->vm, "server_uuid", json_string(TGT));
    expect_refusal(mig_validate_target(f->vm, NULL, f->target, 1, true, &f->r), &f->r,
                   MIG_RULE_TARGET_SAME, "cn3", NULL);
}

static void test_target_headnode(void **state)
{
    struct fixture *f = *state;
    json_object_set_new(f->target, "headnode", json_true());
    /* Also reserved and not set up: headnode is checked first. */
    json_object_set_new(f->target, "reserved", json_true());
    json_object_set_new(f->target, "setup", json_false());
    expect_refusal(check_target(f, 1, false), &f->r, MIG_RULE_TARGET_HEADNODE, "cn3", NULL);
}

static void test_target_setup(void **state)
{
    struct fixture *f = *state;
    json_object_set_new(f->target, "setup", json_false());
    json_object_set_new(f->target, "status", json_string("unknown"));
    expect_refusal(check_target(f, 1, false), &f->r, MIG_RULE_TARGET_SETUP, "cn3", "false", NULL);
    json_object_del(f->target, "setup");
    expect_refusal(check_target(f, 1, false), &f->r, MIG_RULE_TARGET_SETUP, "cn3", NULL);
}

static void test_target_running(void **state)
{
    struct fixture *f = *state;
    json_object_set_new(f->target, "status", json_string("rebooting"));
    json_object_set_new(f->target, "reserved", json_true());
    expect_refusal(check_target(f, 1, false), &f->r, MIG_RULE_TARGET_RUNNING, "cn3", "rebooting",
                   NULL);
}

static void test_target_reserved(void **state)
{
    struct fixture *f = *state;
    json_object_set_new(f->target, "reserved", json_true());
    json_object_set_new(f->target, "unreserved_ram", json_integer(0));
    expect_refusal(check_target(f, 1, false), &f->r, MIG_RULE_TARGET_RESERVED, "cn3", NULL);
}

static void test_target_nic_tag(void **state)
{
    struct fixture *f = *state;
    json_t *nics = json_object_get(f->vm, "nics");
    json_array_append_new(
        nics, json_pack("{s:s, s:s}", "mac", "90:b8:d0:00:00:03", "nic_tag", "storage"));
    json_object_set_new(f->target, "unreserved_ram", json_integer(0));
    expect_refusal(check_target(f, 1, false), &f->r, MIG_RULE_NIC_TAG, "cn3", "storage", "web01",
                   "admin, internal, external", NULL);
    /* A target without sysinfo has no tags at all. */
    json_array_remove(nics, 2);
    json_object_del(f->target, "sysinfo");
    expect_refusal(check_target(f, 1, false), &f->r, MIG_RULE_NIC_TAG, "cn3", "external", NULL);
}

/* A NIC on a fabric network, as VMAPI shows it (NAPI's "sdc_overlay/VNET_ID"). */
static void add_fabric_nic(json_t *vm, const char *tag)
{
    json_array_append_new(json_object_get(vm, "nics"),
                          json_pack("{s:s, s:s, s:s, s:i, s:i}", "mac", "90:b8:d0:00:00:04", "ip",
                                    "192.168.128.5", "nic_tag", tag, "vlan_id", 2, "mtu", 8500));
}

/* An underlay vnic in the server's sysinfo, carrying the overlay rules in csv (one or two). */
static void add_underlay(json_t *server, const char *rule1, const char *rule2)
{
    json_t *tags = json_pack("[s]", rule1);
    if (rule2 != NULL)
        json_array_append_new(tags, json_string(rule2));
    json_object_set_new(json_object_get(server, "sysinfo"), "Virtual Network Interfaces",
                        json_pack("{s:{s:s, s:s, s:s, s:o}}", "sdc_underlay0", "Link Status", "up",
                                  "Host Interface", "ixgbe1", "ip4addr", "172.24.1.14",
                                  "Overlay Nic Tags", tags));
}

static void test_target_fabric(void **state)
{
    struct fixture *f = *state;
    add_fabric_nic(f->vm, "sdc_overlay/4151198");
    json_object_set_new(f->target, "unreserved_ram", json_integer(0));
    /* No underlay: the rule is named, with the NIC, the overlay tag and what the CN carries. */
    expect_refusal(check_target(f, 1, false), &f->r, MIG_RULE_UNDERLAY, "cn3",
                   "sdc_overlay/4151198", "web01", "overlay tag sdc_overlay", "carries: none",
                   "sdc_underlay", NULL);
    /* An underlay for another overlay rule only is no underlay for this one. */
    add_underlay(f->target, "other_overlay", NULL);
    expect_refusal(check_target(f, 1, false), &f->r, MIG_RULE_UNDERLAY, "carries: other_overlay",
                   NULL);
    /* With the underlay, the fabric NIC is no reason to refuse (RAM is the next rule). */
    add_underlay(f->target, "other_overlay", "sdc_overlay");
    expect_refusal(check_target(f, 1, false), &f->r, MIG_RULE_RAM, NULL);
    json_object_set_new(f->target, "unreserved_ram", json_integer(4096));
    assert_int_equal(check_target(f, 1, false), 0);
    /* (The target lists no "sdc_overlay/4151198" in "NIC Names", as no CN does.)  The
     * other NICs' tags still count, and are checked first. */
    json_object_set_new(json_array_get(json_object_get(f->vm, "nics"), 0), "nic_tag",
                        json_string("storage"));
    expect_refusal(check_target(f, 1, false), &f->r, MIG_RULE_NIC_TAG, "storage", NULL);
    /* Two fabric NICs: the first whose rule the target lacks is named. */
    json_object_set_new(json_array_get(json_object_get(f->vm, "nics"), 0), "nic_tag",
                        json_string("external"));
    add_fabric_nic(f->vm, "user_overlay/77");
    expect_refusal(check_target(f, 1, false), &f->r, MIG_RULE_UNDERLAY, "user_overlay/77",
                   "overlay tag user_overlay", "carries: other_overlay, sdc_overlay", NULL);
}

static void test_nic_tag_overlay(void **state)
{
    (void)state;
    char rule[64] = "";
    assert_true(mig_nic_tag_overlay("sdc_overlay/4151198", rule, sizeof(rule)));
    assert_string_equal(rule, "sdc_overlay");
    assert_true(mig_nic_tag_overlay("sdc_overlay/0", NULL, 0));
    char small[4];
    assert_true(mig_nic_tag_overlay("sdc_overlay/7", small, sizeof(small)));
    assert_string_equal(small, "sdc");
    static const char *plain[] = {"external",        "sdc_overlay", "sdc_overlay/",   "/4151198",
                                  "sdc_overlay/12x", "a/1/2",       "sdc_overlay/-1", ""};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        snprintf(rule, sizeof(rule), "untouched");
        if (mig_nic_tag_overlay(plain[i], rule, sizeof(rule)))
            fail_msg("%s taken for a fabric NIC tag", plain[i]);
        assert_string_equal(rule, "untouched");
    }
    assert_false(mig_nic_tag_overlay(NULL, rule, sizeof(rule)));
}

static void test_target_ram(void **state)
{
    struct fixture *f = *state;
    json_object_set_new(f->target, "unreserved_ram", json_integer(1023));
    json_object_set_new(f->target, "unreserved_disk", json_integer(0));
    expect_refusal(check_target(f, 1, false), &f->r, MIG_RULE_RAM, "cn3", "1023", "1024", "web01",
                   NULL);
    /* Without capacity extras, RAM cannot be checked: refused, and said so. */
    json_object_del(f->target, "unreserved_ram");
    expect_refusal(check_target(f, 1, false), &f->r, MIG_RULE_RAM, "unreserved_ram", NULL);
}

static void test_target_disk(void **state)
{
    struct fixture *f = *state;
    json_object_set_new(f->target, "current_platform", json_string("20200101T000000Z"));
    expect_refusal(check_target(f, 100001, false), &f->r, MIG_RULE_DISK, "cn3", "100000", "100001",
                   NULL);
    json_object_set_new(f->target, "unreserved_disk", json_real(5000.5));
    expect_refusal(check_target(f, 6000, true), &f->r, MIG_RULE_DISK, "6000", NULL);
}

static void test_target_platform(void **state)
{
    struct fixture *f = *state;
    json_object_set_new(f->target, "current_platform", json_string("20230101T000000Z"));
    expect_refusal(check_target(f, 1, false), &f->r, MIG_RULE_PLATFORM, NULL);
    assert_string_equal(f->r.message, "target cn3 runs platform 20230101T000000Z, older than "
                                      "the source's 20240208T000000Z; use -D to allow");
    /* Unknown platform: refused unless allowed. */
    json_object_del(f->target, "current_platform");
    expect_refusal(check_target(f, 1, false), &f->r, MIG_RULE_PLATFORM, "cn3", "-D", NULL);
    assert_int_equal(check_target(f, 1, true), 0);
}

static void test_target_allow_older(void **state)
{
    struct fixture *f = *state;
    json_object_set_new(f->target, "current_platform", json_string("20230101T000000Z"));
    assert_int_equal(check_target(f, 1, true), 0);
    /* allow_older lifts only the platform rule. */
    json_object_set_new(f->target, "unreserved_ram", json_integer(1));
    expect_refusal(check_target(f, 1, true), &f->r, MIG_RULE_RAM, NULL);
}

/* --- helpers --------------------------------------------------------------- */

static void test_server_facts(void **state)
{
    struct fixture *f = *state;
    json_t *sysinfo = json_object_get(f->target, "sysinfo");
    /* A second interface repeating a tag, and an aggregation with its own. */
    json_object_set_new(json_object_get(sysinfo, "Network Interfaces"), "igb0",
                        json_pack("{s:[s,s]}", "NIC Names", "admin", "external"));
    json_object_set_new(sysinfo, "Link Aggregations",
                        json_pack("{s:{s:[s]}}", "aggr0", "NIC Names", "storage"));
    json_t *tags = mig_server_nic_tags(f->target);
    assert_int_equal(json_array_size(tags), 4);
    json_t *want = json_pack("[s,s,s,s]", "admin", "internal", "external", "storage");
    assert_true(json_equal(tags, want));
    json_decref(want);
    json_decref(tags);

    /* Overlay tags come from virtual interfaces only, each once. */
    tags = mig_server_overlay_tags(f->target);
    assert_int_equal(json_array_size(tags), 0);
    json_decref(tags);
    add_underlay(f->target, "sdc_overlay", "sdc_overlay");
    json_object_set_new(json_object_get(sysinfo, "Virtual Network Interfaces"), "external0",
                        json_pack("{s:s}", "Host Interface", "aggr0"));
    tags = mig_server_overlay_tags(f->target);
    want = json_pack("[s]", "sdc_overlay");
    assert_true(json_equal(tags, want));
    json_decref(want);
    json_decref(tags);

    assert_string_equal(mig_server_admin_ip(f->target), "10.99.99.13");
    json_object_del(f->target, "sysinfo");
    assert_null(mig_server_admin_ip(f->target));
    tags = mig_server_nic_tags(f->target);
    assert_int_equal(json_array_size(tags), 0);
    json_decref(tags);
}

static void test_vm_image_uuid(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(mig_vm_image_uuid(f->vm), IMG);

    static const char *hvm[] = {"bhyve", "kvm"};
    for (size_t i = 0; i < 2; i++) {
        json_t *vm = json_pack("{s:s, s:s, s:[{s:s, s:s, s:b}, {s:s, s:i}]}", "uuid", VM, "brand",
                               hvm[i], "disks", "path", "/dev/zvol/rdsk/zones/x/disk0",
                               "image_uuid", "11111111-2222-4333-8444-555555555555", "boot", 1,
                               "path", "/dev/zvol/rdsk/zones/x/disk1", "size", 10240);
        assert_string_equal(mig_vm_image_uuid(vm), "11111111-2222-4333-8444-555555555555");
        /* disks[0] wins over a top-level image_uuid. */
        json_object_set_new(vm, "image_uuid", json_string(IMG));
        assert_string_equal(mig_vm_image_uuid(vm), "11111111-2222-4333-8444-555555555555");
        /* No disks: the top-level one. */
        json_object_del(vm, "disks");
        assert_string_equal(mig_vm_image_uuid(vm), IMG);
        json_decref(vm);
    }
    json_object_del(f->vm, "image_uuid");
    assert_null(mig_vm_image_uuid(f->vm));
    assert_null(mig_vm_image_uuid(NULL));
}

/* --- the VM's datasets ------------------------------------------------------ */

#define OTHER "7b2c3d4e-2222-4333-8444-555566667777"

static void test_dataset_is_vms(void **state)
{
    (void)state;
    static const char *own[] = {
        "zones/" VM,          "zones/" VM "/disk0",  "zones/" VM "/data",    "zones/" VM "/data/db",
        "zones/" VM "-disk0", "zones/" VM "-disk12", "zones/" VM "/cores.x",
    };
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (!mig_dataset_is_vms(own[i], "zones", VM)) {
            print_error("refused its own %s\n", own[i]);
            fail();
        }
    static const char *foreign[] = {
        "zones/" VM "x",            /* another name that starts with the uuid */
        "zones/" VM "-diskX/../..", /* climbs out */
        "zones/" VM "-diskX",       /* not a KVM disk name */
        "zones/" VM "-disk",        /* no disk number */
        "zones/" VM "-disk0/x",     /* a KVM disk is a volume: no children */
        "zones/" VM "-disk0 ",
        "zones/" OTHER, /* another VM's */
        "zones/" OTHER "-disk0",
        "zones/" OTHER "/disk0",
        "zones/6a1b2c3d", /* a prefix of the uuid */
        "zones/6a1b2c3d-1111-4222-8333-44445555666",
        "zones2/" VM, /* another pool */
        "zones",      /* the pool itself */
        "zones/",
        "zones/cores/" VM, /* the cores dataset is not sent */
        "zones/" VM "/",
        "zones/" VM "//disk0",
        "zones/" VM "/./disk0",
        "zones/" VM "/../" OTHER,
        "zones/" VM "/..",
        "Zones/" VM,
        "zones/6A1B2C3D-1111-4222-8333-444455556666",
        "/zones/" VM,
        "",
        "x/zones/" VM,
    };
    for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++)
        if (mig_dataset_is_vms(foreign[i], "zones", VM)) {
            print_error("accepted foreign %s\n", foreign[i]);
            fail();
        }
    assert_false(mig_dataset_is_vms(NULL, "zones", VM));
    assert_false(mig_dataset_is_vms("zones/" VM, NULL, VM));
    assert_false(mig_dataset_is_vms("zones/" VM, "zones", NULL));
    assert_false(mig_dataset_is_vms("zones/" VM, "", VM));
    /* A pool is one component: "zones/OTHER" as the pool must not let zones/OTHER/VM in. */
    assert_false(mig_dataset_is_vms("zones/" OTHER "/" VM, "zones/" OTHER, VM));
    assert_false(mig_dataset_is_vms("zones/x", "zones", "x"));
    assert_true(mig_dataset_is_vms("data/" VM "-disk1", "data", VM));
}

static void test_datasets_accepted(void **state)
{
    struct fixture *f = *state;
    /* No zfs_filesystem at all: migd uses POOL/VM. */
    assert_int_equal(mig_validate_datasets(f->vm, "zones", &f->r), 0);
    json_object_set_new(f->vm, "zfs_filesystem", json_string("zones/" VM));
    json_object_set_new(f->vm, "datasets", json_pack("[s]", "zones/" VM "/data"));
    json_object_set_new(f->vm, "disks",
                        json_pack("[{s:s}, {s:s}, {s:s}, {s:n}]", "zfs_filesystem",
                                  "zones/" VM "-disk0", "zfs_filesystem", "zones/" VM "/disk1",
                                  "path", "/cdrom.iso", "zfs_filesystem"));
    assert_int_equal(mig_validate_datasets(f->vm, "zones", &f->r), 0);
}

static void test_datasets_foreign(void **state)
{
    struct fixture *f = *state;
    json_object_set_new(f->vm, "zfs_filesystem", json_string("zones/" OTHER));
    expect_refusal(mig_validate_datasets(f->vm, "zones", &f->r), &f->r, MIG_RULE_FOREIGN_DATASET,
                   "zones/" OTHER, VM, "-diskN", NULL);
    json_object_set_new(f->vm, "zfs_filesystem", json_string("zones/" VM));

    json_object_set_new(f->vm, "disks",
                        json_pack("[{s:s}, {s:s}]", "zfs_filesystem", "zones/" VM "-disk0",
                                  "zfs_filesystem", "zones/" OTHER "-disk0"));
    expect_refusal(mig_validate_datasets(f->vm, "zones", &f->r), &f->r, MIG_RULE_FOREIGN_DATASET,
                   "zones/" OTHER "-disk0", NULL);
    json_object_set_new(f->vm, "disks",
                        json_pack("[{s:s}]", "zfs_filesystem", "zones/" VM "-diskX/../.."));
    expect_refusal(mig_validate_datasets(f->vm, "zones", &f->r), &f->r, MIG_RULE_FOREIGN_DATASET,
                   "zones/" VM "-diskX/../..", NULL);
    json_object_set_new(f->vm, "disks", json_pack("[{s:i}]", "zfs_filesystem", 7));
    expect_refusal(mig_validate_datasets(f->vm, "zones", &f->r), &f->r, MIG_RULE_FOREIGN_DATASET,
                   "7", NULL);
    json_object_del(f->vm, "disks");

    json_object_set_new(f->vm, "datasets",
                        json_pack("[s, s]", "zones/" VM "/data", "zones/" OTHER "/data"));
    expect_refusal(mig_validate_datasets(f->vm, "zones", &f->r), &f->r, MIG_RULE_FOREIGN_DATASET,
                   "zones/" OTHER "/data", NULL);
    json_object_set_new(f->vm, "datasets", json_pack("[s]", "zones/" VM "/data"));
    /* The VM's own names in another pool than its zpool. */
    expect_refusal(mig_validate_datasets(f->vm, "zones2", &f->r), &f->r, MIG_RULE_FOREIGN_DATASET,
                   "zones/" VM, "zones2/" VM, NULL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

UNIT_TEST_MAIN(NULL, NULL,
               T(test_vm_accepted),
               T(test_vm_unknown),
               T(test_vm_uuid),
               T(test_vm_state),
               T(test_vm_brand),
               T(test_vm_core_zone),
               T(test_vm_nat_zone),
               T(test_vm_message_is_one_line),
               T(test_target_accepted),
               T(test_target_unknown),
               T(test_target_same),
               T(test_target_headnode),
               T(test_target_setup),
               T(test_target_running),
               T(test_target_reserved),
               T(test_target_nic_tag),
               T(test_target_fabric),
               T(test_nic_tag_overlay),
               T(test_target_ram),
               T(test_target_disk),
               T(test_target_platform),
               T(test_target_allow_older),
               T(test_server_facts),
               T(test_vm_image_uuid),
               T(test_dataset_is_vms),
               T(test_datasets_accepted),
               T(test_datasets_foreign))
