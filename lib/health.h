/*
 * health.h: the health gate after the switch (phase verify, product.md
 * "health"): the VM must run on the target for min_up_s without its zone
 * restarting, with no SMF service in maintenance that was not already so on
 * the source before the stop, and then health.command (if set) must exit 0.
 * Every fact the gate compares against is on the job's record, so a
 * restarted daemon goes on watching where it was.  Pure data and parsing.
 */
#ifndef MIG_HEALTH_H
#define MIG_HEALTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mig_health_state {
    MIG_HEALTH_NONE,     /* no gate (yet, or for this job: it was not running, min_up 0) */
    MIG_HEALTH_CHECKING, /* the window runs */
    MIG_HEALTH_PASSED,
    MIG_HEALTH_FAILED,
    MIG_HEALTH_NSTATES
};

enum mig_health_check {
    MIG_CHECK_RUNNING, /* vmadm get: state running on the target */
    MIG_CHECK_ZONE_ID, /* zoneadm list -p: the zone id of the window's start */
    MIG_CHECK_SMF,     /* svcs -z UUID -x: nothing new in maintenance */
    MIG_CHECK_COMMAND, /* health.command exited 0 */
    MIG_NCHECKS
};

struct mig_health_result {
    int ok;           /* -1: not checked yet, 0, 1 */
    char detail[256]; /* what it saw, one line */
    int64_t at_ms;    /* when, 0: never */
};

struct mig_health {
    enum mig_health_state state;
    int min_up_s;         /* the window (--min-up, else health.min_up_s); 0: no gate */
    int64_t since_ms;     /* the window's start: the VM first seen running in it, 0 */
    int64_t zone_id;      /* its zone id then, -1: not read */
    int smf_baseline;     /* 1 once the source's services were read before the stop */
    char smf_before[512]; /* the FMRIs in maintenance on the source then, space-separated */
    int passes;           /* the checks done so far (each is one journaled action) */
    char why[320];        /* FAILED: the check that failed and what it saw */
    struct mig_health_result checks[MIG_NCHECKS];
};

/* A gate not yet begun: nothing checked, no baseline. */
void mig_health_init(struct mig_health *h, int min_up_s);

/* joyent and joyent-minimal zones run SMF inside (svcs -z answers); lx, bhyve, kvm do not. */
bool mig_health_smf_brand(const char *brand);

/* "running", "zone_id", "smf", "command". */
const char *mig_health_check_name(enum mig_health_check c);
/* "none", "checking", "passed", "failed". */
const char *mig_health_state_name(enum mig_health_state s);
int mig_health_state_parse(const char *s, enum mig_health_state *out);

/* Notes one check's result at now (detail printf-style, cut to one line). */
void mig_health_note(struct mig_health *h, enum mig_health_check c, bool ok, int64_t now,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The first check that failed, or -1. */
int mig_health_failed_check(const struct mig_health *h);

/*
 * The FMRIs `svcs -x` output names as in maintenance, space-separated,
 * into buf (cut at whole FMRIs).  Returns how many it found.
 */
int mig_smf_maintenance_parse(const char *out, char *buf, size_t bufsz);

/*
 * The FMRIs of `now` (space-separated) that are not in `before`, into buf
 * ("" when none).  Returns how many.
 */
int mig_smf_new_faults(const char *before, const char *now, char *buf, size_t bufsz);

/* The public form {state, since, min_up_s, checks: [{name, ok, detail, at}]}; null for no gate. */
json_t *mig_health_to_json(const struct mig_health *h);
/* The stored form (everything, baselines included), and back: 0 or -EINVAL. */
json_t *mig_health_to_record(const struct mig_health *h);
int mig_health_from_record(json_t *rec, struct mig_health *h);

#endif
