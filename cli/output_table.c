/*
 * output_table.c: the output module's part for migctl list: the fields a
 * table may show and the checks of -o, -s and KEY=VALUE, -j's projection,
 * sorting, filtering and the vmadm-style table itself (see output.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"
#include "util.h"

/* Prints s and pads it with spaces to w characters. */
static void put_padded(FILE *f, const char *s, size_t w)
{
    fputs(s, f);
    for (size_t n = out_width(s); n < w; n++)
        fputc(' ', f);
}

/* ---- list's fields and their checks ---- */

#define STATES "queued,running,waiting,switched,succeeded,failed,aborted,rolled_back"
#define PHASES "validate,prepare,sync,switch,cleanup,verify,rollback"

/* The fields of list, with the values a filter may name (NULL: any). */
static const struct {
    const char *name;
    const char *values; /* comma-separated */
} list_fields[] = {
    {"id", NULL},
    {"uuid", NULL},
    {"vm_uuid", NULL},
    {"vm_alias", NULL},
    {"brand", NULL},
    {"state", STATES},
    {"phase", PHASES},
    {"mode", "full,incremental,auto"},
    {"aborting", "true,false"},
    {"paused", "true,false"},
    {"activity", NULL},
    {"progress", NULL},
    {"progress.bytes_sent", NULL},
    {"progress.bytes_total", NULL},
    {"progress.rate_bytes_s", NULL},
    {"progress.eta_s", NULL},
    {"progress.increments", NULL},
    {"source", NULL},
    {"target", NULL},
    {"source_hostname", NULL},
    {"target_hostname", NULL},
    {"source_server_uuid", NULL},
    {"target_server_uuid", NULL},
    {"transfer", "relay,direct"},
    {"limit_mbps", NULL},
    {"cleanup_source", "true,false"},
    {"vm_was_running", "true,false,-"},
    {"downtime_ms", NULL},
    {"rollback_downtime_ms", NULL},
    {"created", NULL},
    {"started", NULL},
    {"finished", NULL},
    {"error.code", NULL},
    {"error.message", NULL},
    {"error.phase", PHASES ",-"},
    {"leftovers", NULL},
    {"cleanup_at", NULL},
    {"health.state", "none,checking,passed,failed,-"},
};
enum { NFIELDS = sizeof(list_fields) / sizeof(list_fields[0]) };

const char *out_field_names(void)
{
    static char names[1024];
    if (names[0] == '\0') {
        size_t len = 0;
        for (size_t i = 0; i < NFIELDS; i++)
            len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s", i > 0 ? ", " : "",
                                    list_fields[i].name);
    }
    return names;
}

/* The field's index, or -1.  name is n bytes long. */
static int field_index(const char *name, size_t n)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (strlen(list_fields[i].name) == n && strncmp(list_fields[i].name, name, n) == 0)
            return (int)i;
    return -1;
}

/* True when value is one of the comma-separated values. */
static bool one_of(const char *value, const char *values)
{
    size_t n = strlen(value);
    for (const char *p = values; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, value, n) == 0)
            return true;
        p += len + (comma != NULL ? 1 : 0);
    }
    return false;
}

/* Checks the comma-separated names of one option (what: "field", "sort key"). */
static int check_names(const char *csv, const char *opt, bool signs, char *err, size_t errsz)
{
    const char *p = csv;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        const char *name = p;
        if (signs && n > 0 && name[0] == '-')
            name++, n--;
        if (n == 0) {
            mig_errf(err, errsz, "empty %s in %s \"%s\"", signs ? "sort key" : "field", opt, csv);
            return -EINVAL;
        }
        if (field_index(name, n) < 0) {
            mig_errf(err, errsz, "unknown %s \"%.*s\" in %s; valid %s: %s%s",
                     signs ? "sort key" : "field", (int)n, name, opt,
                     signs ? "sort keys" : "fields", out_field_names(),
                     signs ? " ('-' before a key: descending)" : "");
            return -EINVAL;
        }
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

int out_list_check(const char *fields, const char *sort, char **filters, int nfilters, char *err,
                   size_t errsz)
{
    if (check_names(fields, "-o", false, err, errsz) != 0)
        return -EINVAL;
    if (sort != NULL && check_names(sort, "-s", true, err, errsz) != 0)
        return -EINVAL;
    for (int i = 0; i < nfilters; i++) {
        const char *eq = strchr(filters[i], '=');
        if (eq == NULL || eq == filters[i]) {
            mig_errf(err, errsz, "\"%s\" is not a KEY=VALUE filter", filters[i]);
            return -EINVAL;
        }
        int f = field_index(filters[i], (size_t)(eq - filters[i]));
        if (f < 0) {
            mig_errf(err, errsz, "unknown filter key \"%.*s\"; valid keys: %s",
                     (int)(eq - filters[i]), filters[i], out_field_names());
            return -EINVAL;
        }
        if (list_fields[f].values != NULL && !one_of(eq + 1, list_fields[f].values)) {
            char *v = out_escape(eq + 1);
            char *valid = mig_strdup(list_fields[f].values), *save = NULL;
            char list[256] = "";
            for (char *w = strtok_r(valid, ",", &save); w != NULL; w = strtok_r(NULL, ",", &save))
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                         list[0] != '\0' ? ", " : "", w);
            mig_errf(err, errsz, "%s \"%s\" is not a value it shows; valid: %s",
                     list_fields[f].name, v, list);
            free(valid);
            free(v);
            return -EINVAL;
        }
    }
    return 0;
}

const char *out_filter_state(char **filters, int nfilters)
{
    for (int i = 0; i < nfilters; i++)
        if (strncmp(filters[i], "state=", 6) == 0)
            return filters[i] + 6;
    return NULL;
}

/* Sets value at the dotted path in obj, making the objects on the way. */
static void set_path(json_t *obj, const char *path, json_t *value)
{
    const char *dot;
    while ((dot = strchr(path, '.')) != NULL) {
        char *key = mig_asprintf("%.*s", (int)(dot - path), path);
        json_t *next = json_object_get(obj, key);
        if (!json_is_object(next)) {
            next = json_object();
            json_object_set_new(obj, key, next);
        }
        free(key);
        obj = next;
        path = dot + 1;
    }
    json_object_set_new(obj, path, value);
}

json_t *out_project(json_t *job, const char *fields)
{
    json_t *out = json_object();
    char *names = mig_strdup(fields), *save = NULL;
    for (char *k = strtok_r(names, ",", &save); k != NULL; k = strtok_r(NULL, ",", &save)) {
        if (strcmp(k, "id") == 0 || strcmp(k, "source") == 0 || strcmp(k, "target") == 0) {
            char *v = out_field(job, k);
            json_object_set_new(out, k, json_string(v));
            free(v);
        } else {
            json_t *v = out_get(job, k);
            set_path(out, k, v != NULL ? json_deep_copy(v) : json_null());
        }
    }
    free(names);
    return out;
}

/* ---- tables ---- */

/* Compares two jobs by one key: numbers as numbers, the rest as rendered text. */
static int compare_key(json_t *x, json_t *y, const char *key)
{
    if (strcmp(key, "progress") == 0) {
        int a = out_progress_pct(x), b = out_progress_pct(y);
        return a < b ? -1 : a > b ? 1 : 0;
    }
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
        if (eq == NULL)
            return false;
        char *key = mig_asprintf("%.*s", (int)(eq - filters[i]), filters[i]);
        char *v = out_field(job, key);
        bool ok = strcmp(v, eq + 1) == 0;
        free(v);
        free(key);
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

/* Columns whose values may be cut to fit the default layout into opts->fit. */
static bool cuttable(const char *name)
{
    return strcmp(name, "vm_alias") == 0 || strcmp(name, "source") == 0 ||
           strcmp(name, "target") == 0;
}

/* Narrows the cuttable columns, widest first, until the line fits (or none can give). */
static void fit_widths(char **names, size_t *width, size_t ncol, size_t fit)
{
    enum { MIN_WIDTH = 8 };
    for (;;) {
        size_t total = 0;
        for (size_t c = 0; c < ncol; c++)
            total += width[c] + (c > 0 ? 2 : 0);
        if (total <= fit)
            return;
        size_t widest = ncol;
        for (size_t c = 0; c < ncol; c++)
            if (cuttable(names[c]) && width[c] > MIN_WIDTH &&
                (widest == ncol || width[c] > width[widest]))
                widest = c;
        if (widest == ncol)
            return;
        width[widest]--;
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
        mig_errf(err, errsz, "no fields to print");
        free(fields);
        return -EINVAL;
    }
    if (opts->sort != NULL)
        out_sort(jobs, opts->sort);
    size_t nrow = json_array_size(jobs);
    char **cells = mig_calloc((nrow + 1) * ncol, sizeof(*cells));
    size_t *width = mig_calloc(ncol, sizeof(*width));
    for (size_t c = 0; c < ncol; c++) {
        cells[c] = mig_strdup(names[c]);
        for (char *p = cells[c]; *p != '\0'; p++)
            *p = (char)toupper((unsigned char)*p);
        width[c] = out_width(cells[c]);
    }
    for (size_t r = 0; r < nrow; r++) {
        for (size_t c = 0; c < ncol; c++) {
            char *v = out_field(json_array_get(jobs, r), names[c]);
            cells[(r + 1) * ncol + c] = v;
            if (out_width(v) > width[c])
                width[c] = out_width(v);
        }
    }
    if (opts->fit > 0 && !opts->parsable)
        fit_widths(names, width, ncol, opts->fit);
    for (size_t r = (opts->header && !opts->parsable) ? 0 : 1; r <= nrow; r++) {
        for (size_t c = 0; c < ncol; c++) {
            const char *v = cells[r * ncol + c];
            if (opts->parsable) {
                if (c > 0)
                    fputc(':', f);
                put_parsable(f, v);
                continue;
            }
            char *cut = out_cut(v, width[c]);
            if (c + 1 < ncol) {
                put_padded(f, cut, width[c]);
                fputs("  ", f);
            } else {
                fputs(cut, f);
            }
            free(cut);
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
