/*
 * converge.h: whether an incremental job converges, and what a switch would
 * cost now.  After each round: the VM's write rate (the round's delta over
 * the time since the previous round's snapshot), the link's rate (the
 * round's bytes over its duration), and the predicted downtime of a switch
 * now (the next delta, written while this round was sent, over the link,
 * plus the switch's fixed part).  Pure: no I/O.
 */
#ifndef MIG_CONVERGE_H
#define MIG_CONVERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a switch costs besides the final send (stop, attach, start, ...), when not measured. */
#define MIG_SWITCH_FIXED_MS 2000

struct mig_forecast {
    int64_t write_bytes_s;  /* how fast the VM writes; -1: unknown */
    int64_t link_bytes_s;   /* how fast a round moved; -1: unknown */
    int64_t predicted_ms;   /* the downtime of a switch now; -1: unknown */
};

/*
 * The forecast after a round that moved bytes in duration_ms, whose
 * snapshot came since_snap_ms after the previous round's (the time the VM
 * had to write those bytes); fixed_ms: the switch's part besides the final
 * send.  A round without a previous one (the first) gives no write rate.
 */
struct mig_forecast mig_forecast(int64_t bytes, int64_t duration_ms, int64_t since_snap_ms,
                                 int64_t fixed_ms);

/*
 * True when the VM writes faster than the link carries: the last three
 * incremental rounds in a row did not shrink the delta (deltas, oldest
 * first, n of them; shrinking means below nine tenths of the one before)
 * and the write rate is at least nine tenths of the link's (when both are
 * known).  More rounds would not converge.
 */
bool mig_stalled(const int64_t *deltas, size_t n, int64_t write_bytes_s, int64_t link_bytes_s);

/*
 * The operator's sentence for a forecast, e.g. "writes 40.0 MB/s, link 35.0
 * MB/s; migctl finish now means about 90 s of downtime".
 */
void mig_forecast_text(const struct mig_forecast *f, char *buf, size_t bufsz);

#endif
