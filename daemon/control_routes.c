/*
 * control_routes.c: the control API's routes, one table of {method, path
 * pattern, handler}, and the dispatch of a request over it.  Reading the
 * table tells what the API answers; the dispatch adds only the rules below.
 *
 * A path is its segments: repeated and trailing slashes do not count
 * ("/jobs/" is "/jobs") and the query string is not part of it.  A pattern's
 * segment is a literal, ":job" (a job UUID) or ":id" (any segment, checked
 * by its handler).  GET takes HEAD too.  In that order:
 *   - a path that reaches a ":job" segment of a pattern (its literals before
 *     it match, and it is no longer than the pattern) must name it with a
 *     UUID, whatever the method and whatever follows: else 400
 *     InvalidArgument;
 *   - a path that matches patterns, but none with the request's method, is
 *     405 BadMethod with Allow naming theirs;
 *   - a path that matches no pattern is 404 ResourceNotFound.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>

#include "control_int.h"
#include "invariant.h"
#include "util.h"

/* The segments of the longest pattern. */
#define ROUTE_SEGS 3

struct route {
    const char *method;  /* "GET" (HEAD too) or "POST" */
    const char *pattern; /* "/jobs/:job/watch": see the file comment */
    control_handler_fn *handler;
};

static const struct route routes[] = {
    {"GET", "/ping", control_ping},
    {"GET", "/metrics", control_metrics},
    {"GET", "/jobs", control_jobs_list},
    {"POST", "/jobs", control_jobs_submit},
    {"GET", "/jobs/:job", control_job_get},
    {"POST", "/jobs/:job", control_job_action}, /* ?action=finish|abort|rollback|cleanup|cancel_timer|pause|resume */
    {"GET", "/jobs/:job/watch", control_job_watch},
    {"GET", "/jobs/:job/log", control_job_log},
    {"GET", "/jobs/:job/actions", control_job_actions},
    {"GET", "/evacuations", control_evacuations_list},
    {"POST", "/evacuations", control_evacuate},
    {"GET", "/evacuations/:id", control_evacuation_get},
    {"POST", "/evacuations/:id/pause", control_evacuation_pause},
    {"POST", "/evacuations/:id/resume", control_evacuation_resume},
    {"POST", "/evacuations/:id/unreserve", control_evacuation_unreserve},
    {"POST", "/evacuations/:id/return", control_evacuation_return},
    {"GET", "/estimate", control_estimate}, /* ?of=VM or CN */
    {"GET", "/doctor", control_doctor},     /* ?cn=CN[,CN...] */
    {"POST", "/doctor/fix", control_doctor_fix},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* A pattern cut into its segments (pointers into the pattern). */
struct pattern {
    int n;
    const char *seg[ROUTE_SEGS];
    size_t len[ROUTE_SEGS];
};

static void pattern_split(const char *pattern, struct pattern *out)
{
    out->n = 0;
    for (const char *p = pattern; *p != '\0';) {
        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        const char *s = p;
        while (*p != '\0' && *p != '/')
            p++;
        MIG_INVARIANT(out->n < ROUTE_SEGS, "route %s has more than %d segments", pattern,
                      ROUTE_SEGS);
        out->seg[out->n] = s;
        out->len[out->n] = (size_t)(p - s);
        out->n++;
    }
}

static bool pattern_is_param(const struct pattern *pt, int i)
{
    return pt->seg[i][0] == ':';
}

/* True when the path's segments [0, k) match the pattern's (a parameter matches any). */
static bool pattern_prefix_matches(const struct pattern *pt, char **seg, int k)
{
    for (int i = 0; i < k; i++) {
        if (pattern_is_param(pt, i))
            continue;
        if (strlen(seg[i]) != pt->len[i] || memcmp(seg[i], pt->seg[i], pt->len[i]) != 0)
            return false;
    }
    return true;
}

/* Splits the normalized path into at most max segments (pool strings); -1 when more. */
static int split_path(h2o_req_t *req, char **seg, int max)
{
    const char *p = req->path_normalized.base, *end = p + req->path_normalized.len;
    int n = 0;
    while (p < end) {
        while (p < end && *p == '/')
            p++;
        if (p == end)
            break;
        const char *s = p;
        while (p < end && *p != '/')
            p++;
        if (n == max)
            return -1;
        seg[n++] = h2o_strdup(&req->pool, s, (size_t)(p - s)).base;
    }
    return n;
}

static bool method_is(h2o_req_t *req, const char *m)
{
    return req->method.len == strlen(m) && memcmp(req->method.base, m, req->method.len) == 0;
}

/* True when the request's method is the route's (GET takes HEAD too). */
static bool route_takes(const struct route *r, h2o_req_t *req)
{
    if (strcmp(r->method, "GET") == 0)
        return method_is(req, "GET") || method_is(req, "HEAD");
    return method_is(req, r->method);
}

/* 405: allow (copied) names the methods the path takes. */
static void respond_bad_method(h2o_req_t *req, const char *allow)
{
    char path[ECHO_MAX + 8];
    control_echo(req->path_normalized.base, req->path_normalized.len, path, sizeof(path));
    h2o_iovec_t a = h2o_strdup(&req->pool, allow, strlen(allow));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, a.base, a.len);
    control_respond_error(req, 405, "BadMethod", "%.*s is not allowed on %s (allowed: %s)",
                          (int)req->method.len, req->method.base, path, allow);
}

/*
 * Answers 400 and returns false when the path reaches a ":job" segment of a
 * pattern that is not a UUID (see the file comment).
 */
static bool check_job_params(h2o_req_t *req, char **seg, int n)
{
    for (size_t r = 0; r < NROUTES; r++) {
        struct pattern pt;
        pattern_split(routes[r].pattern, &pt);
        for (int i = 0; i < pt.n && i < n && n <= pt.n; i++) {
            bool job = pt.len[i] == 4 && memcmp(pt.seg[i], ":job", 4) == 0;
            if (!job || !pattern_prefix_matches(&pt, seg, i) || mig_uuid_valid(seg[i]))
                continue;
            char s[ECHO_MAX + 8];
            control_echo(seg[i], strlen(seg[i]), s, sizeof(s));
            control_respond_error(req, 400, "InvalidArgument", "\"%s\" is not a job UUID", s);
            return false;
        }
    }
    return true;
}

void control_route(struct control *c, h2o_req_t *req)
{
    char *seg[ROUTE_SEGS];
    int n = split_path(req, seg, ROUTE_SEGS);
    if (!check_job_params(req, seg, n))
        return;

    char allow[64] = "";
    for (size_t r = 0; r < NROUTES; r++) {
        struct pattern pt;
        pattern_split(routes[r].pattern, &pt);
        if (pt.n != n || !pattern_prefix_matches(&pt, seg, n))
            continue;
        if (route_takes(&routes[r], req)) {
            const char *id = NULL;
            for (int i = 0; i < n && id == NULL; i++)
                if (pattern_is_param(&pt, i))
                    id = seg[i];
            routes[r].handler(c, req, id);
            return;
        }
        size_t used = strlen(allow);
        snprintf(allow + used, sizeof(allow) - used, "%s%s", used != 0 ? ", " : "",
                 strcmp(routes[r].method, "GET") == 0 ? "GET, HEAD" : routes[r].method);
    }
    if (allow[0] != '\0') {
        respond_bad_method(req, allow);
        return;
    }
    char path[ECHO_MAX + 8];
    control_echo(req->path_normalized.base, req->path_normalized.len, path, sizeof(path));
    control_respond_error(req, 404, "ResourceNotFound", "%s does not exist", path);
}
