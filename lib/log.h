/*
 * log.h: bunyan-format JSON log lines on stderr, as Triton services write
 * them ({name, hostname, pid, level, msg, time, v: 0} plus job_uuid and
 * vm_uuid where they apply).  A sink can also receive each job's records so
 * the daemon can keep them in the job log.
 */
#ifndef MIG_LOG_H
#define MIG_LOG_H

#include <stdio.h>

enum mig_log_level {
    MIG_LOG_TRACE = 10,
    MIG_LOG_DEBUG = 20,
    MIG_LOG_INFO = 30,
    MIG_LOG_WARN = 40,
    MIG_LOG_ERROR = 50,
    MIG_LOG_FATAL = 60,
};

/* Called for every record that carries a job uuid, after it is written. */
typedef void (*mig_log_sink_fn)(void *arg, int level, const char *job_uuid, const char *msg);

/* Sets the service name, the minimum level and the output (NULL: stderr). */
void mig_log_init(const char *name, int level, FILE *out);
void mig_log_set_sink(mig_log_sink_fn fn, void *arg);

/* Parses "trace".."fatal" or a bunyan number; 0 or -EINVAL. */
int mig_log_level_parse(const char *s, int *out);

/* Writes one record; job_uuid and vm_uuid may be NULL. */
void mig_log(int level, const char *job_uuid, const char *vm_uuid, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_debug(...) mig_log(MIG_LOG_DEBUG, NULL, NULL, __VA_ARGS__)
#define log_info(...) mig_log(MIG_LOG_INFO, NULL, NULL, __VA_ARGS__)
#define log_warn(...) mig_log(MIG_LOG_WARN, NULL, NULL, __VA_ARGS__)
#define log_error(...) mig_log(MIG_LOG_ERROR, NULL, NULL, __VA_ARGS__)

#endif
