/*
 * cn.c: builds the command lines of cn-commands.md (cn.h; direct transfer's
 * are in cn_direct.c), and holds the quoting and validation every builder
 * shares (cn_int.h).  Each builder checks every argument against a strict
 * pattern and single-quotes it; one bad argument and the builder returns
 * NULL, so no unchecked text ever reaches a CN's shell.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cn.h"
#include "cn_int.h"
#include "err.h"
#include "util.h"

#define PROP_MAX 256
#define VALUE_MAX 256
#define PATH_MAX_LEN 255

/* Appends literal text (our own words, never outside input), space-separated. */
void cn_cmd_lit(struct cmd *c, const char *words)
{
    if (c->bad)
        return;
    size_t len = strlen(c->buf);
    size_t need = strlen(words) + (len > 0 ? 1 : 0) + 1;
    if (len + need > sizeof(c->buf)) {
        c->bad = true;
        return;
    }
    if (len > 0)
        c->buf[len++] = ' ';
    strcpy(c->buf + len, words);
}

/* Appends a quoted argument when valid is true; marks the command bad otherwise. */
void cn_cmd_arg(struct cmd *c, const char *arg, bool valid)
{
    if (c->bad)
        return;
    if (!valid || arg == NULL) {
        c->bad = true;
        return;
    }
    size_t len = strlen(c->buf);
    if (len > 0) {
        if (len + 2 > sizeof(c->buf)) {
            c->bad = true;
            return;
        }
        c->buf[len] = ' ';
        c->buf[len + 1] = '\0';
    }
    if (mig_shell_quote_append(c->buf, sizeof(c->buf), arg) < 0)
        c->bad = true;
}

/* Appends a quoted argument made of a format; the caller validated its parts. */
void cn_cmd_argf(struct cmd *c, bool valid, const char *fmt, ...)
{
    char tmp[CMD_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    cn_cmd_arg(c, tmp, valid && n >= 0 && (size_t)n < sizeof(tmp));
}

/* The finished command line (malloc'd), or NULL if any part was invalid. */
char *cn_cmd_done(struct cmd *c)
{
    return c->bad ? NULL : mig_strdup(c->buf);
}

/* True when s is 1..max chars from the set allowed by ok(), without a leading '-' or "..". */
bool cn_token_valid(const char *s, size_t max, bool (*ok)(char))
{
    if (s == NULL || *s == '\0' || *s == '-' || strlen(s) > max || strstr(s, "..") != NULL)
        return false;
    for (const char *p = s; *p != '\0'; p++)
        if (!ok(*p))
            return false;
    return true;
}

bool cn_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool cn_prop_char(char c)
{
    return cn_alnum(c) || c == ':' || c == '@' || c == '.' || c == '_' || c == '-';
}

static bool value_char(char c)
{
    return cn_alnum(c) || c == '.' || c == '_' || c == '-';
}

static bool path_char(char c)
{
    return value_char(c) || c == '/';
}

/* A ZFS property name, as `zfs get` takes it (also "written@snap"). */
static bool prop_valid(const char *s)
{
    return cn_token_valid(s, PROP_MAX, cn_prop_char);
}

/* A property value for `zfs set`: [A-Za-z0-9._-]. */
static bool value_valid(const char *s)
{
    return cn_token_valid(s, VALUE_MAX, value_char);
}

/* An absolute path of [A-Za-z0-9/._-], e.g. "/dev/stdin". */
static bool path_valid(const char *s)
{
    return s != NULL && s[0] == '/' && cn_token_valid(s, PATH_MAX_LEN, path_char);
}

/* A pool name: a dataset name of one component. */
bool cn_pool_valid(const char *s)
{
    return mig_dataset_valid(s) && strchr(s, '/') == NULL;
}

/* A full snapshot name "pool/ds@snap", or the short "@snap" zfs send -I accepts. */
bool cn_from_snapshot_valid(const char *s)
{
    if (s == NULL)
        return false;
    const char *at = strchr(s, '@');
    if (at == NULL || !mig_snapname_valid(at + 1))
        return false;
    if (at == s)
        return true;
    char ds[256];
    size_t n = (size_t)(at - s);
    if (n >= sizeof(ds))
        return false;
    memcpy(ds, s, n);
    ds[n] = '\0';
    return mig_dataset_valid(ds);
}

/* "WORDS 'ARG'": our words and one argument, quoted; NULL when !valid. */
static char *lit_arg(const char *words, const char *arg, bool valid)
{
    struct cmd c = {0};
    cn_cmd_lit(&c, words);
    cn_cmd_arg(&c, arg, valid);
    return cn_cmd_done(&c);
}

/* A dataset below its pool: what migd receives into, mounts or destroys, never a bare pool. */
static bool child_valid(const char *dataset)
{
    return mig_dataset_valid(dataset) && !cn_pool_valid(dataset);
}

/* Appends 'DS@SNAP'; marks the command bad when either part is invalid. */
static void snap_arg(struct cmd *c, const char *dataset, const char *snap)
{
    bool ok = mig_dataset_valid(dataset) && mig_snapname_valid(snap);
    cn_cmd_argf(c, ok, "%s@%s", ok ? dataset : "", ok ? snap : "");
}

/* --- facts ----------------------------------------------------------------- */

/* "sysinfo" */
char *mig_cmd_sysinfo(void)
{
    return mig_strdup("sysinfo");
}

/* "zpool list -H -p -o name,size,free 'POOL'"; NULL for a bad pool name. */
char *mig_cmd_zpool_list(const char *pool)
{
    return lit_arg("zpool list -H -p -o name,size,free", pool, cn_pool_valid(pool));
}

/* "imgadm get 'UUID'"; NULL for a bad uuid. */
char *mig_cmd_imgadm_get(const char *image_uuid)
{
    return lit_arg("imgadm get", image_uuid, mig_uuid_valid(image_uuid));
}

/* "imgadm import -q 'UUID'"; NULL for a bad uuid. */
char *mig_cmd_imgadm_import(const char *image_uuid)
{
    return lit_arg("imgadm import -q", image_uuid, mig_uuid_valid(image_uuid));
}

/* --- instances ----------------------------------------------------------- */

/* "vmadm get 'UUID'"; NULL for a bad uuid. */
char *mig_cmd_vmadm_get(const char *vm_uuid)
{
    return lit_arg("vmadm get", vm_uuid, mig_uuid_valid(vm_uuid));
}

/* "vmadm stop 'UUID'" or "vmadm stop 'UUID' -F"; NULL for a bad uuid. */
char *mig_cmd_vmadm_stop(const char *vm_uuid, bool force)
{
    struct cmd c = {0};
    cn_cmd_lit(&c, "vmadm stop");
    cn_cmd_arg(&c, vm_uuid, mig_uuid_valid(vm_uuid));
    if (force)
        cn_cmd_lit(&c, "-F");
    return cn_cmd_done(&c);
}

/* "vmadm start 'UUID'"; NULL for a bad uuid. */
char *mig_cmd_vmadm_start(const char *vm_uuid)
{
    return lit_arg("vmadm start", vm_uuid, mig_uuid_valid(vm_uuid));
}

/* "zoneadm list -pc" */
char *mig_cmd_zoneadm_list(void)
{
    return mig_strdup("zoneadm list -pc");
}

char *mig_cmd_doctor_snapshots(const char *pool)
{
    return lit_arg("zfs list -H -o name,userrefs -t snapshot -r", pool, mig_dataset_valid(pool));
}

char *mig_cmd_doctor_resume_tokens(const char *pool)
{
    /* Snapshots answer "-" too; a zfs without the property refuses it (the doctor reads none). */
    return lit_arg("zfs get -H -o name,value -r receive_resume_token", pool,
                   mig_dataset_valid(pool));
}

char *mig_cmd_doctor_keys(void)
{
    /* Never fails: no file, no directory is nothing to report. */
    return mig_strdup("grep -h -o ' migd-job-[0-9a-f-]*$' ~/.ssh/authorized_keys 2>/dev/null; "
                      "ls -d /var/tmp/migd-* 2>/dev/null; true");
}

char *mig_cmd_doctor_zone_flags(void)
{
    /* The <zone ... autoboot="..."> line and any do-not-inventory attr of every zone's XML. */
    return mig_strdup("grep -H -e ' autoboot=' -e '\"do-not-inventory\"' /etc/zones/*.xml "
                      "2>/dev/null; true");
}

char *mig_cmd_zoneadm_running(void)
{
    return mig_strdup("zoneadm list -p");
}

char *mig_cmd_svcs_explain(const char *vm_uuid)
{
    struct cmd c = {0};
    cn_cmd_lit(&c, "svcs -z");
    cn_cmd_arg(&c, vm_uuid, mig_uuid_valid(vm_uuid));
    cn_cmd_lit(&c, "-x");
    return cn_cmd_done(&c);
}

/* "PROG -z 'UUID' [TAIL] ['QTAIL']": our own words after the uuid, then our own script quoted. */
static char *zone_cmd(const char *prog, const char *vm_uuid, const char *tail, const char *qtail)
{
    struct cmd c = {0};
    cn_cmd_lit(&c, prog);
    cn_cmd_lit(&c, "-z");
    cn_cmd_arg(&c, vm_uuid, mig_uuid_valid(vm_uuid));
    if (tail != NULL)
        cn_cmd_lit(&c, tail);
    if (qtail != NULL)
        cn_cmd_arg(&c, qtail, true);
    return cn_cmd_done(&c);
}

/*
 * The zone commands whose subcommand is fixed, "PROG -z 'UUID' SUBCOMMAND"
 * (cn.h), one row each; NULL for a bad uuid.
 */
#define ZONE_COMMAND(fn, prog, subcommand)                                                         \
    char *fn(const char *vm_uuid)                                                                  \
    {                                                                                              \
        return zone_cmd(prog, vm_uuid, subcommand, NULL);                                          \
    }
ZONE_COMMAND(mig_cmd_zoneadm_attach, "zoneadm", "attach")
ZONE_COMMAND(mig_cmd_zoneadm_detach, "zoneadm", "detach")
ZONE_COMMAND(mig_cmd_zonecfg_export, "zonecfg", "export")
ZONE_COMMAND(mig_cmd_zonecfg_import_stdin, "zonecfg", "-f -")
ZONE_COMMAND(mig_cmd_zonecfg_delete, "zonecfg", "delete -F")

/* "zonecfg -z 'UUID' -f 'FILE'"; FILE an absolute path of [A-Za-z0-9/._-]. */
char *mig_cmd_zonecfg_import(const char *vm_uuid, const char *file)
{
    struct cmd c = {0};
    cn_cmd_lit(&c, "zonecfg -z");
    cn_cmd_arg(&c, vm_uuid, mig_uuid_valid(vm_uuid));
    cn_cmd_lit(&c, "-f");
    cn_cmd_arg(&c, file, path_valid(file));
    return cn_cmd_done(&c);
}

/* Hides the zone from the CN's agent (the source copy after a switch). */
char *mig_cmd_zonecfg_do_not_inventory(const char *vm_uuid)
{
    return zone_cmd("zonecfg", vm_uuid, NULL,
                    "add attr; set name=do-not-inventory; set type=string; set value=true; end");
}

/* Autoboot off and hidden from the CN's agent, in one zonecfg command. */
char *mig_cmd_zonecfg_disable(const char *vm_uuid)
{
    return zone_cmd("zonecfg", vm_uuid, NULL,
                    "set autoboot=false; add attr; set name=do-not-inventory; set type=string; "
                    "set value=true; end");
}

char *mig_cmd_and(char *first, char *second)
{
    char *out = first != NULL && second != NULL ? mig_asprintf("%s && %s", first, second) : NULL;
    free(first);
    free(second);
    return out;
}

/* Autoboot as given and shown to the CN's agent again, in one zonecfg command. */
char *mig_cmd_zonecfg_enable(const char *vm_uuid, bool autoboot)
{
    return zone_cmd("zonecfg", vm_uuid, NULL,
                    autoboot ? "set autoboot=true; remove attr name=do-not-inventory"
                             : "set autoboot=false; remove attr name=do-not-inventory");
}

/* "svcadm restart vm-agent" */
char *mig_cmd_svcadm_restart_vm_agent(void)
{
    return mig_strdup("svcadm restart vm-agent");
}

/* --- ZFS ----------------------------------------------------------------- */

/* "zfs list -H -p -o name,used,referenced,origin,type -r -t filesystem,volume 'DS'" */
char *mig_cmd_zfs_list_tree(const char *dataset)
{
    return lit_arg("zfs list -H -p -o name,used,referenced,origin,type -r -t filesystem,volume",
                   dataset, mig_dataset_valid(dataset));
}

/* "zfs list -H -o name -t snapshot -d 1 'DS'" */
char *mig_cmd_zfs_list_snapshots(const char *dataset)
{
    return lit_arg("zfs list -H -o name -t snapshot -d 1", dataset, mig_dataset_valid(dataset));
}

/* "zfs get -H -p -o value 'PROP' 'DS'" */
char *mig_cmd_zfs_get(const char *property, const char *dataset)
{
    struct cmd c = {0};
    cn_cmd_lit(&c, "zfs get -H -p -o value");
    cn_cmd_arg(&c, property, prop_valid(property));
    cn_cmd_arg(&c, dataset, mig_dataset_valid(dataset));
    return cn_cmd_done(&c);
}

/* "zfs get -H -p -o value 'PROP' 'DS@SNAP'" */
char *mig_cmd_zfs_get_snap(const char *property, const char *dataset, const char *snap)
{
    struct cmd c = {0};
    cn_cmd_lit(&c, "zfs get -H -p -o value");
    cn_cmd_arg(&c, property, prop_valid(property));
    snap_arg(&c, dataset, snap);
    return cn_cmd_done(&c);
}

/* "zfs set 'PROP=VALUE' 'DS'" */
char *mig_cmd_zfs_set(const char *property, const char *value, const char *dataset)
{
    struct cmd c = {0};
    cn_cmd_lit(&c, "zfs set");
    bool ok = prop_valid(property) && value_valid(value);
    cn_cmd_argf(&c, ok, "%s=%s", ok ? property : "", ok ? value : "");
    cn_cmd_arg(&c, dataset, mig_dataset_valid(dataset));
    return cn_cmd_done(&c);
}

/* "zfs snapshot -r 'DS@SNAP'" */
char *mig_cmd_zfs_snapshot(const char *dataset, const char *snap)
{
    struct cmd c = {0};
    cn_cmd_lit(&c, "zfs snapshot -r");
    snap_arg(&c, dataset, snap);
    return cn_cmd_done(&c);
}

/* "zfs send -R [-I 'FROM'] 'DS@SNAP'"; from NULL for a full stream. */
char *mig_cmd_zfs_send(const char *dataset, const char *snap, const char *from, bool compressed)
{
    struct cmd c = {0};
    cn_cmd_lit(&c, compressed ? "zfs send -R -c" : "zfs send -R");
    if (from != NULL) {
        cn_cmd_lit(&c, "-I");
        cn_cmd_arg(&c, from, cn_from_snapshot_valid(from));
    }
    snap_arg(&c, dataset, snap);
    return cn_cmd_done(&c);
}

/* "zfs receive -u [-F] 'DS'" (see cn.h: an explicit destination, nothing mounted) */
char *mig_cmd_zfs_receive(const char *dataset, bool force)
{
    return lit_arg(force ? "zfs receive -u -F" : "zfs receive -u", dataset, child_valid(dataset));
}

/* "zfs receive -s -u -F 'DS'" */
char *mig_cmd_zfs_receive_resumable(const char *dataset)
{
    return lit_arg("zfs receive -s -u -F", dataset, child_valid(dataset));
}

/* "zfs list -H -o name,type,mountpoint,zoned,canmount,mounted -r 'DS'" */
char *mig_cmd_zfs_list_mounts(const char *dataset)
{
    return lit_arg("zfs list -H -o name,type,mountpoint,zoned,canmount,mounted -r", dataset,
                   mig_dataset_valid(dataset));
}

/* "zfs mount 'DS'" */
char *mig_cmd_zfs_mount(const char *dataset)
{
    return lit_arg("zfs mount", dataset, child_valid(dataset));
}

/* A resume token: 1..1023 of [0-9a-zA-Z-] (zfs prints hex fields joined by '-'). */
bool cn_token_char(char ch)
{
    return cn_alnum(ch) || ch == '-';
}

/* "zfs send -t 'TOKEN'" */
char *mig_cmd_zfs_send_c_probe(void)
{
    return mig_strdup("zfs send -c");
}

char *mig_cmd_zfs_send_resume(const char *token)
{
    struct cmd c = {0};
    cn_cmd_lit(&c, "zfs send -t");
    bool ok = token != NULL && token[0] != '\0' && token[0] != '-' &&
              strlen(token) < MIG_RESUME_TOKEN_MAX;
    for (const char *p = token; ok && *p != '\0'; p++)
        ok = cn_token_char(*p);
    cn_cmd_arg(&c, token, ok);
    return cn_cmd_done(&c);
}

/* "zfs destroy [-r] 'DS'".  A bare pool is refused: migd never destroys one. */
char *mig_cmd_zfs_destroy(const char *dataset, bool recursive)
{
    return lit_arg(recursive ? "zfs destroy -r" : "zfs destroy", dataset, child_valid(dataset));
}

/* "zfs destroy [-r] 'DS@SNAP'" */
char *mig_cmd_zfs_destroy_snapshot(const char *dataset, const char *snap, bool recursive)
{
    struct cmd c = {0};
    cn_cmd_lit(&c, recursive ? "zfs destroy -r" : "zfs destroy");
    snap_arg(&c, dataset, snap);
    return cn_cmd_done(&c);
}

/*
 * "zfs create -o quota=1000m -o compression=gzip -o 'mountpoint=/zones/UUID/cores'
 *  'POOL/cores/UUID'"
 */
char *mig_cmd_zfs_create_cores(const char *pool, const char *vm_uuid)
{
    struct cmd c = {0};
    bool ok = cn_pool_valid(pool) && mig_uuid_valid(vm_uuid);
    cn_cmd_lit(&c, "zfs create -o quota=1000m -o compression=gzip -o");
    cn_cmd_argf(&c, ok, "mountpoint=/zones/%s/cores", ok ? vm_uuid : "");
    cn_cmd_argf(&c, ok, "%s/cores/%s", ok ? pool : "", ok ? vm_uuid : "");
    return cn_cmd_done(&c);
}

/* "cat /etc/zones/index" */
char *mig_cmd_cat_zones_index(void)
{
    return mig_strdup("cat /etc/zones/index");
}
