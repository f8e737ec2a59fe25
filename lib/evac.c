/*
 * evac.c: an evacuation's plan and the estimates (evac.h).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cn.h"
#include "err.h"
#include "evac.h"
#include "triton.h"
#include "util.h"
#include "validate.h"

#define E(a) ((struct mig_evac *)(a))

void mig_evac_init(struct mig_evac *e, const struct mig_act_env *env)
{
    memset(e, 0, sizeof(*e));
    mig_act_init(&e->a, NULL, env, -1, -1);
    e->peers.ip[MIG_SIDE_SOURCE] = e->source_ip;
    e->peers.host[MIG_SIDE_SOURCE] = e->source_hostname;
}

void mig_evac_clear(struct mig_evac *e)
{
    mig_act_clear(&e->a);
    json_decrefp(&e->servers);
    json_decrefp(&e->vms);
    json_decrefp(&e->used);
    json_decrefp(&e->others);
    json_decrefp(&e->avoid);
    mig_place_free(e->plan);
    e->source = NULL;
    e->plan = NULL;
}

json_t *mig_evac_used_by_vm(const char *out)
{
    json_t *used = json_object();
    struct mig_zfs_dataset *rows = NULL;
    int n = mig_parse_zfs_list(out, &rows);
    for (int i = 0; i < n; i++) {
        const char *name = rows[i].name;
        const char *slash = strchr(name, '/');
        if (slash == NULL || strlen(slash + 1) < MIG_UUID_LEN)
            continue;
        char uuid[MIG_UUID_LEN + 1];
        memcpy(uuid, slash + 1, MIG_UUID_LEN);
        uuid[MIG_UUID_LEN] = '\0';
        const char *rest = slash + 1 + MIG_UUID_LEN;
        /* zones/UUID, its children (a bhyve disk, a delegated dataset), zones/UUID-diskN */
        if (!mig_uuid_valid(uuid) || (*rest != '\0' && *rest != '/' && strncmp(rest, "-disk", 5) != 0))
            continue;
        json_int_t before = json_integer_value(json_object_get(used, uuid));
        json_object_set_new(used, uuid,
                            json_integer(before + (json_int_t)mig_zfs_send_bytes(&rows[i])));
    }
    free(rows);
    return used;
}

int mig_evac_step(struct mig_act *a)
{
    struct mig_evac *e = E(a);
    int more; /* another page of active VMs to ask for */
    ACT_BEGIN(a);
    ACT_HTTP(a, "CNAPI", "GET", mig_url_servers(a->env->cnapi), NULL);
    if (!mig_res_http_ok(a->res) || !json_is_array(a->res->json))
        return mig_act_fail_res(a, "CnapiError", "cannot list servers from CNAPI");
    e->servers = json_incref(a->res->json);
    if (e->estimate_only && e->vm[0] == '\0' && mig_server_find(e->servers, e->server) == NULL)
        snprintf(e->vm, sizeof(e->vm), "%s", e->server); /* not a CN: an estimate of a VM */
    if (e->vm[0] != '\0') {
        /* One VM's estimate: it and its CN. */
        ACT_HTTP(a, "VMAPI", "GET",
                 mig_uuid_valid(e->vm) ? mig_url_vm(a->env->vmapi, e->vm)
                                       : mig_url_vms_by_alias(a->env->vmapi, e->vm),
                 NULL);
        if (a->res->err == 0 && a->res->http_status == 404)
            return mig_act_fail(a, MIG_RULE_VM_UNKNOWN, "VMAPI has no VM %s", e->vm);
        if (!mig_res_http_ok(a->res))
            return mig_act_fail_res(a, "VmapiError", "cannot read VM %s from VMAPI", e->vm);
        if (json_is_array(a->res->json)) {
            if (json_array_size(a->res->json) != 1)
                return mig_act_fail(a, json_array_size(a->res->json) == 0 ? MIG_RULE_VM_UNKNOWN
                                                                          : MIG_RULE_VM_UUID,
                                    "%zu active VMs have the alias %s; give the VM's uuid",
                                    json_array_size(a->res->json), e->vm);
            e->vms = json_incref(a->res->json);
        } else {
            e->vms = json_pack("[O]", a->res->json);
        }
        const char *su = json_string_value(json_object_get(json_array_get(e->vms, 0), "server_uuid"));
        snprintf(e->server, sizeof(e->server), "%s", su != NULL ? su : "");
    }
    e->source = mig_server_find(e->servers, e->server);
    if (e->source == NULL)
        return mig_act_fail(a, MIG_RULE_TARGET_UNKNOWN, "CNAPI has no server with uuid or hostname %s",
                            e->server);
    {
        const char *ip = mig_server_admin_ip(e->source);
        const char *uuid = json_string_value(json_object_get(e->source, "uuid"));
        if (!mig_hostname_valid(ip) || strlen(ip) >= sizeof(e->source_ip) || !mig_uuid_valid(uuid))
            return mig_act_fail(a, MIG_RULE_UNREACHABLE, "CNAPI gives no valid admin IP for %s",
                                e->server);
        const char *hostname = json_string_value(json_object_get(e->source, "hostname"));
        snprintf(e->source_ip, sizeof(e->source_ip), "%s", ip);
        snprintf(e->source_uuid, sizeof(e->source_uuid), "%s", uuid);
        snprintf(e->source_hostname, sizeof(e->source_hostname), "%s",
                 hostname != NULL ? hostname : "");
    }
    if (e->vms == NULL) {
        ACT_HTTP(a, "VMAPI", "GET",
                 mig_api_url(a->env->vmapi, "/vms?server_uuid=%s&state=active",
                             e->source_uuid),
                 NULL);
        if (!mig_res_http_ok(a->res) || !json_is_array(a->res->json))
            return mig_act_fail_res(a, "VmapiError", "cannot list the VMs of %s from VMAPI",
                                    e->source_hostname);
        e->vms = json_incref(a->res->json);
    }
    /* What each VM holds, from one listing of the CN's pool. */
    ACT_SSH(a, MIG_SIDE_SOURCE, mig_cmd_zfs_list_tree(a->env->pool), NULL);
    if (!mig_res_ok(a->res))
        return mig_act_fail_res(a, a->res->err == MIG_EHOSTKEY ? MIG_RULE_HOSTKEY
                                                               : MIG_RULE_UNREACHABLE,
                                "cannot list the datasets of %s", e->source_hostname);
    e->used = mig_evac_used_by_vm(a->res->out);
    /* placement.spread_tag: where the rest of each group runs, from every active VM. */
    if (e->spread_tag != NULL && e->spread_tag[0] != '\0')
        ACT_TAKE_ACTIVE_VMS(a, e->others, more);
    {
        struct mig_place_opts opts = {.source = e->source_uuid,
                                      .to = e->to,
                                      .nto = e->nto,
                                      .allow_older_platform = e->allow_older_platform,
                                      .admin_uuid = NULL,
                                      .spread_tag = e->spread_tag,
                                      .others = e->others,
                                      .avoid = e->avoid};
        struct mig_refusal r;
        int rc = mig_place_plan(e->servers, e->vms, &opts, &e->plan, &r);
        if (rc == MIG_EREFUSED)
            return mig_act_fail(a, r.rule, "%s", r.message);
        if (rc != 0)
            return mig_act_fail(a, "PlacementFailed", "cannot place the VMs of %s: %s",
                                e->source_hostname, mig_strerror(rc));
    }
    ACT_END(a);
}

int64_t mig_evac_bytes(const struct mig_evac *e, json_t *vm)
{
    const char *uuid = json_string_value(json_object_get(vm, "uuid"));
    json_t *u = uuid != NULL ? json_object_get(e->used, uuid) : NULL;
    if (json_is_integer(u))
        return json_integer_value(u);
    return json_integer_value(json_object_get(vm, "quota")) << 30;
}

int64_t mig_estimate_s(int64_t bytes, int64_t rate_bytes_s, int64_t overhead_ms, int limit_mbps)
{
    int64_t rate = rate_bytes_s > 0 ? rate_bytes_s : MIG_DEFAULT_RATE_BYTES_S;
    if (limit_mbps > 0 && (int64_t)limit_mbps * 1000000 / 8 < rate)
        rate = (int64_t)limit_mbps * 1000000 / 8;
    int64_t ms = ((bytes > 0 ? bytes : 0) * 1000 + rate - 1) / rate;
    ms += overhead_ms >= 0 ? overhead_ms : MIG_JOB_FIXED_S * 1000;
    return (ms + 999) / 1000;
}

int64_t mig_estimate_window_s(const int64_t *seconds, size_t n, int parallel)
{
    return mig_estimate_starts(seconds, n, parallel, NULL);
}

int64_t mig_estimate_starts(const int64_t *seconds, size_t n, int parallel, int64_t *starts)
{
    if (parallel < 1)
        parallel = 1;
    int64_t lanes[64] = {0};
    if (parallel > 64)
        parallel = 64;
    for (size_t i = 0; i < n; i++) {
        int best = 0;
        for (int l = 1; l < parallel; l++)
            if (lanes[l] < lanes[best])
                best = l;
        if (starts != NULL)
            starts[i] = lanes[best];
        lanes[best] += seconds[i];
    }
    int64_t span = 0;
    for (int l = 0; l < parallel; l++)
        if (lanes[l] > span)
            span = lanes[l];
    return span;
}

static bool is(const char *st, const char *name)
{
    return st != NULL && strcmp(st, name) == 0;
}

enum mig_evac_outcome mig_evac_entry_outcome(const char *record_uuid, json_t *entry, json_t *job)
{
    const char *st = json_string_value(json_object_get(job, "state"));
    const char *tag = json_string_value(json_object_get(job, "evacuation"));
    bool mine = tag != NULL && record_uuid != NULL && strcmp(tag, record_uuid) == 0;
    if (is(json_string_value(json_object_get(entry, "by")), "rollback")) {
        /* A homecoming's rollback: done once rolled back; switched after its try, it gave up. */
        if (is(st, "rolled_back"))
            return MIG_EVAC_DONE;
        if ((is(st, "switched") && mine) || is(st, "succeeded") || is(st, "failed") ||
            is(st, "aborted"))
            return MIG_EVAC_FAILED;
        return is(st, "switched") ? MIG_EVAC_WAITING : MIG_EVAC_MOVING;
    }
    /* Re-tagged by another record that rolls it back (a homecoming): it left, then went home. */
    const char *phase = json_string_value(json_object_get(job, "phase"));
    if (tag != NULL && !mine && (is(phase, "rollback") || is(st, "rolled_back")))
        return MIG_EVAC_DONE;
    if (is(st, "switched") || is(st, "succeeded"))
        return MIG_EVAC_DONE;
    if (is(st, "failed") || is(st, "aborted") || is(st, "rolled_back"))
        return MIG_EVAC_FAILED;
    return MIG_EVAC_MOVING;
}
