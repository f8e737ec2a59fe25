/*
 * submit.c: the checks of a submission as one read-only coroutine (submit.h).
 * Each refusal names its rule and says what to do; nothing here changes a
 * CN or an API.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cn.h"
#include "err.h"
#include "place.h"
#include "plan.h"
#include "submit.h"
#include "triton.h"
#include "util.h"
#include "validate.h"

#define S(a) ((struct mig_submit *)(a))
#define JOB(a) ((a)->job)
#define CTX(a) (&(a)->job->ctx)

void mig_submit_init(struct mig_submit *s, struct mig_job *job, const struct mig_act_env *env)
{
    memset(s, 0, sizeof(*s));
    mig_act_init(&s->a, job, env, -1, -1);
}

void mig_submit_clear(struct mig_submit *s)
{
    mig_act_clear(&s->a);
    json_decrefp(&s->vm);
    json_decrefp(&s->servers);
    json_decrefp(&s->tree);
    json_decrefp(&s->avoid);
    json_decrefp(&s->others);
    s->src = s->dst = NULL;
}

/*
 * Where the VM goes when no target is named: the placement planner's plan
 * of this one VM (place.h), so that `migrate VM` and `evacuate CN` choose by
 * the same rules (capacity, NIC tags, CNs being drained, spread_tag).  NULL
 * with *why filled when no CN may take it.
 */
static json_t *place(struct mig_submit *s, struct mig_refusal *why)
{
    json_t *vms = json_pack("[O]", s->vm);
    struct mig_place_opts opts = {
        .source = json_string_value(json_object_get(s->src, "uuid")),
        .allow_older_platform = s->a.job->allow_older_platform,
        .spread_tag = s->spread_tag,
        .others = s->others,
        .avoid = s->avoid,
    };
    struct mig_place *plan = NULL;
    json_t *best = NULL;
    why->rule = MIG_PLACE_RULE_NO_TARGET;
    snprintf(why->message, sizeof(why->message), "no CN may take the VM; name a target CN");
    if (mig_place_plan(s->servers, vms, &opts, &plan, why) == 0) {
        const struct mig_place_vm *v = plan->nvms == 1 ? &plan->vms[0] : NULL;
        if (v != NULL && v->target != NULL) {
            best = mig_server_find(s->servers, v->target->uuid);
        } else {
            why->rule = v != NULL && v->rule != NULL ? v->rule : MIG_PLACE_RULE_NO_TARGET;
            snprintf(why->message, sizeof(why->message), "%s; name a target CN",
                     v != NULL && v->why != NULL ? v->why : "no CN may take the VM");
        }
    }
    mig_place_free(plan);
    json_decref(vms);
    return best;
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

/* A refusal from validate.h's rules. */
static int refused(struct mig_act *a, const struct mig_refusal *r)
{
    return mig_act_fail(a, r->rule, "%s", r->message);
}

/* The VM's zpool as VMAPI gives it ("zpool"), else the CNs' pool. */
static const char *vm_zpool(struct mig_act *a, json_t *vm)
{
    const char *pool = json_string_value(json_object_get(vm, "zpool"));
    return pool != NULL ? pool : a->env->pool;
}

/*
 * The VM's top-level datasets: zones/UUID (bhyve disks below it travel with
 * -R) and, for KVM, each disk that lives beside it.  False when one is not a
 * valid dataset name or there are too many.
 */
static bool take_datasets(struct mig_act *a, json_t *vm)
{
    struct mig_job_ctx *c = CTX(a);
    const char *fs = json_string_value(json_object_get(vm, "zfs_filesystem"));
    char def[MIG_DATASET_LEN];
    snprintf(def, sizeof(def), "%s/%s", a->env->pool, JOB(a)->vm_uuid);
    c->ndatasets = 0;
    snprintf(c->datasets[c->ndatasets++].name, MIG_DATASET_LEN, "%s", fs != NULL ? fs : def);
    const char *top = c->datasets[0].name;
    size_t tl = strlen(top);
    size_t i;
    json_t *disk;
    json_array_foreach(json_object_get(vm, "disks"), i, disk)
    {
        const char *dfs = json_string_value(json_object_get(disk, "zfs_filesystem"));
        if (dfs == NULL || (strncmp(dfs, top, tl) == 0 && dfs[tl] == '/'))
            continue;
        if (c->ndatasets == MIG_MAX_DATASETS || strlen(dfs) >= MIG_DATASET_LEN)
            return false;
        snprintf(c->datasets[c->ndatasets++].name, MIG_DATASET_LEN, "%s", dfs);
    }
    for (int k = 0; k < c->ndatasets; k++)
        if (!mig_dataset_valid(c->datasets[k].name))
            return false;
    return true;
}

/* The VM's NICs as VMAPI gives them; false when there are too many. */
static bool take_nics(struct mig_act *a, json_t *vm)
{
    struct mig_job_ctx *c = CTX(a);
    size_t i;
    json_t *nic;
    c->nnics = 0;
    json_array_foreach(json_object_get(vm, "nics"), i, nic)
    {
        if (c->nnics == MIG_MAX_NICS)
            return false;
        struct mig_nic *n = &c->nics[c->nnics++];
        const char *mac = json_string_value(json_object_get(nic, "mac"));
        const char *ip = json_string_value(json_object_get(nic, "ip"));
        const char *net = json_string_value(json_object_get(nic, "network_uuid"));
        snprintf(n->mac, sizeof(n->mac), "%s", mac != NULL ? mac : "");
        snprintf(n->ip, sizeof(n->ip), "%s", ip != NULL && mig_hostname_valid(ip) ? ip : "");
        snprintf(n->network_uuid, sizeof(n->network_uuid), "%s",
                 net != NULL && mig_uuid_valid(net) ? net : "");
        if (n->network_uuid[0] == '\0')
            n->ip[0] = '\0'; /* an IP NAPI cannot be asked about is left alone */
        n->reserved_before = -1;
    }
    return true;
}

/* After an SSH op to a CN for the checks: a refusal when the CN could not be reached. */
static int unreachable(struct mig_act *a, enum mig_side side)
{
    char why[384];
    mig_res_why(a->res, why, sizeof(why));
    return mig_act_fail(a, a->res->err == MIG_EHOSTKEY ? MIG_RULE_HOSTKEY : MIG_RULE_UNREACHABLE,
                        "cannot reach %s CN %s (%s): %s",
                        side == MIG_SIDE_SOURCE ? "source" : "target",
                        mig_job_side_host(a->job, side), mig_job_side_ip(a->job, side), why);
}

int mig_submit_step(struct mig_act *a)
{
    struct mig_submit *s = S(a);
    struct mig_job *job = JOB(a);
    struct mig_refusal r;
    char why[384];
    int more; /* another page of active VMs to ask for */
    ACT_BEGIN(a);
    /* The VM: by uuid, or by alias when exactly one active VM has it. */
    if (mig_uuid_valid(job->vm_uuid)) {
        ACT_HTTP(a, "VMAPI", "GET", mig_url_vm(a->env->vmapi, job->vm_uuid), NULL);
        if (a->res->err == 0 && a->res->http_status == 404)
            return mig_act_fail(a, MIG_RULE_VM_UNKNOWN, "VMAPI has no VM %s", job->vm_uuid);
        if (!mig_res_http_ok(a->res) || !json_is_object(a->res->json))
            return mig_act_fail_res(a, "VmapiError", "cannot read VM %s from VMAPI",
                                    job->vm_uuid);
        s->vm = json_incref(a->res->json);
    } else {
        if (!mig_alias_valid(job->vm_alias))
            return mig_act_fail(a, MIG_RULE_VM_UUID, "\"%s\" is neither a VM uuid nor a valid alias",
                                job->vm_alias != NULL ? job->vm_alias : "");
        ACT_HTTP(a, "VMAPI", "GET", mig_url_vms_by_alias(a->env->vmapi, job->vm_alias), NULL);
        if (!mig_res_http_ok(a->res) || !json_is_array(a->res->json))
            return mig_act_fail_res(a, "VmapiError", "cannot list VMs from VMAPI");
        if (json_array_size(a->res->json) != 1)
            return mig_act_fail(a,
                                json_array_size(a->res->json) == 0 ? MIG_RULE_VM_UNKNOWN
                                                                   : MIG_RULE_VM_UUID,
                                "%zu active VMs have the alias %s; give the VM's uuid",
                                json_array_size(a->res->json), job->vm_alias);
        s->vm = json_incref(json_array_get(a->res->json, 0));
        const char *u = json_string_value(json_object_get(s->vm, "uuid"));
        if (!mig_uuid_valid(u))
            return mig_act_fail(a, "VmapiError", "VMAPI returned a VM without a valid uuid");
        snprintf(job->vm_uuid, sizeof(job->vm_uuid), "%s", u);
        for (char *p = job->vm_uuid; *p != '\0'; p++)
            if (*p >= 'A' && *p <= 'F')
                *p = (char)(*p - 'A' + 'a');
    }
    {
        const char *alias = json_string_value(json_object_get(s->vm, "alias"));
        const char *brand = json_string_value(json_object_get(s->vm, "brand"));
        free(job->vm_alias);
        job->vm_alias = mig_strdup(alias != NULL ? alias : "");
        snprintf(job->brand, sizeof(job->brand), "%s", brand != NULL ? brand : "");
    }
    if (mig_validate_vm(s->vm, NULL, &r) != 0)
        return refused(a, &r);
    /* Only the VM's own datasets: what is taken here is copied, then destroyed on the source. */
    if (mig_validate_datasets(s->vm, vm_zpool(a, s->vm), &r) != 0)
        return refused(a, &r);
    if (!take_datasets(a, s->vm) || !take_nics(a, s->vm))
        return mig_act_fail(a, MIG_RULE_VM_BRAND,
                            "VM %s has datasets or NICs migd cannot move (invalid names, or more "
                            "than %d datasets or %d NICs)",
                            job->vm_uuid, MIG_MAX_DATASETS, MIG_MAX_NICS);
    {
        const char *img = mig_vm_image_uuid(s->vm);
        snprintf(CTX(a)->image_uuid, sizeof(CTX(a)->image_uuid), "%s",
                 img != NULL && mig_uuid_valid(img) ? img : "");
    }
    s->disk_mib = vm_disk_mib(s->vm);

    ACT_HTTP(a, "CNAPI", "GET", mig_url_servers(a->env->cnapi), NULL);
    if (!mig_res_http_ok(a->res) || !json_is_array(a->res->json))
        return mig_act_fail_res(a, "CnapiError", "cannot list servers from CNAPI");
    s->servers = json_incref(a->res->json);
    /* placement.spread_tag, when migd picks the target: where the VM's group runs. */
    if (CTX(a)->target_request[0] == '\0' && s->spread_tag != NULL && s->spread_tag[0] != '\0')
        ACT_TAKE_ACTIVE_VMS(a, s->others, more);
    {
        const char *su = json_string_value(json_object_get(s->vm, "server_uuid"));
        s->src = su != NULL ? mig_server_find(s->servers, su) : NULL;
        if (s->src == NULL)
            return mig_act_fail(a, "SourceNotFound", "CNAPI does not list the VM's server %s",
                                su != NULL ? su : "(none)");
        const char *want = CTX(a)->target_request;
        if (want[0] != '\0') {
            s->dst = mig_server_find(s->servers, want);
            if (s->dst == NULL)
                return mig_act_fail(a, MIG_RULE_TARGET_UNKNOWN,
                                    "CNAPI has no server with uuid or hostname %s", want);
        } else {
            s->dst = place(s, &r);
            if (s->dst == NULL)
                return refused(a, &r);
        }
        if (mig_validate_target(s->vm, s->src, s->dst, s->disk_mib, job->allow_older_platform,
                                &r) != 0)
            return refused(a, &r);
        const char *sip = mig_server_admin_ip(s->src);
        const char *dip = mig_server_admin_ip(s->dst);
        if (!mig_hostname_valid(sip) || !mig_hostname_valid(dip) || strlen(sip) >= MIG_IP_LEN ||
            strlen(dip) >= MIG_IP_LEN)
            return mig_act_fail(a, MIG_RULE_UNREACHABLE, "CNAPI gives no valid admin IP for %s",
                                !mig_hostname_valid(sip) ? "the source" : "the target");
        const char *su2 = json_string_value(json_object_get(s->src, "uuid"));
        const char *du = json_string_value(json_object_get(s->dst, "uuid"));
        if (!mig_uuid_valid(su2) || !mig_uuid_valid(du))
            return mig_act_fail(a, "CnapiError", "CNAPI lists a server without a valid uuid");
        snprintf(CTX(a)->source_ip, sizeof(CTX(a)->source_ip), "%s", sip);
        snprintf(CTX(a)->target_ip, sizeof(CTX(a)->target_ip), "%s", dip);
        snprintf(job->source_server_uuid, sizeof(job->source_server_uuid), "%s", su2);
        snprintf(job->target_server_uuid, sizeof(job->target_server_uuid), "%s", du);
        free(job->source_hostname);
        free(job->target_hostname);
        job->source_hostname = mig_strdup(json_string_value(json_object_get(s->src, "hostname")));
        job->target_hostname = mig_strdup(json_string_value(json_object_get(s->dst, "hostname")));
    }

    /* SSH to both CNs (host keys checked); the source tells each dataset's size and origin. */
    job->progress.bytes_total = 0;
    for (a->i = 0; a->i < CTX(a)->ndatasets; a->i++) {
        ACT_SSH(a, MIG_SIDE_SOURCE, mig_cmd_zfs_list_tree(CTX(a)->datasets[a->i].name), NULL);
        if (a->res->err != 0)
            return unreachable(a, MIG_SIDE_SOURCE);
        if (a->res->exit_status != 0) {
            mig_res_why(a->res, why, sizeof(why));
            return mig_act_fail(a, "SourceDatasetMissing",
                                "source CN %s has no dataset %s for VM %s: %s",
                                job->source_hostname, CTX(a)->datasets[a->i].name, job->vm_uuid,
                                why);
        }
        {
            struct mig_zfs_dataset *ds = NULL;
            int n = mig_parse_zfs_list(a->res->out, &ds);
            struct mig_dataset *d = &CTX(a)->datasets[a->i];
            /* What the first send moves: each dataset's data (not the reservations a
             * bhyve or KVM disk's used counts; for a clone, not its origin's). */
            d->used = 0;
            if (s->tree == NULL)
                s->tree = json_array();
            for (int k = 0; k < n; k++) {
                d->used += (int64_t)mig_zfs_send_bytes(&ds[k]);
                /* The dry run shows every dataset the stream carries, with its origin. */
                json_array_append_new(
                    s->tree, json_pack("{s:s, s:s, s:I, s:s}", "name", ds[k].name, "origin",
                                       ds[k].origin, "used", (json_int_t)mig_zfs_send_bytes(&ds[k]),
                                       "type", ds[k].type));
            }
            if (n > 0 && ds[0].origin[0] != '\0' && strlen(ds[0].origin) < MIG_DATASET_LEN)
                snprintf(d->origin, sizeof(d->origin), "%s", ds[0].origin);
            /* Every image a dataset of the tree is cloned from (each disk's may differ
             * from the VM's) goes to the target before the first receive: the
             * replication stream carries a clone as an incremental from its origin.
             * A clone of anything but an image's @final could not be received. */
            int bad = -1, too_many = 0;
            for (int k = 0; k < n; k++) {
                int rc = ds[k].origin[0] == '\0' ? 0 : mig_job_add_image(CTX(a), ds[k].origin);
                if (rc == -1 && bad < 0)
                    bad = k;
                too_many |= rc == -2;
            }
            if (bad >= 0) {
                char what[2 * MIG_DATASET_LEN + 8];
                snprintf(what, sizeof(what), "%s (of %s)", ds[bad].name, ds[bad].origin);
                free(ds);
                return mig_act_fail(a, MIG_RULE_VM_BRAND,
                                    "VM %s has dataset %s, a clone of no image; migd sends only "
                                    "clones of an image's @final",
                                    job->vm_uuid, what);
            }
            free(ds);
            if (too_many)
                return mig_act_fail(a, MIG_RULE_VM_BRAND,
                                    "VM %s has datasets cloned from more than %d images",
                                    job->vm_uuid, MIG_MAX_IMAGES);
            if (n < 0)
                return mig_act_fail(a, "SourceDatasetMissing",
                                    "source CN %s: unreadable zfs list of %s", job->source_hostname,
                                    d->name);
            job->progress.bytes_total += d->used;
        }
    }
    ACT_SSH(a, MIG_SIDE_TARGET, mig_cmd_vmadm_get(job->vm_uuid), NULL);
    if (a->res->err != 0)
        return unreachable(a, MIG_SIDE_TARGET);
    if (a->res->exit_status == 0)
        return mig_act_fail(a, "TargetHasVm", "target CN %s already has a VM %s",
                            job->target_hostname, job->vm_uuid);
    ACT_END(a);
}

json_t *mig_submit_plan(struct mig_submit *s, int limit_mbps)
{
    struct mig_job *job = s->a.job;
    /* 100 MiB/s is what a relay moved in the lab (bench_relay); a limit caps it. */
    double rate = 100.0 * 1024 * 1024;
    if (limit_mbps > 0 && (double)limit_mbps * 1e6 / 8 < rate)
        rate = (double)limit_mbps * 1e6 / 8;
    json_t *datasets = json_array();
    for (int i = 0; s->tree == NULL && i < job->ctx.ndatasets; i++)
        json_array_append_new(datasets,
                              json_pack("{s:s, s:s, s:I}", "name", job->ctx.datasets[i].name,
                                        "origin", job->ctx.datasets[i].origin, "used",
                                        (json_int_t)job->ctx.datasets[i].used));
    if (s->tree != NULL) {
        json_decref(datasets);
        datasets = json_deep_copy(s->tree);
    }
    /* The plan's applies() see whether the VM runs as VMAPI says now. */
    int was = job->vm_was_running;
    const char *state = json_string_value(json_object_get(s->vm, "state"));
    job->vm_was_running = state != NULL && strcmp(state, "running") == 0;
    json_t *actions = mig_plan_describe(job);
    job->vm_was_running = was;
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:i, s:s, s:b, s:o}",
                     "vm_uuid", job->vm_uuid, "vm_alias", job->vm_alias != NULL ? job->vm_alias : "",
                     "brand", job->brand, "source", job->source_hostname, "target",
                     job->target_hostname, "mode", mig_mode_name(job->mode), "datasets", datasets,
                     "bytes_total", (json_int_t)job->progress.bytes_total, "estimate_s",
                     (json_int_t)((double)job->progress.bytes_total / rate + 1), "limit_mbps",
                     limit_mbps, "transfer", job->transfer, "cleanup_source", job->cleanup_source,
                     "actions", actions);
}
