/*
 * pump.c: the bounded ring buffer between a source and a sink that may each
 * answer MIG_EAGAIN (see pump.h).  No I/O of its own and no allocation after
 * init: the buffer is the whole memory cost of a stream, whatever its size.
 */
#include <stdlib.h>

#include "err.h"
#include "pump.h"

int mig_pump_init(struct mig_pump *p, size_t cap)
{
    *p = (struct mig_pump){0};
    if (cap == 0)
        return -EINVAL;
    p->buf = malloc(cap);
    if (p->buf == NULL)
        return -ENOMEM;
    p->cap = cap;
    return 0;
}

void mig_pump_free(struct mig_pump *p)
{
    free(p->buf);
    p->buf = NULL;
    p->cap = p->head = p->len = 0;
}

bool mig_pump_wants_read(const struct mig_pump *p)
{
    return p->error == 0 && !p->src_eof && p->len < p->cap;
}

bool mig_pump_wants_write(const struct mig_pump *p)
{
    return p->error == 0 && p->len > 0;
}

/* Records the first error and returns it. */
static int pump_fail(struct mig_pump *p, ssize_t rc)
{
    if (p->error == 0)
        p->error = (int)rc;
    return p->error;
}

/*
 * Writes buffered bytes until the sink blocks or the buffer is empty.
 * Returns >0 if anything was written, 0 if not, or a negative code.
 */
static ssize_t pump_drain(struct mig_pump *p, const struct mig_pump_io *io, void *dst)
{
    ssize_t total = 0;

    while (p->len > 0) {
        size_t chunk = p->cap - p->head;
        if (chunk > p->len)
            chunk = p->len;
        ssize_t n = io->write(dst, p->buf + p->head, chunk);
        if (n == MIG_EAGAIN || n == 0) {
            /* 0 is outside the contract; treating it as "blocked" avoids a spin. */
            p->dst_blocked = true;
            break;
        }
        if (n < 0)
            return n;
        if ((size_t)n > chunk)
            return -EIO; /* a sink claiming more than it was given is broken */
        p->dst_blocked = false;
        p->head += (size_t)n;
        if (p->head == p->cap)
            p->head = 0;
        p->len -= (size_t)n;
        p->bytes_out += (uint64_t)n;
        total += n;
    }
    if (p->len == 0)
        p->head = 0; /* keep the free space contiguous for the next read */
    return total;
}

/*
 * Reads into free space until the source blocks, ends, the buffer is full or
 * *budget_left (when limited) reaches 0.  Returns >0 if anything was read or
 * EOF was seen, 0 if not, or a negative code.
 */
static ssize_t pump_fill(struct mig_pump *p, const struct mig_pump_io *io, void *src,
                         bool limited, uint64_t *budget_left)
{
    ssize_t total = 0;

    while (!p->src_eof && p->len < p->cap && (!limited || *budget_left > 0)) {
        size_t tail = p->head + p->len;
        if (tail >= p->cap)
            tail -= p->cap;
        size_t room = tail >= p->head ? p->cap - tail : p->head - tail;
        if (p->len == 0)
            room = p->cap - tail;
        if (limited && room > *budget_left)
            room = (size_t)*budget_left;
        ssize_t n = io->read(src, p->buf + tail, room);
        if (n == MIG_EAGAIN) {
            p->src_blocked = true;
            break;
        }
        if (n < 0)
            return n;
        p->src_blocked = false;
        if (n == 0) {
            p->src_eof = true;
            return total + 1;
        }
        if ((size_t)n > room)
            return -EIO;
        p->len += (size_t)n;
        p->bytes_in += (uint64_t)n;
        if (limited)
            *budget_left -= (uint64_t)n;
        total += n;
    }
    return total;
}

int mig_pump_run(struct mig_pump *p, const struct mig_pump_io *io, void *src, void *dst,
                 uint64_t budget)
{
    bool limited = budget != 0;
    uint64_t left = budget;

    if (p->error != 0)
        return p->error;
    for (;;) {
        /* Read first so that writes go out in the largest chunks we have. */
        ssize_t r = pump_fill(p, io, src, limited, &left);
        if (r < 0)
            return pump_fail(p, r);
        ssize_t w = pump_drain(p, io, dst);
        if (w < 0)
            return pump_fail(p, w);
        if (p->src_eof && p->len == 0)
            return 1;
        if (r == 0 && w == 0)
            return 0;
    }
}
