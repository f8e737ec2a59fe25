/*
 * err.h: the one error convention of migd.  Functions return 0 or a negative
 * code: a negated errno value (as libuv does) or one of the MIG_E* codes
 * below, which have no errno equivalent.  mig_strerror() names either kind.
 */
#ifndef MIG_ERR_H
#define MIG_ERR_H

#include <errno.h>

enum {
    MIG_EFIRST = -10000,
    MIG_EREFUSED = -10000, /* a validation rule refused the request */
    MIG_ESSH = -10001,     /* SSH transport failure (connect, auth, channel) */
    MIG_EHOSTKEY = -10002, /* host key unknown or does not match known_hosts */
    MIG_EHTTP = -10003,    /* HTTP transport failure (connect, timeout) */
    MIG_EAPI = -10004,     /* an API answered with an unexpected status */
    MIG_EREMOTE = -10005,  /* a remote command exited non-zero */
    MIG_EDB = -10006,      /* SQLite failed */
    MIG_ESCHEMA = -10007,  /* database schema newer than this binary */
    MIG_EPARSE = -10008,   /* malformed JSON or command output */
    MIG_ETIMEDOUT = -10009,
    MIG_EAGAIN = -10010,   /* would block: try again when the fd is ready */
    MIG_ECANCELED = -10011,
    MIG_ELAST = -10011,
};

/* Returns a static description of err (a MIG_E* code or -errno). */
const char *mig_strerror(int err);

#endif
