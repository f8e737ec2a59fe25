/*
 * opts.c: migctl's reading of a command's words: the option tables, the
 * operands, the usage errors that name the command, its -h, and the
 * options migrate and evacuate share (see opts.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migctl.h"
#include "opts.h"
#include "output.h"
#include "util.h"
#include "window.h"

/* The command being run, for its usage lines and -h. */
static struct {
    const char *name, *usage, *help;
} opts_current;

void opts_set_command(const char *name, const char *usage, const char *help)
{
    opts_current.name = name;
    opts_current.usage = usage;
    opts_current.help = help;
}

const char *opts_command_name(void)
{
    return opts_current.name;
}

int opts_usage_error(const char *fmt, ...)
{
    char what[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (opts_current.name != NULL)
        out_fail("%s: %s; usage: migctl %s", opts_current.name, what, opts_current.usage);
    else
        out_fail("%s; run \"migctl -h\" for usage", what);
    return EXIT_USAGE;
}

int opts_help(void)
{
    printf("usage: migctl %s\n\n%s", opts_current.usage, opts_current.help);
    return EXIT_OK;
}

void opts_init(struct opts *o, int argc, char **argv, const struct opts_spec *table)
{
    memset(o, 0, sizeof(*o));
    o->argc = argc;
    o->argv = argv;
    o->table = table;
    o->next = 1; /* argv[0] is the command's name */
    o->operands = mig_calloc((size_t)argc + 1, sizeof(*o->operands));
}

void opts_free(struct opts *o)
{
    free(o->operands);
}

/* A long option the word names only in part: for "did you mean". */
static const struct opts_spec *long_prefix_of(const struct opts_spec *table, const char *name,
                                              size_t n)
{
    for (const struct opts_spec *t = table; t->key != 0; t++)
        if (t->name != NULL && strncmp(t->name, name, n) == 0)
            return t;
    return NULL;
}

/* The next short option of the cluster under way: as opts_next. */
static int next_short(struct opts *o)
{
    char c = *o->cluster++;
    const struct opts_spec *t = o->table;
    while (t->key != 0 && t->letter != c)
        t++;
    if (t->key == 0) {
        opts_usage_error("unknown option -%c", c);
        return -1;
    }
    if (t->has_arg) {
        if (*o->cluster != '\0') {
            o->arg = o->cluster;
        } else if (o->next < o->argc) {
            o->arg = o->argv[o->next++];
        } else {
            opts_usage_error("option -%c needs an argument", c);
            return -1;
        }
        o->cluster = NULL;
    }
    return t->key;
}

/* The long option of word w ("--name" or "--name=value"): as opts_next. */
static int next_long(struct opts *o, const char *w)
{
    const char *name = w + 2, *eq = strchr(name, '=');
    size_t n = eq != NULL ? (size_t)(eq - name) : strlen(name);
    const struct opts_spec *t = o->table;
    while (t->key != 0 &&
           (t->name == NULL || strlen(t->name) != n || strncmp(t->name, name, n) != 0))
        t++;
    if (t->key == 0) {
        const struct opts_spec *near = n > 0 ? long_prefix_of(o->table, name, n) : NULL;
        if (near != NULL)
            opts_usage_error("unknown option --%.*s (did you mean --%s?)", (int)n, name,
                             near->name);
        else
            opts_usage_error("unknown option --%.*s", (int)n, name);
        return -1;
    }
    if (!t->has_arg && eq != NULL) {
        opts_usage_error("option --%s takes no value", t->name);
        return -1;
    }
    if (t->has_arg) {
        if (eq != NULL) {
            o->arg = eq + 1;
        } else if (o->next < o->argc) {
            o->arg = o->argv[o->next++];
        } else {
            opts_usage_error("option --%s needs an argument", t->name);
            return -1;
        }
    }
    return t->key;
}

int opts_next(struct opts *o)
{
    o->arg = NULL;
    for (;;) {
        if (o->cluster != NULL && *o->cluster != '\0')
            return next_short(o);
        o->cluster = NULL;
        if (o->next >= o->argc)
            return 0;
        char *w = o->argv[o->next++];
        if (o->only_operands || w[0] != '-' || w[1] == '\0')
            o->operands[o->noperands++] = w;
        else if (w[1] != '-')
            o->cluster = w + 1;
        else if (w[2] == '\0')
            o->only_operands = true;
        else
            return next_long(o, w);
    }
}

int opts_operands(const struct opts *o, int min, int max, const char *what)
{
    if (o->noperands < min)
        return opts_usage_error("missing %s", what);
    if (o->noperands > max)
        return opts_usage_error("unexpected argument \"%s\"", o->operands[max]);
    return EXIT_OK;
}

/* Takes key into j: 1 when it is one of OPTS_JOBS, 0 when not, -1 after a usage error. */
static int jobs_take(struct opts_jobs *j, int key)
{
    switch (key) {
    case 'i':
    case 'a':
        if (strcmp(j->mode, "full") != 0) {
            opts_usage_error("-i and -a exclude each other");
            return -1;
        }
        j->mode = key == 'i' ? "incremental" : "auto";
        return 1;
    case 'n':
        j->dry = true;
        return 1;
    case 'j':
        j->json = true;
        return 1;
    default:
        return 0;
    }
}

int opts_read(struct opts *o, int (*on_option)(void *ctx, int key, const char *arg), void *ctx,
              int min, int max, const char *what)
{
    int key;
    while ((key = opts_next(o)) > 0) {
        if (key == 'h') {
            opts_help();
            return 1;
        }
        if (on_option(ctx, key, o->arg) != 0)
            return -1;
    }
    return key < 0 || opts_operands(o, min, max, what) != EXIT_OK ? -1 : 0;
}

int opts_on_json(void *ctx, int key, const char *arg)
{
    (void)key;
    (void)arg;
    *(bool *)ctx = true;
    return 0;
}

/* What opts_read_jobs hands opts_read: OPTS_JOBS' flags, then the command's own options. */
struct jobs_reading {
    struct opts_jobs *j;
    int (*on_option)(void *ctx, int key, const char *arg);
    void *ctx;
};

/* OPTS_JOBS' keys into r->j, the others to the command's on_option: as on_option. */
static int on_jobs_option(void *ctx, int key, const char *arg)
{
    struct jobs_reading *r = ctx;
    int took = jobs_take(r->j, key);
    if (took != 0)
        return took > 0 ? 0 : -1;
    return r->on_option(r->ctx, key, arg);
}

int opts_read_jobs(struct opts *o, struct opts_jobs *j,
                   int (*on_option)(void *ctx, int key, const char *arg), void *ctx, int min,
                   int max, const char *what)
{
    struct jobs_reading r = {j, on_option, ctx};
    return opts_read(o, on_jobs_option, &r, min, max, what);
}

int opts_window(const char *arg, const char **out)
{
    struct mig_window w;
    char why[160];
    if (mig_window_parse(arg, &w, why, sizeof(why)) != 0) {
        opts_usage_error("--window \"%s\": %s", arg, why);
        return -1;
    }
    *out = arg;
    return 0;
}

int opts_cleanup_after(const char *arg, int64_t *out)
{
    if (mig_duration_parse(arg, 366LL * 86400, out) != 0) {
        opts_usage_error("--cleanup-after takes a duration up to 366d (90m, 24h, 7d; 0: only "
                         "by hand), not \"%s\"", arg);
        return -1;
    }
    return 0;
}
