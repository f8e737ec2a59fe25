/*
 * test_ssh.c: the SSH adapter (lib/ssh.c) where the process runs out of
 * file descriptors: an operation that cannot have a socket fails with a
 * code its caller reports (-EMFILE), nothing aborts, and once descriptors
 * are free again the next operation gets a socket and runs to its end (a
 * refused connection on a loopback port nobody listens on).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "err.h"
#include "ssh.h"
#include "unit.h"

struct outcome {
    int calls;
    int err;
    char detail[256];
};

static void on_exec(void *arg, const struct mig_ssh_result *res)
{
    struct outcome *o = arg;
    o->calls++;
    o->err = res->err_code;
    snprintf(o->detail, sizeof(o->detail), "%s", res->detail);
}

static void on_closed(void *arg)
{
    *(int *)arg = 1;
}

/* A loopback port with no listener: bind one, note it, close it. */
static int free_port(void)
{
    uv_loop_t loop;
    uv_tcp_t t;
    struct sockaddr_in a;
    int len = sizeof(a);
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_tcp_init(&loop, &t);
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&t, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_tcp_getsockname(&t, (struct sockaddr *)&a, &len), 0);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return ntohs(a.sin_port);
}

static void test_no_descriptor_fails_the_operation_not_migd(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct mig_ssh_opts opts = {.user = "root",
                                .port = free_port(),
                                .identity = "/nonexistent/id",
                                .known_hosts = "/dev/null",
                                .connect_timeout_s = 5};
    struct mig_ssh_pool *pool = NULL;
    assert_int_equal(mig_ssh_pool_new(&loop, &opts, &pool), 0);

    /* Use up every descriptor under a low limit. */
    struct rlimit saved, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    low = saved;
    low.rlim_cur = 64;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fds[64], nfds = 0;
    for (int fd; nfds < 64 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;)
        fds[nfds++] = fd;
    assert_true(open("/dev/null", O_RDONLY) < 0 && errno == EMFILE);

    struct outcome o = {0};
    int rc = mig_ssh_exec(pool, "127.0.0.1", "true", NULL, 0, 5, on_exec, &o);
    assert_int_equal(rc, -EMFILE);
    rc = mig_ssh_relay(pool, "127.0.0.1", "zfs send x", "127.0.0.1", "zfs receive y", NULL,
                       NULL, (mig_ssh_relay_cb)on_exec, &o);
    assert_int_equal(rc, -EMFILE);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(o.calls, 0); /* refused at once: no callback follows */

    /* Descriptors free again: the next operation runs to its end. */
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    rc = mig_ssh_exec(pool, "127.0.0.1", "true", NULL, 0, 5, on_exec, &o);
    assert_int_equal(rc, 0);
    while (o.calls == 0)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.err, MIG_ESSH);
    assert_non_null(strstr(o.detail, "connect"));

    int closed = 0;
    mig_ssh_pool_close(pool, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static struct mig_ssh_result side(int status, const char *err)
{
    struct mig_ssh_result r = {.exit_status = status, .err = err, .err_len = strlen(err)};
    return r;
}

/* Which side of a failed relay says why. */
static void test_relay_speaker(void **state)
{
    (void)state;
    struct mig_ssh_relay_result r = {0};
    /* The receiver refused the stream: it speaks, whatever the sender said. */
    r.src = side(1, "warning: cannot send 'zones/x@s': Broken pipe\n");
    r.dst = side(1, "cannot receive new filesystem stream: checksum mismatch\n");
    assert_ptr_equal(mig_ssh_relay_speaker(&r), &r.dst);
    /* The receiver only saw the stream end: the sender that died says why. */
    r.src = side(1, "Traceback (most recent call last):\nValueError: 1.07K\n");
    r.dst = side(1, "cannot receive: failed to read from stream\n");
    assert_ptr_equal(mig_ssh_relay_speaker(&r), &r.src);
    /* ... unless the sender said nothing, or did not fail: then the receiver's words. */
    r.src = side(1, "");
    assert_ptr_equal(mig_ssh_relay_speaker(&r), &r.dst);
    r.src = side(0, "TIME SENT SNAPSHOT\n");
    assert_ptr_equal(mig_ssh_relay_speaker(&r), &r.dst);
    /* An unknown status (-1: the channel never said) is no failure of its own. */
    r.src = side(-1, "something\n");
    assert_ptr_equal(mig_ssh_relay_speaker(&r), &r.dst);
    /* Only the sender failed: it speaks. */
    r.src = side(2, "cannot open 'zones/x@s': dataset does not exist\n");
    r.dst = side(0, "");
    assert_ptr_equal(mig_ssh_relay_speaker(&r), &r.src);
}

UNIT_TEST_MAIN(NULL, NULL,
               cmocka_unit_test(test_relay_speaker),
               cmocka_unit_test(test_no_descriptor_fails_the_operation_not_migd))
