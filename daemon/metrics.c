/*
 * metrics.c: counters in memory for /ping and /metrics (metrics.h).  A
 * scrape is O(counters), whatever the number of jobs stored.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

#define MAX_PAIRS 256 /* (source, target) CN pairs counted; more are summed as "other" */

/* Upper bounds in ms (what is observed); /metrics shows them in seconds, the base unit. */
static const int64_t DOWNTIME_BUCKETS[] = {500, 1000, 2000, 5000, 10000, 30000, 60000, 300000};
static const int64_t DURATION_BUCKETS[] = {10000,   30000,   60000,    300000,
                                           1800000, 3600000, 21600000, 86400000};
#define NBUCKETS 8

struct histogram {
    uint64_t counts[NBUCKETS];
    uint64_t count;
    double sum;
};

struct pair {
    char source[64];
    char target[64];
    int64_t bytes;
};

struct metrics {
    int64_t jobs[MIG_JOB_NSTATES];
    int unreadable;
    struct pair pairs[MAX_PAIRS];
    int npairs;
    int64_t other_bytes;
    struct histogram downtime, duration;
    int64_t evacuations[4]; /* queued (a rolling drain's CN awaiting its turn), running, done, failed */
};

static const char *const EVAC_STATES[] = {"queued", "running", "done", "failed"};

static int evac_index(const char *state)
{
    for (int i = 0; state != NULL && i < 4; i++)
        if (strcmp(state, EVAC_STATES[i]) == 0)
            return i;
    return -1;
}

static void observe(struct histogram *h, const int64_t *buckets, int64_t v)
{
    for (int b = 0; b < NBUCKETS; b++)
        if (v <= buckets[b])
            h->counts[b]++;
    h->count++;
    h->sum += (double)v;
}

struct metrics *metrics_load(struct mig_store *st)
{
    struct metrics *m = mig_calloc(1, sizeof(*m));
    struct mig_job_filter f = {.state = NULL, .vm_uuid = NULL, .all = 1};
    struct mig_job **jobs = NULL;
    size_t n = 0;
    if (mig_store_job_list(st, &f, &jobs, &n) != 0) {
        free(m);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const struct mig_job *j = jobs[i];
        if ((unsigned)j->state < MIG_JOB_NSTATES)
            m->jobs[j->state]++;
        metrics_bytes(m, j->source_hostname != NULL ? j->source_hostname : j->source_server_uuid,
                      j->target_hostname != NULL ? j->target_hostname : j->target_server_uuid,
                      j->progress.bytes_sent);
        if (j->downtime_ms >= 0)
            observe(&m->downtime, DOWNTIME_BUCKETS, j->downtime_ms);
        if (j->finished > 0 && j->started > 0)
            observe(&m->duration, DURATION_BUCKETS, j->finished - j->started);
        mig_job_free(jobs[i]);
    }
    free(jobs);
    json_t *evacs = mig_store_evac_list(st);
    size_t i;
    json_t *ev;
    json_array_foreach(evacs, i, ev)
        metrics_evacuation(m, NULL, json_string_value(json_object_get(ev, "state")));
    json_decref(evacs);
    struct mig_bad_job *bad = NULL;
    size_t nbad = 0;
    if (mig_store_job_list_bad(st, &bad, &nbad) == 0) {
        m->unreadable = (int)nbad;
        free(bad);
    }
    return m;
}

void metrics_free(struct metrics *m)
{
    free(m);
}

void metrics_state(struct metrics *m, int from, enum mig_job_state to)
{
    if (from >= 0 && from < MIG_JOB_NSTATES && m->jobs[from] > 0)
        m->jobs[from]--;
    if ((unsigned)to < MIG_JOB_NSTATES)
        m->jobs[to]++;
}

void metrics_evacuation(struct metrics *m, const char *from, const char *to)
{
    int f = evac_index(from), t = evac_index(to);
    if (f >= 0 && m->evacuations[f] > 0)
        m->evacuations[f]--;
    if (t >= 0)
        m->evacuations[t]++;
}

void metrics_bytes(struct metrics *m, const char *source, const char *target, int64_t bytes)
{
    if (bytes <= 0)
        return;
    source = source != NULL ? source : "";
    target = target != NULL ? target : "";
    for (int i = 0; i < m->npairs; i++) {
        if (strcmp(m->pairs[i].source, source) == 0 && strcmp(m->pairs[i].target, target) == 0) {
            m->pairs[i].bytes += bytes;
            return;
        }
    }
    if (m->npairs == MAX_PAIRS) {
        m->other_bytes += bytes;
        return;
    }
    struct pair *p = &m->pairs[m->npairs++];
    snprintf(p->source, sizeof(p->source), "%s", source);
    snprintf(p->target, sizeof(p->target), "%s", target);
    p->bytes = bytes;
}

void metrics_downtime(struct metrics *m, int64_t ms)
{
    observe(&m->downtime, DOWNTIME_BUCKETS, ms);
}

void metrics_duration(struct metrics *m, int64_t ms)
{
    observe(&m->duration, DURATION_BUCKETS, ms);
}

int metrics_unreadable(const struct metrics *m)
{
    return m->unreadable;
}

json_t *metrics_jobs_json(const struct metrics *m)
{
    json_t *o = json_object();
    for (int s = 0; s < MIG_JOB_NSTATES; s++)
        json_object_set_new(o, mig_job_state_name((enum mig_job_state)s),
                            json_integer(m->jobs[s]));
    return o;
}

struct buf {
    char *p;
    size_t len, cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap *= 2;
        b->p = mig_realloc(b->p, b->cap);
    }
}

/* A label value as Prometheus wants it: \, " and newline escaped. */
static void label(char *out, size_t outsz, const char *s)
{
    size_t k = 0;
    for (; *s != '\0' && k + 2 < outsz; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            out[k++] = '\\';
            out[k++] = *s == '\n' ? 'n' : *s;
        } else {
            out[k++] = *s;
        }
    }
    out[k] = '\0';
}

/* A histogram observed in ms, written in seconds (Prometheus's base unit). */
static void histogram(struct buf *b, const char *name, const char *help,
                      const struct histogram *h, const int64_t *buckets_ms)
{
    put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (int i = 0; i < NBUCKETS; i++)
        put(b, "%s_bucket{le=\"%g\"} %llu\n", name, (double)buckets_ms[i] / 1000,
            (unsigned long long)h->counts[i]);
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.3f\n%s_count %llu\n", name,
        (unsigned long long)h->count, name, h->sum / 1000, name, (unsigned long long)h->count);
}

char *metrics_text(const struct metrics *m, int64_t rate_bytes_s, size_t *len)
{
    struct buf b = {mig_malloc(4096), 0, 4096};
    put(&b, "# HELP migd_jobs Migration jobs by state.\n# TYPE migd_jobs gauge\n");
    for (int s = 0; s < MIG_JOB_NSTATES; s++)
        put(&b, "migd_jobs{state=\"%s\"} %lld\n", mig_job_state_name((enum mig_job_state)s),
            (long long)m->jobs[s]);
    put(&b, "# HELP migd_jobs_unreadable Job rows whose record cannot be read.\n"
            "# TYPE migd_jobs_unreadable gauge\nmigd_jobs_unreadable %d\n",
        m->unreadable);
    /*
     * One counter family by CN pair: Prometheus sums it (sum(migd_bytes_sent_total));
     * pairs beyond MAX_PAIRS are counted under "(other)", not a hostname.
     */
    put(&b, "# HELP migd_bytes_sent_total Bytes of ZFS streams sent, by source and target CN.\n"
            "# TYPE migd_bytes_sent_total counter\n");
    for (int i = 0; i < m->npairs; i++) {
        char src[160], dst[160];
        label(src, sizeof(src), m->pairs[i].source);
        label(dst, sizeof(dst), m->pairs[i].target);
        put(&b, "migd_bytes_sent_total{source=\"%s\",target=\"%s\"} %lld\n", src, dst,
            (long long)m->pairs[i].bytes);
    }
    if (m->other_bytes > 0)
        put(&b, "migd_bytes_sent_total{source=\"(other)\",target=\"(other)\"} %lld\n",
            (long long)m->other_bytes);
    put(&b, "# HELP migd_transfer_rate_bytes_per_second The running jobs' current stream rate.\n"
            "# TYPE migd_transfer_rate_bytes_per_second gauge\n"
            "migd_transfer_rate_bytes_per_second %lld\n",
        (long long)rate_bytes_s);
    histogram(&b, "migd_downtime_seconds",
              "Downtime of switched jobs, from the stop on the source to the VM running on the "
              "target.",
              &m->downtime, DOWNTIME_BUCKETS);
    histogram(&b, "migd_job_duration_seconds", "Jobs' time from start to switched or ended.",
              &m->duration, DURATION_BUCKETS);
    put(&b, "# HELP migd_evacuations Evacuations of CNs by state.\n"
            "# TYPE migd_evacuations gauge\n");
    for (int i = 0; i < 4; i++)
        put(&b, "migd_evacuations{state=\"%s\"} %lld\n", EVAC_STATES[i],
            (long long)m->evacuations[i]);
    *len = b.len;
    return b.p;
}
