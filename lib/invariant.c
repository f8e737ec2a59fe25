/*
 * invariant.c: the fatal stop of invariant.h.  The message goes to the log
 * (bunyan, level fatal) and, should the log itself be what broke, to stderr.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "invariant.h"
#include "log.h"

void mig_die(const char *file, int line, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    mig_log(MIG_LOG_FATAL, NULL, NULL, "%s:%d: %s; stopping (jobs resume from the journal)", file,
            line, what);
    fprintf(stderr, "migd: %s:%d: %s\n", file, line, what);
    abort();
}
