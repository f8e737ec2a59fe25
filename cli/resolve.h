/*
 * resolve.h: naming a job on migctl's command line: a job UUID, 8 or more
 * of its first characters, or a VM (UUID or alias) with exactly one
 * unfinished job, asked of migd (GET /jobs); what names none or several is
 * a usage error listing the jobs it could mean.
 */
#ifndef MIGCTL_RESOLVE_H
#define MIGCTL_RESOLVE_H

#include <jansson.h>

#include "opts.h"

/*
 * Resolves a JOB argument.  Returns EXIT_OK with the job's JSON in *job
 * (new reference); EXIT_USAGE after reporting that arg names no job or
 * several (listing them, at most 10); EXIT_FAILED when migd could not be
 * asked (reported).
 */
int resolve_job(const char *arg, json_t **job);

/*
 * Resolves the one JOB operand of a command (none, or more than one, is a
 * usage error).  Returns as resolve_job.
 */
int resolve_operand(const struct opts *o, json_t **job);

/*
 * The job's UUID (borrowed from job), checked because it goes into paths
 * and onto the terminal; NULL after reporting that migd named the job with
 * something that is not a UUID.
 */
const char *resolve_uuid(json_t *job);

#endif
