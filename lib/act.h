/*
 * act.h: what an action is.  A job changes the world through actions: one
 * named thing done on one side (the source CN, the target CN, an API),
 * made of one or a few operations (a remote command, a stream relayed from
 * one CN to another, an HTTP call).  An action is data: its name, its side,
 * a sentence for the operator, and three functions written as small
 * coroutines over operations:
 *
 *   probe  "is it already so?": looks at the real state and answers
 *          MIG_ACT_DONE or MIG_ACT_ABSENT (asked when the journal says the
 *          action started but not whether it finished);
 *   act    does it;
 *   undo   takes it back (tolerating that it was never done).
 *
 * The functions are pure: they read and write the job, fill in the next
 * operation, and read its result.  Running operations, journaling, retries
 * and crash safety belong to the executor (daemon/executor.c), which never
 * needs to know which actions exist; the tables of actions are in plan.h.
 */
#ifndef MIG_ACT_H
#define MIG_ACT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"

/* Where an action or operation happens. */
enum mig_side { MIG_SIDE_SOURCE, MIG_SIDE_TARGET, MIG_SIDE_API, MIG_SIDE_LOCAL };

/* "source", "target", "api", "local". */
const char *mig_side_name(enum mig_side side);

enum mig_op_kind {
    MIG_OP_NONE,
    MIG_OP_SSH,   /* a command on one CN */
    MIG_OP_RELAY, /* a producer's stdout on one CN into a consumer's stdin on another */
    MIG_OP_HTTP,  /* a call to a Triton API */
    MIG_OP_EXEC,  /* a command on the head node (health.command), with the job in its environment */
};

/*
 * One operation.  Strings are malloc'd and owned by the op (mig_op_clear
 * frees them); a NULL command or URL means a builder refused an argument:
 * the executor then completes the op with -EINVAL without running anything.
 */
struct mig_op {
    enum mig_op_kind kind;
    enum mig_side on; /* SSH: the CN it runs on; RELAY: the producing CN */
    enum mig_side to; /* RELAY: the consuming CN */
    char *cmd;        /* SSH command, or RELAY producer */
    char *cmd2;       /* RELAY consumer */
    char *input;      /* SSH stdin, or NULL */
    const char *api;  /* HTTP: "VMAPI", "CNAPI", "NAPI", "IMGAPI" (for messages) */
    const char *method;
    char *url;
    json_t *body;         /* HTTP body (a reference owned by the op), or NULL */
    bool progress;        /* RELAY: its bytes count toward the job's progress */
    /*
     * SSH: at most one serial op runs per CN at a time, in the order they
     * were started (daemon/ops.c): for edits of one file on the CN that
     * would race (the direct keys' lines in authorized_keys).
     */
    bool serial;
    unsigned timeout_s; /* EXEC: killed after this long */
};

/* Frees what op owns and zeroes it. */
void mig_op_clear(struct mig_op *op);

/*
 * An operation's outcome, filled by the executor.  err is 0 when the
 * operation ran to its end (then exit_status / http_status say how it
 * went), or a negative code: MIG_ESSH, MIG_EHOSTKEY, MIG_EHTTP,
 * MIG_ETIMEDOUT, MIG_ECANCELED, -EINVAL (a builder refused).
 */
struct mig_result {
    int err;
    int exit_status;     /* SSH; for RELAY the side that says why (daemon/ops.c): the consumer's,
                            or the producer's when it alone failed or the consumer only saw
                            its stream end */
    const char *out;     /* SSH stdout, RELAY the consumer's ("" when none); valid until the
                            next op */
    const char *errout;  /* SSH stderr, or the failing side's stderr of a RELAY */
    long http_status;
    json_t *json;        /* HTTP body parsed, or NULL; borrowed */
    uint64_t bytes;      /* RELAY: bytes moved */
    int src_status;      /* RELAY exit statuses (-1 unknown) */
    int dst_status;
    char detail[256];    /* one line when err != 0 */
};

/* What an action function answers. */
enum {
    MIG_ACT_OP = 0,     /* run a->op, then call again with its result in a->res */
    MIG_ACT_DONE = 1,   /* finished; for a probe: the effect is there */
    MIG_ACT_ABSENT = 2, /* probe only: the effect is not there */
    MIG_ACT_FAIL = -1,  /* failed: a->err_code / err_msg say why, a->transient whether retrying may help */
};

/* What the action functions know of the daemon's settings. */
struct mig_act_env {
    const char *pool;                   /* the CNs' zpool, "zones" */
    const char *vmapi, *cnapi, *napi, *imgapi; /* base URLs */
    /* Direct transfer: how the source reaches the target, and what the head node trusts. */
    const char *ssh_user;
    int ssh_port;
    const char *known_hosts;            /* the head node's known_hosts file */
    /* The health gate (phase verify). */
    const char *health_command;         /* health.command, NULL when none */
    unsigned health_timeout_s;          /* health.timeout_s */
};

/* One run of an action function: its inputs, its resume point, its output. */
struct mig_act {
    struct mig_job *job;            /* read and written (results go into job->ctx); NULL for
                                       calls outside any job (an evacuation's, act.h peers) */
    const struct mig_act_env *env;
    enum mig_side side;             /* where it works: its plan row's side (LOCAL outside a plan) */
    int round;                      /* the instance: round number (sync), -1 for none */
    int item;                       /* the instance: dataset or NIC index, -1 for none */
    int pc;                         /* resume point, 0 at the start */
    int i;                          /* a loop index kept across operations */
    int64_t n;                      /* a number kept across operations */
    int part;                       /* a function made of sub-steps (send_between): which one
                                       runs; each sub-step's pc starts at 0 */
    const struct mig_result *res;   /* the last operation's result; NULL before the first */
    struct mig_op op;               /* the next operation, when MIG_ACT_OP is answered */
    _Alignas(max_align_t) char scratch[1536]; /* kept across operations of one run, never
                                                persisted: text, or an action file's
                                                typed state (ACT_STATE) */
    char object[256];               /* what it works on ("zones/UUID@migd-JOB-1"), named in a
                                       leftover when it fails; "" for the action's own words */
    bool transient;                 /* with MIG_ACT_FAIL: retrying later may succeed */
    char err_code[48];
    char err_msg[1024];
};

typedef int (*mig_act_fn)(struct mig_act *a);

/*
 * An action file's own typed state across the operations of one run, in
 * a->scratch (zeroed when the run starts): `#define SEEN(a) ACT_STATE(a,
 * struct zone_seen)`, with ACT_STATE_FITS(struct zone_seen) beside the struct.
 */
#define ACT_STATE(a, type) ((type *)(void *)(a)->scratch)
#define ACT_STATE_FITS(type)                                                                       \
    _Static_assert(sizeof(type) <= sizeof(((struct mig_act *)0)->scratch),                        \
                   #type " fits in mig_act.scratch")

/* Flags of an action definition. */
#define MIG_ACT_TRANSFER 0x1u /* a stream: retried up to transfer.retries, resuming where it can */
#define MIG_ACT_FORWARD 0x2u  /* after the point of no return: retried until it succeeds, never undone */
#define MIG_ACT_READ 0x4u     /* reads only: acting again is the probe */
#define MIG_ACT_BEST_EFFORT 0x8u /* its undo may fail without stopping the undo walk (a leftover, never a risk) */
#define MIG_ACT_REDO 0x10u       /* no probe needed: it first clears what an earlier attempt left */
#define MIG_ACT_UNDO_BLIND 0x20u /* its undo is harmless when the act did nothing: a started or
                                    failed act is undone without asking its probe first */
#define MIG_ACT_PARALLEL 0x40u   /* consecutive rows of it (one per dataset of a round) may run
                                    at once, up to transfer.streams, each journaled alone */

struct mig_action_def {
    const char *name;  /* "switch.attach_target": phase prefix, then what */
    enum mig_side side;
    const char *does;  /* one line for the operator: what it does and where */
    unsigned flags;
    /* Whether this instance applies to the job (NULL: always).  Pure. */
    bool (*applies)(const struct mig_job *job, int round, int item);
    mig_act_fn probe;  /* NULL: acting again is harmless */
    mig_act_fn act;
    mig_act_fn undo;   /* NULL: nothing to undo */
    /*
     * Removals whose failure is never a risk to the VM (after its place is
     * settled, or in an undo): what kind of thing a failure leaves behind
     * ("snapshot", "dataset", ...).  Such an action (or undo) is tried a
     * couple of times within seconds, then its work becomes a leftover of
     * the job (job.h) retried later, and the walk goes on.  NULL: a failure
     * stops the walk as the flags say.
     */
    const char *leaves;
};

/* Starts a fresh run of an action function for one instance of the job. */
void mig_act_init(struct mig_act *a, struct mig_job *job, const struct mig_act_env *env,
                  int round, int item);
/* Frees the pending op; call before reusing or dropping a. */
void mig_act_clear(struct mig_act *a);

/*
 * Ends an action function with a failure: code (a word such as
 * "AttachFailed") and a printf-style one-line message.  Returns MIG_ACT_FAIL.
 * mig_act_fail_res adds ": " and what the last operation's result says
 * (the command's first stderr line, the HTTP status and message) and marks
 * the failure transient when the result was a transport failure or an
 * HTTP 5xx.
 */
int mig_act_fail(struct mig_act *a, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int mig_act_fail_res(struct mig_act *a, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One line saying how the last operation went ("exit 1: ...", "HTTP 503: ...", the detail). */
void mig_res_why(const struct mig_result *res, char *buf, size_t bufsz);
/* The last SSH command (or RELAY) ran and exited 0. */
bool mig_res_ok(const struct mig_result *res);
/* The last HTTP call answered 2xx. */
bool mig_res_http_ok(const struct mig_result *res);
/*
 * After a GET of mig_url_vms_active (placement.spread_tag's list of every
 * active VM): appends the page in a->res to all; 1 when it was full, so
 * another may follow, 0 after the last, MIG_ACT_FAIL when VMAPI sent none.
 */
int mig_act_take_vms_page(struct mig_act *a, json_t *all);
/* The last command's stderr contains needle (case-sensitive). */
bool mig_res_err_has(const struct mig_result *res, const char *needle);
/* A transport failure or a 5xx: worth trying again. */
bool mig_res_transient(const struct mig_result *res);

/* Fills a->op for an SSH command on side (cmd and input are taken over). */
void mig_act_ssh(struct mig_act *a, enum mig_side side, char *cmd, char *input);
/* Fills a->op for a relay from side `from` to side `to` (commands taken over). */
void mig_act_relay(struct mig_act *a, enum mig_side from, char *producer, enum mig_side to,
                   char *consumer);
/* Fills a->op for a head-node command (cmd taken over), killed after timeout_s. */
void mig_act_exec(struct mig_act *a, char *cmd, unsigned timeout_s);
/* Fills a->op for an HTTP call (url and body taken over). */
void mig_act_http(struct mig_act *a, const char *api, const char *method, char *url,
                  json_t *body);

/*
 * The coroutine macros.  Local variables do not survive an await: what an
 * action needs across operations lives in struct mig_act (i, n, scratch) or
 * in the job.
 */
#define ACT_BEGIN(a)                                                                               \
    switch ((a)->pc) {                                                                             \
    case 0:
#define ACT_END(a)                                                                                 \
    }                                                                                              \
    return MIG_ACT_DONE
/* Answers the op already put in a->op; resumes right after on the next call. */
#define ACT_AWAIT(a)                                                                               \
    do {                                                                                           \
        (a)->pc = __LINE__;                                                                        \
        return MIG_ACT_OP;                                                                         \
    case __LINE__:;                                                                                \
    } while (0)
#define ACT_SSH(a, side, cmd, input)                                                               \
    do {                                                                                           \
        mig_act_ssh((a), (side), (cmd), (input));                                                  \
        ACT_AWAIT(a);                                                                              \
    } while (0)
#define ACT_HTTP(a, api, method, url, body)                                                        \
    do {                                                                                           \
        mig_act_http((a), (api), (method), (url), (body));                                         \
        ACT_AWAIT(a);                                                                              \
    } while (0)
#define ACT_RELAY(a, from, producer, to, consumer)                                                 \
    do {                                                                                           \
        mig_act_relay((a), (from), (producer), (to), (consumer));                                  \
        ACT_AWAIT(a);                                                                              \
    } while (0)
/*
 * Reads every active VM from VMAPI (triton.h's mig_url_vms_active, page by
 * page) into into, a new array; a page VMAPI does not send returns
 * MIG_ACT_FAIL from the coroutine.  more: an int of the caller's frame,
 * read only before the next operation.
 */
#define ACT_TAKE_ACTIVE_VMS(a, into, more)                                                         \
    do {                                                                                           \
        (into) = json_array();                                                                     \
        do {                                                                                       \
            ACT_HTTP(a, "VMAPI", "GET",                                                            \
                     mig_url_vms_active((a)->env->vmapi, (long)json_array_size(into)), NULL);      \
            if (((more) = mig_act_take_vms_page((a), (into))) < 0)                                 \
                return (more);                                                                     \
        } while (more);                                                                            \
    } while (0)

/*
 * Rounds: 1, 2, ... for the sync rounds; the switch's snapshot is round
 * MIG_ROUND_FINAL; a rollback sends a round while the VM still runs on the
 * target (MIG_ROUND_BACK_PRE, "back1"), then the last delta once it is
 * stopped (MIG_ROUND_BACK, "back").
 */
#define MIG_ROUND_FINAL (-2)
#define MIG_ROUND_BACK (-3)
#define MIG_ROUND_BACK_PRE (-4)

/* A round's text in keys and snapshot names: "1", "final", "back", "back1". */
void mig_round_text(int round, char *buf, size_t bufsz);
/* This job's snapshot name for round (1.., MIG_ROUND_FINAL, MIG_ROUND_BACK) into out. */
void mig_snap_name(const struct mig_job *job, int round, char out[128]);

/*
 * Where operations go and whose they are.  An operation names a side, not
 * an address: the runner of the operations (daemon/ops.h) asks these for
 * the side's admin IP, and names the job and VM in its log and in a
 * head-node command's environment.  A job's peers are its two CNs
 * (mig_job_peers); an evacuation reads one CN (its source) without any
 * job, and a CNAPI-only walk has no CN at all.  The strings are borrowed
 * from whoever owns the struct and are read when each operation starts.
 */
struct mig_peers {
    const char *ip[2];   /* by side (MIG_SIDE_SOURCE, MIG_SIDE_TARGET); NULL or "": unknown */
    const char *host[2]; /* their hostnames, for messages; NULL: unknown */
    const char *job_uuid; /* NULL: not a job's operations */
    const char *vm_uuid;  /* NULL: no VM */
};

/* A job's peers: its CNs as its ctx and record know them, its uuid and its VM. */
struct mig_peers mig_job_peers(const struct mig_job *job);
/* The admin IP of side, NULL where unknown or side is no CN. */
const char *mig_peers_ip(const struct mig_peers *p, enum mig_side side);

/* The admin IP of side (source or target) from the job's ctx. */
const char *mig_job_side_ip(const struct mig_job *job, enum mig_side side);
/* The hostname of side, for messages ("cn2"), never NULL. */
const char *mig_job_side_host(const struct mig_job *job, enum mig_side side);

#endif
