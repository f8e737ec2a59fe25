/*
 * act.c: the small helpers action functions share (act.h): filling in the
 * next operation, reading a result, and ending with a one-line failure.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "act.h"
#include "err.h"
#include "triton.h"
#include "util.h"

const char *mig_side_name(enum mig_side side)
{
    switch (side) {
    case MIG_SIDE_SOURCE:
        return "source";
    case MIG_SIDE_TARGET:
        return "target";
    case MIG_SIDE_API:
        return "api";
    case MIG_SIDE_LOCAL:
        return "local";
    }
    return "unknown";
}

void mig_op_clear(struct mig_op *op)
{
    free(op->cmd);
    free(op->cmd2);
    free(op->input);
    free(op->url);
    json_decref(op->body);
    memset(op, 0, sizeof(*op));
}

void mig_act_init(struct mig_act *a, struct mig_job *job, const struct mig_act_env *env,
                  int round, int item)
{
    memset(a, 0, sizeof(*a));
    a->job = job;
    a->env = env;
    a->side = MIG_SIDE_LOCAL;
    a->round = round;
    a->item = item;
}

void mig_act_clear(struct mig_act *a)
{
    mig_op_clear(&a->op);
}

/* Copies the first line of text (at most bufsz - 1 bytes) into buf. */
static void first_line(const char *text, char *buf, size_t bufsz)
{
    size_t n = 0;
    while (text != NULL && (text[n] == '\n' || text[n] == '\r' || text[n] == ' '))
        text++;
    while (text != NULL && text[n] != '\0' && text[n] != '\n' && text[n] != '\r' && n + 1 < bufsz)
        n++;
    if (text != NULL && n > 0)
        memcpy(buf, text, n);
    buf[n] = '\0';
}

void mig_res_why(const struct mig_result *res, char *buf, size_t bufsz)
{
    char line[384];
    if (res == NULL) {
        snprintf(buf, bufsz, "no result");
    } else if (res->err != 0) {
        /* A command that ended the stream early says why on its stderr. */
        first_line(res->errout, line, sizeof(line));
        snprintf(buf, bufsz, "%s%s%s", res->detail[0] != '\0' ? res->detail : mig_strerror(res->err),
                 line[0] != '\0' ? ": " : "", line);
    } else if (res->http_status != 0) {
        const char *msg = json_string_value(json_object_get(res->json, "message"));
        const char *code = json_string_value(json_object_get(res->json, "code"));
        snprintf(buf, bufsz, "HTTP %ld%s%s%s%s", res->http_status, code != NULL ? " " : "",
                 code != NULL ? code : "", msg != NULL ? ": " : "", msg != NULL ? msg : "");
    } else {
        first_line(res->errout, line, sizeof(line));
        snprintf(buf, bufsz, "exit %d: %s", res->exit_status,
                 line[0] != '\0' ? line : "no message");
    }
}

bool mig_res_ok(const struct mig_result *res)
{
    return res != NULL && res->err == 0 && res->http_status == 0 && res->exit_status == 0;
}

bool mig_res_http_ok(const struct mig_result *res)
{
    return res != NULL && res->err == 0 && res->http_status >= 200 && res->http_status < 300;
}

int mig_act_take_vms_page(struct mig_act *a, json_t *all)
{
    if (!mig_res_http_ok(a->res) || !json_is_array(a->res->json))
        return mig_act_fail_res(a, "VmapiError",
                                "cannot list the active VMs from VMAPI (for "
                                "placement.spread_tag)");
    size_t page = json_array_size(a->res->json);
    json_array_extend(all, a->res->json);
    return page == MIG_VMAPI_PAGE;
}

bool mig_res_err_has(const struct mig_result *res, const char *needle)
{
    return res != NULL && res->errout != NULL && strstr(res->errout, needle) != NULL;
}

bool mig_res_transient(const struct mig_result *res)
{
    if (res == NULL)
        return false;
    if (res->err != 0)
        return res->err != -EINVAL && res->err != MIG_EHOSTKEY;
    return res->http_status >= 500 || res->http_status == 429;
}

/* Formats the message, cut at a word boundary when it does not fit and kept to one line. */
static void set_message(struct mig_act *a, const char *fmt, va_list ap, const char *why)
{
    char msg[sizeof(a->err_msg)];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (why != NULL) {
        size_t n = strlen(msg);
        snprintf(msg + n, sizeof(msg) - n, ": %s", why);
    }
    for (char *p = msg; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    memcpy(a->err_msg, msg, sizeof(msg));
}

int mig_act_fail(struct mig_act *a, const char *code, const char *fmt, ...)
{
    snprintf(a->err_code, sizeof(a->err_code), "%s", code);
    va_list ap;
    va_start(ap, fmt);
    set_message(a, fmt, ap, NULL);
    va_end(ap);
    a->transient = false;
    return MIG_ACT_FAIL;
}

int mig_act_fail_res(struct mig_act *a, const char *code, const char *fmt, ...)
{
    char why[512];
    mig_res_why(a->res, why, sizeof(why));
    snprintf(a->err_code, sizeof(a->err_code), "%s", code);
    va_list ap;
    va_start(ap, fmt);
    set_message(a, fmt, ap, why);
    va_end(ap);
    a->transient = mig_res_transient(a->res);
    return MIG_ACT_FAIL;
}

/* a's next operation, cleared and set to kind on side on; the caller fills in the rest. */
static struct mig_op *op_new(struct mig_act *a, enum mig_op_kind kind, enum mig_side on)
{
    mig_op_clear(&a->op);
    a->op.kind = kind;
    a->op.on = on;
    return &a->op;
}

void mig_act_ssh(struct mig_act *a, enum mig_side side, char *cmd, char *input)
{
    struct mig_op *op = op_new(a, MIG_OP_SSH, side);
    op->cmd = cmd;
    op->input = input;
}

void mig_act_exec(struct mig_act *a, char *cmd, unsigned timeout_s)
{
    struct mig_op *op = op_new(a, MIG_OP_EXEC, MIG_SIDE_LOCAL);
    op->cmd = cmd;
    op->timeout_s = timeout_s;
}

void mig_act_relay(struct mig_act *a, enum mig_side from, char *producer, enum mig_side to,
                   char *consumer)
{
    struct mig_op *op = op_new(a, MIG_OP_RELAY, from);
    op->to = to;
    op->cmd = producer;
    op->cmd2 = consumer;
    op->progress = true;
}

void mig_act_http(struct mig_act *a, const char *api, const char *method, char *url, json_t *body)
{
    struct mig_op *op = op_new(a, MIG_OP_HTTP, MIG_SIDE_API);
    op->api = api;
    op->method = method;
    op->url = url;
    op->body = body;
}

struct mig_peers mig_job_peers(const struct mig_job *job)
{
    return (struct mig_peers){.ip = {job->ctx.source_ip, job->ctx.target_ip},
                              .host = {job->source_hostname, job->target_hostname},
                              .job_uuid = job->uuid,
                              .vm_uuid = job->vm_uuid};
}

const char *mig_peers_ip(const struct mig_peers *p, enum mig_side side)
{
    if (side != MIG_SIDE_SOURCE && side != MIG_SIDE_TARGET)
        return NULL;
    const char *ip = p->ip[side];
    return ip != NULL && ip[0] != '\0' ? ip : NULL;
}

const char *mig_job_side_ip(const struct mig_job *job, enum mig_side side)
{
    struct mig_peers p = mig_job_peers(job);
    return mig_peers_ip(&p, side);
}

const char *mig_job_side_host(const struct mig_job *job, enum mig_side side)
{
    const char *h = side == MIG_SIDE_SOURCE   ? job->source_hostname
                    : side == MIG_SIDE_TARGET ? job->target_hostname
                                              : NULL;
    if (h != NULL && h[0] != '\0')
        return h;
    return side == MIG_SIDE_SOURCE ? "the source CN" : "the target CN";
}

void mig_round_text(int round, char *buf, size_t bufsz)
{
    if (round == MIG_ROUND_FINAL)
        snprintf(buf, bufsz, "final");
    else if (round == MIG_ROUND_BACK)
        snprintf(buf, bufsz, "back");
    else if (round == MIG_ROUND_BACK_PRE)
        snprintf(buf, bufsz, "back1");
    else
        snprintf(buf, bufsz, "%d", round);
}

void mig_snap_name(const struct mig_job *job, int round, char out[128])
{
    char r[16];
    mig_round_text(round, r, sizeof(r));
    snprintf(out, 128, "migd-%s-%s", job->uuid, r);
}
