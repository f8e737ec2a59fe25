/*
 * crash_point.h: the crash campaign's kill switch.  Test builds only
 * (-DMIGD_CRASH_POINTS=ON): when MIGD_CRASH_AT is "KEY:POINT" the daemon
 * _exits (status 99) at that point of that action, as a kill -9 would.
 * POINT: before-start, after-start, after-act, undo-before-start,
 * undo-after-start, undo-after-act (the executor's), or a point of its own
 * (an evacuation's turn).  A release build passes every point.
 */
#ifndef MIGD_CRASH_POINT_H
#define MIGD_CRASH_POINT_H

void exec_crash_point(const char *key, const char *point);
#ifdef MIGD_CRASH_POINTS
/* Sets the crash point instead of MIGD_CRASH_AT (NULL: none). */
void exec_crash_arm(const char *spec);
/* Calls fn at every crash point passed, in order (NULL: stop); a test
 * campaign learns from a clean run where it can kill. */
void exec_crash_witness(void (*fn)(const char *key, const char *point, void *arg), void *arg);
#endif

#endif
