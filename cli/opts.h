/*
 * opts.h: how a migctl command reads its words: the options of its table
 * and its operands, the usage errors that name the command being run, its
 * -h, and the options migrate and evacuate share (how their jobs move).
 */
#ifndef MIGCTL_OPTS_H
#define MIGCTL_OPTS_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Sets the command being run (strings borrowed, kept for the run): its
 * name, its usage after "migctl " and its help.  Usage errors and -h
 * speak of it.
 */
void opts_set_command(const char *name, const char *usage, const char *help);
/* The name of the command being run (NULL before opts_set_command). */
const char *opts_command_name(void);

/*
 * One line on stderr: what is wrong (fmt formatted), then the command's
 * usage.  Returns EXIT_USAGE.
 */
int opts_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * --window's HH:MM-HH:MM[,TZ], checked as migd will: 0 with arg (borrowed)
 * in *out, or -1 after a usage error (*out untouched).
 */
int opts_window(const char *arg, const char **out);
/*
 * --cleanup-after's DURATION (migrate and evacuate take the same, up to
 * 366d): 0 with its seconds in *out, or -1 after a usage error.
 */
int opts_cleanup_after(const char *arg, int64_t *out);
/* Prints the command's usage and help on stdout.  Returns EXIT_OK. */
int opts_help(void);

/*
 * One option of a command's table.  Short options may be clustered ("-in")
 * and take their argument attached ("-ouuid") or as the next word; long
 * options match their whole name, never a prefix, and take their argument
 * after '=' or as the next word; "--" ends the options.  Options and
 * operands may come in any order.
 */
struct opts_spec {
    int key;          /* what opts_next returns: the letter, or a code above 255 */
    char letter;      /* the short form, or 0 */
    const char *name; /* the long form without "--", or NULL */
    bool has_arg;
};

/* Every command's first entry: -h, --help. */
#define OPTS_HELP                                                                                  \
    {                                                                                              \
        'h', 'h', "help", false                                                                    \
    }
/* What ends a table. */
#define OPTS_END                                                                                   \
    {                                                                                              \
        0, 0, NULL, false                                                                          \
    }

/* Reading one command's words. */
struct opts {
    int argc;
    char **argv;
    const struct opts_spec *table;
    int next;            /* the next word of argv */
    const char *cluster; /* the rest of a cluster of short options */
    bool only_operands;  /* after "--" */
    const char *arg;     /* the argument of the option just returned */
    char **operands;     /* the words that are not options, in order */
    int noperands;
};

/*
 * Starts reading argv (argv[0] is the command's name) against table (an
 * array ended by OPTS_END, borrowed).  opts_free releases what it takes.
 */
void opts_init(struct opts *o, int argc, char **argv, const struct opts_spec *table);
void opts_free(struct opts *o);

/*
 * The next option's key (its argument in o->arg), 0 once every word was
 * read (the operands are then in o->operands), or -1 after a usage error
 * was reported.
 */
int opts_next(struct opts *o);

/*
 * Checks that the command got min to max operands.  Returns EXIT_OK, or
 * EXIT_USAGE after "missing WHAT" or "unexpected argument" was reported.
 */
int opts_operands(const struct opts *o, int min, int max, const char *what);

/*
 * Reads the rest of a command's words: -h prints the help at once, every
 * other option goes to on_option(ctx, key, its argument or NULL), which
 * returns 0 or -1 after reporting a usage error; then checks that there
 * are min to max operands (what: the one missing).  Returns 0, -1 after a
 * usage error was reported, or 1 once -h printed the help.
 */
int opts_read(struct opts *o, int (*on_option)(void *ctx, int key, const char *arg), void *ctx,
              int min, int max, const char *what);

/*
 * opts_read's on_option for a command whose one option is -j (status,
 * estimate, pause, resume): sets the bool at ctx.  Returns 0.
 */
int opts_on_json(void *ctx, int key, const char *arg);

/* The options of migrate and evacuate that say how their jobs move: -i, -a, -n, -j. */
#define OPTS_JOBS                                                                                  \
    {'i', 'i', NULL, false}, {'a', 'a', NULL, false}, {'n', 'n', NULL, false},                     \
    {                                                                                              \
        'j', 'j', NULL, false                                                                      \
    }

/* What OPTS_JOBS set; start from {.mode = "full"}. */
struct opts_jobs {
    const char *mode; /* "full", "incremental" (-i) or "auto" (-a) */
    bool dry;         /* -n: the plan only */
    bool json;        /* -j: migd's answer as JSON */
};

/*
 * opts_read for a command whose table has OPTS_JOBS: those options go into
 * j, the others as opts_read says.  Returns as opts_read.
 */
int opts_read_jobs(struct opts *o, struct opts_jobs *j,
                   int (*on_option)(void *ctx, int key, const char *arg), void *ctx, int min,
                   int max, const char *what);

#endif
