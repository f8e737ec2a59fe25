/*
 * run.h: one job in motion.  A run is the in-memory companion of a job while
 * the engine works on it: the data fetched from the APIs, the result of the
 * last remote command or HTTP call, and the resume point of the step now
 * running.
 *
 * Steps are written as straight-line code with RUN_AWAIT(): the macro starts
 * an asynchronous operation and returns to the event loop; when the
 * operation completes, run_continue() calls the step function again, and the
 * switch in RUN_BEGIN() jumps back to just after the RUN_AWAIT().  This is
 * the classic C "protothread": local variables do not survive an await, so
 * everything a step needs across awaits lives in struct run or in job->ctx
 * (which is persisted, so a restarted daemon can continue).
 */
#ifndef MIGD_RUN_H
#define MIGD_RUN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "daemon.h"

struct run;

typedef void (*run_step_fn)(struct run *r);
typedef void (*run_done_fn)(struct run *r, int err);

struct run {
    struct engine *engine;
    struct migd *d;
    struct mig_job *job; /* owned by the run */

    run_step_fn step; /* the function now being walked */
    int pc;           /* its resume point (a __LINE__), 0 at its start */
    run_done_fn done; /* called by run_finish_step */
    int loop_i;       /* a loop index a step may keep across awaits */
    int loop_j;
    int sub_pc;  /* resume point of a sub-step called with RUN_CALL */
    int sub_err; /* a sub-step's outcome: 0 or a negative code */

    /* Fetched on load; not persisted (fetched again after a restart). */
    json_t *vm;      /* VMAPI object */
    json_t *servers; /* CNAPI servers with capacity and sysinfo */
    json_t *src;     /* borrowed from servers */
    json_t *dst;     /* borrowed from servers */

    /* The last SSH command. */
    int ssh_err;    /* 0 when it ran; else a negative code */
    int ssh_status; /* its exit status */
    char *ssh_out;
    char *ssh_errout;
    char ssh_detail[256];

    /* The last relay. */
    int relay_err;
    uint64_t relay_bytes;
    uint64_t relay_base; /* progress.bytes_sent when the relay started */
    int64_t relay_started_ms;

    /* The last HTTP call. */
    int http_err;
    long http_status;
    json_t *http_json;
    char http_detail[256];

    uv_timer_t timer; /* sleeps; timer.data = run */
    bool timer_closing;
    bool busy; /* an async operation is outstanding */
    bool dead; /* to be freed once nothing is outstanding */

    /* Submission (validation) only. */
    engine_submit_cb submit_cb;
    void *submit_arg;
    json_t *plan;
    struct mig_refusal refusal;

    struct run *next; /* engine's list */
};

/*
 * Starts step on r from its beginning; done(r, err) runs when the step calls
 * run_finish_step.
 */
void run_start_step(struct run *r, run_step_fn step, run_done_fn done);
/* Ends the current step with err (0 or a negative code). */
void run_finish_step(struct run *r, int err);
/* Re-enters the current step at its resume point (used by completions). */
void run_continue(struct run *r);

/*
 * The asynchronous operations a step may await.  Each returns 0 when the
 * operation started (the step must then return; it is re-entered on
 * completion) or a negative code when it could not start, with the result
 * fields already set to that failure (the step goes on at once).
 */
int run_ssh(struct run *r, const char *host, char *cmd, const char *input);
int run_relay(struct run *r, const char *src_host, char *src_cmd, const char *dst_host,
              char *dst_cmd);
/* run_http takes url (malloc'd) and the reference to body (may be NULL). */
int run_http(struct run *r, const char *method, char *url, json_t *body);
int run_sleep(struct run *r, uint64_t ms);

#define RUN_BEGIN(r)                                                                               \
    switch ((r)->pc) {                                                                             \
    case 0:
#define RUN_END(r) }
/* Starts op (an expression calling one of run_ssh & co.) and resumes after it. */
#define RUN_AWAIT(r, op)                                                                           \
    do {                                                                                           \
        (r)->pc = __LINE__;                                                                        \
        if ((op) == 0)                                                                             \
            return;                                                                                \
        __attribute__((fallthrough));                                                              \
    case __LINE__:;                                                                                \
    } while (0)

/*
 * Calls a sub-step: int sub(struct run *) written with SUB_BEGIN, SUB_AWAIT
 * and SUB_END, which returns 0 while it waits and 1 when done (its outcome
 * in r->sub_err).  Lets two steps share a sequence of awaits.
 */
#define RUN_CALL(r, sub)                                                                           \
    do {                                                                                           \
        (r)->sub_pc = 0;                                                                           \
        (r)->sub_err = 0;                                                                          \
        (r)->pc = __LINE__;                                                                        \
        __attribute__((fallthrough));                                                              \
    case __LINE__:                                                                                 \
        if (!(sub)(r))                                                                             \
            return;                                                                                \
    } while (0)
#define SUB_BEGIN(r)                                                                               \
    switch ((r)->sub_pc) {                                                                         \
    case 0:
#define SUB_AWAIT(r, op)                                                                           \
    do {                                                                                           \
        (r)->sub_pc = __LINE__;                                                                    \
        if ((op) == 0)                                                                             \
            return 0;                                                                              \
        __attribute__((fallthrough));                                                              \
    case __LINE__:;                                                                                \
    } while (0)
#define SUB_END(r)                                                                                 \
    }                                                                                              \
    return 1

/* Frees everything the run holds (the job too). */
void run_free(struct run *r);

/* The engine's hook for progress made by a relay (engine.c). */
void engine_on_progress(struct run *r);

#endif
