/*
 * control_status.c: the handlers of the daemon's own state: GET /ping (its
 * version, uptime and jobs by state) and GET /metrics (Prometheus text),
 * both from counters in memory.
 */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <h2o.h>

#include "control_int.h"
#include "util.h"

/* Counts by state for every state name, from the engine's stats. */
static json_t *jobs_by_state(json_t *stats)
{
    json_t *src = json_object_get(stats, "jobs");
    json_t *out = json_object();
    for (int s = 0; s < MIG_JOB_NSTATES; s++) {
        const char *name = mig_job_state_name((enum mig_job_state)s);
        json_t *n = json_object_get(src, name);
        json_object_set_new(out, name,
                            json_integer(json_is_integer(n) ? json_integer_value(n) : 0));
    }
    return out;
}

void control_ping(struct control *c, h2o_req_t *req, const char *id)
{
    (void)id;
    json_t *stats = engine_stats_json(c->d->engine);
    int64_t up = (mig_now_ms() - c->d->started_ms) / 1000;
    json_t *body =
        json_pack("{s:s, s:I, s:i, s:o, s:O}", "version", MIGD_VERSION, "uptime_s",
                  (json_int_t)(up < 0 ? 0 : up), "pid", (int)getpid(), "jobs", jobs_by_state(stats),
                  "unreadable", json_object_get(stats, "unreadable"));
    json_decref(stats);
    control_respond_json(req, 200, body);
}

void control_metrics(struct control *c, h2o_req_t *req, const char *id)
{
    (void)id;
    size_t len = 0;
    char *out = engine_metrics_text(c->d->engine, &len);
    control_respond_text(req, 200, "text/plain; version=0.0.4", out, len);
    free(out);
}
