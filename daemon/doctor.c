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
#define DOCTOR_FACTS 4    /* snapshots, zones, keys, zone flags */
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
    int64_t t0;
    bool fix;          /* POST /doctor/fix */
    json_t *report;    /* while fixing: the report being completed */
    size_t fixing;     /* the finding being fixed */
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
 * Every job on record, in the API's form; NULL when the database cannot
 * say (then nothing is compared: every migd snapshot would look orphaned).
 * *complete: no row is unreadable.
 */
static json_t *jobs_json(struct migd *d, bool *complete)
{
    struct mig_job_filter f = {.all = 1};
    struct mig_job **jobs = NULL;
    struct mig_bad_job *bad = NULL;
    size_t n = 0, nbad = 0;
    if (mig_store_job_list(d->store, &f, &jobs, &n) != 0)
        return NULL;
    *complete = mig_store_job_list_bad(d->store, &bad, &nbad) == 0 && nbad == 0;
    free(bad);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(out, mig_job_to_json(jobs[i]));
        mig_job_free(jobs[i]);
    }
    free(jobs);
    return out;
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

/* Fixes the next fixable finding, or answers once none is left. */
static void fix_next(struct doctor_run *r)
{
    json_t *findings = json_object_get(r->report, "findings");
    for (; r->fixing < json_array_size(findings); r->fixing++) {
        json_t *f = json_array_get(findings, r->fixing);
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

/* Every CN visited: compare, count, answer. */
static void finish(struct doctor_run *r)
{
    struct mig_doctor_cn *cns = mig_calloc(r->n > 0 ? r->n : 1, sizeof(*cns));
    json_t *checked = json_array();
    for (size_t i = 0; i < r->n; i++) {
        struct visit *v = &r->v[i];
        cns[i] = (struct mig_doctor_cn){v->host,    v->uuid,    v->text[0], v->text[1],
                                        v->text[2], v->text[3], v->err};
        json_array_append_new(checked, json_string(v->host));
    }
    bool complete = false;
    json_t *jobs = jobs_json(r->d, &complete);
    if (jobs == NULL) {
        free(cns);
        json_decref(checked);
        fail(r, MIG_EDB, "DatabaseError", "cannot read the jobs to compare with; nothing was %s",
             r->fix ? "fixed" : "judged");
        return;
    }
    json_t *findings = mig_doctor_findings(cns, r->n, r->vms, jobs, complete);
    json_decref(jobs);
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
    json_t *report = json_pack("{s:o, s:I, s:o, s:{s:i, s:i, s:i}, s:I}", "checked", checked,
                               "vms", (json_int_t)json_array_size(r->vms), "findings", findings,
                               "counts", "critical", counts[2], "warning", counts[1], "info",
                               counts[0], "took_ms", (json_int_t)(mig_now_ms() - r->t0));
    mig_log(MIG_LOG_INFO, NULL, NULL, "doctor: %zu CN(s), %zu findings (%d critical) in %lld ms",
            r->n, json_array_size(findings), counts[2], (long long)(mig_now_ms() - r->t0));
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
    default:
        return mig_cmd_doctor_zone_flags();
    }
}

static void visit_step(struct visit *v);

static void on_fact(void *arg, const struct mig_ssh_result *res)
{
    struct visit *v = arg;
    if (res->err_code != 0) {
        v->err = mig_asprintf("ssh %s: %s", v->ip, res->detail);
    } else if (res->exit_status != 0) {
        v->err = mig_asprintf("%s on %s exited %d: %.*s", v->step == 0 ? "zfs list" : "zoneadm",
                              v->host, res->exit_status, (int)(res->err_len > 200 ? 200 : res->err_len),
                              res->err != NULL ? res->err : "");
    } else {
        char *t = mig_malloc(res->out_len + 1);
        if (res->out_len > 0)
            memcpy(t, res->out, res->out_len);
        t[res->out_len] = '\0';
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
    if (r->ended == r->n)
        finish(r);
    else
        visit_next(r);
}

/* Starts visits while fewer than DOCTOR_PARALLEL run. */
static void visit_next(struct doctor_run *r)
{
    while (r->started < r->n && r->started - r->ended < DOCTOR_PARALLEL)
        visit_step(&r->v[r->started++]);
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

static void on_servers(void *arg, const struct mig_http_resp *resp)
{
    struct doctor_run *r = arg;
    if (resp->err_code != 0 || resp->status != 200 || !json_is_array(resp->json)) {
        fail(r, MIG_EREFUSED, "CNAPIUnavailable", "CNAPI GET /servers: %s",
             resp->err_code != 0 ? resp->detail : "an answer that is not a list of servers");
        return;
    }
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

static void on_vms(void *arg, const struct mig_http_resp *resp);

static int get(struct doctor_run *r, char *url, mig_http_cb cb)
{
    struct mig_http_req req = {.method = "GET", .url = url, .retries = -1};
    int rc = url != NULL ? mig_http_request(r->d->http, &req, cb, r) : -EINVAL;
    free(url);
    return rc;
}

static void on_vms(void *arg, const struct mig_http_resp *resp)
{
    struct doctor_run *r = arg;
    if (resp->err_code != 0 || resp->status != 200 || !json_is_array(resp->json)) {
        fail(r, MIG_EREFUSED, "VMAPIUnavailable", "VMAPI GET /vms: %s",
             resp->err_code != 0 ? resp->detail : "an answer that is not a list of VMs");
        return;
    }
    json_array_extend(r->vms, resp->json);
    int rc;
    if (json_array_size(resp->json) >= 1000)
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
