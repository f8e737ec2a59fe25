/*
 * doctor.c: migctl doctor's facts (GET /doctor).  CNAPI names the set-up
 * CNs, VMAPI the active VMs (a page of 1000 at a time); every CN (or the
 * ones asked) is visited with at most DOCTOR_PARALLEL at once, and on each
 * one SSH command runs per kind of fact (its snapshots, its zones, migd's
 * key lines and directories), never one per instance.  lib/doctor.c
 * compares them with the jobs on record.  Read-only, but for --fix (POST
 * /doctor/fix): then each fixable finding's command runs on its CN, one
 * after another, and the report says what was fixed and what was left.
 * Every fix is idempotent (a snapshot or key already gone is fixed), so a
 * migd killed midway leaves nothing that the next run does not finish.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cn.h"
#include "daemon.h"
#include "doctor.h"
#include "err.h"
#include "http.h"
#include "log.h"
#include "ssh.h"
#include "store.h"
#include "triton.h"
#include "util.h"
#include "validate.h"

#define DOCTOR_PARALLEL 8 /* CNs visited at once */
#define DOCTOR_FACTS 5    /* snapshots, zones, keys, zone flags, resume tokens */
#define DOCTOR_NAPI 8     /* NAPI reads at once */
#define POOL "zones"

struct doctor_run;

struct visit {
    struct doctor_run *r;
    char host[64], uuid[MIG_UUID_LEN + 1], ip[64];
    int step;                  /* the fact being read, 0..DOCTOR_FACTS */
    char *text[DOCTOR_FACTS];  /* what each command printed */
    char *err;                 /* why the CN could not be read, NULL */
};

struct doctor_run {
    struct migd *d;
    evac_cb cb;
    void *arg;
    json_t *want; /* the CNs asked (uuids or hostnames), NULL: every one */
    json_t *vms;  /* VMAPI's active VMs so far */
    struct visit *v;
    size_t n, started, ended;
    bool starting;     /* visit_next's loop runs: a visit that ends at once leaves the rest to it */
    int64_t t0;
    bool fix;          /* POST /doctor/fix */
    json_t *report;    /* while fixing: the report being completed */
    size_t fixing;     /* the finding being fixed */
    json_t *jobs;      /* every job, in the API's form (read once the CNs are visited) */
    bool complete;     /* no job row is unreadable */
    json_t *ips;       /* the IPs ended jobs reserved, with what NAPI says now */
    size_t ip_started, ip_ended;
};

static void run_free(struct doctor_run *r)
{
    for (size_t i = 0; i < r->n; i++) {
        for (int k = 0; k < DOCTOR_FACTS; k++)
            free(r->v[i].text[k]);
        free(r->v[i].err);
    }
    free(r->v);
    json_decref(r->want);
    json_decref(r->vms);
    json_decref(r->report);
    json_decref(r->jobs);
    json_decref(r->ips);
    free(r);
}

static void fail(struct doctor_run *r, int err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(struct doctor_run *r, int err, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    r->cb(r->arg, err, code, msg, NULL);
    run_free(r);
}

/*
 * The IPs that ended jobs found unreserved in NAPI and reserved for their
 * move, one entry per IP (its latest such job), of VMs no job holds now (a
 * switched job keeps its IPs reserved until its cleanup).  newest: no
 * later job of the VM found the IP reserved already.
 */
static json_t *ips_to_check(struct mig_job **jobs, size_t n)
{
    json_t *busy = json_object(), *by_ip = json_object(), *seen_reserved = json_object();
    for (size_t i = 0; i < n; i++)
        if (!mig_job_state_final(jobs[i]->state))
            json_object_set_new(busy, jobs[i]->vm_uuid, json_true());
    for (size_t i = 0; i < n; i++) {
        const struct mig_job *j = jobs[i];
        if (!mig_job_state_final(j->state) || json_object_get(busy, j->vm_uuid) != NULL)
            continue;
        for (int k = 0; k < j->ctx.nnics; k++) {
            const struct mig_nic *nic = &j->ctx.nics[k];
            char key[MIG_UUID_LEN + MIG_IP_LEN + 2];
            if (nic->ip[0] == '\0' || nic->reserved_before < 0)
                continue;
            snprintf(key, sizeof(key), "%s/%s", nic->network_uuid, nic->ip);
            json_t *at = json_object_get(nic->reserved_before ? seen_reserved : by_ip, key);
            json_int_t when = json_integer_value(json_object_get(at, "created"));
            if (at != NULL && when >= j->created)
                continue;
            json_object_set_new(nic->reserved_before ? seen_reserved : by_ip, key,
                                json_pack("{s:s, s:s, s:s, s:s, s:I}", "job", j->uuid, "vm_uuid",
                                          j->vm_uuid, "ip", nic->ip, "network_uuid",
                                          nic->network_uuid, "created", (json_int_t)j->created));
        }
    }
    json_t *out = json_array();
    const char *key;
    json_t *e;
    json_object_foreach(by_ip, key, e)
    {
        json_t *later = json_object_get(seen_reserved, key);
        json_object_set_new(e, "newest",
                            json_boolean(json_integer_value(json_object_get(later, "created")) <
                                         json_integer_value(json_object_get(e, "created"))));
        json_object_del(e, "created");
        json_array_append(out, e);
    }
    json_decref(busy);
    json_decref(by_ip);
    json_decref(seen_reserved);
    return out;
}

/*
 * Every job on record, in the API's form, and the IPs to ask NAPI about.
 * False when the database cannot say (then nothing is compared: every migd
 * snapshot would look orphaned).
 */
static bool load_jobs(struct doctor_run *r)
{
    struct mig_job_filter f = {.all = 1};
    struct mig_job **jobs = NULL;
    struct mig_bad_job *bad = NULL;
    size_t n = 0, nbad = 0;
    if (mig_store_job_list(r->d->store, &f, &jobs, &n) != 0)
        return false;
    r->complete = mig_store_job_list_bad(r->d->store, &bad, &nbad) == 0 && nbad == 0;
    free(bad);
    r->jobs = json_array();
    r->ips = ips_to_check(jobs, n);
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(r->jobs, mig_job_to_json(jobs[i]));
        mig_job_free(jobs[i]);
    }
    free(jobs);
    return true;
}

/* The command that fixes finding f (NULL: none may), built only from what cn.c validates. */
static char *fix_command(json_t *f)
{
    const char *kind = json_string_value(json_object_get(f, "kind"));
    const char *name = json_string_value(json_object_get(f, "name"));
    if (!json_is_true(json_object_get(f, "fixable")) || kind == NULL || name == NULL)
        return NULL;
    if (strcmp(kind, "snapshot") == 0) {
        const char *at = strchr(name, '@');
        if (at == NULL || (size_t)(at - name) >= 256)
            return NULL;
        char ds[256];
        snprintf(ds, sizeof(ds), "%.*s", (int)(at - name), name);
        return mig_cmd_zfs_destroy_snapshot(ds, at + 1, false);
    }
    if (strcmp(kind, "authorized_key") == 0 && strncmp(name, "migd-job-", 9) == 0)
        return mig_cmd_unauthorize_job(name + 9);
    if (strcmp(kind, "key_dir") == 0 && strncmp(name, "/var/tmp/migd-", 14) == 0)
        return mig_cmd_job_dir_remove(name + 14);
    if (strcmp(kind, "vmapi_server") == 0)
        return mig_cmd_svcadm_restart_vm_agent();
    return NULL;
}

static void fix_next(struct doctor_run *r);

/* The visit of the CN named host, or NULL. */
static struct visit *visit_of(struct doctor_run *r, const char *host)
{
    for (size_t i = 0; i < r->n; i++)
        if (host != NULL && strcmp(r->v[i].host, host) == 0 && r->v[i].err == NULL)
            return &r->v[i];
    return NULL;
}

static void on_fixed(void *arg, const struct mig_ssh_result *res)
{
    struct doctor_run *r = arg;
    json_t *f = json_array_get(json_object_get(r->report, "findings"), r->fixing);
    if (res->err_code == 0 && res->exit_status == 0) {
        json_object_set_new(f, "fixed", json_true());
    } else {
        char why[300];
        if (res->err_code != 0)
            snprintf(why, sizeof(why), "%s", res->detail);
        else
            snprintf(why, sizeof(why), "exit %d: %.*s", res->exit_status,
                     (int)strcspn(res->err != NULL ? res->err : "", "\n"),
                     res->err != NULL ? res->err : "");
        json_object_set_new(f, "fixed", json_false());
        json_object_set_new(f, "left", json_string(why));
    }
    mig_log(MIG_LOG_INFO, NULL, json_string_value(json_object_get(f, "vm_uuid")),
            "doctor --fix: %s %s on %s: %s", json_string_value(json_object_get(f, "kind")),
            json_string_value(json_object_get(f, "name")),
            json_string_value(json_object_get(f, "cn")),
            json_is_true(json_object_get(f, "fixed"))
                ? "fixed"
                : json_string_value(json_object_get(f, "left")));
    r->fixing++;
    fix_next(r);
}

static void on_ip_fixed(void *arg, const struct mig_http_resp *resp)
{
    /* Told as a command's result, so one place records what was fixed and what was left. */
    struct mig_ssh_result res = {.err_code = resp->err_code};
    if (resp->err_code != 0)
        snprintf(res.detail, sizeof(res.detail), "NAPI: %s", resp->detail);
    else if (resp->status != 200) {
        res.err_code = MIG_EHTTP;
        snprintf(res.detail, sizeof(res.detail), "NAPI answered %ld: %.200s", resp->status,
                 resp->body != NULL ? resp->body : "");
    }
    on_fixed(arg, &res);
}

/* An ip_reserved finding's fix: NAPI PUT reserved=false on the IP of its entry in r->ips. */
static int fix_ip(struct doctor_run *r, json_t *f)
{
    size_t i;
    json_t *ip;
    json_array_foreach(r->ips, i, ip)
    {
        char name[160];
        snprintf(name, sizeof(name), "%s (network %s)",
                 json_string_value(json_object_get(ip, "ip")),
                 json_string_value(json_object_get(ip, "network_uuid")));
        if (strcmp(name, json_string_value(json_object_get(f, "name"))) != 0)
            continue;
        char *url = mig_url_ip(r->d->cfg->apis.napi,
                               json_string_value(json_object_get(ip, "network_uuid")),
                               json_string_value(json_object_get(ip, "ip")));
        json_t *body = json_pack("{s:b}", "reserved", 0);
        struct mig_http_req req = {.method = "PUT", .url = url, .body = body, .retries = -1};
        int rc = url != NULL ? mig_http_request(r->d->http, &req, on_ip_fixed, r) : -EINVAL;
        free(url);
        json_decref(body);
        return rc;
    }
    return -ENOENT;
}

/* Fixes the next fixable finding, or answers once none is left. */
static void fix_next(struct doctor_run *r)
{
    json_t *findings = json_object_get(r->report, "findings");
    for (; r->fixing < json_array_size(findings); r->fixing++) {
        json_t *f = json_array_get(findings, r->fixing);
        const char *kind = json_string_value(json_object_get(f, "kind"));
        if (kind != NULL && strcmp(kind, "ip_reserved") == 0 &&
            json_is_true(json_object_get(f, "fixable"))) {
            int rc = fix_ip(r, f);
            if (rc == 0)
                return;
            json_object_set_new(f, "fixed", json_false());
            json_object_set_new(f, "left", json_string(mig_strerror(rc)));
            continue;
        }
        char *cmd = fix_command(f);
        if (cmd == NULL)
            continue;
        struct visit *v = visit_of(r, json_string_value(json_object_get(f, "cn")));
        int rc = v != NULL ? mig_ssh_exec(r->d->ssh, v->ip, cmd, NULL, 0, 120, on_fixed, r)
                           : -ENOENT;
        free(cmd);
        if (rc == 0)
            return;
        json_object_set_new(f, "fixed", json_false());
        json_object_set_new(f, "left", json_string(mig_strerror(rc)));
    }
    int fixed = 0, left = 0;
    size_t i;
    json_t *f;
    json_array_foreach(findings, i, f)
    {
        const char *sev = json_string_value(json_object_get(f, "severity"));
        if (json_is_true(json_object_get(f, "fixed")))
            fixed++;
        else if (sev != NULL && strcmp(sev, "info") != 0)
            left++;
    }
    json_object_set_new(r->report, "fixed", json_integer(fixed));
    json_object_set_new(r->report, "left", json_integer(left));
    r->cb(r->arg, 0, NULL, NULL, r->report);
    run_free(r);
}

/* Every fact in: compare, count, answer (or fix first). */
static void compare(struct doctor_run *r)
{
    struct mig_doctor_cn *cns = mig_calloc(r->n > 0 ? r->n : 1, sizeof(*cns));
    json_t *checked = json_array();
    for (size_t i = 0; i < r->n; i++) {
        struct visit *v = &r->v[i];
        cns[i] = (struct mig_doctor_cn){.hostname = v->host, .uuid = v->uuid,
                                        .snapshots = v->text[0], .zones = v->text[1],
                                        .keys = v->text[2], .flags = v->text[3],
                                        .tokens = v->text[4], .err = v->err};
        json_array_append_new(checked, json_string(v->host));
    }
    json_t *findings = mig_doctor_findings(cns, r->n, r->vms, r->jobs, r->ips, r->complete);
    free(cns);
    int counts[3] = {0, 0, 0};
    size_t i;
    json_t *f;
    json_array_foreach(findings, i, f)
    {
        const char *sev = json_string_value(json_object_get(f, "severity"));
        counts[sev != NULL && strcmp(sev, "critical") == 0   ? 2
               : sev != NULL && strcmp(sev, "warning") == 0 ? 1
                                                             : 0]++;
    }
    json_t *report = json_pack("{s:o, s:I, s:I, s:o, s:{s:i, s:i, s:i}, s:I}", "checked", checked,
                               "vms", (json_int_t)json_array_size(r->vms), "ips",
                               (json_int_t)json_array_size(r->ips), "findings", findings,
                               "counts", "critical", counts[2], "warning", counts[1], "info",
                               counts[0], "took_ms", (json_int_t)(mig_now_ms() - r->t0));
    mig_log(MIG_LOG_INFO, NULL, NULL,
            "doctor: %zu CN(s), %zu IP(s), %zu findings (%d critical) in %lld ms", r->n,
            json_array_size(r->ips), json_array_size(findings), counts[2],
            (long long)(mig_now_ms() - r->t0));
    if (r->fix) {
        r->report = report;
        r->fixing = 0;
        fix_next(r);
        return;
    }
    r->cb(r->arg, 0, NULL, NULL, report);
    json_decref(report);
    run_free(r);
}

static void ip_next(struct doctor_run *r);

/* One NAPI read of an IP: the run it belongs to, the entry it completes. */
struct ip_read {
    struct doctor_run *r;
    json_t *ip;
};

static void on_ip(void *arg, const struct mig_http_resp *resp)
{
    struct ip_read *rd = arg;
    struct doctor_run *r = rd->r;
    json_t *reserved = json_object_get(resp->json, "reserved");
    if (resp->err_code == 0 && resp->status == 200 && json_is_boolean(reserved)) {
        json_object_set(rd->ip, "reserved", reserved);
        json_t *owner = json_object_get(resp->json, "belongs_to_uuid");
        if (json_is_string(owner))
            json_object_set(rd->ip, "belongs_to_uuid", owner);
    }
    else if (resp->err_code == 0 && resp->status == 404)
        json_object_set_new(rd->ip, "reserved", json_false()); /* outside its network now */
    else
        json_object_set_new(rd->ip, "err",
                            json_string(resp->err_code != 0 ? resp->detail
                                                            : "an answer without \"reserved\""));
    free(rd);
    r->ip_ended++;
    ip_next(r);
}

/* Reads the next IPs from NAPI, DOCTOR_NAPI at once; compares once all are in. */
static void ip_next(struct doctor_run *r)
{
    size_t n = json_array_size(r->ips);
    while (r->ip_started < n && r->ip_started - r->ip_ended < DOCTOR_NAPI) {
        json_t *ip = json_array_get(r->ips, r->ip_started++);
        char *url = mig_url_ip(r->d->cfg->apis.napi,
                               json_string_value(json_object_get(ip, "network_uuid")),
                               json_string_value(json_object_get(ip, "ip")));
        struct mig_http_req req = {.method = "GET", .url = url, .retries = -1};
        struct ip_read *rd = mig_calloc(1, sizeof(*rd));
        *rd = (struct ip_read){r, ip};
        int rc = url != NULL ? mig_http_request(r->d->http, &req, on_ip, rd) : -EINVAL;
        free(url);
        if (rc != 0) {
            free(rd);
            json_object_set_new(ip, "err", json_string(mig_strerror(rc)));
            r->ip_ended++;
        }
    }
    if (r->ip_ended == n)
        compare(r);
}

/* Every CN visited: read the jobs, then what NAPI says of the IPs they reserved. */
static void finish(struct doctor_run *r)
{
    if (!load_jobs(r)) {
        fail(r, MIG_EDB, "DatabaseError", "cannot read the jobs to compare with; nothing was %s",
             r->fix ? "fixed" : "judged");
        return;
    }
    ip_next(r);
}

static void visit_next(struct doctor_run *r);

/* The command of a visit's step. */
static char *fact_command(int step)
{
    switch (step) {
    case 0:
        return mig_cmd_doctor_snapshots(POOL);
    case 1:
        return mig_cmd_zoneadm_list();
    case 2:
        return mig_cmd_doctor_keys();
    case 3:
        return mig_cmd_doctor_zone_flags();
    default:
        return mig_cmd_doctor_resume_tokens(POOL);
    }
}

/* What the step's command is, for an error. */
static const char *fact_name(int step)
{
    static const char *names[DOCTOR_FACTS] = {"zfs list", "zoneadm list", "grep of the keys",
                                              "grep of the zones' XML",
                                              "zfs get receive_resume_token"};
    return step >= 0 && step < DOCTOR_FACTS ? names[step] : "a command";
}

static void visit_step(struct visit *v);

static void on_fact(void *arg, const struct mig_ssh_result *res)
{
    struct visit *v = arg;
    /* A zfs without resumable streams (zfs-fuse, an old platform) has no partial receive. */
    bool no_tokens = v->step == 4 && res->err_code == 0 && res->exit_status != 0 &&
                     res->err != NULL && strstr(res->err, "receive_resume_token") != NULL &&
                     (strstr(res->err, "invalid property") != NULL ||
                      strstr(res->err, "bad property") != NULL);
    if (res->err_code != 0) {
        v->err = mig_asprintf("ssh %s: %s", v->ip, res->detail);
    } else if (res->exit_status != 0 && !no_tokens) {
        v->err = mig_asprintf("%s on %s exited %d: %.*s", fact_name(v->step), v->host,
                              res->exit_status, (int)(res->err_len > 200 ? 200 : res->err_len),
                              res->err != NULL ? res->err : "");
    } else {
        size_t len = no_tokens ? 0 : res->out_len;
        char *t = mig_malloc(len + 1);
        if (len > 0)
            memcpy(t, res->out, len);
        t[len] = '\0';
        v->text[v->step] = t;
        v->step++;
    }
    visit_step(v);
}

/* Runs the visit's next command, or ends the visit. */
static void visit_step(struct visit *v)
{
    struct doctor_run *r = v->r;
    if (v->err == NULL && v->step < DOCTOR_FACTS) {
        char *cmd = fact_command(v->step);
        int rc = mig_ssh_exec(r->d->ssh, v->ip, cmd, NULL, 0, 120, on_fact, v);
        free(cmd);
        if (rc == 0)
            return;
        v->err = mig_asprintf("ssh %s: %s", v->ip, mig_strerror(rc));
    }
    r->ended++;
    visit_next(r);
}

/*
 * Starts visits while fewer than DOCTOR_PARALLEL run; once all ended, the
 * comparison.  A visit can end inside visit_step (a CN that cannot be
 * asked): that nested call returns at once, and this loop alone goes on and
 * finishes, since finish may free r.
 */
static void visit_next(struct doctor_run *r)
{
    if (r->starting)
        return;
    r->starting = true;
    while (r->started < r->n && r->started - r->ended < DOCTOR_PARALLEL)
        visit_step(&r->v[r->started++]);
    r->starting = false;
    if (r->ended == r->n)
        finish(r);
}

/* Whether the CN was asked for (by uuid or hostname); marks it found in want. */
static bool asked(struct doctor_run *r, const char *uuid, const char *host)
{
    if (r->want == NULL)
        return true;
    size_t i;
    json_t *w;
    json_array_foreach(r->want, i, w)
    {
        const char *s = json_string_value(w);
        if (s != NULL && (strcmp(s, uuid) == 0 || strcmp(s, host) == 0)) {
            json_array_set_new(r->want, i, json_null()); /* found */
            return true;
        }
    }
    return false;
}

/*
 * GETs url (taken; NULL when it could not be built), with the HTTP
 * client's default retries, for cb with r.  0, or a negative errno when it
 * cannot start.
 */
static int get(struct doctor_run *r, char *url, mig_http_cb cb)
{
    struct mig_http_req req = {.method = "GET", .url = url, .retries = -1};
    int rc = url != NULL ? mig_http_request(r->d->http, &req, cb, r) : -EINVAL;
    free(url);
    return rc;
}

/*
 * The doctor reads CNAPI's servers and VMAPI's VMs as lists: true when resp
 * is one, else false once the run failed as code, naming call and what the
 * answer should have been.
 */
static bool got_list(struct doctor_run *r, const struct mig_http_resp *resp, const char *code,
                     const char *call, const char *what)
{
    if (resp->err_code == 0 && resp->status == 200 && json_is_array(resp->json))
        return true;
    fail(r, MIG_EREFUSED, code, "%s: %s", call, resp->err_code != 0 ? resp->detail : what);
    return false;
}

static void on_servers(void *arg, const struct mig_http_resp *resp)
{
    struct doctor_run *r = arg;
    if (!got_list(r, resp, "CNAPIUnavailable", "CNAPI GET /servers",
                  "an answer that is not a list of servers"))
        return;
    size_t i;
    json_t *s;
    r->v = mig_calloc(json_array_size(resp->json) + 1, sizeof(*r->v));
    json_array_foreach(resp->json, i, s)
    {
        const char *uuid = json_string_value(json_object_get(s, "uuid"));
        const char *host = json_string_value(json_object_get(s, "hostname"));
        const char *ip = mig_server_admin_ip(s);
        if (uuid == NULL || host == NULL || !mig_uuid_valid(uuid) ||
            !json_is_true(json_object_get(s, "setup")) ||
            json_is_true(json_object_get(s, "headnode")) || !asked(r, uuid, host))
            continue;
        struct visit *v = &r->v[r->n++];
        v->r = r;
        snprintf(v->uuid, sizeof(v->uuid), "%s", uuid);
        snprintf(v->host, sizeof(v->host), "%s", host);
        if (ip == NULL || strlen(ip) >= sizeof(v->ip) ||
            strspn(ip, "0123456789abcdefABCDEF.:") != strlen(ip))
            v->err = mig_asprintf("CNAPI gives no usable admin IP for %s", host);
        else
            snprintf(v->ip, sizeof(v->ip), "%s", ip);
    }
    json_t *w;
    json_array_foreach(r->want, i, w)
        if (json_is_string(w)) {
            fail(r, -EINVAL, "ServerNotFound",
                 "\"%.64s\" is not a set-up compute node in CNAPI (a uuid or hostname)",
                 json_string_value(w));
            return;
        }
    if (r->n == 0) {
        finish(r);
        return;
    }
    visit_next(r);
}

static void on_vms(void *arg, const struct mig_http_resp *resp)
{
    struct doctor_run *r = arg;
    if (!got_list(r, resp, "VMAPIUnavailable", "VMAPI GET /vms",
                  "an answer that is not a list of VMs"))
        return;
    json_array_extend(r->vms, resp->json);
    int rc;
    if (json_array_size(resp->json) >= MIG_VMAPI_PAGE)
        rc = get(r, mig_url_vms_active(r->d->cfg->apis.vmapi, (long)json_array_size(r->vms)),
                 on_vms);
    else
        rc = get(r, mig_url_servers(r->d->cfg->apis.cnapi), on_servers);
    if (rc != 0)
        fail(r, rc, NULL, "cannot call the APIs: %s", mig_strerror(rc));
}

int doctor_start(struct migd *d, json_t *cns, bool fix, evac_cb cb, void *arg, char *err,
                 size_t errsz)
{
    if (d->ssh == NULL || d->http == NULL) {
        mig_errf(err, errsz, "the doctor needs migd's SSH and HTTP clients");
        return -ENOTSUP;
    }
    size_t i;
    json_t *c;
    json_array_foreach(cns, i, c)
        if (!json_is_string(c) || json_string_length(c) == 0 || json_string_length(c) > 255) {
            mig_errf(err, errsz, "cn must name compute nodes by uuid or hostname");
            return -EINVAL;
        }
    struct doctor_run *r = mig_calloc(1, sizeof(*r));
    r->d = d;
    r->cb = cb;
    r->arg = arg;
    r->t0 = mig_now_ms();
    r->fix = fix;
    r->vms = json_array();
    r->want = json_array_size(cns) > 0 ? json_deep_copy(cns) : NULL;
    int rc = get(r, mig_url_vms_active(d->cfg->apis.vmapi, 0), on_vms);
    if (rc != 0) {
        mig_errf(err, errsz, "cannot call VMAPI: %s", mig_strerror(rc));
        run_free(r);
        return rc;
    }
    return 0;
}
