/*
 * steps.c: what each step of a migration does, in the order product.md
 * gives: validate, prepare, sync, switch, cleanup, plus the rollback that
 * undoes a job that failed before its switch and the deletion of the source
 * copy.  Each step reads as the operator's procedure; every remote command
 * comes from cn.h (validated, quoted) and every decision is recorded in
 * job->ctx and saved before the next action, so a step may run twice.
 */
#include <stdarg.h>
#include <stdint.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cn.h"
#include "err.h"
#include "log.h"
#include "steps.h"
#include "util.h"
#include "validate.h"

#define POOL "zones"

/* engine.c: persists the job and tells its watchers. */
void engine_job_changed(struct run *r);

static void step_prepare(struct run *r);
static void step_sync(struct run *r);
static void step_switch(struct run *r);
static void step_cleanup(struct run *r);

const struct step_def steps_table[MIG_PHASE_NPHASES] = {
    {MIG_PHASE_VALIDATE, step_validate,
     "check the VM, the target CN, capacity, platform and SSH to both CNs"},
    {MIG_PHASE_PREPARE, step_prepare,
     "record the VM's run state, reserve its IPs, install its image on the target"},
    {MIG_PHASE_SYNC, step_sync, "snapshot the VM's datasets and send them to the target"},
    {MIG_PHASE_SWITCH, step_switch,
     "stop on the source, send the last changes, attach and start on the target"},
    {MIG_PHASE_CLEANUP, step_cleanup,
     "remove the job's snapshots but the final one, restore IP reservations"},
};

/* ---- small helpers ---- */

static const char *ctx_str(struct run *r, const char *key)
{
    return json_string_value(json_object_get(r->job->ctx, key));
}

static void ctx_set_str(struct run *r, const char *key, const char *value)
{
    json_object_set_new(r->job->ctx, key, value != NULL ? json_string(value) : json_null());
}

static int64_t ctx_int(struct run *r, const char *key, int64_t dflt)
{
    json_t *v = json_object_get(r->job->ctx, key);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static void ctx_set_int(struct run *r, const char *key, int64_t value)
{
    json_object_set_new(r->job->ctx, key, json_integer(value));
}

static bool ctx_flag(struct run *r, const char *key)
{
    return json_is_true(json_object_get(r->job->ctx, key));
}

static void ctx_set_flag(struct run *r, const char *key, bool v)
{
    json_object_set_new(r->job->ctx, key, json_boolean(v));
}

/* A submission's job is not in the store yet, so its records carry no job uuid. */
#define jlog(r, level, ...)                                                                        \
    mig_log(level, (r)->submit_cb != NULL ? NULL : (r)->job->uuid, (r)->job->vm_uuid, __VA_ARGS__)

void steps_fail(struct run *r, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    mig_job_set_error(r->job, code, msg);
    jlog(r, MIG_LOG_ERROR, "%s: %s", code, msg);
    run_finish_step(r, MIG_EREFUSED);
}

static char *api_url(struct run *r, const char *base, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static char *api_url(struct run *r, const char *base, const char *fmt, ...)
{
    (void)r;
    char path[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    return mig_asprintf("%.*s%s", (int)n, base, path);
}

/* True when the last SSH command ran and exited 0. */
static bool ssh_ok(struct run *r)
{
    return r->ssh_err == 0 && r->ssh_status == 0;
}

/* A one-line account of the last SSH command's failure. */
static const char *ssh_why(struct run *r)
{
    static char why[512];
    if (r->ssh_err != 0) {
        snprintf(why, sizeof(why), "%s",
                 r->ssh_detail[0] ? r->ssh_detail : mig_strerror(r->ssh_err));
    } else {
        const char *e =
            r->ssh_errout != NULL && r->ssh_errout[0] != '\0' ? r->ssh_errout : "no message";
        snprintf(why, sizeof(why), "exit %d: %s", r->ssh_status, e);
    }
    for (char *p = why; *p != '\0'; p++)
        if (*p == '\n')
            *p = ' ';
    return why;
}

static const char *http_why(struct run *r)
{
    static char why[512];
    if (r->http_err != 0) {
        snprintf(why, sizeof(why), "%s", r->http_detail);
    } else {
        const char *msg = json_string_value(json_object_get(r->http_json, "message"));
        snprintf(why, sizeof(why), "HTTP %ld%s%s", r->http_status, msg ? ": " : "", msg ? msg : "");
    }
    return why;
}

static bool http_ok(struct run *r)
{
    return r->http_err == 0 && r->http_status >= 200 && r->http_status < 300;
}

/* The job's dataset number j (ctx "datasets"), or NULL. */
static const char *dataset_at(struct run *r, int j)
{
    return json_string_value(json_array_get(json_object_get(r->job->ctx, "datasets"), (size_t)j));
}

static int ndatasets(struct run *r)
{
    return (int)json_array_size(json_object_get(r->job->ctx, "datasets"));
}

/* zfs destroy -r of the VM's cores dataset (zones/cores/UUID). */
static char *cmd_destroy_cores(struct run *r)
{
    char cores[128];
    snprintf(cores, sizeof(cores), POOL "/cores/%s", r->job->vm_uuid);
    return mig_cmd_zfs_destroy(cores, true);
}

/* The VM's NIC number i (VMAPI's object), or NULL past the last. */
static json_t *vm_nic(struct run *r, int i)
{
    return json_array_get(json_object_get(r->vm, "nics"), (size_t)i);
}

static int vm_nnics(struct run *r)
{
    return (int)json_array_size(json_object_get(r->vm, "nics"));
}

/* NAPI's URL for the IP that rec (a NIC or an IP record) names; NULL when invalid. */
static char *napi_ip_url(struct run *r, json_t *rec)
{
    const char *net = json_string_value(json_object_get(rec, "network_uuid"));
    const char *ip = json_string_value(json_object_get(rec, "ip"));
    if (!mig_uuid_valid(net) || !mig_hostname_valid(ip))
        return NULL;
    return api_url(r, r->d->cfg->apis.napi, "/networks/%s/ips/%s", net, ip);
}

/* The NIC's MAC without colons, as NAPI's path wants it; false unless 12 hex digits. */
static bool nic_mac_bare(json_t *nic, char out[13])
{
    const char *mac = json_string_value(json_object_get(nic, "mac"));
    size_t k = 0;
    for (const char *p = mac; p != NULL && *p != '\0'; p++) {
        if (*p == ':')
            continue;
        bool hex = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F');
        if (!hex || k == 12)
            return false;
        out[k++] = *p;
    }
    out[k] = '\0';
    return k == 12;
}

static const char *src_ip(struct run *r)
{
    return ctx_str(r, "source_ip");
}

static const char *dst_ip(struct run *r)
{
    return ctx_str(r, "target_ip");
}

/* The VM's top-level datasets (zones/UUID and, for KVM, its disks) as a JSON array. */
static json_t *vm_datasets(json_t *vm, const char *vm_uuid)
{
    json_t *out = json_array();
    const char *fs = json_string_value(json_object_get(vm, "zfs_filesystem"));
    char def[128];
    snprintf(def, sizeof(def), POOL "/%s", vm_uuid);
    json_array_append_new(out, json_string(fs != NULL ? fs : def));
    json_t *disks = json_object_get(vm, "disks");
    size_t i;
    json_t *disk;
    json_array_foreach(disks, i, disk)
    {
        const char *dfs = json_string_value(json_object_get(disk, "zfs_filesystem"));
        const char *top = json_string_value(json_array_get(out, 0));
        size_t tl = strlen(top);
        /* bhyve disks live under zones/UUID and travel with it (-R). */
        if (dfs != NULL && !(strncmp(dfs, top, tl) == 0 && dfs[tl] == '/'))
            json_array_append_new(out, json_string(dfs));
    }
    return out;
}

static json_t *find_server(json_t *servers, const char *key)
{
    size_t i;
    json_t *s;
    json_array_foreach(servers, i, s)
    {
        const char *u = json_string_value(json_object_get(s, "uuid"));
        const char *h = json_string_value(json_object_get(s, "hostname"));
        if ((u != NULL && strcasecmp(u, key) == 0) || (h != NULL && strcmp(h, key) == 0))
            return s;
    }
    return NULL;
}

/* ---- load: the data every step needs, fetched at the start of a run ---- */

void step_load(struct run *r)
{
    const struct mig_config *cfg = r->d->cfg;
    RUN_BEGIN(r);
    RUN_AWAIT(r, run_http(r, "GET", api_url(r, cfg->apis.vmapi, "/vms/%s", r->job->vm_uuid), NULL));
    if (!http_ok(r)) {
        steps_fail(r, "VmapiError", "cannot read VM %s from VMAPI: %s", r->job->vm_uuid,
                   http_why(r));
        return;
    }
    json_decref(r->vm);
    r->vm = json_incref(r->http_json);
    RUN_AWAIT(r, run_http(r, "GET", api_url(r, cfg->apis.cnapi, "/servers?extras=capacity,sysinfo"),
                          NULL));
    if (!http_ok(r) || !json_is_array(r->http_json)) {
        steps_fail(r, "CnapiError", "cannot list servers from CNAPI: %s", http_why(r));
        return;
    }
    json_decref(r->servers);
    r->servers = json_incref(r->http_json);
    r->src = find_server(r->servers, r->job->source_server_uuid);
    r->dst = find_server(r->servers, r->job->target_server_uuid);
    if (r->src == NULL || r->dst == NULL) {
        steps_fail(r, MIG_RULE_TARGET_UNKNOWN, "CNAPI no longer lists server %s",
                   r->src == NULL ? r->job->source_server_uuid : r->job->target_server_uuid);
        return;
    }
    run_finish_step(r, 0);
    RUN_END(r);
}

/* ---- validate (at submission) ---- */

/* Chooses a target for the VM: the valid CN with the most unreserved RAM. */
static json_t *place(struct run *r, json_t *vm, json_t *src, int64_t disk_mib)
{
    json_t *best = NULL;
    int64_t best_ram = -1;
    size_t i;
    json_t *s;
    json_array_foreach(r->servers, i, s)
    {
        struct mig_refusal ignore;
        if (mig_validate_target(vm, src, s, disk_mib, r->job->allow_older_platform, &ignore) != 0)
            continue;
        int64_t ram = json_integer_value(json_object_get(s, "unreserved_ram"));
        if (ram > best_ram) {
            best = s;
            best_ram = ram;
        }
    }
    return best;
}

static void refuse(struct run *r, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void refuse(struct run *r, const char *rule, const char *fmt, ...)
{
    r->refusal.rule = rule;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->refusal.message, sizeof(r->refusal.message), fmt, ap);
    va_end(ap);
    run_finish_step(r, MIG_EREFUSED);
}

/* The VM's disk need in MiB: its quota (GiB) for zones, its disks for HVMs. */
static int64_t vm_disk_mib(json_t *vm)
{
    int64_t mib = json_integer_value(json_object_get(vm, "quota")) * 1024;
    size_t i;
    json_t *disk;
    json_array_foreach(json_object_get(vm, "disks"), i, disk) mib +=
        json_integer_value(json_object_get(disk, "size"));
    return mib;
}

void step_validate(struct run *r)
{
    const struct mig_config *cfg = r->d->cfg;
    struct mig_job *job = r->job;
    RUN_BEGIN(r);
    /* The VM: by uuid, or by alias when that is unique among active VMs. */
    if (mig_uuid_valid(job->vm_uuid)) {
        RUN_AWAIT(r,
                  run_http(r, "GET", api_url(r, cfg->apis.vmapi, "/vms/%s", job->vm_uuid), NULL));
        if (r->http_err == 0 && r->http_status == 404) {
            refuse(r, MIG_RULE_VM_UNKNOWN, "VMAPI has no VM %s", job->vm_uuid);
            return;
        }
        if (!http_ok(r)) {
            refuse(r, "VmapiError", "cannot read VM %s from VMAPI: %s", job->vm_uuid, http_why(r));
            return;
        }
        r->vm = json_incref(r->http_json);
    } else {
        const char *alias = job->vm_alias;
        bool alias_ok = alias != NULL && alias[0] != '\0' && strlen(alias) < 128;
        for (const char *p = alias; alias_ok && *p != '\0'; p++)
            if (!(*p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') ||
                  (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
                alias_ok = false;
        if (!alias_ok) {
            refuse(r, MIG_RULE_VM_UUID, "\"%s\" is neither a VM uuid nor a valid alias",
                   alias != NULL ? alias : "");
            return;
        }
        RUN_AWAIT(r,
                  run_http(r, "GET",
                           api_url(r, cfg->apis.vmapi, "/vms?alias=%s&state=active", job->vm_alias),
                           NULL));
        if (!http_ok(r) || !json_is_array(r->http_json)) {
            refuse(r, "VmapiError", "cannot list VMs from VMAPI: %s", http_why(r));
            return;
        }
        if (json_array_size(r->http_json) != 1) {
            refuse(r, json_array_size(r->http_json) == 0 ? MIG_RULE_VM_UNKNOWN : MIG_RULE_VM_UUID,
                   "%zu active VMs have the alias %s; give the VM's uuid",
                   json_array_size(r->http_json), job->vm_alias);
            return;
        }
        r->vm = json_incref(json_array_get(r->http_json, 0));
        const char *u = json_string_value(json_object_get(r->vm, "uuid"));
        if (!mig_uuid_valid(u)) {
            refuse(r, "VmapiError", "VMAPI returned a VM without a valid uuid");
            return;
        }
        snprintf(job->vm_uuid, sizeof(job->vm_uuid), "%s", u);
    }
    {
        json_object_set_new(job->ctx, "datasets", vm_datasets(r->vm, job->vm_uuid));
        const char *alias = json_string_value(json_object_get(r->vm, "alias"));
        free(job->vm_alias);
        job->vm_alias = mig_strdup(alias != NULL ? alias : "");
        const char *brand = json_string_value(json_object_get(r->vm, "brand"));
        snprintf(job->brand, sizeof(job->brand), "%s", brand != NULL ? brand : "");
        char holder[MIG_UUID_LEN + 1];
        if (mig_store_job_holding_vm(r->d->store, job->vm_uuid, holder) == 0) {
            refuse(r, MIG_RULE_VM_BUSY, "VM %s already has unfinished job %s; see migctl show %s",
                   job->vm_uuid, holder, holder);
            return;
        }
        if (mig_validate_vm(r->vm, NULL, &r->refusal) != 0) {
            run_finish_step(r, MIG_EREFUSED);
            return;
        }
    }
    RUN_AWAIT(r, run_http(r, "GET", api_url(r, cfg->apis.cnapi, "/servers?extras=capacity,sysinfo"),
                          NULL));
    if (!http_ok(r) || !json_is_array(r->http_json)) {
        refuse(r, "CnapiError", "cannot list servers from CNAPI: %s", http_why(r));
        return;
    }
    r->servers = json_incref(r->http_json);
    {
        const char *su = json_string_value(json_object_get(r->vm, "server_uuid"));
        r->src = su != NULL ? find_server(r->servers, su) : NULL;
        if (r->src == NULL) {
            refuse(r, "SourceNotFound", "CNAPI does not list the VM's server %s",
                   su != NULL ? su : "(none)");
            return;
        }
        const char *want = json_string_value(json_object_get(job->ctx, "target_request"));
        int64_t disk = vm_disk_mib(r->vm);
        if (want != NULL && want[0] != '\0') {
            r->dst = find_server(r->servers, want);
            if (r->dst == NULL) {
                refuse(r, MIG_RULE_TARGET_UNKNOWN, "CNAPI has no server with uuid or hostname %s",
                       want);
                return;
            }
        } else {
            r->dst = place(r, r->vm, r->src, disk);
            if (r->dst == NULL) {
                refuse(r, MIG_RULE_TARGET_UNKNOWN, "no CN can take VM %s; name a target",
                       job->vm_uuid);
                return;
            }
        }
        if (mig_validate_target(r->vm, r->src, r->dst, disk, job->allow_older_platform,
                                &r->refusal) != 0) {
            run_finish_step(r, MIG_EREFUSED);
            return;
        }
        const char *sip = mig_server_admin_ip(r->src);
        const char *dip = mig_server_admin_ip(r->dst);
        if (!mig_hostname_valid(sip) || !mig_hostname_valid(dip)) {
            refuse(r, MIG_RULE_UNREACHABLE, "CNAPI gives no valid admin IP for %s",
                   !mig_hostname_valid(sip) ? "the source" : "the target");
            return;
        }
        ctx_set_str(r, "source_ip", sip);
        ctx_set_str(r, "target_ip", dip);
        snprintf(job->source_server_uuid, sizeof(job->source_server_uuid), "%s",
                 json_string_value(json_object_get(r->src, "uuid")));
        snprintf(job->target_server_uuid, sizeof(job->target_server_uuid), "%s",
                 json_string_value(json_object_get(r->dst, "uuid")));
        free(job->source_hostname);
        free(job->target_hostname);
        job->source_hostname = mig_strdup(json_string_value(json_object_get(r->src, "hostname")));
        job->target_hostname = mig_strdup(json_string_value(json_object_get(r->dst, "hostname")));
    }
    /* SSH to both CNs (host keys checked); the source also tells the data size. */
    RUN_AWAIT(r, run_ssh(r, src_ip(r), mig_cmd_zfs_list_tree(dataset_at(r, 0)), NULL));
    if (r->ssh_err != 0) {
        refuse(r, r->ssh_err == MIG_EHOSTKEY ? MIG_RULE_HOSTKEY : MIG_RULE_UNREACHABLE,
               "cannot reach source CN %s (%s): %s", job->source_hostname, src_ip(r), ssh_why(r));
        return;
    }
    if (r->ssh_status != 0) {
        refuse(r, "SourceDatasetMissing", "source CN %s has no dataset for VM %s: %s",
               job->source_hostname, job->vm_uuid, ssh_why(r));
        return;
    }
    {
        struct mig_zfs_dataset *ds = NULL;
        int n = mig_parse_zfs_list(r->ssh_out, &ds);
        if (n > 0)
            job->progress.bytes_total = (int64_t)ds[0].used;
        if (n > 0 && ds[0].origin[0] != '\0')
            ctx_set_str(r, "origin", ds[0].origin);
        free(ds);
    }
    RUN_AWAIT(r, run_ssh(r, dst_ip(r), mig_cmd_vmadm_get(job->vm_uuid), NULL));
    if (r->ssh_err != 0) {
        refuse(r, r->ssh_err == MIG_EHOSTKEY ? MIG_RULE_HOSTKEY : MIG_RULE_UNREACHABLE,
               "cannot reach target CN %s (%s): %s", job->target_hostname, dst_ip(r), ssh_why(r));
        return;
    }
    if (r->ssh_status == 0) {
        refuse(r, "TargetHasVm", "target CN %s already has a VM %s", job->target_hostname,
               job->vm_uuid);
        return;
    }
    {
        /* The plan: what will happen, for --dry-run and the job's first log lines. */
        double secs = (double)job->progress.bytes_total / (100.0 * 1024 * 1024);
        r->plan = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:O, s:I, s:I, s:o}", "vm_uuid",
                            job->vm_uuid, "vm_alias", job->vm_alias, "brand", job->brand, "source",
                            job->source_hostname, "target", job->target_hostname, "mode",
                            mig_mode_name(job->mode), "origin",
                            ctx_str(r, "origin") ? ctx_str(r, "origin") : "", "datasets",
                            json_object_get(job->ctx, "datasets"), "bytes_total",
                            (json_int_t)job->progress.bytes_total, "estimate_s",
                            (json_int_t)(secs + 1), "steps", json_array());
        for (int i = 0; i < MIG_PHASE_NPHASES; i++)
            json_array_append_new(json_object_get(r->plan, "steps"),
                                  json_pack("{s:s, s:s}", "phase",
                                            mig_phase_name(steps_table[i].phase), "does",
                                            steps_table[i].does));
    }
    run_finish_step(r, 0);
    RUN_END(r);
}

/* ---- prepare ---- */

static void step_prepare(struct run *r)
{
    struct mig_job *job = r->job;
    RUN_BEGIN(r);
    /* Whether the VM runs now decides whether it is started on the target. */
    if (job->vm_was_running < 0) {
        RUN_AWAIT(r, run_ssh(r, src_ip(r), mig_cmd_vmadm_get(job->vm_uuid), NULL));
        if (!ssh_ok(r)) {
            steps_fail(r, "SourceVmadmFailed", "vmadm get on %s: %s", job->source_hostname,
                       ssh_why(r));
            return;
        }
        json_t *vm = json_loads(r->ssh_out, 0, NULL);
        const char *state = json_string_value(json_object_get(vm, "state"));
        job->vm_was_running = state != NULL && strcmp(state, "running") == 0;
        json_decref(vm);
        engine_job_changed(r);
    }
    /* Reserve each IP, recording first whether it was reserved before. */
    if (json_object_get(job->ctx, "ips") == NULL)
        json_object_set_new(job->ctx, "ips", json_array());
    for (r->loop_i = 0; r->loop_i < vm_nnics(r); r->loop_i++) {
        {
            json_t *nic = vm_nic(r, r->loop_i);
            const char *ip = json_string_value(json_object_get(nic, "ip"));
            if (ip == NULL)
                continue;
            size_t k;
            json_t *rec;
            bool known = false;
            json_array_foreach(json_object_get(job->ctx, "ips"), k, rec) known =
                known || strcmp(json_string_value(json_object_get(rec, "ip")), ip) == 0;
            if (known)
                continue; /* recorded before a restart: its prior state is already kept */
        }
        RUN_AWAIT(r, run_http(r, "GET", napi_ip_url(r, vm_nic(r, r->loop_i)), NULL));
        if (!http_ok(r)) {
            steps_fail(r, "NapiError", "cannot read IP from NAPI: %s", http_why(r));
            return;
        }
        {
            json_t *nic = vm_nic(r, r->loop_i);
            json_array_append_new(
                json_object_get(job->ctx, "ips"),
                json_pack("{s:O, s:O, s:b}", "ip", json_object_get(nic, "ip"), "network_uuid",
                          json_object_get(nic, "network_uuid"), "reserved_before",
                          json_is_true(json_object_get(r->http_json, "reserved"))));
            engine_job_changed(r); /* recorded before it is changed */
        }
        RUN_AWAIT(r, run_http(r, "PUT", napi_ip_url(r, vm_nic(r, r->loop_i)),
                              json_pack("{s:b}", "reserved", 1)));
        if (!http_ok(r)) {
            steps_fail(r, "NapiError", "cannot reserve IP in NAPI: %s", http_why(r));
            return;
        }
    }
    /* The origin image on the target lets the first send be an incremental. */
    {
        const char *img = mig_vm_image_uuid(r->vm);
        const char *origin = ctx_str(r, "origin");
        char want[128];
        snprintf(want, sizeof(want), POOL "/%s@final", img != NULL ? img : "");
        if (img == NULL || origin == NULL || strcmp(origin, want) != 0) {
            ctx_set_str(r, "send_from", NULL);
            engine_job_changed(r);
            run_finish_step(r, 0);
            return;
        }
    }
    RUN_AWAIT(r, run_ssh(r, dst_ip(r), mig_cmd_imgadm_import(mig_vm_image_uuid(r->vm)), NULL));
    if (!ssh_ok(r)) {
        /* Without the image the first send is a full one: slower, still right. */
        jlog(r, MIG_LOG_WARN, "imgadm import on %s failed (%s); sending the full stream",
             job->target_hostname, ssh_why(r));
        ctx_set_str(r, "send_from", NULL);
    } else {
        ctx_set_str(r, "send_from", ctx_str(r, "origin"));
    }
    engine_job_changed(r);
    run_finish_step(r, 0);
    RUN_END(r);
}

/* ---- sync ---- */

/* The name of this job's snapshot `n` ("1", "2", ... or "final"). */
static void snap_name(struct run *r, const char *n, char out[128])
{
    snprintf(out, 128, "migd-%s-%s", r->job->uuid, n);
}

/* The job's snapshots taken so far (ctx "snaps"), created when absent. */
static json_t *snaps(struct run *r)
{
    json_t *s = json_object_get(r->job->ctx, "snaps");
    if (s == NULL) {
        s = json_array();
        json_object_set_new(r->job->ctx, "snaps", s);
    }
    return s;
}

/*
 * Prepares a round of send_round: this job's snapshot `n`, taken on the CN
 * at from_ip and sent to the CN at to_ip (the target, or the source when a
 * switched VM goes back).
 */
static void begin_round(struct run *r, const char *n, const char *from_ip, const char *to_ip)
{
    char name[128];
    snap_name(r, n, name);
    ctx_set_str(r, "round_snap", name);
    ctx_set_str(r, "round_src", from_ip);
    ctx_set_str(r, "round_dst", to_ip);
}

/*
 * Sub-step: snapshots every dataset as ctx "round_snap" on "round_src" and
 * sends each to "round_dst", incrementally from ctx "last_snap" (or, the
 * first time, from the image origin when it is installed there).  On
 * success last_snap becomes round_snap.
 */
static int send_round(struct run *r)
{
    char snap[128];
    SUB_BEGIN(r);
    for (r->loop_j = 0; r->loop_j < ndatasets(r); r->loop_j++) {
        SUB_AWAIT(r, run_ssh(r, ctx_str(r, "round_src"),
                             mig_cmd_zfs_list_snapshots(dataset_at(r, r->loop_j)), NULL));
        if (!ssh_ok(r)) {
            snprintf(r->ssh_detail, sizeof(r->ssh_detail), "%s", ssh_why(r));
            r->ssh_err = r->sub_err = MIG_EREMOTE;
            return 1;
        }
        snprintf(snap, sizeof(snap), "%s@%s", dataset_at(r, r->loop_j), ctx_str(r, "round_snap"));
        if (strstr(r->ssh_out, snap) != NULL)
            continue; /* taken before a restart */
        SUB_AWAIT(r,
                  run_ssh(r, ctx_str(r, "round_src"),
                          mig_cmd_zfs_snapshot(dataset_at(r, r->loop_j), ctx_str(r, "round_snap")),
                          NULL));
        if (!ssh_ok(r)) {
            snprintf(r->ssh_detail, sizeof(r->ssh_detail), "%s", ssh_why(r));
            r->ssh_err = r->sub_err = MIG_EREMOTE;
            return 1;
        }
    }
    json_array_append_new(snaps(r), json_string(ctx_str(r, "round_snap")));
    if (strcmp(ctx_str(r, "round_dst"), dst_ip(r)) == 0)
        ctx_set_flag(r, "target_has_data", true); /* from here a rollback cleans the target */
    engine_job_changed(r);
    for (r->loop_j = 0; r->loop_j < ndatasets(r); r->loop_j++) {
        {
            char from[140] = "";
            if (ctx_str(r, "last_snap") != NULL)
                snprintf(from, sizeof(from), "@%s", ctx_str(r, "last_snap"));
            else if (r->loop_j == 0 && ctx_str(r, "send_from") != NULL)
                snprintf(from, sizeof(from), "%s", ctx_str(r, "send_from"));
            ctx_set_str(r, "round_from", from[0] != '\0' ? from : NULL);
            jlog(r, MIG_LOG_INFO, "sending %s@%s from %s", dataset_at(r, r->loop_j),
                 ctx_str(r, "round_snap"), from[0] != '\0' ? from : "nothing (full stream)");
        }
        SUB_AWAIT(r, run_relay(r, ctx_str(r, "round_src"),
                               mig_cmd_zfs_send(dataset_at(r, r->loop_j), ctx_str(r, "round_snap"),
                                                ctx_str(r, "round_from")),
                               ctx_str(r, "round_dst"), mig_cmd_zfs_receive(POOL, true)));
        if (r->relay_err != 0) {
            r->ssh_err = r->relay_err; /* ssh_detail already says why */
            r->sub_err = r->relay_err;
            return 1;
        }
    }
    ctx_set_str(r, "last_snap", ctx_str(r, "round_snap"));
    engine_job_changed(r);
    SUB_END(r);
}

static void step_sync(struct run *r)
{
    struct mig_job *job = r->job;
    RUN_BEGIN(r);
    if (ctx_str(r, "last_snap") == NULL) {
        begin_round(r, "1", src_ip(r), dst_ip(r));
        RUN_CALL(r, send_round);
        if (r->sub_err != 0) {
            steps_fail(r, "SyncFailed", "sending %s to %s failed: %s", job->vm_uuid,
                       job->target_hostname, ssh_why(r));
            return;
        }
    }
    /* Incremental modes: send the differences until it is time to switch. */
    while (job->mode != MIG_MODE_FULL && !job->finish_requested && !job->abort_requested) {
        if (job->mode == MIG_MODE_AUTO && job->progress.increments >= 1 &&
            ctx_int(r, "last_delta", INT64_MAX) < r->d->cfg->incremental.auto_switch_bytes)
            break;
        if (job->mode == MIG_MODE_INCREMENTAL && job->state == MIG_JOB_RUNNING) {
            mig_job_apply(job, MIG_EV_SYNCED);
            engine_job_changed(r);
        }
        RUN_AWAIT(r, run_sleep(r, (uint64_t)r->d->cfg->incremental.interval_s * 1000));
        if (job->finish_requested || job->abort_requested)
            break;
        {
            char n[24];
            snprintf(n, sizeof(n), "%d", job->progress.increments + 2);
            begin_round(r, n, src_ip(r), dst_ip(r));
            ctx_set_int(r, "round_base", job->progress.bytes_sent);
        }
        RUN_CALL(r, send_round);
        if (r->sub_err != 0) {
            steps_fail(r, "SyncFailed", "incremental send of %s failed: %s", job->vm_uuid,
                       ssh_why(r));
            return;
        }
        job->progress.increments++;
        ctx_set_int(r, "last_delta", job->progress.bytes_sent - ctx_int(r, "round_base", 0));
        engine_job_changed(r);
    }
    if (job->abort_requested) {
        steps_fail(r, "Aborted", "aborted by the operator");
        return;
    }
    if (job->state == MIG_JOB_WAITING)
        mig_job_apply(job, MIG_EV_FINISH);
    run_finish_step(r, 0);
    RUN_END(r);
}

/* ---- switch: the only downtime ---- */

/* Ends record_inventory with a failure whose reason ssh_why() will give. */
static int inventory_failed(struct run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int inventory_failed(struct run *r, const char *fmt, ...)
{
    char why[sizeof(r->ssh_detail)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    memcpy(r->ssh_detail, why, sizeof(why));
    r->ssh_err = r->sub_err = MIG_EAPI;
    return 1;
}

/*
 * Sub-step: records where the VM now lives (ctx "inv_ip", "inv_server"):
 * VMAPI gets that CN's `vmadm get` with server_uuid set (PUT replaces the
 * object) and is read back to verify; then each NIC's cn_uuid in NAPI.  On
 * failure r->sub_err is set and ssh_why() says why.
 */
static int record_inventory(struct run *r)
{
    struct mig_job *job = r->job;
    const struct mig_config *cfg = r->d->cfg;
    SUB_BEGIN(r);
    SUB_AWAIT(r, run_ssh(r, ctx_str(r, "inv_ip"), mig_cmd_vmadm_get(job->vm_uuid), NULL));
    {
        json_t *vm = ssh_ok(r) ? json_loads(r->ssh_out, 0, NULL) : NULL;
        if (!json_is_object(vm)) {
            json_decref(vm);
            return inventory_failed(r, "vmadm get on %s: %s", ctx_str(r, "inv_ip"), ssh_why(r));
        }
        json_object_set_new(vm, "server_uuid", json_string(ctx_str(r, "inv_server")));
        json_object_set_new(job->ctx, "vmapi_body", vm);
    }
    SUB_AWAIT(r, run_http(r, "PUT", api_url(r, cfg->apis.vmapi, "/vms/%s", job->vm_uuid),
                          json_incref(json_object_get(job->ctx, "vmapi_body"))));
    json_object_del(job->ctx, "vmapi_body");
    if (!http_ok(r))
        return inventory_failed(r, "VMAPI PUT /vms/%s: %s", job->vm_uuid, http_why(r));
    SUB_AWAIT(r, run_http(r, "GET", api_url(r, cfg->apis.vmapi, "/vms/%s", job->vm_uuid), NULL));
    {
        const char *su = json_string_value(json_object_get(r->http_json, "server_uuid"));
        if (!http_ok(r) || su == NULL || strcasecmp(su, ctx_str(r, "inv_server")) != 0)
            return inventory_failed(r, "VMAPI does not name %s after PUT: %s",
                                    ctx_str(r, "inv_server"),
                                    http_ok(r) ? "server_uuid unchanged" : http_why(r));
    }
    ctx_set_flag(r, "inventoried", true);
    engine_job_changed(r);
    for (r->loop_i = 0; r->loop_i < vm_nnics(r); r->loop_i++) {
        {
            char bare[13];
            if (!nic_mac_bare(vm_nic(r, r->loop_i), bare)) {
                jlog(r, MIG_LOG_WARN, "NIC %d has no valid MAC; not updated in NAPI", r->loop_i);
                continue;
            }
            ctx_set_str(r, "nic_mac", bare);
        }
        SUB_AWAIT(r,
                  run_http(r, "PUT", api_url(r, cfg->apis.napi, "/nics/%s", ctx_str(r, "nic_mac")),
                           json_pack("{s:s}", "cn_uuid", ctx_str(r, "inv_server"))));
        if (!http_ok(r))
            jlog(r, MIG_LOG_WARN, "NAPI PUT /nics/%s: %s", ctx_str(r, "nic_mac"), http_why(r));
    }
    SUB_END(r);
}

static void step_switch(struct run *r)
{
    struct mig_job *job = r->job;
    RUN_BEGIN(r);
    if (!ctx_flag(r, "stopped")) {
        ctx_set_int(r, "stop_ms", mig_now_ms());
        {
            json_t *ab = json_object_get(r->vm, "autoboot");
            ctx_set_flag(r, "autoboot_before", ab == NULL || json_is_true(ab));
        }
        engine_job_changed(r);
        if (job->vm_was_running == 1) {
            jlog(r, MIG_LOG_INFO, "stopping %s on %s", job->vm_uuid, job->source_hostname);
            RUN_AWAIT(r, run_ssh(r, src_ip(r), mig_cmd_vmadm_stop(job->vm_uuid, false), NULL));
            if (!ssh_ok(r)) {
                steps_fail(r, "StopFailed", "vmadm stop on %s: %s", job->source_hostname,
                           ssh_why(r));
                return;
            }
        }
        ctx_set_flag(r, "stopped", true);
        engine_job_changed(r);
    }
    {
        char name[128];
        snap_name(r, "final", name);
        if (ctx_str(r, "last_snap") != NULL && strcmp(ctx_str(r, "last_snap"), name) == 0)
            goto sent;
        begin_round(r, "final", src_ip(r), dst_ip(r));
    }
    RUN_CALL(r, send_round);
    if (r->sub_err != 0) {
        steps_fail(r, "SwitchSendFailed", "final send of %s failed: %s", job->vm_uuid, ssh_why(r));
        return;
    }
sent:
    if (!ctx_flag(r, "zone_configured")) {
        RUN_AWAIT(r, run_ssh(r, src_ip(r), mig_cmd_zonecfg_export(job->vm_uuid), NULL));
        if (!ssh_ok(r)) {
            steps_fail(r, "ZonecfgFailed", "zonecfg export on %s: %s", job->source_hostname,
                       ssh_why(r));
            return;
        }
        ctx_set_str(r, "zonecfg", r->ssh_out);
        ctx_set_flag(r, "zone_configured", true); /* before: a rollback deletes it either way */
        engine_job_changed(r);
        RUN_AWAIT(r, run_ssh(r, dst_ip(r), mig_cmd_zonecfg_import(job->vm_uuid, "/dev/stdin"),
                             ctx_str(r, "zonecfg")));
        if (!ssh_ok(r)) {
            steps_fail(r, "ZonecfgFailed", "zonecfg -f on %s: %s", job->target_hostname,
                       ssh_why(r));
            return;
        }
    }
    if (!ctx_flag(r, "cores_created")) {
        RUN_AWAIT(r, run_ssh(r, dst_ip(r), mig_cmd_zfs_create_cores(POOL, job->vm_uuid), NULL));
        if (!ssh_ok(r) && strstr(r->ssh_errout, "exists") == NULL) {
            steps_fail(r, "CoresFailed", "creating the cores dataset on %s: %s",
                       job->target_hostname, ssh_why(r));
            return;
        }
        ctx_set_flag(r, "cores_created", true);
        engine_job_changed(r);
    }
    /* The source is made unbootable before the target is attached. */
    if (!ctx_flag(r, "source_disabled")) {
        ctx_set_flag(r, "source_disabled", true);
        engine_job_changed(r);
        RUN_AWAIT(r, run_ssh(r, src_ip(r), mig_cmd_zonecfg_autoboot(job->vm_uuid, false), NULL));
        if (!ssh_ok(r)) {
            steps_fail(r, "DisableSourceFailed", "autoboot off on %s: %s", job->source_hostname,
                       ssh_why(r));
            return;
        }
        RUN_AWAIT(r, run_ssh(r, src_ip(r), mig_cmd_zonecfg_do_not_inventory(job->vm_uuid), NULL));
        if (!ssh_ok(r)) {
            steps_fail(r, "DisableSourceFailed", "do-not-inventory on %s: %s", job->source_hostname,
                       ssh_why(r));
            return;
        }
    }
    if (!ctx_flag(r, "attached")) {
        ctx_set_flag(r, "attached", true);
        engine_job_changed(r);
        RUN_AWAIT(r, run_ssh(r, dst_ip(r), mig_cmd_zoneadm_attach(job->vm_uuid), NULL));
        if (!ssh_ok(r)) {
            steps_fail(r, "AttachFailed", "zoneadm attach on %s: %s", job->target_hostname,
                       ssh_why(r));
            return;
        }
    }
    /* Inventory: VMAPI names the target, NAPI's NICs live on it. */
    ctx_set_str(r, "inv_ip", dst_ip(r));
    ctx_set_str(r, "inv_server", job->target_server_uuid);
    RUN_CALL(r, record_inventory);
    if (r->sub_err != 0) {
        steps_fail(r, "InventoryFailed", "%s", ssh_why(r));
        return;
    }
    if (job->vm_was_running == 1) {
        RUN_AWAIT(r, run_ssh(r, dst_ip(r), mig_cmd_vmadm_start(job->vm_uuid), NULL));
        if (!ssh_ok(r)) {
            steps_fail(r, "StartFailed", "vmadm start on %s: %s", job->target_hostname, ssh_why(r));
            return;
        }
    }
    job->downtime_ms = mig_now_ms() - ctx_int(r, "stop_ms", mig_now_ms());
    jlog(r, MIG_LOG_INFO, "VM %s is %s on %s after %lld ms of downtime", job->vm_uuid,
         job->vm_was_running == 1 ? "running" : "installed", job->target_hostname,
         (long long)job->downtime_ms);
    engine_job_changed(r);
    run_finish_step(r, 0);
    RUN_END(r);
}

/* ---- cleanup ---- */

/* The job's record of IP number i: {ip, network_uuid, reserved_before}. */
static json_t *ip_rec(struct run *r, int i)
{
    return json_array_get(json_object_get(r->job->ctx, "ips"), (size_t)i);
}

/* Sub-step: restores each IP's reserved flag as it was before the job. */
static int restore_ips(struct run *r)
{
    SUB_BEGIN(r);
    for (r->loop_j = 0; (size_t)r->loop_j < json_array_size(json_object_get(r->job->ctx, "ips"));
         r->loop_j++) {
        SUB_AWAIT(r, run_http(r, "PUT", napi_ip_url(r, ip_rec(r, r->loop_j)),
                              json_pack("{s:O}", "reserved",
                                        json_object_get(ip_rec(r, r->loop_j), "reserved_before"))));
        if (!http_ok(r)) {
            jlog(r, MIG_LOG_ERROR, "restoring an IP reservation: %s", http_why(r));
            r->sub_err = MIG_EAPI;
        }
    }
    SUB_END(r);
}

/*
 * Sub-step: destroys the job's snapshots on host (ctx key of the IP), all
 * of them or all but the final one.  Failures are logged, not fatal.
 */
static int destroy_snaps(struct run *r)
{
    SUB_BEGIN(r);
    for (r->loop_i = 0; (size_t)r->loop_i < json_array_size(snaps(r)); r->loop_i++) {
        if (ctx_flag(r, "keep_final") &&
            strstr(json_string_value(json_array_get(snaps(r), (size_t)r->loop_i)), "-final") !=
                NULL)
            continue;
        for (r->loop_j = 0; r->loop_j < ndatasets(r); r->loop_j++) {
            SUB_AWAIT(r, run_ssh(r, ctx_str(r, "destroy_on"),
                                 mig_cmd_zfs_destroy_snapshot(
                                     dataset_at(r, r->loop_j),
                                     json_string_value(json_array_get(snaps(r), (size_t)r->loop_i)),
                                     true),
                                 NULL));
            if (!ssh_ok(r) && strstr(r->ssh_errout, "could not find") == NULL &&
                strstr(r->ssh_errout, "does not exist") == NULL)
                jlog(r, MIG_LOG_WARN, "destroying a snapshot on %s: %s", ctx_str(r, "destroy_on"),
                     ssh_why(r));
        }
    }
    SUB_END(r);
}

static void step_cleanup(struct run *r)
{
    RUN_BEGIN(r);
    ctx_set_flag(r, "keep_final", true);
    ctx_set_str(r, "destroy_on", src_ip(r));
    RUN_CALL(r, destroy_snaps);
    ctx_set_str(r, "destroy_on", dst_ip(r));
    RUN_CALL(r, destroy_snaps);
    RUN_CALL(r, restore_ips);
    if (r->sub_err != 0) {
        steps_fail(r, "NapiError", "could not restore every IP reservation; see migctl log %s",
                   r->job->uuid);
        return;
    }
    run_finish_step(r, 0);
    RUN_END(r);
}

/* ---- rollback: undo a job that failed or was aborted before its switch ---- */

void step_rollback(struct run *r)
{
    struct mig_job *job = r->job;
    RUN_BEGIN(r);
    jlog(r, MIG_LOG_WARN, "rolling back: the VM stays on %s",
         job->source_hostname != NULL ? job->source_hostname : "its source");
    if (src_ip(r) == NULL || dst_ip(r) == NULL) {
        run_finish_step(r, 0); /* nothing was done on any CN */
        return;
    }
    if (ctx_flag(r, "attached")) {
        RUN_AWAIT(r, run_ssh(r, dst_ip(r), mig_cmd_zoneadm_detach(job->vm_uuid), NULL));
        if (!ssh_ok(r))
            jlog(r, MIG_LOG_WARN, "zoneadm detach on the target: %s", ssh_why(r));
    }
    if (ctx_flag(r, "zone_configured")) {
        RUN_AWAIT(r, run_ssh(r, dst_ip(r), mig_cmd_zonecfg_delete(job->vm_uuid), NULL));
        if (!ssh_ok(r))
            jlog(r, MIG_LOG_WARN, "zonecfg delete on the target: %s", ssh_why(r));
    }
    if (ctx_flag(r, "cores_created")) {
        RUN_AWAIT(r, run_ssh(r, dst_ip(r), cmd_destroy_cores(r), NULL));
    }
    if (ctx_flag(r, "target_has_data")) {
        for (r->loop_i = 0; r->loop_i < ndatasets(r); r->loop_i++) {
            RUN_AWAIT(r, run_ssh(r, dst_ip(r), mig_cmd_zfs_destroy(dataset_at(r, r->loop_i), true),
                                 NULL));
            if (!ssh_ok(r))
                jlog(r, MIG_LOG_WARN, "destroying %s on the target: %s", dataset_at(r, r->loop_i),
                     ssh_why(r));
        }
    }
    if (ctx_flag(r, "source_disabled")) {
        RUN_AWAIT(r, run_ssh(r, src_ip(r),
                             mig_cmd_zonecfg_autoboot(job->vm_uuid, ctx_flag(r, "autoboot_before")),
                             NULL));
        RUN_AWAIT(r, run_ssh(r, src_ip(r), mig_cmd_zonecfg_allow_inventory(job->vm_uuid), NULL));
    }
    ctx_set_flag(r, "keep_final", false);
    ctx_set_str(r, "destroy_on", src_ip(r));
    RUN_CALL(r, destroy_snaps);
    RUN_CALL(r, restore_ips);
    if (ctx_flag(r, "stopped") && job->vm_was_running == 1) {
        RUN_AWAIT(r, run_ssh(r, src_ip(r), mig_cmd_vmadm_start(job->vm_uuid), NULL));
        if (!ssh_ok(r))
            jlog(r, MIG_LOG_ERROR, "could not start the VM again on the source: %s", ssh_why(r));
    }
    run_finish_step(r, 0);
    RUN_END(r);
}

/* ---- cleanup of the source copy (migctl cleanup, --cleanup-source) ---- */

void step_cleanup_source(struct run *r)
{
    struct mig_job *job = r->job;
    RUN_BEGIN(r);
    RUN_AWAIT(r, run_ssh(r, src_ip(r), mig_cmd_zonecfg_delete(job->vm_uuid), NULL));
    if (!ssh_ok(r)) {
        steps_fail(r, "CleanupFailed", "zonecfg delete on %s: %s", job->source_hostname,
                   ssh_why(r));
        return;
    }
    /* The cores dataset is mounted inside the zone's: it goes first. */
    RUN_AWAIT(r, run_ssh(r, src_ip(r), cmd_destroy_cores(r), NULL));
    for (r->loop_i = 0; r->loop_i < ndatasets(r); r->loop_i++) {
        RUN_AWAIT(r,
                  run_ssh(r, src_ip(r), mig_cmd_zfs_destroy(dataset_at(r, r->loop_i), true), NULL));
        if (!ssh_ok(r) && strstr(r->ssh_errout, "does not exist") == NULL) {
            steps_fail(r, "CleanupFailed", "destroying %s on %s: %s", dataset_at(r, r->loop_i),
                       job->source_hostname, ssh_why(r));
            return;
        }
    }
    /* The final snapshots on the target were the rollback's base; no rollback now. */
    ctx_set_flag(r, "keep_final", false);
    ctx_set_str(r, "destroy_on", dst_ip(r));
    RUN_CALL(r, destroy_snaps);
    run_finish_step(r, 0);
    RUN_END(r);
}

/* ---- rollback of a switched job (migctl rollback) ---- */

/*
 * Sends the target's copy back and makes the source the VM's home again.
 * The order keeps the VM bootable on exactly one CN: the target is stopped
 * and made unbootable (autoboot off, detached) before the source is enabled,
 * and the target's copy is deleted only after the source runs (or is
 * installed) and VMAPI names the source again.
 */
void step_rollback_switched(struct run *r)
{
    struct mig_job *job = r->job;
    RUN_BEGIN(r);
    if (!ctx_flag(r, "back_stopped")) {
        RUN_AWAIT(r, run_ssh(r, dst_ip(r), mig_cmd_vmadm_get(job->vm_uuid), NULL));
        if (!ssh_ok(r)) {
            steps_fail(r, "RollbackFailed", "vmadm get on %s: %s", job->target_hostname,
                       ssh_why(r));
            return;
        }
        {
            json_t *vm = json_loads(r->ssh_out, 0, NULL);
            const char *state = json_string_value(json_object_get(vm, "state"));
            ctx_set_flag(r, "back_was_running", state != NULL && strcmp(state, "running") == 0);
            json_decref(vm);
        }
        ctx_set_int(r, "back_stop_ms", mig_now_ms());
        engine_job_changed(r);
        if (ctx_flag(r, "back_was_running")) {
            RUN_AWAIT(r, run_ssh(r, dst_ip(r), mig_cmd_vmadm_stop(job->vm_uuid, false), NULL));
            if (!ssh_ok(r)) {
                steps_fail(r, "RollbackFailed", "vmadm stop on %s: %s", job->target_hostname,
                           ssh_why(r));
                return;
            }
        }
        ctx_set_flag(r, "back_stopped", true);
        engine_job_changed(r);
    }
    /* What was written on the target since the switch goes back first,
     * incrementally from the final snapshot both sides kept. */
    if (!ctx_flag(r, "back_sent")) {
        begin_round(r, "back", dst_ip(r), src_ip(r));
        RUN_CALL(r, send_round);
        if (r->sub_err != 0) {
            steps_fail(r, "RollbackFailed", "sending %s back to %s: %s", job->vm_uuid,
                       job->source_hostname, ssh_why(r));
            return;
        }
        ctx_set_flag(r, "back_sent", true);
        engine_job_changed(r);
    }
    /* The target becomes unbootable before the source is enabled. */
    RUN_AWAIT(r, run_ssh(r, dst_ip(r), mig_cmd_zonecfg_autoboot(job->vm_uuid, false), NULL));
    if (!ssh_ok(r)) {
        steps_fail(r, "RollbackFailed", "autoboot off on %s: %s", job->target_hostname, ssh_why(r));
        return;
    }
    RUN_AWAIT(r, run_ssh(r, dst_ip(r), mig_cmd_zoneadm_detach(job->vm_uuid), NULL));
    if (!ssh_ok(r) && strstr(r->ssh_errout, "not installed") == NULL) {
        steps_fail(r, "RollbackFailed", "zoneadm detach on %s: %s", job->target_hostname,
                   ssh_why(r));
        return;
    }
    RUN_AWAIT(r, run_ssh(r, src_ip(r),
                         mig_cmd_zonecfg_autoboot(job->vm_uuid, ctx_flag(r, "autoboot_before")),
                         NULL));
    if (!ssh_ok(r)) {
        steps_fail(r, "RollbackFailed", "autoboot on %s: %s", job->source_hostname, ssh_why(r));
        return;
    }
    RUN_AWAIT(r, run_ssh(r, src_ip(r), mig_cmd_zonecfg_allow_inventory(job->vm_uuid), NULL));
    if (!ssh_ok(r) && strstr(r->ssh_errout, "No such") == NULL) {
        steps_fail(r, "RollbackFailed", "removing do-not-inventory on %s: %s", job->source_hostname,
                   ssh_why(r));
        return;
    }
    if (ctx_flag(r, "back_was_running")) {
        RUN_AWAIT(r, run_ssh(r, src_ip(r), mig_cmd_vmadm_start(job->vm_uuid), NULL));
        if (!ssh_ok(r)) {
            steps_fail(r, "RollbackFailed", "vmadm start on %s: %s", job->source_hostname,
                       ssh_why(r));
            return;
        }
    }
    /* Inventory names the source again. */
    ctx_set_str(r, "inv_ip", src_ip(r));
    ctx_set_str(r, "inv_server", job->source_server_uuid);
    RUN_CALL(r, record_inventory);
    if (r->sub_err != 0) {
        steps_fail(r, "RollbackFailed", "%s", ssh_why(r));
        return;
    }
    /* Only now, with the source verified, the target's copy goes. */
    RUN_AWAIT(r, run_ssh(r, dst_ip(r), mig_cmd_zonecfg_delete(job->vm_uuid), NULL));
    if (!ssh_ok(r))
        jlog(r, MIG_LOG_WARN, "zonecfg delete on %s: %s", job->target_hostname, ssh_why(r));
    /* The cores dataset is mounted inside the zone's: it goes first. */
    RUN_AWAIT(r, run_ssh(r, dst_ip(r), cmd_destroy_cores(r), NULL));
    for (r->loop_i = 0; r->loop_i < ndatasets(r); r->loop_i++) {
        RUN_AWAIT(r,
                  run_ssh(r, dst_ip(r), mig_cmd_zfs_destroy(dataset_at(r, r->loop_i), true), NULL));
        if (!ssh_ok(r))
            jlog(r, MIG_LOG_WARN, "destroying %s on %s: %s", dataset_at(r, r->loop_i),
                 job->target_hostname, ssh_why(r));
    }
    /* The job's snapshots on the source (final and back) are no longer needed. */
    ctx_set_flag(r, "keep_final", false);
    ctx_set_str(r, "destroy_on", src_ip(r));
    RUN_CALL(r, destroy_snaps);
    jlog(r, MIG_LOG_INFO, "VM %s is back on %s after %lld ms of downtime", job->vm_uuid,
         job->source_hostname,
         (long long)(mig_now_ms() - ctx_int(r, "back_stop_ms", mig_now_ms())));
    run_finish_step(r, 0);
    RUN_END(r);
}
