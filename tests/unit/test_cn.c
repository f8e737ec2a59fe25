/* test_cn.c: CN command builders and output parsers (lib/cn.c, cn_direct.c, cn_parse.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cn.h"
#include "err.h"
#include "unit.h"

#define VM "6a1b2c3d-1111-4222-8333-444455556666"
#define IMG "9d4ed5b8-ec9c-11e2-bfc9-3b3e2ea5a0c2"

/* Checks a builder's result against the expected line and frees it. */
static void expect_cmd(char *got, const char *want)
{
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_fact_and_instance_commands(void **state)
{
    (void)state;
    expect_cmd(mig_cmd_sysinfo(), "sysinfo");
    expect_cmd(mig_cmd_zpool_list("zones"), "zpool list -H -p -o name,size,free 'zones'");
    expect_cmd(mig_cmd_imgadm_get(IMG), "imgadm get '" IMG "'");
    expect_cmd(mig_cmd_imgadm_import(IMG), "imgadm import -q '" IMG "'");
    expect_cmd(mig_cmd_vmadm_get(VM), "vmadm get '" VM "'");
    expect_cmd(mig_cmd_vmadm_stop(VM, false), "vmadm stop '" VM "'");
    expect_cmd(mig_cmd_vmadm_stop(VM, true), "vmadm stop '" VM "' -F");
    expect_cmd(mig_cmd_vmadm_start(VM), "vmadm start '" VM "'");
    expect_cmd(mig_cmd_zoneadm_list(), "zoneadm list -pc");
    expect_cmd(mig_cmd_zoneadm_attach(VM), "zoneadm -z '" VM "' attach");
    expect_cmd(mig_cmd_zoneadm_detach(VM), "zoneadm -z '" VM "' detach");
    expect_cmd(mig_cmd_zonecfg_export(VM), "zonecfg -z '" VM "' export");
    expect_cmd(mig_cmd_zonecfg_import(VM, "/dev/stdin"), "zonecfg -z '" VM "' -f '/dev/stdin'");
    expect_cmd(mig_cmd_zonecfg_import(VM, "/var/tmp/migd-" VM ".cfg"),
               "zonecfg -z '" VM "' -f '/var/tmp/migd-" VM ".cfg'");
    expect_cmd(mig_cmd_zonecfg_delete(VM), "zonecfg -z '" VM "' delete -F");
    expect_cmd(mig_cmd_zonecfg_do_not_inventory(VM),
               "zonecfg -z '" VM "' 'add attr; set name=do-not-inventory; set type=string; "
               "set value=true; end'");
    expect_cmd(mig_cmd_zonecfg_enable(VM, true),
               "zonecfg -z '" VM "' 'set autoboot=true; remove attr name=do-not-inventory'");
    expect_cmd(mig_cmd_zonecfg_enable(VM, false),
               "zonecfg -z '" VM "' 'set autoboot=false; remove attr name=do-not-inventory'");
    expect_cmd(mig_cmd_svcadm_restart_vm_agent(), "svcadm restart vm-agent");
    expect_cmd(mig_cmd_cat_zones_index(), "cat /etc/zones/index");
}

static void test_zfs_commands(void **state)
{
    (void)state;
    expect_cmd(mig_cmd_zfs_list_tree("zones/" VM),
               "zfs list -H -p -o name,used,referenced,origin,type -r -t filesystem,volume "
               "'zones/" VM "'");
    expect_cmd(mig_cmd_zfs_list_snapshots("zones/" VM),
               "zfs list -H -o name -t snapshot -d 1 'zones/" VM "'");
    expect_cmd(mig_cmd_zfs_get("quota", "zones/" VM),
               "zfs get -H -p -o value 'quota' 'zones/" VM "'");
    expect_cmd(mig_cmd_zfs_get("written@migd-1", "zones/" VM),
               "zfs get -H -p -o value 'written@migd-1' 'zones/" VM "'");
    expect_cmd(mig_cmd_zfs_set("quota", "10g", "zones/" VM), "zfs set 'quota=10g' 'zones/" VM "'");
    expect_cmd(mig_cmd_zfs_set("refquota", "none", "zones/" VM "-disk0"),
               "zfs set 'refquota=none' 'zones/" VM "-disk0'");
    expect_cmd(mig_cmd_zfs_snapshot("zones/" VM, "migd-abc-1"),
               "zfs snapshot -r 'zones/" VM "@migd-abc-1'");
    expect_cmd(mig_cmd_zfs_send("zones/" VM, "migd-abc-1", NULL, false),
               "zfs send -R 'zones/" VM "@migd-abc-1'");
    expect_cmd(mig_cmd_zfs_send("zones/" VM, "migd-abc-1", "zones/" IMG "@final", false),
               "zfs send -R -I 'zones/" IMG "@final' 'zones/" VM "@migd-abc-1'");
    expect_cmd(mig_cmd_zfs_send("zones/" VM, "migd-abc-2", "@migd-abc-1", true),
               "zfs send -R -c -I '@migd-abc-1' 'zones/" VM "@migd-abc-2'");
    expect_cmd(mig_cmd_zfs_send_c_probe(), "zfs send -c");
    /* An explicit destination, never a pool (-d would take any name the stream carries). */
    expect_cmd(mig_cmd_zfs_receive("zones/" VM, true), "zfs receive -u -F 'zones/" VM "'");
    expect_cmd(mig_cmd_zfs_receive("zones/" VM "-disk0", false),
               "zfs receive -u 'zones/" VM "-disk0'");
    assert_null(mig_cmd_zfs_receive("zones", true));
    expect_cmd(mig_cmd_zfs_list_mounts("zones/" VM),
               "zfs list -H -o name,type,mountpoint,zoned,canmount,mounted -r 'zones/" VM "'");
    expect_cmd(mig_cmd_zfs_mount("zones/" VM), "zfs mount 'zones/" VM "'");
    assert_null(mig_cmd_zfs_mount("zones"));
    expect_cmd(mig_cmd_zfs_destroy("zones/" VM, true), "zfs destroy -r 'zones/" VM "'");
    expect_cmd(mig_cmd_zfs_destroy("zones/" VM "-disk0", false),
               "zfs destroy 'zones/" VM "-disk0'");
    expect_cmd(mig_cmd_zfs_destroy_snapshot("zones/" VM, "migd-abc-1", true),
               "zfs destroy -r 'zones/" VM "@migd-abc-1'");
    expect_cmd(mig_cmd_zfs_destroy_snapshot("zones/" VM, "migd-abc-1", false),
               "zfs destroy 'zones/" VM "@migd-abc-1'");
    expect_cmd(mig_cmd_zfs_create_cores("zones", VM),
               "zfs create -o quota=1000m -o compression=gzip -o 'mountpoint=/zones/" VM
               "/cores' 'zones/cores/" VM "'");
}

/* Inputs that must never reach a command line. */
static const char *hostile[] = {
    "x; rm -rf /", "$(id)",      "`id`",     "zones/a'b",    "zones/a\"b", "zones/a\nb",
    "zones/a b",   "",           "-rf",      "zones/../etc", "zones/a|b",  "zones/a&b",
    "zones/a>b",   "zones/a\\b", "zones/a*", "zones/a\tb",
};
#define NHOSTILE (sizeof(hostile) / sizeof(hostile[0]))

static void expect_null(char *got, const char *what, const char *input)
{
    if (got != NULL) {
        print_error("%s accepted hostile input [%s]: %s\n", what, input, got);
        free(got);
        fail();
    }
}

static void test_hostile_uuid_arguments(void **state)
{
    (void)state;
    for (size_t i = 0; i < NHOSTILE; i++) {
        const char *h = hostile[i];
        expect_null(mig_cmd_vmadm_get(h), "vmadm_get", h);
        expect_null(mig_cmd_vmadm_stop(h, true), "vmadm_stop", h);
        expect_null(mig_cmd_vmadm_start(h), "vmadm_start", h);
        expect_null(mig_cmd_imgadm_get(h), "imgadm_get", h);
        expect_null(mig_cmd_imgadm_import(h), "imgadm_import", h);
        expect_null(mig_cmd_zoneadm_attach(h), "zoneadm_attach", h);
        expect_null(mig_cmd_zoneadm_detach(h), "zoneadm_detach", h);
        expect_null(mig_cmd_zonecfg_export(h), "zonecfg_export", h);
        expect_null(mig_cmd_zonecfg_delete(h), "zonecfg_delete", h);
        expect_null(mig_cmd_zonecfg_do_not_inventory(h), "do_not_inventory", h);
        expect_null(mig_cmd_zonecfg_import(h, "/dev/stdin"), "zonecfg_import uuid", h);
        expect_null(mig_cmd_zonecfg_import(VM, h), "zonecfg_import file", h);
        expect_null(mig_cmd_zfs_create_cores("zones", h), "create_cores uuid", h);
        expect_null(mig_cmd_zfs_create_cores(h, VM), "create_cores pool", h);
    }
    /* Almost-UUIDs. */
    expect_null(mig_cmd_vmadm_get(VM "0"), "vmadm_get", "long uuid");
    expect_null(mig_cmd_vmadm_get("6a1b2c3d-1111-4222-8333-44445555666g"), "vmadm_get", "g");
    expect_null(mig_cmd_vmadm_get(NULL), "vmadm_get", "NULL");
    /* A relative or escaping path for zonecfg -f. */
    expect_null(mig_cmd_zonecfg_import(VM, "dev/stdin"), "zonecfg_import", "relative");
    expect_null(mig_cmd_zonecfg_import(VM, "/tmp/../etc/shadow"), "zonecfg_import", "..");
    expect_null(mig_cmd_zonecfg_import(VM, NULL), "zonecfg_import", "NULL");
}

static void test_hostile_zfs_arguments(void **state)
{
    (void)state;
    for (size_t i = 0; i < NHOSTILE; i++) {
        const char *h = hostile[i];
        expect_null(mig_cmd_zpool_list(h), "zpool_list", h);
        expect_null(mig_cmd_zfs_list_tree(h), "list_tree", h);
        expect_null(mig_cmd_zfs_list_snapshots(h), "list_snapshots", h);
        expect_null(mig_cmd_zfs_get(h, "zones/" VM), "get property", h);
        expect_null(mig_cmd_zfs_get("quota", h), "get dataset", h);
        expect_null(mig_cmd_zfs_set(h, "10g", "zones/" VM), "set property", h);
        expect_null(mig_cmd_zfs_set("quota", h, "zones/" VM), "set value", h);
        expect_null(mig_cmd_zfs_set("quota", "10g", h), "set dataset", h);
        expect_null(mig_cmd_zfs_snapshot(h, "s1"), "snapshot dataset", h);
        expect_null(mig_cmd_zfs_snapshot("zones/" VM, h), "snapshot name", h);
        expect_null(mig_cmd_zfs_send(h, "s1", NULL, false), "send dataset", h);
        expect_null(mig_cmd_zfs_send("zones/" VM, h, NULL, true), "send snap", h);
        expect_null(mig_cmd_zfs_send("zones/" VM, "s2", h, false), "send from", h);
        expect_null(mig_cmd_zfs_receive(h, true), "receive", h);
        expect_null(mig_cmd_zfs_list_mounts(h), "list mounts", h);
        expect_null(mig_cmd_zfs_mount(h), "mount", h);
        expect_null(mig_cmd_zfs_destroy(h, true), "destroy", h);
        expect_null(mig_cmd_zfs_destroy_snapshot(h, "s1", true), "destroy_snapshot ds", h);
        expect_null(mig_cmd_zfs_destroy_snapshot("zones/" VM, h, true), "destroy_snapshot", h);
    }
    /* Snapshot-shaped hostile input. */
    expect_null(mig_cmd_zfs_send("zones/" VM, "s2", "@$(id)", true), "send from", "@$(id)");
    expect_null(mig_cmd_zfs_send("zones/" VM, "s2", "zones/x@", true), "send from", "empty snap");
    expect_null(mig_cmd_zfs_send("zones/" VM, "s2", "zones/x", true), "send from", "no @");
    expect_null(mig_cmd_zfs_send("zones/" VM, "s2", "zones/x@a@b", true), "send from", "two @");
    expect_null(mig_cmd_zfs_snapshot("zones/" VM, "a@b"), "snapshot", "a@b");
    expect_null(mig_cmd_zfs_snapshot("zones/" VM "@s", "s"), "snapshot", "@ in dataset");
    expect_null(mig_cmd_zfs_set("quota", "10g;id", "zones/" VM), "set value", ";");
    expect_null(mig_cmd_zfs_set("quota", "a=b", "zones/" VM), "set value", "=");
    expect_null(mig_cmd_zfs_set("quo ta", "1", "zones/" VM), "set prop", "space");
    expect_null(mig_cmd_zfs_get("quota", "/zones/x"), "get dataset", "leading /");
    expect_null(mig_cmd_zfs_get("quota", "zones//x"), "get dataset", "//");
    expect_null(mig_cmd_zfs_create_cores("zones/x", VM), "create_cores", "pool with /");
    /* A bare pool is never destroyed. */
    expect_null(mig_cmd_zfs_destroy("zones", true), "destroy", "pool");

    /* Overlong names. */
    char longname[400];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    memcpy(longname, "zones/", 6);
    expect_null(mig_cmd_zfs_list_tree(longname), "list_tree", "overlong");
    expect_null(mig_cmd_zfs_snapshot("zones/" VM, longname + 6), "snapshot", "overlong");
    expect_null(mig_cmd_zfs_get(longname + 6, "zones/" VM), "get property", "overlong");
    expect_null(mig_cmd_zfs_set("quota", longname + 6, "zones/" VM), "set value", "overlong");
    longname[0] = '/';
    expect_null(mig_cmd_zonecfg_import(VM, longname), "zonecfg_import", "overlong");
}

static void test_parse_zfs_list(void **state)
{
    (void)state;
    const char *text = "zones/" VM "\t1234567\t1000000\tzones/" IMG "@final\tfilesystem\n"
                       "zones/" VM "/data\t4096\t4096\t-\tfilesystem\n"
                       "zones/" VM "-disk0\t10737418240\t2147483648\t-\tvolume\n";
    struct mig_zfs_dataset *rows = NULL;
    assert_int_equal(mig_parse_zfs_list(text, &rows), 3);
    assert_string_equal(rows[0].name, "zones/" VM);
    assert_int_equal(rows[0].used, 1234567);
    assert_int_equal(rows[0].referenced, 1000000);
    assert_string_equal(rows[0].origin, "zones/" IMG "@final");
    assert_string_equal(rows[0].type, "filesystem");
    assert_string_equal(rows[1].origin, "");
    assert_int_equal(rows[2].used, 10737418240ULL);
    assert_string_equal(rows[2].type, "volume");
    free(rows);

    /* No trailing newline, CRLF. */
    assert_int_equal(mig_parse_zfs_list("zones/a\t1\t2\t-\tfilesystem\r\n", &rows), 1);
    assert_string_equal(rows[0].type, "filesystem");
    free(rows);
    assert_int_equal(mig_parse_zfs_list("zones/a\t1\t2\t-\tfilesystem", &rows), 1);
    free(rows);
    /* Empty output: zero rows, still freeable. */
    assert_int_equal(mig_parse_zfs_list("", &rows), 0);
    free(rows);

    static const char *bad[] = {
        "zones/a 1 2 - filesystem\n",                           /* spaces, not tabs */
        "zones/a\t1\t2\t-\n",                                   /* missing column */
        "zones/a\t1\t2\t-\tfilesystem\textra\n",                /* extra column */
        "zones/a\t1.5K\t2\t-\tfilesystem\n",                    /* not -p */
        "zones/a\t-1\t2\t-\tfilesystem\n",                      /* negative */
        "zones/a\t1\t99999999999999999999999\t-\tfilesystem\n", /* overflow */
        "zones/a\t1\t2\t\tfilesystem\n",                        /* empty origin */
        "zones/a\t1\t2\t-\t\n",                                 /* empty type */
        "zones/a\t1\t2\t-\tfilesystem-with-a-very-long-type\n",
        "cannot open 'zones/x': dataset does not exist\n",
        "zones/ok\t1\t2\t-\tfilesystem\ngarbage\n", /* good row, then a bad one */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rows = (struct mig_zfs_dataset *)&rows;
        assert_int_equal(mig_parse_zfs_list(bad[i], &rows), MIG_EPARSE);
        assert_null(rows);
    }
    assert_int_equal(mig_parse_zfs_list(NULL, &rows), MIG_EPARSE);
}

static void test_parse_lines(void **state)
{
    (void)state;
    json_t *a = mig_parse_lines("zones/" VM "@migd-1\nzones/" VM "@migd-2\n\n");
    assert_non_null(a);
    assert_int_equal(json_array_size(a), 2);
    assert_string_equal(json_string_value(json_array_get(a, 0)), "zones/" VM "@migd-1");
    assert_string_equal(json_string_value(json_array_get(a, 1)), "zones/" VM "@migd-2");
    json_decref(a);

    a = mig_parse_lines("");
    assert_non_null(a);
    assert_int_equal(json_array_size(a), 0);
    json_decref(a);

    assert_null(mig_parse_lines(NULL));
    assert_null(mig_parse_lines("ok\nbad\x01line\n"));
    assert_null(mig_parse_lines("not utf-8 \xff\xfe\n"));
}

/* Realistic SmartOS output: global zone, a running and an installed zone, an escaped path. */
static const char *zoneadm_text =
    "0:global:running:/::liveimg:shared:0\n"
    "12:" VM ":running:/zones/" VM ":" VM ":joyent-minimal:excl:13\n"
    "-:" IMG ":installed:/zones/" IMG ":" IMG ":bhyve:excl\n"
    "-:00000000-0000-0000-0000-0000000000cc:configured:/zones/odd\\:path:"
    "00000000-0000-0000-0000-0000000000cc:lx:excl:0\n";

static void test_parse_zoneadm(void **state)
{
    (void)state;
    struct mig_zone z;
    assert_int_equal(mig_parse_zoneadm_find(zoneadm_text, VM, &z), 0);
    assert_string_equal(z.zonename, VM);
    assert_string_equal(z.state, "running");
    assert_string_equal(z.zonepath, "/zones/" VM);
    assert_string_equal(z.uuid, VM);
    assert_string_equal(z.brand, "joyent-minimal");

    assert_int_equal(mig_parse_zoneadm_find(zoneadm_text, IMG, &z), 0);
    assert_string_equal(z.state, "installed");
    assert_string_equal(z.brand, "bhyve");

    assert_int_equal(
        mig_parse_zoneadm_find(zoneadm_text, "00000000-0000-0000-0000-0000000000cc", &z), 0);
    assert_string_equal(z.zonepath, "/zones/odd:path");
    assert_string_equal(z.brand, "lx");

    assert_int_equal(
        mig_parse_zoneadm_find(zoneadm_text, "00000000-0000-0000-0000-0000000000dd", &z), -ENOENT);
    assert_int_equal(mig_parse_zoneadm_find("0:global:running:/::liveimg:shared\n", VM, &z),
                     -ENOENT);
    assert_int_equal(mig_parse_zoneadm_find("", VM, &z), -ENOENT);

    /* Malformed output. */
    assert_int_equal(mig_parse_zoneadm_find("12:" VM ":running\n", VM, &z), MIG_EPARSE);
    assert_int_equal(mig_parse_zoneadm_find("zoneadm: permission denied\n", VM, &z), MIG_EPARSE);
    assert_int_equal(
        mig_parse_zoneadm_find("1:" VM ":running:/z:" VM ":lx:excl:0:extra:x\n", VM, &z),
        MIG_EPARSE);
    assert_int_equal(mig_parse_zoneadm_find("1:" VM "::/z:" VM ":lx:excl\n", VM, &z), MIG_EPARSE);
    assert_int_equal(mig_parse_zoneadm_find(NULL, VM, &z), MIG_EPARSE);
    assert_int_equal(mig_parse_zoneadm_find(zoneadm_text, "global", &z), -EINVAL);
}

static void test_parse_zpool(void **state)
{
    (void)state;
    uint64_t size = 0, free_bytes = 0;
    assert_int_equal(
        mig_parse_zpool_list("zones\t1992864825344\t1507170689024\n", &size, &free_bytes), 0);
    assert_int_equal(size, 1992864825344ULL);
    assert_int_equal(free_bytes, 1507170689024ULL);

    static const char *bad[] = {
        "",
        "zones\t1.81T\t1.37T\n",
        "zones\t100\n",
        "zones\t100\t200\n", /* more free than size */
        "zones\t100\t50\nzones2\t100\t50\n",
        "cannot open 'zones': no such pool\n",
        "zones\t100\t50\textra\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size = 7;
        assert_int_equal(mig_parse_zpool_list(bad[i], &size, &free_bytes), MIG_EPARSE);
        assert_int_equal(size, 7);
    }
    assert_int_equal(mig_parse_zpool_list(NULL, &size, &free_bytes), MIG_EPARSE);
}

static void test_commands_of_the_journaled_actions(void **state)
{
    (void)state;
    /* zonecfg reads stdin with "-": illumos refuses "-f /dev/stdin" over a pipe. */
    expect_cmd(mig_cmd_zonecfg_import_stdin(VM), "zonecfg -z '" VM "' -f -");
    assert_null(mig_cmd_zonecfg_import_stdin("x; rm -rf /"));
    expect_cmd(mig_cmd_zfs_get_snap("guid", "zones/" VM, "migd-1"),
               "zfs get -H -p -o value 'guid' 'zones/" VM "@migd-1'");
    assert_null(mig_cmd_zfs_get_snap("guid", "zones/" VM, "a b"));
    assert_null(mig_cmd_zfs_get_snap("guid;id", "zones/" VM, "migd-1"));
    expect_cmd(mig_cmd_zfs_receive_resumable("zones/" VM), "zfs receive -s -u -F 'zones/" VM "'");
    assert_null(mig_cmd_zfs_receive_resumable("zones"));
    assert_null(mig_cmd_zfs_receive_resumable("zones/x;reboot"));
}

static void test_resume_token(void **state)
{
    (void)state;
    char tok[256];
    /* No token: "-" (the property's empty value) or nothing. */
    assert_int_equal(mig_parse_resume_token("-\n", tok, sizeof(tok)), 0);
    assert_int_equal(mig_parse_resume_token("", tok, sizeof(tok)), 0);
    /* A token as zfs prints it: hex fields joined by '-'. */
    const char *t = "1-e604ea4bf-e0-789c63a2a4c3a32e0b";
    char line[64];
    snprintf(line, sizeof(line), "%s\n", t);
    assert_int_equal(mig_parse_resume_token(line, tok, sizeof(tok)), 1);
    assert_string_equal(tok, t);
    expect_cmd(mig_cmd_zfs_send_resume(tok), "zfs send -t '1-e604ea4bf-e0-789c63a2a4c3a32e0b'");
    /* Anything else is not a token, and never reaches a command line. */
    assert_int_equal(mig_parse_resume_token("1-abc'; rm -rf /", tok, sizeof(tok)), MIG_EPARSE);
    assert_int_equal(mig_parse_resume_token("-t", tok, sizeof(tok)), MIG_EPARSE);
    assert_int_equal(mig_parse_resume_token("1-abc def", tok, sizeof(tok)), MIG_EPARSE);
    assert_int_equal(mig_parse_resume_token("1-abcdef", tok, 4), MIG_EPARSE);
    assert_null(mig_cmd_zfs_send_resume("-x"));
    assert_null(mig_cmd_zfs_send_resume("1-ab'c"));
    assert_null(mig_cmd_zfs_send_resume(""));
}

static void test_parse_guid(void **state)
{
    (void)state;
    uint64_t g = 0;
    assert_int_equal(mig_parse_guid("13513302376734154478\n", &g), 0);
    assert_true(g == 13513302376734154478ULL);
    assert_int_equal(mig_parse_guid("", &g), MIG_EPARSE);
    assert_int_equal(mig_parse_guid("-", &g), MIG_EPARSE);
    assert_int_equal(mig_parse_guid("12a", &g), MIG_EPARSE);
    assert_int_equal(mig_parse_guid("99999999999999999999999", &g), MIG_EPARSE);
}

static void test_zonecfg_flags(void **state)
{
    (void)state;
    int autoboot = 7;
    bool hidden = true;
    const char *plain = "create -b\nset zonepath=/zones/x\nset autoboot=true\nadd attr\n"
                        "set name=alias\nset type=string\nset value=\"d2ViMA==\"\nend\n";
    assert_int_equal(mig_parse_zonecfg_flags(plain, &autoboot, &hidden), 0);
    assert_int_equal(autoboot, 1);
    assert_false(hidden);
    const char *flagged = "create -b\nset autoboot=false\nadd attr\n\tset name=do-not-inventory\n"
                          "\tset type=string\n\tset value=\"true\"\nend\n";
    assert_int_equal(mig_parse_zonecfg_flags(flagged, &autoboot, &hidden), 0);
    assert_int_equal(autoboot, 0);
    assert_true(hidden);
    /* An attr named otherwise, or do-not-inventory=false, does not hide. */
    const char *unflagged = "create -b\nadd attr\nset name=do-not-inventory\n"
                            "set type=string\nset value=false\nend\n";
    assert_int_equal(mig_parse_zonecfg_flags(unflagged, &autoboot, &hidden), 0);
    assert_false(hidden);
    assert_int_equal(autoboot, -1);

    /* The target's copy carries the flag exactly once and autoboot off, appended when not so. */
    char *once = mig_zonecfg_staged(plain);
    assert_int_equal(mig_parse_zonecfg_flags(once, &autoboot, &hidden), 0);
    assert_true(hidden);
    assert_int_equal(autoboot, 0);
    assert_non_null(strstr(once, plain));
    char *again = mig_zonecfg_staged(once);
    assert_string_equal(again, once);
    free(once);
    free(again);
    char *nonl = mig_zonecfg_staged("create -b");
    assert_non_null(strstr(nonl, "create -b\nadd attr\n"));
    free(nonl);
    /* A running zone's export (autoboot on) is staged with autoboot off, set last. */
    const char *on = "create -b\nset autoboot=true\nset zonepath=/zones/x\n";
    char *staged = mig_zonecfg_staged(on);
    assert_int_equal(mig_parse_zonecfg_flags(staged, &autoboot, &hidden), 0);
    assert_int_equal(autoboot, 0);
    assert_true(hidden);
    assert_string_equal(staged + strlen(staged) - strlen("end\nset autoboot=false\n"),
                        "end\nset autoboot=false\n");
    free(staged);
    /* Flagged already, autoboot off already: nothing is added. */
    char *kept = mig_zonecfg_staged(flagged);
    assert_string_equal(kept, flagged);
    free(kept);
}

/* A configuration is compared without its flags: autoboot and do-not-inventory. */
static void test_zonecfg_same(void **state)
{
    (void)state;
    const char *ran = "create -b\nset zonepath=/zones/x\nset autoboot=true\nadd attr\n"
                      "set name=alias\nset type=string\nset value=\"d2ViMA==\"\nend\n";
    /* As the switch's stop leaves it: autoboot off, the flag added (last, or indented). */
    const char *stopped = "create -b\nset zonepath=/zones/x\nset autoboot=false\nadd attr\n"
                          "set name=alias\nset type=string\nset value=\"d2ViMA==\"\nend\n"
                          "add attr\n\tset name=\"do-not-inventory\"\n\tset type=string\n"
                          "\tset value=\"true\"\nend\n";
    assert_true(mig_zonecfg_same(ran, stopped));
    assert_true(mig_zonecfg_same(stopped, ran));
    char *hidden = mig_zonecfg_staged(ran);
    assert_true(mig_zonecfg_same(hidden, ran));
    free(hidden);
    /* Anything else is a change: another attr, another value, a line more or less. */
    const char *alias = "create -b\nset zonepath=/zones/x\nset autoboot=true\nadd attr\n"
                        "set name=alias\nset type=string\nset value=\"b3RoZXI=\"\nend\n";
    assert_false(mig_zonecfg_same(ran, alias));
    const char *more = "create -b\nset zonepath=/zones/x\nset autoboot=true\nadd attr\n"
                       "set name=alias\nset type=string\nset value=\"d2ViMA==\"\nend\n"
                       "set max-lwps=4000\n";
    assert_false(mig_zonecfg_same(ran, more));
    assert_false(mig_zonecfg_same(more, ran));
    const char *other_attr = "create -b\nset zonepath=/zones/x\nadd attr\nset name=owner\n"
                             "set type=string\nset value=x\nend\n";
    assert_false(mig_zonecfg_same("create -b\nset zonepath=/zones/x\n", other_attr));
    assert_true(mig_zonecfg_same(NULL, NULL));
    assert_false(mig_zonecfg_same(ran, NULL));
}

#define JOB "0b1c2d3e-4f50-4a61-8b72-c3d4e5f60718"
#define KEY "AAAAC3NzaC1lZDI1NTE5AAAAIGq3c1bbq0rW1o1c1m8d0N5b3d0v1cX1ZmQ3n2k4xY7p"

#define RECV_VM "zfs receive -u -F zones/" VM
#define RECV_DISK "zfs receive -u -F zones/" VM "-disk0"
#define FORCED                                                                                     \
    "case $SSH_ORIGINAL_COMMAND in '" RECV_VM "') exec " RECV_VM ";; '" RECV_DISK "') exec "      \
    RECV_DISK ";; *) echo migd: refused >&2; exit 1;; esac"
#define LINE                                                                                       \
    "restrict,from=\"10.1.1.33\",command=\"" FORCED "\",no-pty,no-port-forwarding,"                \
    "no-agent-forwarding,no-X11-forwarding ssh-ed25519 " KEY " migd-job-" JOB

static void test_direct_transfer_commands(void **state)
{
    (void)state;
    char line[4608];
    const char *ds[] = {"zones/" VM, "zones/" VM "-disk0"};
    struct mig_direct_key k = {.job_uuid = JOB, .src_ip = "10.1.1.33", .pubkey_b64 = KEY,
                               .datasets = ds, .ndatasets = 2};
    /* restrict, the source only, and a forced command that runs the job's receives only. */
    assert_int_equal(mig_direct_key_line(&k, line, sizeof(line)), 0);
    assert_string_equal(line, LINE);
    /* The edits: under the CN's lock, the line quoted once into $l, verified afterwards. */
    char *auth = mig_cmd_authorize_key(&k);
    assert_non_null(auth);
    assert_non_null(strstr(auth, "until mkdir \"$L\" 2>/dev/null; do"));
    assert_non_null(strstr(auth, "l='restrict,from=\"10.1.1.33\",command=\"case $SSH_ORIGINAL_"
                                 "COMMAND in '\\''" RECV_VM "'\\'') exec "));
    assert_non_null(strstr(auth, "[ \"$c\" = 1 ] ||"));
    free(auth);
    char *unauth = mig_cmd_unauthorize_key(&k);
    assert_non_null(unauth);
    assert_non_null(strstr(unauth, "grep -v -x -F -e \"$l\" \"$f\" > \"$t\""));
    assert_non_null(strstr(unauth, "[ \"$c\" = 0 ] ||"));
    assert_null(strstr(unauth, "migd-job-" JOB "$")); /* never a suffix pattern */
    free(unauth);
    expect_cmd(mig_cmd_job_dir_create(JOB), "mkdir -m 700 '/var/tmp/migd-" JOB "'");
    expect_cmd(mig_cmd_job_file_write(JOB, "id"), "umask 077 && cat > '/var/tmp/migd-" JOB "/id'");
    expect_cmd(mig_cmd_job_file_write(JOB, "known_hosts"),
               "umask 077 && cat > '/var/tmp/migd-" JOB "/known_hosts'");
    expect_cmd(mig_cmd_job_dir_remove(JOB), "rm -rf '/var/tmp/migd-" JOB "'");
    struct mig_direct_send d = {.dataset = "zones/" VM, .snap = "migd-" JOB "-1", .from = NULL,
                                .job_uuid = JOB, .src_ip = "10.1.1.33", .dst_ip = "10.1.1.34",
                                .user = "root", .port = 22, .cipher = NULL};
    /* None of the source's ssh configuration, identities or known hosts. */
    expect_cmd(mig_cmd_zfs_send_direct(&d),
               "zfs send -R -v 'zones/" VM "@migd-" JOB "-1' | ssh -F /dev/null -T -b '10.1.1.33' "
               "-i '/var/tmp/migd-" JOB "/id' -o IdentitiesOnly=yes -o GlobalKnownHostsFile=/dev/null"
               " -o 'UserKnownHostsFile=/var/tmp/migd-" JOB "/known_hosts' -o "
               "StrictHostKeyChecking=yes -o BatchMode=yes 'root@10.1.1.34' '" RECV_VM "'");
    d.from = "zones/" IMG "@final";
    d.port = 2222;
    d.cipher = "aes128-gcm@openssh.com";
    d.dataset = "zones/" VM "-disk0";
    d.compressed = true;
    expect_cmd(mig_cmd_zfs_send_direct(&d),
               "zfs send -R -c -v -I 'zones/" IMG "@final' 'zones/" VM "-disk0@migd-" JOB "-1' | ssh "
               "-F /dev/null -T -b '10.1.1.33' -i '/var/tmp/migd-" JOB "/id' -o IdentitiesOnly=yes "
               "-o GlobalKnownHostsFile=/dev/null -o 'UserKnownHostsFile=/var/tmp/migd-" JOB
               "/known_hosts' -o StrictHostKeyChecking=yes -o BatchMode=yes -p '2222' -c "
               "'aes128-gcm@openssh.com' 'root@10.1.1.34' '" RECV_DISK "'");
    d.dataset = "zones/" VM;
    d.compressed = false;

    /* Nothing unchecked reaches the CN: every argument is refused when it is not what it must be. */
    k.src_ip = "10.1.1.33\",command=\"sh";
    assert_int_equal(mig_direct_key_line(&k, line, sizeof(line)), -EINVAL);
    k.src_ip = "10.1.1.33";
    k.pubkey_b64 = "AAAAB3NzaC1yc2E' x";
    assert_int_equal(mig_direct_key_line(&k, line, sizeof(line)), -EINVAL);
    k.pubkey_b64 = KEY;
    k.job_uuid = "../x";
    assert_int_equal(mig_direct_key_line(&k, line, sizeof(line)), -EINVAL);
    assert_null(mig_cmd_unauthorize_key(&k));
    k.job_uuid = JOB;
    const char *bad[][1] = {{"zones;x"}, {"zones"}, {"zones/a') exec sh;; x('"}, {"zones/$(id)"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        k.datasets = bad[i];
        k.ndatasets = 1;
        assert_int_equal(mig_direct_key_line(&k, line, sizeof(line)), -EINVAL);
        assert_null(mig_cmd_authorize_key(&k));
    }
    k.datasets = ds;
    k.ndatasets = 0;
    assert_int_equal(mig_direct_key_line(&k, line, sizeof(line)), -EINVAL);
    k.ndatasets = 9;
    assert_int_equal(mig_direct_key_line(&k, line, sizeof(line)), -EINVAL);
    k.ndatasets = 2;
    assert_int_equal(mig_direct_key_line(&k, line, 40), -ENAMETOOLONG);
    k.src_ip = "host.example";
    assert_null(mig_cmd_authorize_key(&k));
    assert_null(mig_cmd_job_dir_create("/"));
    assert_null(mig_cmd_job_file_write(JOB, "../../etc/passwd"));
    assert_null(mig_cmd_job_dir_remove(""));
    d.cipher = "aes; id";
    assert_null(mig_cmd_zfs_send_direct(&d));
    d.cipher = "aes128-gcm@openssh.com,$(id)";
    assert_null(mig_cmd_zfs_send_direct(&d));
    /* The preference list ssh negotiates from, as one argument. */
    d.cipher = MIG_DIRECT_CIPHERS;
    char *cmd = mig_cmd_zfs_send_direct(&d);
    assert_non_null(cmd);
    assert_non_null(strstr(cmd, " -c 'aes128-gcm@openssh.com,chacha20-poly1305@openssh.com' "));
    free(cmd);
    d.cipher = NULL;
    d.user = "root@evil";
    assert_null(mig_cmd_zfs_send_direct(&d));
    d.user = "root";
    d.dst_ip = "-oProxyCommand=x";
    assert_null(mig_cmd_zfs_send_direct(&d));
    d.dst_ip = "10.1.1.34";
    d.port = 0;
    assert_null(mig_cmd_zfs_send_direct(&d));
    d.port = 22;
    d.dataset = "zones";
    assert_null(mig_cmd_zfs_send_direct(&d));
}

/* What a receive brought may be mounted only inside the dataset's own tree. */
static void test_check_received(void **state)
{
    (void)state;
    char next[256], why[320];
    const char *ok = "zones/" VM "\tfilesystem\t/zones/" VM "\toff\ton\tno\n"
                     "zones/" VM "/data\tfilesystem\t/data\ton\ton\tno\n"
                     "zones/" VM "/disk0\tvolume\t-\t-\t-\t-\n"
                     "zones/" VM "/sub\tfilesystem\t/zones/" VM "/sub\toff\ton\tno\n";
    assert_int_equal(mig_check_received(ok, "zones/" VM, next, sizeof(next), why, sizeof(why)), 2);
    assert_string_equal(next, "zones/" VM); /* the parent first; the zoned one is its zone's */
    const char *mounted = "zones/" VM "\tfilesystem\t/zones/" VM "\toff\ton\tyes\n"
                          "zones/" VM "/off\tfilesystem\t/zones/" VM "/off\toff\toff\tno\n"
                          "zones/" VM "/n\tfilesystem\tnone\toff\ton\tno\n"
                          "zones/" VM "/l\tfilesystem\tlegacy\toff\ton\tno\n";
    assert_int_equal(
        mig_check_received(mounted, "zones/" VM, next, sizeof(next), why, sizeof(why)), 0);
    assert_string_equal(next, "");
    const char *evil[] = {
        "zones/" VM "\tfilesystem\t/zones/" VM "\toff\ton\tno\nzones/" VM
        "/x\tfilesystem\t/etc/evil\toff\ton\tno\n",
        "zones/" VM "\tfilesystem\t/zones/" VM "-disk0\toff\ton\tno\n",
        "zones/" VM "\tfilesystem\t/zones/" VM "/../../etc\toff\ton\tno\n",
        "zones/" VM "\tfilesystem\t/zones/" VM "/./x\toff\ton\tno\n",
        "zones/" VM "\tfilesystem\t/zones\toff\toff\tno\n", /* canmount=off may be turned on */
        "zones/other\tfilesystem\t/zones/other\toff\ton\tno\n",
    };
    for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
        assert_int_equal(
            mig_check_received(evil[i], "zones/" VM, next, sizeof(next), why, sizeof(why)),
            -EPERM);
        assert_string_equal(next, "");
        assert_true(why[0] != '\0');
    }
    assert_int_equal(mig_check_received("zones/" VM "\tfilesystem\t/zones/" VM "\toff\n",
                                        "zones/" VM, next, sizeof(next), why, sizeof(why)),
                     MIG_EPARSE);
    assert_int_equal(mig_check_received("zones/" VM "\tfilesystem\trelative\toff\ton\tno\n",
                                        "zones/" VM, next, sizeof(next), why, sizeof(why)),
                     MIG_EPARSE);
}

/* zfs send -c with nothing to send: which refusal says whether -c is known. */
static void test_send_c_probe(void **state)
{
    (void)state;
    assert_int_equal(mig_parse_send_c_probe("invalid option 'c'\nusage:\n\tsend [-DnPpRv] ..."),
                     0);
    assert_int_equal(mig_parse_send_c_probe("missing snapshot argument\nusage:\n\tsend "
                                            "[-DnPpRvLec] [-[iI] snapshot] <snapshot>"),
                     1);
    assert_int_equal(mig_parse_send_c_probe("cannot open 'zones': permission denied"),
                     MIG_EPARSE);
    assert_int_equal(mig_parse_send_c_probe(""), MIG_EPARSE);
    assert_int_equal(mig_parse_send_c_probe(NULL), MIG_EPARSE);
}

static void test_send_progress(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(mig_parse_zfs_nicenum("512", &v), 0);
    assert_int_equal(v, 512);
    assert_int_equal(mig_parse_zfs_nicenum("4.50K", &v), 0);
    assert_int_equal(v, 4608);
    assert_int_equal(mig_parse_zfs_nicenum("1.23G", &v), 0);
    assert_int_equal(v, (uint64_t)(1.23 * 1073741824.0));
    assert_int_equal(mig_parse_zfs_nicenum("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(mig_parse_zfs_nicenum("12X", &v), MIG_EPARSE);
    assert_int_equal(mig_parse_zfs_nicenum("-1K", &v), MIG_EPARSE);
    assert_int_equal(mig_parse_zfs_nicenum("", &v), MIG_EPARSE);
    assert_int_equal(mig_parse_zfs_nicenum("99999E", &v), MIG_EPARSE);

    /* illumos zfs send -R -v -I: the estimates, the header, then per-snapshot counts,
     * in chunks cut anywhere. */
    const char *text = "send from @a to zones/" VM "@b estimated size is 10.0M\n"
                       "send from @b to zones/" VM "@c estimated size is 2.00M\n"
                       "total estimated size is 12.0M\n"
                       "TIME        SENT   SNAPSHOT\n"
                       "12:00:01   1.00M   zones/" VM "@b\n"
                       "12:00:02   6.00M   zones/" VM "@b\n"
                       "12:00:03   10.0M   zones/" VM "@b\n"
                       "12:00:04   1.50M   zones/" VM "@c\n";
    struct mig_send_progress p;
    memset(&p, 0, sizeof(p));
    size_t len = strlen(text);
    for (size_t i = 0; i < len; i += 7)
        mig_send_progress_feed(&p, text + i, len - i < 7 ? len - i : 7);
    assert_int_equal(mig_send_progress_bytes(&p), (10 << 20) + (3 << 19));
    /* Nothing but noise: nothing counted. */
    memset(&p, 0, sizeof(p));
    const char *noise = "cannot open 'zones/x': dataset does not exist\n12:00:01 1.0M nosnap\n";
    mig_send_progress_feed(&p, noise, strlen(noise));
    assert_int_equal(mig_send_progress_bytes(&p), 0);
}

/* A failed direct send: the receive's words, wherever the send's echo falls. */
static void test_direct_failure_line_prefers_the_receive(void **state)
{
    (void)state;
    const char *line = NULL;
    static const char after[] =
        "TIME        SENT   SNAPSHOT\n21:13:18\t4.1M\tzones/x@migd-1\n"
        "cannot receive new filesystem stream: checksum mismatch\n"
        "warning: cannot send 'zones/x@migd-1': Broken pipe\n";
    static const char before[] =
        "warning: cannot send 'zones/x@migd-1': Broken pipe\n"
        "cannot receive new filesystem stream: checksum mismatch\n";
    static const char only_echo[] = "full send of zones/x@migd-1 estimated size is 4M\n"
                                    "warning: cannot send 'zones/x@migd-1': Broken pipe\n";
    static const char noise[] = "TIME        SENT   SNAPSHOT\n\n21:13:18\t4.1M\tzones/x@migd-1\n";
    size_t n = mig_direct_failure_line(after, &line);
    assert_int_equal(n, strlen("cannot receive new filesystem stream: checksum mismatch"));
    assert_memory_equal(line, "cannot receive new filesystem stream: checksum mismatch", n);
    n = mig_direct_failure_line(before, &line);
    assert_memory_equal(line, "cannot receive new filesystem stream: checksum mismatch", n);
    n = mig_direct_failure_line(only_echo, &line);
    assert_memory_equal(line, "warning: cannot send 'zones/x@migd-1': Broken pipe", n);
    assert_int_equal(mig_direct_failure_line(noise, &line), 0);
    assert_null(line);
    assert_int_equal(mig_direct_failure_line(NULL, &line), 0);
    assert_null(line);
}

UNIT_TEST_MAIN(NULL, NULL,
               cmocka_unit_test(test_direct_failure_line_prefers_the_receive),
               cmocka_unit_test(test_fact_and_instance_commands),
               cmocka_unit_test(test_zfs_commands),
               cmocka_unit_test(test_hostile_uuid_arguments),
               cmocka_unit_test(test_hostile_zfs_arguments),
               cmocka_unit_test(test_parse_zfs_list),
               cmocka_unit_test(test_parse_lines),
               cmocka_unit_test(test_parse_zoneadm),
               cmocka_unit_test(test_parse_zpool),
               cmocka_unit_test(test_commands_of_the_journaled_actions),
               cmocka_unit_test(test_resume_token),
               cmocka_unit_test(test_parse_guid),
               cmocka_unit_test(test_zonecfg_flags),
               cmocka_unit_test(test_zonecfg_same),
               cmocka_unit_test(test_direct_transfer_commands),
               cmocka_unit_test(test_check_received),
               cmocka_unit_test(test_send_c_probe),
               cmocka_unit_test(test_send_progress))
