/*
 * bench_store.c: what a durable journal costs.  Times N journal writes, the
 * way the executor makes them (mig_store_action_save_timed with the job's
 * record: "started" then "done" for each action), on a store in a fresh
 * directory on the real disk, once with synchronous = NORMAL (a power loss
 * may roll back the last commits) and once with FULL (what migd uses: every
 * commit synced).  Prints the best of 3 runs of each:
 *
 *   journal writes=N normal_us=A full_us=B per_write_us_normal=a
 *       per_write_us_full=b per_action_cost_us=C
 *
 * (one line; per_action_cost_us is what FULL adds to one action, i.e. two
 * writes).  A program that prints numbers; it never passes or fails.
 *
 *   bench_store [N [DIR]]   (default: 2000 writes, in /var/tmp)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "store.h"

#define RUNS 3

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A job whose record has the size of a real one (datasets, NICs, zonecfg). */
static struct mig_job *bench_job(void)
{
    struct mig_job *j = mig_job_new();
    snprintf(j->vm_uuid, sizeof(j->vm_uuid), "aaaaaaaa-0000-4000-8000-000000000001");
    snprintf(j->source_server_uuid, sizeof(j->source_server_uuid),
             "44454c4c-3200-1042-8050-b4c04f383432");
    snprintf(j->target_server_uuid, sizeof(j->target_server_uuid),
             "44454c4c-3400-1042-8050-b4c04f383432");
    j->state = MIG_JOB_RUNNING;
    j->phase = MIG_PHASE_SYNC;
    j->created = 1000;
    j->ctx.ndatasets = 2;
    snprintf(j->ctx.datasets[0].name, sizeof(j->ctx.datasets[0].name), "zones/%s", j->vm_uuid);
    snprintf(j->ctx.datasets[1].name, sizeof(j->ctx.datasets[1].name), "zones/%s-disk0",
             j->vm_uuid);
    j->ctx.nnics = 1;
    snprintf(j->ctx.nics[0].mac, sizeof(j->ctx.nics[0].mac), "90:b8:d0:01:02:00");
    snprintf(j->ctx.nics[0].ip, sizeof(j->ctx.nics[0].ip), "10.0.0.5");
    char zonecfg[2048];
    size_t len = 0;
    for (int i = 0; len + 64 < sizeof(zonecfg); i++)
        len += (size_t)snprintf(zonecfg + len, sizeof(zonecfg) - len,
                                "add attr; set name=a%03d; set value=v; end\n", i);
    mig_job_set_zonecfg(j, zonecfg);
    return j;
}

/* Microseconds for n journal writes (n/2 actions, started then done) at level. */
static int64_t run(const char *dir, int n, int level)
{
    char path[512], err[256];
    snprintf(path, sizeof(path), "%s/bench_store.%ld.sqlite", dir, (long)getpid());
    struct mig_store *st = NULL;
    if (mig_store_open(path, &st, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_store: %s\n", err);
        exit(1);
    }
    if (mig_store_set_synchronous(st, level) != 0 || mig_store_synchronous(st) != level) {
        fprintf(stderr, "bench_store: cannot set synchronous to %d\n", level);
        exit(1);
    }
    struct mig_job *j = bench_job();
    int64_t t0 = now_us();
    for (int i = 0; i < n; i++) {
        char key[64];
        snprintf(key, sizeof(key), "sync.send@%d#0", i / 2);
        j->progress.bytes_sent += 4096;
        enum mig_action_status status = i % 2 == 0 ? MIG_ACTION_STARTED : MIG_ACTION_DONE;
        if (mig_store_action_save_timed(st, j, key, "sync", "source", status, NULL,
                                        status == MIG_ACTION_DONE ? 12 : -1) != 0) {
            fprintf(stderr, "bench_store: journal write %d failed\n", i);
            exit(1);
        }
    }
    int64_t us = now_us() - t0;
    mig_job_free(j);
    mig_store_close(st);
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char p[600];
        snprintf(p, sizeof(p), "%s%s", path, suffixes[i]);
        unlink(p);
    }
    return us;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    const char *dir = argc > 2 ? argv[2] : "/var/tmp";
    if (n < 2) {
        fprintf(stderr, "usage: bench_store [N [DIR]]  (N >= 2)\n");
        return 2;
    }
    mig_log_init("bench_store", MIG_LOG_ERROR, NULL);
    int64_t best[3] = {0, INT64_MAX, INT64_MAX}; /* by level: 1 NORMAL, 2 FULL */
    for (int r = 0; r < RUNS; r++) {
        /* Interleaved, so that a disk busy for a while weighs on both. */
        for (int level = 1; level <= 2; level++) {
            int64_t us = run(dir, n, level);
            if (us < best[level])
                best[level] = us;
        }
    }
    double pw_normal = (double)best[1] / n, pw_full = (double)best[2] / n;
    printf("journal writes=%d normal_us=%lld full_us=%lld per_write_us_normal=%.1f "
           "per_write_us_full=%.1f per_action_cost_us=%.1f dir=%s\n",
           n, (long long)best[1], (long long)best[2], pw_normal, pw_full,
           2 * (pw_full - pw_normal), dir);
    return 0;
}
