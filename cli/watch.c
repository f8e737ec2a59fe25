/*
 * watch.c: migctl watch: follows a job's stream (GET /jobs/:uuid/watch,
 * one JSON job per line) and shows it: on a terminal one line redrawn in
 * place, otherwise stamped lines at each turn and at most one progress
 * line every 10 s; then the closing words and the exit status (see
 * watch.h).  The lines themselves are output.c's (out_progress_line,
 * out_round).
 */
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "migctl.h"
#include "output.h"
#include "util.h"
#include "watch.h"

/* The progress lines: at most one every this many ms when not on a terminal. */
enum { WATCH_PIPE_EVERY_MS = 10000 };

static volatile sig_atomic_t interrupted; /* SIGINT came */

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct watch_state {
    CURL *h;
    const char *uuid;
    struct client_buffer line; /* bytes after the last newline */
    struct client_buffer err;  /* the body of an error answer */
    json_t *last;              /* the last job seen, as migd sent it */
    json_t *printed;           /* the job when a line was last printed (not a terminal) */
    int64_t printed_ms;        /* when, on the monotonic clock */
    char shown[1024];          /* the line last printed or drawn */
    bool tty;
    bool drawn; /* a progress line is on the terminal */
    size_t cols;
    long status;
    size_t rounds; /* the rounds already told (one line each, also on a terminal) */
    char checks[1024]; /* the health checks' verdicts already told ("name=ok ...") */
    bool began;    /* the first event was seen */
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

/* True when state, phase, round, aborting or paused differ: a line of its own. */
static bool watch_turned(json_t *a, json_t *b)
{
    static const char *keys[] = {"state", "phase", "progress.increments", "aborting", "paused"};
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

/* Prints a line for each health check whose verdict changed, and the gate's end. */
static void watch_health(struct watch_state *w, json_t *job)
{
    json_t *health = json_object_get(job, "health");
    if (!json_is_object(health))
        return;
    json_t *esc = out_escaped(health);
    char now[1024];
    out_health_key(esc, now, sizeof(now));
    if (strcmp(now, w->checks) != 0) {
        char lines[2048];
        out_health_lines(esc, w->checks, lines, sizeof(lines));
        if (lines[0] != '\0') {
            if (w->tty && w->drawn) {
                printf("\r\033[K");
                w->drawn = false;
                w->shown[0] = '\0';
            }
            for (char *l = strtok(lines, "\n"); l != NULL; l = strtok(NULL, "\n")) {
                put_stamp(stdout);
                printf("%s\n", l);
            }
        }
        snprintf(w->checks, sizeof(w->checks), "%s", now);
    }
    json_decref(esc);
}

static void watch_show(struct watch_state *w, json_t *job)
{
    char line[1024];
    watch_rounds(w, job);
    watch_health(w, job);
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
        return client_on_body(ptr, size, nmemb, &w->err);
    if (client_on_body(ptr, size, nmemb, &w->line) != n)
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
        out_fail("job %s: the watch ended without news from migd", uuid);
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
        watch_say(w, "job %s is in sync: \"migctl finish %s\" switches it%s", uuid, uuid,
                  json_is_object(json_object_get(job, "window")) ? " inside its window" : "");
        ret = EXIT_OK;
    } else if (strcmp(state, "succeeded") == 0) {
        watch_say(w, "job %s succeeded: the VM runs on %s", uuid, dst != NULL ? dst : "the target");
        ret = EXIT_OK;
    } else if (strcmp(state, "queued") == 0 || strcmp(state, "running") == 0) {
        out_fail("job %s: the watch ended while the job is %s (did migd stop?)", uuid, state);
    } else {
        const char *code = json_string_value(out_get(job, "error.code"));
        const char *msg = json_string_value(out_get(job, "error.message"));
        const char *phase = json_string_value(out_get(job, "error.phase"));
        out_fail("job %s %s%s%s: %s%s%s", uuid, state, phase != NULL ? " in " : "",
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

/* The words once a Ctrl-C ended the watch: the line again, and that the job goes on. */
static int watch_interrupted(struct watch_state *w)
{
    if (w->drawn)
        printf("\r\033[K%s\n", w->shown); /* the line again, without the echoed ^C */
    fflush(stdout);
    out_fail("watch interrupted: the job goes on; \"migctl watch %s\" to follow it again", w->uuid);
    return 128 + SIGINT;
}

/* The words once the stream ended by itself (rc, errbuf: the transfer's); the exit status. */
static int watch_ended(struct watch_state *w, CURLcode rc, const char *errbuf)
{
    if (w->drawn)
        putchar('\n');
    if (w->status == 0)
        curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &w->status);
    bool ok = w->status >= 200 && w->status < 300;
    if (rc != CURLE_OK && !ok) {
        client_report_curl_error(w->h, rc, errbuf);
    } else if (!ok) {
        json_t *body = w->err.data != NULL ? json_loadb(w->err.data, w->err.len, 0, NULL) : NULL;
        client_report_api_error(w->status, body);
        json_decref(body);
    } else {
        return watch_verdict(w);
    }
    return EXIT_FAILED;
}

int watch_job(const char *uuid)
{
    char errbuf[CURL_ERROR_SIZE];
    char *path = mig_asprintf("/jobs/%s/watch", uuid);
    struct watch_state w = {.tty = isatty(STDOUT_FILENO) != 0, .uuid = uuid};
    if (w.tty)
        w.cols = terminal_cols();
    w.h = client_handle("GET", path, errbuf);
    free(path);
    curl_easy_setopt(w.h, CURLOPT_WRITEFUNCTION, on_watch_data);
    curl_easy_setopt(w.h, CURLOPT_WRITEDATA, &w);
    curl_easy_setopt(w.h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(w.h, CURLOPT_XFERINFOFUNCTION, on_watch_tick);
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old); /* no SA_RESTART: curl's poll wakes up */
    CURLcode rc = curl_easy_perform(w.h);
    int ret = interrupted ? watch_interrupted(&w) : watch_ended(&w, rc, errbuf);
    fflush(stdout);
    json_decref(w.last);
    json_decref(w.printed);
    free(w.line.data);
    free(w.err.data);
    curl_easy_cleanup(w.h);
    if (interrupted) {
        /* End as the signal would have, so that a calling shell stops too. */
        client_cleanup();
        signal(SIGINT, SIG_DFL);
        raise(SIGINT);
    }
    sigaction(SIGINT, &old, NULL);
    return ret;
}
