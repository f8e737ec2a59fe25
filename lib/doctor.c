/*
 * doctor.c: the comparisons of migctl doctor (doctor.h).  Each rule reads
 * the facts of every visited CN at once, so that "a copy here" can be told
 * from "the only copy" by what the other CNs hold.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doctor.h"
#include "invariant.h"
#include "util.h"

#define UUID_LEN 36

/* A zone of a VM on one visited CN. */
struct zone_at {
    size_t cn;
    char vm[UUID_LEN + 1];
    char state[16];
    int running;
    int autoboot; /* -1 not known */
    int hidden;   /* do-not-inventory */
};

struct facts {
    const struct mig_doctor_cn *cns;
    size_t ncns;
    json_t *vms;  /* uuid -> VMAPI's VM */
    json_t *jobs; /* uuid -> job */
    struct zone_at *zones;
    size_t nzones, cap;
    json_t *out;
    bool trust_unknown; /* a job migd does not know is no job (no unreadable rows) */
};

static bool job_finished(json_t *job)
{
    const char *st = json_string_value(json_object_get(job, "state"));
    return st == NULL || strcmp(st, "succeeded") == 0 || strcmp(st, "failed") == 0 ||
           strcmp(st, "aborted") == 0 || strcmp(st, "rolled_back") == 0;
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

/* Adds a finding. */
static void add(struct facts *f, const char *cn, const char *kind, const char *name,
                const char *vm, const char *job, const char *severity, const char *what,
                const char *fix, bool sure)
{
    /*
     * What --fix may do by itself: nothing of a VM's data is at stake, and
     * (sure) the thing is known not to be an unfinished job's.
     */
    bool fixable = sure && (strcmp(kind, "snapshot") == 0 || strcmp(kind, "authorized_key") == 0 ||
                            strcmp(kind, "key_dir") == 0 || strcmp(kind, "vmapi_server") == 0 ||
                            strcmp(kind, "ip_reserved") == 0);
    /* What a CN printed (a name, an error) may be cut mid-character or not UTF-8 at all. */
    char t[3][512];
    const char *in[3] = {name, what, fix};
    for (int i = 0; i < 3; i++) {
        snprintf(t[i], sizeof(t[i]), "%s", in[i]);
        mig_utf8_scrub(t[i]);
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:s, s:s, s:b}", "cn", cn, "kind", kind,
                          "name", t[0], "vm_uuid", vm != NULL ? json_string(vm) : json_null(),
                          "job", job != NULL ? json_string(job) : json_null(), "severity",
                          severity, "what", t[1], "fix", t[2], "fixable", fixable);
    if (o == NULL)
        MIG_DIE("out of memory");
    json_array_append_new(f->out, o);
}

/* The job uuid that follows prefix in s ("" when none), into out. */
static bool uuid_after(const char *s, const char *prefix, char out[UUID_LEN + 1])
{
    const char *p = strstr(s, prefix);
    if (p == NULL)
        return false;
    p += strlen(prefix);
    if (strlen(p) < UUID_LEN)
        return false;
    memcpy(out, p, UUID_LEN);
    out[UUID_LEN] = '\0';
    return mig_uuid_valid(out);
}

/* Why a job's thing is left: "of job J (failed)" or "of no job migd knows". */
static void whose(json_t *job, const char *uuid, char *buf, size_t bufsz)
{
    if (job == NULL)
        snprintf(buf, bufsz, "of job %s, which migd does not know", uuid);
    else
        snprintf(buf, bufsz, "of job %s, which ended %s", uuid, str(job, "state"));
}

/* Calls fn for each line of text (without its newline, never empty). */
static void each_line(const char *text, void (*fn)(struct facts *, size_t, const char *),
                      struct facts *f, size_t cn)
{
    char line[1024];
    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *eol = strchr(p, '\n');
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
        if (len > 0 && len < sizeof(line)) {
            memcpy(line, p, len);
            line[len] = '\0';
            fn(f, cn, line);
        }
        p = eol != NULL ? eol + 1 : NULL;
    }
}

/*
 * zones/X@migd-JOB-N (with its user holds after a tab) of a job that ended
 * or that migd does not know.  A held one is another tool's promise (migd
 * holds nothing): only its owner releases it, so --fix leaves it.
 */
static void on_snapshot(struct facts *f, size_t cn, const char *line)
{
    char job[UUID_LEN + 1], why[160], what[360], fix[480], name[400];
    size_t len = strcspn(line, "\t");
    long holds = line[len] == '\t' ? strtol(line + len + 1, NULL, 10) : 0;
    snprintf(name, sizeof(name), "%.*s", (int)len, line);
    if (!uuid_after(name, "@migd-", job))
        return;
    json_t *j = json_object_get(f->jobs, job);
    if (j != NULL && !job_finished(j))
        return; /* an unfinished (or switched) job's own */
    whose(j, job, why, sizeof(why));
    const char *host = f->cns[cn].hostname;
    const char *vm = str(j, "vm_uuid")[0] ? str(j, "vm_uuid") : NULL;
    if (holds > 0) {
        snprintf(what, sizeof(what), "snapshot %s, held by %ld user hold(s) migd did not take",
                 why, holds);
        snprintf(fix, sizeof(fix),
                 "zfs holds -H %s (on %s) names the tags; once their owner is done: zfs release "
                 "TAG %s; then zfs destroy %s",
                 name, host, name, name);
        add(f, host, "held_snapshot", name, vm, j != NULL ? job : NULL, "warning", what, fix,
            false);
        return;
    }
    snprintf(what, sizeof(what), "snapshot %s", why);
    snprintf(fix, sizeof(fix), "zfs destroy %s (on %s; \"zfs holds\" first if it is busy)", name,
             host);
    add(f, host, "snapshot", name, vm, j != NULL ? job : NULL, "warning", what, fix,
        j != NULL || f->trust_unknown);
}

/* zoneid:zonename:state:zonepath:uuid:brand:ip-type */
static void on_zone(struct facts *f, size_t cn, const char *line)
{
    char copy[1024], *fields[8];
    snprintf(copy, sizeof(copy), "%s", line);
    int n = 0;
    for (char *p = copy, *save = NULL; n < 8 && (p = strtok_r(p, ":", &save)) != NULL; p = NULL)
        fields[n++] = p;
    /* An empty zonepath collapses under strtok: the global zone's line, skipped. */
    if (n < 6 || !mig_uuid_valid(fields[1]))
        return;
    if (f->nzones == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->zones = mig_realloc(f->zones, f->cap * sizeof(*f->zones));
    }
    struct zone_at *z = &f->zones[f->nzones++];
    z->cn = cn;
    snprintf(z->vm, sizeof(z->vm), "%s", fields[1]);
    snprintf(z->state, sizeof(z->state), "%s", fields[2]);
    z->running = strcmp(fields[2], "running") == 0;
    z->autoboot = -1;
    z->hidden = 0;
}

/* "/etc/zones/UUID.xml:<zone ... autoboot="B" ...>" or "...:<attr name="do-not-inventory" ...>". */
static void on_flag(struct facts *f, size_t cn, const char *line)
{
    char vm[UUID_LEN + 1];
    if (!uuid_after(line, "/etc/zones/", vm))
        return;
    for (size_t k = 0; k < f->nzones; k++) {
        struct zone_at *z = &f->zones[k];
        if (z->cn != cn || strcmp(z->vm, vm) != 0)
            continue;
        if (strstr(line, "\"do-not-inventory\"") != NULL)
            z->hidden = strstr(line, "value=\"true\"") != NULL;
        else if (strstr(line, " autoboot=\"") != NULL)
            z->autoboot = strstr(line, " autoboot=\"true\"") != NULL;
    }
}

/* " migd-job-JOB" lines of authorized_keys and /var/tmp/migd-JOB directories of ended jobs. */
static void on_key(struct facts *f, size_t cn, const char *line)
{
    char job[UUID_LEN + 1], why[160], what[320], fix[400];
    bool dir = strncmp(line, "/var/tmp/migd-", 14) == 0;
    if (!(dir ? uuid_after(line, "/var/tmp/migd-", job) : uuid_after(line, "migd-job-", job)))
        return;
    json_t *j = json_object_get(f->jobs, job);
    if (j != NULL && !job_finished(j))
        return;
    whose(j, job, why, sizeof(why));
    const char *host = f->cns[cn].hostname;
    if (dir) {
        snprintf(what, sizeof(what), "direct transfer's key directory %s", why);
        snprintf(fix, sizeof(fix), "rm -rf /var/tmp/migd-%s (on %s)", job, host);
    } else {
        snprintf(what, sizeof(what), "direct transfer's key in authorized_keys %s", why);
        snprintf(fix, sizeof(fix),
                 "remove the line that ends \" migd-job-%s\" from ~/.ssh/authorized_keys (on %s)",
                 job, host);
    }
    char name[80];
    snprintf(name, sizeof(name), dir ? "/var/tmp/migd-%s" : "migd-job-%s", job);
    add(f, host, dir ? "key_dir" : "authorized_key", name,
        str(j, "vm_uuid")[0] ? str(j, "vm_uuid") : NULL, j != NULL ? job : NULL, "warning", what,
        fix, j != NULL || f->trust_unknown);
}

/* The visited CN whose uuid is uuid, or -1. */
static long cn_of_uuid(const struct facts *f, const char *uuid)
{
    for (size_t i = 0; i < f->ncns; i++)
        if (f->cns[i].err == NULL && strcmp(f->cns[i].uuid, uuid) == 0)
            return (long)i;
    return -1;
}

/* The VM's zone on CN i (installed or running), or NULL. */
static const struct zone_at *zone_on(const struct facts *f, const char *vm, long i)
{
    for (size_t k = 0; k < f->nzones; k++)
        if ((long)f->zones[k].cn == i && strcmp(f->zones[k].vm, vm) == 0)
            return &f->zones[k];
    return NULL;
}

/* The newest job of vm with a side on host: unfinished first, else the latest one. */
static json_t *job_of_vm_on(const struct facts *f, const char *vm, const char *host,
                            bool *unfinished)
{
    json_t *best = NULL;
    const char *key;
    json_t *j;
    *unfinished = false;
    json_object_foreach(f->jobs, key, j)
    {
        if (strcmp(str(j, "vm_uuid"), vm) != 0 ||
            (strcmp(str(j, "source_hostname"), host) != 0 &&
             strcmp(str(j, "target_hostname"), host) != 0))
            continue;
        if (!job_finished(j)) {
            *unfinished = true;
            return j;
        }
        if (best == NULL || strcmp(str(j, "created"), str(best, "created")) > 0)
            best = j;
    }
    return best;
}

/* Whether a job of vm is on its way (queued, running, waiting): its zones are in motion. */
static bool vm_in_motion(const struct facts *f, const char *vm)
{
    const char *key;
    json_t *j;
    json_object_foreach(f->jobs, key, j)
    {
        const char *st = str(j, "state");
        if (strcmp(str(j, "vm_uuid"), vm) == 0 &&
            (strcmp(st, "queued") == 0 || strcmp(st, "running") == 0 ||
             strcmp(st, "waiting") == 0))
            return true;
    }
    return false;
}

/* One VM's zones on every visited CN against where VMAPI places it. */
static void judge_vm(struct facts *f, const char *vm)
{
    char what[400], fix[400];
    /* A switch, a rollback, a cleanup moves it now: what the CNs say is a moment of it. */
    if (vm_in_motion(f, vm))
        return;
    json_t *v = json_object_get(f->vms, vm);
    const char *placed = str(v, "server_uuid");
    long home = v != NULL ? cn_of_uuid(f, placed) : -1;
    size_t nrunning = 0;
    long running_on = -1;
    for (size_t k = 0; k < f->nzones; k++)
        if (strcmp(f->zones[k].vm, vm) == 0 && f->zones[k].running) {
            nrunning++;
            running_on = (long)f->zones[k].cn;
        }
    if (nrunning > 1) {
        snprintf(what, sizeof(what), "VM %s runs on %zu CNs at once", vm, nrunning);
        snprintf(fix, sizeof(fix),
                 "stop it (vmadm stop) everywhere but on the CN VMAPI names; never delete a "
                 "copy before comparing their data");
        add(f, f->cns[running_on].hostname, "running_twice", vm, vm, NULL, "critical", what, fix, false);
    } else if (nrunning == 1 && v == NULL) {
        snprintf(what, sizeof(what), "VM %s runs on %s, but VMAPI lists no such active VM", vm,
                 f->cns[running_on].hostname);
        snprintf(fix, sizeof(fix), "svcadm restart vm-agent (on %s): its agent reports it",
                 f->cns[running_on].hostname);
        add(f, f->cns[running_on].hostname, "vmapi_server", vm, vm, NULL, "warning", what, fix,
            true);
    } else if (nrunning == 1 && running_on != home) {
        snprintf(what, sizeof(what), "VM %s runs on %s, but VMAPI places it on %s", vm,
                 f->cns[running_on].hostname, placed[0] ? placed : "no server");
        snprintf(fix, sizeof(fix), "svcadm restart vm-agent (on %s): its agent reports it",
                 f->cns[running_on].hostname);
        add(f, f->cns[running_on].hostname, "vmapi_server", vm, vm, NULL, "warning", what, fix, true);
    } else if (nrunning == 0 && home >= 0 && strcmp(str(v, "state"), "running") == 0) {
        snprintf(what, sizeof(what), "VMAPI says VM %s runs on %s, but it runs nowhere", vm,
                 f->cns[home].hostname);
        snprintf(fix, sizeof(fix), "vmadm start %s (on %s), once \"vmadm get\" says why it stopped",
                 vm, f->cns[home].hostname);
        add(f, f->cns[home].hostname, "not_running", vm, vm, NULL, "critical", what, fix, false);
    }
    /* Bootable on two CNs: after a power cut both would start it. */
    size_t nboot = 0;
    long boot_cn = -1;
    for (size_t k = 0; k < f->nzones; k++)
        if (strcmp(f->zones[k].vm, vm) == 0 && strcmp(f->zones[k].state, "configured") != 0 &&
            f->zones[k].autoboot == 1 && !f->zones[k].hidden) {
            nboot++;
            if ((long)f->zones[k].cn != home)
                boot_cn = (long)f->zones[k].cn;
        }
    if (nboot > 1 && boot_cn >= 0) {
        snprintf(what, sizeof(what),
                 "VM %s is bootable (autoboot, no do-not-inventory) on %zu CNs: a reboot of %s "
                 "would start a second copy",
                 vm, nboot, f->cns[boot_cn].hostname);
        snprintf(fix, sizeof(fix),
                 "on %s: zonecfg -z %s 'set autoboot=false; add attr; set "
                 "name=do-not-inventory; set type=string; set value=true; end'",
                 f->cns[boot_cn].hostname, vm);
        add(f, f->cns[boot_cn].hostname, "bootable_twice", vm, vm, NULL, "critical", what, fix,
            false);
    }
    /* On VMAPI's CN, a zone migd left hidden or not to be booted. */
    const struct zone_at *hz = home >= 0 ? zone_on(f, vm, home) : NULL;
    if (hz != NULL && (hz->hidden || (hz->autoboot == 0 && strcmp(str(v, "state"), "running") == 0))) {
        snprintf(what, sizeof(what), "VM %s on %s, where VMAPI places it, is %s%s%s", vm,
                 f->cns[home].hostname, hz->hidden ? "flagged do-not-inventory" : "",
                 hz->hidden && hz->autoboot == 0 ? " and " : "",
                 hz->autoboot == 0 ? "not booted at a reboot (autoboot=false)" : "");
        snprintf(fix, sizeof(fix), "on %s: zonecfg -z %s '%s%s%s'", f->cns[home].hostname, vm,
                 hz->hidden ? "remove attr name=do-not-inventory" : "",
                 hz->hidden && hz->autoboot == 0 ? "; " : "",
                 hz->autoboot == 0 ? "set autoboot=true" : "");
        add(f, f->cns[home].hostname, "flags", vm, vm, NULL, "warning", what, fix, false);
    }
    /* A zone on a CN other than VMAPI's: kept copy, stray copy, or the only one. */
    for (size_t k = 0; k < f->nzones; k++) {
        const struct zone_at *z = &f->zones[k];
        if (strcmp(z->vm, vm) != 0 || (long)z->cn == home || z->running)
            continue;
        const char *host = f->cns[z->cn].hostname;
        bool unfinished = false;
        json_t *j = job_of_vm_on(f, vm, host, &unfinished);
        const char *ju = j != NULL ? str(j, "uuid") : NULL;
        if (unfinished && strcmp(str(j, "state"), "switched") == 0 &&
            strcmp(str(j, "source_hostname"), host) == 0) {
            snprintf(what, sizeof(what), "the source copy of VM %s that switched job %s keeps", vm,
                     ju);
            snprintf(fix, sizeof(fix),
                     "nothing yet: \"migctl cleanup %s\" deletes it, \"migctl rollback %s\" "
                     "returns to it",
                     ju, ju);
            add(f, host, "zone", vm, vm, ju, "info", what, fix, false);
        } else if (unfinished) {
            continue; /* a job moves it now */
        } else if (v != NULL && home >= 0 && zone_on(f, vm, home) != NULL) {
            snprintf(what, sizeof(what),
                     "a copy of VM %s (%s) that it does not run from: VMAPI places it on %s, "
                     "which holds it%s%s",
                     vm, z->state, f->cns[home].hostname, ju != NULL ? "; left by job " : "",
                     ju != NULL ? ju : "");
            snprintf(fix, sizeof(fix),
                     "on %s: zoneadm -z %s detach; zonecfg -z %s delete -F; zfs destroy -r "
                     "zones/%s (after checking the copy on %s is the newer)",
                     host, vm, vm, vm, f->cns[home].hostname);
            add(f, host, "zone", vm, vm, ju, "warning", what, fix, false);
        } else if (v != NULL && home < 0 && placed[0] != '\0') {
            snprintf(what, sizeof(what),
                     "a copy of VM %s (%s) that it does not run from: VMAPI places it on server "
                     "%s, which was not checked",
                     vm, z->state, placed);
            snprintf(fix, sizeof(fix), "run migctl doctor with that server too: it tells a "
                                       "stray copy from the only one");
            add(f, host, "zone", vm, vm, ju, "warning", what, fix, false);
        } else {
            snprintf(what, sizeof(what),
                     "the only copy of VM %s (%s) that migd can see: VMAPI places it %s%s",
                     vm, z->state, v != NULL ? "on " : "nowhere (not an active VM)",
                     v != NULL ? (home >= 0 ? f->cns[home].hostname : placed) : "");
            snprintf(fix, sizeof(fix),
                     "never removed by migd: find where VM %s should run; if here, \"svcadm "
                     "restart vm-agent\" on %s corrects VMAPI",
                     vm, host);
            add(f, host, "zone", vm, vm, ju, "critical", what, fix, false);
        }
    }
}

/*
 * DATASET<TAB>TOKEN: a partial receive waits on DATASET.  Of a VM's
 * dataset that no unfinished job will resume, it is a leftover (of the
 * VM's latest job on this CN when there is one).  Never fixed by migd:
 * `zfs receive -A` is not among its commands (cn-commands.md).
 */
static void on_token(struct facts *f, size_t cn, const char *line)
{
    char vm[UUID_LEN + 1], ds[300], what[480], fix[400];
    size_t len = strcspn(line, "\t");
    const char *token = line[len] == '\t' ? line + len + 1 : "-";
    if (strcmp(token, "-") == 0 || token[0] == '\0' || len >= sizeof(ds))
        return;
    snprintf(ds, sizeof(ds), "%.*s", (int)len, line);
    if (strchr(ds, '@') != NULL)
        return;
    const char *host = f->cns[cn].hostname;
    bool known_vm = uuid_after(ds, "/", vm);
    bool unfinished = false;
    json_t *j = known_vm ? job_of_vm_on(f, vm, host, &unfinished) : NULL;
    if (known_vm && (unfinished || vm_in_motion(f, vm)))
        return; /* its job resumes (or ends) that stream */
    const char *ju = j != NULL ? str(j, "uuid") : NULL;
    snprintf(what, sizeof(what),
             "a partial receive into %s waits (receive_resume_token) and no unfinished job "
             "resumes it%s%s%s",
             ds, ju != NULL ? "; left by job " : "", ju != NULL ? ju : "",
             ju != NULL ? (job_finished(j) ? ", which ended" : "") : "");
    snprintf(fix, sizeof(fix),
             "zfs receive -A %s (on %s): discards the partial stream; what %s held before it "
             "stays",
             ds, host, ds);
    add(f, host, "resume_token", ds, known_vm ? vm : NULL, ju, "warning", what, fix, false);
}

/*
 * NAPI still has an IP reserved that an ended job reserved for its move
 * (it was not before the job).  Unreserving it loses no data; it is done
 * by --fix only when no later job of the VM found it reserved already (an
 * operator may have reserved it since).
 */
static void on_ip(struct facts *f, json_t *ip)
{
    char name[160], what[400], fix[400];
    const char *job = str(ip, "job"), *vm = str(ip, "vm_uuid");
    snprintf(name, sizeof(name), "%s (network %s)", str(ip, "ip"), str(ip, "network_uuid"));
    if (json_string_value(json_object_get(ip, "err")) != NULL) {
        snprintf(what, sizeof(what), "IP %s that job %s reserved could not be read: %s", name,
                 job, str(ip, "err"));
        add(f, "napi", "ip_reserved", name, vm[0] ? vm : NULL, job[0] ? job : NULL, "warning",
            what, "run migctl doctor again once NAPI answers", false);
        return;
    }
    if (!json_is_true(json_object_get(ip, "reserved")))
        return;
    json_t *j = json_object_get(f->jobs, job);
    /* NAPI gave it to another instance since: never ours to release. */
    const char *owner = str(ip, "belongs_to_uuid");
    if (owner[0] != '\0' && strcmp(owner, vm) != 0)
        return;
    bool newest = json_is_true(json_object_get(ip, "newest"));
    snprintf(what, sizeof(what),
             "IP %s is reserved in NAPI: job %s (ended %s) reserved it for the move and it was "
             "not before%s",
             name, job, str(j, "state"),
             newest ? "" : "; a later job of the VM found it reserved, maybe by an operator");
    snprintf(fix, sizeof(fix), "NAPI PUT /networks/%s/ips/%s {\"reserved\": false}",
             str(ip, "network_uuid"), str(ip, "ip"));
    add(f, "napi", "ip_reserved", name, vm[0] ? vm : NULL, job[0] ? job : NULL, "warning", what,
        fix, newest && j != NULL);
}

json_t *mig_doctor_findings(const struct mig_doctor_cn *cns, size_t ncns, json_t *vms,
                            json_t *jobs, json_t *ips, bool trust_unknown)
{
    struct facts f = {.cns = cns, .ncns = ncns, .vms = json_object(), .jobs = json_object(),
                      .out = json_array(), .trust_unknown = trust_unknown};
    size_t i;
    json_t *x;
    json_array_foreach(vms, i, x)
        if (json_string_value(json_object_get(x, "uuid")) != NULL)
            json_object_set(f.vms, json_string_value(json_object_get(x, "uuid")), x);
    json_array_foreach(jobs, i, x)
        if (json_string_value(json_object_get(x, "uuid")) != NULL)
            json_object_set(f.jobs, json_string_value(json_object_get(x, "uuid")), x);
    for (size_t c = 0; c < ncns; c++) {
        if (cns[c].err != NULL) {
            char what[320];
            snprintf(what, sizeof(what), "not checked: %s", cns[c].err);
            add(&f, cns[c].hostname, "unreachable", cns[c].hostname, NULL, NULL, "warning", what,
                "check the CN's SSH (migctl status), then run migctl doctor again", false);
            continue;
        }
        each_line(cns[c].snapshots, on_snapshot, &f, c);
        each_line(cns[c].zones, on_zone, &f, c);
        each_line(cns[c].keys, on_key, &f, c);
        each_line(cns[c].flags, on_flag, &f, c);
    }
    for (size_t c = 0; c < ncns; c++)
        if (cns[c].err == NULL)
            each_line(cns[c].tokens, on_token, &f, c); /* after every CN's zones: whose job */
    /* Each VM once, in the order its first zone was seen. */
    json_t *seen = json_object();
    for (size_t k = 0; k < f.nzones; k++) {
        if (json_object_get(seen, f.zones[k].vm) != NULL)
            continue;
        json_object_set_new(seen, f.zones[k].vm, json_true());
        judge_vm(&f, f.zones[k].vm);
    }
    /* VMs VMAPI says run on a visited CN that holds no zone of them at all. */
    json_array_foreach(vms, i, x)
    {
        const char *vm = json_string_value(json_object_get(x, "uuid"));
        if (vm != NULL && json_object_get(seen, vm) == NULL &&
            cn_of_uuid(&f, str(x, "server_uuid")) >= 0 &&
            strcmp(str(x, "state"), "running") == 0)
            judge_vm(&f, vm);
    }
    json_decref(seen);
    json_array_foreach(ips, i, x)
        on_ip(&f, x);
    json_decref(f.vms);
    json_decref(f.jobs);
    free(f.zones);
    return f.out;
}
