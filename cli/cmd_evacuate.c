/*
 * cmd_evacuate.c: migctl evacuate (one CN, or a rolling drain of several)
 * and migctl pause|resume of an evacuation.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "migctl.h"
#include "opts.h"
#include "output.h"
#include "resolve.h"
#include "util.h"

/* An evacuation (escaped) for people: a drain's view, or one CN's. */
static void print_evacuation_for_people(FILE *f, json_t *esc)
{
    if (json_is_true(json_object_get(esc, "rolling")))
        out_rolling(f, esc);
    else
        out_evacuation(f, esc);
}

/* An evacuation, its plan or an estimate: as JSON, or for people. */
void print_evacuation(json_t *ev, bool json)
{
    print_answer(ev, json, print_evacuation_for_people);
}

int call_evacuation(const char *method, const char *path, bool json)
{
    json_t *resp = NULL;
    int ret = client_call(method, path, NULL, &resp);
    if (ret == EXIT_OK)
        print_evacuation(resp, json);
    json_decref(resp);
    return ret;
}

enum { OPT_TO = 300, OPT_MAX_PARALLEL, OPT_NO_RESERVE, OPT_MAX_CNS, OPT_CNS_FROM, OPT_UNRESERVE,
       OPT_RETURN };

/*
 * An evacuation's exit status for cron: 0 nothing needs a human (done, or
 * progressing, or a plan where everything can move), 1 something failed or
 * stays.
 */
static int evacuation_status(json_t *ev)
{
    const char *state = json_string_value(json_object_get(ev, "state"));
    /* A rolling drain, for cron: 0 once every CN is drained (or a clean plan), 1 until then. */
    if (json_is_true(json_object_get(ev, "rolling")) && state != NULL &&
        strcmp(state, "done") != 0 && strcmp(state, "plan") != 0)
        return EXIT_FAILED;
    if (state != NULL && strcmp(state, "failed") == 0)
        return EXIT_FAILED;
    return json_array_size(json_object_get(ev, "attention")) > 0 ? EXIT_FAILED : EXIT_OK;
}

/* What evacuate was asked. */
struct evacuate_args {
    struct opts_jobs jobs;
    bool no_reserve;
    long parallel; /* -1: migd's limits.max_active_jobs */
    int64_t cleanup_after; /* -1: migd's cleanup.after_s */
    const char *window;    /* --window for its jobs, NULL: none */
    json_t *to;    /* the targets (owned), or NULL: any */
    long max_cns;  /* --max-cns: a rolling drain, N CNs at once; -1: not asked */
    json_t *cns;   /* the CNs from --cns-from (owned), or NULL */
    bool unreserve; /* --unreserve EVAC: give an ended evacuation's CNs back */
    bool back;      /* --return EVAC: its VMs back to their CNs */
};

/* --cns-from FILE: one CN per line (blank lines and # comments skipped). 0, or -1 after a usage error. */
static int evacuate_cns_from(struct evacuate_args *a, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        opts_usage_error("--cns-from %s: %s", path, strerror(errno));
        return -1;
    }
    json_decref(a->cns);
    a->cns = json_array();
    char line[512];
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        char *p = line, *end;
        while (*p == ' ' || *p == '\t')
            p++;
        end = p + strcspn(p, "#\r\n");
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        *end = '\0';
        if (*p == '\0')
            continue;
        if (strlen(p) >= 256 || strpbrk(p, " \t") != NULL) {
            opts_usage_error("--cns-from %s: \"%.64s\" is not a CN uuid or hostname", path, p);
            rc = -1;
        } else {
            json_array_append_new(a->cns, json_string(p));
        }
    }
    fclose(f);
    return rc;
}

/* --to's CN[,CN...] into a->to: 0, or -1 after a usage error. */
static int evacuate_to(struct evacuate_args *a, const char *arg)
{
    json_decref(a->to);
    a->to = json_array();
    char *list = mig_strdup(arg), *save = NULL;
    for (char *cn = strtok_r(list, ",", &save); cn != NULL; cn = strtok_r(NULL, ",", &save))
        json_array_append_new(a->to, json_string(cn));
    free(list);
    if (json_array_size(a->to) == 0) {
        opts_usage_error("--to takes CN[,CN...], not \"%s\"", arg);
        return -1;
    }
    return 0;
}

/*
 * A count option's argument (--max-parallel, --max-cns): 0 with 1 to max
 * in *out; else -1 after the usage error "<what>, not \"ARG\"".
 */
static int count_option(const char *arg, long max, const char *what, long *out)
{
    char *end = NULL;
    *out = strtol(arg, &end, 10);
    if (arg[0] == '\0' || *end != '\0' || *out < 1 || *out > max) {
        opts_usage_error("%s, not \"%s\"", what, arg);
        return -1;
    }
    return 0;
}

/* Takes evacuate's option key (its argument in arg) into ctx: 0, or -1 after a usage error. */
static int on_evacuate_option(void *ctx, int key, const char *arg)
{
    struct evacuate_args *a = ctx;
    /* The flags, as pause_or_resume takes -j: each only turns its own on. */
    a->no_reserve = a->no_reserve || key == OPT_NO_RESERVE;
    a->unreserve = a->unreserve || key == OPT_UNRESERVE;
    a->back = a->back || key == OPT_RETURN;
    switch (key) {
    case OPT_MAX_PARALLEL:
        return count_option(arg, 1000, "--max-parallel takes 1 to 1000 jobs at once",
                            &a->parallel);
    case OPT_TO:
        return evacuate_to(a, arg);
    case OPT_MAX_CNS:
        return count_option(arg, 64, "--max-cns takes 1 to 64 CNs drained at once", &a->max_cns);
    case OPT_CNS_FROM:
        return evacuate_cns_from(a, arg);
    case OPT_CLEANUP_AFTER:
        return opts_cleanup_after(arg, &a->cleanup_after);
    case OPT_WINDOW:
        return opts_window(arg, &a->window);
    }
    return 0;
}

/* What the evacuation's (or homecoming's) jobs take: --max-parallel, --cleanup-after, --window. */
static void put_job_options(json_t *body, const struct evacuate_args *a)
{
    if (a->parallel > 0)
        json_object_set_new(body, "max_parallel", json_integer(a->parallel));
    if (a->cleanup_after >= 0)
        json_object_set_new(body, "cleanup_after_s", json_integer(a->cleanup_after));
    if (a->window != NULL)
        json_object_set_new(body, "window", json_string(a->window));
}

/*
 * POST /evacuations's body for the CNs (operands, then --cns-from's) as a
 * asks (new reference): one CN is `server`; several, or --max-cns, a
 * rolling drain's `servers`.  NULL after a usage error.
 */
static json_t *evacuate_body(const struct evacuate_args *a, char **operands, int n)
{
    json_t *cns = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(cns, json_string(operands[i]));
    if (a->cns != NULL)
        json_array_extend(cns, a->cns);
    if (json_array_size(cns) == 0 || json_array_size(cns) > 64) {
        opts_usage_error(json_array_size(cns) == 0 ? "missing CN (or --cns-from FILE)"
                                                   : "at most 64 CNs in one evacuation");
        json_decref(cns);
        return NULL;
    }
    json_t *body = json_pack("{s:s, s:b, s:b}", "mode", a->jobs.mode, "dry_run", a->jobs.dry,
                             "no_reserve", a->no_reserve);
    if (json_array_size(cns) == 1 && a->max_cns < 0 && a->cns == NULL) {
        json_object_set(body, "server", json_array_get(cns, 0));
    } else {
        json_object_set(body, "servers", cns);
        json_object_set_new(body, "max_cns", json_integer(a->max_cns > 0 ? a->max_cns : 1));
    }
    json_decref(cns);
    if (a->to != NULL)
        json_object_set(body, "to", a->to);
    put_job_options(body, a);
    return body;
}

/* The one operand of --unreserve or --return is an evacuation's UUID; false after saying not. */
static bool one_evacuation(const struct opts *o, const char *flag)
{
    if (o->noperands == 1 && mig_uuid_valid(o->operands[0]))
        return true;
    opts_usage_error("%s takes one evacuation (or drain) UUID, as evacuate printed it", flag);
    return false;
}

/* --unreserve EVAC: POST /evacuations/EVAC/unreserve; the evacuation or drain after it. */
static int unreserve(const struct evacuate_args *a, const struct opts *o)
{
    bool json = a->jobs.json;
    if (a->jobs.dry || a->to != NULL || a->cns != NULL || a->parallel > 0 || a->window != NULL ||
        a->cleanup_after >= 0 || a->max_cns > 0 || a->no_reserve) {
        /* -n above all: elsewhere it changes nothing, and this would change CNAPI. */
        opts_usage_error("--unreserve takes only -j and the evacuation's UUID");
        return EXIT_USAGE;
    }
    if (!one_evacuation(o, "--unreserve"))
        return EXIT_USAGE;
    char path[128];
    snprintf(path, sizeof(path), "/evacuations/%s/unreserve", o->operands[0]);
    return call_evacuation("POST", path, json);
}

/* --return EVAC: POST /evacuations/EVAC/return with its jobs' options; the homecoming's plan or progress. */
static int return_home(const struct evacuate_args *a, const struct opts *o)
{
    if (a->unreserve) {
        opts_usage_error("--return gives the CNs back itself: not with --unreserve");
        return EXIT_USAGE;
    }
    if (!one_evacuation(o, "--return"))
        return EXIT_USAGE;
    json_t *body = json_pack("{s:s, s:b}", "mode", a->jobs.mode, "dry_run", a->jobs.dry);
    put_job_options(body, a);
    char path[128];
    snprintf(path, sizeof(path), "/evacuations/%s/return", o->operands[0]);
    json_t *resp = NULL;
    int ret = client_call("POST", path, body, &resp);
    json_decref(body);
    if (ret == EXIT_OK) {
        print_evacuation(resp, a->jobs.json);
        ret = evacuation_status(resp);
    }
    json_decref(resp);
    return ret;
}

int cmd_evacuate(int argc, char **argv)
{
    static const struct opts_spec table[] = {OPTS_HELP,
                                             OPTS_JOBS,
                                             {OPT_TO, 0, "to", true},
                                             {OPT_MAX_PARALLEL, 0, "max-parallel", true},
                                             {OPT_NO_RESERVE, 0, "no-reserve", false},
                                             {OPT_CLEANUP_AFTER, 0, "cleanup-after", true},
                                             {OPT_WINDOW, 0, "window", true},
                                             {OPT_MAX_CNS, 0, "max-cns", true},
                                             {OPT_CNS_FROM, 0, "cns-from", true},
                                             {OPT_UNRESERVE, 0, "unreserve", false},
                                             {OPT_RETURN, 0, "return", false},
                                             OPTS_END};
    struct evacuate_args a = {
        .jobs = {.mode = "full"}, .parallel = -1, .cleanup_after = -1, .max_cns = -1};
    struct opts o;
    opts_init(&o, argc, argv, table);
    int parsed = opts_read_jobs(&o, &a.jobs, on_evacuate_option, &a, 0, 64, "CN");
    if (parsed == 0 && (a.unreserve || a.back)) {
        int ret = a.back ? return_home(&a, &o) : unreserve(&a, &o);
        json_decref(a.to);
        json_decref(a.cns);
        opts_free(&o);
        return ret;
    }
    json_t *body = parsed == 0 ? evacuate_body(&a, o.operands, o.noperands) : NULL;
    if (parsed == 0 && body == NULL)
        parsed = -1;
    json_decref(a.to);
    json_decref(a.cns);
    opts_free(&o);
    if (parsed != 0)
        return parsed > 0 ? EXIT_OK : EXIT_USAGE;
    json_t *resp = NULL;
    int ret = client_call("POST", "/evacuations", body, &resp);
    json_decref(body);
    if (ret != EXIT_OK)
        return ret;
    print_evacuation(resp, a.jobs.json);
    ret = evacuation_status(resp);
    json_decref(resp);
    return ret;
}


/*
 * pause|resume of an evacuation (POST /evacuations/ID/VERB): EXIT_OK after
 * printing it, EXIT_FAILED after reporting a refusal, or -ENOENT (nothing
 * reported) when migd has no evacuation ID, which may then name a job.
 */
static int evacuation_verb(const char *id, const char *verb, bool json)
{
    char path[128];
    snprintf(path, sizeof(path), "/evacuations/%s/%s", id, verb);
    json_t *resp = NULL;
    long status = 0;
    int ret = client_request("POST", path, NULL, &status, &resp);
    if (ret == EXIT_OK && status == 404) {
        ret = -ENOENT;
    } else if (ret == EXIT_OK && status / 100 == 2) {
        print_evacuation(resp, json);
    } else if (ret == EXIT_OK) {
        client_report_api_error(status, resp);
        ret = EXIT_FAILED;
    }
    json_decref(resp);
    return ret;
}

/* pause|resume of a resolved job (reference taken), the job as JSON after it. */
static int job_verb_json(json_t *job, const char *verb)
{
    const char *uuid = resolve_uuid(job);
    int ret = EXIT_FAILED;
    if (uuid != NULL) {
        char *act = mig_asprintf("/jobs/%s?action=%s", uuid, verb);
        char *get = mig_asprintf("/jobs/%s", uuid);
        json_t *resp = NULL, *now = NULL;
        ret = client_call("POST", act, NULL, &resp);
        if (ret == EXIT_OK && (ret = client_call("GET", get, NULL, &now)) == EXIT_OK)
            print_json(now, false);
        json_decref(resp);
        json_decref(now);
        free(act);
        free(get);
    }
    json_decref(job);
    return ret;
}

/* migctl pause|resume EVAC|JOB: an evacuation (or drain) by UUID, else a job as resolve.h names it. */
static int pause_or_resume(int argc, char **argv, const char *verb)
{
    static const struct opts_spec table[] = {OPTS_HELP, {'j', 'j', NULL, false}, OPTS_END};
    bool json = false;
    struct opts o;
    opts_init(&o, argc, argv, table);
    int parsed = opts_read(&o, opts_on_json, &json, 1, 1, "EVAC|JOB");
    char *id = parsed == 0 ? mig_strdup(o.operands[0]) : NULL;
    opts_free(&o);
    if (parsed != 0)
        return parsed > 0 ? EXIT_OK : EXIT_USAGE;
    int ret = mig_uuid_valid(id) ? evacuation_verb(id, verb, json) : -ENOENT;
    json_t *job = NULL;
    if (ret == -ENOENT && (ret = resolve_job(id, &job)) == EXIT_OK)
        ret = json ? job_verb_json(job, verb) : post_action(job, verb);
    free(id);
    return ret;
}

int cmd_pause(int argc, char **argv)
{
    return pause_or_resume(argc, argv, "pause");
}

int cmd_resume(int argc, char **argv)
{
    return pause_or_resume(argc, argv, "resume");
}
