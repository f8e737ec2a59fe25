/*
 * known_hosts.c: a host's lines of a known_hosts file (known_hosts.h).
 * libssh2 reads the file and knows how to match hashed names; an entry
 * belongs to the host when checking the host with that entry's own key
 * matches, which is how hashed entries are found without the salt.  Each
 * key found is written under the name the source's ssh client will look up
 * (the address, or "[address]:port"): a hashed or plain name the head node
 * matched through libssh2's rules may not be one OpenSSH matches.
 */
#include <errno.h>
#include <libssh2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "known_hosts.h"
#include "util.h"

/* The OpenSSH name of a known_hosts key type, NULL for one the source could not use. */
static const char *key_type_name(int kbits)
{
    switch (kbits) {
    case LIBSSH2_KNOWNHOST_KEY_ED25519: return "ssh-ed25519";
    case LIBSSH2_KNOWNHOST_KEY_ECDSA_256: return "ecdsa-sha2-nistp256";
    case LIBSSH2_KNOWNHOST_KEY_ECDSA_384: return "ecdsa-sha2-nistp384";
    case LIBSSH2_KNOWNHOST_KEY_ECDSA_521: return "ecdsa-sha2-nistp521";
    case LIBSSH2_KNOWNHOST_KEY_SSHRSA: return "ssh-rsa";
    default: return NULL;
    }
}

int mig_known_host_lines(const char *path, const char *host, int port, char **out, char *err,
                         size_t errsz)
{
    *out = NULL;
    LIBSSH2_SESSION *session = libssh2_session_init();
    LIBSSH2_KNOWNHOSTS *kh = session != NULL ? libssh2_knownhost_init(session) : NULL;
    if (kh == NULL || libssh2_knownhost_readfile(kh, path, LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0) {
        mig_errf(err, errsz, "cannot read the known_hosts file %s", path);
        if (kh != NULL)
            libssh2_knownhost_free(kh);
        if (session != NULL)
            libssh2_session_free(session);
        return MIG_EHOSTKEY;
    }
    size_t cap = 1024, len = 0;
    char *buf = mig_malloc(cap);
    buf[0] = '\0';
    struct libssh2_knownhost *prev = NULL, *e;
    while (libssh2_knownhost_get(kh, &e, prev) == 0) {
        prev = e;
        if (e->key == NULL)
            continue;
        int mask = LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_BASE64 |
                   (e->typemask & LIBSSH2_KNOWNHOST_KEY_MASK);
        if (libssh2_knownhost_checkp(kh, host, port == 22 ? -1 : port, e->key, strlen(e->key),
                                     mask, NULL) != LIBSSH2_KNOWNHOST_CHECK_MATCH)
            continue;
        const char *type = key_type_name(e->typemask & LIBSSH2_KNOWNHOST_KEY_MASK);
        if (type == NULL)
            continue;
        char line[4096];
        int n = port == 22 ? snprintf(line, sizeof(line), "%s %s %s\n", host, type, e->key)
                           : snprintf(line, sizeof(line), "[%s]:%d %s %s\n", host, port, type,
                                      e->key);
        if (n < 0 || (size_t)n >= sizeof(line))
            continue;
        /* One key under two names (plain and hashed): once is enough. */
        if (strstr(buf, line) != NULL)
            continue;
        if (len + (size_t)n + 1 > cap) {
            cap = (len + (size_t)n + 1) * 2;
            buf = mig_realloc(buf, cap);
        }
        memcpy(buf + len, line, (size_t)n);
        len += (size_t)n;
        buf[len] = '\0';
    }
    libssh2_knownhost_free(kh);
    libssh2_session_free(session);
    if (len == 0) {
        free(buf);
        if (port == 22)
            mig_errf(err, errsz, "%s has no host key for %s", path, host);
        else
            mig_errf(err, errsz, "%s has no host key for [%s]:%d", path, host, port);
        return -ENOENT;
    }
    *out = buf;
    return 0;
}
