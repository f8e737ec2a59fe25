/*
 * migctl.c: the operator's CLI.  It speaks only the REST API of migd on its
 * Unix socket (libcurl with CURLOPT_UNIX_SOCKET_PATH) and never opens the
 * database.  Exit status: 0 success, 1 the operation failed or was refused,
 * 2 bad usage; every error is one line on stderr starting "migctl: ".
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "output.h"
#include "util.h"

#define MIGCTL_DEFAULT_SOCKET "/var/run/migd.sock"
#define LIST_DEFAULT_FIELDS "uuid,vm_uuid,vm_alias,state,phase,mode,progress,target"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

static const char *socket_path;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "migctl: ..." on one line to stderr. */
static void fail(const char *fmt, ...)
{
    va_list ap;
    fputs("migctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- the commands' usage ---- */

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage; /* after "migctl " */
    const char *help;  /* what it does and its options */
};

static const struct command *current; /* the command being run, for its usage */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line: what is wrong, then the command's usage.  Returns EXIT_USAGE. */
static int usage_error(const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (current != NULL)
        fail("%s: %s; usage: migctl %s", current->name, what, current->usage);
    else
        fail("%s; run \"migctl -h\" for usage", what);
    return EXIT_USAGE;
}

static int print_help(void)
{
    printf("usage: migctl %s\n\n%s", current->usage, current->help);
    return EXIT_OK;
}

/* ---- talking to migd ---- */

struct buffer {
    char *data;
    size_t len;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct buffer *b = arg;
    size_t n = size * nmemb;
    char *grown = realloc(b->data, b->len + n + 1);
    if (grown == NULL)
        return 0;
    b->data = grown;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* A curl handle for path on migd's socket. */
static CURL *api_handle(const char *method, const char *path, char *errbuf)
{
    CURL *h = curl_easy_init();
    if (h == NULL) {
        fail("cannot initialise libcurl");
        exit(EXIT_FAILED);
    }
    char *url = mig_asprintf("http://localhost%s", path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    free(url);
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, socket_path);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "migctl/" MIGD_VERSION);
    errbuf[0] = '\0';
    return h;
}

/* Reports a transport failure on one line. */
static void report_curl_error(CURL *h, CURLcode rc, const char *errbuf)
{
    long oserr = 0;
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &oserr);
    if (rc == CURLE_COULDNT_CONNECT) {
        const char *why = oserr != 0 ? strerror((int)oserr) : curl_easy_strerror(rc);
        fail("cannot connect to migd at %s: %s (%s)", socket_path, why,
             oserr == EACCES ? "run migctl as root" : "is migd running?");
    } else {
        fail("request to migd at %s failed: %s", socket_path,
             errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
    }
}

/* Reports an HTTP error answer: "CODE: message" from the JSON body when there is one. */
static void report_api_error(long status, const char *body, size_t len)
{
    json_t *j = body != NULL ? json_loadb(body, len, 0, NULL) : NULL;
    const char *code = json_string_value(json_object_get(j, "code"));
    const char *msg = json_string_value(json_object_get(j, "message"));
    if (code != NULL && msg != NULL)
        fail("%s: %s", code, msg);
    else if (msg != NULL)
        fail("%s", msg);
    else
        fail("migd answered HTTP %ld", status);
    json_decref(j);
}

/*
 * Calls the API.  On a 2xx answer returns EXIT_OK with the parsed body in
 * *out (a new reference; JSON null when the body is not JSON); otherwise
 * reports the error and returns EXIT_FAILED.
 */
static int api_call(const char *method, const char *path, json_t *body, json_t **out)
{
    char errbuf[CURL_ERROR_SIZE];
    CURL *h = api_handle(method, path, errbuf);
    struct buffer resp = {NULL, 0};
    struct curl_slist *headers = NULL;
    char *text = NULL;
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 600L);
    CURLcode rc = curl_easy_perform(h);
    int ret = EXIT_FAILED;
    long status = 0;
    if (rc != CURLE_OK) {
        report_curl_error(h, rc, errbuf);
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300) {
            json_t *j = resp.data != NULL ? json_loadb(resp.data, resp.len, 0, NULL) : NULL;
            *out = j != NULL ? j : json_null();
            ret = EXIT_OK;
        } else {
            report_api_error(status, resp.data, resp.len);
        }
    }
    free(resp.data);
    free(text);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return ret;
}

/* ---- watch ---- */

struct watch_state {
    CURL *h;
    struct buffer line; /* bytes after the last newline */
    struct buffer err;  /* the body of an error answer */
    json_t *last;       /* the last job seen */
    bool tty;
    bool drawn; /* a progress line is on the terminal */
    long status;
};

static void watch_show(struct watch_state *w, json_t *job)
{
    char line[512];
    out_progress_line(job, line, sizeof(line));
    if (w->tty) {
        printf("\r\033[K%s", line);
        w->drawn = true;
    } else {
        printf("%s\n", line);
    }
    fflush(stdout);
}

static size_t on_watch_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct watch_state *w = arg;
    size_t n = size * nmemb;
    if (w->status == 0)
        curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &w->status);
    if (w->status < 200 || w->status >= 300)
        return on_body(ptr, size, nmemb, &w->err);
    if (on_body(ptr, size, nmemb, &w->line) != n)
        return 0;
    char *start = w->line.data, *nl;
    while ((nl = memchr(start, '\n', w->line.len - (size_t)(start - w->line.data))) != NULL) {
        json_t *job = json_loadb(start, (size_t)(nl - start), 0, NULL);
        if (job != NULL) {
            json_decref(w->last);
            w->last = job;
            watch_show(w, job);
        }
        start = nl + 1;
    }
    size_t rest = w->line.len - (size_t)(start - w->line.data);
    memmove(w->line.data, start, rest);
    w->line.len = rest;
    return n;
}

/*
 * Follows the job until its stream ends.  Exit status 0 when the job
 * succeeded, switched (the VM runs on the target) or waits for finish.
 */
static int watch_job(const char *uuid)
{
    char errbuf[CURL_ERROR_SIZE];
    char *path = mig_asprintf("/jobs/%s/watch", uuid);
    struct watch_state w = {.tty = isatty(STDOUT_FILENO) != 0};
    w.h = api_handle("GET", path, errbuf);
    free(path);
    curl_easy_setopt(w.h, CURLOPT_WRITEFUNCTION, on_watch_data);
    curl_easy_setopt(w.h, CURLOPT_WRITEDATA, &w);
    CURLcode rc = curl_easy_perform(w.h);
    if (w.drawn)
        putchar('\n');
    int ret = EXIT_FAILED;
    if (w.status == 0)
        curl_easy_getinfo(w.h, CURLINFO_RESPONSE_CODE, &w.status);
    if (rc != CURLE_OK && (w.status < 200 || w.status >= 300)) {
        report_curl_error(w.h, rc, errbuf);
    } else if (w.status < 200 || w.status >= 300) {
        report_api_error(w.status, w.err.data, w.err.len);
    } else {
        const char *state = json_string_value(json_object_get(w.last, "state"));
        if (state == NULL) {
            fail("job %s: the watch ended without news from migd", uuid);
        } else if (strcmp(state, "succeeded") == 0 || strcmp(state, "switched") == 0 ||
                   strcmp(state, "waiting") == 0 || strcmp(state, "rolled_back") == 0) {
            if (strcmp(state, "rolled_back") == 0)
                printf("job %s rolled back: the VM runs on %s again\n", uuid,
                       json_string_value(json_object_get(w.last, "source_hostname"))
                           ? json_string_value(json_object_get(w.last, "source_hostname"))
                           : "the source");
            else if (strcmp(state, "switched") == 0)
                printf("job %s switched: the VM runs on %s; \"migctl cleanup %s\" deletes the "
                       "source copy, \"migctl rollback %s\" moves it back\n",
                       uuid,
                       json_string_value(json_object_get(w.last, "target_hostname"))
                           ? json_string_value(json_object_get(w.last, "target_hostname"))
                           : "the target",
                       uuid, uuid);
            else if (strcmp(state, "waiting") == 0)
                printf("job %s is in sync: \"migctl finish %s\" switches it\n", uuid, uuid);
            else
                printf("job %s succeeded\n", uuid);
            ret = EXIT_OK;
        } else if (strcmp(state, "queued") == 0 || strcmp(state, "running") == 0) {
            fail("job %s: the watch ended while the job is %s (did migd stop?)", uuid, state);
        } else {
            const char *code = json_string_value(out_get(w.last, "error.code"));
            const char *msg = json_string_value(out_get(w.last, "error.message"));
            if (msg != NULL)
                fail("job %s %s: %s%s%s", uuid, state, code != NULL ? code : "",
                     code != NULL ? ": " : "", msg);
            else
                fail("job %s %s", uuid, state);
        }
    }
    json_decref(w.last);
    free(w.line.data);
    free(w.err.data);
    curl_easy_cleanup(w.h);
    return ret;
}

/* ---- option parsing shared by the commands ---- */

/*
 * getopt_long for a command (argv[0] is the command's name).  Returns the
 * option, -1 at the end, or '?' after reporting a usage error.
 */
static int next_opt(int argc, char **argv, const char *optstring, const struct option *longopts)
{
    int ch = getopt_long(argc, argv, optstring, longopts, NULL);
    if (ch == '?') {
        if (optopt != 0)
            usage_error("unknown option -%c", optopt);
        else
            usage_error("unknown option %s", argv[optind - 1]);
    } else if (ch == ':') {
        usage_error("option -%c needs an argument", optopt);
        ch = '?';
    }
    return ch;
}

static const struct option help_only[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

/* Parses "[-j] JOB" (json may be NULL when -j is not accepted); EXIT_OK or the exit status. */
static int parse_job_args(int argc, char **argv, bool *json, const char **job)
{
    int ch;
    while ((ch = next_opt(argc, argv, json != NULL ? ":hj" : ":h", help_only)) != -1) {
        if (ch == 'h') {
            print_help();
            exit(EXIT_OK);
        }
        if (ch == 'j' && json != NULL)
            *json = true;
        else
            return EXIT_USAGE;
    }
    if (optind >= argc)
        return usage_error("missing JOB");
    if (optind + 1 < argc)
        return usage_error("unexpected argument \"%s\"", argv[optind + 1]);
    *job = argv[optind];
    if (!mig_uuid_valid(*job))
        return usage_error("\"%s\" is not a job UUID", *job);
    return EXIT_OK;
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (s != NULL)
        puts(s);
    free(s);
}

/* ---- commands ---- */

static int cmd_migrate(int argc, char **argv)
{
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
                                             {"cleanup-source", no_argument, NULL, 'C'},
                                             {NULL, 0, NULL, 0}};
    const char *mode = "full";
    bool dry = false, older = false, watch = false, cleanup = false;
    int ch;
    while ((ch = next_opt(argc, argv, ":hianDw", longopts)) != -1) {
        switch (ch) {
        case 'h':
            return print_help();
        case 'i':
        case 'a':
            if (strcmp(mode, "full") != 0)
                return usage_error("-i and -a exclude each other");
            mode = ch == 'i' ? "incremental" : "auto";
            break;
        case 'n':
            dry = true;
            break;
        case 'D':
            older = true;
            break;
        case 'w':
            watch = true;
            break;
        case 'C':
            cleanup = true;
            break;
        default:
            return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return usage_error("missing VM");
    if (argc - optind > 2)
        return usage_error("unexpected argument \"%s\"", argv[optind + 2]);
    const char *vm = argv[optind], *target = optind + 1 < argc ? argv[optind + 1] : NULL;
    json_t *body = json_pack("{s:s, s:s, s:b, s:b, s:b}", "vm_uuid", vm, "mode", mode, "dry_run",
                             dry, "allow_older_platform", older, "cleanup_source", cleanup);
    if (target != NULL)
        json_object_set_new(body, "target", json_string(target));
    json_t *resp = NULL;
    int ret = api_call("POST", "/jobs", body, &resp);
    json_decref(body);
    if (ret != EXIT_OK)
        return ret;
    if (dry) {
        printf("dry run: %s can be migrated; nothing was changed\n", vm);
        out_plan(stdout, json_object_get(resp, "plan"));
        json_decref(resp);
        return EXIT_OK;
    }
    const char *uuid = json_string_value(json_object_get(resp, "uuid"));
    if (uuid == NULL) {
        fail("migd accepted the job but did not name it");
        json_decref(resp);
        return EXIT_FAILED;
    }
    char *alias = out_field(resp, "vm_alias"), *src = out_field(resp, "source"),
         *dst = out_field(resp, "target");
    const char *vmu = json_string_value(json_object_get(resp, "vm_uuid"));
    printf("job %s queued: migrating %s (%s) from %s to %s\n", uuid, vmu != NULL ? vmu : vm, alias,
           src, dst);
    fflush(stdout);
    free(alias);
    free(src);
    free(dst);
    char *job = mig_strdup(uuid);
    json_decref(resp);
    ret = watch ? watch_job(job) : EXIT_OK;
    free(job);
    return ret;
}

static int cmd_list(int argc, char **argv)
{
    const char *fields = LIST_DEFAULT_FIELDS, *sort = NULL;
    bool all = false, header = true, json = false, parsable = false;
    int ch;
    while ((ch = next_opt(argc, argv, ":haHo:s:jp", help_only)) != -1) {
        switch (ch) {
        case 'h':
            return print_help();
        case 'a':
            all = true;
            break;
        case 'H':
            header = false;
            break;
        case 'o':
            fields = optarg;
            break;
        case 's':
            sort = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'p':
            parsable = true;
            break;
        default:
            return EXIT_USAGE;
        }
    }
    for (int i = optind; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        if (eq == NULL || eq == argv[i])
            return usage_error("\"%s\" is not a KEY=VALUE filter", argv[i]);
    }
    json_t *jobs = NULL;
    int ret = api_call("GET", all ? "/jobs?all=true" : "/jobs", NULL, &jobs);
    if (ret != EXIT_OK)
        return ret;
    if (!json_is_array(jobs)) {
        json_decref(jobs);
        fail("migd answered something that is not a list of jobs");
        return EXIT_FAILED;
    }
    json_t *kept = json_array();
    size_t i;
    json_t *job;
    json_array_foreach(jobs, i, job)
    {
        if (out_match(job, argv + optind, argc - optind))
            json_array_append(kept, job);
    }
    json_decref(jobs);
    if (json) {
        if (sort != NULL)
            out_sort(kept, sort);
        print_json(kept);
    } else {
        char err[256];
        struct out_table_opts opts = {fields, sort, header, parsable};
        if (out_table(stdout, kept, &opts, err, sizeof(err)) != 0) {
            json_decref(kept);
            return usage_error("%s", err);
        }
    }
    json_decref(kept);
    return EXIT_OK;
}

static int cmd_show(int argc, char **argv)
{
    bool json = false, verbose = false;
    const char *uuid = NULL;
    int ch;
    while ((ch = next_opt(argc, argv, ":hjv", help_only)) != -1) {
        if (ch == 'h')
            return print_help();
        if (ch == 'j')
            json = true;
        else if (ch == 'v')
            verbose = true;
        else
            return EXIT_USAGE;
    }
    if (optind >= argc)
        return usage_error("missing JOB");
    if (optind + 1 < argc)
        return usage_error("unexpected argument \"%s\"", argv[optind + 1]);
    uuid = argv[optind];
    if (!mig_uuid_valid(uuid))
        return usage_error("\"%s\" is not a job UUID", uuid);
    char *path = mig_asprintf("/jobs/%s", uuid);
    json_t *job = NULL;
    int ret = api_call("GET", path, NULL, &job);
    free(path);
    if (ret != EXIT_OK)
        return ret;
    json_t *actions = NULL;
    if (verbose) {
        path = mig_asprintf("/jobs/%s/actions", uuid);
        json_t *resp = NULL;
        ret = api_call("GET", path, NULL, &resp);
        free(path);
        if (ret != EXIT_OK) {
            json_decref(job);
            return ret;
        }
        actions = json_incref(json_object_get(resp, "actions"));
        json_decref(resp);
    }
    if (json) {
        if (actions != NULL)
            json_object_set(job, "actions", actions);
        print_json(job);
    } else {
        out_job_summary(stdout, job);
        if (actions != NULL)
            out_actions(stdout, actions);
    }
    json_decref(actions);
    json_decref(job);
    return EXIT_OK;
}

static int cmd_watch(int argc, char **argv)
{
    const char *uuid;
    int ret = parse_job_args(argc, argv, NULL, &uuid);
    return ret != EXIT_OK ? ret : watch_job(uuid);
}

/* finish, abort, rollback, cleanup: the action is the command's name. */
static int cmd_action(int argc, char **argv)
{
    const char *uuid;
    int ret = parse_job_args(argc, argv, NULL, &uuid);
    if (ret != EXIT_OK)
        return ret;
    char *path = mig_asprintf("/jobs/%s?action=%s", uuid, current->name);
    json_t *resp = NULL;
    ret = api_call("POST", path, NULL, &resp);
    free(path);
    if (ret != EXIT_OK)
        return ret;
    const char *msg = json_string_value(json_object_get(resp, "message"));
    if (msg != NULL && msg[0] != '\0')
        printf("%s\n", msg); /* migd's sentence names the job */
    else
        printf("job %s: %s requested\n", uuid, current->name);
    json_decref(resp);
    return EXIT_OK;
}

static const char *level_name(json_int_t level)
{
    if (level >= 60)
        return "FATAL";
    if (level >= 50)
        return "ERROR";
    if (level >= 40)
        return "WARN";
    if (level >= 30)
        return "INFO";
    if (level >= 20)
        return "DEBUG";
    return "TRACE";
}

static int cmd_log(int argc, char **argv)
{
    bool json = false;
    const char *uuid;
    int ret = parse_job_args(argc, argv, &json, &uuid);
    if (ret != EXIT_OK)
        return ret;
    char *path = mig_asprintf("/jobs/%s/log", uuid);
    json_t *resp = NULL;
    ret = api_call("GET", path, NULL, &resp);
    free(path);
    if (ret != EXIT_OK)
        return ret;
    json_t *log = json_object_get(resp, "log");
    if (json) {
        print_json(log);
    } else {
        size_t i;
        json_t *rec;
        json_array_foreach(log, i, rec)
        {
            const char *t = json_string_value(json_object_get(rec, "time"));
            const char *m = json_string_value(json_object_get(rec, "msg"));
            printf("%s %-5s %s\n", t != NULL ? t : "-",
                   level_name(json_integer_value(json_object_get(rec, "level"))),
                   m != NULL ? m : "");
        }
    }
    json_decref(resp);
    return EXIT_OK;
}

static int cmd_status(int argc, char **argv)
{
    bool json = false;
    int ch;
    while ((ch = next_opt(argc, argv, ":hj", help_only)) != -1) {
        if (ch == 'h')
            return print_help();
        if (ch != 'j')
            return EXIT_USAGE;
        json = true;
    }
    if (optind < argc)
        return usage_error("unexpected argument \"%s\"", argv[optind]);
    json_t *ping = NULL;
    int ret = api_call("GET", "/ping", NULL, &ping);
    if (ret != EXIT_OK)
        return ret;
    if (json) {
        print_json(ping);
    } else {
        json_int_t up = json_integer_value(json_object_get(ping, "uptime_s"));
        const char *v = json_string_value(json_object_get(ping, "version"));
        printf("migd %s, pid %lld, up %lldd %lldh %lldm, socket %s\n", v != NULL ? v : "?",
               (long long)json_integer_value(json_object_get(ping, "pid")), (long long)(up / 86400),
               (long long)(up % 86400 / 3600), (long long)(up % 3600 / 60), socket_path);
        printf("jobs:");
        const char *state;
        json_t *n;
        json_object_foreach(json_object_get(ping, "jobs"), state, n)
        {
            printf(" %s %lld", state, (long long)json_integer_value(n));
            if (strcmp(state, "rolled_back") != 0)
                putchar(',');
        }
        putchar('\n');
        json_int_t bad = json_integer_value(json_object_get(ping, "unreadable"));
        if (bad > 0)
            printf("%lld job record%s cannot be read: see \"migctl list -a\" and migd's log\n",
                   (long long)bad, bad == 1 ? "" : "s");
    }
    json_decref(ping);
    return EXIT_OK;
}

static int cmd_not_implemented(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return print_help();
    fail("%s is not implemented yet", current->name);
    return EXIT_FAILED;
}

static const struct command commands[] = {
    {"migrate", cmd_migrate, "migrate [-i | -a] [-n] [-D] [-w] [--cleanup-source] VM [TARGET_CN]",
     "Queues a job that moves VM (a UUID, or an alias that is unique) to TARGET_CN\n"
     "(a server UUID or hostname; without it the placement rules pick one).\n"
     "  -i                incremental: sync, then wait for \"migctl finish\"\n"
     "  -a                automatic incremental: sync until the delta is small, then switch\n"
     "  -n                dry run: validate and print the plan and estimate\n"
     "  -D                allow a target with an older platform\n"
     "  -w                watch the job until it ends (exit status as for watch)\n"
     "  --cleanup-source  delete the source copy once the VM runs on the target\n"},
    {"list", cmd_list, "list [-a] [-H] [-p] [-j] [-o FIELDS] [-s SORT] [KEY=VALUE ...]",
     "Lists unfinished jobs in columns.\n"
     "  -a         all jobs, finished ones too\n"
     "  -H         no header line\n"
     "  -p         parsable: fields joined by ':' (':' in values as '\\:'), no header\n"
     "  -j         JSON array of the jobs\n"
     "  -o FIELDS  comma-separated job keys, dotted for nested ones (progress.bytes_sent);\n"
     "             progress (percent), source and target (hostname) are computed\n"
     "             (default: " LIST_DEFAULT_FIELDS ")\n"
     "  -s SORT    comma-separated keys to sort by, '-' prefix for descending\n"
     "  KEY=VALUE  only jobs whose field KEY shows as VALUE (e.g. state=running)\n"},
    {"show", cmd_show, "show JOB [-v] [-j]",
     "Shows one job.\n"
     "  -v  also every action it took, from its journal: where, status, start, duration\n"
     "  -j  the job's JSON (with -v, its \"actions\" too)\n"},
    {"watch", cmd_watch, "watch JOB",
     "Follows a job: a live progress line on a terminal, one line per change\n"
     "otherwise.  Exits 0 when the job succeeded, switched, waits for finish, or\n"
     "its rollback (migctl rollback) brought the VM back to the source; 1 when it\n"
     "failed or was aborted.\n"},
    {"finish", cmd_action, "finish JOB",
     "Starts the switch of an incremental job that is in sync.\n"},
    {"abort", cmd_action, "abort JOB", "Stops a job that has not switched and rolls it back.\n"},
    {"rollback", cmd_action, "rollback JOB",
     "Moves a switched VM back to the source, sending back what changed on the target.\n"},
    {"cleanup", cmd_action, "cleanup JOB", "Deletes the source copy of a switched job.\n"},
    {"log", cmd_log, "log JOB [-j]",
     "Prints the job's log records: time, level, message.\n"
     "  -j  the records as JSON\n"},
    {"evacuate", cmd_not_implemented,
     "evacuate [-n] [-i | -a] [--to CN[,CN...]] [--max-parallel N] [--no-reserve] CN",
     "Moves every eligible VM off CN (not implemented yet).\n"},
    {"estimate", cmd_not_implemented, "estimate VM|CN",
     "Prints the data to move and the expected time (not implemented yet).\n"},
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
            "\n\"migctl COMMAND -h\" describes a command.  JOB is a job UUID.\n"
            "Environment: MIGD_SOCKET, migd's control socket (default " MIGCTL_DEFAULT_SOCKET ").\n"
            "Exit status: 0 success, 1 the operation failed or was refused, 2 bad usage.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fail("missing command; run \"migctl -h\" for usage");
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
        current = &commands[i];
        socket_path = getenv("MIGD_SOCKET");
        if (socket_path == NULL || socket_path[0] == '\0')
            socket_path = MIGCTL_DEFAULT_SOCKET;
        opterr = 0;
        optind = 1;
        curl_global_init(CURL_GLOBAL_DEFAULT);
        int ret = commands[i].run(argc - 1, argv + 1);
        curl_global_cleanup();
        return ret;
    }
    fail("unknown command \"%s\"; run \"migctl -h\" for usage", name);
    return EXIT_USAGE;
}
