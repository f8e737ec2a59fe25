/*
 * fuzz_conns.c: a libFuzzer target for the control API with several
 * clients at once on one loop (daemon/control.c in front of the real
 * engine, fuzz_harness.h): partial request heads and bodies of up to four
 * connections interleaved, clients that leave before their answer (in the
 * middle of a GET /jobs page, a submission, a watch), and the server's
 * per-connection state (the head check, the submission queue, the pages
 * being sliced) shared between them.
 *
 * An input is a script, optionally followed by FUZZ_WORLD_MARK and the
 * world (as for fuzz_control).  Each step is one byte b, then what it
 * needs: client b & 3; (b >> 2) & 3 is 0 or 1: write the next L bytes,
 * L being the next byte of the script; 2: shut the write side; 3: leave
 * (close without reading).  After each step the loop turns once, so the
 * server sees partial requests.  At the end, every client still writing
 * shuts, and the loop runs until each has its answer.
 *
 * Every answer must pass fuzz_check_answer; the "request refused" lines
 * must number at least the answers >= 400, and at most that plus the
 * clients that left.
 *
 * Run: fuzz_conns -max_len=131072 [-max_total_time=60]
 *      [-dict=tests/fuzz/control.dict] CORPUS_DIR
 */
#define _GNU_SOURCE /* memmem: the tests run on Linux */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "fuzz_harness.h"

#define CLIENTS 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uv_loop_t *loop = fuzz_setup();
    size_t n = fuzz_world_set(data, size);
    fuzz_log_begin();

    struct fuzz_client cl[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        fuzz_client_open(&cl[i]);
    bool wrote_post = false;
    for (size_t at = 0; at < n;) {
        uint8_t b = data[at++];
        struct fuzz_client *c = &cl[b & 3];
        switch ((b >> 2) & 3) {
        case 0:
        case 1: {
            size_t len = at < n ? data[at++] : 0;
            if (len > n - at)
                len = n - at;
            fuzz_client_write(c, data + at, len);
            at += len;
            break;
        }
        case 2:
            fuzz_client_shut(c);
            break;
        default:
            fuzz_client_abandon(c);
            break;
        }
        uv_run(loop, UV_RUN_NOWAIT);
    }
    wrote_post = memmem(data, n, "POST", 4) != NULL;
    for (int i = 0; i < CLIENTS; i++)
        fuzz_client_shut(&cl[i]);
    for (;;) {
        bool all = true;
        for (int i = 0; i < CLIENTS; i++)
            all = all && cl[i].done;
        if (all)
            break;
        uv_run(loop, UV_RUN_ONCE);
    }
    size_t errors = 0, left = 0;
    for (int i = 0; i < CLIENTS; i++) {
        if (cl[i].abandoned && !cl[i].cut) {
            left++;
            continue;
        }
        int status = fuzz_check_answer(cl[i].in, cl[i].in_len, cl[i].cut);
        errors += status >= 400;
        if (getenv("FUZZ_SHOW_LOG") != NULL)
            fprintf(stderr, "fuzz_conns: client %d: status %d, %zu bytes in, %zu of %zu out\n", i,
                    status, cl[i].in_len, cl[i].out_off, cl[i].out_len);
    }
    for (int i = 0; i < CLIENTS; i++)
        fuzz_client_close(&cl[i]);
    fuzz_settle(wrote_post);
    size_t refused = fuzz_log_end();
    if (refused < errors || refused > errors + left) {
        fprintf(stderr, "fuzz_conns: %zu refusal lines for %zu error answers, %zu clients left\n",
                refused, errors, left);
        fuzz_finding("refusals not logged once per error answer", "", 0);
    }
    return 0;
}
