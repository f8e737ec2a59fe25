/*
 * test_window.c: maintenance windows (lib/window.c): parsing and its
 * refusals, a window inside one day and across midnight, and the two days
 * a year the clocks move (Europe/Berlin and America/New_York), where a
 * window is an hour shorter or longer as the wall clock says.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "window.h"

/* ms since the epoch of a UTC time. */
static int64_t utc(int y, int mon, int d, int h, int mi)
{
    struct tm t = {.tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d, .tm_hour = h,
                   .tm_min = mi};
    return (int64_t)timegm(&t) * 1000;
}

static struct mig_window parsed(const char *spec)
{
    struct mig_window w;
    char err[200];
    int rc = mig_window_parse(spec, &w, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s: %s", spec, err);
    return w;
}

static void assert_window(const char *spec, int64_t now, int64_t want_open, int64_t want_close)
{
    struct mig_window w = parsed(spec);
    int64_t o = 0, c = 0;
    assert_int_equal(mig_window_at(&w, now, &o, &c), 0);
    assert_int_equal(o, want_open);
    assert_int_equal(c, want_close);
}

static void test_parse(void **state)
{
    (void)state;
    struct mig_window w = parsed("22:00-02:30");
    assert_true(w.set);
    assert_int_equal(w.open_min, 22 * 60);
    assert_int_equal(w.close_min, 2 * 60 + 30);
    assert_string_equal(w.tz, "UTC");
    w = parsed("01:05-03:00,Europe/Berlin");
    assert_string_equal(w.tz, "Europe/Berlin");
    char buf[100];
    mig_window_format(&w, buf, sizeof(buf));
    assert_string_equal(buf, "01:05-03:00,Europe/Berlin");
    static const char *const bad[] = {
        "",           "22:00",        "22:00-",        "2:00-03:00",      "24:00-01:00",
        "22:60-23:00", "22:00-22:00", "22:00-23:00,",  "22:00-23:00,Mars/Olympus",
        "22:00-23:00,../etc/passwd", "22:00-23:00,/etc/localtime", "22:00-23:00 UTC",
        "22:00-23:00,Europe/Berlin;reboot"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[200] = "";
        struct mig_window keep = {.set = false};
        assert_int_equal(mig_window_parse(bad[i], &keep, err, sizeof(err)), -22);
        assert_false(keep.set);
        assert_true(err[0] != '\0' && strchr(err, '\n') == NULL);
    }
}

static void test_within_a_day_and_across_midnight(void **state)
{
    (void)state;
    /* Before today's window, inside it, after it (tomorrow's). */
    assert_window("10:00-12:00", utc(2026, 6, 1, 9, 0), utc(2026, 6, 1, 10, 0),
                  utc(2026, 6, 1, 12, 0));
    assert_window("10:00-12:00", utc(2026, 6, 1, 11, 59), utc(2026, 6, 1, 10, 0),
                  utc(2026, 6, 1, 12, 0));
    assert_window("10:00-12:00", utc(2026, 6, 1, 12, 0), utc(2026, 6, 2, 10, 0),
                  utc(2026, 6, 2, 12, 0));
    /* 22:00-02:00: at 01:00 the window opened yesterday; at 03:00 the next opens tonight. */
    assert_window("22:00-02:00", utc(2026, 6, 1, 1, 0), utc(2026, 5, 31, 22, 0),
                  utc(2026, 6, 1, 2, 0));
    assert_window("22:00-02:00", utc(2026, 6, 1, 3, 0), utc(2026, 6, 1, 22, 0),
                  utc(2026, 6, 2, 2, 0));
    assert_window("22:00-02:00", utc(2026, 6, 1, 23, 0), utc(2026, 6, 1, 22, 0),
                  utc(2026, 6, 2, 2, 0));
    /* The last day of a year and of a leap February. */
    assert_window("23:30-00:30", utc(2026, 12, 31, 23, 45), utc(2026, 12, 31, 23, 30),
                  utc(2027, 1, 1, 0, 30));
    assert_window("23:00-01:00", utc(2028, 2, 29, 12, 0), utc(2028, 2, 29, 23, 0),
                  utc(2028, 3, 1, 1, 0));
    /* A zone east of UTC: 01:00-03:00 Berlin in winter is 00:00-02:00 UTC. */
    assert_window("01:00-03:00,Europe/Berlin", utc(2026, 1, 10, 12, 0), utc(2026, 1, 11, 0, 0),
                  utc(2026, 1, 11, 2, 0));
    /* And in summer 23:00-01:00 UTC. */
    assert_window("01:00-03:00,Europe/Berlin", utc(2026, 7, 10, 12, 0), utc(2026, 7, 10, 23, 0),
                  utc(2026, 7, 11, 1, 0));
}

static void test_daylight_saving(void **state)
{
    (void)state;
    /*
     * Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
     * 01:00-04:00 lasts two hours that night; 02:30 does not happen, so a
     * window opening then opens at the jump.
     */
    assert_window("01:00-04:00,Europe/Berlin", utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 0, 0),
                  utc(2026, 3, 29, 2, 0));
    assert_window("02:30-04:00,Europe/Berlin", utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 1, 0),
                  utc(2026, 3, 29, 2, 0));
    /* 2026-10-25: 03:00 CEST goes back to 02:00 CET (01:00 UTC); 02:30 happens twice. */
    assert_window("01:00-04:00,Europe/Berlin", utc(2026, 10, 24, 12, 0), utc(2026, 10, 24, 23, 0),
                  utc(2026, 10, 25, 3, 0));
    assert_window("02:30-05:00,Europe/Berlin", utc(2026, 10, 24, 12, 0),
                  utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 4, 0));
    /* America/New_York 2026-03-08 02:00 EST -> 03:00 EDT, across midnight. */
    assert_window("23:00-03:00,America/New_York", utc(2026, 3, 7, 12, 0), utc(2026, 3, 8, 4, 0),
                  utc(2026, 3, 8, 7, 0));
    /* Inside a window while the clocks move: it still closes at the wall time. */
    assert_window("01:00-04:00,Europe/Berlin", utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 0, 0),
                  utc(2026, 3, 29, 2, 0));
    /* The caller's TZ is left as it was. */
    setenv("TZ", "Asia/Tokyo", 1);
    assert_window("10:00-12:00", utc(2026, 6, 1, 9, 0), utc(2026, 6, 1, 10, 0),
                  utc(2026, 6, 1, 12, 0));
    assert_string_equal(getenv("TZ"), "Asia/Tokyo");
    unsetenv("TZ");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_within_a_day_and_across_midnight),
        cmocka_unit_test(test_daylight_saving),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
