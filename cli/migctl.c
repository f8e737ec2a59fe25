/*
 * migctl.c: the operator's CLI: main and its commands.  It speaks only the
 * REST API of migd on its Unix socket (client.c) and never opens the
 * database.  Exit status: 0 success, 1 the operation failed or was refused,
 * 2 bad usage; every error is one line on stderr starting "migctl: ".
 * Every string that came from migd goes through out_escape (output.h)
 * before it reaches a terminal.  A command reads its words with opts.c,
 * names a job with resolve.c and follows one with watch.c.
 */
#include <curl/curl.h>
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

#define MIGCTL_DEFAULT_SOCKET "/var/run/migd.sock"
#define LIST_DEFAULT_FIELDS "id,vm_alias,state,phase,progress,source,target"
#define LIST_LONG_FIELDS "uuid,vm_alias,state,phase,mode,progress,source,target"
#define LIST_WIDTH 80
#define JOB_HELP                                                                                   \
    "JOB is a job UUID, 8 or more of its first characters, or a VM (UUID or alias)\n"              \
    "with exactly one unfinished job; one that names no job, or several, is bad\n"                 \
    "usage (exit 2) and the error lists the jobs it could mean.\n"

void print_json(json_t *j, bool one_line)
{
    size_t flags = JSON_ENCODE_ANY | JSON_ENSURE_ASCII;
    char *s = json_dumps(j, flags | (one_line ? JSON_COMPACT : JSON_INDENT(2)));
    if (s != NULL)
        puts(s);
    free(s);
}

void print_answer(json_t *j, bool json, void (*human)(FILE *f, json_t *esc))
{
    if (json) {
        print_json(j, false);
        return;
    }
    json_t *esc = out_escaped(j);
    human(stdout, esc);
    json_decref(esc);
}

/* ---- commands ---- */


/* What list was asked; the filters are the operands. */
struct list_args {
    const char *fields, *sort; /* -o, -s; NULL when not given */
    const char *shown;         /* the fields the table shows */
    bool all, lng, header, json, parsable;
};

/* Takes list's option key (its argument in arg) into a. */
static void list_option(struct list_args *a, int key, const char *arg)
{
    /* The flags, as pause_or_resume takes -j: each only turns its own on (-H off). */
    a->all = a->all || key == 'a';
    a->lng = a->lng || key == 'l';
    a->json = a->json || key == 'j';
    a->parsable = a->parsable || key == 'p';
    a->header = a->header && key != 'H';
    if (key == 'o')
        a->fields = arg;
    else if (key == 's')
        a->sort = arg;
}

/*
 * Reads list's words into a and o->operands and checks them before migd
 * is asked.  Returns 0, -1 after a usage error was reported, or 1 once -h
 * printed the help.
 */
static int list_parse(struct opts *o, struct list_args *a)
{
    int ch;
    while ((ch = opts_next(o)) > 0) {
        if (ch == 'h') {
            opts_help();
            return 1;
        }
        list_option(a, ch, o->arg);
    }
    if (ch < 0)
        return -1;
    if (a->json && a->parsable) {
        opts_usage_error("-j and -p exclude each other");
        return -1;
    }
    a->shown = a->fields != NULL ? a->fields : a->lng ? LIST_LONG_FIELDS : LIST_DEFAULT_FIELDS;
    char err[1536];
    if (out_list_check(a->shown, a->sort, o->operands, o->noperands, err, sizeof(err)) != 0) {
        opts_usage_error("%s", err);
        return -1;
    }
    return 0;
}

/* The jobs that list shows, in *out (new reference); returns as client_fetch_jobs. */
static int list_jobs(const struct list_args *a, const struct opts *o, json_t **out)
{
    /* A state filter finds finished jobs too: migd lists every job in that state. */
    const char *state = out_filter_state(o->operands, o->noperands);
    char *query =
        state != NULL ? mig_asprintf("?state=%s", state) : mig_strdup(a->all ? "?all=true" : "");
    json_t *jobs = NULL;
    int ret = client_fetch_jobs(query, &jobs);
    free(query);
    if (ret != EXIT_OK)
        return ret;
    json_t *kept = json_array();
    size_t i;
    json_t *job;
    json_array_foreach(jobs, i, job)
    {
        if (out_match(job, o->operands, o->noperands))
            json_array_append(kept, job);
    }
    json_decref(jobs);
    *out = kept;
    return EXIT_OK;
}

/* Prints the jobs as list was asked; the exit status. */
static int print_list(json_t *jobs, const struct list_args *a)
{
    size_t i;
    json_t *job;
    if (a->json) {
        out_sort(jobs, a->sort);
        json_array_foreach(jobs, i, job)
        {
            json_t *one = a->fields != NULL ? out_project(job, a->fields) : json_incref(job);
            print_json(one, true);
            json_decref(one);
        }
        return EXIT_OK;
    }
    char err[1536];
    int ret = EXIT_OK;
    json_t *esc = out_escaped(jobs);
    struct out_table_opts opts = {a->shown, a->sort, a->header, a->parsable,
                                  a->fields == NULL && !a->lng ? LIST_WIDTH : 0};
    if (out_table(stdout, esc, &opts, err, sizeof(err)) != 0)
        ret = opts_usage_error("%s", err);
    json_decref(esc);
    return ret;
}

static int cmd_list(int argc, char **argv)
{
    static const struct opts_spec table[] = {OPTS_HELP,
                                             {'a', 'a', NULL, false},
                                             {'l', 'l', NULL, false},
                                             {'H', 'H', NULL, false},
                                             {'p', 'p', NULL, false},
                                             {'j', 'j', NULL, false},
                                             {'o', 'o', NULL, true},
                                             {'s', 's', NULL, true},
                                             OPTS_END};
    struct list_args a = {.header = true};
    struct opts o;
    json_t *jobs = NULL;
    opts_init(&o, argc, argv, table);
    int parsed = list_parse(&o, &a);
    int ret = parsed > 0 ? EXIT_OK : parsed < 0 ? EXIT_USAGE : list_jobs(&a, &o, &jobs);
    if (parsed == 0 && ret == EXIT_OK)
        ret = print_list(jobs, &a);
    json_decref(jobs);
    opts_free(&o);
    return ret;
}

/*
 * GET /jobs/:uuid/actions: the job's journal in *actions (new reference;
 * NULL when migd sent none).  Returns as client_call.
 */
static int fetch_actions(const char *uuid, json_t **actions)
{
    char *path = mig_asprintf("/jobs/%s/actions", uuid);
    json_t *resp = NULL;
    int ret = client_call("GET", path, NULL, &resp);
    free(path);
    if (ret == EXIT_OK)
        *actions = json_incref(json_object_get(resp, "actions"));
    json_decref(resp);
    return ret;
}

/* Prints the job, with its journal when actions is not NULL, as show was asked. */
static void print_show(json_t *job, json_t *actions, bool json)
{
    if (json) {
        if (actions != NULL)
            json_object_set(job, "actions", actions);
        print_json(job, false);
        return;
    }
    json_t *esc = out_escaped(job);
    out_job_summary(stdout, esc);
    json_decref(esc);
    if (actions != NULL) {
        esc = out_escaped(actions);
        out_actions(stdout, esc);
        json_decref(esc);
    }
}

/* What show was asked: -j, -v. */
struct show_args {
    bool json, verbose;
};

/* Takes show's option key into ctx (struct show_args): 0. */
static int on_show_option(void *ctx, int key, const char *arg)
{
    struct show_args *a = ctx;
    (void)arg;
    a->json = a->json || key == 'j';
    a->verbose = a->verbose || key == 'v';
    return 0;
}

static int cmd_show(int argc, char **argv)
{
    static const struct opts_spec table[] = {
        OPTS_HELP, {'j', 'j', NULL, false}, {'v', 'v', NULL, false}, OPTS_END};
    struct show_args a = {false, false};
    struct opts o;
    json_t *job = NULL, *actions = NULL;
    opts_init(&o, argc, argv, table);
    int parsed = opts_read(&o, on_show_option, &a, 1, 1, "JOB");
    int ret = parsed > 0 ? EXIT_OK : parsed < 0 ? EXIT_USAGE : resolve_job(o.operands[0], &job);
    opts_free(&o);
    if (parsed != 0 || ret != EXIT_OK)
        goto out;
    const char *uuid = resolve_uuid(job);
    if (uuid == NULL)
        ret = EXIT_FAILED;
    else if (!a.verbose || (ret = fetch_actions(uuid, &actions)) == EXIT_OK)
        print_show(job, actions, a.json);
out:
    json_decref(actions);
    json_decref(job);
    return ret;
}

/*
 * Parses "[-h] JOB" and resolves JOB (watch and the actions).  Returns as
 * resolve_job, or -1 once the help was printed.
 */
static int parse_job_only(int argc, char **argv, json_t **job)
{
    static const struct opts_spec table[] = {OPTS_HELP, OPTS_END};
    struct opts o;
    int ch, ret = EXIT_USAGE;
    bool help = false;
    opts_init(&o, argc, argv, table);
    while ((ch = opts_next(&o)) > 0)
        help = true; /* -h is the only option */
    if (help && ch == 0) {
        opts_help();
        ret = -1;
    } else if (ch == 0) {
        ret = resolve_operand(&o, job);
    }
    opts_free(&o);
    return ret;
}

static int cmd_watch(int argc, char **argv)
{
    json_t *job = NULL;
    int ret = parse_job_only(argc, argv, &job);
    if (ret == EXIT_OK) {
        char *uuid = mig_strdup(resolve_uuid(job));
        ret = uuid != NULL ? watch_job(uuid) : EXIT_FAILED;
        free(uuid);
    }
    json_decref(job);
    return ret < 0 ? EXIT_OK : ret;
}

/* finish, abort, rollback, cleanup, pause, resume: the action is the command's name. */
int post_action(json_t *job, const char *action)
{
    const char *uuid = resolve_uuid(job);
    if (uuid == NULL) {
        json_decref(job);
        return EXIT_FAILED;
    }
    char *path = mig_asprintf("/jobs/%s?action=%s", uuid, action);
    json_t *resp = NULL;
    int ret = client_call("POST", path, NULL, &resp);
    free(path);
    if (ret == EXIT_OK) {
        char *msg = out_escape(json_string_value(json_object_get(resp, "message")));
        if (msg != NULL && msg[0] != '\0')
            printf("%s\n", msg); /* migd's sentence names the job */
        else
            printf("job %s: %s requested\n", uuid, action);
        free(msg);
        json_decref(resp);
    }
    json_decref(job);
    return ret;
}

static int cmd_action(int argc, char **argv)
{
    json_t *job = NULL;
    int ret = parse_job_only(argc, argv, &job);
    if (ret != EXIT_OK)
        return ret < 0 ? EXIT_OK : ret;
    return post_action(job, opts_command_name());
}

/* cleanup JOB [--cancel-timer]: delete the source copy now, or keep it past its timer. */
static int cmd_cleanup(int argc, char **argv)
{
    static const struct opts_spec table[] = {
        OPTS_HELP, {OPT_CANCEL_TIMER, 0, "cancel-timer", false}, OPTS_END};
    struct opts o;
    int ch, ret = EXIT_USAGE;
    bool help = false, cancel = false;
    json_t *job = NULL;
    opts_init(&o, argc, argv, table);
    while ((ch = opts_next(&o)) > 0) {
        if (ch == OPT_CANCEL_TIMER)
            cancel = true;
        else
            help = true;
    }
    if (help && ch == 0) {
        opts_help();
        ret = -1;
    } else if (ch == 0) {
        ret = resolve_operand(&o, &job);
    }
    opts_free(&o);
    if (ret != EXIT_OK)
        return ret < 0 ? EXIT_OK : ret;
    return post_action(job, cancel ? "cancel_timer" : "cleanup");
}

/* -l's LEVEL: its number in *min, or -1 after a usage error. */
static int log_level(const char *arg, int *min)
{
    int level = out_log_level(arg);
    if (level < 0) {
        opts_usage_error("unknown level \"%s\" for -l; valid levels: trace, debug, info, warn, "
                         "error, fatal",
                         arg);
        return -1;
    }
    *min = level;
    return 0;
}

/* Prints the job's log records at level min or above; returns as client_call. */
static int print_log(const char *uuid, int min, bool json)
{
    char *path = mig_asprintf("/jobs/%s/log", uuid);
    json_t *resp = NULL;
    int ret = client_call("GET", path, NULL, &resp);
    free(path);
    size_t i;
    json_t *rec;
    json_array_foreach(json_object_get(resp, "log"), i, rec)
    {
        json_int_t level = json_integer_value(json_object_get(rec, "level"));
        if (level < min)
            continue;
        if (json) {
            print_json(rec, true);
        } else {
            json_t *esc = out_escaped(rec);
            out_log_record(stdout, esc);
            json_decref(esc);
        }
    }
    json_decref(resp);
    return ret;
}

/* What log was asked: -j, -l's level. */
struct log_args {
    bool json;
    int min;
};

/* Takes log's option key (its argument in arg) into ctx (struct log_args): as log_level. */
static int on_log_option(void *ctx, int key, const char *arg)
{
    struct log_args *a = ctx;
    a->json = a->json || key == 'j';
    return key == 'l' ? log_level(arg, &a->min) : 0;
}

static int cmd_log(int argc, char **argv)
{
    static const struct opts_spec table[] = {
        OPTS_HELP, {'j', 'j', NULL, false}, {'l', 'l', NULL, true}, OPTS_END};
    struct log_args a = {false, 30 /* info */};
    struct opts o;
    json_t *job = NULL;
    opts_init(&o, argc, argv, table);
    int parsed = opts_read(&o, on_log_option, &a, 1, 1, "JOB");
    int ret = parsed > 0 ? EXIT_OK : parsed < 0 ? EXIT_USAGE : resolve_job(o.operands[0], &job);
    opts_free(&o);
    if (parsed == 0 && ret == EXIT_OK) {
        const char *uuid = resolve_uuid(job);
        ret = uuid != NULL ? print_log(uuid, a.min, a.json) : EXIT_FAILED;
    }
    json_decref(job);
    return ret;
}

/* status's lines for people (ping escaped), naming the socket migctl asked. */
static void print_status(FILE *f, json_t *ping)
{
    out_status(f, ping, client_socket());
}

static int cmd_status(int argc, char **argv)
{
    static const struct opts_spec table[] = {OPTS_HELP, {'j', 'j', NULL, false}, OPTS_END};
    bool json = false;
    struct opts o;
    opts_init(&o, argc, argv, table);
    int parsed = opts_read(&o, opts_on_json, &json, 0, 0, NULL);
    opts_free(&o);
    if (parsed != 0)
        return parsed > 0 ? EXIT_OK : EXIT_USAGE;
    json_t *ping = NULL;
    int ret = client_call("GET", "/ping", NULL, &ping);
    if (ret != EXIT_OK)
        return ret;
    print_answer(ping, json, print_status);
    json_decref(ping);
    return EXIT_OK;
}

static int cmd_estimate(int argc, char **argv)
{
    static const struct opts_spec table[] = {OPTS_HELP, {'j', 'j', NULL, false}, OPTS_END};
    bool json = false;
    struct opts o;
    opts_init(&o, argc, argv, table);
    int parsed = opts_read(&o, opts_on_json, &json, 1, 1, "VM or CN");
    char *what = parsed == 0 ? curl_easy_escape(NULL, o.operands[0], 0) : NULL;
    opts_free(&o);
    if (parsed != 0)
        return parsed > 0 ? EXIT_OK : EXIT_USAGE;
    char path[512];
    snprintf(path, sizeof(path), "/estimate?of=%s", what != NULL ? what : "");
    curl_free(what);
    return call_evacuation("GET", path, json);
}

/* ---- the table of commands, and main ---- */

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage; /* after "migctl " */
    const char *help;  /* what it does and its options */
};

static const struct command commands[] = {
    {"migrate", cmd_migrate,
     "migrate [-i | -a] [-n] [-D] [-w] [-j] [--cleanup-source] [--transfer relay|direct] "
     "[--limit MBITS] [--min-up DURATION] [--cleanup-after DURATION] "
     "[--window HH:MM-HH:MM[,TZ]] VM [TARGET_CN]",
     "Queues a job that moves VM (a UUID, or an alias that is unique) to TARGET_CN\n"
     "(a server UUID or hostname; without it the placement rules pick one).\n"
     "  -i                  incremental: sync, then wait for \"migctl finish\"\n"
     "  -a                  automatic incremental: sync until the delta is small, then switch\n"
     "  -n                  dry run: validate and print the plan and estimate\n"
     "  -D                  allow a target with an older platform\n"
     "  -w                  watch the job until it ends (exit status as for watch)\n"
     "  -j                  print migd's answer as JSON (the job, or with -n the plan)\n"
     "  --cleanup-source    delete the source copy once the VM runs on the target\n"
     "  --transfer MODE     relay (through migd) or direct (source to target)\n"
     "                      (default: migd's transfer.mode)\n"
     "  --limit MBITS       cap the job's stream at MBITS Mbit/s, 0 for no cap\n"
     "                      (default: migd's transfer.limit_mbps)\n"
     "  --min-up DURATION   the health gate: the VM must run this long on the target\n"
     "                      (30s, 5m, 1h; 0: no gate; default: migd's health.min_up_s)\n"
     "  --cleanup-after DURATION\n"
     "                      delete the source copy this long after the switch and a\n"
     "                      passed health gate (90m, 24h, 7d; 0: only by hand;\n"
     "                      default: migd's cleanup.after_s)\n"
     "  --window HH:MM-HH:MM[,TZ]\n"
     "                      switch only inside this daily window (TZ an IANA name,\n"
     "                      default UTC); copies run at any time, and a job ready\n"
     "                      before it rests waiting, syncing every incremental.interval_s\n"
     "Long options are matched whole, never by a prefix.\n"},
    {"list", cmd_list, "list [-a] [-l] [-H] [-p] [-o FIELDS] [-s SORT] [-j] [KEY=VALUE ...]",
     "Lists unfinished jobs in columns that fit 80 characters.\n"
     "  -a         all jobs, finished ones too\n"
     "  -l         long: full job UUIDs and the mode, nothing cut\n"
     "  -H         no header line\n"
     "  -p         parsable: fields joined by ':' (':' and '\\' in values escaped by '\\'),\n"
     "             no header\n"
     "  -o FIELDS  comma-separated fields (default: " LIST_DEFAULT_FIELDS ";\n"
     "             with -l: " LIST_LONG_FIELDS ")\n"
     "  -s SORT    comma-separated fields to sort by, '-' before one for descending\n"
     "  -j         one JSON object per line, with only the -o fields when given\n"
     "  KEY=VALUE  only jobs whose field KEY shows as VALUE (e.g. state=running); a\n"
     "             state filter finds finished jobs without -a\n"
     "Fields: job keys, dotted for nested ones (progress.bytes_sent), and the\n"
     "computed id (8 characters of the UUID), progress (percent), source and target\n"
     "(hostnames).  An unknown field, sort key or filter, or a value a field never\n"
     "shows, is bad usage (exit 2).\n"},
    {"show", cmd_show, "show JOB [-v] [-j]",
     "Shows one job: what was asked (mode, transfer, cap, the source copy), where it\n"
     "is, what it does now, and its error once.\n"
     "  -v  also every action it took, from its journal: where, status, start, duration\n"
     "  -j  the job's JSON (with -v, its \"actions\" too)\n" JOB_HELP},
    {"watch", cmd_watch, "watch JOB",
     "Follows a job: on a terminal one line redrawn in place; otherwise one line,\n"
     "stamped with the UTC time, per change of state, phase or round, and at most one\n"
     "progress line every 10 s.  Exits 0 when the job succeeded, switched, waits for\n"
     "finish, or its rollback (migctl rollback) brought the VM back to the source;\n"
     "1 when it failed or was aborted.  Ctrl-C stops watching, not the job (status "
     "130).\n" JOB_HELP},
    {"finish", cmd_action, "finish JOB",
     "Starts the switch of an incremental job that is in sync.\n" JOB_HELP},
    {"abort", cmd_action, "abort JOB",
     "Stops a job that has not switched and rolls it back.\n" JOB_HELP},
    {"rollback", cmd_action, "rollback JOB",
     "Moves a switched VM back to the source, sending back what changed on the target.\n" JOB_HELP},
    {"cleanup", cmd_cleanup, "cleanup [--cancel-timer] JOB",
     "Deletes the source copy of a switched job now (and retries an ended job's\n"
     "leftovers).\n"
     "  --cancel-timer  keep the source copy: no deletion by --cleanup-after or\n"
     "                  cleanup.after_s; only a later \"migctl cleanup\" deletes it\n" JOB_HELP},
    {"log", cmd_log, "log [-l LEVEL] [-j] JOB",
     "Prints the job's log records at LEVEL or above: time, level, message.\n"
     "  -l LEVEL  trace, debug, info (the default), warn, error or fatal\n"
     "  -j        the records as JSON, one per line\n" JOB_HELP},
    {"evacuate", cmd_evacuate,
     "evacuate [-n] [-i | -a] [-j] [--to CN[,CN...]] [--max-parallel N] [--no-reserve] "
     "[--cleanup-after DURATION] [--window HH:MM-HH:MM[,TZ]] [--max-cns N] [--cns-from FILE] "
     "CN [CN ...] | --unreserve EVAC | --return EVAC",
     "Empties CN (a server UUID or hostname): marks it reserved in CNAPI, plans a\n"
     "target for every eligible VM on it, queues one job per VM that has none, and\n"
     "prints the plan: each VM's size, target and estimated time, or why it stays\n"
     "(core and NAT zones, no target with room or with its NIC tags), and the\n"
     "window.  Run again (from cron), it queues nothing twice and prints the\n"
     "progress; once the evacuation ended with nothing new to move, its report.\n"
     "Several CNs (or --max-cns) are a rolling drain: all are reserved and no VM\n"
     "moves onto any of them; at most N are drained at once, the next starts when\n"
     "one is empty, planned then.  The plan gives each CN's turn and the whole ETA.\n"
     "  -n                  the plan only: nothing queued, nothing reserved\n"
     "  -i | -a             incremental or automatic incremental jobs\n"
     "  -j                  the evacuation as JSON\n"
     "  --to CN[,CN...]     only these targets\n"
     "  --max-parallel N    at most N of its jobs at once (default: limits.max_active_jobs)\n"
     "  --no-reserve        leave the CN open to new VMs\n"
     "  --cleanup-after DURATION\n"
     "                      each job deletes its source copy this long after its switch\n"
     "                      and a passed health gate (default: migd's cleanup.after_s)\n"
     "  --window HH:MM-HH:MM[,TZ]\n"
     "                      its jobs copy at any time and switch only inside this window\n"
     "  --max-cns N         a rolling drain: at most N of the CNs at once (default 1)\n"
     "  --cns-from FILE     the CNs, one per line (# comments), after those named\n"
     "  --unreserve EVAC    once evacuation (or drain) EVAC ended, its CNs are back in\n"
     "                      service: mark them not reserved in CNAPI (migd never does it\n"
     "                      by itself)\n"
     "  --return EVAC       once EVAC ended and its CNs run again: give them back, and\n"
     "                      move every VM it moved that still runs where it put it back\n"
     "                      to its CN (-n: the plan; -i, -a, --max-parallel, --window,\n"
     "                      --cleanup-after apply to its jobs)\n"
     "Exit status: 0 nothing needs a human (done or progressing), 1 a VM failed or\n"
     "stays (the lines under \"needs attention\" say which and why), 2 bad usage; a\n"
     "rolling drain: 0 every CN drained, 1 still draining or something stays.\n"},
    {"pause", cmd_pause, "pause [-j] EVAC|JOB",
     "Pauses an evacuation (or a rolling drain, whole): it starts no new job and no\n"
     "new switch; its jobs that are copying go on, and one ready to switch rests\n"
     "waiting, a round every incremental.interval_s so that its last delta stays\n"
     "small.  Its state reads \"paused\", also after a restart of migd.\n"
     "Pauses a job (not yet in its switch): a queued one does not start; a running\n"
     "one ends the round it is in and rests waiting, without rounds; a first send\n"
     "in flight is cut and, on resume, goes on from what the target holds.\n"
     "  -j  the evacuation (or job) as JSON\n"},
    {"resume", cmd_resume, "resume [-j] EVAC|JOB",
     "Resumes a paused evacuation or drain: its queued jobs start within the\n"
     "limits, its ready jobs switch, a drain's next CN takes its turn.  Resumes a\n"
     "paused job: it starts, or does its next round (or its switch) now.\n"
     "  -j  the evacuation (or job) as JSON\n"},
    {"doctor", cmd_doctor, "doctor [-j] [--fix] [CN ...]",
     "Finds what migrations left behind on every set-up CN (or the CNs named):\n"
     "migd-* snapshots of ended jobs, zones where VMAPI does not place the VM (a\n"
     "switched job's kept copy, a stray copy, or the only one), a VM running on two\n"
     "CNs or on none, VMAPI naming another CN than the one it runs on, and direct\n"
     "transfer's keys and key directories of ended jobs; one line each, with the\n"
     "job that left it and the exact fix.  Read-only without --fix.\n"
     "  -j      the report as JSON\n"
     "  --fix   also fix what cannot lose data (a job's snapshots and keys, VMAPI's\n"
     "          record through the CN's vm-agent); zones are always left to a human\n"
     "Exit status: 0 nothing needs a human (info lines do not), 1 findings (with\n"
     "--fix: some left), 2 bad usage.\n"},
    {"estimate", cmd_estimate, "estimate [-j] VM|CN",
     "Prints the data to move and the expected time for a VM (UUID or unique\n"
     "alias) or a whole CN (UUID or hostname): each VM's datasets' used bytes on its\n"
     "CN, over the rate migd measured between those CNs (a stated default until\n"
     "one was), plus a job's fixed part; for a CN, the window of its jobs run as an\n"
     "evacuation would run them.  Nothing is queued or reserved.\n"
     "  -j  as JSON\n"},
    {"status", cmd_status, "status [-j]",
     "Shows migd's version, uptime and jobs by state.\n  -j  as JSON\n"},
};
enum { NCOMMANDS = sizeof(commands) / sizeof(commands[0]) };

static void print_usage(FILE *f)
{
    fprintf(f, "usage: migctl COMMAND [OPTIONS] [ARGS]\n       migctl -h | -V\n\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  migctl %s\n", commands[i].usage);
    fprintf(f,
            "\n\"migctl COMMAND -h\" describes a command.\n" JOB_HELP
            "Environment: MIGD_SOCKET, migd's control socket (default " MIGCTL_DEFAULT_SOCKET ").\n"
            "Exit status: 0 success, 1 the operation failed or was refused, 2 bad usage.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        out_fail("missing command; run \"migctl -h\" for usage");
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        print_usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(name, "-V") == 0 || strcmp(name, "--version") == 0) {
        printf("migctl %s\n", MIGD_VERSION);
        return EXIT_OK;
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i].name, name) != 0)
            continue;
        opts_set_command(commands[i].name, commands[i].usage, commands[i].help);
        const char *socket_path = getenv("MIGD_SOCKET");
        if (socket_path == NULL || socket_path[0] == '\0')
            socket_path = MIGCTL_DEFAULT_SOCKET;
        client_init(socket_path);
        int ret = commands[i].run(argc - 1, argv + 1);
        client_cleanup();
        return ret;
    }
    out_fail("unknown command \"%s\"; run \"migctl -h\" for usage", name);
    return EXIT_USAGE;
}
