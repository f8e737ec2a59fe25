/* log.c: bunyan JSON log records (see log.h). */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "util.h"

static struct {
    char name[64];
    char hostname[256];
    int level;
    FILE *out;
    mig_log_sink_fn sink;
    void *sink_arg;
} logger = {"migd", "", MIG_LOG_INFO, NULL, NULL, NULL};

static void set_hostname(void)
{
    if (gethostname(logger.hostname, sizeof(logger.hostname)) != 0)
        snprintf(logger.hostname, sizeof(logger.hostname), "unknown");
}

void mig_log_init(const char *name, int level, FILE *out)
{
    snprintf(logger.name, sizeof(logger.name), "%s", name);
    set_hostname();
    logger.level = level;
    logger.out = out;
}

void mig_log_set_sink(mig_log_sink_fn fn, void *arg)
{
    logger.sink = fn;
    logger.sink_arg = arg;
}

int mig_log_level_parse(const char *s, int *out)
{
    static const struct {
        const char *name;
        int level;
    } names[] = {{"trace", MIG_LOG_TRACE}, {"debug", MIG_LOG_DEBUG}, {"info", MIG_LOG_INFO},
                 {"warn", MIG_LOG_WARN},   {"error", MIG_LOG_ERROR}, {"fatal", MIG_LOG_FATAL}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    char *end;
    long v = strtol(s, &end, 10);
    if (*s != '\0' && *end == '\0' && v >= MIG_LOG_TRACE && v <= MIG_LOG_FATAL) {
        *out = (int)v;
        return 0;
    }
    return -EINVAL;
}

void mig_log(int level, const char *job_uuid, const char *vm_uuid, const char *fmt, ...)
{
    if (level < logger.level && !(job_uuid != NULL && logger.sink != NULL))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (level >= logger.level) {
        if (logger.hostname[0] == '\0')
            set_hostname();
        char when[32];
        mig_time_iso(mig_now_ms(), when);
        json_t *rec = json_pack("{s:s, s:s, s:i, s:i, s:s, s:s, s:i}", "name", logger.name,
                                "hostname", logger.hostname, "pid", (int)getpid(), "level",
                                level, "msg", msg, "time", when, "v", 0);
        if (rec != NULL) {
            if (job_uuid != NULL)
                json_object_set_new(rec, "job_uuid", json_string(job_uuid));
            if (vm_uuid != NULL)
                json_object_set_new(rec, "vm_uuid", json_string(vm_uuid));
            char *line = json_dumps(rec, JSON_COMPACT);
            if (line != NULL) {
                FILE *out = logger.out != NULL ? logger.out : stderr;
                fprintf(out, "%s\n", line);
                fflush(out);
                free(line);
            }
            json_decref(rec);
        }
    }
    if (job_uuid != NULL && logger.sink != NULL)
        logger.sink(logger.sink_arg, level, job_uuid, msg);
}
