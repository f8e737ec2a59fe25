/*
 * metrics.h: the daemon's counters, kept in memory so that /ping and
 * /metrics never read the database: jobs by state, bytes sent by source and
 * target CN, the current transfer rate, downtime and job duration
 * histograms, evacuations by state.  Loaded once from the store at start, then updated by the
 * engine as jobs change.  Prometheus text format for /metrics, in base units
 * (bytes, seconds) with counters named _total, as `promtool check metrics`
 * wants.
 */
#ifndef MIGD_METRICS_H
#define MIGD_METRICS_H

#include <jansson.h>
#include <stdint.h>

#include "job.h"
#include "store.h"

struct metrics;

/* Counts what the store holds (one pass over the jobs); NULL only on a database error. */
struct metrics *metrics_load(struct mig_store *st);
void metrics_free(struct metrics *m);

/* A job entered state `to` from `from` (-1: it is new). */
void metrics_state(struct metrics *m, int from, enum mig_job_state to);
/* bytes more were sent from source to target (hostnames, or uuids when unknown). */
void metrics_bytes(struct metrics *m, const char *source, const char *target, int64_t bytes);
/* An evacuation went from state `from` (NULL: it is new) to `to` (running, done, failed). */
void metrics_evacuation(struct metrics *m, const char *from, const char *to);
/* A switch kept a VM down ms; a job ran ms from start to switched or ended. */
void metrics_downtime(struct metrics *m, int64_t ms);
void metrics_duration(struct metrics *m, int64_t ms);
/* The job rows that cannot be read (counted at load). */
int metrics_unreadable(const struct metrics *m);

/* {state: count} for every state. New reference. */
json_t *metrics_jobs_json(const struct metrics *m);
/*
 * The Prometheus text (malloc'd, *len bytes); rate_bytes_s is the sum of the
 * running jobs' current rates.
 */
char *metrics_text(const struct metrics *m, int64_t rate_bytes_s, size_t *len);

#endif
