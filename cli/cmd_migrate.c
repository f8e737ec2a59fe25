/*
 * cmd_migrate.c: `migctl migrate`: its options, the POST /jobs body they
 * make, and what it prints (the queued job, or a dry run's plan).
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
#include "watch.h"

/* Parses MBITS for --limit: 0 (no cap) to 1000000.  Returns 0 or -1. */
static int parse_limit(const char *s, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 1000000)
        return -1;
    *out = v;
    return 0;
}

/* What migrate was asked. */
struct migrate_args {
    struct opts_jobs jobs;
    bool older, watch, cleanup;
    const char *transfer; /* NULL: migd's transfer.mode */
    long limit;           /* -1: migd's transfer.limit_mbps */
    int64_t min_up;       /* -1: migd's health.min_up_s */
    int64_t cleanup_after; /* -1: migd's cleanup.after_s */
    const char *window;   /* --window HH:MM-HH:MM[,TZ], NULL: switch at any time */
};

/* Takes migrate's option key (its argument in arg) into ctx: 0, or -1 after a usage error. */
static int on_migrate_option(void *ctx, int key, const char *arg)
{
    struct migrate_args *a = ctx;
    /* The flags, as pause_or_resume takes -j: each only turns its own on. */
    a->older = a->older || key == 'D';
    a->watch = a->watch || key == 'w';
    a->cleanup = a->cleanup || key == OPT_CLEANUP_SOURCE;
    switch (key) {
    case OPT_TRANSFER:
        if (strcmp(arg, "relay") != 0 && strcmp(arg, "direct") != 0) {
            opts_usage_error("--transfer is relay or direct, not \"%s\"", arg);
            return -1;
        }
        a->transfer = arg;
        break;
    case OPT_LIMIT:
        if (parse_limit(arg, &a->limit) != 0) {
            opts_usage_error("--limit takes Mbit/s from 0 (no cap) to 1000000, not \"%s\"", arg);
            return -1;
        }
        break;
    case OPT_CLEANUP_AFTER:
        return opts_cleanup_after(arg, &a->cleanup_after);
    case OPT_WINDOW:
        return opts_window(arg, &a->window);
    case OPT_MIN_UP:
        if (mig_duration_parse(arg, 86400, &a->min_up) != 0) {
            opts_usage_error("--min-up takes a duration up to 24h (30s, 5m, 1h; 0: no health "
                             "gate), not \"%s\"", arg);
            return -1;
        }
        break;
    }
    return 0;
}

/*
 * Reads migrate's words into a and o->operands.  Returns 0, -1 after a
 * usage error was reported, or 1 once -h printed the help.
 */
static int migrate_parse(struct opts *o, struct migrate_args *a)
{
    int ret = opts_read_jobs(o, &a->jobs, on_migrate_option, a, 1, 2, "VM");
    if (ret == 0 && a->jobs.json && a->watch && !a->jobs.dry) {
        opts_usage_error("-j and -w exclude each other");
        return -1;
    }
    return ret;
}

/* POST /jobs's body for VM [TARGET] as a asks (new reference). */
static json_t *migrate_body(const struct migrate_args *a, const char *vm, const char *target)
{
    json_t *body =
        json_pack("{s:s, s:s, s:b, s:b, s:b}", "vm_uuid", vm, "mode", a->jobs.mode, "dry_run",
                  a->jobs.dry, "allow_older_platform", a->older, "cleanup_source", a->cleanup);
    if (target != NULL)
        json_object_set_new(body, "target", json_string(target));
    /* Sent only when given: migd's configuration decides otherwise. */
    if (a->transfer != NULL)
        json_object_set_new(body, "transfer", json_string(a->transfer));
    if (a->limit >= 0)
        json_object_set_new(body, "limit_mbps", json_integer(a->limit));
    if (a->min_up >= 0)
        json_object_set_new(body, "min_up_s", json_integer(a->min_up));
    if (a->cleanup_after >= 0)
        json_object_set_new(body, "cleanup_after_s", json_integer(a->cleanup_after));
    if (a->window != NULL)
        json_object_set_new(body, "window", json_string(a->window));
    return body;
}

/* Prints a dry run's answer resp to the request body. */
static void print_dry_run(json_t *resp, json_t *body)
{
    /* What was asked, where an older migd's plan does not say it. */
    json_t *plan = json_object_get(resp, "plan");
    static const char *asked[] = {"cleanup_source", "transfer", "limit_mbps"};
    for (size_t i = 0; i < sizeof(asked) / sizeof(asked[0]); i++)
        if (json_is_object(plan) && json_object_get(plan, asked[i]) == NULL &&
            json_object_get(body, asked[i]) != NULL)
            json_object_set(plan, asked[i], json_object_get(body, asked[i]));
    json_t *esc = out_escaped(plan);
    const char *alias = json_string_value(json_object_get(esc, "vm_alias"));
    const char *vmu = json_string_value(json_object_get(esc, "vm_uuid"));
    printf("dry run: %s can be migrated; nothing was changed\n", alias != NULL && alias[0] != '\0'
                                                                     ? alias
                                                                 : vmu != NULL ? vmu
                                                                               : "the VM");
    out_plan(stdout, esc);
    json_decref(esc);
}

/* Says the job migd queued (resp), then watches it when asked; the exit status. */
static int migrate_queued(json_t *resp, bool watch)
{
    json_t *esc = out_escaped(resp);
    const char *uuid = json_string_value(json_object_get(esc, "uuid"));
    if (uuid == NULL) {
        out_fail("migd accepted the job but did not name it");
        json_decref(esc);
        return EXIT_FAILED;
    }
    char *alias = out_field(esc, "vm_alias"), *src = out_field(esc, "source"),
         *dst = out_field(esc, "target");
    const char *vmu = json_string_value(json_object_get(esc, "vm_uuid"));
    printf("job %s queued: migrating %s (%s) from %s to %s\n", uuid, vmu != NULL ? vmu : "?", alias,
           src, dst);
    fflush(stdout);
    free(alias);
    free(src);
    free(dst);
    int ret = watch ? watch_job(uuid) : EXIT_OK;
    json_decref(esc);
    return ret;
}

int cmd_migrate(int argc, char **argv)
{
    static const struct opts_spec table[] = {OPTS_HELP,
                                             OPTS_JOBS,
                                             {'D', 'D', NULL, false},
                                             {'w', 'w', NULL, false},
                                             {OPT_CLEANUP_SOURCE, 0, "cleanup-source", false},
                                             {OPT_TRANSFER, 0, "transfer", true},
                                             {OPT_LIMIT, 0, "limit", true},
                                             {OPT_MIN_UP, 0, "min-up", true},
                                             {OPT_CLEANUP_AFTER, 0, "cleanup-after", true},
                                             {OPT_WINDOW, 0, "window", true},
                                             OPTS_END};
    struct migrate_args a = {
        .jobs = {.mode = "full"}, .limit = -1, .min_up = -1, .cleanup_after = -1};
    struct opts o;
    opts_init(&o, argc, argv, table);
    int parsed = migrate_parse(&o, &a);
    json_t *body = parsed == 0 ? migrate_body(&a, o.operands[0], o.operands[1]) : NULL;
    opts_free(&o);
    if (parsed != 0)
        return parsed > 0 ? EXIT_OK : EXIT_USAGE;
    json_t *resp = NULL;
    int ret = client_call("POST", "/jobs", body, &resp);
    if (ret == EXIT_OK && a.jobs.json)
        print_json(resp, false);
    else if (ret == EXIT_OK && a.jobs.dry)
        print_dry_run(resp, body);
    else if (ret == EXIT_OK)
        ret = migrate_queued(resp, a.watch);
    json_decref(resp);
    json_decref(body);
    return ret;
}
