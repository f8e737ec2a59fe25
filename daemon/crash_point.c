/*
 * crash_point.c: the crash campaign's kill switch (crash_point.h).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crash_point.h"

#ifdef MIGD_CRASH_POINTS
static const char *crash_at;
static bool crash_armed;
static void (*crash_witness)(const char *key, const char *point, void *arg);
static void *crash_witness_arg;

void exec_crash_arm(const char *spec)
{
    crash_at = spec;
    crash_armed = true;
}

void exec_crash_witness(void (*fn)(const char *key, const char *point, void *arg), void *arg)
{
    crash_witness = fn;
    crash_witness_arg = arg;
}
#endif

void exec_crash_point(const char *key, const char *point)
{
#ifdef MIGD_CRASH_POINTS
    if (!crash_armed)
        exec_crash_arm(getenv("MIGD_CRASH_AT"));
    if (crash_witness != NULL)
        crash_witness(key, point, crash_witness_arg);
    const char *want = crash_at;
    size_t kl = strlen(key);
    if (want != NULL && strncmp(want, key, kl) == 0 && want[kl] == ':' &&
        strcmp(want + kl + 1, point) == 0) {
        fprintf(stderr, "{\"name\":\"migd\",\"level\":60,\"msg\":\"crash point %s:%s\",\"v\":0}\n",
                key, point);
        _exit(99);
    }
#else
    (void)key;
    (void)point;
#endif
}
