/*
 * act_api.c: the actions on the Triton APIs: the VM's IP reservations in
 * NAPI (read, reserved for the job, restored exactly as they were), and the
 * inventory once the VM has moved: VMAPI gets the new CN's `vmadm get`
 * taken after the start, NAPI's NICs name the new CN, and both are read
 * back before the job says the VM lives there.
 */
#include <string.h>
#include <strings.h>

#include "actions.h"
#include "cn.h"
#include "err.h"
#include "triton.h"
#include "util.h"

#define VM(a) ((a)->job->vm_uuid)
#define NIC(a) (&(a)->job->ctx.nics[(a)->item])

/* ---- IP reservations ---- */

static char *ip_url(struct mig_act *a)
{
    return mig_url_ip(a->env->napi, NIC(a)->network_uuid, NIC(a)->ip);
}

int act_read_ip(struct mig_act *a)
{
    ACT_BEGIN(a);
    ACT_HTTP(a, "NAPI", "GET", ip_url(a), NULL);
    if (!mig_res_http_ok(a->res) || !json_is_boolean(json_object_get(a->res->json, "reserved")))
        return mig_act_fail_res(a, "NapiError", "reading IP %s from NAPI", NIC(a)->ip);
    NIC(a)->reserved_before = json_is_true(json_object_get(a->res->json, "reserved"));
    ACT_END(a);
}

/* Sets the IP's reserved flag to want. */
static int put_reserved(struct mig_act *a, bool want)
{
    ACT_BEGIN(a);
    ACT_HTTP(a, "NAPI", "PUT", ip_url(a), json_pack("{s:b}", "reserved", want));
    if (!mig_res_http_ok(a->res))
        return mig_act_fail_res(a, "NapiError", "%s IP %s in NAPI",
                                want ? "reserving" : "releasing", NIC(a)->ip);
    ACT_END(a);
}

/* DONE when NAPI's reserved flag of the IP is want. */
static int probe_reserved(struct mig_act *a, bool want)
{
    json_t *r;
    ACT_BEGIN(a);
    ACT_HTTP(a, "NAPI", "GET", ip_url(a), NULL);
    r = json_object_get(a->res->json, "reserved");
    if (!mig_res_http_ok(a->res) || !json_is_boolean(r))
        return mig_act_fail_res(a, "NapiError", "reading IP %s from NAPI", NIC(a)->ip);
    return json_is_true(r) == want ? MIG_ACT_DONE : MIG_ACT_ABSENT;
    ACT_END(a);
}

int act_reserve_ip(struct mig_act *a)
{
    return put_reserved(a, true);
}

int probe_reserved_ip(struct mig_act *a)
{
    return probe_reserved(a, true);
}

/* Back to what it was before the job (only ever called for an IP that was not reserved). */
int act_restore_ip(struct mig_act *a)
{
    return put_reserved(a, NIC(a)->reserved_before == 1);
}

int probe_restored_ip(struct mig_act *a)
{
    return probe_reserved(a, NIC(a)->reserved_before == 1);
}

/* ---- inventory ---- */

static const char *server_of(const struct mig_job *job, enum mig_side side)
{
    return side == MIG_SIDE_SOURCE ? job->source_server_uuid : job->target_server_uuid;
}

/* The state VMAPI must show once the VM lives on side. */
static const char *expected_state(const struct mig_job *job, enum mig_side side)
{
    int running = side == MIG_SIDE_TARGET ? job->vm_was_running : job->ctx.back_was_running;
    return running == 1 ? "running" : "stopped";
}

/* After GET /vms/UUID: 0 when VMAPI names side with the expected state, else a failure. */
static int check_vmapi(struct mig_act *a, enum mig_side side)
{
    const char *su = json_string_value(json_object_get(a->res->json, "server_uuid"));
    const char *st = json_string_value(json_object_get(a->res->json, "state"));
    if (!mig_res_http_ok(a->res))
        return mig_act_fail_res(a, "VmapiError", "reading VM %s from VMAPI", VM(a));
    if (su == NULL || strcasecmp(su, server_of(a->job, side)) != 0 || st == NULL ||
        strcmp(st, expected_state(a->job, side)) != 0) {
        mig_act_fail(a, "InventoryMismatch",
                     "VMAPI says VM %s is %s on %s; it is %s on %s (%s)", VM(a),
                     st != NULL ? st : "in no state", su != NULL ? su : "no server",
                     expected_state(a->job, side), mig_job_side_host(a->job, side),
                     server_of(a->job, side));
        a->transient = true; /* an agent may still be catching up */
        return MIG_ACT_FAIL;
    }
    return 0;
}

/*
 * VMAPI replaces its object with the PUT body, so it gets the whole VM as
 * `vmadm get` prints it on the CN that now holds it, taken now (after the
 * start: state running), with server_uuid set; then it is read back.
 */
static int record_vmapi(struct mig_act *a, enum mig_side side)
{
    json_t *vm;
    int rc;
    ACT_BEGIN(a);
    ACT_SSH(a, side, mig_cmd_vmadm_get(VM(a)), NULL);
    vm = mig_res_ok(a->res) ? json_loads(a->res->out, 0, NULL) : NULL;
    if (!json_is_object(vm)) {
        json_decref(vm);
        return mig_act_fail_res(a, "InventoryFailed", "vmadm get %s on %s", VM(a),
                                mig_job_side_host(a->job, side));
    }
    json_object_set_new(vm, "server_uuid", json_string(server_of(a->job, side)));
    ACT_HTTP(a, "VMAPI", "PUT", mig_url_vm(a->env->vmapi, VM(a)), vm);
    if (!mig_res_http_ok(a->res))
        return mig_act_fail_res(a, "VmapiError", "recording VM %s on %s in VMAPI", VM(a),
                                mig_job_side_host(a->job, side));
    ACT_HTTP(a, "VMAPI", "GET", mig_url_vm(a->env->vmapi, VM(a)), NULL);
    if ((rc = check_vmapi(a, side)) != 0)
        return rc;
    ACT_END(a);
}

static int probe_vmapi(struct mig_act *a, enum mig_side side)
{
    int rc;
    ACT_BEGIN(a);
    ACT_HTTP(a, "VMAPI", "GET", mig_url_vm(a->env->vmapi, VM(a)), NULL);
    if (!mig_res_http_ok(a->res))
        return mig_act_fail_res(a, "VmapiError", "reading VM %s from VMAPI", VM(a));
    rc = check_vmapi(a, side);
    return rc == 0 ? MIG_ACT_DONE : MIG_ACT_ABSENT;
    ACT_END(a);
}

static int record_nic(struct mig_act *a, enum mig_side side)
{
    ACT_BEGIN(a);
    ACT_HTTP(a, "NAPI", "PUT", mig_url_nic(a->env->napi, NIC(a)->mac),
             json_pack("{s:s}", "cn_uuid", server_of(a->job, side)));
    if (!mig_res_http_ok(a->res))
        return mig_act_fail_res(a, "NapiError", "moving NIC %s to %s in NAPI", NIC(a)->mac,
                                mig_job_side_host(a->job, side));
    ACT_END(a);
}

static int probe_nic(struct mig_act *a, enum mig_side side)
{
    ACT_BEGIN(a);
    ACT_HTTP(a, "NAPI", "GET", mig_url_nics_of(a->env->napi, VM(a)), NULL);
    if (!mig_res_http_ok(a->res) || !json_is_array(a->res->json))
        return mig_act_fail_res(a, "NapiError", "listing VM %s's NICs in NAPI", VM(a));
    return strcasecmp(mig_nics_cn_of(a->res->json, NIC(a)->mac), server_of(a->job, side)) == 0
               ? MIG_ACT_DONE
               : MIG_ACT_ABSENT;
    ACT_END(a);
}

/* Reads VMAPI and NAPI back: both must name side before the job says the VM lives there. */
static int verify(struct mig_act *a, enum mig_side side)
{
    int rc;
    ACT_BEGIN(a);
    ACT_HTTP(a, "VMAPI", "GET", mig_url_vm(a->env->vmapi, VM(a)), NULL);
    if ((rc = check_vmapi(a, side)) != 0)
        return rc;
    ACT_HTTP(a, "NAPI", "GET", mig_url_nics_of(a->env->napi, VM(a)), NULL);
    if (!mig_res_http_ok(a->res) || !json_is_array(a->res->json))
        return mig_act_fail_res(a, "NapiError", "listing VM %s's NICs in NAPI", VM(a));
    for (int k = 0; k < a->job->ctx.nnics; k++) {
        const char *cn = mig_nics_cn_of(a->res->json, a->job->ctx.nics[k].mac);
        if (cn[0] != '\0' && strcasecmp(cn, server_of(a->job, side)) != 0) {
            mig_act_fail(a, "InventoryMismatch", "NAPI says NIC %s of VM %s is on %s, not on %s",
                         a->job->ctx.nics[k].mac, VM(a), cn, mig_job_side_host(a->job, side));
            a->transient = true;
            return MIG_ACT_FAIL;
        }
    }
    ACT_END(a);
}

/*
 * The plan's entry points (actions.h): NAME_target and NAME_source run fn
 * on that side, e.g. act_verify_target is verify(a, MIG_SIDE_TARGET).
 */
#define ON_EACH_SIDE(name, fn)                                                                     \
    int name##_target(struct mig_act *a)                                                           \
    {                                                                                              \
        return fn(a, MIG_SIDE_TARGET);                                                             \
    }                                                                                              \
    int name##_source(struct mig_act *a)                                                           \
    {                                                                                              \
        return fn(a, MIG_SIDE_SOURCE);                                                             \
    }

ON_EACH_SIDE(act_record_vmapi, record_vmapi)
ON_EACH_SIDE(probe_vmapi, probe_vmapi)
ON_EACH_SIDE(act_record_nic, record_nic)
ON_EACH_SIDE(probe_nic, probe_nic)
ON_EACH_SIDE(act_verify, verify)
