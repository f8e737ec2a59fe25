/*
 * json_value.h: the JSON values migd writes for "not known yet": a missing
 * string, an empty fixed-size field, a time of 0 and a negative count all
 * become null.  Shared by the API form of a job (job.c) and its stored
 * record (job_record.c), which must agree on what null means but little
 * else: each builds its own objects from these values, but for the error,
 * whose three members the API shows as the record keeps them.
 */
#ifndef MIG_JSON_VALUE_H
#define MIG_JSON_VALUE_H

#include <jansson.h>
#include <stdint.h>

/* A string, or null for NULL. */
json_t *mig_json_str(const char *s);
/* A fixed-size field: null when empty. */
json_t *mig_json_field(const char *s);
/* An ISO 8601 time, or null when ms is 0. */
json_t *mig_json_time(int64_t ms);
/* An integer, or null when v < 0. */
json_t *mig_json_count(int64_t v);
/* A job's error {"code", "message", "phase"}, or null when code is NULL (no error). */
json_t *mig_json_error(const char *code, const char *message, const char *phase);

#endif
