/*
 * test_key_edits.c: the direct keys' edits of authorized_keys, as lib/cn_direct.c
 * builds them, run for real by /bin/sh against a temporary HOME: a file
 * without its final newline, lines that merely end like a job's, and two
 * jobs' authorizes and removals racing each other, 50 times over.  Every
 * other line must survive byte for byte, every job's line must be there
 * exactly once while authorized and gone after its removal, and every
 * command must say (by its exit status) what happened.  Also: a lock left
 * by a dead holder is taken over, a live holder is waited for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cn.h"
#include "unit.h"

#define ROUNDS 50

static const char *const JOBS[3] = {"0b1c2d3e-4f50-4a61-8b72-c3d4e5f60718",
                                    "1b1c2d3e-4f50-4a61-8b72-c3d4e5f60718",
                                    "2b1c2d3e-4f50-4a61-8b72-c3d4e5f60718"};
static const char *const KEYS[3] = {
    "AAAAC3NzaC1lZDI1NTE5AAAAIGq3c1bbq0rW1o1c1m8d0N5b3d0v1cX1ZmQ3n2k4xY7p",
    "AAAAC3NzaC1lZDI1NTE5AAAAIHq3c1bbq0rW1o1c1m8d0N5b3d0v1cX1ZmQ3n2k4xY7q",
    "AAAAC3NzaC1lZDI1NTE5AAAAIJq3c1bbq0rW1o1c1m8d0N5b3d0v1cX1ZmQ3n2k4xY7r"};
static const char *const DS0[] = {"zones/6a1b2c3d-1111-4222-8333-444455556666",
                                  "zones/6a1b2c3d-1111-4222-8333-444455556666-disk0"};
static const char *const DS1[] = {"zones/7a1b2c3d-1111-4222-8333-444455556666"};
static const char *const DS2[] = {"zones/8a1b2c3d-1111-4222-8333-444455556666"};

/*
 * The operator's file: a line that ends like job 0's (the old suffix removal
 * deleted it), a comment with a quote, and a last line without its newline.
 */
#define OPERATOR                                                                                   \
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOperatorKeyOperatorKeyOperatorKeyOpera ops@hn\n"        \
    "# it's the operator's\n"                                                                      \
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBackupKeyBackupKeyBackupKeyBackupKeyBa backup "          \
    "migd-job-0b1c2d3e-4f50-4a61-8b72-c3d4e5f60718\n"                                              \
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILastLineLastLineLastLineLastLineLastLi last@hn"

struct fixture {
    char home[64];
    char file[128];
    char *auth[3], *unauth[3];
    char line[3][4608];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->home, sizeof(f->home), "/tmp/migd-keyedits-XXXXXX");
    if (mkdtemp(f->home) == NULL)
        return -1;
    snprintf(f->file, sizeof(f->file), "%s/.ssh/authorized_keys", f->home);
    const char *const *ds[3] = {DS0, DS1, DS2};
    int nds[3] = {2, 1, 1};
    for (int i = 0; i < 3; i++) {
        struct mig_direct_key k = {.job_uuid = JOBS[i], .src_ip = "10.1.1.33",
                                   .pubkey_b64 = KEYS[i], .datasets = ds[i], .ndatasets = nds[i]};
        f->auth[i] = mig_cmd_authorize_key(&k);
        f->unauth[i] = mig_cmd_unauthorize_key(&k);
        if (f->auth[i] == NULL || f->unauth[i] == NULL ||
            mig_direct_key_line(&k, f->line[i], sizeof(f->line[i])) != 0)
            return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->home);
    if (system(cmd) != 0)
        return -1;
    for (int i = 0; i < 3; i++) {
        free(f->auth[i]);
        free(f->unauth[i]);
    }
    free(f);
    return 0;
}

/* Starts cmd under /bin/sh -c with HOME set; its pid. */
static pid_t spawn(const struct fixture *f, const char *cmd)
{
    pid_t pid = fork();
    if (pid == 0) {
        setenv("HOME", f->home, 1);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    assert_true(pid > 0);
    return pid;
}

/* Waits for pid; its exit status (-1 when killed). */
static int reap(pid_t pid)
{
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs two commands at once; both must exit 0. */
static void race(const struct fixture *f, const char *a, const char *b)
{
    pid_t pa = spawn(f, a), pb = spawn(f, b);
    int ra = reap(pa), rb = reap(pb);
    assert_int_equal(ra, 0);
    assert_int_equal(rb, 0);
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* How many lines of text are exactly line. */
static int count_line(const char *text, const char *line)
{
    int n = 0;
    size_t len = strlen(line);
    for (const char *p = text; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t l = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (l == len && memcmp(p, line, len) == 0)
            n++;
        p += l + (nl != NULL);
    }
    return n;
}

/* The file is the operator's lines (the last one now ended) plus, in order of
 * appearance, exactly the given jobs' lines once each. */
static void expect_file(const struct fixture *f, bool j0, bool j1, bool j2)
{
    char *text = slurp(f->file);
    bool want[3] = {j0, j1, j2};
    size_t olen = strlen(OPERATOR);
    assert_memory_equal(text, OPERATOR "\n", olen + 1);
    size_t rest = strlen(text) - olen - 1, expect = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(count_line(text, f->line[i]), want[i] ? 1 : 0);
        expect += want[i] ? strlen(f->line[i]) + 1 : 0;
    }
    assert_int_equal(rest, expect); /* nothing else: no half line, no copy left */
    free(text);
}

static void write_operator_file(const struct fixture *f)
{
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/.ssh", f->home);
    mkdir(dir, 0700);
    FILE *fp = fopen(f->file, "wb");
    assert_non_null(fp);
    fputs(OPERATOR, fp);
    fclose(fp);
}

/* Only the file and its lock's leftovers: no temporary copy stays in ~/.ssh. */
static void expect_no_leftovers(const struct fixture *f)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "test \"$(ls -A '%s/.ssh')\" = authorized_keys", f->home);
    assert_int_equal(system(cmd), 0);
}

static void test_two_jobs_racing_keep_every_other_line(void **state)
{
    struct fixture *f = *state;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int round = 0; round < ROUNDS; round++) {
        write_operator_file(f);
        /* Two authorizes at once: both lines, once each, the operator's intact. */
        race(f, f->auth[0], f->auth[1]);
        expect_file(f, true, true, false);
        /* A removal during another job's authorize: neither loses. */
        race(f, f->unauth[0], f->auth[2]);
        expect_file(f, false, true, true);
        /* Two removals at once: both gone; the suffix-alike backup line stays. */
        race(f, f->unauth[1], f->unauth[2]);
        expect_file(f, false, false, false);
        expect_no_leftovers(f);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    print_message("%d rounds of 6 racing edits: %.1f s\n", ROUNDS,
                  (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

/* Acting twice is harmless; removing from no file at all is nothing to do. */
static void test_repeats_and_no_file(void **state)
{
    struct fixture *f = *state;
    char dir[128];
    snprintf(dir, sizeof(dir), "rm -rf '%s/.ssh'", f->home);
    assert_int_equal(system(dir), 0);
    assert_int_equal(reap(spawn(f, f->unauth[0])), 0);
    assert_int_equal(reap(spawn(f, f->auth[0])), 0);
    assert_int_equal(reap(spawn(f, f->auth[0])), 0);
    char *text = slurp(f->file);
    assert_int_equal(count_line(text, f->line[0]), 1);
    assert_int_equal(strlen(text), strlen(f->line[0]) + 1);
    free(text);
    struct stat st;
    snprintf(dir, sizeof(dir), "%s/.ssh", f->home);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(stat(f->file, &st), 0);
    assert_int_equal(st.st_mode & 077, 0);
    assert_int_equal(reap(spawn(f, f->unauth[0])), 0);
    assert_int_equal(reap(spawn(f, f->unauth[0])), 0);
    text = slurp(f->file);
    assert_string_equal(text, "");
    free(text);
}

/* A line there twice (another tool copied it): the authorize says so, the removal removes both. */
static void test_a_doubled_line_is_reported_and_removed(void **state)
{
    struct fixture *f = *state;
    write_operator_file(f);
    FILE *fp = fopen(f->file, "ab");
    fprintf(fp, "\n%s\n%s\n", f->line[0], f->line[0]);
    fclose(fp);
    assert_int_not_equal(reap(spawn(f, f->auth[0])), 0);
    assert_int_equal(reap(spawn(f, f->unauth[0])), 0);
    expect_file(f, false, false, false);
}

static void test_stale_and_live_locks(void **state)
{
    struct fixture *f = *state;
    char lock[160], pidfile[192];
    write_operator_file(f);
    snprintf(lock, sizeof(lock), "%s/.ssh/.migd-lock", f->home);
    snprintf(pidfile, sizeof(pidfile), "%s/pid", lock);
    /* A holder that died: its pid names no process. */
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    reap(dead);
    assert_int_equal(mkdir(lock, 0700), 0);
    unit_write_file(pidfile, "%d\n", (int)dead);
    assert_int_equal(reap(spawn(f, f->auth[0])), 0);
    expect_file(f, true, false, false);
    /* A live holder: the edit waits until it lets go. */
    assert_int_equal(mkdir(lock, 0700), 0);
    unit_write_file(pidfile, "%d\n", (int)getpid());
    pid_t waiting = spawn(f, f->unauth[0]);
    usleep(600 * 1000);
    int st;
    assert_int_equal(waitpid(waiting, &st, WNOHANG), 0); /* still waiting */
    expect_file(f, true, false, false);
    unlink(pidfile);
    rmdir(lock);
    assert_int_equal(reap(waiting), 0);
    expect_file(f, false, false, false);
    expect_no_leftovers(f);
}

UNIT_TEST_MAIN(setup, teardown,
               cmocka_unit_test(test_two_jobs_racing_keep_every_other_line),
               cmocka_unit_test(test_repeats_and_no_file),
               cmocka_unit_test(test_a_doubled_line_is_reported_and_removed),
               cmocka_unit_test(test_stale_and_live_locks))
