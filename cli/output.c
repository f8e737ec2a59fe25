/*
 * output.c: migctl's rendering of jobs: escaping, units, fields, the
 * progress line, summary, plan, log records, status and the error line
 * (see output.h; list's tables are in output_table.c, evacuations in
 * output_evac.c).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "output.h"
#include "util.h"

/* ---- escaping ---- */

/*
 * Decodes one UTF-8 sequence at p (n bytes left).  Returns its length and
 * the code point in *cp, or 0 when the bytes are not well-formed UTF-8
 * (overlong forms, surrogates and values above U+10FFFF included).
 */
static size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t c, min;
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    } else if ((p[0] & 0xe0) == 0xc0) {
        len = 2, c = p[0] & 0x1f, min = 0x80;
    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3, c = p[0] & 0x0f, min = 0x800;
    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4, c = p[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/* Code points a terminal acts on or that reorder what follows: shown escaped. */
static bool is_control(uint32_t cp)
{
    return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e ||
           cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* out_escape for n bytes that may hold NULs. */
static char *escape_n(const char *s, size_t n)
{
    /* The longest escape, "\u202e" (6), replaces 3 bytes; "\x1b" (4) replaces 1. */
    char *out = mig_malloc(4 * n + 1), *o = out;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        uint32_t cp;
        size_t len = utf8_decode(p, (size_t)(end - p), &cp);
        if (len == 0) {
            o += sprintf(o, "\\x%02x", *p);
            p++;
            continue;
        }
        if (!is_control(cp)) {
            memcpy(o, p, len);
            o += len;
        } else if (cp == '\t' || cp == '\n' || cp == '\r') {
            *o++ = '\\';
            *o++ = cp == '\t' ? 't' : cp == '\n' ? 'n' : 'r';
        } else if (cp < 0x80) {
            o += sprintf(o, "\\x%02x", (unsigned)cp);
        } else {
            o += sprintf(o, "\\u%04x", (unsigned)cp);
        }
        p += len;
    }
    *o = '\0';
    return out;
}

char *out_escape(const char *s)
{
    return s != NULL ? escape_n(s, strlen(s)) : NULL;
}

json_t *out_escaped(json_t *j)
{
    if (json_is_string(j)) {
        char *e = escape_n(json_string_value(j), json_string_length(j));
        json_t *r = json_string(e);
        free(e);
        return r;
    }
    if (json_is_object(j)) {
        json_t *r = json_object();
        const char *key;
        json_t *v;
        json_object_foreach(j, key, v)
        {
            char *k = out_escape(key);
            json_object_set_new(r, k, out_escaped(v));
            free(k);
        }
        return r;
    }
    if (json_is_array(j)) {
        json_t *r = json_array();
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) json_array_append_new(r, out_escaped(v));
        return r;
    }
    return json_incref(j);
}

size_t out_width(const char *s)
{
    size_t w = 0;
    for (; *s != '\0'; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

char *out_cut(const char *s, size_t w)
{
    if (out_width(s) <= w || w < 4)
        return mig_strdup(s);
    size_t keep = w - 3, n = 0;
    const char *p = s;
    for (; *p != '\0'; p++) {
        if (((unsigned char)*p & 0xc0) != 0x80 && n++ == keep)
            break;
    }
    return mig_asprintf("%.*s...", (int)(p - s), s);
}

/* ---- the error line ---- */

void out_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *text = mig_malloc(n > 0 ? (size_t)n + 1 : 1);
    va_start(ap, fmt);
    vsnprintf(text, n > 0 ? (size_t)n + 1 : 1, fmt, ap);
    va_end(ap);
    char *line = out_escape(text);
    fprintf(stderr, "migctl: %s\n", line);
    free(line);
    free(text);
}

/* ---- units ---- */

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
        snprintf(buf, bufsz, "-");
    else if (s < 3600)
        snprintf(buf, bufsz, "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
    else
        snprintf(buf, bufsz, "%lld:%02lld:%02lld", (long long)(s / 3600),
                 (long long)(s % 3600 / 60), (long long)(s % 60));
}

/* ---- job fields ---- */

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

/* get_str, or dflt when the field is absent or not a string. */
static const char *get_str_or(json_t *job, const char *path, const char *dflt)
{
    const char *s = get_str(job, path);
    return s != NULL ? s : dflt;
}

static bool state_is(json_t *job, const char *state)
{
    const char *s = get_str(job, "state");
    return s != NULL && strcmp(s, state) == 0;
}

/* The VM runs on the target: the data is all there, whatever the counters say. */
static bool moved(json_t *job)
{
    return state_is(job, "switched") || state_is(job, "succeeded");
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

int out_progress_pct(json_t *job)
{
    if (moved(job))
        return 100;
    int64_t sent = get_int(job, "progress.bytes_sent", 0);
    int64_t total = get_int(job, "progress.bytes_total", 0);
    if (total <= 0)
        return -1;
    if (sent >= total)
        return 99;
    return (int)(sent * 100 / total);
}

/* list's leftovers column: "-", or "KIND@CN" for each, comma-separated. */
static char *leftovers_field(json_t *job)
{
    json_t *los = out_get(job, "leftovers");
    if (!json_is_array(los) || json_array_size(los) == 0)
        return mig_strdup("-");
    char *out = mig_strdup("");
    size_t i;
    json_t *lo;
    json_array_foreach(los, i, lo)
    {
        char *next = mig_asprintf("%s%s%s@%s", out, i > 0 ? "," : "", get_str_or(lo, "kind", "?"),
                                  get_str_or(lo, "cn", "?"));
        free(out);
        out = next;
    }
    return out;
}

char *out_field(json_t *job, const char *field)
{
    if (strcmp(field, "progress") == 0) {
        int pct = out_progress_pct(job);
        return pct < 0 ? mig_strdup("-") : mig_asprintf("%d%%", pct);
    }
    if (strcmp(field, "id") == 0) {
        const char *u = get_str(job, "uuid");
        return u != NULL ? mig_asprintf("%.8s", u) : mig_strdup("-");
    }
    if (strcmp(field, "source") == 0 || strcmp(field, "target") == 0)
        return mig_strdup(side_name(job, field));
    if (strcmp(field, "leftovers") == 0)
        return leftovers_field(job);
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

/* ---- progress, summary, journal, plan ---- */

/* A name migd uses (a phase, a mode) and what it means to an operator. */
struct words {
    const char *name, *words;
};

/* The words for name in table t of n entries, "" when it has none. */
static const char *words_of(const struct words *t, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, t[i].name) == 0)
            return t[i].words;
    return "";
}

/* What a phase does, for a moment when migd names no action. */
static const char *phase_words(const char *phase)
{
    static const struct words words[] = {
        {"validate", "checking the VM and the target"},
        {"prepare", "preparing the target"},
        {"sync", "sending the VM's datasets"},
        {"switch", "switching the VM to the target"},
        {"cleanup", "cleaning up"},
        {"rollback", "moving the VM back to the source"},
    };
    return words_of(words, sizeof(words) / sizeof(words[0]), phase);
}

void out_progress_line(json_t *job, char *buf, size_t bufsz)
{
    const char *state = get_str_or(job, "state", "?");
    const char *phase = get_str_or(job, "phase", "?");
    const char *activity = get_str(job, "activity");
    char sent[32], total[32], rate[32], eta[32];
    int64_t bt = get_int(job, "progress.bytes_total", 0);
    int64_t inc = get_int(job, "progress.increments", 0);
    out_bytes(get_int(job, "progress.bytes_sent", 0), sent, sizeof(sent));
    out_bytes(bt, total, sizeof(total));
    out_bytes(get_int(job, "progress.rate_bytes_s", 0), rate, sizeof(rate));
    out_duration(get_int(job, "progress.eta_s", -1), eta, sizeof(eta));
    bool live = strcmp(state, "queued") == 0 || strcmp(state, "running") == 0 ||
                strcmp(state, "waiting") == 0;
    char what[512] = "";
    if (activity != NULL && activity[0] != '\0')
        snprintf(what, sizeof(what), "  (%s)", activity);

    if (live && json_is_true(out_get(job, "aborting"))) {
        snprintf(buf, bufsz, "aborting in %s%s", phase, what);
    } else if (live && json_is_true(out_get(job, "paused"))) {
        snprintf(buf, bufsz, "paused in %s%s", phase, what);
    } else if (strcmp(state, "queued") == 0) {
        snprintf(buf, bufsz, "queued%s", what);
    } else if (strcmp(state, "running") == 0 && strcmp(phase, "sync") == 0) {
        int pct = out_progress_pct(job);
        char p[16] = "";
        if (pct >= 0)
            snprintf(p, sizeof(p), "  %d%%", pct);
        if (bt > 0)
            snprintf(buf, bufsz, "%-8s %s / %s%s  %s/s  ETA %s  inc %lld%s", phase, sent, total, p,
                     rate, eta, (long long)inc, what);
        else
            snprintf(buf, bufsz, "%-8s %s  %s/s  inc %lld%s", phase, sent, rate, (long long)inc,
                     what);
    } else if (strcmp(state, "running") == 0) {
        /* No stream to measure (or the switch's last short one): say what runs. */
        snprintf(buf, bufsz, "%-8s %s", phase,
                 activity != NULL && activity[0] != '\0' ? activity : phase_words(phase));
    } else if (strcmp(state, "waiting") == 0 && activity != NULL &&
               strncmp(activity, "ready; ", 7) == 0) {
        /* It switches by itself, once its window or a switch slot allows. */
        snprintf(buf, bufsz, "waiting  %s", activity + 7);
    } else if (strcmp(state, "waiting") == 0) {
        snprintf(buf, bufsz, "waiting  in sync, %s sent, inc %lld: \"migctl finish\" switches it%s",
                 sent, (long long)inc, what);
    } else if (strcmp(state, "switched") == 0 || strcmp(state, "succeeded") == 0) {
        int64_t down = get_int(job, "downtime_ms", -1);
        char d[48] = "";
        if (down >= 0)
            snprintf(d, sizeof(d), ", downtime %.1f s", (double)down / 1000);
        snprintf(buf, bufsz, "%s 100%%  %s sent%s; the VM runs on %s", state, sent, d,
                 side_name(job, "target"));
    } else if (strcmp(state, "rolled_back") == 0) {
        snprintf(buf, bufsz, "rolled_back  the VM runs on %s again", side_name(job, "source"));
    } else if (strcmp(state, "failed") == 0 || strcmp(state, "aborted") == 0) {
        const char *code = get_str(job, "error.code");
        snprintf(buf, bufsz, "%s in %s%s%s%s", state, get_str_or(job, "error.phase", phase),
                 code != NULL ? " (" : "", code != NULL ? code : "", code != NULL ? ")" : "");
    } else {
        snprintf(buf, bufsz, "%s", state);
    }
}

/* One check as a line: "health ok   running: running on cn2". */
static void health_check_line(json_t *c, char *buf, size_t bufsz)
{
    json_t *ok = out_get(c, "ok");
    snprintf(buf, bufsz, "health %-4s %-8s %s", json_is_null(ok) ? "?" : json_is_true(ok) ? "ok" : "FAIL",
             get_str_or(c, "name", "?"), get_str_or(c, "detail", ""));
}

void out_health_key(json_t *health, char *buf, size_t bufsz)
{
    size_t n = (size_t)snprintf(buf, bufsz, "%s", get_str_or(health, "state", "?"));
    json_t *checks = out_get(health, "checks");
    size_t i;
    json_t *c;
    json_array_foreach(checks, i, c)
    {
        json_t *ok = out_get(c, "ok");
        if (n < bufsz)
            n += (size_t)snprintf(buf + n, bufsz - n, " %s=%s", get_str_or(c, "name", "?"),
                                  json_is_null(ok) ? "?" : json_is_true(ok) ? "ok" : "fail");
    }
}

void out_health_lines(json_t *health, const char *told, char *buf, size_t bufsz)
{
    size_t n = 0;
    buf[0] = '\0';
    json_t *checks = out_get(health, "checks");
    size_t i;
    json_t *c;
    json_array_foreach(checks, i, c)
    {
        json_t *ok = out_get(c, "ok");
        char word[96], line[512];
        snprintf(word, sizeof(word), " %s=%s", get_str_or(c, "name", "?"),
                 json_is_null(ok) ? "?" : json_is_true(ok) ? "ok" : "fail");
        if (strstr(told, word) != NULL)
            continue; /* told already */
        health_check_line(c, line, sizeof(line));
        if (n < bufsz)
            n += (size_t)snprintf(buf + n, bufsz - n, "%s\n", line);
    }
    const char *state = get_str_or(health, "state", "?");
    if (strcmp(state, "checking") != 0 && strncmp(told, state, strlen(state)) != 0 && n < bufsz) {
        if (strcmp(state, "failed") == 0)
            snprintf(buf + n, bufsz - n, "health gate failed: %s\n",
                     get_str_or(health, "failure", "?"));
        else
            snprintf(buf + n, bufsz - n, "health gate %s after %lld s up\n", state,
                     (long long)get_int(health, "min_up_s", 0));
    }
}

/* What the job does with the source copy, in words. */
static const char *cleanup_words(json_t *obj)
{
    return json_is_true(out_get(obj, "cleanup_source"))
               ? "DELETED once the VM runs on the target (--cleanup-source)"
               : "kept after the switch until \"migctl cleanup\" (\"migctl rollback\" returns to "
                 "it)";
}

/* "relay, at most 16 Mbit/s" / "direct, no cap": the transfer and its cap. */
static void transfer_words(json_t *obj, char *buf, size_t bufsz)
{
    int64_t limit = get_int(obj, "limit_mbps", 0);
    const char *t = get_str_or(obj, "transfer", "migd's default");
    if (limit > 0)
        snprintf(buf, bufsz, "%s, at most %lld Mbit/s", t, (long long)limit);
    else
        snprintf(buf, bufsz, "%s, no cap", t);
}

void out_round(json_t *r, char *buf, size_t bufsz)
{
    char bytes[32], rate[32], pred[48] = "";
    out_bytes(get_int(r, "bytes", 0), bytes, sizeof(bytes));
    out_bytes(get_int(r, "rate_bytes_s", 0), rate, sizeof(rate));
    int64_t p = get_int(r, "predicted_downtime_ms", -1);
    if (p >= 0)
        snprintf(pred, sizeof(pred), "; a switch now: about %.1f s down", (double)p / 1000);
    snprintf(buf, bufsz, "round %lld: %s in %.1f s (%s/s)%s", (long long)get_int(r, "n", 0), bytes,
             (double)get_int(r, "duration_ms", 0) / 1000, rate, pred);
}

void out_job_summary(FILE *f, json_t *job)
{
    char a[32], b[32], line[1024];
    const char *alias = get_str(job, "vm_alias");
    const char *state = get_str_or(job, "state", "?");
    bool live = strcmp(state, "queued") == 0 || strcmp(state, "running") == 0 ||
                strcmp(state, "waiting") == 0;
    fprintf(f, "job         %s\n", get_str_or(job, "uuid", "?"));
    fprintf(f, "vm          %s%s%s%s  %s\n", get_str_or(job, "vm_uuid", "?"),
            alias != NULL ? " (" : "", alias != NULL ? alias : "", alias != NULL ? ")" : "",
            get_str_or(job, "brand", ""));
    fprintf(f, "state       %s (phase %s)%s\n", state, get_str_or(job, "phase", "?"),
            live && json_is_true(out_get(job, "aborting")) ? ", aborting"
            : live && json_is_true(out_get(job, "paused")) ? ", paused"
                                                            : "");
    fprintf(f, "mode        %s\n", get_str_or(job, "mode", "?"));
    fprintf(f, "source      %s\n", side_name(job, "source"));
    fprintf(f, "target      %s\n", side_name(job, "target"));
    transfer_words(job, line, sizeof(line));
    json_t *compressed = out_get(job, "send_compressed");
    fprintf(f, "transfer    %s%s\n", line,
            json_is_true(compressed)    ? "; compressed sends (zfs send -c on both CNs)"
            : json_is_false(compressed) ? "; plain sends (a CN's zfs has no send -c)"
                                        : "");
    fprintf(f, "source copy %s\n", cleanup_words(job));
    if (get_str(job, "cleanup_at") != NULL)
        fprintf(f, "            deleted at %s by the cleanup timer (\"migctl cleanup --cancel-timer "
                   "%.8s\" keeps it)\n",
                get_str(job, "cleanup_at"), get_str_or(job, "uuid", "JOB"));
    if (get_str(job, "window.opens") != NULL)
        fprintf(f, "window      %s-%s %s: the switch only inside it; %s %s, closes %s\n",
                get_str(job, "window.opens"), get_str_or(job, "window.closes", "?"),
                get_str_or(job, "window.tz", "UTC"),
                json_is_true(out_get(job, "window.open")) ? "open since" : "opens",
                get_str_or(job, "window.next_open", "?"), get_str_or(job, "window.next_close", "?"));

    out_bytes(get_int(job, "progress.bytes_sent", 0), a, sizeof(a));
    out_bytes(get_int(job, "progress.bytes_total", 0), b, sizeof(b));
    int pct = out_progress_pct(job);
    int64_t inc = get_int(job, "progress.increments", 0);
    fprintf(f, "progress    %s of %s", a, b);
    if (pct >= 0)
        fprintf(f, " (%d%%)", pct);
    if (state_is(job, "running") && strcmp(get_str_or(job, "phase", ""), "sync") == 0) {
        char rate[32], eta[32];
        out_bytes(get_int(job, "progress.rate_bytes_s", 0), rate, sizeof(rate));
        out_duration(get_int(job, "progress.eta_s", -1), eta, sizeof(eta));
        fprintf(f, ", %s/s, ETA %s", rate, eta);
    }
    fprintf(f, ", %lld increment%s\n", (long long)inc, inc == 1 ? "" : "s");
    const char *activity = get_str(job, "activity");
    if (live && activity != NULL && activity[0] != '\0')
        fprintf(f, "now         %s\n", activity);

    json_t *rounds = out_get(job, "rounds");
    size_t i;
    json_t *r;
    json_array_foreach(rounds, i, r)
    {
        char rl[256];
        out_round(r, rl, sizeof(rl));
        fprintf(f, "%-11s %s\n", i == 0 ? "rounds" : "", rl);
    }
    int64_t down = get_int(job, "downtime_ms", -1);
    if (down >= 0) {
        fprintf(f, "downtime    %.1f s\n", (double)down / 1000);
        json_t *parts = out_get(job, "downtime_breakdown.actions");
        json_t *p;
        json_array_foreach(parts, i, p)
            fprintf(f, "            %-32s %6lld ms\n", get_str_or(p, "action", "?"),
                    (long long)get_int(p, "ms", 0));
        int64_t daemon = get_int(job, "downtime_breakdown.daemon_ms", -1);
        if (daemon >= 0)
            fprintf(f, "            %-32s %6lld ms\n", "migd itself", (long long)daemon);
    }
    int64_t back = get_int(job, "rollback_downtime_ms", -1);
    if (back >= 0)
        fprintf(f, "rollback    downtime %.1f s\n", (double)back / 1000);
    json_t *running = out_get(job, "vm_was_running");
    if (json_is_boolean(running))
        fprintf(f, "vm running  %s\n", json_is_true(running) ? "yes" : "no");
    static const char *times[] = {"created", "started", "finished"};
    for (size_t i = 0; i < 3; i++)
        if (get_str(job, times[i]) != NULL)
            fprintf(f, "%-11s %s\n", times[i], get_str(job, times[i]));
    json_t *health = out_get(job, "health");
    if (json_is_object(health)) {
        fprintf(f, "health      %s, %lld s up wanted, since %s\n", get_str_or(health, "state", "?"),
                (long long)get_int(health, "min_up_s", 0), get_str_or(health, "since", "-"));
        json_t *c;
        json_array_foreach(out_get(health, "checks"), i, c)
        {
            char hl[512];
            health_check_line(c, hl, sizeof(hl));
            fprintf(f, "            %s (%s)\n", hl + 7, get_str_or(c, "at", "?"));
        }
        if (get_str(health, "failure") != NULL)
            fprintf(f, "            failed: %s\n", get_str(health, "failure"));
    }
    if (get_str(job, "error.code") != NULL || get_str(job, "error.message") != NULL)
        fprintf(f, "error       %s: %s (phase %s)\n", get_str_or(job, "error.code", "?"),
                get_str_or(job, "error.message", ""), get_str_or(job, "error.phase", "?"));
    json_t *los = out_get(job, "leftovers");
    json_t *lo;
    json_array_foreach(los, i, lo)
    {
        fprintf(f, "%-11s %s %s on %s: %s\n", i == 0 ? "leftovers" : "",
                get_str_or(lo, "kind", "?"), get_str_or(lo, "name", "?"),
                get_str_or(lo, "cn", "?"), get_str_or(lo, "reason", ""));
        fprintf(f, "            since %s, %lld retr%s, next %s; %s\n", get_str_or(lo, "since", "?"),
                (long long)get_int(lo, "tries", 0), get_int(lo, "tries", 0) == 1 ? "y" : "ies",
                get_str_or(lo, "next_retry", "?"),
                json_is_true(out_get(lo, "blocks"))
                    ? "blocks a new migration of the VM to that CN until it is gone"
                    : "harmless: it blocks nothing");
    }
    const char *uuid = get_str_or(job, "uuid", "JOB");
    if (json_array_size(los) > 0 && strcmp(state, "switched") != 0)
        fprintf(f, "next        \"migctl cleanup %s\" retries the leftovers now\n", uuid);
    if (strcmp(state, "waiting") == 0 && activity != NULL && strncmp(activity, "ready; ", 7) == 0)
        fprintf(f, "next        nothing: it switches by itself (see activity)\n");
    else if (strcmp(state, "waiting") == 0)
        fprintf(f, "next        \"migctl finish %s\" switches it%s\n", uuid,
                get_str(job, "window.opens") != NULL ? " inside its window" : "");
    else if (strcmp(state, "switched") == 0)
        fprintf(f,
                "next        \"migctl cleanup %s\" deletes the source copy; "
                "\"migctl rollback %s\" moves the VM back\n",
                uuid, uuid);
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
        fprintf(f, "%-40s %-7s %-13s %-24s %s\n", get_str_or(a, "action", "?"),
                get_str_or(a, "side", "?"), get_str_or(a, "status", "?"),
                get_str_or(a, "started", "-"), dur);
        if (get_str(a, "error") != NULL)
            fprintf(f, "    error: %s\n", get_str(a, "error"));
    }
}

void out_plan(FILE *f, json_t *plan)
{
    static const struct words modes[] = {
        {"full", "one send while the VM runs, then the switch"},
        {"incremental", "sends until in sync, then waits for \"migctl finish\" to switch"},
        {"auto", "sends until the last delta is small, then switches by itself"},
    };
    char total[32], line[256];
    const char *mode = get_str_or(plan, "mode", "?");
    const char *words = words_of(modes, sizeof(modes) / sizeof(modes[0]), mode);
    out_bytes(get_int(plan, "bytes_total", 0), total, sizeof(total));
    fprintf(f, "  vm        %s (%s, %s)\n", get_str_or(plan, "vm_uuid", "?"),
            get_str_or(plan, "vm_alias", ""), get_str_or(plan, "brand", "?"));
    fprintf(f, "  from      %s to %s\n", get_str_or(plan, "source", "?"),
            get_str_or(plan, "target", "?"));
    fprintf(f, "  mode      %s: %s\n", mode, words);
    transfer_words(plan, line, sizeof(line));
    fprintf(f, "  transfer  %s\n", line);
    const char *note = json_string_value(json_object_get(plan, "transfer_note"));
    if (note != NULL)
        fprintf(f, "            %s\n", note);
    fprintf(f, "  source    %s\n", cleanup_words(plan));
    size_t i;
    json_t *d;
    json_array_foreach(out_get(plan, "datasets"), i, d)
    {
        char used[32];
        out_bytes(get_int(d, "used", 0), used, sizeof(used));
        const char *origin = get_str(d, "origin");
        fprintf(f, "  dataset   %s  %s%s%s\n", get_str_or(d, "name", "?"), used,
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
        fprintf(f, "    %-34s %-8s %s\n", get_str_or(a, "action", "?"), get_str_or(a, "on", "?"),
                get_str_or(a, "does", ""));
}

/* ---- log records and status ---- */

/* bunyan's levels. */
static const struct {
    const char *name;
    int level;
} levels[] = {{"trace", 10}, {"debug", 20}, {"info", 30},
              {"warn", 40},  {"error", 50}, {"fatal", 60}};
enum { NLEVELS = sizeof(levels) / sizeof(levels[0]) };

int out_log_level(const char *name)
{
    for (int i = 0; i < NLEVELS; i++)
        if (strcasecmp(name, levels[i].name) == 0)
            return levels[i].level;
    return -1;
}

static const char *level_name(json_int_t level)
{
    static const char *upper[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"};
    for (int i = NLEVELS - 1; i > 0; i--)
        if (level >= levels[i].level)
            return upper[i];
    return upper[0];
}

/* True for a key every record has or that the line shows already. */
static bool log_known_key(const char *key)
{
    static const char *known[] = {"time", "level", "msg",      "name",   "hostname",
                                  "pid",  "v",     "job_uuid", "vm_uuid"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(key, known[i]) == 0)
            return true;
    return false;
}

void out_log_record(FILE *f, json_t *rec)
{
    json_int_t level = json_integer_value(json_object_get(rec, "level"));
    const char *t = json_string_value(json_object_get(rec, "time"));
    const char *m = json_string_value(json_object_get(rec, "msg"));
    fprintf(f, "%s %-5s %s", t != NULL ? t : "-", level_name(level), m != NULL ? m : "");
    const char *key;
    json_t *v;
    json_object_foreach(rec, key, v)
    {
        if (log_known_key(key))
            continue;
        char *s = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        fprintf(f, " %s=%s", key, s != NULL ? s : json_string_value(v));
        free(s);
    }
    fputc('\n', f);
}

void out_status(FILE *f, json_t *ping, const char *socket_path)
{
    json_int_t up = json_integer_value(json_object_get(ping, "uptime_s"));
    const char *v = json_string_value(json_object_get(ping, "version"));
    fprintf(f, "migd %s, pid %lld, up %lldd %lldh %lldm, socket %s\n", v != NULL ? v : "?",
            (long long)json_integer_value(json_object_get(ping, "pid")), (long long)(up / 86400),
            (long long)(up % 86400 / 3600), (long long)(up % 3600 / 60), socket_path);
    fprintf(f, "jobs:");
    const char *state;
    json_t *n;
    bool first = true;
    json_object_foreach(json_object_get(ping, "jobs"), state, n)
    {
        fprintf(f, "%s %s %lld", first ? "" : ",", state, (long long)json_integer_value(n));
        first = false;
    }
    fputc('\n', f);
    json_int_t bad = json_integer_value(json_object_get(ping, "unreadable"));
    if (bad > 0)
        fprintf(f, "%lld job record%s cannot be read: see \"migctl list -a\" and migd's log\n",
                (long long)bad, bad == 1 ? "" : "s");
}
