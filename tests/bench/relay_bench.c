/*
 * relay_bench.c: measures one mig_ssh_relay (throughput, peak RSS) on a fresh
 * loop, or runs one mig_ssh_exec for manual checks.
 *
 *   relay_bench --identity KEY --known-hosts FILE [--port P] [--user U]
 *               [--buffer BYTES] [--limit BYTES_S] [--ciphers LIST]
 *               SRC_HOST 'SRC_CMD' DST_HOST 'DST_CMD'
 *   relay_bench --identity KEY --known-hosts FILE [--port P] exec HOST 'CMD'
 *
 * Relay mode prints: relay bytes=N seconds=S rate_MBps=R maxrss_kB=K
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <uv.h>

#include "err.h"
#include "log.h"
#include "ssh.h"

struct bench {
    struct mig_ssh_pool *pool;
    int rc;
    uint64_t t0;
};

static void on_pool_closed(void *arg)
{
    (void)arg;
}

static void print_result(const char *side, const struct mig_ssh_result *r)
{
    printf("%s: err=%d (%s) exit=%d\n", side, r->err_code, mig_strerror(r->err_code),
           r->exit_status);
    if (r->err_code != 0)
        printf("%s: detail: %s\n", side, r->detail);
    printf("%s: stdout (%zu bytes):\n%s\n", side, r->out_len, r->out);
    printf("%s: stderr (%zu bytes):\n%s\n", side, r->err_len, r->err);
}

static void on_exec_done(void *arg, const struct mig_ssh_result *res)
{
    struct bench *b = arg;
    print_result("exec", res);
    b->rc = res->err_code != 0 ? 2 : res->exit_status;
    mig_ssh_pool_close(b->pool, on_pool_closed, NULL);
}

static void on_relay_progress(void *arg, uint64_t bytes)
{
    (void)arg;
    fprintf(stderr, "\rprogress %llu MB", (unsigned long long)(bytes >> 20));
}

static void on_relay_done(void *arg, const struct mig_ssh_relay_result *res)
{
    struct bench *b = arg;
    double secs = (double)(uv_hrtime() - b->t0) / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(stderr, "\n");
    if (res->err_code != 0 || res->src.exit_status != 0 || res->dst.exit_status != 0) {
        fprintf(stderr, "relay failed: %s: %s\n", mig_strerror(res->err_code), res->detail);
        fprintf(stderr, "src exit=%d stderr=%s\ndst exit=%d stderr=%s\n", res->src.exit_status,
                res->src.err, res->dst.exit_status, res->dst.err);
        b->rc = 2;
    }
    printf("relay bytes=%llu seconds=%.3f rate_MBps=%.1f maxrss_kB=%ld\n",
           (unsigned long long)res->bytes, secs, (double)res->bytes / secs / 1e6, ru.ru_maxrss);
    mig_ssh_pool_close(b->pool, on_pool_closed, NULL);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: relay_bench --identity KEY --known-hosts FILE [--port P] [--user U]\n"
            "         [--buffer BYTES] [--limit BYTES_S] [--ciphers LIST] [--progress]\n"
            "         SRC_HOST SRC_CMD DST_HOST DST_CMD\n"
            "       relay_bench ... exec HOST CMD\n");
    exit(64);
}

int main(int argc, char **argv)
{
    struct mig_ssh_opts opts = {.user = "root", .port = 22, .connect_timeout_s = 10};
    struct mig_ssh_relay_opts ropts = {0};
    bool progress = false;
    int i = 1;

    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--progress") == 0) {
            progress = true;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (strcmp(a, "--identity") == 0)
            opts.identity = v;
        else if (strcmp(a, "--known-hosts") == 0)
            opts.known_hosts = v;
        else if (strcmp(a, "--port") == 0)
            opts.port = atoi(v);
        else if (strcmp(a, "--user") == 0)
            opts.user = v;
        else if (strcmp(a, "--ciphers") == 0)
            opts.ciphers = v;
        else if (strcmp(a, "--buffer") == 0)
            ropts.buffer_bytes = strtoull(v, NULL, 10);
        else if (strcmp(a, "--limit") == 0)
            ropts.limit_bytes_s = strtoull(v, NULL, 10);
        else
            usage();
    }
    if (!opts.identity || !opts.known_hosts)
        usage();
    mig_log_init("relay_bench", MIG_LOG_WARN, NULL);

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct bench b = {0};
    int rc = mig_ssh_pool_new(&loop, &opts, &b.pool);
    if (rc < 0) {
        fprintf(stderr, "pool: %s\n", mig_strerror(rc));
        return 1;
    }
    if (argc - i == 3 && strcmp(argv[i], "exec") == 0) {
        rc = mig_ssh_exec(b.pool, argv[i + 1], argv[i + 2], NULL, 0, 600, on_exec_done, &b);
    } else if (argc - i == 4) {
        b.t0 = uv_hrtime();
        rc = mig_ssh_relay(b.pool, argv[i], argv[i + 1], argv[i + 2], argv[i + 3], &ropts,
                           progress ? on_relay_progress : NULL, on_relay_done, &b);
    } else {
        usage();
    }
    if (rc < 0) {
        fprintf(stderr, "start: %s\n", mig_strerror(rc));
        return 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "loop not empty at exit\n");
        return 3;
    }
    return b.rc;
}
