/*
 * cn.c: builds the command lines of cn-commands.md and parses their output
 * (cn.h).  Each builder checks every argument against a strict pattern and
 * single-quotes it; one bad argument and the builder returns NULL, so no
 * unchecked text ever reaches a CN's shell.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cn.h"
#include "err.h"
#include "util.h"

#define CMD_MAX 2048
#define PROP_MAX 256
#define VALUE_MAX 256
#define PATH_MAX_LEN 255

/* A command line under construction; once bad, it stays bad. */
struct cmd {
    char buf[CMD_MAX];
    bool bad;
};

/* Appends literal text (our own words, never outside input), space-separated. */
static void cmd_lit(struct cmd *c, const char *words)
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
static void cmd_arg(struct cmd *c, const char *arg, bool valid)
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
static void cmd_argf(struct cmd *c, bool valid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cmd_argf(struct cmd *c, bool valid, const char *fmt, ...)
{
    char tmp[CMD_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    cmd_arg(c, tmp, valid && n >= 0 && (size_t)n < sizeof(tmp));
}

/* The finished command line (malloc'd), or NULL if any part was invalid. */
static char *cmd_done(struct cmd *c)
{
    return c->bad ? NULL : mig_strdup(c->buf);
}

/* True when s is 1..max chars from the set allowed by ok(), without a leading '-' or "..". */
static bool token_valid(const char *s, size_t max, bool (*ok)(char))
{
    if (s == NULL || *s == '\0' || *s == '-' || strlen(s) > max || strstr(s, "..") != NULL)
        return false;
    for (const char *p = s; *p != '\0'; p++)
        if (!ok(*p))
            return false;
    return true;
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool prop_char(char c)
{
    return is_alnum(c) || c == ':' || c == '@' || c == '.' || c == '_' || c == '-';
}

static bool value_char(char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == '-';
}

static bool path_char(char c)
{
    return value_char(c) || c == '/';
}

/* A ZFS property name, as `zfs get` takes it (also "written@snap"). */
static bool prop_valid(const char *s)
{
    return token_valid(s, PROP_MAX, prop_char);
}

/* A property value for `zfs set`: [A-Za-z0-9._-]. */
static bool value_valid(const char *s)
{
    return token_valid(s, VALUE_MAX, value_char);
}

/* An absolute path of [A-Za-z0-9/._-], e.g. "/dev/stdin". */
static bool path_valid(const char *s)
{
    return s != NULL && s[0] == '/' && token_valid(s, PATH_MAX_LEN, path_char);
}

/* A pool name: a dataset name of one component. */
static bool pool_valid(const char *s)
{
    return mig_dataset_valid(s) && strchr(s, '/') == NULL;
}

/* A full snapshot name "pool/ds@snap", or the short "@snap" zfs send -I accepts. */
static bool from_snapshot_valid(const char *s)
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

/* --- facts ----------------------------------------------------------------- */

/* "sysinfo" */
char *mig_cmd_sysinfo(void)
{
    return mig_strdup("sysinfo");
}

/* "zpool list -H -p -o name,size,free 'POOL'"; NULL for a bad pool name. */
char *mig_cmd_zpool_list(const char *pool)
{
    struct cmd c = {0};
    cmd_lit(&c, "zpool list -H -p -o name,size,free");
    cmd_arg(&c, pool, pool_valid(pool));
    return cmd_done(&c);
}

/* "imgadm get 'UUID'"; NULL for a bad uuid. */
char *mig_cmd_imgadm_get(const char *image_uuid)
{
    struct cmd c = {0};
    cmd_lit(&c, "imgadm get");
    cmd_arg(&c, image_uuid, mig_uuid_valid(image_uuid));
    return cmd_done(&c);
}

/* "imgadm import -q 'UUID'"; NULL for a bad uuid. */
char *mig_cmd_imgadm_import(const char *image_uuid)
{
    struct cmd c = {0};
    cmd_lit(&c, "imgadm import -q");
    cmd_arg(&c, image_uuid, mig_uuid_valid(image_uuid));
    return cmd_done(&c);
}

/* --- instances ----------------------------------------------------------- */

/* "vmadm get 'UUID'"; NULL for a bad uuid. */
char *mig_cmd_vmadm_get(const char *vm_uuid)
{
    struct cmd c = {0};
    cmd_lit(&c, "vmadm get");
    cmd_arg(&c, vm_uuid, mig_uuid_valid(vm_uuid));
    return cmd_done(&c);
}

/* "vmadm stop 'UUID'" or "vmadm stop 'UUID' -F"; NULL for a bad uuid. */
char *mig_cmd_vmadm_stop(const char *vm_uuid, bool force)
{
    struct cmd c = {0};
    cmd_lit(&c, "vmadm stop");
    cmd_arg(&c, vm_uuid, mig_uuid_valid(vm_uuid));
    if (force)
        cmd_lit(&c, "-F");
    return cmd_done(&c);
}

/* "vmadm start 'UUID'"; NULL for a bad uuid. */
char *mig_cmd_vmadm_start(const char *vm_uuid)
{
    struct cmd c = {0};
    cmd_lit(&c, "vmadm start");
    cmd_arg(&c, vm_uuid, mig_uuid_valid(vm_uuid));
    return cmd_done(&c);
}

/* "zoneadm list -pc" */
char *mig_cmd_zoneadm_list(void)
{
    return mig_strdup("zoneadm list -pc");
}

/* "zoneadm -z 'UUID' SUBCOMMAND" for our own fixed subcommands. */
static char *zone_cmd(const char *prog, const char *vm_uuid, const char *tail, const char *qtail)
{
    struct cmd c = {0};
    cmd_lit(&c, prog);
    cmd_lit(&c, "-z");
    cmd_arg(&c, vm_uuid, mig_uuid_valid(vm_uuid));
    if (tail != NULL)
        cmd_lit(&c, tail);
    if (qtail != NULL)
        cmd_arg(&c, qtail, true);
    return cmd_done(&c);
}

/* "zoneadm -z 'UUID' attach"; NULL for a bad uuid. */
char *mig_cmd_zoneadm_attach(const char *vm_uuid)
{
    return zone_cmd("zoneadm", vm_uuid, "attach", NULL);
}

/* "zoneadm -z 'UUID' detach"; NULL for a bad uuid. */
char *mig_cmd_zoneadm_detach(const char *vm_uuid)
{
    return zone_cmd("zoneadm", vm_uuid, "detach", NULL);
}

/* "zonecfg -z 'UUID' export"; NULL for a bad uuid. */
char *mig_cmd_zonecfg_export(const char *vm_uuid)
{
    return zone_cmd("zonecfg", vm_uuid, "export", NULL);
}

/* "zonecfg -z 'UUID' -f 'FILE'"; FILE an absolute path of [A-Za-z0-9/._-]. */
char *mig_cmd_zonecfg_import(const char *vm_uuid, const char *file)
{
    struct cmd c = {0};
    cmd_lit(&c, "zonecfg -z");
    cmd_arg(&c, vm_uuid, mig_uuid_valid(vm_uuid));
    cmd_lit(&c, "-f");
    cmd_arg(&c, file, path_valid(file));
    return cmd_done(&c);
}

/* "zonecfg -z 'UUID' -f -"; NULL for a bad uuid. */
char *mig_cmd_zonecfg_import_stdin(const char *vm_uuid)
{
    return zone_cmd("zonecfg", vm_uuid, "-f -", NULL);
}

/* "zonecfg -z 'UUID' delete -F"; NULL for a bad uuid. */
char *mig_cmd_zonecfg_delete(const char *vm_uuid)
{
    return zone_cmd("zonecfg", vm_uuid, "delete -F", NULL);
}

/* "zonecfg -z 'UUID' 'set autoboot=true|false'"; NULL for a bad uuid. */
char *mig_cmd_zonecfg_autoboot(const char *vm_uuid, bool autoboot)
{
    return zone_cmd("zonecfg", vm_uuid, NULL,
                    autoboot ? "set autoboot=true" : "set autoboot=false");
}

/* Hides the zone from the CN's agent (the source copy after a switch). */
char *mig_cmd_zonecfg_do_not_inventory(const char *vm_uuid)
{
    return zone_cmd("zonecfg", vm_uuid, NULL,
                    "add attr; set name=do-not-inventory; set type=string; set value=true; end");
}

/* Undoes mig_cmd_zonecfg_do_not_inventory (rollback). */
char *mig_cmd_zonecfg_allow_inventory(const char *vm_uuid)
{
    return zone_cmd("zonecfg", vm_uuid, NULL, "remove attr name=do-not-inventory");
}

/* Autoboot off and hidden from the CN's agent, in one zonecfg command. */
char *mig_cmd_zonecfg_disable(const char *vm_uuid)
{
    return zone_cmd("zonecfg", vm_uuid, NULL,
                    "set autoboot=false; add attr; set name=do-not-inventory; set type=string; "
                    "set value=true; end");
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
    struct cmd c = {0};
    cmd_lit(&c, "zfs list -H -p -o name,used,referenced,origin,type -r -t filesystem,volume");
    cmd_arg(&c, dataset, mig_dataset_valid(dataset));
    return cmd_done(&c);
}

/* "zfs list -H -o name -t snapshot -d 1 'DS'" */
char *mig_cmd_zfs_list_snapshots(const char *dataset)
{
    struct cmd c = {0};
    cmd_lit(&c, "zfs list -H -o name -t snapshot -d 1");
    cmd_arg(&c, dataset, mig_dataset_valid(dataset));
    return cmd_done(&c);
}

/* "zfs get -H -p -o value 'PROP' 'DS'" */
char *mig_cmd_zfs_get(const char *property, const char *dataset)
{
    struct cmd c = {0};
    cmd_lit(&c, "zfs get -H -p -o value");
    cmd_arg(&c, property, prop_valid(property));
    cmd_arg(&c, dataset, mig_dataset_valid(dataset));
    return cmd_done(&c);
}

/* "zfs get -H -p -o value 'PROP' 'DS@SNAP'" */
char *mig_cmd_zfs_get_snap(const char *property, const char *dataset, const char *snap)
{
    struct cmd c = {0};
    cmd_lit(&c, "zfs get -H -p -o value");
    cmd_arg(&c, property, prop_valid(property));
    bool ok = mig_dataset_valid(dataset) && mig_snapname_valid(snap);
    cmd_argf(&c, ok, "%s@%s", ok ? dataset : "", ok ? snap : "");
    return cmd_done(&c);
}

/* "zfs set 'PROP=VALUE' 'DS'" */
char *mig_cmd_zfs_set(const char *property, const char *value, const char *dataset)
{
    struct cmd c = {0};
    cmd_lit(&c, "zfs set");
    bool ok = prop_valid(property) && value_valid(value);
    cmd_argf(&c, ok, "%s=%s", ok ? property : "", ok ? value : "");
    cmd_arg(&c, dataset, mig_dataset_valid(dataset));
    return cmd_done(&c);
}

/* "zfs snapshot -r 'DS@SNAP'" */
char *mig_cmd_zfs_snapshot(const char *dataset, const char *snap)
{
    struct cmd c = {0};
    cmd_lit(&c, "zfs snapshot -r");
    bool ok = mig_dataset_valid(dataset) && mig_snapname_valid(snap);
    cmd_argf(&c, ok, "%s@%s", ok ? dataset : "", ok ? snap : "");
    return cmd_done(&c);
}

/* "zfs send -R [-I 'FROM'] 'DS@SNAP'"; from NULL for a full stream. */
char *mig_cmd_zfs_send(const char *dataset, const char *snap, const char *from)
{
    struct cmd c = {0};
    cmd_lit(&c, "zfs send -R");
    if (from != NULL) {
        cmd_lit(&c, "-I");
        cmd_arg(&c, from, from_snapshot_valid(from));
    }
    bool ok = mig_dataset_valid(dataset) && mig_snapname_valid(snap);
    cmd_argf(&c, ok, "%s@%s", ok ? dataset : "", ok ? snap : "");
    return cmd_done(&c);
}

/* "zfs receive [-F] -d 'POOL'" (see cn.h for why not -u) */
char *mig_cmd_zfs_receive(const char *pool, bool force)
{
    struct cmd c = {0};
    cmd_lit(&c, force ? "zfs receive -F -d" : "zfs receive -d");
    cmd_arg(&c, pool, mig_dataset_valid(pool));
    return cmd_done(&c);
}

/* "zfs receive -s -F -d 'POOL'" */
char *mig_cmd_zfs_receive_resumable(const char *pool)
{
    struct cmd c = {0};
    cmd_lit(&c, "zfs receive -s -F -d");
    cmd_arg(&c, pool, mig_dataset_valid(pool));
    return cmd_done(&c);
}

/* A resume token: 1..1023 of [0-9a-zA-Z-] (zfs prints hex fields joined by '-'). */
static bool token_char(char ch)
{
    return is_alnum(ch) || ch == '-';
}

/* "zfs send -t 'TOKEN'" */
char *mig_cmd_zfs_send_resume(const char *token)
{
    struct cmd c = {0};
    cmd_lit(&c, "zfs send -t");
    bool ok = token != NULL && token[0] != '\0' && token[0] != '-' && strlen(token) < 1024;
    for (const char *p = token; ok && *p != '\0'; p++)
        ok = token_char(*p);
    cmd_arg(&c, token, ok);
    return cmd_done(&c);
}

/* "zfs destroy [-r] 'DS'".  A bare pool is refused: migd never destroys one. */
char *mig_cmd_zfs_destroy(const char *dataset, bool recursive)
{
    struct cmd c = {0};
    cmd_lit(&c, recursive ? "zfs destroy -r" : "zfs destroy");
    cmd_arg(&c, dataset, mig_dataset_valid(dataset) && !pool_valid(dataset));
    return cmd_done(&c);
}

/* "zfs destroy [-r] 'DS@SNAP'" */
char *mig_cmd_zfs_destroy_snapshot(const char *dataset, const char *snap, bool recursive)
{
    struct cmd c = {0};
    cmd_lit(&c, recursive ? "zfs destroy -r" : "zfs destroy");
    bool ok = mig_dataset_valid(dataset) && mig_snapname_valid(snap);
    cmd_argf(&c, ok, "%s@%s", ok ? dataset : "", ok ? snap : "");
    return cmd_done(&c);
}

/*
 * "zfs create -o quota=1000m -o compression=gzip -o 'mountpoint=/zones/UUID/cores'
 *  'POOL/cores/UUID'"
 */
char *mig_cmd_zfs_create_cores(const char *pool, const char *vm_uuid)
{
    struct cmd c = {0};
    bool ok = pool_valid(pool) && mig_uuid_valid(vm_uuid);
    cmd_lit(&c, "zfs create -o quota=1000m -o compression=gzip -o");
    cmd_argf(&c, ok, "mountpoint=/zones/%s/cores", ok ? vm_uuid : "");
    cmd_argf(&c, ok, "%s/cores/%s", ok ? pool : "", ok ? vm_uuid : "");
    return cmd_done(&c);
}

/* "cat /etc/zones/index" */
char *mig_cmd_cat_zones_index(void)
{
    return mig_strdup("cat /etc/zones/index");
}

/* --- direct transfer (cn-commands.md, "Direct transfer") ------------------- */

/* An IPv4 or IPv6 address as CNAPI gives an admin IP: hex digits, '.', ':'. */
static bool ip_char(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F') ||
           ch == '.' || ch == ':';
}

static bool ip_valid(const char *s)
{
    return token_valid(s, 45, ip_char) && (strchr(s, '.') != NULL || strchr(s, ':') != NULL);
}

/* The base64 of an ssh-ed25519 public key blob: 68 characters. */
static bool b64_char(char ch)
{
    return is_alnum(ch) || ch == '+' || ch == '/' || ch == '=';
}

static bool ed25519_key_valid(const char *s)
{
    return s != NULL && strlen(s) == 68 && strncmp(s, "AAAAC3NzaC1lZDI1NTE5", 20) == 0 &&
           token_valid(s, 68, b64_char);
}

/* A user name for ssh: [a-z_][a-z0-9_-]*, as useradd allows. */
static bool user_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}

int mig_direct_key_line(const char *job_uuid, const char *src_ip, const char *pool,
                        const char *pubkey_b64, char *out, size_t outsz)
{
    if (!mig_uuid_valid(job_uuid) || !ip_valid(src_ip) || !pool_valid(pool) ||
        !ed25519_key_valid(pubkey_b64))
        return -EINVAL;
    int n = snprintf(out, outsz,
                     "from=\"%s\",command=\"zfs receive -F -d %s\",no-pty,no-port-forwarding,"
                     "no-agent-forwarding,no-X11-forwarding ssh-ed25519 %s migd-job-%s",
                     src_ip, pool, pubkey_b64, job_uuid);
    return n > 0 && (size_t)n < outsz ? 0 : -ENAMETOOLONG;
}

/* "mkdir -p -m 700 ~/.ssh && printf '%s\n' 'LINE' >> ~/.ssh/authorized_keys" */
char *mig_cmd_authorize_key(const char *job_uuid, const char *src_ip, const char *pool,
                            const char *pubkey_b64)
{
    char line[512];
    struct cmd c = {0};
    bool ok = mig_direct_key_line(job_uuid, src_ip, pool, pubkey_b64, line, sizeof(line)) == 0;
    cmd_lit(&c, "mkdir -p -m 700 ~/.ssh && printf '%s\\n'");
    cmd_arg(&c, line, ok);
    cmd_lit(&c, ">> ~/.ssh/authorized_keys");
    return cmd_done(&c);
}

/*
 * Removes exactly the job's line: sed to a temporary file, then mv (illumos'
 * sed has no -i); umask 077 keeps the file private; no file, nothing to do.
 */
char *mig_cmd_unauthorize_key(const char *job_uuid)
{
    if (!mig_uuid_valid(job_uuid))
        return NULL;
    char buf[CMD_MAX];
    snprintf(buf, sizeof(buf),
             "umask 077; f=~/.ssh/authorized_keys; [ ! -f \"$f\" ] || "
             "{ sed '/ migd-job-%s$/d' \"$f\" > \"$f.migd-%s\" && mv \"$f.migd-%s\" \"$f\"; }",
             job_uuid, job_uuid, job_uuid);
    return mig_strdup(buf);
}

/* "mkdir -m 700 /var/tmp/migd-JOB" */
char *mig_cmd_job_dir_create(const char *job_uuid)
{
    struct cmd c = {0};
    cmd_lit(&c, "mkdir -m 700");
    cmd_argf(&c, mig_uuid_valid(job_uuid), "/var/tmp/migd-%s", job_uuid);
    return cmd_done(&c);
}

/* "umask 077 && cat > '/var/tmp/migd-JOB/NAME'": the file comes on stdin. */
char *mig_cmd_job_file_write(const char *job_uuid, const char *name)
{
    struct cmd c = {0};
    bool ok = mig_uuid_valid(job_uuid) && name != NULL &&
              (strcmp(name, "id") == 0 || strcmp(name, "known_hosts") == 0);
    cmd_lit(&c, "umask 077 && cat >");
    cmd_argf(&c, ok, "/var/tmp/migd-%s/%s", ok ? job_uuid : "", ok ? name : "");
    return cmd_done(&c);
}

/* "rm -rf '/var/tmp/migd-JOB'" */
char *mig_cmd_job_dir_remove(const char *job_uuid)
{
    struct cmd c = {0};
    cmd_lit(&c, "rm -rf");
    cmd_argf(&c, mig_uuid_valid(job_uuid), "/var/tmp/migd-%s", job_uuid);
    return cmd_done(&c);
}

/*
 * "zfs send -R -v [-I 'FROM'] 'DS@SNAP' | ssh -T -b 'SRC_IP' -i '/var/tmp/migd-JOB/id'
 *  -o 'UserKnownHostsFile=/var/tmp/migd-JOB/known_hosts' -o StrictHostKeyChecking=yes
 *  -o BatchMode=yes [-p PORT] [-c CIPHER] 'USER@DST_IP'"
 */
char *mig_cmd_zfs_send_direct(const struct mig_direct_send *d)
{
    struct cmd c = {0};
    bool job_ok = mig_uuid_valid(d->job_uuid);
    cmd_lit(&c, "zfs send -R -v");
    if (d->from != NULL) {
        cmd_lit(&c, "-I");
        cmd_arg(&c, d->from, from_snapshot_valid(d->from));
    }
    bool ok = mig_dataset_valid(d->dataset) && mig_snapname_valid(d->snap);
    cmd_argf(&c, ok, "%s@%s", ok ? d->dataset : "", ok ? d->snap : "");
    cmd_lit(&c, "| ssh -T -b");
    cmd_arg(&c, d->src_ip, ip_valid(d->src_ip));
    cmd_lit(&c, "-i");
    cmd_argf(&c, job_ok, "/var/tmp/migd-%s/id", job_ok ? d->job_uuid : "");
    cmd_lit(&c, "-o");
    cmd_argf(&c, job_ok, "UserKnownHostsFile=/var/tmp/migd-%s/known_hosts",
             job_ok ? d->job_uuid : "");
    cmd_lit(&c, "-o StrictHostKeyChecking=yes -o BatchMode=yes");
    if (d->port != 22) {
        char port[16];
        snprintf(port, sizeof(port), "%d", d->port);
        cmd_lit(&c, "-p");
        cmd_arg(&c, port, d->port > 0 && d->port < 65536);
    }
    if (d->cipher != NULL) {
        cmd_lit(&c, "-c");
        cmd_arg(&c, d->cipher, token_valid(d->cipher, 64, prop_char));
    }
    bool dst_ok = ip_valid(d->dst_ip) && token_valid(d->user, 32, user_char);
    cmd_argf(&c, dst_ok, "%s@%s", dst_ok ? d->user : "", dst_ok ? d->dst_ip : "");
    return cmd_done(&c);
}

/* --- parsers --------------------------------------------------------------- */

int mig_parse_zfs_nicenum(const char *s, uint64_t *out)
{
    if (s == NULL || !(*s >= '0' && *s <= '9'))
        return MIG_EPARSE;
    char *end = NULL;
    double v = strtod(s, &end);
    static const char units[] = "BKMGTPE";
    int shift = 0;
    if (*end != '\0') {
        const char *u = strchr(units, *end);
        if (u == NULL || end[1] != '\0')
            return MIG_EPARSE;
        shift = (int)(u - units) * 10;
    }
    if (v < 0 || v > 18e18 / (double)(1ULL << shift))
        return MIG_EPARSE;
    *out = (uint64_t)(v * (double)(1ULL << shift));
    return 0;
}

static bool clock_like(const char *w)
{
    return strlen(w) == 8 && w[2] == ':' && w[5] == ':' && w[0] >= '0' && w[0] <= '9' &&
           w[7] >= '0' && w[7] <= '9';
}

static void progress_line(struct mig_send_progress *p)
{
    char time_w[16], size_w[32], snap_w[256];
    if (sscanf(p->line, "%15s %31s %255s", time_w, size_w, snap_w) != 3 || !clock_like(time_w) ||
        strchr(snap_w, '@') == NULL)
        return;
    uint64_t bytes;
    if (mig_parse_zfs_nicenum(size_w, &bytes) != 0)
        return;
    if (strcmp(snap_w, p->snap) != 0) {
        /* The next snapshot of the stream: the last one's count is final. */
        p->done += p->current;
        p->current = 0;
        snprintf(p->snap, sizeof(p->snap), "%s", snap_w);
    }
    if (bytes > p->current)
        p->current = bytes;
}

void mig_send_progress_feed(struct mig_send_progress *p, const char *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = data[i];
        if (ch == '\n' || ch == '\r') {
            p->line[p->len] = '\0';
            progress_line(p);
            p->len = 0;
        } else if (p->len + 1 < sizeof(p->line)) {
            p->line[p->len++] = ch;
        }
    }
}

uint64_t mig_send_progress_bytes(const struct mig_send_progress *p)
{
    return p->done + p->current;
}

/* Parses a decimal uint64 that fills all of s; false otherwise. */
static bool parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    uint64_t v = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Copies s into dst[size]; false when it does not fit. */
static bool copy_field(char *dst, size_t size, const char *s)
{
    size_t n = strlen(s);
    if (n >= size)
        return false;
    memcpy(dst, s, n + 1);
    return true;
}

/*
 * Splits line (modified in place) at sep into at most max fields; returns the
 * number of fields.  With unescape, a backslash takes the next character
 * literally (zoneadm -p escapes ':' and '\' that way).
 */
static int split(char *line, char sep, char **fields, int max, bool unescape)
{
    int n = 0;
    char *w = line;
    fields[n++] = w;
    for (char *r = line; *r != '\0'; r++) {
        if (unescape && *r == '\\' && r[1] != '\0') {
            *w++ = *++r;
        } else if (*r == sep) {
            *w++ = '\0';
            if (n == max)
                return max + 1; /* too many fields */
            fields[n++] = w;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return n;
}

/*
 * Calls fn on each non-empty line of text (a copy: fn may modify the line);
 * a trailing '\r' is dropped.  Stops at and returns fn's first non-zero.
 */
static int each_line(const char *text, int (*fn)(char *line, void *arg), void *arg)
{
    char *copy = mig_strdup(text);
    int rc = 0;
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line != NULL && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\r')
            line[--n] = '\0';
        if (n > 0)
            rc = fn(line, arg);
    }
    free(copy);
    return rc;
}

struct zfs_list_acc {
    struct mig_zfs_dataset *rows;
    int n, cap;
};

static int on_zfs_list_line(char *line, void *arg)
{
    struct zfs_list_acc *a = arg;
    char *f[5];
    if (split(line, '\t', f, 5, false) != 5)
        return MIG_EPARSE;
    struct mig_zfs_dataset d;
    memset(&d, 0, sizeof(d));
    if (!mig_dataset_valid(f[0]) || !copy_field(d.name, sizeof(d.name), f[0]) ||
        !parse_u64(f[1], &d.used) || !parse_u64(f[2], &d.referenced) || f[3][0] == '\0' ||
        !copy_field(d.origin, sizeof(d.origin), strcmp(f[3], "-") == 0 ? "" : f[3]) ||
        f[4][0] == '\0' || !copy_field(d.type, sizeof(d.type), f[4]))
        return MIG_EPARSE;
    if (a->n == a->cap) {
        int cap = a->cap > 0 ? a->cap * 2 : 8;
        struct mig_zfs_dataset *rows = realloc(a->rows, (size_t)cap * sizeof(*rows));
        if (rows == NULL)
            abort();
        a->rows = rows;
        a->cap = cap;
    }
    a->rows[a->n++] = d;
    return 0;
}

/* Rows of zfs list -H -p output: the count and *out (caller frees), or MIG_EPARSE. */
int mig_parse_zfs_list(const char *text, struct mig_zfs_dataset **out)
{
    *out = NULL;
    if (text == NULL)
        return MIG_EPARSE;
    struct zfs_list_acc a = {0};
    int rc = each_line(text, on_zfs_list_line, &a);
    if (rc < 0) {
        free(a.rows);
        return rc;
    }
    *out = a.rows != NULL ? a.rows : mig_calloc(1, sizeof(**out));
    return a.n;
}

static int on_plain_line(char *line, void *arg)
{
    for (const char *p = line; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t')
            return MIG_EPARSE;
    if (json_array_append_new(arg, json_string(line)) < 0)
        return MIG_EPARSE; /* not UTF-8 */
    return 0;
}

/* Non-empty lines as a JSON array of strings (new); NULL for NULL or binary text. */
json_t *mig_parse_lines(const char *text)
{
    if (text == NULL)
        return NULL;
    json_t *arr = json_array();
    if (arr == NULL)
        abort();
    if (each_line(text, on_plain_line, arr) < 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

struct zone_find {
    const char *uuid;
    struct mig_zone *out;
    bool found;
};

static int on_zone_line(char *line, void *arg)
{
    struct zone_find *z = arg;
    /* zoneid:zonename:state:zonepath:uuid:brand:ip-type[:debugid] */
    char *f[8];
    int n = split(line, ':', f, 8, true);
    if (n < 7 || n > 8)
        return MIG_EPARSE;
    if (z->found || (strcmp(f[1], z->uuid) != 0 && strcmp(f[4], z->uuid) != 0))
        return 0;
    struct mig_zone zone;
    memset(&zone, 0, sizeof(zone));
    if (!copy_field(zone.zonename, sizeof(zone.zonename), f[1]) ||
        !copy_field(zone.state, sizeof(zone.state), f[2]) ||
        !copy_field(zone.zonepath, sizeof(zone.zonepath), f[3]) ||
        !copy_field(zone.uuid, sizeof(zone.uuid), f[4]) ||
        !copy_field(zone.brand, sizeof(zone.brand), f[5]) || zone.state[0] == '\0')
        return MIG_EPARSE;
    *z->out = zone;
    z->found = true;
    return 0;
}

/*
 * Finds the zone whose zonename or uuid is uuid in `zoneadm list -pc` output.
 * 0 and *out filled; -ENOENT when absent; MIG_EPARSE when any line is
 * malformed; -EINVAL when uuid is not a UUID.
 */
int mig_parse_zoneadm_find(const char *text, const char *uuid, struct mig_zone *out)
{
    if (!mig_uuid_valid(uuid))
        return -EINVAL;
    if (text == NULL)
        return MIG_EPARSE;
    struct zone_find z = {.uuid = uuid, .out = out, .found = false};
    int rc = each_line(text, on_zone_line, &z);
    if (rc < 0)
        return rc;
    return z.found ? 0 : -ENOENT;
}

struct zonecfg_flags {
    int autoboot;
    bool hidden;
    bool in_attr;      /* inside "add attr" .. "end" */
    bool attr_dni;     /* that attr is named do-not-inventory */
    bool attr_true;    /* and its value is true */
};

/* Strips one level of double quotes from a zonecfg value, in place. */
static char *unquote(char *v)
{
    size_t n = strlen(v);
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v[n - 1] = '\0';
        return v + 1;
    }
    return v;
}

static int on_zonecfg_line(char *line, void *arg)
{
    struct zonecfg_flags *z = arg;
    while (*line == ' ' || *line == '\t')
        line++;
    if (strcmp(line, "add attr") == 0) {
        z->in_attr = true;
        z->attr_dni = z->attr_true = false;
    } else if (strcmp(line, "end") == 0) {
        if (z->in_attr && z->attr_dni && z->attr_true)
            z->hidden = true;
        z->in_attr = false;
    } else if (strncmp(line, "set ", 4) == 0) {
        char *eq = strchr(line + 4, '=');
        if (eq == NULL)
            return 0;
        *eq = '\0';
        const char *key = line + 4;
        char *value = unquote(eq + 1);
        if (z->in_attr && strcmp(key, "name") == 0)
            z->attr_dni = strcmp(value, "do-not-inventory") == 0;
        else if (z->in_attr && strcmp(key, "value") == 0)
            z->attr_true = strcmp(value, "true") == 0;
        else if (!z->in_attr && strcmp(key, "autoboot") == 0)
            z->autoboot = strcmp(value, "true") == 0 ? 1 : 0;
    }
    return 0;
}

int mig_parse_zonecfg_flags(const char *text, int *autoboot, bool *hidden)
{
    if (text == NULL)
        return MIG_EPARSE;
    struct zonecfg_flags z = {.autoboot = -1};
    int rc = each_line(text, on_zonecfg_line, &z);
    if (rc < 0)
        return rc;
    *autoboot = z.autoboot;
    *hidden = z.hidden;
    return 0;
}

char *mig_zonecfg_hidden(const char *text)
{
    int autoboot;
    bool hidden = false;
    if (mig_parse_zonecfg_flags(text, &autoboot, &hidden) == 0 && hidden)
        return mig_strdup(text);
    size_t n = text != NULL ? strlen(text) : 0;
    bool nl = n > 0 && text[n - 1] != '\n';
    return mig_asprintf("%s%sadd attr\nset name=do-not-inventory\nset type=string\n"
                        "set value=true\nend\n",
                        text != NULL ? text : "", nl ? "\n" : "");
}

bool mig_zonecfg_same(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    for (;;) {
        /* Skip the autoboot lines: vmadm stop and start change them, nothing else does. */
        while (strncmp(a, "set autoboot=", 13) == 0)
            a += strcspn(a, "\n") + (a[strcspn(a, "\n")] != '\0');
        while (strncmp(b, "set autoboot=", 13) == 0)
            b += strcspn(b, "\n") + (b[strcspn(b, "\n")] != '\0');
        size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
        if (la != lb || strncmp(a, b, la) != 0)
            return false;
        a += la;
        b += lb;
        if (*a == '\0' || *b == '\0')
            return *a == *b;
        a++;
        b++;
    }
}

int mig_parse_resume_token(const char *text, char *out, size_t outsz)
{
    if (text == NULL)
        return MIG_EPARSE;
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        n--;
    if (n == 0 || (n == 1 && text[0] == '-'))
        return 0;
    if (n >= outsz || text[0] == '-')
        return MIG_EPARSE;
    for (size_t i = 0; i < n; i++)
        if (!token_char(text[i]))
            return MIG_EPARSE;
    memcpy(out, text, n);
    out[n] = '\0';
    return 1;
}

uint64_t mig_zfs_send_bytes(const struct mig_zfs_dataset *row)
{
    return row->used < row->referenced ? row->used : row->referenced;
}

int mig_parse_zfs_number(const char *text, uint64_t *out)
{
    return mig_parse_guid(text, out);
}

int mig_parse_guid(const char *text, uint64_t *guid)
{
    char buf[32];
    size_t n = text != NULL ? strlen(text) : 0;
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        n--;
    if (n == 0 || n >= sizeof(buf))
        return MIG_EPARSE;
    memcpy(buf, text, n);
    buf[n] = '\0';
    return parse_u64(buf, guid) ? 0 : MIG_EPARSE;
}

struct zpool_acc {
    uint64_t size, free_bytes;
    int rows;
};

static int on_zpool_line(char *line, void *arg)
{
    struct zpool_acc *a = arg;
    char *f[3];
    if (++a->rows > 1 || split(line, '\t', f, 3, false) != 3 || !pool_valid(f[0]) ||
        !parse_u64(f[1], &a->size) || !parse_u64(f[2], &a->free_bytes) || a->free_bytes > a->size)
        return MIG_EPARSE;
    return 0;
}

/* One pool's size and free bytes from zpool list -H -p; 0 or MIG_EPARSE. */
int mig_parse_zpool_list(const char *text, uint64_t *size, uint64_t *free_bytes)
{
    if (text == NULL)
        return MIG_EPARSE;
    struct zpool_acc a = {0};
    int rc = each_line(text, on_zpool_line, &a);
    if (rc < 0 || a.rows != 1)
        return MIG_EPARSE;
    *size = a.size;
    *free_bytes = a.free_bytes;
    return 0;
}
