/*
 * health.c: the health gate's record and the parsing of what the target
 * says (health.h).  The coroutine that asks is act_health.c; what the job
 * does with the answer is lifecycle.c's.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health.h"
#include "invariant.h"
#include "json_value.h"
#include "util.h"

static const char *const check_names[MIG_NCHECKS] = {
    [MIG_CHECK_RUNNING] = "running", [MIG_CHECK_ZONE_ID] = "zone_id",
    [MIG_CHECK_SMF] = "smf",         [MIG_CHECK_COMMAND] = "command"};
static const char *const state_names[MIG_HEALTH_NSTATES] = {
    [MIG_HEALTH_NONE] = "none", [MIG_HEALTH_CHECKING] = "checking",
    [MIG_HEALTH_PASSED] = "passed", [MIG_HEALTH_FAILED] = "failed"};

void mig_health_init(struct mig_health *h, int min_up_s)
{
    memset(h, 0, sizeof(*h));
    h->min_up_s = min_up_s;
    h->zone_id = -1;
    for (int i = 0; i < MIG_NCHECKS; i++)
        h->checks[i].ok = -1;
}

bool mig_health_smf_brand(const char *brand)
{
    return strcmp(brand, "joyent") == 0 || strcmp(brand, "joyent-minimal") == 0;
}

const char *mig_health_check_name(enum mig_health_check c)
{
    return (unsigned)c < MIG_NCHECKS ? check_names[c] : "unknown";
}

const char *mig_health_state_name(enum mig_health_state s)
{
    return (unsigned)s < MIG_HEALTH_NSTATES ? state_names[s] : "unknown";
}

int mig_health_state_parse(const char *s, enum mig_health_state *out)
{
    for (int i = 0; s != NULL && i < MIG_HEALTH_NSTATES; i++)
        if (strcmp(s, state_names[i]) == 0) {
            *out = (enum mig_health_state)i;
            return 0;
        }
    return -EINVAL;
}

void mig_health_note(struct mig_health *h, enum mig_health_check c, bool ok, int64_t now,
                     const char *fmt, ...)
{
    MIG_INVARIANT((unsigned)c < MIG_NCHECKS);
    struct mig_health_result *r = &h->checks[c];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
    va_end(ap);
    /* One line (a command's output may have many), and valid UTF-8 for JSON. */
    for (char *p = r->detail; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    mig_utf8_scrub(r->detail);
    r->ok = ok ? 1 : 0;
    r->at_ms = now;
}

int mig_health_failed_check(const struct mig_health *h)
{
    for (int i = 0; i < MIG_NCHECKS; i++)
        if (h->checks[i].ok == 0)
            return i;
    return -1;
}

/* Appends word to the space-separated list in buf if it fits whole. */
static bool list_add(char *buf, size_t bufsz, const char *word, size_t len)
{
    size_t have = strlen(buf);
    size_t need = have + (have > 0) + len + 1;
    if (need > bufsz)
        return false;
    if (have > 0)
        buf[have++] = ' ';
    memcpy(buf + have, word, len);
    buf[have + len] = '\0';
    return true;
}

/*
 * svcs -x prints a paragraph per service: "FMRI (description)" at the start
 * of a line, then indented lines, " State: maintenance since ..." among them.
 */
int mig_smf_maintenance_parse(const char *out, char *buf, size_t bufsz)
{
    int n = 0;
    char fmri[256] = "";
    if (bufsz > 0)
        buf[0] = '\0';
    for (const char *line = out; line != NULL && *line != '\0';) {
        const char *eol = strchr(line, '\n');
        size_t len = eol != NULL ? (size_t)(eol - line) : strlen(line);
        if (strncmp(line, "svc:/", 5) == 0) {
            size_t w = strcspn(line, " \n");
            snprintf(fmri, sizeof(fmri), "%.*s", (int)(w < len ? w : len), line);
        } else if (fmri[0] != '\0') {
            const char *s = line;
            while (s < line + len && *s == ' ')
                s++;
            if (strncmp(s, "State: maintenance", 18) == 0) {
                if (list_add(buf, bufsz, fmri, strlen(fmri)))
                    n++;
                fmri[0] = '\0';
            }
        }
        line = eol != NULL ? eol + 1 : NULL;
    }
    return n;
}

/* Whether the space-separated list holds word (len bytes) whole. */
static bool list_has(const char *list, const char *word, size_t len)
{
    for (const char *p = list; *p != '\0';) {
        size_t w = strcspn(p, " ");
        if (w == len && strncmp(p, word, len) == 0)
            return true;
        p += w;
        while (*p == ' ')
            p++;
    }
    return false;
}

int mig_smf_new_faults(const char *before, const char *now, char *buf, size_t bufsz)
{
    int n = 0;
    if (bufsz > 0)
        buf[0] = '\0';
    for (const char *p = now; *p != '\0';) {
        size_t w = strcspn(p, " ");
        if (w > 0 && !list_has(before, p, w)) {
            list_add(buf, bufsz, p, w);
            n++;
        }
        p += w;
        while (*p == ' ')
            p++;
    }
    return n;
}

static json_t *checks_json(const struct mig_health *h, bool record)
{
    json_t *a = json_array();
    for (int i = 0; i < MIG_NCHECKS; i++) {
        const struct mig_health_result *r = &h->checks[i];
        if (r->ok < 0 && !record)
            continue; /* the API lists what was checked */
        json_t *ok = r->ok < 0 ? json_null() : json_boolean(r->ok == 1);
        json_array_append_new(a, json_pack("{s:s, s:o, s:s, s:o}", "name", check_names[i], "ok",
                                           ok, "detail", r->detail, "at",
                                           record ? json_integer(r->at_ms)
                                                  : mig_json_time(r->at_ms)));
    }
    return a;
}

json_t *mig_health_to_json(const struct mig_health *h)
{
    if (h->state == MIG_HEALTH_NONE)
        return json_null();
    json_t *o = json_pack("{s:s, s:o, s:i, s:o, s:o}", "state", mig_health_state_name(h->state),
                          "since", mig_json_time(h->since_ms), "min_up_s", h->min_up_s, "checks",
                          checks_json(h, false), "failure",
                          h->state == MIG_HEALTH_FAILED ? json_string(h->why) : json_null());
    if (o == NULL)
        MIG_DIE("out of memory");
    return o;
}

json_t *mig_health_to_record(const struct mig_health *h)
{
    json_t *o = json_pack("{s:s, s:i, s:I, s:I, s:i, s:s, s:i, s:s, s:o}", "state",
                          mig_health_state_name(h->state), "min_up_s", h->min_up_s, "since_ms",
                          (json_int_t)h->since_ms, "zone_id", (json_int_t)h->zone_id,
                          "smf_baseline", h->smf_baseline, "smf_before", h->smf_before, "passes",
                          h->passes, "why", h->why, "checks", checks_json(h, true));
    if (o == NULL)
        MIG_DIE("out of memory");
    return o;
}

static int rd_int(json_t *o, const char *key, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        return 0;
    if (!json_is_integer(v))
        return -EINVAL;
    *out = json_integer_value(v);
    return 0;
}

static int rd_text(json_t *o, const char *key, char *buf, size_t bufsz)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        return 0;
    if (!json_is_string(v) || json_string_length(v) >= bufsz)
        return -EINVAL;
    memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

int mig_health_from_record(json_t *rec, struct mig_health *h)
{
    mig_health_init(h, 0);
    if (rec == NULL || json_is_null(rec))
        return 0;
    int64_t min_up = 0, baseline = 0, passes = 0;
    if (!json_is_object(rec) ||
        mig_health_state_parse(json_string_value(json_object_get(rec, "state")), &h->state) < 0 ||
        rd_int(rec, "min_up_s", &min_up) < 0 || rd_int(rec, "since_ms", &h->since_ms) < 0 ||
        rd_int(rec, "zone_id", &h->zone_id) < 0 || rd_int(rec, "smf_baseline", &baseline) < 0 ||
        rd_text(rec, "smf_before", h->smf_before, sizeof(h->smf_before)) < 0 ||
        rd_int(rec, "passes", &passes) < 0 || rd_text(rec, "why", h->why, sizeof(h->why)) < 0 ||
        min_up < 0 || min_up > 366 * 86400 || passes < 0 || passes > 100000)
        return -EINVAL;
    h->min_up_s = (int)min_up;
    h->passes = (int)passes;
    h->smf_baseline = baseline != 0;
    json_t *checks = json_object_get(rec, "checks");
    size_t i;
    json_t *c;
    if (checks != NULL && !json_is_array(checks))
        return -EINVAL;
    json_array_foreach(checks, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        int k = -1;
        for (int j = 0; name != NULL && j < MIG_NCHECKS; j++)
            if (strcmp(name, check_names[j]) == 0)
                k = j;
        json_t *ok = json_object_get(c, "ok");
        if (k < 0 || !(json_is_null(ok) || json_is_boolean(ok)))
            return -EINVAL;
        struct mig_health_result *r = &h->checks[k];
        r->ok = json_is_null(ok) ? -1 : json_is_true(ok);
        if (rd_text(c, "detail", r->detail, sizeof(r->detail)) < 0 ||
            rd_int(c, "at", &r->at_ms) < 0)
            return -EINVAL;
    }
    return 0;
}
