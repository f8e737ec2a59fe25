/*
 * ssh_auth.c: why a CN refused our public key, in one line an operator can
 * act on: the identity's key type (read from the key files, with the small
 * base64 and SSH wire decoding that needs) against what the server accepts,
 * including the RSA/SHA-1 trap of libssh2 before 1.11.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libssh2.h>

#include "ssh_int.h"
#include "util.h"

/* The value of a base64 digit, or -1. */
static int b64_digit(int c)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c != '\0' ? strchr(digits, c) : NULL;
    return p != NULL ? (int)(p - digits) : -1;
}

/* Decodes base64 text (whitespace skipped, stops at '=' or '-') into out; returns the length. */
static size_t b64_decode(const char *text, unsigned char *out, size_t size)
{
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (const char *p = text; *p != '\0' && *p != '=' && *p != '-' && n < size; p++) {
        int d = b64_digit((unsigned char)*p);
        if (d < 0)
            continue;
        acc = (acc << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return n;
}

/* An SSH wire string at *pos in buf: its start and length; false when it overruns. */
static bool wire_string(const unsigned char *buf, size_t len, size_t *pos,
                        const unsigned char **str, size_t *slen)
{
    if (len - *pos < 4)
        return false;
    size_t n = (size_t)buf[*pos] << 24 | (size_t)buf[*pos + 1] << 16 | (size_t)buf[*pos + 2] << 8 |
               buf[*pos + 3];
    *pos += 4;
    if (n > len - *pos)
        return false;
    *str = buf + *pos;
    *slen = n;
    *pos += n;
    return true;
}

/*
 * The identity's key type as OpenSSH names it ("ssh-rsa", "ssh-ed25519",
 * "ecdsa-sha2-nistp256", ...) into out, "" when it cannot tell: the first
 * word of IDENTITY.pub; else the private key's PEM header (RSA, DSA, EC);
 * else, for an "OPENSSH PRIVATE KEY", the type of the public key it carries
 * (openssh-key-v1: magic, cipher, kdf, kdf options, key count, public key).
 */
static void identity_key_type(const char *identity, char *out, size_t size)
{
    char line[8192];
    out[0] = '\0';
    char *pub = mig_asprintf("%s.pub", identity);
    FILE *f = fopen(pub, "r");
    free(pub);
    if (f != NULL) {
        if (fgets(line, sizeof(line), f) != NULL)
            snprintf(out, size, "%.*s", (int)strcspn(line, " \t\r\n"), line);
        fclose(f);
        if (out[0] != '\0')
            return;
    }
    f = fopen(identity, "r");
    if (f == NULL)
        return;
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    if (strstr(line, "BEGIN RSA PRIVATE KEY") != NULL) {
        snprintf(out, size, "ssh-rsa");
    } else if (strstr(line, "BEGIN DSA PRIVATE KEY") != NULL) {
        snprintf(out, size, "ssh-dss");
    } else if (strstr(line, "BEGIN EC PRIVATE KEY") != NULL) {
        snprintf(out, size, "ecdsa");
    } else {
        const char *body = strstr(line, "BEGIN OPENSSH PRIVATE KEY-----");
        if (body == NULL)
            return;
        unsigned char raw[2048];
        size_t len = b64_decode(body + strlen("BEGIN OPENSSH PRIVATE KEY-----"), raw, sizeof(raw));
        static const char magic[] = "openssh-key-v1";
        size_t pos = sizeof(magic); /* with its NUL */
        const unsigned char *str = NULL, *key = NULL;
        size_t slen = 0, klen = 0, kpos = 0;
        if (len < pos || memcmp(raw, magic, sizeof(magic)) != 0)
            return;
        for (int i = 0; i < 3; i++) /* cipher, kdf, kdf options */
            if (!wire_string(raw, len, &pos, &str, &slen))
                return;
        if (len - pos < 4)
            return;
        pos += 4; /* the number of keys */
        if (!wire_string(raw, len, &pos, &key, &klen) ||
            !wire_string(key, klen, &kpos, &str, &slen))
            return;
        snprintf(out, size, "%.*s", (int)slen, (const char *)str);
    }
}

/*
 * The one line that says why the CN refused our public key, and what to do.
 * An RSA key signed by a libssh2 older than 1.11 goes out as "ssh-rsa"
 * (SHA-1), which OpenSSH 8.8 and later refuse unless their
 * PubkeyAcceptedAlgorithms allows it; any other refusal is the CN's
 * authorized_keys not accepting the key.
 */
void ssh_auth_refused(const char *host, const char *user, const char *identity, char *detail,
                      size_t dsz)
{
    char type[64];
    identity_key_type(identity, type, sizeof(type));
    if (strcmp(type, "ssh-rsa") == 0 && libssh2_version(0x010b00) == NULL)
        snprintf(detail, dsz,
                 "%s: public key refused: libssh2 %s signs RSA keys with ssh-rsa (SHA-1), which "
                 "OpenSSH 8.8+ refuses by default; use an ed25519 key, or a libssh2 with "
                 "rsa-sha2 (1.11+) (identity %s)",
                 host, libssh2_version(0), identity);
    else
        snprintf(detail, dsz,
                 "%s: public key refused: the CN does not accept %s's %s%skey; add it to "
                 "~%s/.ssh/authorized_keys on the CN (identity %s)",
                 host, user, type, type[0] != '\0' ? " " : "", user, identity);
}
