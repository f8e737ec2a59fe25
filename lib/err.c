/* err.c: names for migd's error codes (see err.h). */
#include <string.h>

#include "err.h"

const char *mig_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case MIG_EREFUSED:
        return "refused by a validation rule";
    case MIG_ESSH:
        return "SSH connection failed";
    case MIG_EHOSTKEY:
        return "SSH host key does not match known_hosts";
    case MIG_EHTTP:
        return "HTTP request failed";
    case MIG_EAPI:
        return "API answered with an unexpected status";
    case MIG_EREMOTE:
        return "remote command failed";
    case MIG_EDB:
        return "database error";
    case MIG_ESCHEMA:
        return "database schema is newer than this migd";
    case MIG_EPARSE:
        return "malformed input";
    case MIG_ETIMEDOUT:
        return "timed out";
    case MIG_EAGAIN:
        return "operation would block";
    case MIG_ECANCELED:
        return "canceled";
    }
    if (err < 0 && err > MIG_EFIRST)
        return strerror(-err);
    return "unknown error";
}
