/*
 * cn_parse.c: the parsers of what the commands of cn.h print (zfs list and
 * get, zfs send -v's progress, zoneadm list, zonecfg export, zpool list) and
 * the checks made on that text.  Pure: no I/O; malformed output is
 * MIG_EPARSE, never a guess.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cn.h"
#include "cn_int.h"
#include "err.h"
#include "invariant.h"
#include "util.h"

int mig_parse_zfs_nicenum(const char *s, uint64_t *out)
{
    if (s == NULL || !(*s >= '0' && *s <= '9'))
        return MIG_EPARSE;
    char *end = NULL;
    double v = strtod(s, &end);
    static const char units[] = "BKMGTPE";
    int shift = 0;
    if (*end != '\0') {
        const char *u = strchr(units, *end);
        if (u == NULL || end[1] != '\0')
            return MIG_EPARSE;
        shift = (int)(u - units) * 10;
    }
    if (v < 0 || v > 18e18 / (double)(1ULL << shift))
        return MIG_EPARSE;
    *out = (uint64_t)(v * (double)(1ULL << shift));
    return 0;
}

static bool clock_like(const char *w)
{
    return strlen(w) == 8 && w[2] == ':' && w[5] == ':' && w[0] >= '0' && w[0] <= '9' &&
           w[7] >= '0' && w[7] <= '9';
}

static void progress_line(struct mig_send_progress *p)
{
    char time_w[16], size_w[32], snap_w[256];
    if (sscanf(p->line, "%15s %31s %255s", time_w, size_w, snap_w) != 3 || !clock_like(time_w) ||
        strchr(snap_w, '@') == NULL)
        return;
    uint64_t bytes;
    if (mig_parse_zfs_nicenum(size_w, &bytes) != 0)
        return;
    if (strcmp(snap_w, p->snap) != 0) {
        /* The next snapshot of the stream: the last one's count is final. */
        p->done += p->current;
        p->current = 0;
        snprintf(p->snap, sizeof(p->snap), "%s", snap_w);
    }
    if (bytes > p->current)
        p->current = bytes;
}

void mig_send_progress_feed(struct mig_send_progress *p, const char *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = data[i];
        if (ch == '\n' || ch == '\r') {
            p->line[p->len] = '\0';
            progress_line(p);
            p->len = 0;
        } else if (p->len + 1 < sizeof(p->line)) {
            p->line[p->len++] = ch;
        }
    }
}

uint64_t mig_send_progress_bytes(const struct mig_send_progress *p)
{
    return p->done + p->current;
}

/* Parses a decimal uint64 that fills all of s; false otherwise. */
static bool parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    uint64_t v = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Copies s into dst[size]; false when it does not fit. */
static bool copy_field(char *dst, size_t size, const char *s)
{
    size_t n = strlen(s);
    if (n >= size)
        return false;
    memcpy(dst, s, n + 1);
    return true;
}

/*
 * Splits line (modified in place) at sep into at most max fields; returns the
 * number of fields.  With unescape, a backslash takes the next character
 * literally (zoneadm -p escapes ':' and '\' that way).
 */
static int split(char *line, char sep, char **fields, int max, bool unescape)
{
    int n = 0;
    char *w = line;
    fields[n++] = w;
    for (char *r = line; *r != '\0'; r++) {
        if (unescape && *r == '\\' && r[1] != '\0') {
            *w++ = *++r;
        } else if (*r == sep) {
            *w++ = '\0';
            if (n == max)
                return max + 1; /* too many fields */
            fields[n++] = w;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return n;
}

/*
 * Calls fn on each non-empty line of text (a copy: fn may modify the line);
 * a trailing '\r' is dropped.  Stops at and returns fn's first non-zero.
 */
static int each_line(const char *text, int (*fn)(char *line, void *arg), void *arg)
{
    char *copy = mig_strdup(text);
    int rc = 0;
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line != NULL && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\r')
            line[--n] = '\0';
        if (n > 0)
            rc = fn(line, arg);
    }
    free(copy);
    return rc;
}

struct zfs_list_acc {
    struct mig_zfs_dataset *rows;
    int n, cap;
};

static int on_zfs_list_line(char *line, void *arg)
{
    struct zfs_list_acc *a = arg;
    char *f[5];
    if (split(line, '\t', f, 5, false) != 5)
        return MIG_EPARSE;
    struct mig_zfs_dataset d;
    memset(&d, 0, sizeof(d));
    if (!mig_dataset_valid(f[0]) || !copy_field(d.name, sizeof(d.name), f[0]) ||
        !parse_u64(f[1], &d.used) || !parse_u64(f[2], &d.referenced) || f[3][0] == '\0' ||
        !copy_field(d.origin, sizeof(d.origin), strcmp(f[3], "-") == 0 ? "" : f[3]) ||
        f[4][0] == '\0' || !copy_field(d.type, sizeof(d.type), f[4]))
        return MIG_EPARSE;
    if (a->n == a->cap) {
        int cap = a->cap > 0 ? a->cap * 2 : 8;
        a->rows = mig_realloc(a->rows, (size_t)cap * sizeof(*a->rows));
        a->cap = cap;
    }
    a->rows[a->n++] = d;
    return 0;
}

/* Rows of zfs list -H -p output: the count and *out (caller frees), or MIG_EPARSE. */
int mig_parse_zfs_list(const char *text, struct mig_zfs_dataset **out)
{
    *out = NULL;
    if (text == NULL)
        return MIG_EPARSE;
    struct zfs_list_acc a = {0};
    int rc = each_line(text, on_zfs_list_line, &a);
    if (rc < 0) {
        free(a.rows);
        return rc;
    }
    *out = a.rows != NULL ? a.rows : mig_calloc(1, sizeof(**out));
    return a.n;
}

static int on_plain_line(char *line, void *arg)
{
    for (const char *p = line; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t')
            return MIG_EPARSE;
    if (json_array_append_new(arg, json_string(line)) < 0)
        return MIG_EPARSE; /* not UTF-8 */
    return 0;
}

/* Non-empty lines as a JSON array of strings (new); NULL for NULL or binary text. */
json_t *mig_parse_lines(const char *text)
{
    if (text == NULL)
        return NULL;
    json_t *arr = json_array();
    if (arr == NULL)
        MIG_DIE("out of memory");
    if (each_line(text, on_plain_line, arr) < 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

struct zone_find {
    const char *uuid;
    struct mig_zone *out;
    bool found;
};

static int on_zone_line(char *line, void *arg)
{
    struct zone_find *z = arg;
    /* zoneid:zonename:state:zonepath:uuid:brand:ip-type[:debugid] */
    char *f[8];
    int n = split(line, ':', f, 8, true);
    if (n < 7 || n > 8)
        return MIG_EPARSE;
    if (z->found || (strcmp(f[1], z->uuid) != 0 && strcmp(f[4], z->uuid) != 0))
        return 0;
    struct mig_zone zone;
    memset(&zone, 0, sizeof(zone));
    char *end;
    zone.zoneid = strtoll(f[0], &end, 10);
    if (strcmp(f[0], "-") == 0 || end == f[0] || *end != '\0' || zone.zoneid < 0)
        zone.zoneid = -1;
    if (!copy_field(zone.zonename, sizeof(zone.zonename), f[1]) ||
        !copy_field(zone.state, sizeof(zone.state), f[2]) ||
        !copy_field(zone.zonepath, sizeof(zone.zonepath), f[3]) ||
        !copy_field(zone.uuid, sizeof(zone.uuid), f[4]) ||
        !copy_field(zone.brand, sizeof(zone.brand), f[5]) || zone.state[0] == '\0')
        return MIG_EPARSE;
    *z->out = zone;
    z->found = true;
    return 0;
}

/*
 * Finds the zone whose zonename or uuid is uuid in `zoneadm list -pc` output.
 * 0 and *out filled; -ENOENT when absent; MIG_EPARSE when any line is
 * malformed; -EINVAL when uuid is not a UUID.
 */
int mig_parse_zoneadm_find(const char *text, const char *uuid, struct mig_zone *out)
{
    if (!mig_uuid_valid(uuid))
        return -EINVAL;
    if (text == NULL)
        return MIG_EPARSE;
    struct zone_find z = {.uuid = uuid, .out = out, .found = false};
    int rc = each_line(text, on_zone_line, &z);
    if (rc < 0)
        return rc;
    return z.found ? 0 : -ENOENT;
}

struct zonecfg_flags {
    int autoboot;
    bool hidden;
    bool in_attr;      /* inside "add attr" .. "end" */
    bool attr_dni;     /* that attr is named do-not-inventory */
    bool attr_true;    /* and its value is true */
};

/* Strips one level of double quotes from a zonecfg value, in place. */
static char *unquote(char *v)
{
    size_t n = strlen(v);
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v[n - 1] = '\0';
        return v + 1;
    }
    return v;
}

static int on_zonecfg_line(char *line, void *arg)
{
    struct zonecfg_flags *z = arg;
    while (*line == ' ' || *line == '\t')
        line++;
    if (strcmp(line, "add attr") == 0) {
        z->in_attr = true;
        z->attr_dni = z->attr_true = false;
    } else if (strcmp(line, "end") == 0) {
        if (z->in_attr && z->attr_dni && z->attr_true)
            z->hidden = true;
        z->in_attr = false;
    } else if (strncmp(line, "set ", 4) == 0) {
        char *eq = strchr(line + 4, '=');
        if (eq == NULL)
            return 0;
        *eq = '\0';
        const char *key = line + 4;
        char *value = unquote(eq + 1);
        if (z->in_attr && strcmp(key, "name") == 0)
            z->attr_dni = strcmp(value, "do-not-inventory") == 0;
        else if (z->in_attr && strcmp(key, "value") == 0)
            z->attr_true = strcmp(value, "true") == 0;
        else if (!z->in_attr && strcmp(key, "autoboot") == 0)
            z->autoboot = strcmp(value, "true") == 0 ? 1 : 0;
    }
    return 0;
}

int mig_parse_zonecfg_flags(const char *text, int *autoboot, bool *hidden)
{
    if (text == NULL)
        return MIG_EPARSE;
    struct zonecfg_flags z = {.autoboot = -1};
    int rc = each_line(text, on_zonecfg_line, &z);
    if (rc < 0)
        return rc;
    *autoboot = z.autoboot;
    *hidden = z.hidden;
    return 0;
}

char *mig_zonecfg_staged(const char *text)
{
    int autoboot = -1;
    bool hidden = false;
    if (mig_parse_zonecfg_flags(text, &autoboot, &hidden) != 0)
        autoboot = -1, hidden = false;
    size_t n = text != NULL ? strlen(text) : 0;
    bool nl = n > 0 && text[n - 1] != '\n';
    /* A later `set autoboot` overrides an earlier one: zonecfg runs its lines in order. */
    return mig_asprintf("%s%s%s%s", text != NULL ? text : "", nl ? "\n" : "",
                        hidden ? ""
                               : "add attr\nset name=do-not-inventory\nset type=string\n"
                                 "set value=true\nend\n",
                        autoboot == 0 ? "" : "set autoboot=false\n");
}

/* The start of the line after the one at p (or its end). */
static const char *next_line(const char *p)
{
    size_t n = strcspn(p, "\n");
    return p + n + (p[n] != '\0');
}

/* Whether the line at p, indented or not, is text (a value in double quotes or not). */
static bool line_is(const char *p, const char *text)
{
    p += strspn(p, " \t");
    size_t n = strcspn(p, "\n"), t = strlen(text);
    if (n == t)
        return strncmp(p, text, n) == 0;
    const char *eq = strchr(text, '=');
    size_t k = eq != NULL ? (size_t)(eq - text) + 1 : 0;
    return eq != NULL && n == t + 2 && strncmp(p, text, k) == 0 && p[k] == '"' &&
           strncmp(p + k + 1, text + k, t - k) == 0 && p[n - 1] == '"';
}

/*
 * Past the lines that are flags, not configuration: "set autoboot=" (vmadm
 * stop and start change it) and a do-not-inventory attr block (the flag
 * migd, an operator or another tool sets to hide a zone from its agent).
 */
static const char *past_flags(const char *p)
{
    for (;;) {
        if (strncmp(p + strspn(p, " \t"), "set autoboot=", 13) == 0) {
            p = next_line(p);
        } else if (line_is(p, "add attr") && line_is(next_line(p), "set name=do-not-inventory")) {
            const char *q = next_line(next_line(p));
            while (*q != '\0' && !line_is(q, "end"))
                q = next_line(q);
            p = next_line(q);
        } else {
            return p;
        }
    }
}

bool mig_zonecfg_same(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    for (;;) {
        a = past_flags(a);
        b = past_flags(b);
        size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
        if (la != lb || strncmp(a, b, la) != 0)
            return false;
        a += la;
        b += lb;
        if (*a == '\0' || *b == '\0')
            return *a == *b;
        a++;
        b++;
    }
}

/* True when path is /DATASET or below it, each component plain (no "", ".", ".."). */
static bool mount_inside(const char *path, const char *dataset)
{
    size_t dl = strlen(dataset);
    if (path[0] != '/' || strncmp(path + 1, dataset, dl) != 0 ||
        (path[1 + dl] != '\0' && path[1 + dl] != '/'))
        return false;
    for (const char *p = path; *p == '/';) {
        p++;
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += n;
    }
    return true;
}

struct received {
    const char *dataset;
    char *next;
    size_t nextsz;
    char *why;
    size_t whysz;
    int pending; /* the filesystems the global zone would mount that are not mounted */
};

/* One row: name type mountpoint zoned canmount mounted. */
static int on_received_line(char *line, void *arg)
{
    struct received *r = arg;
    char *f[6];
    if (split(line, '\t', f, 6, false) != 6 || !mig_dataset_valid(f[0]))
        return MIG_EPARSE;
    size_t dl = strlen(r->dataset);
    if (strncmp(f[0], r->dataset, dl) != 0 || (f[0][dl] != '\0' && f[0][dl] != '/')) {
        snprintf(r->why, r->whysz, "the listing of %s shows %s", r->dataset, f[0]);
        return -EPERM;
    }
    if (strcmp(f[1], "filesystem") != 0)
        return 0; /* a volume or a snapshot mounts nothing */
    bool path = f[2][0] == '/';
    if (!path && strcmp(f[2], "none") != 0 && strcmp(f[2], "legacy") != 0)
        return MIG_EPARSE;
    if (strcmp(f[3], "on") == 0)
        return 0; /* zoned: its zone mounts it, under the zone's root; never the global zone */
    if (path && !mount_inside(f[2], r->dataset)) {
        snprintf(r->why, r->whysz, "%s received mountpoint %.200s, outside /%s", f[0], f[2],
                 r->dataset);
        return -EPERM;
    }
    if (path && strcmp(f[4], "on") == 0 && strcmp(f[5], "no") == 0) {
        if (r->next[0] == '\0')
            snprintf(r->next, r->nextsz, "%s", f[0]);
        r->pending++;
    }
    return 0;
}

int mig_check_received(const char *text, const char *dataset, char *next, size_t nextsz,
                       char *why, size_t whysz)
{
    next[0] = '\0';
    why[0] = '\0';
    if (text == NULL || !mig_dataset_valid(dataset))
        return MIG_EPARSE;
    struct received r = {dataset, next, nextsz, why, whysz, 0};
    int rc = each_line(text, on_received_line, &r);
    if (rc != 0)
        next[0] = '\0';
    return rc != 0 ? rc : r.pending;
}

int mig_parse_send_c_probe(const char *err)
{
    if (err == NULL)
        return MIG_EPARSE;
    /* illumos' getopt names the option it does not know before anything else. */
    if (strstr(err, "invalid option 'c'") != NULL)
        return 0;
    if (strstr(err, "missing snapshot argument") != NULL)
        return 1;
    return MIG_EPARSE;
}

int mig_parse_resume_token(const char *text, char *out, size_t outsz)
{
    if (text == NULL)
        return MIG_EPARSE;
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        n--;
    if (n == 0 || (n == 1 && text[0] == '-'))
        return 0;
    if (n >= outsz || text[0] == '-')
        return MIG_EPARSE;
    for (size_t i = 0; i < n; i++)
        if (!cn_token_char(text[i]))
            return MIG_EPARSE;
    memcpy(out, text, n);
    out[n] = '\0';
    return 1;
}

uint64_t mig_zfs_send_bytes(const struct mig_zfs_dataset *row)
{
    return row->used < row->referenced ? row->used : row->referenced;
}

int mig_parse_zfs_number(const char *text, uint64_t *out)
{
    return mig_parse_guid(text, out);
}

int mig_parse_guid(const char *text, uint64_t *guid)
{
    char buf[32];
    size_t n = text != NULL ? strlen(text) : 0;
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        n--;
    if (n == 0 || n >= sizeof(buf))
        return MIG_EPARSE;
    memcpy(buf, text, n);
    buf[n] = '\0';
    return parse_u64(buf, guid) ? 0 : MIG_EPARSE;
}

struct zpool_acc {
    uint64_t size, free_bytes;
    int rows;
};

static int on_zpool_line(char *line, void *arg)
{
    struct zpool_acc *a = arg;
    char *f[3];
    if (++a->rows > 1 || split(line, '\t', f, 3, false) != 3 || !cn_pool_valid(f[0]) ||
        !parse_u64(f[1], &a->size) || !parse_u64(f[2], &a->free_bytes) || a->free_bytes > a->size)
        return MIG_EPARSE;
    return 0;
}

/* One pool's size and free bytes from zpool list -H -p; 0 or MIG_EPARSE. */
int mig_parse_zpool_list(const char *text, uint64_t *size, uint64_t *free_bytes)
{
    if (text == NULL)
        return MIG_EPARSE;
    struct zpool_acc a = {0};
    int rc = each_line(text, on_zpool_line, &a);
    if (rc < 0 || a.rows != 1)
        return MIG_EPARSE;
    *size = a.size;
    *free_bytes = a.free_bytes;
    return 0;
}

size_t mig_direct_failure_line(const char *errout, const char **line)
{
    const char *text = errout != NULL ? errout : "", *best = NULL, *echo = NULL;
    size_t best_len = 0, echo_len = 0;
    for (const char *p = text; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        bool noise = len == 0 || (len > 8 && p[2] == ':' && p[5] == ':') ||
                     strncmp(p, "TIME ", 5) == 0 || strncmp(p, "send from ", 10) == 0 ||
                     strncmp(p, "full send of ", 13) == 0 ||
                     strncmp(p, "total estimated size", 20) == 0;
        /* The receive's own words may come before or after the send's echo. */
        bool is_echo = len >= 11 && memcmp(p + len - 11, "Broken pipe", 11) == 0;
        if (!noise && is_echo) {
            echo = p;
            echo_len = len;
        } else if (!noise) {
            best = p;
            best_len = len;
        }
        p = nl != NULL ? nl + 1 : p + len;
    }
    *line = best != NULL ? best : echo;
    return best != NULL ? best_len : echo_len;
}

int mig_parse_vmadm_get(const char *text, char *state, size_t statesz, int *autoboot)
{
    json_t *vm = json_loads(text != NULL ? text : "", 0, NULL);
    const char *st = json_string_value(json_object_get(vm, "state"));
    json_t *ab = json_object_get(vm, "autoboot");
    int rc = st != NULL ? 0 : MIG_EPARSE;
    snprintf(state, statesz, "%s", st != NULL ? st : "");
    *autoboot = json_is_boolean(ab) ? json_is_true(ab) : -1;
    json_decref(vm);
    return rc;
}
