/*
 * cn.h: the catalogue of commands migd may run on a compute node
 * (cn-commands.md), and parsers for their output.  This file is the only
 * place remote command lines are built: every argument is checked against a
 * strict pattern (util.h) and quoted, so no text from an API or a user
 * reaches a remote shell unvalidated.  Builders return a malloc'd command
 * line, or NULL when an argument is invalid.  Pure: no I/O.  The builders
 * are in cn.c (direct transfer's in cn_direct.c), the parsers in cn_parse.c.
 */
#ifndef MIG_CN_H
#define MIG_CN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* sysinfo; zpool list -H -p -o name,size,free zones */
char *mig_cmd_sysinfo(void);
char *mig_cmd_zpool_list(const char *pool);

/* imgadm get UUID; imgadm import -q UUID */
char *mig_cmd_imgadm_get(const char *image_uuid);
char *mig_cmd_imgadm_import(const char *image_uuid);

/* vmadm get UUID; vmadm stop UUID [-F]; vmadm start UUID */
char *mig_cmd_vmadm_get(const char *vm_uuid);
char *mig_cmd_vmadm_stop(const char *vm_uuid, bool force);
char *mig_cmd_vmadm_start(const char *vm_uuid);

/* zoneadm list -pc; zoneadm -z UUID attach; zoneadm -z UUID detach */
char *mig_cmd_zoneadm_list(void);
/* migctl doctor: every snapshot of the pool and its user holds, NAME<TAB>USERREFS a line. */
char *mig_cmd_doctor_snapshots(const char *pool);
/* migctl doctor: the "migd-job-JOB" ends of authorized_keys lines, and the /var/tmp/migd-* dirs. */
char *mig_cmd_doctor_keys(void);
/* migctl doctor: each zone's autoboot and do-not-inventory, from /etc/zones/UUID.xml. */
char *mig_cmd_doctor_zone_flags(void);
/* migctl doctor: NAME<TAB>TOKEN of every dataset of the pool ("-": no partial receive). */
char *mig_cmd_doctor_resume_tokens(const char *pool);
/* "zoneadm list -p": the running zones, with the zone id each booted with. */
char *mig_cmd_zoneadm_running(void);
/* "svcs -z 'UUID' -x": the zone's SMF services in maintenance, explained; NULL for a bad uuid. */
char *mig_cmd_svcs_explain(const char *vm_uuid);
char *mig_cmd_zoneadm_attach(const char *vm_uuid);
char *mig_cmd_zoneadm_detach(const char *vm_uuid);

/* zonecfg -z UUID export; zonecfg -z UUID -f FILE; zonecfg -z UUID delete -F */
char *mig_cmd_zonecfg_export(const char *vm_uuid);
char *mig_cmd_zonecfg_import(const char *vm_uuid, const char *file);
/*
 * zonecfg -z UUID -f -: the commands on stdin.  illumos refuses any -f path
 * that is not a regular file (zonecfg.c cmd_file()), and over SSH stdin is a
 * pipe, so "-f /dev/stdin" fails on a real CN where "-" works.
 */
char *mig_cmd_zonecfg_import_stdin(const char *vm_uuid);
char *mig_cmd_zonecfg_delete(const char *vm_uuid);
/* zonecfg -z UUID 'add attr; set name=do-not-inventory; set type=string; set value=true; end' */
char *mig_cmd_zonecfg_do_not_inventory(const char *vm_uuid);
/*
 * Disables a zone in one command: zonecfg -z UUID 'set autoboot=false; add
 * attr; set name=do-not-inventory; set type=string; set value=true; end'.
 */
char *mig_cmd_zonecfg_disable(const char *vm_uuid);
/* Undoes it in one command: zonecfg -z UUID 'set autoboot=X; remove attr name=do-not-inventory'. */
char *mig_cmd_zonecfg_enable(const char *vm_uuid, bool autoboot);
/*
 * Two commands in one exec, "FIRST && SECOND": the second runs only when the
 * first exited 0, and the exit status is the first failure's.  Takes both
 * (either may be NULL: a builder refused an argument, and the result is NULL).
 */
char *mig_cmd_and(char *first, char *second);

/* svcadm restart vm-agent */
char *mig_cmd_svcadm_restart_vm_agent(void);

/* zfs list -H -p -o name,used,referenced,origin,type -r -t filesystem,volume DATASET */
char *mig_cmd_zfs_list_tree(const char *dataset);
/* zfs list -H -o name -t snapshot -d 1 DATASET */
char *mig_cmd_zfs_list_snapshots(const char *dataset);
/* zfs get -H -p -o value PROPERTY DATASET (property: [a-z@:_A-Za-z0-9.-]) */
char *mig_cmd_zfs_get(const char *property, const char *dataset);
/* zfs get -H -p -o value PROPERTY DATASET@SNAP (e.g. the guid of a snapshot) */
char *mig_cmd_zfs_get_snap(const char *property, const char *dataset, const char *snap);
/* zfs set PROPERTY=VALUE DATASET (value: [A-Za-z0-9._-]) */
char *mig_cmd_zfs_set(const char *property, const char *value, const char *dataset);
/* zfs snapshot -r DATASET@SNAP */
char *mig_cmd_zfs_snapshot(const char *dataset, const char *snap);
/*
 * zfs send -R [-I FROM] DATASET@SNAP.  from: NULL for a full stream, a full
 * snapshot name "pool/ds@snap" (an origin image's @final) or a short "@snap".
 */
char *mig_cmd_zfs_send(const char *dataset, const char *snap, const char *from, bool compressed);
/*
 * zfs send -c, with nothing to send: whether the CN's zfs knows compressed
 * sends, from what it refuses (mig_parse_send_c_probe).  It sends nothing.
 */
char *mig_cmd_zfs_send_c_probe(void);
/*
 * What mig_cmd_zfs_send_c_probe's stderr says: 1 when zfs took -c and only
 * missed the snapshot, 0 when it refused the option, MIG_EPARSE when it
 * said neither (then migd sends without -c: never assumed).
 */
int mig_parse_send_c_probe(const char *err);
/*
 * zfs receive -u [-F] DATASET: the stream lands in exactly this dataset
 * (what it carries below its top lands below DATASET), whatever names it
 * holds, and nothing is mounted (-u): a stream also carries properties, and
 * a `mountpoint` from another CN must not mount anything in this CN's
 * global zone.  After the receive, mig_cmd_zfs_list_mounts and
 * mig_check_received say whether the tree may be mounted, and
 * mig_cmd_zfs_mount mounts it: the cores dataset is created under the
 * zone's mountpoint next, and on illumos a zone dataset mounted later over
 * that non-empty directory would fail.
 */
char *mig_cmd_zfs_receive(const char *dataset, bool force);
/* zfs receive -s -u -F DATASET: a resumable receive (only where the CN supports it) */
char *mig_cmd_zfs_receive_resumable(const char *dataset);
/* zfs list -H -o name,type,mountpoint,zoned,canmount,mounted -r DATASET */
char *mig_cmd_zfs_list_mounts(const char *dataset);
/* zfs mount DATASET */
char *mig_cmd_zfs_mount(const char *dataset);
/*
 * Checks mig_cmd_zfs_list_mounts output for the tree received into dataset
 * (the pool mounted at /POOL, as on SmartOS): every row is dataset or below
 * it, and every filesystem's mountpoint is none, legacy, zoned (mounted by
 * its zone, inside the zone's root) or /DATASET or a path below it, with no
 * "." or ".." component.  The number of filesystems the global zone would
 * mount that are not mounted yet, with the first of them in next ("" and 0
 * when none); -EPERM with why
 * (one line) when a mountpoint points elsewhere; MIG_EPARSE.
 */
int mig_check_received(const char *text, const char *dataset, char *next, size_t nextsz,
                       char *why, size_t whysz);
/*
 * The longest receive_resume_token migd takes, its NUL included: a token is
 * the hex of a compressed nvlist naming the snapshot, a few hundred bytes on
 * illumos; a longer one is refused rather than cut.
 */
#define MIG_RESUME_TOKEN_MAX 1024
/* zfs send -t TOKEN: resumes an interrupted stream (only where the CN supports it) */
char *mig_cmd_zfs_send_resume(const char *token);
/* zfs destroy [-r] DATASET; zfs destroy DATASET@SNAP (recursive with -r) */
char *mig_cmd_zfs_destroy(const char *dataset, bool recursive);
/* migctl doctor --fix: every line of the job's key out of authorized_keys (locked edit). */
char *mig_cmd_unauthorize_job(const char *job_uuid);
char *mig_cmd_zfs_destroy_snapshot(const char *dataset, const char *snap, bool recursive);
/* zfs create -o quota=1000m -o compression=gzip -o mountpoint=/zones/UUID/cores zones/cores/UUID */
char *mig_cmd_zfs_create_cores(const char *pool, const char *vm_uuid);
/* cat /etc/zones/index (read only) */
char *mig_cmd_cat_zones_index(void);

/*
 * Direct transfer (cn-commands.md): the source sends straight to the target
 * with a key made for one job.  The authorized line is (one line)
 *   restrict,from="SRC_IP",command="case $SSH_ORIGINAL_COMMAND in
 *   'zfs receive -u -F DS1') exec zfs receive -u -F DS1;; ... *) echo migd:
 *   refused >&2; exit 1;; esac",no-pty,no-port-forwarding,no-agent-forwarding,
 *   no-X11-forwarding ssh-ed25519 KEY migd-job-JOB
 * so the key runs the receive of the job's own datasets and nothing else;
 * `restrict` (OpenSSH 7.2) turns off whatever a newer sshd adds, the
 * explicit no-* say the same to one that predates it.
 */
struct mig_direct_key {
    const char *job_uuid;
    const char *src_ip;               /* the source's admin IP */
    const char *pubkey_b64;           /* the 68-character base64 of an ed25519 key */
    const char *const *datasets;      /* the job's datasets on the target */
    int ndatasets;                    /* 1..MIG_DIRECT_MAX_DATASETS */
};
#define MIG_DIRECT_MAX_DATASETS 8
/* The line, in out: 0, -EINVAL when an argument is not valid, -ENAMETOOLONG. */
int mig_direct_key_line(const struct mig_direct_key *k, char *out, size_t outsz);
/* "zfs receive -u -F DS": what the source asks the target's forced command to run. */
int mig_direct_receive(const char *dataset, char *out, size_t outsz);
/*
 * target: adds the job's line to ~/.ssh/authorized_keys (creating ~/.ssh
 * 0700), after a newline when the file lacks its final one; exits non-zero
 * unless the line is then there exactly once.  Like the removal, it edits a
 * copy in ~/.ssh and moves it over the file (illumos' sed has no -i), under
 * a lock on the CN: the directory ~/.ssh/.migd-lock made with mkdir (atomic;
 * illumos has no flock(1)) holding its shell's pid, waited for up to about
 * 30 s, taken over when its holder is dead.
 */
char *mig_cmd_authorize_key(const struct mig_direct_key *k);
/*
 * target: removes every line that is exactly the job's line (never a line
 * that merely ends like it), keeping every other line byte for byte; exits
 * non-zero unless the line is then absent, or when the copy would not hold
 * all the other lines.  No file, nothing to do.
 */
char *mig_cmd_unauthorize_key(const struct mig_direct_key *k);
/* source: /var/tmp/migd-JOB, 0700; a file in it ("id" or "known_hosts") from stdin; removal. */
char *mig_cmd_job_dir_create(const char *job_uuid);
char *mig_cmd_job_file_write(const char *job_uuid, const char *name);
char *mig_cmd_job_dir_remove(const char *job_uuid);

struct mig_direct_send {
    const char *dataset, *snap, *from; /* as mig_cmd_zfs_send */
    const char *job_uuid;
    const char *src_ip, *dst_ip;       /* admin IPs from CNAPI */
    const char *user;                  /* ssh.user */
    int port;                          /* ssh.port; 22 adds no -p */
    const char *cipher;                /* ssh -c: one or a list in order; NULL: ssh's default */
    bool compressed;                   /* zfs send -c (both CNs' zfs support it) */
};
/*
 * The direct stream's ciphers, in order: ssh takes the first that both the
 * source's client and the target's sshd offer.  AES-GCM first: a CN's CPU
 * has AES instructions (every x86-64 CPU that runs SmartOS's bhyve has
 * them), where it is the fastest (the lab: 1.70 s/GiB against 2.21 for
 * chacha20-poly1305, 2.75 for aes128-ctr with umac); chacha20-poly1305,
 * ssh's own default, where an older ssh lacks it.
 */
#define MIG_DIRECT_CIPHERS "aes128-gcm@openssh.com,chacha20-poly1305@openssh.com"
/*
 * source: zfs send -R -v ... | ssh -F /dev/null ... USER@DST_IP 'zfs receive
 * -u -F DS' (progress lines on stderr): none of the source's own ssh
 * configuration, identities or known hosts, only the job's files.
 */
char *mig_cmd_zfs_send_direct(const struct mig_direct_send *d);
/*
 * The line of a failed direct send's stderr that says why (`zfs send -v`'s
 * own progress lines and headers are noise; the send's "Broken pipe" only
 * echoes the receive's end, so it is taken only when nothing else was
 * said): its length, with *line at its start, or 0 with *line NULL.
 */
size_t mig_direct_failure_line(const char *errout, const char **line);

/* One row of `zfs list -H -p -o name,used,referenced,origin,type`. */
struct mig_zfs_dataset {
    char name[256];
    uint64_t used, referenced;
    char origin[256]; /* "" when "-" */
    char type[16];
};

/*
 * Parses zfs list output into a malloc'd array.  Returns the number of rows
 * (>= 0) or MIG_EPARSE; *out is the caller's to free.
 */
int mig_parse_zfs_list(const char *text, struct mig_zfs_dataset **out);

/* Parses `zfs list -H -o name -t snapshot` into a JSON array of names.  NULL on error. */
json_t *mig_parse_lines(const char *text);

/* One row of `zoneadm list -pc`. */
struct mig_zone {
    long long zoneid; /* -1 when not running ("-") */
    char zonename[64];
    char state[32];
    char zonepath[256];
    char uuid[64];
    char brand[32];
};
/* Finds zone uuid in zoneadm list -pc (or -p: running zones) output; 0 and *out filled, -ENOENT, MIG_EPARSE,
 * or -EINVAL when uuid is not a UUID. */
int mig_parse_zoneadm_find(const char *text, const char *uuid, struct mig_zone *out);

/*
 * From `vmadm get` output: the VM's state into state ("running",
 * "stopped", ...) and *autoboot (1, 0, -1 when absent).  0 or MIG_EPARSE.
 */
int mig_parse_vmadm_get(const char *text, char *state, size_t statesz, int *autoboot);

/*
 * From `zonecfg -z UUID export` text: *autoboot (1, 0, or -1 when not set)
 * and *hidden (the do-not-inventory attr is set to true).  0 or MIG_EPARSE.
 */
int mig_parse_zonecfg_flags(const char *text, int *autoboot, bool *hidden);
/*
 * The target's copy of an exported configuration, as staged: the
 * do-not-inventory attr exactly once (appended when absent) and autoboot
 * off (appended unless off already), so the zone it creates is never
 * reported by the CN's agent before migd lifts the flag, and, attached
 * before the switch's stop, never boots on its own while the source runs
 * (a reboot of the target CN).  A staged text stages to itself.  malloc'd.
 */
char *mig_zonecfg_staged(const char *text);

/*
 * True when two exports configure the same zone: equal line by line but for
 * the flags, "set autoboot=" lines (vmadm stop and start change those) and
 * a do-not-inventory attr block (a flag that hides a zone, not part of it).
 */
bool mig_zonecfg_same(const char *a, const char *b);

/*
 * A receive_resume_token value (`zfs get -H -p -o value`): 1 and the token
 * in out when one is set, 0 when none ("-" or empty), MIG_EPARSE when it is
 * not a token (only [0-9a-zA-Z-], at most outsz - 1 bytes).
 */
int mig_parse_resume_token(const char *text, char *out, size_t outsz);
/*
 * What a first send of a dataset moves, about: its referenced bytes, or its
 * used when less (a clone: what is not its origin's).  Never used alone: it
 * counts reservations (a volume's whole size) and, for a parent, children.
 */
uint64_t mig_zfs_send_bytes(const struct mig_zfs_dataset *row);

/* A numeric property from `zfs get -H -p -o value` (quota: 0 means none): 0, or MIG_EPARSE. */
int mig_parse_zfs_number(const char *text, uint64_t *out);
/* A snapshot's guid from `zfs get -H -p -o value guid`: 0 and *guid, or MIG_EPARSE. */
int mig_parse_guid(const char *text, uint64_t *guid);

/*
 * The progress lines `zfs send -v` prints on stderr (illumos: "HH:MM:SS
 * SIZE DS@SNAP", SIZE as zfs prints sizes: "512", "4.50K", "1.23G"), fed as
 * they arrive in chunks of any size.  The count is per snapshot, so a
 * stream of several (-R, -I) adds each one's last count when the next
 * starts.  Lines that are not progress (estimates, the header) are skipped.
 */
struct mig_send_progress {
    char line[512];
    size_t len;
    char snap[256];   /* the snapshot the last progress line named */
    uint64_t done;    /* the bytes of the snapshots before it */
    uint64_t current; /* its bytes so far */
};
void mig_send_progress_feed(struct mig_send_progress *p, const char *data, size_t n);
/* The bytes sent so far (at zfs's precision: three digits). */
uint64_t mig_send_progress_bytes(const struct mig_send_progress *p);
/* A size as zfs prints it ("1.23G", "512", "0"): 0 and *out bytes, or MIG_EPARSE. */
int mig_parse_zfs_nicenum(const char *s, uint64_t *out);

/* Parses zpool list -H -p -o name,size,free; 0 or MIG_EPARSE. */
int mig_parse_zpool_list(const char *text, uint64_t *size, uint64_t *free_bytes);

#endif
