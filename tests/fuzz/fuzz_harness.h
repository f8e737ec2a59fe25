/*
 * fuzz_harness.h: what the control API's fuzz targets share (fuzz_harness.c):
 * the real control server and the real engine (daemon/control.c,
 * engine.c, executor.c, ops.c, metrics.c) on one libuv loop, over a real
 * store seeded with jobs, with a fake world behind the engine's operations
 * (VMAPI, CNAPI and the CNs' commands answered through ops.h's fake hook);
 * clients on the control socket; and the checks every answer must pass.
 *
 * An input may end with FUZZ_WORLD_MARK followed by a JSON object that
 * shapes the world for that input (see fuzz_world_set), so that the
 * submission checks (lib/submit.c, lib/validate.c) meet VMs and CNs the
 * fuzzer chose.
 */
#ifndef FUZZ_HARNESS_H
#define FUZZ_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define FUZZ_WORLD_MARK "\n#WORLD#"

/* One client connection on the control socket. */
struct fuzz_client {
    uv_poll_t poll;
    int fd;
    char *out; /* what is still to be written from out_off on */
    size_t out_len, out_off, out_cap;
    bool want_shut; /* shut the write side once out is written */
    bool shut;
    char *in; /* the answer so far */
    size_t in_len, in_cap;
    bool done;      /* the server closed (or the socket failed) */
    bool abandoned; /* closed by the client before the answer */
    bool cut;       /* left an answer that did not end (a watch): its end is not checked */
    uv_timer_t quiet; /* leaves an answer that stops moving for FUZZ_QUIET_MS */
};

/*
 * A watch of a job that does not move (no job runs here) never ends, as in
 * migd; a client whose watch stream has sent its first line and nothing
 * more for this long leaves, and its answer is checked as cut.
 */
#define FUZZ_QUIET_MS 30

/* Sets the server up on the first call; returns the loop. */
uv_loop_t *fuzz_setup(void);

/*
 * Splits an input into the client's bytes (returned length) and the world
 * after FUZZ_WORLD_MARK, which it applies for this input (a world that is
 * not a JSON object leaves the default one).
 */
size_t fuzz_world_set(const uint8_t *data, size_t size);

/* Starts capturing the log of this input (every refusal must be in it). */
void fuzz_log_begin(void);
/* Stops capturing; returns the number of "request refused" lines. */
size_t fuzz_log_end(void);

/* Connects c to the control socket and starts its I/O. */
void fuzz_client_open(struct fuzz_client *c);
/* Queues bytes to write. */
void fuzz_client_write(struct fuzz_client *c, const void *bytes, size_t n);
/* Shuts the write side once everything queued is written. */
void fuzz_client_shut(struct fuzz_client *c);
/* Closes the socket at once, without reading the answer. */
void fuzz_client_abandon(struct fuzz_client *c);
/* Closes the socket (after done) and frees what c holds. */
void fuzz_client_close(struct fuzz_client *c);

/*
 * Runs the loop until the server holds no connection of this input (a
 * finding if it still holds one after 5 s), then puts the store back as
 * seeded when the input may have changed it.
 */
void fuzz_settle(bool wrote);

/*
 * Checks one connection's answer (see fuzz_harness.c); returns the final
 * status, or 0 for no answer.  A violation aborts (a finding).  cut: the
 * client left before the end, which is then not checked.
 */
int fuzz_check_answer(const char *resp, size_t len, bool cut);
/* Reports a finding and aborts. */
__attribute__((noreturn)) void fuzz_finding(const char *why, const char *resp, size_t len);

#endif
