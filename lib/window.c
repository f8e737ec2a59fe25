/*
 * window.c: maintenance windows (window.h).  Local wall times become
 * instants through the C library's own zone rules (TZ set for the call):
 * timegm and localtime_r only, which SmartOS and glibc both have.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"
#include "window.h"

/* The zone files a name may be found in (illumos keeps them in /usr/share/lib). */
static bool tz_known(const char *tz)
{
    if (strcmp(tz, "UTC") == 0)
        return true;
    if (tz[0] == '\0' || tz[0] == '/' || strstr(tz, "..") != NULL ||
        strspn(tz, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+-/") !=
            strlen(tz))
        return false;
    const char *dirs[] = {getenv("TZDIR"), "/usr/share/zoneinfo", "/usr/share/lib/zoneinfo"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char path[512];
        struct stat st;
        if (dirs[i] == NULL)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dirs[i], tz);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            return true;
    }
    return false;
}

/* "HH:MM" at s into minutes; the characters read, 0 when malformed. */
static int hhmm(const char *s, int *min)
{
    if (!(s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' && s[2] == ':' &&
          s[3] >= '0' && s[3] <= '9' && s[4] >= '0' && s[4] <= '9'))
        return 0;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 23 || m > 59)
        return 0;
    *min = h * 60 + m;
    return 5;
}

static int parse(const char *spec, struct mig_window *w, char *err, size_t errsz, bool lookup)
{
    struct mig_window out = {.set = true};
    int n1 = spec != NULL ? hhmm(spec, &out.open_min) : 0;
    int n2 = n1 > 0 && spec[n1] == '-' ? hhmm(spec + n1 + 1, &out.close_min) : 0;
    const char *rest = n2 > 0 ? spec + n1 + 1 + n2 : NULL;
    if (rest == NULL || (*rest != '\0' && *rest != ',')) {
        snprintf(err, errsz, "a window is HH:MM-HH:MM[,TZ] (00:00 to 23:59; TZ an IANA name)");
        return -EINVAL;
    }
    if (out.open_min == out.close_min) {
        snprintf(err, errsz, "a window that closes when it opens is empty");
        return -EINVAL;
    }
    const char *tz = *rest == ',' ? rest + 1 : "UTC";
    if (strlen(tz) >= sizeof(out.tz) || (lookup && !tz_known(tz))) {
        snprintf(err, errsz, "\"%.64s\" is not a time zone this host knows (an IANA name such "
                             "as Europe/Berlin)", tz);
        return -EINVAL;
    }
    snprintf(out.tz, sizeof(out.tz), "%s", tz);
    *w = out;
    return 0;
}

int mig_window_parse(const char *spec, struct mig_window *w, char *err, size_t errsz)
{
    return parse(spec, w, err, errsz, true);
}

int mig_window_parse_saved(const char *spec, struct mig_window *w)
{
    char err[160];
    return parse(spec, w, err, sizeof(err), false);
}

void mig_window_format(const struct mig_window *w, char *buf, size_t bufsz)
{
    snprintf(buf, bufsz, "%02d:%02d-%02d:%02d,%s", w->open_min / 60, w->open_min % 60,
             w->close_min / 60, w->close_min % 60, w->tz);
}

/* The zone's offset from UTC at t, in seconds (local = t + offset). */
static time_t offset_at(time_t t)
{
    struct tm lt;
    localtime_r(&t, &lt);
    return timegm(&lt) - t;
}

/*
 * The instant of the wall time y-mon-day hh:mm in the current zone: the
 * first one when it happens twice, the jump's instant when it does not.
 */
static time_t wall_to_instant(int y, int mon, int day, int min)
{
    struct tm wall = {.tm_year = y, .tm_mon = mon, .tm_mday = day, .tm_hour = min / 60,
                      .tm_min = min % 60};
    time_t as_utc = timegm(&wall);
    time_t before = offset_at(as_utc - 26 * 3600), after = offset_at(as_utc + 26 * 3600);
    time_t c1 = as_utc - before, c2 = as_utc - after;
    bool ok1 = c1 + offset_at(c1) == as_utc, ok2 = c2 + offset_at(c2) == as_utc;
    if (ok1 && ok2)
        return c1 < c2 ? c1 : c2;
    if (ok1 || ok2)
        return ok1 ? c1 : c2;
    /* Not a wall time of that day: the first instant after the jump. */
    time_t lo = c1 < c2 ? c1 : c2, hi = c1 < c2 ? c2 : c1;
    time_t off_lo = offset_at(lo);
    while (hi - lo > 1) {
        time_t mid = lo + (hi - lo) / 2;
        if (offset_at(mid) == off_lo)
            lo = mid;
        else
            hi = mid;
    }
    return hi;
}

/* The local date of day offset d from (y, mon, day), normalised. */
static void date_plus(int *y, int *mon, int *day, int d)
{
    struct tm t = {.tm_year = *y, .tm_mon = *mon, .tm_mday = *day + d, .tm_hour = 12};
    time_t s = timegm(&t);
    gmtime_r(&s, &t);
    *y = t.tm_year;
    *mon = t.tm_mon;
    *day = t.tm_mday;
}

int mig_window_at(const struct mig_window *w, int64_t now_ms, int64_t *opens, int64_t *closes)
{
    if (!w->set || !tz_known(w->tz))
        return -EINVAL;
    const char *old = getenv("TZ");
    char *saved = old != NULL ? mig_strdup(old) : NULL;
    setenv("TZ", w->tz, 1);
    tzset();
    time_t now = (time_t)(now_ms / 1000);
    struct tm today;
    localtime_r(&now, &today);
    int rc = -EINVAL;
    /* From yesterday's window (it may cross midnight into today) on. */
    for (int d = -1; d <= 2 && rc != 0; d++) {
        int y = today.tm_year, mon = today.tm_mon, day = today.tm_mday;
        date_plus(&y, &mon, &day, d);
        time_t o = wall_to_instant(y, mon, day, w->open_min);
        if (w->close_min <= w->open_min)
            date_plus(&y, &mon, &day, 1);
        time_t c = wall_to_instant(y, mon, day, w->close_min);
        if ((int64_t)c * 1000 > now_ms) {
            *opens = (int64_t)o * 1000;
            *closes = (int64_t)c * 1000;
            rc = 0;
        }
    }
    if (saved != NULL)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(saved);
    return rc;
}
