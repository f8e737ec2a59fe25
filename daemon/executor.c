/*
 * executor.c: the journaled walk of a plan for one job (executor.h).
 *
 * An action has three states, not two: not started, started (its outcome
 * unknown until a probe of the CN or API says), done.  So the walk writes
 * "started" and commits it before it acts, and "done" (with the job's ctx,
 * which holds the action's results) after; a restarted daemon trusts only
 * what the journal committed and probes whatever it left started.
 *
 * Everything here is driven by completions of ops.c: a stage says what the
 * completion means (a probe's or an action's operation, a retry wait, a
 * pause on the journal, a sleep between rounds).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "executor_int.h"
#include "invariant.h"
#include "log.h"
#include "util.h"

#define POOL "zones"
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 30000
#define API_WAIT_MS (300 * 1000)    /* how long a job waits for an API that is down */
#define FORWARD_PERMANENT_TRIES 5   /* a forward action failing for a non-transient reason */
#define UNDO_TRIES 6
#define LEFTOVER_TRIES 2            /* a removal that cannot risk the VM: then a leftover */
#define PAUSE_RETRY_MS 5000

static void drive(struct exec *x);
static void next_undo(struct exec *x);

/* ---- the journal ---- */

static const struct mig_step *step(struct exec *x)
{
    assert(x->at >= 0 && x->at < x->plan.n);
    return &x->plan.steps[x->at];
}

/* The journal's status of key, or -1 when it has none. */
int exec_jstatus(const struct exec *x, const char *key)
{
    for (size_t i = 0; i < x->njournal; i++)
        if (strcmp(x->journal[i].key, key) == 0)
            return (int)x->journal[i].status;
    return -1;
}

static void jcache(struct exec *x, const struct mig_step *s, enum mig_action_status st)
{
    for (size_t i = 0; i < x->njournal; i++) {
        if (strcmp(x->journal[i].key, s->key) == 0) {
            x->journal[i].status = st;
            return;
        }
    }
    x->journal = mig_realloc(x->journal, (x->njournal + 1) * sizeof(*x->journal));
    struct mig_action_rec *r = &x->journal[x->njournal++];
    memset(r, 0, sizeof(*r));
    snprintf(r->key, sizeof(r->key), "%s", s->key);
    snprintf(r->phase, sizeof(r->phase), "%s", mig_phase_name(s->phase));
    snprintf(r->side, sizeof(r->side), "%s", mig_side_name(s->def->side));
    r->status = st;
    r->seq = (int64_t)x->njournal;
}

int exec_load_journal(struct exec *x)
{
    free(x->journal);
    x->journal = NULL;
    x->njournal = 0;
    return mig_store_actions(x->d->store, x->job->uuid, &x->journal, &x->njournal);
}

static void on_pause_over(struct exec *x);

/*
 * Writes the current step's status (with the job's record) and then calls
 * then(x).  A write that fails pauses the walk: nothing else is acted on
 * until the write succeeds, tried again every few seconds.
 */
static void journal(struct exec *x, enum mig_action_status st, const char *error,
                    void (*then)(struct exec *x))
{
    const struct mig_step *s = step(x);
    bool paused = x->stage == ST_PAUSE;
    if (paused)
        mig_job_set_activity(x->job, NULL); /* "paused" must not be what gets saved */
    /* An action's own "done" carries how long its remote operations took. */
    int64_t op_ms = st == MIG_ACTION_DONE && x->stage == ST_ACT ? x->op_ms : -1;
    int rc = mig_store_action_save_timed(x->d->store, x->job, s->key, mig_phase_name(s->phase),
                                         mig_side_name(s->def->side), st, error, op_ms);
    if (rc == 0) {
        jcache(x, s, st);
        if (paused) {
            mig_log(MIG_LOG_INFO, x->job->uuid, x->job->vm_uuid,
                    "the journal can be written again; the job goes on");
            x->hooks->changed(x->owner);
        }
        x->stage = ST_IDLE;
        then(x);
        return;
    }
    if (!paused)
        mig_log(MIG_LOG_ERROR, x->job->uuid, x->job->vm_uuid,
                "cannot journal %s as %s: %s; the job is paused until the database can be written",
                s->key, mig_action_status_name(st), mig_strerror(rc));
    x->pending.status = st;
    snprintf(x->pending.error, sizeof(x->pending.error), "%s", error != NULL ? error : "");
    x->pending.then = then;
    x->stage = ST_PAUSE;
    mig_job_set_activity(x->job,
                         "paused: the database refused a write (%s); no action runs until it "
                         "can be written; retrying every %d s",
                         mig_strerror(rc), PAUSE_RETRY_MS / 1000);
    if (!paused)
        x->hooks->changed(x->owner);
    ops_sleep(&x->ops, PAUSE_RETRY_MS);
}

static void on_pause_over(struct exec *x)
{
    journal(x, x->pending.status, x->pending.error[0] != '\0' ? x->pending.error : NULL,
            x->pending.then);
}

/* ---- ending ---- */

void exec_finish(struct exec *x, int err)
{
    x->stage = ST_IDLE;
    mig_act_clear(&x->act);
    x->hooks->finished(x->owner, err);
}

static void finish_canceled(struct exec *x)
{
    exec_finish(x, MIG_ECANCELED);
}

static void finish_failed(struct exec *x)
{
    exec_finish(x, MIG_EREMOTE);
}

/* ---- running an action function ---- */

static int http_retries(const struct exec *x)
{
    /* A journaled action's retries are the executor's, so they show in the job. */
    return x->stage == ST_CALL ? -1 : 0;
}

static void start_fn(struct exec *x, enum stage stage, mig_act_fn fn)
{
    const struct mig_step *s = step(x);
    x->stage = stage;
    x->fn = fn;
    x->cur = &x->act;
    x->op_ms = 0;
    mig_act_clear(&x->act);
    mig_act_init(&x->act, x->job, &x->env, s->round, s->item);
    x->act.side = s->def->side;
    if (stage == ST_ACT || stage == ST_UNDO) {
        const char *on = s->def->side == MIG_SIDE_SOURCE || s->def->side == MIG_SIDE_TARGET
                             ? mig_job_side_host(x->job, s->def->side)
                             : mig_side_name(s->def->side);
        mig_job_set_activity(x->job, "%s%s on %s: %s", stage == ST_UNDO ? "undoing " : "", s->key,
                             on, s->def->does);
        mig_log(MIG_LOG_DEBUG, x->job->uuid, x->job->vm_uuid, "%s%s", stage == ST_UNDO ? "undo " : "",
                s->key);
        x->hooks->changed(x->owner);
    }
    drive(x);
}

static void on_fn_result(struct exec *x, int rc);

/* Runs the function until it needs an operation (started) or ends. */
static void drive(struct exec *x)
{
    int rc = x->fn(x->cur);
    if (rc != MIG_ACT_OP) {
        on_fn_result(x, rc);
        return;
    }
    struct mig_op *op = &x->cur->op;
    x->op_started_ms = mig_now_ms();
    if (x->job == NULL) {
        ops_start(&x->ops, op, x->peers, http_retries(x), 0);
        return;
    }
    if (op->kind == MIG_OP_RELAY || op->progress) {
        x->op_bytes = 0;
        x->rate = 0;
        x->relay_started_ms = mig_now_ms();
    }
    if (x->interrupted && (x->stage == ST_ACT || x->stage == ST_PROBE) &&
        !(step(x)->def->flags & MIG_ACT_FORWARD)) {
        /*
         * Interrupted (an abort, a pause, a sibling stream's failure) while
         * the action went on between operations: its next one never starts
         * and answers "canceled", as the one in flight was cut, so an action
         * that shrugs off a failed read cannot go on to start a whole stream.
         */
        ops_sleep(&x->ops, 0);
        ops_cancel(&x->ops);
        return;
    }
    uint64_t limit = (uint64_t)x->job->limit_mbps * 1000000 / 8;
    if (x->parent != NULL && x->parent->group_running > 1)
        limit /= (uint64_t)x->parent->group_running; /* the job's cap, shared by its streams */
    struct mig_peers peers = mig_job_peers(x->job);
    ops_start(&x->ops, op, &peers, http_retries(x), limit);
}

/*
 * The stream in flight has moved bytes in all: the job's count grows by
 * what is new (streams of a group add up), its rate is the sum of its
 * streams' rates.
 */
static void count_streamed(struct exec *x, uint64_t bytes)
{
    struct mig_progress *p = &x->job->progress;
    p->bytes_sent += (int64_t)(bytes - x->op_bytes);
    x->op_bytes = bytes;
    int64_t elapsed = mig_now_ms() - x->relay_started_ms;
    if (elapsed > 0)
        x->rate = bytes * 1000 / (uint64_t)elapsed;
    uint64_t rate = x->rate;
    if (x->parent != NULL) {
        rate = 0;
        for (int k = 0; k < x->parent->width; k++)
            if (x->parent->kids[k].running)
                rate += x->parent->kids[k].x->rate;
    }
    p->rate_bytes_s = (int64_t)rate;
    int64_t left = p->bytes_total - p->bytes_sent;
    p->eta_s = p->rate_bytes_s > 0 && left > 0 ? left / p->rate_bytes_s : -1;
}

static void on_progress(void *owner, uint64_t bytes)
{
    struct exec *x = owner;
    if (x->cur == NULL || !x->cur->op.progress || x->job == NULL || x->stage == ST_IDLE)
        return; /* ST_IDLE: freed (exec_free), a kid's parent perhaps already gone */
    count_streamed(x, bytes);
    x->hooks->changed(x->owner);
}

/* ---- retrying ---- */

static uint64_t backoff_ms(int attempt)
{
    uint64_t ms = RETRY_FIRST_MS;
    for (int i = 1; i < attempt && ms < RETRY_MAX_MS; i++)
        ms *= 2;
    return ms < RETRY_MAX_MS ? ms : RETRY_MAX_MS;
}

/*
 * Whether a failure now leaves a leftover rather than failing the walk: an
 * undo of what the def says it leaves, or a removal past the point of no
 * return (the cleanups: every forward def with `leaves` removes something).
 * An action that builds (a send, a snapshot, a reservation) fails as ever.
 */
static bool leaves_leftover(const struct exec *x, const struct mig_action_def *def)
{
    return def->leaves != NULL && (x->undo || (def->flags & MIG_ACT_FORWARD));
}

/* Whether the current action may be tried again after this failure. */
static bool may_retry(struct exec *x)
{
    const struct mig_action_def *def = step(x)->def;
    bool transient = x->act.transient;
    if (x->attempt == 0)
        x->first_fail_ms = mig_now_ms();
    if (leaves_leftover(x, def))
        return x->attempt < LEFTOVER_TRIES - 1; /* seconds, not minutes: then a leftover */
    if (x->undo)
        return x->attempt < UNDO_TRIES;
    if (def->flags & MIG_ACT_FORWARD)
        return transient || x->attempt < FORWARD_PERMANENT_TRIES;
    if (def->flags & MIG_ACT_TRANSFER)
        return x->attempt < x->d->cfg->transfer.retries;
    return transient && mig_now_ms() - x->first_fail_ms < API_WAIT_MS;
}

static void retry_later(struct exec *x)
{
    x->attempt++;
    uint64_t ms = backoff_ms(x->attempt);
    mig_job_set_activity(x->job, "%s; retry %d in %llu s", x->act.err_msg, x->attempt,
                         (unsigned long long)(ms / 1000));
    mig_log(MIG_LOG_WARN, x->job->uuid, x->job->vm_uuid, "%s: %s: %s; retry %d in %llu ms",
            step(x)->key, x->act.err_code, x->act.err_msg, x->attempt, (unsigned long long)ms);
    x->hooks->changed(x->owner);
    x->retry_stage = x->stage;
    x->stage = ST_RETRY_WAIT;
    ops_sleep(&x->ops, ms);
}

/* After the retry wait: the action may have half happened, so its probe comes first. */
static void retry_now(struct exec *x)
{
    const struct mig_action_def *def = step(x)->def;
    mig_job_set_activity(x->job, NULL);
    if (!x->undo && x->interrupted && !(def->flags & MIG_ACT_FORWARD)) {
        journal(x, MIG_ACTION_FAILED, x->interrupted_by, finish_canceled);
        return;
    }
    if (x->undo)
        start_fn(x, def->probe != NULL && x->retry_stage == ST_UNDO_PROBE ? ST_UNDO_PROBE : ST_UNDO,
                 x->retry_stage == ST_UNDO_PROBE ? def->probe : def->undo);
    else if (def->probe != NULL)
        start_fn(x, ST_PROBE, def->probe);
    else
        start_fn(x, ST_ACT, def->act);
}

/* ---- leftovers ---- */

/*
 * The current action (or undo) could not remove what it should: the job
 * keeps it as a leftover to retry later (job.h), and the walk goes on.
 */
static void note_leftover(struct exec *x)
{
    const struct mig_step *s = step(x);
    struct mig_leftover lo = {.undo = x->undo};
    /* Where the refused command ran (an undo may act on the other CN than its action). */
    enum mig_side on = x->act.op.kind != MIG_OP_NONE ? x->act.op.on : s->def->side;
    snprintf(lo.key, sizeof(lo.key), "%s", s->key);
    snprintf(lo.cn, sizeof(lo.cn), "%s",
             on == MIG_SIDE_SOURCE || on == MIG_SIDE_TARGET ? mig_job_side_host(x->job, on)
             : on == MIG_SIDE_LOCAL                       ? "head node"
                                                          : "api");
    snprintf(lo.kind, sizeof(lo.kind), "%s", s->def->leaves);
    snprintf(lo.name, sizeof(lo.name), "%s",
             x->act.object[0] != '\0' ? x->act.object : s->def->does);
    snprintf(lo.reason, sizeof(lo.reason), "%s", x->act.err_msg);
    if (mig_job_leftover_note(x->job, &lo, mig_now_ms()) != 0)
        mig_log(MIG_LOG_ERROR, x->job->uuid, x->job->vm_uuid,
                "too many leftovers to keep; %s %s on %s is not retried: %s", lo.kind, lo.name,
                lo.cn, lo.reason);
    else
        mig_log(MIG_LOG_WARN, x->job->uuid, x->job->vm_uuid,
                "leftover: %s %s on %s (%s); retried later, the job goes on", lo.kind, lo.name,
                lo.cn, lo.reason);
    mig_job_set_activity(x->job, NULL);
    x->hooks->changed(x->owner);
}

/* The current action's work is done: a leftover it had is gone. */
static void clear_leftover(struct exec *x)
{
    const struct mig_step *s = step(x);
    if (leaves_leftover(x, s->def) && mig_job_leftover_clear(x->job, s->key, x->undo))
        mig_log(MIG_LOG_INFO, x->job->uuid, x->job->vm_uuid, "leftover of %s removed", s->key);
}

/* ---- the forward walk ---- */

static void after_done(struct exec *x)
{
    x->at++;
    exec_next_forward(x);
}

static void begin_act(struct exec *x)
{
    start_fn(x, ST_ACT, step(x)->def->act);
}

static void after_started(struct exec *x)
{
    exec_crash_point(step(x)->key, "after-start");
    begin_act(x);
}

static void forward_failed(struct exec *x)
{
    const struct mig_step *s = step(x);
    bool forward = (s->def->flags & MIG_ACT_FORWARD) != 0;
    if (x->interrupted && !forward) {
        journal(x, MIG_ACTION_FAILED, x->interrupted_by, finish_canceled);
        return;
    }
    if (may_retry(x)) {
        retry_later(x);
        return;
    }
    if (leaves_leftover(x, s->def)) {
        note_leftover(x);
        journal(x, MIG_ACTION_FAILED, x->act.err_msg, after_done);
        return;
    }
    x->failed_forward = forward;
    mig_log(MIG_LOG_ERROR, x->job->uuid, x->job->vm_uuid, "%s failed: %s: %s", s->key,
            x->act.err_code, x->act.err_msg);
    mig_job_set_error(x->job, x->act.err_code, x->act.err_msg);
    mig_job_set_activity(x->job, NULL);
    journal(x, MIG_ACTION_FAILED, x->act.err_msg, finish_failed);
}

bool exec_row_pending(const struct exec *x, int i)
{
    const struct mig_step *s = &x->plan.steps[i];
    return exec_jstatus(x, s->key) != MIG_ACTION_DONE &&
           (s->def->applies == NULL || s->def->applies(x->job, s->round, s->item));
}

void exec_next_forward(struct exec *x)
{
    x->stage = ST_IDLE;
    for (; x->at < x->plan.n; x->at++) {
        if (!exec_row_pending(x, x->at))
            continue;
        const struct mig_step *s = step(x);
        int st = exec_jstatus(x, s->key);
        if ((s->def->flags & MIG_ACT_PARALLEL) && x->parent == NULL && !x->interrupted &&
            exec_group_start(x))
            return;
        x->attempt = 0;
        if (x->interrupted && !(s->def->flags & MIG_ACT_FORWARD)) {
            exec_finish(x, MIG_ECANCELED);
            return;
        }
        if (st == MIG_ACTION_STARTED || st == MIG_ACTION_FAILED || st == MIG_ACTION_UNDO_STARTED) {
            /* Left started by a daemon that stopped: what happened is for the CN to say. */
            if (s->def->probe != NULL)
                start_fn(x, ST_PROBE, s->def->probe);
            else
                begin_act(x);
            return;
        }
        exec_crash_point(s->key, "before-start");
        journal(x, MIG_ACTION_STARTED, NULL, after_started);
        return;
    }
    if (x->parent == NULL) /* a kid's sibling may still say what it does */
        mig_job_set_activity(x->job, NULL);
    exec_finish(x, 0);
}

/* ---- the undo walk ---- */

static void after_undone(struct exec *x)
{
    x->at++;
    next_undo(x);
}

static void after_undo_started(struct exec *x)
{
    exec_crash_point(step(x)->key, "undo-after-start");
    start_fn(x, ST_UNDO, step(x)->def->undo);
}

static void begin_undo(struct exec *x)
{
    exec_crash_point(step(x)->key, "undo-before-start");
    journal(x, MIG_ACTION_UNDO_STARTED, NULL, after_undo_started);
}

static void undo_failed(struct exec *x)
{
    const struct mig_step *s = step(x);
    if (may_retry(x)) {
        retry_later(x);
        return;
    }
    if (leaves_leftover(x, s->def)) {
        note_leftover(x);
        x->attempt = 0;
        journal(x, MIG_ACTION_FAILED, x->act.err_msg, after_undone);
        return;
    }
    if (s->def->flags & MIG_ACT_BEST_EFFORT) {
        /* A leftover, never a risk to the VM: said, and the walk goes on. */
        mig_log(MIG_LOG_WARN, x->job->uuid, x->job->vm_uuid,
                "could not undo %s (%s); left as it is, the undo goes on", s->key,
                x->act.err_msg);
        x->attempt = 0;
        x->at++;
        next_undo(x);
        return;
    }
    char msg[sizeof(x->act.err_msg) + 64];
    snprintf(msg, sizeof(msg), "the rollback stopped at %s: %s", s->key, x->act.err_msg);
    mig_log(MIG_LOG_ERROR, x->job->uuid, x->job->vm_uuid, "%s", msg);
    mig_job_set_error(x->job, "RollbackIncomplete", msg);
    mig_job_set_activity(x->job, NULL);
    exec_finish(x, MIG_EREMOTE);
}

static void next_undo(struct exec *x)
{
    x->stage = ST_IDLE;
    for (; x->at < x->plan.n; x->at++) {
        const struct mig_step *s = step(x);
        int st = exec_jstatus(x, s->key);
        if (st == MIG_ACTION_UNDONE || st < 0)
            continue;
        x->attempt = 0;
        if ((st == MIG_ACTION_STARTED || st == MIG_ACTION_FAILED) && s->def->probe != NULL &&
            !(s->def->flags & MIG_ACT_UNDO_BLIND)) {
            /* Started, perhaps never done: undo only what is there. */
            start_fn(x, ST_UNDO_PROBE, s->def->probe);
            return;
        }
        begin_undo(x);
        return;
    }
    mig_job_set_activity(x->job, NULL);
    exec_finish(x, 0);
}

/* ---- completions ---- */

/* What the action (or its undo) is for is so now, by its probe or its act: journal it. */
static void achieved(struct exec *x, bool undo)
{
    clear_leftover(x);
    if (undo)
        journal(x, MIG_ACTION_UNDONE, NULL, after_undone);
    else
        journal(x, MIG_ACTION_DONE, NULL, after_done);
}

/* The action (or its undo) itself ended: done, or failed. */
static void acted(struct exec *x, int rc, bool undo)
{
    if (rc == MIG_ACT_FAIL) {
        if (undo)
            undo_failed(x);
        else
            forward_failed(x);
        return;
    }
    exec_crash_point(step(x)->key, undo ? "undo-after-act" : "after-act");
    achieved(x, undo);
}

static void on_fn_result(struct exec *x, int rc)
{
    switch (x->stage) {
    case ST_CALL:
        exec_finish(x, rc == MIG_ACT_DONE ? 0 : MIG_EREFUSED);
        return;
    case ST_PROBE:
        if (rc == MIG_ACT_DONE)
            achieved(x, false);
        else if (rc != MIG_ACT_ABSENT)
            forward_failed(x);
        else if (exec_jstatus(x, step(x)->key) == MIG_ACTION_STARTED)
            begin_act(x);
        else
            journal(x, MIG_ACTION_STARTED, NULL, begin_act);
        return;
    case ST_ACT:
        acted(x, rc, false);
        return;
    case ST_UNDO_PROBE:
        if (rc == MIG_ACT_ABSENT)
            achieved(x, true);
        else if (rc == MIG_ACT_DONE)
            begin_undo(x);
        else
            undo_failed(x);
        return;
    case ST_UNDO:
        acted(x, rc, true);
        return;
    default:
        /* A result nobody waits for: the walk's state is not what the journal says. */
        MIG_INVARIANT(false, "job %s: an action's result in executor stage %d",
                      x->job != NULL ? x->job->uuid : "(none)", (int)x->stage);
    }
}

static void on_op_done(void *owner, const struct mig_result *res)
{
    struct exec *x = owner;
    switch (x->stage) {
    case ST_RETRY_WAIT:
        retry_now(x);
        return;
    case ST_PAUSE:
        on_pause_over(x);
        return;
    case ST_SLEEP:
        exec_finish(x, 0);
        return;
    case ST_IDLE:
        return;
    default:
        break;
    }
    x->op_ms += mig_now_ms() - x->op_started_ms;
    if ((x->cur->op.kind == MIG_OP_RELAY || x->cur->op.progress) && x->job != NULL) {
        x->streamed += res->bytes;
        count_streamed(x, res->bytes);
        x->rate = 0;
    }
    x->cur->res = res;
    drive(x);
}

/* ---- the API ---- */

int exec_alloc(struct migd *d, struct mig_job *job, const struct mig_peers *peers,
               const struct exec_hooks *hooks, void *owner, struct exec **out)
{
    struct exec *x = mig_calloc(1, sizeof(*x));
    x->d = d;
    x->job = job;
    x->peers = peers;
    x->hooks = hooks;
    x->owner = owner;
    x->env = (struct mig_act_env){.pool = POOL,
                                  .vmapi = d->cfg->apis.vmapi,
                                  .cnapi = d->cfg->apis.cnapi,
                                  .napi = d->cfg->apis.napi,
                                  .imgapi = d->cfg->apis.imgapi,
                                  .ssh_user = d->cfg->ssh.user,
                                  .ssh_port = d->cfg->ssh.port,
                                  .known_hosts = d->cfg->ssh.known_hosts,
                                  .health_command = d->cfg->health.command,
                                  .health_timeout_s = (unsigned)d->cfg->health.timeout_s};
    int rc = ops_init(&x->ops, d, x, on_op_done, on_progress);
    if (rc != 0) {
        free(x);
        return rc;
    }
    x->cur = &x->act;
    *out = x;
    return 0;
}

int exec_new(struct migd *d, struct mig_job *job, const struct exec_hooks *hooks, void *owner,
             struct exec **out)
{
    return exec_alloc(d, job, NULL, hooks, owner, out);
}

int exec_new_calls(struct migd *d, const struct mig_peers *peers, const struct exec_hooks *hooks,
                   void *owner, struct exec **out)
{
    static const struct mig_peers no_cn; /* API calls only */
    return exec_alloc(d, NULL, peers != NULL ? peers : &no_cn, hooks, owner, out);
}

static void on_ops_closed(void *arg)
{
    struct exec *x = arg;
    mig_act_clear(&x->act);
    free(x->journal);
    free(x);
}

void exec_free(struct exec *x)
{
    if (x == NULL)
        return;
    for (int i = 0; i < MIG_MAX_STREAMS; i++)
        exec_free(x->kids[i].x);
    x->stage = ST_IDLE;
    ops_close(&x->ops, on_ops_closed, x);
}

void exec_run(struct exec *x, const struct mig_plan *plan)
{
    assert(x->job != NULL); /* a walk has a journal: only a job's executor walks */
    x->plan = *plan;
    x->at = 0;
    x->undo = false;
    x->failed_forward = false;
    x->streamed = 0;
    x->interrupted = false; /* a pause cut the walk before: this one goes on */
    if (exec_load_journal(x) != 0) {
        /* The journal cannot be read: acting blind is what it exists to prevent. */
        mig_job_set_error(x->job, "DatabaseError", "cannot read the job's journal");
        exec_finish(x, MIG_EDB);
        return;
    }
    exec_next_forward(x);
}

void exec_undo(struct exec *x, unsigned phase_mask)
{
    assert(x->job != NULL); /* a walk has a journal: only a job's executor walks */
    x->undo = true;
    x->at = 0;
    x->plan.n = 0;
    if (exec_load_journal(x) != 0) {
        mig_job_set_error(x->job, "DatabaseError", "cannot read the job's journal to undo it");
        exec_finish(x, MIG_EDB);
        return;
    }
    /* The journal in reverse order of first start. */
    for (size_t k = x->njournal; k-- > 0;) {
        const struct mig_action_rec *r = &x->journal[k];
        struct mig_step s;
        if (mig_plan_step_from_key(r->key, &s) != 0) {
            mig_log(MIG_LOG_WARN, x->job->uuid, x->job->vm_uuid,
                    "journal names an action this migd does not know: %s; not undone", r->key);
            continue;
        }
        if (!(phase_mask & (1u << s.phase)) || s.def->undo == NULL ||
            (s.def->flags & MIG_ACT_FORWARD) || x->plan.n >= MIG_PLAN_MAX)
            continue;
        x->plan.steps[x->plan.n++] = s;
    }
    next_undo(x);
}

void exec_undo_steps(struct exec *x, const struct mig_plan *plan)
{
    assert(x->job != NULL); /* a walk has a journal: only a job's executor walks */
    x->undo = true;
    x->at = 0;
    x->plan = *plan;
    if (exec_load_journal(x) != 0) {
        mig_job_set_error(x->job, "DatabaseError", "cannot read the job's journal to undo it");
        exec_finish(x, MIG_EDB);
        return;
    }
    next_undo(x);
}

void exec_call(struct exec *x, mig_act_fn fn, struct mig_act *a)
{
    x->ops.unsaved = true;
    x->stage = ST_CALL;
    x->fn = fn;
    x->cur = a;
    drive(x);
}

void exec_sleep(struct exec *x, uint64_t ms)
{
    x->stage = ST_SLEEP;
    ops_sleep(&x->ops, ms);
}

void exec_wake(struct exec *x)
{
    if (x->stage == ST_SLEEP)
        ops_cancel(&x->ops);
}

void exec_interrupt(struct exec *x, const char *why)
{
    x->interrupted = true;
    x->interrupted_by = why;
    switch (x->stage) {
    case ST_PROBE:
    case ST_ACT:
        if (!(step(x)->def->flags & MIG_ACT_FORWARD))
            ops_cancel(&x->ops);
        break;
    case ST_RETRY_WAIT:
        if (!x->undo)
            ops_cancel(&x->ops);
        break;
    case ST_SLEEP:
        ops_cancel(&x->ops);
        break;
    case ST_GROUP:
        for (int i = 0; i < x->width; i++)
            if (x->kids[i].running)
                exec_interrupt(x->kids[i].x, why);
        break;
    default:
        break;
    }
}

const struct mig_act_env *exec_env(const struct exec *x)
{
    return &x->env;
}

bool exec_failed_forward(const struct exec *x)
{
    return x->failed_forward;
}

bool exec_paused(const struct exec *x)
{
    if (x->stage == ST_GROUP)
        for (int i = 0; i < x->width; i++)
            if (x->kids[i].running && exec_paused(x->kids[i].x))
                return true;
    return x->stage == ST_PAUSE;
}

uint64_t exec_streamed(const struct exec *x)
{
    return x->streamed;
}
