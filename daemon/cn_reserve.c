/*
 * cn_reserve.c: marks CNs reserved, or not, in CNAPI (POST /servers/UUID
 * {"reserved": B}), one idempotent update after the other, for the
 * evacuator: a rolling drain reserves every CN of its set before it
 * records the drain, and `migctl evacuate --unreserve` gives drained CNs
 * back.  A failure stops at that CN (the ones before it are updated, which
 * the answer says).
 */
#include <stdlib.h>

#include "daemon.h"
#include "executor.h"
#include "triton.h"
#include "util.h"

struct cn_reserve {
    struct mig_act a; /* first member: the coroutine receives &r->a */
    struct exec *x;
    json_t *uuids;    /* the CNs' uuids (owned) */
    size_t i;
    bool reserved;    /* the value to set */
    bool init;        /* a was set up (mig_act_init) */
    cn_reserve_cb cb;
    void *arg;
};

static int reserve_step(struct mig_act *a)
{
    struct cn_reserve *r = (struct cn_reserve *)a;
    ACT_BEGIN(a);
    for (r->i = 0; r->i < json_array_size(r->uuids); r->i++) {
        ACT_HTTP(a, "CNAPI", "POST",
                 mig_api_url(a->env->cnapi, "/servers/%s",
                             json_string_value(json_array_get(r->uuids, r->i))),
                 json_pack("{s:b}", "reserved", r->reserved));
        if (!mig_res_http_ok(a->res))
            return mig_act_fail_res(a, "CnapiError", "cannot mark %s %sreserved in CNAPI",
                                    json_string_value(json_array_get(r->uuids, r->i)),
                                    r->reserved ? "" : "not ");
    }
    ACT_END(a);
}

static void on_changed(void *owner)
{
    (void)owner;
}

static void on_finished(void *owner, int err)
{
    struct cn_reserve *r = owner;
    r->cb(r->arg, err, err != 0 ? r->a.err_code : NULL, err != 0 ? r->a.err_msg : NULL);
}

static const struct exec_hooks hooks = {on_changed, on_finished};

struct cn_reserve *cn_reserve_start(struct migd *d, json_t *uuids, bool reserved, cn_reserve_cb cb,
                                    void *arg)
{
    if (json_array_size(uuids) == 0)
        return NULL; /* nothing to walk: the callback would come before the caller holds r */
    struct cn_reserve *r = mig_calloc(1, sizeof(*r));
    r->uuids = json_incref(uuids);
    r->reserved = reserved;
    r->cb = cb;
    r->arg = arg;
    if (exec_new_calls(d, NULL, &hooks, r, &r->x) != 0) {
        cn_reserve_free(r);
        return NULL;
    }
    mig_act_init(&r->a, NULL, exec_env(r->x), -1, -1);
    r->init = true;
    exec_call(r->x, reserve_step, &r->a);
    return r;
}

void cn_reserve_free(struct cn_reserve *r)
{
    if (r == NULL)
        return;
    exec_free(r->x);
    if (r->init)
        mig_act_clear(&r->a);
    json_decref(r->uuids);
    free(r);
}
