/* test_converge.c: the forecast of an incremental job and its stall (lib/converge.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "converge.h"
#include "unit.h"

static void test_forecast(void **state)
{
    (void)state;
    /* 40 MB written in the 4 s since the last snapshot, sent in 2 s: 20 MB/s. */
    struct mig_forecast f = mig_forecast(40000000, 2000, 4000, 1500);
    assert_int_equal(f.link_bytes_s, 20000000);
    assert_int_equal(f.write_bytes_s, 10000000);
    /* Next delta: 10 MB/s for the 2 s a round takes = 20 MB, 1 s at 20 MB/s, + 1.5 s. */
    assert_int_equal(f.predicted_ms, 2500);
    char text[200];
    mig_forecast_text(&f, text, sizeof(text));
    assert_string_equal(text, "writes 10.0 MB/s, link 20.0 MB/s; migctl finish now means about "
                              "3 s of downtime");
    /* A VM that writes faster than the link: the forecast grows with each round's length. */
    f = mig_forecast(80000000, 4000, 2000, 1500);
    assert_int_equal(f.write_bytes_s, 40000000);
    assert_int_equal(f.link_bytes_s, 20000000);
    assert_int_equal(f.predicted_ms, 1500 + 8000);
    /* Nothing written: the switch's fixed part only. */
    f = mig_forecast(0, 500, 60000, 1500);
    assert_int_equal(f.predicted_ms, 1500);
    /* A first round (no previous snapshot) or no duration: no forecast. */
    f = mig_forecast(1000, 100, -1, 1500);
    assert_int_equal(f.write_bytes_s, -1);
    assert_int_equal(f.predicted_ms, -1);
    mig_forecast_text(&f, text, sizeof(text));
    assert_non_null(strstr(text, "no forecast yet"));
    f = mig_forecast(1000, 0, 1000, 1500);
    assert_int_equal(f.link_bytes_s, -1);
    assert_int_equal(f.predicted_ms, -1);
}

static void test_stalled(void **state)
{
    (void)state;
    /* Writes 1.4 MB/s over a 1 MB/s link. */
    int64_t w = 1400000, l = 1000000;
    int64_t shrinking[] = {100, 80, 60, 40, 20};
    assert_false(mig_stalled(shrinking, 5, w, l));
    int64_t steady[] = {100, 100, 101, 99, 100};
    assert_true(mig_stalled(steady, 5, w, l)); /* within a tenth: not shrinking */
    int64_t growing[] = {10, 20, 40, 80};
    assert_true(mig_stalled(growing, 4, w, l));
    assert_false(mig_stalled(growing, 3, w, l)); /* three rounds after a first are needed */
    int64_t late_shrink[] = {100, 100, 100, 50};
    assert_false(mig_stalled(late_shrink, 4, w, l));
    int64_t early[] = {50, 100, 100, 100};
    assert_true(mig_stalled(early, 4, w, l));
    /* Steady deltas over a link five times faster: the VM writes between rounds, no stall. */
    assert_false(mig_stalled(steady, 5, 2700000, 15500000));
    /* Rates unknown: the deltas alone decide. */
    assert_true(mig_stalled(steady, 5, -1, -1));
}

UNIT_TEST_MAIN(NULL, NULL,
               cmocka_unit_test(test_forecast),
               cmocka_unit_test(test_stalled))
