/*
 * pump.h: the bounded stream pump between a producer and a consumer that may
 * each answer "would block".  Pure logic, no I/O of its own: the SSH adapter
 * plugs libssh2 channels in; unit tests plug in fakes.  The buffer never
 * grows; when it is full the producer is not read, which is the backpressure
 * that keeps the daemon's memory flat whatever the stream size.
 */
#ifndef MIG_PUMP_H
#define MIG_PUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * read: fills up to len bytes; returns >0 bytes read, 0 at end of stream,
 * MIG_EAGAIN when it would block, another negative code on error.
 * write: returns >0 bytes accepted, MIG_EAGAIN when it would block, or a
 * negative code.
 */
struct mig_pump_io {
    ssize_t (*read)(void *src, char *buf, size_t len);
    ssize_t (*write)(void *dst, const char *buf, size_t len);
};

struct mig_pump {
    char *buf;
    size_t cap;  /* buffer size */
    size_t head; /* index of the first unwritten byte */
    size_t len;  /* bytes buffered */
    uint64_t bytes_in, bytes_out;
    bool src_eof;
    bool src_blocked; /* last read answered MIG_EAGAIN */
    bool dst_blocked; /* last write answered MIG_EAGAIN */
    int error;        /* first error, or 0 */
};

/* Allocates a pump with a cap-byte buffer.  Returns 0 or -ENOMEM. */
int mig_pump_init(struct mig_pump *p, size_t cap);
void mig_pump_free(struct mig_pump *p);

/*
 * Moves as many bytes as possible from src to dst without blocking, reading
 * only into free buffer space and at most `budget` bytes in total (0: no
 * budget; used for rate limiting).  Returns 0 when it stopped because a side
 * would block or the budget is spent, 1 when the stream ended and every byte
 * was written, or a negative code (also kept in p->error).
 */
int mig_pump_run(struct mig_pump *p, const struct mig_pump_io *io, void *src, void *dst,
                 uint64_t budget);

/* True when the pump wants to read (there is room and src has not ended). */
bool mig_pump_wants_read(const struct mig_pump *p);
/* True when the pump has bytes to write. */
bool mig_pump_wants_write(const struct mig_pump *p);

#endif
