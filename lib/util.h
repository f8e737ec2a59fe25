/*
 * util.h: small pure helpers shared by every module: UUIDs, times, and the
 * strict patterns that every externally supplied name must match before it
 * may be placed in a remote command line.
 */
#ifndef MIG_UTIL_H
#define MIG_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIG_UUID_LEN 36

/* True when s is a canonical lowercase or uppercase 8-4-4-4-12 hex UUID. */
bool mig_uuid_valid(const char *s);
/* Writes a random version-4 UUID and a NUL into out. */
void mig_uuid_new(char out[MIG_UUID_LEN + 1]);

/* Milliseconds since the epoch, wall clock. */
int64_t mig_now_ms(void);
/* Formats ms since the epoch as ISO 8601 UTC with milliseconds ("...Z"). */
void mig_time_iso(int64_t ms, char out[32]);

/* A ZFS dataset name: pool/name components of [A-Za-z0-9_.:-], no "..". */
bool mig_dataset_valid(const char *s);
/* A snapshot short name (after '@'): [A-Za-z0-9_.:-], 1..200 chars. */
bool mig_snapname_valid(const char *s);
/* A hostname or IPv4 address: [A-Za-z0-9.-], 1..253 chars. */
bool mig_hostname_valid(const char *s);

/*
 * Appends s to dst (of size dstsz, NUL-terminated) quoted for a POSIX shell
 * with single quotes.  Returns 0 or -ENOSPC.
 */
int mig_shell_quote_append(char *dst, size_t dstsz, const char *s);

/*
 * Unlinks elm from the singly linked list whose head pointer is at headp,
 * chained through elm's member next; nothing when elm is not on it.  The
 * daemon's runs and the ssh pool's sessions are such lists, of many types:
 * one macro unlinks them all.
 */
#define MIG_LIST_UNLINK(headp, elm, next)                                                          \
    do {                                                                                           \
        for (__typeof__(elm) *pp_ = (headp); *pp_ != NULL; pp_ = &(*pp_)->next) {                  \
            if (*pp_ == (elm)) {                                                                   \
                *pp_ = (elm)->next;                                                                \
                break;                                                                             \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* Duplicates s (NULL gives NULL); aborts on allocation failure. */
char *mig_strdup(const char *s);
/* malloc/calloc that abort on failure: migd cannot continue without memory. */
void *mig_malloc(size_t n);
/* realloc that stops migd on out of memory (invariant.h), as mig_malloc. */
void *mig_realloc(void *p, size_t n);
void *mig_calloc(size_t n, size_t size);
/*
 * Room for one more item in the array p of *cap items of size bytes, n of
 * them in use: when it is full, *cap doubles (first when it was 0) and the
 * array is reallocated (mig_realloc).  Returns the array, perhaps moved.
 */
void *mig_grow(void *p, size_t n, size_t *cap, size_t first, size_t size);

/*
 * Formats a one-line message into the caller's error buffer err (errsz
 * bytes); does nothing when err is NULL or errsz is 0.
 */
void mig_errf(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* snprintf into a malloc'd string; aborts on allocation failure. */
char *mig_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Makes s valid UTF-8 in place (JSON strings must be): each byte that does
 * not begin a well-formed sequence becomes '?' (a cut multi-byte character,
 * Latin-1 text from a command's output).
 */
void mig_utf8_scrub(char *s);

/*
 * A duration as the CLI takes it: digits and an optional unit, s, m, h or d
 * ("90m", "24h", "7d"; plain digits are seconds), at most max_s seconds.
 * 0 and *out in seconds, or -EINVAL.
 */
int mig_duration_parse(const char *s, int64_t max_s, int64_t *out);

#endif
