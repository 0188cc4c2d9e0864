/*
 * hist.h - a fixed-size log-linear histogram for latencies (after HdrHistogram).
 *
 * Values (non-negative integers, e.g. nanoseconds) land in buckets that
 * are split by power of two, and each power-of-two range is split
 * into SL_HIST_SUB linear sub-buckets, so a reported percentile is within
 * 1/SL_HIST_SUB (3.1%) of the true value. Fixed memory (no allocation after
 * init), O(1) record, mergeable across threads by adding counts.
 */
#ifndef SL_COMMON_HIST_H
#define SL_COMMON_HIST_H

#include "common/base.h"

#define SL_HIST_SUB_BITS 5
#define SL_HIST_SUB (1 << SL_HIST_SUB_BITS)
#define SL_HIST_BUCKETS ((64 - SL_HIST_SUB_BITS + 1) * SL_HIST_SUB)

typedef struct sl_hist {
    uint64_t counts[SL_HIST_BUCKETS];
    uint64_t total;
    uint64_t min, max;
    double sum;
} sl_hist;

void sl_hist_init(sl_hist *h);
void sl_hist_record(sl_hist *h, uint64_t value);
/* Adds src's counts into dst. */
void sl_hist_merge(sl_hist *dst, const sl_hist *src);
/* The value at percentile p (0..100): an upper bound of its bucket, clamped to max. 0 when empty. */
uint64_t sl_hist_percentile(const sl_hist *h, double p);
static inline double sl_hist_mean(const sl_hist *h) { return h->total ? h->sum / (double)h->total : 0.0; }

#endif
