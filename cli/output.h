/*
 * output.h: how migctl renders jobs for people and scripts: byte counts,
 * durations, the live progress line of `watch`, the human summary of
 * `show`, and vmadm-style tables (-o, -s, -H, -p, KEY=VALUE filters).
 */
#ifndef MIGCTL_OUTPUT_H
#define MIGCTL_OUTPUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Formats n bytes with binary units, one decimal above bytes ("412.0 MiB"). */
void out_bytes(int64_t n, char *buf, size_t bufsz);
/* Formats seconds as M:SS or H:MM:SS; negative gives "?". */
void out_duration(int64_t s, char *buf, size_t bufsz);

/*
 * The value at a dotted path ("progress.bytes_sent") in obj, or NULL.
 * Borrowed.
 */
json_t *out_get(json_t *obj, const char *path);
/*
 * Renders a job field for a table: strings as they are, numbers, booleans,
 * "-" for null or absent, objects as compact JSON.  Virtual fields:
 * "progress" (percent of bytes sent), "source" and "target" (hostname, else
 * server uuid).  Returns a malloc'd string.
 */
char *out_field(json_t *job, const char *field);

/*
 * The progress line of a job: "sync  412.0 MiB / 1.2 GiB  98.3 MiB/s  ETA
 * 0:09  inc 1" while running, else the state and what it means.
 */
void out_progress_line(json_t *job, char *buf, size_t bufsz);

/* Prints the human summary of one job (migctl show). */
void out_job_summary(FILE *f, json_t *job);
/* Prints a job's journal (GET /jobs/:uuid/actions) as a table (migctl show -v). */
void out_actions(FILE *f, json_t *actions);
/* Prints a dry run's plan: the VM, where it goes, the data, the estimate, each action. */
void out_plan(FILE *f, json_t *plan);

struct out_table_opts {
    const char *fields; /* comma-separated job keys */
    const char *sort;   /* comma-separated keys, '-' prefix: descending; NULL: as given */
    bool header;        /* print the header line */
    bool parsable;      /* ':'-joined, no padding, no header; ':' in values escaped as '\:' */
};

/*
 * Prints jobs (a JSON array) as a table.  Returns 0, or -EINVAL with a
 * line in err when a sort key is empty.
 */
int out_table(FILE *f, json_t *jobs, const struct out_table_opts *opts, char *err, size_t errsz);

/*
 * Sorts jobs (a JSON array) in place by the comma-separated keys of sort
 * ('-' prefix: descending).  Numbers compare as numbers, the rest as text.
 */
void out_sort(json_t *jobs, const char *sort);

/* True when the job matches every KEY=VALUE filter (values compared as rendered). */
bool out_match(json_t *job, char **filters, int nfilters);

#endif
