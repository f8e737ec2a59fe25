/*
 * watch.h: following one job until its stream ends (migctl watch, and
 * migctl migrate -w).
 */
#ifndef MIGCTL_WATCH_H
#define MIGCTL_WATCH_H

/*
 * Follows the job uuid (a checked UUID) until migd's stream ends, showing
 * its progress on stdout.  Returns 0 when the job succeeded, switched (the
 * VM runs on the target), waits for finish or was rolled back by the
 * operator; 1 otherwise (reported).  A Ctrl-C leaves the job alone, says
 * so, ends the client (client_cleanup) and ends migctl as SIGINT ends a
 * program; should the signal not end it, returns 130.
 */
int watch_job(const char *uuid);

#endif
