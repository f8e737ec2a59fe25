/*
 * job_record.h: the job as the store keeps it (jobs.record), a JSON text
 * written and read from struct mig_job alone, never through the API's form:
 * a database must load the same whatever the API shows.  Pure codec, no I/O.
 */
#ifndef MIG_JOB_RECORD_H
#define MIG_JOB_RECORD_H

#include <jansson.h>

#include "job.h"

/*
 * The stored form of job: every member, ctx included, as counted (real
 * phase, raw progress, ms times).  New reference, the caller's; aborts on out
 * of memory.  Its text (json_dumps JSON_COMPACT) is the format of
 * jobs.record: members are never renamed, and the order is kept.
 */
json_t *mig_job_to_record(const struct mig_job *job);

/*
 * Rebuilds a job from mig_job_to_record's form (rec is borrowed).  uuid,
 * state, phase and mode are required; other members default as in
 * mig_job_new, so older records load.  0 and *out (the caller frees it with
 * mig_job_free), or MIG_EPARSE and *out NULL.
 */
int mig_job_from_record(json_t *rec, struct mig_job **out);

/* The ctx as JSON (new reference), and back: 0 or MIG_EPARSE (ctx unchanged). */
json_t *mig_job_ctx_to_json(const struct mig_job_ctx *ctx);
int mig_job_ctx_from_json(json_t *j, struct mig_job_ctx *ctx);

#endif
