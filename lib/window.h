/*
 * window.h: a maintenance window, "HH:MM-HH:MM[,TZ]" (product.md: migrate
 * and evacuate --window).  Copies run at any time; a switch starts only
 * inside the window.  The times are wall-clock times in TZ (an IANA name,
 * default UTC); a window whose close is not after its open crosses
 * midnight (22:00-02:00 closes the next day).
 *
 * Daylight saving time: a window is laid on the local date, then each end
 * is turned into an instant.  A wall time that happens twice (the hour
 * clocks go back) is its first occurrence; one that does not happen (the
 * hour they go forward) is the instant the clocks jump (02:30 on that day
 * in Europe/Berlin is 03:00 CEST).  So on those days a window is an hour
 * shorter or longer, as the operator's wall clock says.
 */
#ifndef MIG_WINDOW_H
#define MIG_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIG_TZ_LEN 64
#define MIG_WINDOW_SPEC_LEN (MIG_TZ_LEN + 16) /* mig_window_format's "HH:MM-HH:MM,TZ" */

struct mig_window {
    bool set;         /* false: no window (switch at any time) */
    int open_min;     /* minutes after local midnight, 0..1439 */
    int close_min;    /* idem; <= open_min: closes the next day */
    char tz[MIG_TZ_LEN]; /* IANA name, "UTC" by default */
};

/*
 * Parses "HH:MM-HH:MM[,TZ]" into w.  -EINVAL with a one-line reason in err
 * for a malformed spec, a time out of range, a zero-length window, or a TZ
 * this host does not know (a name glibc would silently take as UTC).
 */
int mig_window_parse(const char *spec, struct mig_window *w, char *err, size_t errsz);

/*
 * The same for a window on record (a job's, an evacuation's): the zone's
 * name is not looked up, so a job whose zone went missing still loads
 * (mig_window_at then fails, and its switch waits, saying why).
 */
int mig_window_parse_saved(const char *spec, struct mig_window *w);

/* "HH:MM-HH:MM,TZ" into buf. */
void mig_window_format(const struct mig_window *w, char *buf, size_t bufsz);

/*
 * The window that contains now, or else the next one, in ms since the
 * epoch: *opens <= now < *closes when inside.  0 on success; -EINVAL when
 * the zone cannot be loaded.  Sets TZ for the call and restores it: not
 * thread-safe (migd is one loop).
 */
int mig_window_at(const struct mig_window *w, int64_t now_ms, int64_t *opens, int64_t *closes);

#endif
