/*
 * test_keys.c: a direct-transfer job's key pair (lib/keygen.c, real
 * ssh-keygen) and the lines of known_hosts the source is given for the
 * target (lib/known_hosts.c): plain, hashed and [host]:port entries, and
 * nothing of any other host.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "keygen.h"
#include "known_hosts.h"

static void test_keygen_ed25519(void **state)
{
    (void)state;
    char priv[1024], pub[80], err[256];
    assert_int_equal(mig_keygen_ed25519("migd-job-x", priv, sizeof(priv), pub, sizeof(pub), err,
                                        sizeof(err)),
                     0);
    assert_non_null(strstr(priv, "-----BEGIN OPENSSH PRIVATE KEY-----"));
    assert_int_equal(strlen(pub), 68);
    assert_memory_equal(pub, "AAAAC3NzaC1lZDI1NTE5", 20);
    /* Two jobs, two keys. */
    char priv2[1024], pub2[80];
    assert_int_equal(mig_keygen_ed25519("migd-job-y", priv2, sizeof(priv2), pub2, sizeof(pub2),
                                        err, sizeof(err)),
                     0);
    assert_string_not_equal(pub, pub2);
    /* Too small a buffer for the private key: refused, nothing half-written. */
    char tiny[16];
    assert_int_equal(mig_keygen_ed25519("c", tiny, sizeof(tiny), pub, sizeof(pub), err,
                                        sizeof(err)),
                     MIG_EREMOTE);
    assert_string_equal(tiny, "");
    /* No ssh-keygen: a clear error. */
    setenv("MIGD_SSH_KEYGEN", "/nonexistent/ssh-keygen", 1);
    assert_int_equal(mig_keygen_ed25519("c", priv, sizeof(priv), pub, sizeof(pub), err,
                                        sizeof(err)),
                     MIG_EREMOTE);
    assert_non_null(strstr(err, "/nonexistent/ssh-keygen"));
    unsetenv("MIGD_SSH_KEYGEN");
}

/* A host key "TYPE BASE64" made by ssh-keygen, of type (ed25519, ecdsa). */
static void host_key(const char *dir, const char *name, const char *type, char *out, size_t outsz)
{
    char cmd[512], path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(cmd, sizeof(cmd), "ssh-keygen -q -t %s -N '' -f %s", type, path);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/%s.pub", dir, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char type_word[64], b64[1024];
    assert_int_equal(fscanf(f, "%63s %1023s", type_word, b64), 2);
    fclose(f);
    snprintf(out, outsz, "%s %s", type_word, b64);
}

static void test_known_host_lines(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_keys.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char a_ed[1200], a_ec[1200], b_ed[1200], c_ed[1200], path[256], plain[256], cmd[512], err[256];
    host_key(dir, "a_ed", "ed25519", a_ed, sizeof(a_ed));
    host_key(dir, "a_ec", "ecdsa", a_ec, sizeof(a_ec));
    host_key(dir, "b_ed", "ed25519", b_ed, sizeof(b_ed));
    host_key(dir, "c_ed", "ed25519", c_ed, sizeof(c_ed));
    snprintf(path, sizeof(path), "%s/known_hosts", dir);
    snprintf(plain, sizeof(plain), "%s/plain", dir);
    /* 10.0.0.1: an ed25519 key in plain text and an ECDSA key under a hashed name;
     * 10.0.0.2: another key; [10.0.0.1]:2222 a third. */
    FILE *f = fopen(plain, "w");
    assert_non_null(f);
    fprintf(f, "10.0.0.2 %s\n10.0.0.1 %s\n[10.0.0.1]:2222 %s\n", b_ed, a_ed, c_ed);
    fclose(f);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "10.0.0.1 %s\n", a_ec);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "ssh-keygen -q -H -f %s >/dev/null 2>&1 && cat %s >> %s", path,
             plain, path);
    assert_int_equal(system(cmd), 0);

    char *out = NULL;
    assert_int_equal(mig_known_host_lines(path, "10.0.0.1", 22, &out, err, sizeof(err)), 0);
    assert_non_null(out);
    /* Both keys (the one under a hashed name too), named as ssh looks the host up. */
    char want[1400];
    snprintf(want, sizeof(want), "10.0.0.1 %s\n", a_ed);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), "10.0.0.1 %s\n", a_ec);
    assert_non_null(strstr(out, want));
    assert_null(strstr(out, strchr(b_ed, ' ') + 1));
    assert_null(strstr(out, strchr(c_ed, ' ') + 1));
    size_t lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 2);
    free(out);

    /* Another port: the [host]:port entry, and (as libssh2 trusts them for any port) the
     * host's plain entries, each under the name OpenSSH looks up for that port. */
    assert_int_equal(mig_known_host_lines(path, "10.0.0.1", 2222, &out, err, sizeof(err)), 0);
    snprintf(want, sizeof(want), "[10.0.0.1]:2222 %s\n", c_ed);
    assert_non_null(strstr(out, want));
    assert_null(strstr(out, strchr(b_ed, ' ') + 1));
    for (const char *p = out; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        assert_memory_equal(p, "[10.0.0.1]:2222 ", 16);
    free(out);

    /* A host the head node does not know: refused, saying so. */
    assert_int_equal(mig_known_host_lines(path, "10.0.0.9", 22, &out, err, sizeof(err)), -ENOENT);
    assert_null(out);
    assert_non_null(strstr(err, "no host key for 10.0.0.9"));
    assert_int_equal(mig_known_host_lines("/nonexistent/known_hosts", "10.0.0.1", 22, &out, err,
                                          sizeof(err)),
                     MIG_EHOSTKEY);

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keygen_ed25519),
        cmocka_unit_test(test_known_host_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
