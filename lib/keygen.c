/*
 * keygen.c: one job's ed25519 key pair from ssh-keygen (keygen.h), made in
 * a private temporary directory that is removed before returning; and the
 * start-up sweep of such directories that a crash left behind.
 */
#include <ctype.h>
#include <dirent.h>
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
#include "log.h"
#include "util.h"

extern char **environ;

#define KEY_DIR_PREFIX "migd-key."
#define KEY_DIR_TEMPLATE KEY_DIR_PREFIX "XXXXXX"

/* Where the key directories are made (mig_keygen_set_dir). */
static char key_parent[512] = "/tmp";

int mig_keygen_set_dir(const char *dir)
{
    /* Room for "/migd-key.XXXXXX/id.pub" in the paths made below. */
    if (strlen(dir) + sizeof("/" KEY_DIR_TEMPLATE "/id.pub") > sizeof(key_parent))
        return -ENAMETOOLONG;
    snprintf(key_parent, sizeof(key_parent), "%s", dir);
    return 0;
}

/* Whether name is one mkdtemp made from KEY_DIR_TEMPLATE. */
static bool key_dir_name(const char *name)
{
    size_t plen = strlen(KEY_DIR_PREFIX);
    if (strncmp(name, KEY_DIR_PREFIX, plen) != 0 || strlen(name) != plen + 6)
        return false;
    for (const char *c = name + plen; *c != '\0'; c++)
        if (!isalnum((unsigned char)*c))
            return false;
    return true;
}

/*
 * Empties and removes the key directory name inside the directory dfd.
 * Works through descriptors so that nothing outside it can be reached
 * through a link swapped in meanwhile.  0 or a negative errno.
 */
static int remove_key_dir(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int e = errno;
        close(fd);
        return -e;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        /* ssh-keygen writes only files here: anything else stays, and so does the directory. */
        if (unlinkat(fd, de->d_name, 0) != 0 && rc == 0)
            rc = -errno;
    }
    closedir(d);
    if (rc == 0 && unlinkat(dfd, name, AT_REMOVEDIR) != 0)
        rc = -errno;
    return rc;
}

int mig_keygen_sweep(const char *dir)
{
    if (dir == NULL)
        dir = key_parent;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    int dup_fd = dup(dfd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (d == NULL) {
        int e = errno;
        if (dup_fd >= 0)
            close(dup_fd);
        close(dfd);
        return -e;
    }
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat sb;
        if (!key_dir_name(de->d_name) ||
            fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(sb.st_mode) ||
            sb.st_uid != geteuid())
            continue;
        int rc = remove_key_dir(dfd, de->d_name);
        if (rc == 0) {
            removed++;
            log_info("removed %s/%s: a job key directory left by a crash", dir, de->d_name);
        } else {
            log_warn("cannot remove %s/%s, a job key directory left by a crash: %s", dir,
                     de->d_name, strerror(-rc));
        }
    }
    closedir(d);
    close(dfd);
    return removed;
}

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
    char dir[sizeof(key_parent)], key[sizeof(key_parent)], keypub[sizeof(key_parent)];
    char pubtext[512];
    snprintf(dir, sizeof(dir), "%s/" KEY_DIR_TEMPLATE, key_parent);
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
