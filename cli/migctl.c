/*
 * migctl.c: the operator's CLI.  It speaks only the REST API of migd on its
 * Unix socket (libcurl with CURLOPT_UNIX_SOCKET_PATH) and never opens the
 * database.  Exit status: 0 success, 1 the operation failed or was refused,
 * 2 bad usage; every error is one line on stderr starting "migctl: ".
 * Every string that came from migd goes through out_escape (output.h)
 * before it reaches a terminal.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "output.h"
#include "util.h"

#define MIGCTL_DEFAULT_SOCKET "/var/run/migd.sock"
#define LIST_DEFAULT_FIELDS "id,vm_alias,state,phase,progress,source,target"
#define LIST_LONG_FIELDS "uuid,vm_alias,state,phase,mode,progress,source,target"
#define LIST_WIDTH 80
#define JOB_HELP                                                                                   \
    "JOB is a job UUID, 8 or more of its first characters, or a VM (UUID or alias)\n"              \
    "with exactly one unfinished job; one that names no job, or several, is bad\n"                 \
    "usage (exit 2) and the error lists the jobs it could mean.\n"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

/* The watch's progress lines: at most one every this many ms when not on a terminal. */
enum { WATCH_PIPE_EVERY_MS = 10000 };

static const char *socket_path;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Prints "migctl: ..." on one line to stderr, escaped as a whole (what came
 * from migd or the command line cannot act on the terminal; out_escape
 * keeps what is escaped already as it is).
 */
static void fail(const char *fmt, ...)
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
    char what[1536];
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

/* ---- options ---- */

/*
 * A command's options.  Short options may be clustered ("-in") and take
 * their argument attached ("-ouuid") or as the next word; long options
 * match their whole name, never a prefix, and take their argument after
 * '=' or as the next word; "--" ends the options.  Options and operands may
 * come in any order.
 */
struct opt {
    int key;          /* what opt_next returns: the letter, or a code above 255 */
    char letter;      /* the short form, or 0 */
    const char *name; /* the long form without "--", or NULL */
    bool has_arg;
};

#define OPT_HELP                                                                                   \
    {                                                                                              \
        'h', 'h', "help", false                                                                    \
    }
#define OPT_END                                                                                    \
    {                                                                                              \
        0, 0, NULL, false                                                                          \
    }

struct opts {
    int argc;
    char **argv;
    const struct opt *table;
    int next;            /* the next word of argv */
    const char *cluster; /* the rest of a cluster of short options */
    bool only_operands;  /* after "--" */
    const char *arg;     /* the argument of the option just returned */
    char **operands;     /* the words that are not options, in order */
    int noperands;
};

static void opts_init(struct opts *o, int argc, char **argv, const struct opt *table)
{
    memset(o, 0, sizeof(*o));
    o->argc = argc;
    o->argv = argv;
    o->table = table;
    o->next = 1; /* argv[0] is the command's name */
    o->operands = mig_calloc((size_t)argc + 1, sizeof(*o->operands));
}

static void opts_free(struct opts *o)
{
    free(o->operands);
}

/* A long option the word names only in part: for "did you mean". */
static const struct opt *long_prefix_of(const struct opt *table, const char *name, size_t n)
{
    for (const struct opt *t = table; t->key != 0; t++)
        if (t->name != NULL && strncmp(t->name, name, n) == 0)
            return t;
    return NULL;
}

/*
 * The next option's key (its argument in o->arg), 0 once every word was
 * read (the operands are then in o->operands), or -1 after a usage error
 * was reported.
 */
static int opt_next(struct opts *o)
{
    o->arg = NULL;
    for (;;) {
        if (o->cluster != NULL && *o->cluster != '\0') {
            char c = *o->cluster++;
            const struct opt *t = o->table;
            while (t->key != 0 && t->letter != c)
                t++;
            if (t->key == 0) {
                usage_error("unknown option -%c", c);
                return -1;
            }
            if (t->has_arg) {
                if (*o->cluster != '\0') {
                    o->arg = o->cluster;
                } else if (o->next < o->argc) {
                    o->arg = o->argv[o->next++];
                } else {
                    usage_error("option -%c needs an argument", c);
                    return -1;
                }
                o->cluster = NULL;
            }
            return t->key;
        }
        o->cluster = NULL;
        if (o->next >= o->argc)
            return 0;
        char *w = o->argv[o->next++];
        if (o->only_operands || w[0] != '-' || w[1] == '\0') {
            o->operands[o->noperands++] = w;
            continue;
        }
        if (w[1] != '-') {
            o->cluster = w + 1;
            continue;
        }
        if (w[2] == '\0') {
            o->only_operands = true;
            continue;
        }
        const char *name = w + 2, *eq = strchr(name, '=');
        size_t n = eq != NULL ? (size_t)(eq - name) : strlen(name);
        const struct opt *t = o->table;
        while (t->key != 0 &&
               (t->name == NULL || strlen(t->name) != n || strncmp(t->name, name, n) != 0))
            t++;
        if (t->key == 0) {
            const struct opt *near = n > 0 ? long_prefix_of(o->table, name, n) : NULL;
            if (near != NULL)
                usage_error("unknown option --%.*s (did you mean --%s?)", (int)n, name, near->name);
            else
                usage_error("unknown option --%.*s", (int)n, name);
            return -1;
        }
        if (!t->has_arg && eq != NULL) {
            usage_error("option --%s takes no value", t->name);
            return -1;
        }
        if (t->has_arg) {
            if (eq != NULL) {
                o->arg = eq + 1;
            } else if (o->next < o->argc) {
                o->arg = o->argv[o->next++];
            } else {
                usage_error("option --%s needs an argument", t->name);
                return -1;
            }
        }
        return t->key;
    }
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
static void report_api_error(long status, json_t *body)
{
    const char *code = json_string_value(json_object_get(body, "code"));
    const char *msg = json_string_value(json_object_get(body, "message"));
    if (code != NULL && msg != NULL)
        fail("%s: %s", code, msg);
    else if (msg != NULL)
        fail("%s", msg);
    else
        fail("migd answered HTTP %ld", status);
}

/*
 * Calls the API.  Returns EXIT_OK once migd answered, whatever the status:
 * the status in *status, the body in *out (a new reference; JSON null when
 * it is not JSON).  A transport failure is reported: EXIT_FAILED.
 */
static int api_request(const char *method, const char *path, json_t *body, long *status,
                       json_t **out)
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
    if (rc != CURLE_OK) {
        report_curl_error(h, rc, errbuf);
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        json_t *j = resp.data != NULL ? json_loadb(resp.data, resp.len, 0, NULL) : NULL;
        *out = j != NULL ? j : json_null();
        ret = EXIT_OK;
    }
    free(resp.data);
    free(text);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return ret;
}

/*
 * Calls the API.  On a 2xx answer returns EXIT_OK with the parsed body in
 * *out (a new reference; JSON null when the body is not JSON); otherwise
 * reports the error and returns EXIT_FAILED.
 */
static int api_call(const char *method, const char *path, json_t *body, json_t **out)
{
    long status = 0;
    json_t *j = NULL;
    if (api_request(method, path, body, &status, &j) != EXIT_OK)
        return EXIT_FAILED;
    if (status >= 200 && status < 300) {
        *out = j;
        return EXIT_OK;
    }
    report_api_error(status, j);
    json_decref(j);
    return EXIT_FAILED;
}

/*
 * GET /jobs with query ("" or "?..."), every page of it: the array in *out
 * (new reference).  migd pages as Triton's APIs do (limit, offset); a job
 * that a new one pushes onto the next page is listed once.
 */
static int fetch_jobs(const char *query, json_t **out)
{
    enum { PAGE = 1000 };
    json_t *all = json_array(), *seen = json_object(); /* seen: uuids listed */
    for (long offset = 0;; offset += PAGE) {
        char *path = mig_asprintf("/jobs?limit=%d&offset=%ld%s%s", PAGE, offset,
                                  query[0] != '\0' ? "&" : "", query[0] != '\0' ? query + 1 : "");
        json_t *page = NULL;
        int ret = api_call("GET", path, NULL, &page);
        free(path);
        if (ret == EXIT_OK && !json_is_array(page)) {
            fail("migd answered something that is not a list of jobs");
            ret = EXIT_FAILED;
        }
        if (ret != EXIT_OK) {
            json_decref(page);
            json_decref(all);
            json_decref(seen);
            return ret;
        }
        size_t i, n = json_array_size(page);
        json_t *job;
        json_array_foreach(page, i, job)
        {
            const char *u = json_string_value(json_object_get(job, "uuid"));
            if (u != NULL && json_object_get(seen, u) != NULL)
                continue;
            if (u != NULL)
                json_object_set_new(seen, u, json_true());
            json_array_append(all, job);
        }
        json_decref(page);
        /* Unreadable rows come with the first page only: a short page is the last. */
        if (n < PAGE)
            break;
    }
    json_decref(seen);
    *out = all;
    return EXIT_OK;
}

/* -j output: one JSON text, pretty (show, status) or on one line (list, log). */
static void print_json(json_t *j, bool one_line)
{
    size_t flags = JSON_ENCODE_ANY | JSON_ENSURE_ASCII;
    char *s = json_dumps(j, flags | (one_line ? JSON_COMPACT : JSON_INDENT(2)));
    if (s != NULL)
        puts(s);
    free(s);
}

/* ---- naming a job ---- */

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
    fail("%s: %s", current->name, what);
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

/*
 * Resolves a JOB argument: a job UUID, a unique prefix of one (8 or more
 * characters), or a VM (UUID or alias) with exactly one unfinished job.
 * Returns EXIT_OK with the job's JSON in *job (new reference); EXIT_USAGE
 * after reporting that arg names no job or several (listing them);
 * EXIT_FAILED when migd could not be asked.
 */
static int resolve_job(const char *arg, json_t **job)
{
    int ret;
    char lower[MIG_UUID_LEN + 1];
    if (mig_uuid_valid(arg)) {
        for (size_t i = 0; i <= MIG_UUID_LEN; i++)
            lower[i] = (char)tolower((unsigned char)arg[i]);
        arg = lower;
        char *path = mig_asprintf("/jobs/%s", arg);
        long status = 0;
        json_t *got = NULL;
        ret = api_request("GET", path, NULL, &status, &got);
        free(path);
        if (ret != EXIT_OK)
            return ret;
        if (status >= 200 && status < 300) {
            *job = got;
            return EXIT_OK;
        }
        if (status != 404) {
            report_api_error(status, got);
            json_decref(got);
            return EXIT_FAILED;
        }
        json_decref(got);
        /* Not a job: a VM's UUID? */
        json_t *jobs = NULL;
        char *q = mig_asprintf("?all=true&vm_uuid=%s", arg);
        ret = fetch_jobs(q, &jobs);
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

    /* A prefix of a job UUID, or a VM alias. */
    json_t *unfinished = NULL, *all = NULL;
    if ((ret = fetch_jobs("", &unfinished)) != EXIT_OK)
        return ret;
    json_t *cands = jobs_where(unfinished, "vm_alias", arg, false);
    size_t n = strlen(arg);
    if (uuid_prefix_like(arg) && n >= 8) {
        if ((ret = fetch_jobs("?all=true", &all)) != EXIT_OK)
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
        if (all == NULL && (ret = fetch_jobs("?all=true", &all)) != EXIT_OK)
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

/* Resolves the one JOB operand of a command (the others are usage errors). */
static int job_operand(struct opts *o, json_t **job)
{
    if (o->noperands == 0)
        return usage_error("missing JOB");
    if (o->noperands > 1)
        return usage_error("unexpected argument \"%s\"", o->operands[1]);
    return resolve_job(o->operands[0], job);
}

/* The job's UUID, checked: it goes into paths and onto the terminal. */
static const char *job_uuid(json_t *job)
{
    const char *u = json_string_value(json_object_get(job, "uuid"));
    if (u == NULL || !mig_uuid_valid(u)) {
        fail("migd named a job with something that is not a UUID");
        return NULL;
    }
    return u;
}

/* ---- watch ---- */

static volatile sig_atomic_t interrupted; /* SIGINT came */

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct watch_state {
    CURL *h;
    const char *uuid;
    struct buffer line; /* bytes after the last newline */
    struct buffer err;  /* the body of an error answer */
    json_t *last;       /* the last job seen, as migd sent it */
    json_t *printed;    /* the job when a line was last printed (not a terminal) */
    int64_t printed_ms; /* when, on the monotonic clock */
    char shown[1024];   /* the line last printed or drawn */
    bool tty;
    bool drawn; /* a progress line is on the terminal */
    size_t cols;
    long status;
    size_t rounds;      /* the rounds already told (one line each, also on a terminal) */
    bool began;         /* the first event was seen */
};

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "2024-05-01T12:00:03Z ": what begins every line of watch when not on a terminal. */
static void put_stamp(FILE *f)
{
    char buf[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ ", &tm);
    fputs(buf, f);
}

/* True when state, phase, round or aborting differ: a line of its own. */
static bool watch_turned(json_t *a, json_t *b)
{
    static const char *keys[] = {"state", "phase", "progress.increments", "aborting"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (!json_equal(out_get(a, keys[i]), out_get(b, keys[i])))
            return true;
    return false;
}

/* Each round the job finished since the last look: one stamped line, kept on a terminal too. */
static void watch_rounds(struct watch_state *w, json_t *job)
{
    json_t *rounds = out_get(job, "rounds");
    size_t n = json_array_size(rounds);
    if (!w->began || n < w->rounds) {
        w->began = true;
        /* What came before the watch began is migctl show's to list; a new task
         * (a rollback) starts its own rounds. */
        w->rounds = n;
        return;
    }
    for (; w->rounds < n; w->rounds++) {
        char rl[256];
        out_round(json_array_get(rounds, w->rounds), rl, sizeof(rl));
        if (w->tty && w->drawn) {
            printf("\r\033[K");
            w->drawn = false;
            w->shown[0] = '\0';
        }
        put_stamp(stdout);
        printf("%s\n", rl);
    }
}

static void watch_show(struct watch_state *w, json_t *job)
{
    char line[1024];
    watch_rounds(w, job);
    json_t *esc = out_escaped(job);
    out_progress_line(esc, line, sizeof(line));
    json_decref(esc);
    if (w->tty) {
        /* Cut to the width: a line that wraps cannot be redrawn in place. */
        char *cut = out_cut(line, w->cols > 1 ? w->cols - 1 : 79);
        bool same = w->drawn && strcmp(cut, w->shown) == 0;
        if (!same) {
            printf("\r\033[K%s", cut);
            snprintf(w->shown, sizeof(w->shown), "%s", cut);
            w->drawn = true;
        }
        free(cut);
        if (same)
            return;
    } else {
        int64_t now = monotonic_ms();
        bool turned = w->printed == NULL || watch_turned(w->printed, job);
        bool due = strcmp(line, w->shown) != 0 && now - w->printed_ms >= WATCH_PIPE_EVERY_MS;
        if (!turned && !due)
            return;
        put_stamp(stdout);
        printf("%s\n", line);
        snprintf(w->shown, sizeof(w->shown), "%s", line);
        json_decref(w->printed);
        w->printed = json_incref(job);
        w->printed_ms = now;
    }
    fflush(stdout);
}

static size_t on_watch_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct watch_state *w = arg;
    size_t n = size * nmemb;
    if (interrupted)
        return 0;
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

/* libcurl calls this at least once a second: how a Ctrl-C ends the transfer. */
static int on_watch_tick(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                         curl_off_t ulnow)
{
    (void)arg, (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return interrupted ? 1 : 0;
}

static void watch_say(struct watch_state *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A closing line on stdout, stamped when not on a terminal. */
static void watch_say(struct watch_state *w, const char *fmt, ...)
{
    va_list ap;
    if (!w->tty)
        put_stamp(stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* The closing words once the stream ended; the exit status. */
static int watch_verdict(struct watch_state *w)
{
    json_t *job = out_escaped(w->last);
    const char *uuid = w->uuid;
    const char *state = json_string_value(json_object_get(job, "state"));
    const char *src = json_string_value(json_object_get(job, "source_hostname"));
    const char *dst = json_string_value(json_object_get(job, "target_hostname"));
    int ret = EXIT_FAILED;
    if (state == NULL) {
        fail("job %s: the watch ended without news from migd", uuid);
    } else if (strcmp(state, "rolled_back") == 0) {
        watch_say(w, "job %s rolled back: the VM runs on %s again", uuid,
                  src != NULL ? src : "the source");
        ret = EXIT_OK;
    } else if (strcmp(state, "switched") == 0) {
        watch_say(w,
                  "job %s switched: the VM runs on %s; \"migctl cleanup %s\" deletes the source "
                  "copy, \"migctl rollback %s\" moves it back",
                  uuid, dst != NULL ? dst : "the target", uuid, uuid);
        ret = EXIT_OK;
    } else if (strcmp(state, "waiting") == 0) {
        watch_say(w, "job %s is in sync: \"migctl finish %s\" switches it", uuid, uuid);
        ret = EXIT_OK;
    } else if (strcmp(state, "succeeded") == 0) {
        watch_say(w, "job %s succeeded: the VM runs on %s", uuid, dst != NULL ? dst : "the target");
        ret = EXIT_OK;
    } else if (strcmp(state, "queued") == 0 || strcmp(state, "running") == 0) {
        fail("job %s: the watch ended while the job is %s (did migd stop?)", uuid, state);
    } else {
        const char *code = json_string_value(out_get(job, "error.code"));
        const char *msg = json_string_value(out_get(job, "error.message"));
        const char *phase = json_string_value(out_get(job, "error.phase"));
        fail("job %s %s%s%s: %s%s%s", uuid, state, phase != NULL ? " in " : "",
             phase != NULL ? phase : "", code != NULL ? code : "", code != NULL ? ": " : "",
             msg != NULL ? msg : "no error recorded");
    }
    json_decref(job);
    return ret;
}

/* The terminal's width in characters (80 when it cannot be told). */
static size_t terminal_cols(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

/*
 * Follows the job until its stream ends.  Exit status 0 when the job
 * succeeded, switched (the VM runs on the target), waits for finish or was
 * rolled back by the operator; 1 otherwise.  A Ctrl-C leaves the job alone,
 * says so, and ends migctl as SIGINT ends a program (status 130).
 */
static int watch_job(const char *uuid)
{
    char errbuf[CURL_ERROR_SIZE];
    char *path = mig_asprintf("/jobs/%s/watch", uuid);
    struct watch_state w = {.tty = isatty(STDOUT_FILENO) != 0, .uuid = uuid};
    if (w.tty)
        w.cols = terminal_cols();
    w.h = api_handle("GET", path, errbuf);
    free(path);
    curl_easy_setopt(w.h, CURLOPT_WRITEFUNCTION, on_watch_data);
    curl_easy_setopt(w.h, CURLOPT_WRITEDATA, &w);
    curl_easy_setopt(w.h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(w.h, CURLOPT_XFERINFOFUNCTION, on_watch_tick);
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old); /* no SA_RESTART: curl's poll wakes up */
    CURLcode rc = curl_easy_perform(w.h);
    int ret = EXIT_FAILED;
    if (interrupted) {
        if (w.drawn)
            printf("\r\033[K%s\n", w.shown); /* the line again, without the echoed ^C */
        fflush(stdout);
        fail("watch interrupted: the job goes on; \"migctl watch %s\" to follow it again", uuid);
        ret = 128 + SIGINT;
    } else {
        if (w.drawn)
            putchar('\n');
        if (w.status == 0)
            curl_easy_getinfo(w.h, CURLINFO_RESPONSE_CODE, &w.status);
        if (rc != CURLE_OK && (w.status < 200 || w.status >= 300)) {
            report_curl_error(w.h, rc, errbuf);
        } else if (w.status < 200 || w.status >= 300) {
            json_t *body = w.err.data != NULL ? json_loadb(w.err.data, w.err.len, 0, NULL) : NULL;
            report_api_error(w.status, body);
            json_decref(body);
        } else {
            ret = watch_verdict(&w);
        }
    }
    fflush(stdout);
    json_decref(w.last);
    json_decref(w.printed);
    free(w.line.data);
    free(w.err.data);
    curl_easy_cleanup(w.h);
    if (interrupted) {
        /* End as the signal would have, so that a calling shell stops too. */
        curl_global_cleanup();
        signal(SIGINT, SIG_DFL);
        raise(SIGINT);
    }
    sigaction(SIGINT, &old, NULL);
    return ret;
}

/* ---- commands ---- */

enum { OPT_CLEANUP_SOURCE = 256, OPT_TRANSFER, OPT_LIMIT };

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

static int cmd_migrate(int argc, char **argv)
{
    static const struct opt table[] = {OPT_HELP,
                                       {'i', 'i', NULL, false},
                                       {'a', 'a', NULL, false},
                                       {'n', 'n', NULL, false},
                                       {'D', 'D', NULL, false},
                                       {'w', 'w', NULL, false},
                                       {'j', 'j', NULL, false},
                                       {OPT_CLEANUP_SOURCE, 0, "cleanup-source", false},
                                       {OPT_TRANSFER, 0, "transfer", true},
                                       {OPT_LIMIT, 0, "limit", true},
                                       OPT_END};
    const char *mode = "full", *transfer = NULL;
    bool dry = false, older = false, watch = false, cleanup = false, json = false;
    long limit = -1;
    struct opts o;
    int ch, ret = EXIT_USAGE;
    opts_init(&o, argc, argv, table);
    while ((ch = opt_next(&o)) > 0) {
        switch (ch) {
        case 'h':
            opts_free(&o);
            return print_help();
        case 'i':
        case 'a':
            if (strcmp(mode, "full") != 0) {
                usage_error("-i and -a exclude each other");
                goto out;
            }
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
        case 'j':
            json = true;
            break;
        case OPT_CLEANUP_SOURCE:
            cleanup = true;
            break;
        case OPT_TRANSFER:
            if (strcmp(o.arg, "relay") != 0 && strcmp(o.arg, "direct") != 0) {
                usage_error("--transfer is relay or direct, not \"%s\"", o.arg);
                goto out;
            }
            transfer = o.arg;
            break;
        case OPT_LIMIT:
            if (parse_limit(o.arg, &limit) != 0) {
                usage_error("--limit takes Mbit/s from 0 (no cap) to 1000000, not \"%s\"", o.arg);
                goto out;
            }
            break;
        }
    }
    if (ch < 0)
        goto out;
    if (o.noperands == 0) {
        usage_error("missing VM");
        goto out;
    }
    if (o.noperands > 2) {
        usage_error("unexpected argument \"%s\"", o.operands[2]);
        goto out;
    }
    if (json && watch && !dry) {
        usage_error("-j and -w exclude each other");
        goto out;
    }
    const char *vm = o.operands[0], *target = o.noperands > 1 ? o.operands[1] : NULL;
    json_t *body = json_pack("{s:s, s:s, s:b, s:b, s:b}", "vm_uuid", vm, "mode", mode, "dry_run",
                             dry, "allow_older_platform", older, "cleanup_source", cleanup);
    if (target != NULL)
        json_object_set_new(body, "target", json_string(target));
    /* Sent only when given: migd's configuration decides otherwise. */
    if (transfer != NULL)
        json_object_set_new(body, "transfer", json_string(transfer));
    if (limit >= 0)
        json_object_set_new(body, "limit_mbps", json_integer(limit));
    json_t *resp = NULL;
    ret = api_call("POST", "/jobs", body, &resp);
    if (ret != EXIT_OK) {
        json_decref(body);
        goto out;
    }
    if (json) {
        print_json(resp, false);
        json_decref(resp);
        json_decref(body);
        goto out;
    }
    if (dry) {
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
        printf("dry run: %s can be migrated; nothing was changed\n",
               alias != NULL && alias[0] != '\0' ? alias
               : vmu != NULL                     ? vmu
                                                 : "the VM");
        out_plan(stdout, esc);
        json_decref(esc);
        json_decref(resp);
        json_decref(body);
        goto out;
    }
    json_decref(body);
    json_t *esc = out_escaped(resp);
    const char *uuid = json_string_value(json_object_get(esc, "uuid"));
    if (uuid == NULL) {
        fail("migd accepted the job but did not name it");
        json_decref(esc);
        json_decref(resp);
        ret = EXIT_FAILED;
        goto out;
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
    char *job = mig_strdup(uuid);
    json_decref(esc);
    json_decref(resp);
    ret = watch ? watch_job(job) : EXIT_OK;
    free(job);
out:
    opts_free(&o);
    return ret;
}

static int cmd_list(int argc, char **argv)
{
    static const struct opt table[] = {OPT_HELP,
                                       {'a', 'a', NULL, false},
                                       {'l', 'l', NULL, false},
                                       {'H', 'H', NULL, false},
                                       {'p', 'p', NULL, false},
                                       {'j', 'j', NULL, false},
                                       {'o', 'o', NULL, true},
                                       {'s', 's', NULL, true},
                                       OPT_END};
    const char *fields = NULL, *sort = NULL;
    bool all = false, lng = false, header = true, json = false, parsable = false;
    struct opts o;
    int ch, ret = EXIT_USAGE;
    opts_init(&o, argc, argv, table);
    while ((ch = opt_next(&o)) > 0) {
        switch (ch) {
        case 'h':
            opts_free(&o);
            return print_help();
        case 'a':
            all = true;
            break;
        case 'l':
            lng = true;
            break;
        case 'H':
            header = false;
            break;
        case 'o':
            fields = o.arg;
            break;
        case 's':
            sort = o.arg;
            break;
        case 'j':
            json = true;
            break;
        case 'p':
            parsable = true;
            break;
        }
    }
    if (ch < 0)
        goto out;
    if (json && parsable) {
        usage_error("-j and -p exclude each other");
        goto out;
    }
    const char *shown = fields != NULL ? fields : lng ? LIST_LONG_FIELDS : LIST_DEFAULT_FIELDS;
    char err[1536];
    if (out_list_check(shown, sort, o.operands, o.noperands, err, sizeof(err)) != 0) {
        usage_error("%s", err);
        goto out;
    }
    /* A state filter finds finished jobs too: migd lists every job in that state. */
    const char *state = out_filter_state(o.operands, o.noperands);
    char *query =
        state != NULL ? mig_asprintf("?state=%s", state) : mig_strdup(all ? "?all=true" : "");
    json_t *jobs = NULL;
    ret = fetch_jobs(query, &jobs);
    free(query);
    if (ret != EXIT_OK)
        goto out;
    json_t *kept = json_array();
    size_t i;
    json_t *job;
    json_array_foreach(jobs, i, job)
    {
        if (out_match(job, o.operands, o.noperands))
            json_array_append(kept, job);
    }
    json_decref(jobs);
    if (json) {
        out_sort(kept, sort);
        json_array_foreach(kept, i, job)
        {
            json_t *one = fields != NULL ? out_project(job, fields) : json_incref(job);
            print_json(one, true);
            json_decref(one);
        }
    } else {
        json_t *esc = out_escaped(kept);
        struct out_table_opts opts = {shown, sort, header, parsable,
                                      fields == NULL && !lng ? LIST_WIDTH : 0};
        if (out_table(stdout, esc, &opts, err, sizeof(err)) != 0)
            ret = usage_error("%s", err);
        json_decref(esc);
    }
    json_decref(kept);
out:
    opts_free(&o);
    return ret;
}

static int cmd_show(int argc, char **argv)
{
    static const struct opt table[] = {
        OPT_HELP, {'j', 'j', NULL, false}, {'v', 'v', NULL, false}, OPT_END};
    bool json = false, verbose = false;
    struct opts o;
    int ch, ret = EXIT_USAGE;
    opts_init(&o, argc, argv, table);
    while ((ch = opt_next(&o)) > 0) {
        if (ch == 'h') {
            opts_free(&o);
            return print_help();
        }
        if (ch == 'j')
            json = true;
        else if (ch == 'v')
            verbose = true;
    }
    json_t *job = NULL, *actions = NULL;
    if (ch < 0 || (ret = job_operand(&o, &job)) != EXIT_OK)
        goto out;
    const char *uuid = job_uuid(job);
    if (uuid == NULL) {
        ret = EXIT_FAILED;
        goto out;
    }
    if (verbose) {
        char *path = mig_asprintf("/jobs/%s/actions", uuid);
        json_t *resp = NULL;
        ret = api_call("GET", path, NULL, &resp);
        free(path);
        if (ret != EXIT_OK)
            goto out;
        actions = json_incref(json_object_get(resp, "actions"));
        json_decref(resp);
    }
    if (json) {
        if (actions != NULL)
            json_object_set(job, "actions", actions);
        print_json(job, false);
    } else {
        json_t *esc = out_escaped(job);
        out_job_summary(stdout, esc);
        json_decref(esc);
        if (actions != NULL) {
            esc = out_escaped(actions);
            out_actions(stdout, esc);
            json_decref(esc);
        }
    }
out:
    json_decref(actions);
    json_decref(job);
    opts_free(&o);
    return ret;
}

/*
 * Parses "[-h] JOB" and resolves JOB (watch and the actions).  Returns as
 * resolve_job, or -1 once the help was printed.
 */
static int parse_job_only(int argc, char **argv, json_t **job)
{
    static const struct opt table[] = {OPT_HELP, OPT_END};
    struct opts o;
    int ch, ret = EXIT_USAGE;
    bool help = false;
    opts_init(&o, argc, argv, table);
    while ((ch = opt_next(&o)) > 0)
        help = true; /* -h is the only option */
    if (help && ch == 0) {
        print_help();
        ret = -1;
    } else if (ch == 0) {
        ret = job_operand(&o, job);
    }
    opts_free(&o);
    return ret;
}

static int cmd_watch(int argc, char **argv)
{
    json_t *job = NULL;
    int ret = parse_job_only(argc, argv, &job);
    if (ret == EXIT_OK) {
        char *uuid = mig_strdup(job_uuid(job));
        ret = uuid != NULL ? watch_job(uuid) : EXIT_FAILED;
        free(uuid);
    }
    json_decref(job);
    return ret < 0 ? EXIT_OK : ret;
}

/* finish, abort, rollback, cleanup: the action is the command's name. */
static int cmd_action(int argc, char **argv)
{
    json_t *job = NULL;
    int ret = parse_job_only(argc, argv, &job);
    if (ret != EXIT_OK)
        return ret < 0 ? EXIT_OK : ret;
    const char *uuid = job_uuid(job);
    if (uuid == NULL) {
        json_decref(job);
        return EXIT_FAILED;
    }
    char *path = mig_asprintf("/jobs/%s?action=%s", uuid, current->name);
    json_t *resp = NULL;
    ret = api_call("POST", path, NULL, &resp);
    free(path);
    if (ret == EXIT_OK) {
        char *msg = out_escape(json_string_value(json_object_get(resp, "message")));
        if (msg != NULL && msg[0] != '\0')
            printf("%s\n", msg); /* migd's sentence names the job */
        else
            printf("job %s: %s requested\n", uuid, current->name);
        free(msg);
        json_decref(resp);
    }
    json_decref(job);
    return ret;
}

/* bunyan's levels. */
static const struct {
    const char *name;
    int level;
} levels[] = {{"trace", 10}, {"debug", 20}, {"info", 30},
              {"warn", 40},  {"error", 50}, {"fatal", 60}};
enum { NLEVELS = sizeof(levels) / sizeof(levels[0]) };

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

static int cmd_log(int argc, char **argv)
{
    static const struct opt table[] = {
        OPT_HELP, {'j', 'j', NULL, false}, {'l', 'l', NULL, true}, OPT_END};
    bool json = false;
    int min = 30; /* info */
    struct opts o;
    int ch, ret = EXIT_USAGE;
    json_t *job = NULL, *resp = NULL;
    opts_init(&o, argc, argv, table);
    while ((ch = opt_next(&o)) > 0) {
        if (ch == 'h') {
            opts_free(&o);
            return print_help();
        }
        if (ch == 'j') {
            json = true;
        } else if (ch == 'l') {
            int i = 0;
            while (i < NLEVELS && strcasecmp(o.arg, levels[i].name) != 0)
                i++;
            if (i == NLEVELS) {
                usage_error("unknown level \"%s\" for -l; valid levels: trace, debug, info, warn, "
                            "error, fatal",
                            o.arg);
                goto out;
            }
            min = levels[i].level;
        }
    }
    if (ch < 0 || (ret = job_operand(&o, &job)) != EXIT_OK)
        goto out;
    const char *uuid = job_uuid(job);
    if (uuid == NULL) {
        ret = EXIT_FAILED;
        goto out;
    }
    char *path = mig_asprintf("/jobs/%s/log", uuid);
    ret = api_call("GET", path, NULL, &resp);
    free(path);
    if (ret != EXIT_OK)
        goto out;
    size_t i;
    json_t *rec;
    json_array_foreach(json_object_get(resp, "log"), i, rec)
    {
        json_int_t level = json_integer_value(json_object_get(rec, "level"));
        if (level < min)
            continue;
        if (json) {
            print_json(rec, true);
            continue;
        }
        json_t *esc = out_escaped(rec);
        const char *t = json_string_value(json_object_get(esc, "time"));
        const char *m = json_string_value(json_object_get(esc, "msg"));
        printf("%s %-5s %s", t != NULL ? t : "-", level_name(level), m != NULL ? m : "");
        const char *key;
        json_t *v;
        json_object_foreach(esc, key, v)
        {
            if (log_known_key(key))
                continue;
            char *s = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            printf(" %s=%s", key, s != NULL ? s : json_string_value(v));
            free(s);
        }
        putchar('\n');
        json_decref(esc);
    }
out:
    json_decref(resp);
    json_decref(job);
    opts_free(&o);
    return ret;
}

static int cmd_status(int argc, char **argv)
{
    static const struct opt table[] = {OPT_HELP, {'j', 'j', NULL, false}, OPT_END};
    bool json = false;
    struct opts o;
    int ch;
    opts_init(&o, argc, argv, table);
    while ((ch = opt_next(&o)) > 0) {
        if (ch == 'h') {
            opts_free(&o);
            return print_help();
        }
        json = true;
    }
    if (ch == 0 && o.noperands > 0)
        usage_error("unexpected argument \"%s\"", o.operands[0]);
    bool bad = ch != 0 || o.noperands > 0;
    opts_free(&o);
    if (bad)
        return EXIT_USAGE;
    json_t *ping = NULL;
    int ret = api_call("GET", "/ping", NULL, &ping);
    if (ret != EXIT_OK)
        return ret;
    if (json) {
        print_json(ping, false);
    } else {
        json_t *esc = out_escaped(ping);
        json_int_t up = json_integer_value(json_object_get(esc, "uptime_s"));
        const char *v = json_string_value(json_object_get(esc, "version"));
        printf("migd %s, pid %lld, up %lldd %lldh %lldm, socket %s\n", v != NULL ? v : "?",
               (long long)json_integer_value(json_object_get(esc, "pid")), (long long)(up / 86400),
               (long long)(up % 86400 / 3600), (long long)(up % 3600 / 60), socket_path);
        printf("jobs:");
        const char *state;
        json_t *n;
        bool first = true;
        json_object_foreach(json_object_get(esc, "jobs"), state, n)
        {
            printf("%s %s %lld", first ? "" : ",", state, (long long)json_integer_value(n));
            first = false;
        }
        putchar('\n');
        json_int_t bad = json_integer_value(json_object_get(esc, "unreadable"));
        if (bad > 0)
            printf("%lld job record%s cannot be read: see \"migctl list -a\" and migd's log\n",
                   (long long)bad, bad == 1 ? "" : "s");
        json_decref(esc);
    }
    json_decref(ping);
    return EXIT_OK;
}

enum { OPT_TO = 300, OPT_MAX_PARALLEL, OPT_NO_RESERVE };

/*
 * An evacuation's exit status for cron: 0 nothing needs a human (done, or
 * progressing, or a plan where everything can move), 1 something failed or
 * stays.
 */
static int evacuation_status(json_t *ev)
{
    const char *state = json_string_value(json_object_get(ev, "state"));
    if (state != NULL && strcmp(state, "failed") == 0)
        return EXIT_FAILED;
    return json_array_size(json_object_get(ev, "attention")) > 0 ? EXIT_FAILED : EXIT_OK;
}

static int cmd_evacuate(int argc, char **argv)
{
    static const struct opt table[] = {OPT_HELP,
                                       {'n', 'n', NULL, false},
                                       {'i', 'i', NULL, false},
                                       {'a', 'a', NULL, false},
                                       {'j', 'j', NULL, false},
                                       {OPT_TO, 0, "to", true},
                                       {OPT_MAX_PARALLEL, 0, "max-parallel", true},
                                       {OPT_NO_RESERVE, 0, "no-reserve", false},
                                       OPT_END};
    const char *mode = "full";
    bool dry = false, json = false, no_reserve = false;
    long parallel = -1;
    json_t *to = NULL;
    struct opts o;
    int ch, ret = EXIT_USAGE;
    opts_init(&o, argc, argv, table);
    while ((ch = opt_next(&o)) > 0) {
        switch (ch) {
        case 'h':
            opts_free(&o);
            json_decref(to);
            return print_help();
        case 'i':
        case 'a':
            if (strcmp(mode, "full") != 0) {
                usage_error("-i and -a exclude each other");
                goto out;
            }
            mode = ch == 'i' ? "incremental" : "auto";
            break;
        case 'n':
            dry = true;
            break;
        case 'j':
            json = true;
            break;
        case OPT_NO_RESERVE:
            no_reserve = true;
            break;
        case OPT_MAX_PARALLEL: {
            char *end = NULL;
            parallel = strtol(o.arg, &end, 10);
            if (o.arg[0] == '\0' || *end != '\0' || parallel < 1 || parallel > 1000) {
                usage_error("--max-parallel takes 1 to 1000 jobs at once, not \"%s\"", o.arg);
                goto out;
            }
            break;
        }
        case OPT_TO: {
            json_decref(to);
            to = json_array();
            char *list = mig_strdup(o.arg), *save = NULL;
            for (char *cn = strtok_r(list, ",", &save); cn != NULL; cn = strtok_r(NULL, ",", &save))
                json_array_append_new(to, json_string(cn));
            free(list);
            if (json_array_size(to) == 0) {
                usage_error("--to takes CN[,CN...], not \"%s\"", o.arg);
                goto out;
            }
            break;
        }
        }
    }
    if (ch < 0)
        goto out;
    if (o.noperands != 1) {
        if (o.noperands == 0)
            usage_error("missing CN");
        else
            usage_error("unexpected argument \"%s\"", o.operands[1]);
        goto out;
    }
    json_t *body = json_pack("{s:s, s:s, s:b, s:b}", "server", o.operands[0], "mode", mode,
                             "dry_run", dry, "no_reserve", no_reserve);
    if (to != NULL)
        json_object_set(body, "to", to);
    if (parallel > 0)
        json_object_set_new(body, "max_parallel", json_integer(parallel));
    json_t *resp = NULL;
    ret = api_call("POST", "/evacuations", body, &resp);
    json_decref(body);
    if (ret != EXIT_OK)
        goto out;
    if (json) {
        print_json(resp, false);
    } else {
        json_t *esc = out_escaped(resp);
        out_evacuation(stdout, esc);
        json_decref(esc);
    }
    ret = evacuation_status(resp);
    json_decref(resp);
out:
    json_decref(to);
    opts_free(&o);
    return ret;
}

static int cmd_estimate(int argc, char **argv)
{
    static const struct opt table[] = {OPT_HELP, {'j', 'j', NULL, false}, OPT_END};
    bool json = false;
    struct opts o;
    int ch, ret = EXIT_USAGE;
    opts_init(&o, argc, argv, table);
    while ((ch = opt_next(&o)) > 0) {
        if (ch == 'h') {
            opts_free(&o);
            return print_help();
        }
        json = true;
    }
    if (ch < 0)
        goto out;
    if (o.noperands != 1) {
        if (o.noperands == 0)
            usage_error("missing VM or CN");
        else
            usage_error("unexpected argument \"%s\"", o.operands[1]);
        goto out;
    }
    char *what = curl_easy_escape(NULL, o.operands[0], 0);
    char path[512];
    snprintf(path, sizeof(path), "/estimate?of=%s", what != NULL ? what : "");
    curl_free(what);
    json_t *resp = NULL;
    ret = api_call("GET", path, NULL, &resp);
    if (ret != EXIT_OK)
        goto out;
    if (json) {
        print_json(resp, false);
    } else {
        json_t *esc = out_escaped(resp);
        out_evacuation(stdout, esc);
        json_decref(esc);
    }
    json_decref(resp);
out:
    opts_free(&o);
    return ret;
}

static const struct command commands[] = {
    {"migrate", cmd_migrate,
     "migrate [-i | -a] [-n] [-D] [-w] [-j] [--cleanup-source] [--transfer relay|direct] "
     "[--limit MBITS] VM [TARGET_CN]",
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
    {"cleanup", cmd_action, "cleanup JOB", "Deletes the source copy of a switched job.\n" JOB_HELP},
    {"log", cmd_log, "log [-l LEVEL] [-j] JOB",
     "Prints the job's log records at LEVEL or above: time, level, message.\n"
     "  -l LEVEL  trace, debug, info (the default), warn, error or fatal\n"
     "  -j        the records as JSON, one per line\n" JOB_HELP},
    {"evacuate", cmd_evacuate,
     "evacuate [-n] [-i | -a] [-j] [--to CN[,CN...]] [--max-parallel N] [--no-reserve] CN",
     "Empties CN (a server UUID or hostname): marks it reserved in CNAPI, plans a\n"
     "target for every eligible VM on it, queues one job per VM that has none, and\n"
     "prints the plan: each VM's size, target and estimated time, or why it stays\n"
     "(core and NAT zones, no target with room or with its NIC tags), and the\n"
     "window.  Run again (from cron), it queues nothing twice and prints the\n"
     "progress; once the evacuation ended with nothing new to move, its report.\n"
     "  -n                  the plan only: nothing queued, nothing reserved\n"
     "  -i | -a             incremental or automatic incremental jobs\n"
     "  -j                  the evacuation as JSON\n"
     "  --to CN[,CN...]     only these targets\n"
     "  --max-parallel N    at most N of its jobs at once (default: limits.max_active_jobs)\n"
     "  --no-reserve        leave the CN open to new VMs\n"
     "Exit status: 0 nothing needs a human (done or progressing), 1 a VM failed or\n"
     "stays (the lines under \"needs attention\" say which and why), 2 bad usage.\n"},
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
        curl_global_init(CURL_GLOBAL_DEFAULT);
        int ret = commands[i].run(argc - 1, argv + 1);
        curl_global_cleanup();
        return ret;
    }
    fail("unknown command \"%s\"; run \"migctl -h\" for usage", name);
    return EXIT_USAGE;
}
