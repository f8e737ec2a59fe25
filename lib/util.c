/* util.c: UUIDs, times, name patterns and shell quoting (see util.h). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

bool mig_uuid_valid(const char *s)
{
    if (s == NULL || strlen(s) != MIG_UUID_LEN)
        return false;
    for (int i = 0; i < MIG_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

void mig_uuid_new(char out[MIG_UUID_LEN + 1])
{
    unsigned char b[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    size_t got = 0;
    while (fd >= 0 && got < sizeof(b)) {
        ssize_t n = read(fd, b + got, sizeof(b) - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (fd >= 0)
        close(fd);
    if (got < sizeof(b)) {
        /* /dev/urandom unavailable: fall back to a time-seeded generator. */
        srandom((unsigned)time(NULL) ^ (unsigned)getpid());
        for (size_t i = 0; i < sizeof(b); i++)
            b[i] = (unsigned char)random();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    snprintf(out, MIG_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

int64_t mig_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mig_time_iso(int64_t ms, char out[32])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

static bool name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == ':' || c == '-';
}

bool mig_dataset_valid(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 255 || strstr(s, "..") != NULL)
        return false;
    bool component_start = true;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '/') {
            if (component_start)
                return false; /* empty component or leading slash */
            component_start = true;
            continue;
        }
        if (!name_char(*p) || (component_start && *p == '-'))
            return false;
        component_start = false;
    }
    return !component_start;
}

bool mig_snapname_valid(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 200 || *s == '-')
        return false;
    for (const char *p = s; *p != '\0'; p++)
        if (!name_char(*p))
            return false;
    return true;
}

bool mig_hostname_valid(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 253 || *s == '-' || *s == '.')
        return false;
    for (const char *p = s; *p != '\0'; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
            return false;
    return true;
}

int mig_shell_quote_append(char *dst, size_t dstsz, const char *s)
{
    size_t len = strlen(dst);
    /* Each ' becomes '\'' (4 chars); plus two quotes and the NUL. */
    size_t need = 3;
    for (const char *p = s; *p != '\0'; p++)
        need += (*p == '\'') ? 4 : 1;
    if (len + need > dstsz)
        return -ENOSPC;
    char *o = dst + len;
    *o++ = '\'';
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = *p;
        }
    }
    *o++ = '\'';
    *o = '\0';
    return 0;
}

/*
 * Out of memory: nothing sane is left to do.  util is the bottom layer
 * (log and invariant are built on it), so it says so on stderr itself,
 * where the log goes too, and stops as MIG_DIE does.
 */
__attribute__((noreturn)) static void out_of_memory(size_t n)
{
    fprintf(stderr, "migd: out of memory (%zu bytes); stopping (jobs resume from the journal)\n",
            n);
    abort();
}

void *mig_malloc(size_t n)
{
    void *p = malloc(n == 0 ? 1 : n);
    if (p == NULL)
        out_of_memory(n);
    return p;
}

void *mig_calloc(size_t n, size_t size)
{
    void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
    if (p == NULL)
        out_of_memory(n * size);
    return p;
}

void *mig_realloc(void *p, size_t n)
{
    void *grown = realloc(p, n == 0 ? 1 : n);
    if (grown == NULL)
        out_of_memory(n);
    return grown;
}

void *mig_grow(void *p, size_t n, size_t *cap, size_t first, size_t size)
{
    if (n < *cap)
        return p;
    *cap = *cap != 0 ? *cap * 2 : first;
    return mig_realloc(p, *cap * size);
}

char *mig_strdup(const char *s)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        out_of_memory(strlen(s) + 1);
    return d;
}

void mig_errf(char *err, size_t errsz, const char *fmt, ...)
{
    if (err == NULL || errsz == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

char *mig_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        /* A format this code wrote that the C library refuses: a bug, stop here. */
        fprintf(stderr, "migd: format \"%s\" cannot be printed; stopping\n", fmt);
        abort();
    }
    char *s = mig_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

int mig_duration_parse(const char *s, int64_t max_s, int64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -EINVAL;
    int64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
        if (v > max_s)
            return -EINVAL;
    }
    int64_t unit = 1;
    if (*p == 's')
        unit = 1;
    else if (*p == 'm')
        unit = 60;
    else if (*p == 'h')
        unit = 3600;
    else if (*p == 'd')
        unit = 86400;
    else if (*p != '\0')
        return -EINVAL;
    if (*p != '\0' && p[1] != '\0')
        return -EINVAL;
    if (v > max_s / unit)
        return -EINVAL;
    *out = v * unit;
    return 0;
}

void mig_utf8_scrub(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p != '\0') {
        size_t len = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3
                                   : (*p & 0xf8) == 0xf0 ? 4 : 0;
        bool ok = len > 0 && !(len == 2 && *p < 0xc2) && !(len == 4 && *p > 0xf4);
        for (size_t i = 1; ok && i < len; i++)
            ok = (p[i] & 0xc0) == 0x80; /* also stops at the NUL */
        if (ok && len == 3)
            ok = !(p[0] == 0xe0 && p[1] < 0xa0) && !(p[0] == 0xed && p[1] >= 0xa0);
        if (ok && len == 4)
            ok = !(p[0] == 0xf0 && p[1] < 0x90) && !(p[0] == 0xf4 && p[1] >= 0x90);
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += len;
    }
}
