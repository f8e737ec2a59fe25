/*
 * output.h: how migctl renders jobs for people and scripts: the escaping of
 * every string that came from migd, byte counts, durations, the progress
 * line of `watch`, the human summary of `show`, the dry-run plan, log
 * records, migctl status, evacuations and estimates, the error line, and
 * vmadm-style tables (-o, -s, -H, -p, KEY=VALUE filters) with their checks
 * (output_table.c).
 */
#ifndef MIGCTL_OUTPUT_H
#define MIGCTL_OUTPUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * The one escaping function: a malloc'd copy of s that a terminal shows as
 * text.  Control characters (C0, DEL, C1), the bidirectional overrides and
 * bytes that are not UTF-8 become C-style escapes (\t, \n, \r, \x1b,
 * \u009b, \u202e); everything else, backslashes included, is kept.  NULL
 * gives NULL.
 */
char *out_escape(const char *s);
/*
 * A deep copy of j (new reference) whose every string, object keys
 * included, went through out_escape.  Human and -p output render only
 * such copies; -j prints the answer itself (JSON escapes its own).
 */
json_t *out_escaped(json_t *j);

/* The characters (code points) of s, which out_escape made printable. */
size_t out_width(const char *s);
/*
 * Prints "migctl: ..." (fmt formatted) on one line to stderr, escaped as a
 * whole: what came from migd or the command line cannot act on the
 * terminal (out_escape keeps what is escaped already as it is).  migctl's
 * one way to say what went wrong.
 */
void out_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A malloc'd copy of s (escaped: printable UTF-8) in at most w characters:
 * a longer one is cut and ends "..." (w < 4: not cut).
 */
char *out_cut(const char *s, size_t w);

/* Formats n bytes with binary units, one decimal above bytes ("412.0 MiB"). */
void out_bytes(int64_t n, char *buf, size_t bufsz);
/* Formats seconds as M:SS or H:MM:SS; negative (unknown) gives "-". */
void out_duration(int64_t s, char *buf, size_t bufsz);

/*
 * The value at a dotted path ("progress.bytes_sent") in obj, or NULL.
 * Borrowed.
 */
json_t *out_get(json_t *obj, const char *path);
/*
 * Renders a job field for a table: strings as they are, numbers, booleans,
 * "-" for null or absent, objects as compact JSON.  Computed fields: "id"
 * (the first 8 characters of the job UUID), "progress" (percent of bytes
 * sent; 100% once the job switched or succeeded), "source" and "target"
 * (hostname, else server UUID).  Returns a malloc'd string.
 */
char *out_field(json_t *job, const char *field);
/*
 * Percent of the job's bytes sent: 100 once the VM runs on the target, at
 * most 99 before (a resumed send may pass the estimate), -1 when there is
 * no total.
 */
int out_progress_pct(json_t *job);

/*
 * The progress line of a job: "sync     412.0 MiB / 1.2 GiB  33%  98.3
 * MiB/s  ETA 0:09  inc 1" while it sends, what runs while it prepares,
 * switches, rolls back or cleans up (never a rate), then the state and what
 * it means.  The error's message is not in it (show and watch print it
 * once, elsewhere).  Render an escaped job (out_escaped).
 */
void out_progress_line(json_t *job, char *buf, size_t bufsz);

/* Prints the human summary of one (escaped) job: migctl show. */
void out_job_summary(FILE *f, json_t *job);
/* One round of a job's rounds[]: "round N: BYTES in S s (RATE/s); a switch now: about P s down". */
void out_round(json_t *round, char *buf, size_t bufsz);
/* Prints an (escaped) job's journal (GET /jobs/:uuid/actions) as a table: show -v. */
void out_actions(FILE *f, json_t *actions);
/*
 * Prints an (escaped) dry run's plan: the VM, where it goes, the mode, the
 * transfer and its cap, what becomes of the source copy, the datasets, the
 * data and the estimate, then one line per action.
 */
void out_plan(FILE *f, json_t *plan);

/* A bunyan level's number for its name (any case: "warn", "WARN"), or -1. */
int out_log_level(const char *name);
/*
 * Prints one (escaped) bunyan record on one line: time, level, message,
 * then " key=value" for each key the line does not show already.
 */
void out_log_record(FILE *f, json_t *rec);
/* Prints migctl status's lines from migd's (escaped) answer to GET /ping. */
void out_status(FILE *f, json_t *ping, const char *socket_path);

/*
 * An evacuation (or its plan, state "plan"; or an estimate): who, what moves
 * and what stays, the window, the progress when it runs, one line per VM
 * (size, target, estimate, then its state or why it stays), and what needs
 * an operator.  ev must come through out_escaped (migd's strings made printable).
 */
void out_evacuation(FILE *f, json_t *ev);
/*
 * A rolling drain (several CNs, max_cns at once): its state, every CN's
 * turn with when it starts and how long it takes, then each CN's
 * evacuation.  Escaped as out_evacuation's.
 */
void out_rolling(FILE *f, json_t *drain);

/* ---- list's tables (output_table.c) ---- */

/*
 * The fields that list accepts in -o, -s and KEY=VALUE filters, as one
 * comma-separated line for messages.  Static.
 */
const char *out_field_names(void);

/*
 * Checks list's input before anything is asked of migd: every field of
 * fields (comma-separated) and of sort ('-' prefix: descending; NULL: none)
 * is a known field, and every KEY=VALUE filter names a known field with a
 * value that field can show (state, mode, phase, transfer, booleans).
 * Returns 0, or -EINVAL with one line in err naming the valid ones.
 */
int out_list_check(const char *fields, const char *sort, char **filters, int nfilters, char *err,
                   size_t errsz);

/*
 * The value of the state=VALUE filter among filters, if there is one
 * (borrowed from filters), else NULL.
 */
const char *out_filter_state(char **filters, int nfilters);

/*
 * A job reduced to fields (comma-separated; new reference) for list -j -o:
 * job keys keep their JSON value and shape (dotted keys nested, so
 * "progress.eta_s" gives {"progress": {"eta_s": ...}}); the computed id,
 * source and target are strings.
 */
json_t *out_project(json_t *job, const char *fields);

struct out_table_opts {
    const char *fields; /* comma-separated job keys */
    const char *sort;   /* comma-separated keys, '-' prefix: descending; NULL: as given */
    bool header;        /* print the header line */
    bool parsable;      /* ':'-joined, no padding, no header; ':' and '\' in values escaped */
    size_t fit;         /* >0: cut vm_alias, source and target (ending "...") to fit this width */
};

/*
 * Prints (escaped) jobs, a JSON array, as a table; sorts them first when
 * opts->sort is set.  Widths count characters, not bytes.  Returns 0, or
 * -EINVAL with a line in err when there is no field to print.
 */
int out_table(FILE *f, json_t *jobs, const struct out_table_opts *opts, char *err, size_t errsz);

/*
 * Sorts jobs (a JSON array) in place by the comma-separated keys of sort
 * ('-' prefix: descending).  Numbers compare as numbers (progress as its
 * percent), the rest as text.
 */
void out_sort(json_t *jobs, const char *sort);

/* True when the job matches every KEY=VALUE filter (values compared as rendered). */
bool out_match(json_t *job, char **filters, int nfilters);

/*
 * The health gate (a job's "health" object): a key of its state and each
 * check's verdict ("checking running=ok zone_id=ok"), and the lines that
 * tell what changed since the key `told` (one per check, then the gate's
 * end), for watch.
 */
void out_health_key(json_t *health, char *buf, size_t bufsz);
void out_health_lines(json_t *health, const char *told, char *buf, size_t bufsz);

#endif
