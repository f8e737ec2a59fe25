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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "window.h"
#include "unit.h"

/* ms since the epoch of a UTC time written "YYYY-MM-DD HH:MM"; fails the test on another text. */
static int64_t utc(const char *when)
{
    struct tm t = {0};
    if (sscanf(when, "%d-%d-%d %d:%d", &t.tm_year, &t.tm_mon, &t.tm_mday, &t.tm_hour,
               &t.tm_min) != 5)
        fail_msg("not a UTC time: %s", when);
    t.tm_year -= 1900;
    t.tm_mon -= 1;
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

/*
 * Fails the test, naming spec and now, unless the window spec asked at now
 * opens at want_open and closes at want_close (UTC times, as utc() reads them).
 */
static void assert_window(const char *spec, const char *now, const char *want_open,
                          const char *want_close)
{
    struct mig_window w = parsed(spec);
    int64_t o = 0, c = 0;
    int rc = mig_window_at(&w, utc(now), &o, &c);
    if (rc != 0 || o != utc(want_open) || c != utc(want_close))
        fail_msg("%s at %s: rc %d, open %lld close %lld, want open %s (%lld) close %s (%lld)",
                 spec, now, rc, (long long)o, (long long)c, want_open, (long long)utc(want_open),
                 want_close, (long long)utc(want_close));
}

/* One window asked at one time, and the opening and closing it must answer (UTC). */
struct window_case {
    const char *spec, *now, *open, *close;
};

/* assert_window() on each of the n cases. */
static void assert_windows(const struct window_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_window(cases[i].spec, cases[i].now, cases[i].open, cases[i].close);
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

/*
 * Windows inside one day and across midnight, in UTC and in Europe/Berlin,
 * then on the nights the clocks move.
 */
static const struct window_case windows[] = {
    /* Before today's window, inside it, after it (tomorrow's). */
    {"10:00-12:00", "2026-06-01 09:00", "2026-06-01 10:00", "2026-06-01 12:00"},
    {"10:00-12:00", "2026-06-01 11:59", "2026-06-01 10:00", "2026-06-01 12:00"},
    {"10:00-12:00", "2026-06-01 12:00", "2026-06-02 10:00", "2026-06-02 12:00"},
    /* 22:00-02:00: at 01:00 the window opened yesterday; at 03:00 the next opens tonight. */
    {"22:00-02:00", "2026-06-01 01:00", "2026-05-31 22:00", "2026-06-01 02:00"},
    {"22:00-02:00", "2026-06-01 03:00", "2026-06-01 22:00", "2026-06-02 02:00"},
    {"22:00-02:00", "2026-06-01 23:00", "2026-06-01 22:00", "2026-06-02 02:00"},
    /* The last day of a year and of a leap February. */
    {"23:30-00:30", "2026-12-31 23:45", "2026-12-31 23:30", "2027-01-01 00:30"},
    {"23:00-01:00", "2028-02-29 12:00", "2028-02-29 23:00", "2028-03-01 01:00"},
    /* A zone east of UTC: 01:00-03:00 Berlin in winter is 00:00-02:00 UTC. */
    {"01:00-03:00,Europe/Berlin", "2026-01-10 12:00", "2026-01-11 00:00", "2026-01-11 02:00"},
    /* And in summer 23:00-01:00 UTC. */
    {"01:00-03:00,Europe/Berlin", "2026-07-10 12:00", "2026-07-10 23:00", "2026-07-11 01:00"},
    /*
     * Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
     * 01:00-04:00 lasts two hours that night; 02:30 does not happen, so a
     * window opening then opens at the jump.
     */
    {"01:00-04:00,Europe/Berlin", "2026-03-28 12:00", "2026-03-29 00:00", "2026-03-29 02:00"},
    {"02:30-04:00,Europe/Berlin", "2026-03-28 12:00", "2026-03-29 01:00", "2026-03-29 02:00"},
    /* 2026-10-25: 03:00 CEST goes back to 02:00 CET (01:00 UTC); 02:30 happens twice. */
    {"01:00-04:00,Europe/Berlin", "2026-10-24 12:00", "2026-10-24 23:00", "2026-10-25 03:00"},
    {"02:30-05:00,Europe/Berlin", "2026-10-24 12:00", "2026-10-25 00:30", "2026-10-25 04:00"},
    /* America/New_York 2026-03-08 02:00 EST -> 03:00 EDT, across midnight. */
    {"23:00-03:00,America/New_York", "2026-03-07 12:00", "2026-03-08 04:00", "2026-03-08 07:00"},
    /* Inside a window while the clocks move: it still closes at the wall time. */
    {"01:00-04:00,Europe/Berlin", "2026-03-29 01:30", "2026-03-29 00:00", "2026-03-29 02:00"},
};

static void test_within_a_day_across_midnight_and_daylight_saving(void **state)
{
    (void)state;
    assert_windows(windows, UNIT_COUNT(windows));
}

/* The caller's TZ is left as it was. */
static void test_caller_tz_kept(void **state)
{
    (void)state;
    setenv("TZ", "Asia/Tokyo", 1);
    assert_window("10:00-12:00", "2026-06-01 09:00", "2026-06-01 10:00", "2026-06-01 12:00");
    assert_string_equal(getenv("TZ"), "Asia/Tokyo");
    unsetenv("TZ");
}

UNIT_TEST_MAIN(NULL, NULL,
               cmocka_unit_test(test_parse),
               cmocka_unit_test(test_within_a_day_across_midnight_and_daylight_saving),
               cmocka_unit_test(test_caller_tz_kept))
