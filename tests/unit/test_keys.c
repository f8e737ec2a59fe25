/*
 * test_keys.c: a direct-transfer job's key pair (lib/keygen.c, real
 * ssh-keygen) and the lines of known_hosts the source is given for the
 * target (lib/known_hosts.c): plain, hashed and [host]:port entries, and
 * nothing of any other host; the directory keys are made in, and the
 * start-up sweep of the key directories a crash left there.
 */
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "keygen.h"
#include "known_hosts.h"
#include "unit.h"

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

/* Writes text into dir/name (0600), failing the test if it cannot. */
static void put_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static bool exists(const char *dir, const char *name)
{
    char path[512];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return lstat(path, &sb) == 0;
}

/* The number of entries in dir besides . and .. */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

/*
 * Keys are made in the directory set (and nothing is left there); a start's
 * sweep removes the key directories a crash left, private key and all, and
 * nothing else: not a look-alike name, not a file of that name, not what a
 * link of that name points to.
 */
static void test_key_dir_and_sweep(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_keys_sweep.XXXXXX", other[] = "/tmp/test_keys_other.XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_non_null(mkdtemp(other));
    assert_int_equal(mig_keygen_set_dir(dir), 0);
    char priv[1024], pub[80], err[256];
    assert_int_equal(mig_keygen_ed25519("migd-job-z", priv, sizeof(priv), pub, sizeof(pub), err,
                                        sizeof(err)),
                     0);
    assert_int_equal(entries(dir), 0);
    assert_int_equal(mig_keygen_sweep(dir), 0);

    /* What two crashed jobs left: a whole pair, and a directory ssh-keygen had not filled. */
    char crashed[600];
    snprintf(crashed, sizeof(crashed), "%s/migd-key.Ab3xY9", dir);
    assert_int_equal(mkdir(crashed, 0700), 0);
    put_file(crashed, "id", priv);
    put_file(crashed, "id.pub", "ssh-ed25519 AAAA migd-job-z\n");
    snprintf(crashed, sizeof(crashed), "%s/migd-key.000000", dir);
    assert_int_equal(mkdir(crashed, 0700), 0);
    /* Not migd's: names that only look alike, a file, a link to another directory. */
    char path[600];
    snprintf(path, sizeof(path), "%s/migd-key.toolong", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/migd-key.a-b_cd", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    put_file(dir, "migd-key.FILE01", "not a directory");
    put_file(other, "id", "someone else's");
    snprintf(path, sizeof(path), "%s/migd-key.LINK01", dir);
    assert_int_equal(symlink(other, path), 0);

    assert_int_equal(mig_keygen_sweep(NULL), 2); /* NULL: the directory set */
    assert_false(exists(dir, "migd-key.Ab3xY9"));
    assert_false(exists(dir, "migd-key.000000"));
    assert_true(exists(dir, "migd-key.toolong"));
    assert_true(exists(dir, "migd-key.a-b_cd"));
    assert_true(exists(dir, "migd-key.FILE01"));
    assert_true(exists(dir, "migd-key.LINK01"));
    assert_true(exists(other, "id"));
    assert_int_equal(entries(dir), 4);
    assert_int_equal(mig_keygen_sweep(dir), 0);
    assert_int_equal(mig_keygen_sweep("/nonexistent/dir"), -ENOENT);

    /* A directory too long for the key's paths is refused, and the old one kept. */
    char longdir[700];
    memset(longdir, 'd', sizeof(longdir) - 1);
    longdir[0] = '/';
    longdir[sizeof(longdir) - 1] = '\0';
    assert_int_equal(mig_keygen_set_dir(longdir), -ENAMETOOLONG);
    assert_int_equal(mig_keygen_ed25519("migd-job-w", priv, sizeof(priv), pub, sizeof(pub), err,
                                        sizeof(err)),
                     0);
    assert_int_equal(entries(dir), 4);

    assert_int_equal(mig_keygen_set_dir("/tmp"), 0);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s %s", dir, other);
    assert_int_equal(system(cmd), 0);
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
    unit_write_file(plain, "10.0.0.2 %s\n10.0.0.1 %s\n[10.0.0.1]:2222 %s\n", b_ed, a_ed, c_ed);
    unit_write_file(path, "10.0.0.1 %s\n", a_ec);
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

UNIT_TEST_MAIN(NULL, NULL,
               cmocka_unit_test(test_keygen_ed25519),
               cmocka_unit_test(test_key_dir_and_sweep),
               cmocka_unit_test(test_known_host_lines))
