/*
 * converge.c: the forecast of an incremental job (converge.h).  The model is
 * deliberately simple and stated: the VM keeps writing at the rate it did
 * during the last round, and the link keeps the rate the last round had, so
 * the final delta is what the VM writes while one round is sent.
 */
#include <stdio.h>

#include "converge.h"

struct mig_forecast mig_forecast(int64_t bytes, int64_t duration_ms, int64_t since_snap_ms,
                                 int64_t fixed_ms)
{
    struct mig_forecast f = {-1, -1, -1};
    if (bytes >= 0 && duration_ms > 0)
        f.link_bytes_s = bytes * 1000 / duration_ms;
    if (bytes >= 0 && since_snap_ms > 0)
        f.write_bytes_s = bytes * 1000 / since_snap_ms;
    if (f.write_bytes_s == 0) {
        f.predicted_ms = fixed_ms; /* nothing written: nothing left to send */
    } else if (f.link_bytes_s > 0 && f.write_bytes_s > 0) {
        /* Written while a round of this size is sent, then sent during the switch. */
        int64_t next_delta = f.write_bytes_s * duration_ms / 1000;
        f.predicted_ms = fixed_ms + next_delta * 1000 / f.link_bytes_s;
    }
    return f;
}

/*
 * A delta shrank when it fell below nine tenths of the one before (noise
 * aside).  Deltas that merely hold steady while the link is much faster than
 * the writes are a VM that writes between rounds: they shrink once it
 * pauses, so that is not a stall.
 */
bool mig_stalled(const int64_t *deltas, size_t n, int64_t write_bytes_s, int64_t link_bytes_s)
{
    if (n < 4)
        return false;
    if (write_bytes_s >= 0 && link_bytes_s > 0 && write_bytes_s * 10 < link_bytes_s * 9)
        return false;
    for (size_t i = n - 3; i < n; i++)
        if (deltas[i] * 10 < deltas[i - 1] * 9)
            return false;
    return true;
}

void mig_forecast_text(const struct mig_forecast *f, char *buf, size_t bufsz)
{
    if (f->predicted_ms < 0) {
        snprintf(buf, bufsz, "no forecast yet (it takes one incremental round)");
        return;
    }
    snprintf(buf, bufsz,
             "writes %.1f MB/s, link %.1f MB/s; migctl finish now means about %lld s of downtime",
             (double)f->write_bytes_s / 1e6, (double)f->link_bytes_s / 1e6,
             (long long)((f->predicted_ms + 999) / 1000));
}
