/*
 * fuzz_control.c: a libFuzzer target for the control API's request
 * handling (daemon/control.c) in front of the real engine (fuzz_harness.h).
 *
 * Each input is the bytes a client sends on one connection, optionally
 * followed by FUZZ_WORLD_MARK and the world the engine's checks meet (the
 * VM VMAPI returns, CNAPI's servers, the source's zfs list...).  The bytes
 * are written to the socket, the write side is shut, and the loop runs
 * until the server closes the connection.  The answer must pass
 * fuzz_check_answer, and every status >= 400 must be logged as exactly one
 * "request refused" line (none for any other answer).
 *
 * The real engine answers: a POST /jobs runs lib/submit.c's checks against
 * the world (a VM that migrates by default: joyent, running, on cn1; cn2 a
 * target, cn3 older, cn4 reserved), a dry run answers its plan, a job is
 * stored (and removed after the input); GET /jobs pages 240 seeded jobs
 * and one unreadable row in slices; actions act on the seeded unfinished
 * jobs (5eed0000-0000-4000-8000-0000000002{37,38,39}).
 *
 * Run: fuzz_control -max_len=131072 [-max_total_time=60]
 *      [-dict=tests/fuzz/control.dict] CORPUS_DIR
 */
#define _GNU_SOURCE /* memmem: the tests run on Linux */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "fuzz_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uv_loop_t *loop = fuzz_setup();
    size_t n = fuzz_world_set(data, size);
    fuzz_log_begin();

    struct fuzz_client cl;
    fuzz_client_open(&cl);
    fuzz_client_write(&cl, data, n);
    fuzz_client_shut(&cl);
    while (!cl.done)
        uv_run(loop, UV_RUN_ONCE);
    int status = fuzz_check_answer(cl.in, cl.in_len, cl.cut);
    char *in = cl.in;
    size_t in_len = cl.in_len;
    cl.in = NULL;
    fuzz_client_close(&cl);
    fuzz_settle(memmem(data, n, "POST", 4) != NULL);

    size_t refused = fuzz_log_end();
    if (refused != (status >= 400 ? 1u : 0u)) {
        fprintf(stderr, "fuzz_control: %zu refusal lines for status %d\n", refused, status);
        fuzz_finding("a refusal not logged once", in, in_len);
    }
    free(in);
    return 0;
}
