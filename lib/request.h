/*
 * request.h: a migration as it was asked for, parsed and checked once.  The
 * control API makes one from a POST /jobs body, an evacuation makes one for
 * each VM it moves, and the engine turns it into a job.  Pure: no I/O.
 */
#ifndef MIG_REQUEST_H
#define MIG_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "job.h"
#include "util.h"
#include "window.h"

struct mig_request {
    char *vm;             /* the VM's UUID, or an alias (the checks resolve it); owned */
    char *target;         /* the target CN's UUID or hostname, NULL to place it; owned */
    enum mig_mode mode;
    bool dry_run, allow_older_platform, cleanup_source;
    char transfer[8];     /* "relay", "direct", or "" for the configuration's */
    int limit_mbps;       /* the stream cap in Mbit/s; -1: the configuration's */
    int min_up_s;         /* the health gate's window (--min-up); -1: health.min_up_s */
    int64_t cleanup_after_s; /* the cleanup timer (--cleanup-after); -1: cleanup.after_s */
    struct mig_window window; /* --window: the switch only inside it (set: false: any time) */
    /* From an evacuation only (never from the API): its uuid and --max-parallel. */
    char evacuation[MIG_UUID_LEN + 1];
    int max_parallel;
};

/* A request with every member at its default (full mode, nothing asked). */
void mig_request_init(struct mig_request *req);
/* Frees what req owns and sets it back to the defaults. */
void mig_request_clear(struct mig_request *req);

/*
 * Parses a POST /jobs body (product.md: vm_uuid, target, mode, dry_run,
 * allow_older_platform, cleanup_source, transfer, limit_mbps, min_up_s, cleanup_after_s, window) into req.  0,
 * or -EINVAL with one line in err naming the member and what is wrong
 * (unknown key, wrong type, a required key missing, a value out of range);
 * values are echoed cut to a bounded length.  req (initialized) is cleared
 * first; the caller clears it after use.
 */
int mig_request_parse(json_t *body, struct mig_request *req, char *err, size_t errsz);

#endif
