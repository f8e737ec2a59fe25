/* output.c: migctl's rendering of jobs: units, progress line, summary, tables (see output.h). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"
#include "util.h"

void out_bytes(int64_t n, char *buf, size_t bufsz)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (n < 1024) {
        snprintf(buf, bufsz, "%lld B", (long long)(n < 0 ? 0 : n));
        return;
    }
    double v = (double)n;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    snprintf(buf, bufsz, "%.1f %s", v, units[u]);
}

void out_duration(int64_t s, char *buf, size_t bufsz)
{
    if (s < 0)
        snprintf(buf, bufsz, "?");
    else if (s < 3600)
        snprintf(buf, bufsz, "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
    else
        snprintf(buf, bufsz, "%lld:%02lld:%02lld", (long long)(s / 3600),
                 (long long)(s % 3600 / 60), (long long)(s % 60));
}

json_t *out_get(json_t *obj, const char *path)
{
    char key[256];
    const char *p = path;
    while (obj != NULL && *p != '\0') {
        const char *dot = strchr(p, '.');
        size_t n = dot != NULL ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof(key))
            return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        obj = json_object_get(obj, key);
        p += n + (dot != NULL ? 1 : 0);
    }
    return obj;
}

static int64_t get_int(json_t *job, const char *path, int64_t dflt)
{
    json_t *v = out_get(job, path);
    return json_is_number(v) ? (int64_t)json_number_value(v) : dflt;
}

static const char *get_str(json_t *job, const char *path)
{
    return json_string_value(out_get(job, path));
}

/* The hostname of a side ("source" or "target"), else its server uuid, else "-". */
static const char *side_name(json_t *job, const char *side)
{
    char key[64];
    snprintf(key, sizeof(key), "%s_hostname", side);
    const char *s = get_str(job, key);
    if (s == NULL) {
        snprintf(key, sizeof(key), "%s_server_uuid", side);
        s = get_str(job, key);
    }
    return s != NULL ? s : "-";
}

char *out_field(json_t *job, const char *field)
{
    if (strcmp(field, "progress") == 0) {
        int64_t sent = get_int(job, "progress.bytes_sent", 0);
        int64_t total = get_int(job, "progress.bytes_total", 0);
        if (total <= 0)
            return mig_strdup("-");
        int64_t pct = sent >= total ? 100 : sent * 100 / total;
        return mig_asprintf("%lld%%", (long long)pct);
    }
    if (strcmp(field, "source") == 0 || strcmp(field, "target") == 0)
        return mig_strdup(side_name(job, field));
    json_t *v = out_get(job, field);
    if (v == NULL || json_is_null(v))
        return mig_strdup("-");
    if (json_is_string(v))
        return mig_strdup(json_string_value(v));
    if (json_is_integer(v))
        return mig_asprintf("%lld", (long long)json_integer_value(v));
    if (json_is_real(v))
        return mig_asprintf("%g", json_real_value(v));
    if (json_is_boolean(v))
        return mig_strdup(json_is_true(v) ? "true" : "false");
    char *s = json_dumps(v, JSON_COMPACT);
    char *out = mig_strdup(s != NULL ? s : "-");
    free(s);
    return out;
}

void out_progress_line(json_t *job, char *buf, size_t bufsz)
{
    const char *state = get_str(job, "state");
    const char *phase = get_str(job, "phase");
    char sent[32], total[32], rate[32], eta[32];
    int64_t bt = get_int(job, "progress.bytes_total", 0);
    out_bytes(get_int(job, "progress.bytes_sent", 0), sent, sizeof(sent));
    out_bytes(bt, total, sizeof(total));
    out_bytes(get_int(job, "progress.rate_bytes_s", 0), rate, sizeof(rate));
    out_duration(get_int(job, "progress.eta_s", -1), eta, sizeof(eta));
    int64_t inc = get_int(job, "progress.increments", 0);
    if (state == NULL)
        state = "?";
    bool aborting = json_is_true(out_get(job, "aborting"));
    const char *activity = get_str(job, "activity");
    if (aborting && (strcmp(state, "running") == 0 || strcmp(state, "waiting") == 0)) {
        snprintf(buf, bufsz, "aborting (%s)%s%s", phase != NULL ? phase : "?",
                 activity != NULL ? ": " : "", activity != NULL ? activity : "");
    } else if (strcmp(state, "running") == 0 && phase != NULL &&
               (strcmp(phase, "rollback") == 0 || strcmp(phase, "cleanup") == 0 ||
                strcmp(phase, "switch") == 0 || strcmp(phase, "prepare") == 0)) {
        /* No stream to measure: say what runs. */
        snprintf(buf, bufsz, "%-8s %s", phase, activity != NULL ? activity : "");
    } else if (strcmp(state, "running") == 0) {
        if (bt > 0)
            snprintf(buf, bufsz, "%-8s %s / %s  %s/s  ETA %s  inc %lld",
                     phase != NULL ? phase : "?", sent, total, rate, eta, (long long)inc);
        else
            snprintf(buf, bufsz, "%-8s %s  %s/s  inc %lld", phase != NULL ? phase : "?", sent, rate,
                     (long long)inc);
    } else if (strcmp(state, "waiting") == 0) {
        snprintf(buf, bufsz, "waiting  %s sent  inc %lld  (in sync: run migctl finish to switch)",
                 sent, (long long)inc);
    } else if (strcmp(state, "failed") == 0 || strcmp(state, "aborted") == 0) {
        const char *code = get_str(job, "error.code"), *msg = get_str(job, "error.message");
        snprintf(buf, bufsz, "%s in %s: %s%s%s", state,
                 get_str(job, "error.phase") != NULL ? get_str(job, "error.phase") : "?",
                 code != NULL ? code : "", code != NULL ? ": " : "", msg != NULL ? msg : "");
    } else {
        snprintf(buf, bufsz, "%s", state);
    }
}

void out_job_summary(FILE *f, json_t *job)
{
    char a[32], b[32], line[512];
    const char *alias = get_str(job, "vm_alias");
    fprintf(f, "job         %s\n", get_str(job, "uuid") != NULL ? get_str(job, "uuid") : "?");
    fprintf(f, "vm          %s%s%s%s  %s\n",
            get_str(job, "vm_uuid") ? get_str(job, "vm_uuid") : "?", alias != NULL ? " (" : "",
            alias != NULL ? alias : "", alias != NULL ? ")" : "",
            get_str(job, "brand") != NULL ? get_str(job, "brand") : "");
    fprintf(f, "state       %s (phase %s)\n", get_str(job, "state") ? get_str(job, "state") : "?",
            get_str(job, "phase") ? get_str(job, "phase") : "?");
    fprintf(f, "mode        %s\n", get_str(job, "mode") ? get_str(job, "mode") : "?");
    fprintf(f, "source      %s\n", side_name(job, "source"));
    fprintf(f, "target      %s\n", side_name(job, "target"));
    out_progress_line(job, line, sizeof(line));
    out_bytes(get_int(job, "progress.bytes_sent", 0), a, sizeof(a));
    out_bytes(get_int(job, "progress.bytes_total", 0), b, sizeof(b));
    fprintf(f, "progress    %s of %s, %lld increments\n", a, b,
            (long long)get_int(job, "progress.increments", 0));
    int64_t down = get_int(job, "downtime_ms", -1);
    if (down >= 0)
        fprintf(f, "downtime    %.1f s\n", (double)down / 1000);
    json_t *running = out_get(job, "vm_was_running");
    if (json_is_boolean(running))
        fprintf(f, "vm running  %s\n", json_is_true(running) ? "yes" : "no");
    static const char *times[] = {"created", "started", "finished"};
    for (size_t i = 0; i < 3; i++)
        if (get_str(job, times[i]) != NULL)
            fprintf(f, "%-11s %s\n", times[i], get_str(job, times[i]));
    if (get_str(job, "error.code") != NULL || get_str(job, "error.message") != NULL)
        fprintf(f, "error       %s: %s (phase %s)\n",
                get_str(job, "error.code") ? get_str(job, "error.code") : "?",
                get_str(job, "error.message") ? get_str(job, "error.message") : "",
                get_str(job, "error.phase") ? get_str(job, "error.phase") : "?");
    if (json_is_true(out_get(job, "aborting")))
        fprintf(f, "aborting    yes\n");
    if (json_is_true(out_get(job, "cleanup_source")))
        fprintf(f, "cleanup     the source copy is deleted once the VM runs on the target\n");
    fprintf(f, "now         %s\n", line);
}

void out_actions(FILE *f, json_t *actions)
{
    fprintf(f, "\n%-40s %-7s %-13s %-24s %s\n", "ACTION", "ON", "STATUS", "STARTED", "DURATION");
    size_t i;
    json_t *a;
    json_array_foreach(actions, i, a)
    {
        char dur[32] = "-";
        json_t *ms = out_get(a, "duration_ms");
        if (json_is_integer(ms))
            snprintf(dur, sizeof(dur), "%lld ms", (long long)json_integer_value(ms));
        fprintf(f, "%-40s %-7s %-13s %-24s %s\n",
                get_str(a, "action") != NULL ? get_str(a, "action") : "?",
                get_str(a, "side") != NULL ? get_str(a, "side") : "?",
                get_str(a, "status") != NULL ? get_str(a, "status") : "?",
                get_str(a, "started") != NULL ? get_str(a, "started") : "-", dur);
        if (get_str(a, "error") != NULL)
            fprintf(f, "    error: %s\n", get_str(a, "error"));
    }
}

void out_plan(FILE *f, json_t *plan)
{
    char total[32];
    out_bytes(get_int(plan, "bytes_total", 0), total, sizeof(total));
    fprintf(f, "  vm        %s (%s, %s)\n", get_str(plan, "vm_uuid") ? get_str(plan, "vm_uuid") : "?",
            get_str(plan, "vm_alias") ? get_str(plan, "vm_alias") : "",
            get_str(plan, "brand") ? get_str(plan, "brand") : "?");
    fprintf(f, "  from      %s to %s, mode %s\n",
            get_str(plan, "source") ? get_str(plan, "source") : "?",
            get_str(plan, "target") ? get_str(plan, "target") : "?",
            get_str(plan, "mode") ? get_str(plan, "mode") : "?");
    size_t i;
    json_t *d;
    json_array_foreach(out_get(plan, "datasets"), i, d)
    {
        char used[32];
        out_bytes(get_int(d, "used", 0), used, sizeof(used));
        const char *origin = get_str(d, "origin");
        fprintf(f, "  dataset   %s  %s%s%s\n", get_str(d, "name") ? get_str(d, "name") : "?", used,
                origin != NULL && origin[0] != '\0' ? "  from image " : "",
                origin != NULL ? origin : "");
    }
    char eta[32];
    out_duration(get_int(plan, "estimate_s", -1), eta, sizeof(eta));
    int64_t limit = get_int(plan, "limit_mbps", 0);
    fprintf(f, "  data      %s, about %s", total, eta);
    if (limit > 0)
        fprintf(f, " at the limit of %lld Mbit/s", (long long)limit);
    fprintf(f, "\n  actions, in order:\n");
    json_t *a;
    json_array_foreach(out_get(plan, "actions"), i, a)
        fprintf(f, "    %-34s %-8s %s\n", get_str(a, "action") ? get_str(a, "action") : "?",
                get_str(a, "on") ? get_str(a, "on") : "?",
                get_str(a, "does") ? get_str(a, "does") : "");
}

/* Compares two jobs by one key: numbers as numbers, the rest as rendered text. */
static int compare_key(json_t *x, json_t *y, const char *key)
{
    json_t *a = out_get(x, key), *b = out_get(y, key);
    if (json_is_number(a) && json_is_number(b)) {
        double d = json_number_value(a) - json_number_value(b);
        return d < 0 ? -1 : d > 0 ? 1 : 0;
    }
    char *sa = out_field(x, key), *sb = out_field(y, key);
    int r = strcmp(sa, sb);
    free(sa);
    free(sb);
    return r;
}

static const char *sort_keys; /* for qsort's comparator */

static int compare_jobs(const void *pa, const void *pb)
{
    json_t *x = *(json_t *const *)pa, *y = *(json_t *const *)pb;
    char *keys = mig_strdup(sort_keys), *save = NULL;
    int r = 0;
    for (char *k = strtok_r(keys, ",", &save); k != NULL && r == 0;
         k = strtok_r(NULL, ",", &save)) {
        bool desc = k[0] == '-';
        r = compare_key(x, y, desc ? k + 1 : k);
        if (desc)
            r = -r;
    }
    free(keys);
    return r;
}

void out_sort(json_t *jobs, const char *sort)
{
    size_t n = json_array_size(jobs);
    if (sort == NULL || n < 2)
        return;
    json_t **v = mig_calloc(n, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(jobs, i));
    sort_keys = sort;
    qsort(v, n, sizeof(*v), compare_jobs);
    json_array_clear(jobs);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(jobs, v[i]);
    free(v);
}

bool out_match(json_t *job, char **filters, int nfilters)
{
    for (int i = 0; i < nfilters; i++) {
        const char *eq = strchr(filters[i], '=');
        char key[256];
        size_t n = (size_t)(eq - filters[i]);
        if (n >= sizeof(key))
            return false;
        memcpy(key, filters[i], n);
        key[n] = '\0';
        char *v = out_field(job, key);
        bool ok = strcmp(v, eq + 1) == 0;
        free(v);
        if (!ok)
            return false;
    }
    return true;
}

/* Prints s for -p output: ':' and '\' escaped with '\'. */
static void put_parsable(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == ':' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
}

int out_table(FILE *f, json_t *jobs, const struct out_table_opts *opts, char *err, size_t errsz)
{
    char *fields = mig_strdup(opts->fields), *save = NULL;
    char *names[64];
    size_t ncol = 0;
    for (char *k = strtok_r(fields, ",", &save); k != NULL && ncol < 64;
         k = strtok_r(NULL, ",", &save))
        names[ncol++] = k;
    if (ncol == 0) {
        snprintf(err, errsz, "no fields to print");
        free(fields);
        return -EINVAL;
    }
    if (opts->sort != NULL) {
        const char *s = opts->sort;
        if (*s == '\0' || strstr(s, ",,") != NULL || s[strlen(s) - 1] == ',' || *s == ',') {
            snprintf(err, errsz, "empty sort key in \"%s\"", opts->sort);
            free(fields);
            return -EINVAL;
        }
        out_sort(jobs, opts->sort);
    }
    size_t nrow = json_array_size(jobs);
    char **cells = mig_calloc((nrow + 1) * ncol, sizeof(*cells));
    size_t *width = mig_calloc(ncol, sizeof(*width));
    for (size_t c = 0; c < ncol; c++) {
        cells[c] = mig_strdup(names[c]);
        for (char *p = cells[c]; *p != '\0'; p++)
            *p = (char)toupper((unsigned char)*p);
        width[c] = strlen(cells[c]);
    }
    for (size_t r = 0; r < nrow; r++) {
        for (size_t c = 0; c < ncol; c++) {
            char *v = out_field(json_array_get(jobs, r), names[c]);
            cells[(r + 1) * ncol + c] = v;
            if (strlen(v) > width[c])
                width[c] = strlen(v);
        }
    }
    for (size_t r = (opts->header && !opts->parsable) ? 0 : 1; r <= nrow; r++) {
        for (size_t c = 0; c < ncol; c++) {
            const char *v = cells[r * ncol + c];
            if (opts->parsable) {
                if (c > 0)
                    fputc(':', f);
                put_parsable(f, v);
            } else if (c + 1 < ncol) {
                fprintf(f, "%-*s  ", (int)width[c], v);
            } else {
                fputs(v, f);
            }
        }
        fputc('\n', f);
    }
    for (size_t i = 0; i < (nrow + 1) * ncol; i++)
        free(cells[i]);
    free(cells);
    free(width);
    free(fields);
    return 0;
}
