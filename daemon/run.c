/*
 * run.c: the plumbing that lets a step await SSH commands, relays, HTTP
 * calls and sleeps (see run.h).  Each completion stores its result in the
 * run and re-enters the step; a run marked dead while an operation is
 * outstanding is freed only when that operation completes.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "run.h"
#include "util.h"

void run_start_step(struct run *r, run_step_fn step, run_done_fn done)
{
    r->step = step;
    r->done = done;
    r->pc = 0;
    r->loop_i = 0;
    r->loop_j = 0;
    step(r);
}

void run_finish_step(struct run *r, int err)
{
    run_done_fn done = r->done;
    r->step = NULL;
    r->pc = 0;
    if (done != NULL)
        done(r, err);
}

void run_continue(struct run *r)
{
    if (r->step != NULL)
        r->step(r);
}

/* Called by every completion: reaps a dead run, else resumes its step. */
static void run_completed(struct run *r)
{
    r->busy = false;
    if (r->dead) {
        run_free(r);
        return;
    }
    run_continue(r);
}

static void set_text(char **dst, const char *src, size_t len)
{
    free(*dst);
    *dst = mig_malloc(len + 1);
    if (len > 0)
        memcpy(*dst, src, len);
    (*dst)[len] = '\0';
}

static void on_ssh_done(void *arg, const struct mig_ssh_result *res)
{
    struct run *r = arg;
    r->ssh_err = res->err_code;
    r->ssh_status = res->exit_status;
    set_text(&r->ssh_out, res->out != NULL ? res->out : "", res->out != NULL ? res->out_len : 0);
    set_text(&r->ssh_errout, res->err != NULL ? res->err : "", res->err != NULL ? res->err_len : 0);
    snprintf(r->ssh_detail, sizeof(r->ssh_detail), "%s", res->detail);
    run_completed(r);
}

int run_ssh(struct run *r, const char *host, char *cmd, const char *input)
{
    int rc;
    set_text(&r->ssh_out, "", 0);
    set_text(&r->ssh_errout, "", 0);
    r->ssh_status = -1;
    if (cmd == NULL) {
        /* A builder refused an argument: nothing unvalidated may run. */
        rc = -EINVAL;
        snprintf(r->ssh_detail, sizeof(r->ssh_detail),
                 "refused to build a command from an invalid name");
    } else {
        mig_log(MIG_LOG_DEBUG, r->submit_cb != NULL ? NULL : r->job->uuid, r->job->vm_uuid,
                "ssh %s: %s", host, cmd);
        rc = mig_ssh_exec(r->d->ssh, host, cmd, input, input != NULL ? strlen(input) : 0, 600,
                          on_ssh_done, r);
        if (rc != 0)
            snprintf(r->ssh_detail, sizeof(r->ssh_detail), "ssh %s: %s", host, mig_strerror(rc));
    }
    free(cmd);
    if (rc == 0) {
        r->busy = true;
        return 0;
    }
    r->ssh_err = rc;
    return rc;
}

static void on_relay_progress(void *arg, uint64_t bytes)
{
    struct run *r = arg;
    r->relay_bytes = bytes;
    engine_on_progress(r);
}

static void on_relay_done(void *arg, const struct mig_ssh_relay_result *res)
{
    struct run *r = arg;
    r->relay_bytes = res->bytes;
    r->relay_err = res->err_code;
    if (r->relay_err == 0 && (res->src.exit_status != 0 || res->dst.exit_status != 0))
        r->relay_err = MIG_EREMOTE;
    if (r->relay_err != 0) {
        const char *side_err = res->dst.exit_status != 0 ? res->dst.err : res->src.err;
        snprintf(r->ssh_detail, sizeof(r->ssh_detail), "%s%s%s (send exit %d, receive exit %d)",
                 res->detail, res->detail[0] != '\0' ? ": " : "", side_err != NULL ? side_err : "",
                 res->src.exit_status, res->dst.exit_status);
        /* Keep the message to one line for the operator. */
        for (char *p = r->ssh_detail; *p != '\0'; p++)
            if (*p == '\n')
                *p = ' ';
    }
    engine_on_progress(r);
    run_completed(r);
}

int run_relay(struct run *r, const char *src_host, char *src_cmd, const char *dst_host,
              char *dst_cmd)
{
    int rc;
    r->relay_bytes = 0;
    r->relay_base = (uint64_t)r->job->progress.bytes_sent;
    r->relay_started_ms = mig_now_ms();
    if (src_cmd == NULL || dst_cmd == NULL) {
        rc = -EINVAL;
        snprintf(r->ssh_detail, sizeof(r->ssh_detail),
                 "refused to build a command from an invalid name");
    } else {
        mig_log(MIG_LOG_INFO, r->submit_cb != NULL ? NULL : r->job->uuid, r->job->vm_uuid,
                "relay %s: %s -> %s: %s", src_host, src_cmd, dst_host, dst_cmd);
        struct mig_ssh_relay_opts opts = {
            .buffer_bytes = 0,
            .limit_bytes_s = (uint64_t)r->d->cfg->transfer.limit_mbps * 1000000 / 8,
            .idle_timeout_s = 600,
        };
        rc = mig_ssh_relay(r->d->ssh, src_host, src_cmd, dst_host, dst_cmd, &opts,
                           on_relay_progress, on_relay_done, r);
        if (rc != 0)
            snprintf(r->ssh_detail, sizeof(r->ssh_detail), "relay: %s", mig_strerror(rc));
    }
    free(src_cmd);
    free(dst_cmd);
    if (rc == 0) {
        r->busy = true;
        return 0;
    }
    r->relay_err = rc;
    return rc;
}

static void on_http_done(void *arg, const struct mig_http_resp *resp)
{
    struct run *r = arg;
    r->http_err = resp->err_code;
    r->http_status = resp->status;
    json_decref(r->http_json);
    r->http_json = json_incref(resp->json);
    snprintf(r->http_detail, sizeof(r->http_detail), "%s", resp->detail);
    run_completed(r);
}

int run_http(struct run *r, const char *method, char *url, json_t *body)
{
    json_decref(r->http_json);
    r->http_json = NULL;
    r->http_status = 0;
    r->http_detail[0] = '\0';
    struct mig_http_req req = {
        .method = method,
        .url = url,
        .body = body,
        .timeout_ms = 30000,
        .total_ms = 120000,
        .retries = r->d->cfg->transfer.retries,
    };
    int rc = -EINVAL;
    if (url == NULL) {
        /* A builder refused a name from an API: nothing unvalidated is sent. */
        snprintf(r->http_detail, sizeof(r->http_detail),
                 "%s: refused to build a URL from an invalid name", method);
        r->http_err = rc;
        json_decref(body);
        return rc;
    }
    mig_log(MIG_LOG_DEBUG, r->submit_cb != NULL ? NULL : r->job->uuid, r->job->vm_uuid, "%s %s",
            method, url);
    rc = mig_http_request(r->d->http, &req, on_http_done, r);
    if (rc != 0) {
        r->http_err = rc;
        snprintf(r->http_detail, sizeof(r->http_detail), "%s %s: %s", method, url,
                 mig_strerror(rc));
    }
    free(url);
    json_decref(body);
    if (rc == 0)
        r->busy = true;
    return rc;
}

static void on_timer(uv_timer_t *t)
{
    run_completed(t->data);
}

int run_sleep(struct run *r, uint64_t ms)
{
    r->busy = true;
    uv_timer_start(&r->timer, on_timer, ms, 0);
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct run *r = h->data;
    mig_job_free(r->job);
    free(r);
}

void run_free(struct run *r)
{
    if (r->busy) {
        /* An operation still refers to r: reap it when that completes. */
        r->dead = true;
        if (uv_is_active((uv_handle_t *)&r->timer)) {
            uv_timer_stop(&r->timer);
            r->busy = false;
        } else {
            return;
        }
    }
    if (r->timer_closing)
        return;
    r->timer_closing = true;
    json_decref(r->vm);
    json_decref(r->servers);
    json_decref(r->http_json);
    json_decref(r->plan);
    free(r->ssh_out);
    free(r->ssh_errout);
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}
