/*
 * cn_int.h: what the files of the CN command catalogue share (private to
 * lib/cn*.c; the rest of migd sees only cn.h).  cn.c: the builders and the
 * quoting and validation below; cn_direct.c: direct transfer's key, its
 * authorized_keys edits, the job's files and the direct send; cn_parse.c:
 * the parsers of the commands' output.
 */
#ifndef MIG_CN_INT_H
#define MIG_CN_INT_H

#include <stdbool.h>
#include <stddef.h>

#define CMD_MAX 16384 /* the direct key's line names up to 8 datasets */

/* A command line under construction; once bad, it stays bad. */
struct cmd {
    char buf[CMD_MAX];
    bool bad;
};

/* cn.c */

/* Appends literal text (our own words, never outside input), space-separated. */
void cn_cmd_lit(struct cmd *c, const char *words);
/* Appends a quoted argument when valid is true; marks the command bad otherwise. */
void cn_cmd_arg(struct cmd *c, const char *arg, bool valid);
/* Appends a quoted argument made of a format; the caller validated its parts. */
void cn_cmd_argf(struct cmd *c, bool valid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The finished command line (malloc'd), or NULL if any part was invalid. */
char *cn_cmd_done(struct cmd *c);

/* True when s is 1..max chars from the set allowed by ok(), without a leading '-' or "..". */
bool cn_token_valid(const char *s, size_t max, bool (*ok)(char));
/* [A-Za-z0-9] */
bool cn_alnum(char c);
/* A character of a ZFS property name: [A-Za-z0-9:@._-]. */
bool cn_prop_char(char c);
/* A character of a resume token: [0-9a-zA-Z-]. */
bool cn_token_char(char ch);
/* A pool name: a dataset name of one component. */
bool cn_pool_valid(const char *s);
/* A full snapshot name "pool/ds@snap", or the short "@snap" zfs send -I accepts. */
bool cn_from_snapshot_valid(const char *s);

#endif
