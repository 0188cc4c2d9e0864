/*
 * hist.c - log-linear buckets: values below SL_HIST_SUB have their own
 * bucket; above, the bucket is (exponent, top SL_HIST_SUB_BITS bits below
 * the leading one). See hist.h.
 */
#include <string.h>
#include "common/hist.h"

void sl_hist_init(sl_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

static int bucket_of(uint64_t v)
{
    if (v < SL_HIST_SUB) return (int)v;
    int msb = 63 - __builtin_clzll(v);              /* >= SL_HIST_SUB_BITS */
    int shift = msb - SL_HIST_SUB_BITS;
    int sub = (int)((v >> shift) & (SL_HIST_SUB - 1));
    int b = (shift + 1) * SL_HIST_SUB + sub;
    SL_ASSERT(b >= SL_HIST_SUB && b < SL_HIST_BUCKETS);
    return b;
}

/* The largest value that falls into bucket b. */
static uint64_t bucket_top(int b)
{
    if (b < SL_HIST_SUB) return (uint64_t)b;
    int shift = b / SL_HIST_SUB - 1;
    uint64_t sub = (uint64_t)(b % SL_HIST_SUB);
    uint64_t base = ((uint64_t)SL_HIST_SUB | sub) << shift;
    return base + (((uint64_t)1 << shift) - 1);
}

void sl_hist_record(sl_hist *h, uint64_t value)
{
    h->counts[bucket_of(value)]++;
    h->total++;
    h->sum += (double)value;
    if (value < h->min) h->min = value;
    if (value > h->max) h->max = value;
}

void sl_hist_merge(sl_hist *dst, const sl_hist *src)
{
    for (int i = 0; i < SL_HIST_BUCKETS; i++) dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->sum += src->sum;
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
}

uint64_t sl_hist_percentile(const sl_hist *h, double p)
{
    if (h->total == 0) return 0;
    if (p <= 0) return h->min;
    uint64_t rank = (uint64_t)((p / 100.0) * (double)h->total + 0.5);
    if (rank < 1) rank = 1;
    if (rank > h->total) rank = h->total;
    uint64_t seen = 0;
    for (int b = 0; b < SL_HIST_BUCKETS; b++) {
        seen += h->counts[b];
        if (seen >= rank) {
            uint64_t top = bucket_top(b);
            return top > h->max ? h->max : top < h->min ? h->min : top;
        }
    }
    return h->max;
}
