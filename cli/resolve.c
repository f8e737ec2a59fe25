/*
 * resolve.c: how migctl finds the job an operator names: a job UUID, 8 or
 * more of its first characters, or a VM (UUID or alias) with exactly one
 * unfinished job; a name that fits none or several is a usage error that
 * lists the jobs it could mean (see resolve.h).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "migctl.h"
#include "opts.h"
#include "output.h"
#include "resolve.h"
#include "util.h"

static bool final_state(const char *state)
{
    static const char *finals[] = {"succeeded", "failed", "aborted", "rolled_back"};
    for (size_t i = 0; i < sizeof(finals) / sizeof(finals[0]); i++)
        if (state != NULL && strcmp(state, finals[i]) == 0)
            return true;
    return false;
}

/* Appends job to list unless a job with its uuid is there. */
static void add_candidate(json_t *list, json_t *job)
{
    const char *u = json_string_value(json_object_get(job, "uuid"));
    size_t i;
    json_t *j;
    json_array_foreach(list, i, j)
    {
        const char *v = json_string_value(json_object_get(j, "uuid"));
        if (u != NULL && v != NULL && strcmp(u, v) == 0)
            return;
    }
    json_array_append(list, job);
}

/* "UUID (VM ALIAS, STATE), ..." for an error line: at most 10 (malloc'd). */
static char *describe_jobs(json_t *jobs)
{
    enum { MAX_LISTED = 10 };
    char *out = mig_strdup("");
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j)
    {
        if (i == MAX_LISTED) {
            char *more = mig_asprintf("%s, and %zu more", out, json_array_size(jobs) - i);
            free(out);
            out = more;
            break;
        }
        char *uuid = out_field(j, "uuid"), *state = out_field(j, "state");
        const char *alias = json_string_value(json_object_get(j, "vm_alias"));
        const char *vm = json_string_value(json_object_get(j, "vm_uuid"));
        char *next = mig_asprintf("%s%s%s (VM %s, %s)", out, i > 0 ? ", " : "", uuid,
                                  alias != NULL && alias[0] != '\0' ? alias
                                  : vm != NULL                      ? vm
                                                                    : "?",
                                  state);
        free(uuid);
        free(state);
        free(out);
        out = next;
    }
    return out;
}

/* A JOB that names no job, or several: "migctl: CMD: what" (what is freed); EXIT_USAGE. */
static int job_error(char *what)
{
    out_fail("%s: %s", opts_command_name(), what);
    free(what);
    return EXIT_USAGE;
}

/* Several candidates for arg. */
static int job_ambiguous(const char *arg, json_t *cands)
{
    char *list = describe_jobs(cands);
    int ret = job_error(mig_asprintf("\"%s\" is ambiguous: it names %zu jobs: %s; name one by "
                                     "its UUID",
                                     arg, json_array_size(cands), list));
    free(list);
    return ret;
}

/* The VM named vm has jobs, all finished. */
static int job_vm_idle(const char *vm, json_t *jobs)
{
    char *list = describe_jobs(jobs);
    int ret = job_error(
        mig_asprintf("VM %s has no unfinished job; its jobs: %s; name one by its UUID", vm, list));
    free(list);
    return ret;
}

static int job_none(const char *arg)
{
    return job_error(mig_asprintf(
        "no job matches \"%s\": JOB is a job UUID, 8 or more of its first characters, or a VM "
        "(UUID or alias) with one unfinished job; \"migctl list -a\" lists the jobs",
        arg));
}

/* True for a word that may begin a job UUID: hex digits and dashes, shorter than one. */
static bool uuid_prefix_like(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= MIG_UUID_LEN)
        return false;
    for (const char *p = s; *p != '\0'; p++)
        if (!(*p == '-' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
              (*p >= 'A' && *p <= 'F')))
            return false;
    return true;
}

/* The jobs in list whose field key equals value, finished ones or unfinished ones. */
static json_t *jobs_where(json_t *list, const char *key, const char *value, bool finished)
{
    json_t *out = json_array();
    size_t i;
    json_t *j;
    json_array_foreach(list, i, j)
    {
        const char *v = json_string_value(json_object_get(j, key));
        bool fin = final_state(json_string_value(json_object_get(j, "state")));
        if (v != NULL && strcmp(v, value) == 0 && fin == finished)
            json_array_append(out, j);
    }
    return out;
}

/* resolve_job for a whole UUID: a job's, else a VM's. */
static int by_uuid(const char *arg, json_t **job)
{
    int ret;
    char lower[MIG_UUID_LEN + 1];
    for (size_t i = 0; i <= MIG_UUID_LEN; i++)
        lower[i] = (char)tolower((unsigned char)arg[i]);
    arg = lower;
    char *path = mig_asprintf("/jobs/%s", arg);
    long status = 0;
    json_t *got = NULL;
    ret = client_request("GET", path, NULL, &status, &got);
    free(path);
    if (ret != EXIT_OK)
        return ret;
    if (status >= 200 && status < 300) {
        *job = got;
        return EXIT_OK;
    }
    if (status != 404) {
        client_report_api_error(status, got);
        json_decref(got);
        return EXIT_FAILED;
    }
    json_decref(got);
    /* Not a job: a VM's UUID? */
    json_t *jobs = NULL;
    char *q = mig_asprintf("?all=true&vm_uuid=%s", arg);
    ret = client_fetch_jobs(q, &jobs);
    free(q);
    if (ret != EXIT_OK)
        return ret;
    json_t *open = jobs_where(jobs, "vm_uuid", arg, false);
    size_t n = json_array_size(open);
    if (n == 1)
        *job = json_incref(json_array_get(open, 0));
    ret = n == 1                      ? EXIT_OK
          : n > 1                     ? job_ambiguous(arg, open)
          : json_array_size(jobs) > 0 ? job_vm_idle(arg, jobs)
                                      : job_none(arg);
    json_decref(open);
    json_decref(jobs);
    return ret;
}

/* resolve_job for a prefix of a job UUID, or a VM alias. */
static int by_name(const char *arg, json_t **job)
{
    int ret;
    json_t *unfinished = NULL, *all = NULL;
    if ((ret = client_fetch_jobs("", &unfinished)) != EXIT_OK)
        return ret;
    json_t *cands = jobs_where(unfinished, "vm_alias", arg, false);
    size_t n = strlen(arg);
    if (uuid_prefix_like(arg) && n >= 8) {
        if ((ret = client_fetch_jobs("?all=true", &all)) != EXIT_OK)
            goto out;
        size_t i;
        json_t *j;
        json_array_foreach(all, i, j)
        {
            const char *u = json_string_value(json_object_get(j, "uuid"));
            if (u != NULL && strncasecmp(u, arg, n) == 0)
                add_candidate(cands, j);
        }
    }
    if (json_array_size(cands) == 1) {
        *job = json_incref(json_array_get(cands, 0));
        ret = EXIT_OK;
    } else if (json_array_size(cands) > 1) {
        ret = job_ambiguous(arg, cands);
    } else if (uuid_prefix_like(arg) && n < 8) {
        ret = job_error(mig_asprintf(
            "\"%s\" is too short to name a job: give 8 or more characters of its UUID", arg));
    } else {
        if (all == NULL && (ret = client_fetch_jobs("?all=true", &all)) != EXIT_OK)
            goto out;
        json_t *done = jobs_where(all, "vm_alias", arg, true);
        ret = json_array_size(done) > 0 ? job_vm_idle(arg, done) : job_none(arg);
        json_decref(done);
    }
out:
    json_decref(cands);
    json_decref(unfinished);
    json_decref(all);
    return ret;
}

int resolve_job(const char *arg, json_t **job)
{
    return mig_uuid_valid(arg) ? by_uuid(arg, job) : by_name(arg, job);
}

int resolve_operand(const struct opts *o, json_t **job)
{
    int ret = opts_operands(o, 1, 1, "JOB");
    return ret != EXIT_OK ? ret : resolve_job(o->operands[0], job);
}

const char *resolve_uuid(json_t *job)
{
    const char *u = json_string_value(json_object_get(job, "uuid"));
    if (u == NULL || !mig_uuid_valid(u)) {
        out_fail("migd named a job with something that is not a UUID");
        return NULL;
    }
    return u;
}
