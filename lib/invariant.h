/*
 * invariant.h: what must never happen, checked.  Two kinds:
 *
 *   assert(cond)             a cheap check of the code's own logic, for test
 *                            builds (compiled out with NDEBUG);
 *   MIG_INVARIANT(cond, ...) a check kept in every build, for states in
 *                            which going on could lose an instance or write
 *                            a journal that lies: migd stops at once with a
 *                            fatal log line saying what broke and where.  A
 *                            killed migd resumes every job from its journal
 *                            (the crash campaign proves it); a migd that
 *                            goes on past a broken invariant proves nothing.
 *
 * mig_die is the same stop for conditions that are not the code's fault
 * but leave nothing sane to do (out of memory).
 */
#ifndef MIG_INVARIANT_H
#define MIG_INVARIANT_H

#include <assert.h>

/* Writes a fatal log line ("file:line: what") and aborts. */
void mig_die(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

#define MIG_INVARIANT(cond, ...)                                                                   \
    ((cond) ? (void)0 : mig_die(__FILE__, __LINE__, "invariant broken: " __VA_ARGS__))

#define MIG_DIE(...) mig_die(__FILE__, __LINE__, __VA_ARGS__)

#endif
