/*
 * keygen.c: one job's ed25519 key pair from ssh-keygen (keygen.h), made in
 * a private temporary directory that is removed before returning.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "keygen.h"
#include "util.h"

extern char **environ;

/* Reads all of path into buf (NUL-terminated); -1 when it does not fit or cannot be read. */
static int read_all(const char *path, char *buf, size_t bufsz)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    ssize_t n;
    while ((n = read(fd, buf + len, bufsz - len - 1)) > 0) {
        len += (size_t)n;
        if (len == bufsz - 1)
            break;
    }
    char extra;
    bool more = n > 0 && read(fd, &extra, 1) > 0;
    close(fd);
    if (n < 0 || more)
        return -1;
    buf[len] = '\0';
    return 0;
}

int mig_keygen_ed25519(const char *comment, char *priv, size_t privsz, char *pub, size_t pubsz,
                       char *err, size_t errsz)
{
    char dir[] = "/tmp/migd-key.XXXXXX";
    char key[64], keypub[64], pubtext[512];
    int rc = MIG_EREMOTE;
    if (mkdtemp(dir) == NULL) {
        mig_errf(err, errsz, "cannot make a temporary directory for the job's key: %s",
                 strerror(errno));
        return MIG_EREMOTE;
    }
    snprintf(key, sizeof(key), "%s/id", dir);
    snprintf(keypub, sizeof(keypub), "%s/id.pub", dir);
    const char *prog = getenv("MIGD_SSH_KEYGEN") != NULL ? getenv("MIGD_SSH_KEYGEN") : "ssh-keygen";
    char *argv[] = {(char *)prog, "-q", "-t", "ed25519", "-N", "", "-C", (char *)comment, "-f",
                    key, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int status = 0;
    int sp = posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (sp != 0) {
        mig_errf(err, errsz, "cannot run %s to make the job's key: %s", prog, strerror(sp));
        goto out;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        mig_errf(err, errsz, "%s failed to make the job's ed25519 key (status %d)", prog, status);
        goto out;
    }
    if (read_all(key, priv, privsz) != 0 || read_all(keypub, pubtext, sizeof(pubtext)) != 0) {
        mig_errf(err, errsz, "cannot read the key %s made", prog);
        goto out;
    }
    /* "ssh-ed25519 BASE64 comment" */
    char b64[128];
    if (sscanf(pubtext, "ssh-ed25519 %127s", b64) != 1 || strlen(b64) != 68 ||
        strlen(b64) >= pubsz) {
        mig_errf(err, errsz, "%s made no ed25519 public key", prog);
        goto out;
    }
    snprintf(pub, pubsz, "%s", b64);
    rc = 0;
out:
    unlink(key);
    unlink(keypub);
    rmdir(dir);
    if (rc != 0 && privsz > 0)
        priv[0] = '\0';
    return rc;
}
