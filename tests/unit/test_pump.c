/*
 * test_pump.c: unit tests of the bounded stream pump (lib/pump.c) with a fake
 * source and sink that block (MIG_EAGAIN), fail or end at scripted moments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "pump.h"
#include "unit.h"

/* The byte at offset off of the test stream: a hash, so any shift shows. */
static unsigned char stream_byte(uint64_t off)
{
    uint64_t x = off * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    return (unsigned char)x;
}

/* Deterministic generator for chunk sizes and blocking decisions. */
static uint32_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint32_t)(*s >> 11);
}

struct fake_src {
    const struct mig_pump *p; /* to check the pump's invariants from inside read */
    uint64_t total;           /* stream length; UINT64_MAX: endless */
    uint64_t off;
    size_t max_chunk;         /* largest chunk returned by one read */
    unsigned block_one_in;    /* answer EAGAIN once in N calls (0: never) */
    uint64_t fail_at;         /* return fail_code once off reaches this (0: never) */
    int fail_code;
    uint64_t seed;
    unsigned calls;
    unsigned eagains;
    uint64_t max_inflight;    /* largest bytes_in - bytes_out seen */
};

struct fake_dst {
    uint64_t off;
    size_t max_chunk;
    unsigned block_one_in;
    bool blocked;             /* answer EAGAIN always */
    int fail_code;            /* return this on every call when set */
    uint64_t seed;
    unsigned calls;
    unsigned eagains;
    uint64_t mismatches;
};

static ssize_t fake_read(void *arg, char *buf, size_t len)
{
    struct fake_src *s = arg;
    const struct mig_pump *p = s->p;

    s->calls++;
    /* The pump must never read without room or past end of stream. */
    assert_true(len > 0);
    assert_true(p->len + len <= p->cap);
    assert_false(p->src_eof);
    uint64_t inflight = p->bytes_in - p->bytes_out;
    if (inflight > s->max_inflight)
        s->max_inflight = inflight;
    assert_true(inflight <= p->cap);

    if (s->fail_at != 0 && s->off >= s->fail_at)
        return s->fail_code;
    if (s->block_one_in != 0 && rng_next(&s->seed) % s->block_one_in == 0) {
        s->eagains++;
        return MIG_EAGAIN;
    }
    if (s->off >= s->total)
        return 0;
    size_t n = len;
    if (s->max_chunk != 0) {
        size_t c = 1 + rng_next(&s->seed) % s->max_chunk;
        if (n > c)
            n = c;
    }
    if (s->total - s->off < n)
        n = (size_t)(s->total - s->off);
    if (s->fail_at != 0 && s->fail_at - s->off < n)
        n = (size_t)(s->fail_at - s->off);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)stream_byte(s->off + i);
    s->off += n;
    return (ssize_t)n;
}

static ssize_t fake_write(void *arg, const char *buf, size_t len)
{
    struct fake_dst *d = arg;

    d->calls++;
    assert_true(len > 0);
    if (d->fail_code != 0)
        return d->fail_code;
    if (d->blocked || (d->block_one_in != 0 && rng_next(&d->seed) % d->block_one_in == 0)) {
        d->eagains++;
        return MIG_EAGAIN;
    }
    size_t n = len;
    if (d->max_chunk != 0) {
        size_t c = 1 + rng_next(&d->seed) % d->max_chunk;
        if (n > c)
            n = c;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] != stream_byte(d->off + i))
            d->mismatches++;
    d->off += n;
    return (ssize_t)n;
}

static const struct mig_pump_io fake_io = {fake_read, fake_write};

/* A pump and the fake source and sink it moves a stream between. */
struct rig {
    struct mig_pump p;
    struct fake_src s;
    struct fake_dst d;
};

/* Makes r's pump of cap bytes between source s and sink d (s.p is set to the pump). */
static void rig_init(struct rig *r, size_t cap, struct fake_src s, struct fake_dst d)
{
    r->s = s;
    r->s.p = &r->p;
    r->d = d;
    assert_int_equal(mig_pump_init(&r->p, cap), 0);
}

/* mig_pump_run on r with budget (0: no budget). */
static int run(struct rig *r, uint64_t budget)
{
    return mig_pump_run(&r->p, &fake_io, &r->s, &r->d, budget);
}

/* A full buffer and a blocked sink: the source is not read again, memory stays at cap. */
static void test_backpressure(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 4096, (struct fake_src){.total = UINT64_MAX, .max_chunk = 1000, .seed = 1},
             (struct fake_dst){.blocked = true});

    assert_int_equal(run(&r, 0), 0);
    assert_int_equal(r.p.bytes_in, 4096);
    assert_int_equal(r.p.len, 4096);
    assert_int_equal(r.p.bytes_out, 0);
    assert_true(r.p.dst_blocked);
    assert_false(mig_pump_wants_read(&r.p));
    assert_true(mig_pump_wants_write(&r.p));
    unsigned reads = r.s.calls;
    for (int i = 0; i < 100; i++)
        assert_int_equal(run(&r, 0), 0);
    assert_int_equal(r.s.calls, reads); /* full: never read while blocked */
    assert_int_equal(r.p.bytes_in, 4096);

    /* The sink opens: the buffer drains and is refilled up to the budget. */
    r.d.blocked = false;
    uint64_t before = r.p.bytes_in;
    assert_int_equal(run(&r, 10000), 0);
    assert_int_equal(r.p.bytes_in - before, 10000);
    assert_int_equal(r.p.bytes_out, r.p.bytes_in);
    assert_int_equal(r.d.mismatches, 0);
    assert_true(r.s.max_inflight <= 4096);
    mig_pump_free(&r.p);
}

/* Several MB with odd chunk sizes and random blocking on both sides arrive intact. */
static void test_integrity(void **state)
{
    (void)state;
    const uint64_t total = 5u * 1024 * 1024 + 12345;
    struct rig r;
    rig_init(&r, 65536 + 7,
             (struct fake_src){.total = total, .max_chunk = 9001, .block_one_in = 5, .seed = 42},
             (struct fake_dst){.max_chunk = 7777, .block_one_in = 4, .seed = 7});

    int rc = 0;
    unsigned runs = 0;
    while ((rc = run(&r, 0)) == 0)
        assert_true(++runs < 10000000);
    assert_int_equal(rc, 1);
    assert_int_equal(r.d.off, total);
    assert_int_equal(r.d.mismatches, 0);
    assert_int_equal(r.p.bytes_in, total);
    assert_int_equal(r.p.bytes_out, total);
    assert_true(r.s.max_inflight <= r.p.cap);
    /* Blocking really happened on both sides, and the pump came back for more. */
    assert_true(r.s.eagains > 100);
    assert_true(r.d.eagains > 100);
    assert_true(runs > 10);
    /* Once ended it stays ended and touches nothing. */
    unsigned reads = r.s.calls, writes = r.d.calls;
    assert_int_equal(run(&r, 0), 1);
    assert_int_equal(r.s.calls, reads);
    assert_int_equal(r.d.calls, writes);
    mig_pump_free(&r.p);
}

/* A tiny buffer against a stream much larger than it. */
static void test_integrity_tiny_buffer(void **state)
{
    (void)state;
    const uint64_t total = 3u * 1024 * 1024 + 1;
    struct rig r;
    rig_init(&r, 13,
             (struct fake_src){.total = total, .max_chunk = 11, .block_one_in = 3, .seed = 9},
             (struct fake_dst){.max_chunk = 5, .block_one_in = 2, .seed = 3});
    int rc;
    while ((rc = run(&r, 0)) == 0)
        ;
    assert_int_equal(rc, 1);
    assert_int_equal(r.d.off, total);
    assert_int_equal(r.d.mismatches, 0);
    assert_true(r.s.max_inflight <= 13);
    mig_pump_free(&r.p);
}

/* EOF from the source is reported (1) only once every byte has been written. */
static void test_eof_waits_for_drain(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 1024, (struct fake_src){.total = 500}, (struct fake_dst){.blocked = true});

    assert_int_equal(run(&r, 0), 0);
    assert_true(r.p.src_eof);
    assert_int_equal(r.p.len, 500);
    assert_false(mig_pump_wants_read(&r.p));
    assert_int_equal(run(&r, 0), 0);

    r.d.blocked = false;
    r.d.max_chunk = 200; /* several writes needed */
    r.d.seed = 5;
    assert_int_equal(run(&r, 0), 1);
    assert_int_equal(r.d.off, 500);
    assert_int_equal(r.d.mismatches, 0);
    assert_false(mig_pump_wants_write(&r.p));
    mig_pump_free(&r.p);
}

/* An empty stream ends at once. */
static void test_eof_empty(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 64, (struct fake_src){.total = 0}, (struct fake_dst){0});
    assert_int_equal(run(&r, 0), 1);
    assert_int_equal(r.d.calls, 0);
    assert_int_equal(r.p.bytes_out, 0);
    mig_pump_free(&r.p);
}

/* A source error stops the pump, is kept, and no further I/O happens. */
static void test_error_source(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 4096,
             (struct fake_src){.total = UINT64_MAX,
                               .max_chunk = 300,
                               .seed = 3,
                               .fail_at = 10000,
                               .fail_code = MIG_ESSH},
             (struct fake_dst){.max_chunk = 100, .seed = 4});
    int rc;
    while ((rc = run(&r, 0)) == 0)
        ;
    assert_int_equal(rc, MIG_ESSH);
    assert_int_equal(r.p.error, MIG_ESSH);
    assert_int_equal(r.p.bytes_in, 10000);
    assert_int_equal(r.d.mismatches, 0);
    unsigned reads = r.s.calls, writes = r.d.calls;
    assert_int_equal(run(&r, 0), MIG_ESSH);
    assert_int_equal(r.s.calls, reads);
    assert_int_equal(r.d.calls, writes);
    assert_false(mig_pump_wants_read(&r.p));
    assert_false(mig_pump_wants_write(&r.p));
    mig_pump_free(&r.p);
}

/* A sink error is propagated the same way. */
static void test_error_sink(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 4096, (struct fake_src){.total = 100000, .seed = 3},
             (struct fake_dst){.fail_code = -EPIPE});
    assert_int_equal(run(&r, 0), -EPIPE);
    assert_int_equal(r.p.error, -EPIPE);
    assert_int_equal(r.p.bytes_out, 0);
    assert_int_equal(run(&r, 0), -EPIPE);
    mig_pump_free(&r.p);
}

/* The budget bounds the bytes read per run, exactly, and the stream still completes. */
static void test_budget(void **state)
{
    (void)state;
    const uint64_t total = 100000;
    struct rig r;
    rig_init(&r, 65536, (struct fake_src){.total = total, .max_chunk = 777, .seed = 11},
             (struct fake_dst){0});

    unsigned runs = 0;
    int rc;
    for (;;) {
        uint64_t before = r.p.bytes_in;
        rc = run(&r, 1000);
        uint64_t got = r.p.bytes_in - before;
        assert_true(got <= 1000);
        if (rc != 0)
            break;
        /* Unblocked source: a run stops only because the budget is spent. */
        assert_int_equal(got, 1000);
        runs++;
    }
    assert_int_equal(rc, 1);
    assert_int_equal(runs, total / 1000);
    assert_int_equal(r.d.off, total);
    assert_int_equal(r.d.mismatches, 0);
    mig_pump_free(&r.p);
}

/* The blocked flags say which side stopped the pump. */
static void test_blocked_flags(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, 100, (struct fake_src){.total = 50}, (struct fake_dst){0});
    r.s.block_one_in = 1; /* always EAGAIN */
    assert_int_equal(run(&r, 0), 0);
    assert_true(r.p.src_blocked);
    assert_false(r.p.dst_blocked);
    assert_true(mig_pump_wants_read(&r.p));
    assert_false(mig_pump_wants_write(&r.p));
    r.s.block_one_in = 0;
    assert_int_equal(run(&r, 0), 1);
    assert_false(r.p.src_blocked);
    assert_int_equal(r.d.off, 50);
    mig_pump_free(&r.p);
}

UNIT_TEST_MAIN(NULL, NULL,
               cmocka_unit_test(test_backpressure),
               cmocka_unit_test(test_integrity),
               cmocka_unit_test(test_integrity_tiny_buffer),
               cmocka_unit_test(test_eof_waits_for_drain),
               cmocka_unit_test(test_eof_empty),
               cmocka_unit_test(test_error_source),
               cmocka_unit_test(test_error_sink),
               cmocka_unit_test(test_budget),
               cmocka_unit_test(test_blocked_flags))
