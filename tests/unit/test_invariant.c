/*
 * test_invariant.c: a broken invariant stops the process with a message
 * naming the file, the line and what broke (invariant.h), in every build;
 * a kept one costs nothing and changes nothing.  Each stop runs in a child.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "invariant.h"
#include "util.h"
#include "unit.h"

/* Runs fn in a child with stderr into a pipe; its wait status, its stderr in buf. */
static int run_child(void (*fn)(void), char *buf, size_t bufsz)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        /* ASan's abort report would only add noise to the pipe. */
        signal(SIGABRT, SIG_DFL);
        fn();
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], buf + len, bufsz - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void broken(void)
{
    int nics = 40;
    MIG_INVARIANT(nics <= 32, "%d NICs in a plan made for 32", nics);
}

static void kept(void)
{
    int nics = 2;
    MIG_INVARIANT(nics <= 32, "%d NICs", nics);
    fprintf(stderr, "went on\n");
}

static void oom(void)
{
    /* More than any address space holds: malloc fails, mig_malloc stops. */
    (void)mig_malloc((size_t)-1 / 2);
}

static void test_broken_invariant_stops_with_its_words(void **state)
{
    (void)state;
    char err[4096];
    int st = run_child(broken, err, sizeof(err));
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    assert_non_null(strstr(err, "test_invariant.c:"));
    assert_non_null(strstr(err, "invariant broken: 40 NICs in a plan made for 32"));
}

static void test_kept_invariant_goes_on(void **state)
{
    (void)state;
    char err[4096];
    int st = run_child(kept, err, sizeof(err));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(err, "went on\n");
}

static void test_out_of_memory_says_so(void **state)
{
    (void)state;
    char err[8192];
    int st = run_child(oom, err, sizeof(err));
    assert_true(WIFSIGNALED(st));
    assert_non_null(strstr(err, "out of memory"));
}

UNIT_TEST_MAIN(NULL, NULL,
               cmocka_unit_test(test_broken_invariant_stops_with_its_words),
               cmocka_unit_test(test_kept_invariant_goes_on),
               cmocka_unit_test(test_out_of_memory_says_so))
