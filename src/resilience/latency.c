/*
 * latency.c - a rolling latency histogram per dependency (sl_latency_*).
 *
 * Buckets. HdrHistogram's log-linear scheme on values counted in units of
 * 32 ns: below 1,024 ns one bucket per 32 ns; above, every power of two is
 * split into 32 linear sub-buckets, so a bucket's width is at most 1/32
 * (3.1%) of its values. The top bucket ends at 2^37 ns (137 s); longer
 * values are counted there. 28 x 32 = 896 buckets.
 *
 * Window. Time since _new is cut into epochs of slice_ns = window_ns /
 * slices. Epoch e is kept in ring slot e % (slices + 1). A query at epoch
 * `cur` sums epochs cur - slices .. cur: the last window_ns plus the part of
 * the current slice already elapsed ("at most one slice more").
 *
 * Rotation without a lock and without clearing. A slot is never cleared:
 * every counter word carries the epoch that wrote it. A bucket word is
 *
 *     63 ........ 32 31 ......... 0
 *     [ epoch (32b) | count (32b)  ]
 *
 * A writer of epoch e adds 1 when the word's tag is e (a plain fetch_add
 * while the count is below 2^31; a saturating CAS above, so a count never
 * carries into the tag), and replaces a word with an older tag by (e, 1)
 * with a CAS: the first writer of an epoch into a bucket starts it afresh,
 * and nobody else has to know. A reader counts a word only when its tag is
 * the epoch it expects in that slot. Concurrent writers of two epochs, a
 * writer preempted across a rotation, and readers during a rotation all
 * see exact counts: every sample lands in exactly one (epoch, bucket) word.
 * A writer late by a whole ring (its epoch older than the slot's) adds to
 * the newer epoch rather than lose the sample. The sum is two such words
 * (low and high 32 bits of the nanoseconds, the carry CAS-added to the high
 * word); min and max are words of a 24-bit epoch tag and 40 bits of ns.
 * Tags compare modulo 2^32: a bucket untouched for exactly a multiple of
 * 2^32 slices (49 days at the smallest slice of 1 ms, 1,361 years at the
 * default 10 s) could show its old count again; hence the 1 ms minimum.
 *
 * Memory per tracker: (slices + 1) x 7,200 bytes + ~300 bytes: 50 KiB with
 * the default 6 slices, 468 KiB at the maximum of 64. Nothing is allocated
 * after _new.
 *
 * Percentiles scan the window's 896 x (slices + 1) words (~6,300 loads, a
 * few microseconds): fine for a query, too slow for every call. So
 * sl_latency_percentile_cached keeps up to 4 (p, value) pairs, recomputed
 * when older than refresh_ns (1 ms by default) or when the epoch changed
 * since (a rotation moves the window at once). One thread recomputes (a
 * busy flag), the others keep answering the previous value meanwhile.
 *
 * The reported percentile is the top of the bucket holding the rank,
 * clamped to the window's min and max: never below the true value, and
 * within 3.1% (or 32 ns) above it.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "common/alloc.h"
#include "resilience/res_int.h"

#define LAT_UNIT_BITS 5
#define LAT_SUB_BITS 5
#define LAT_SUB (1 << LAT_SUB_BITS)
#define LAT_UNITS_MAX ((UINT64_C(1) << 32) - 1)
#define LAT_NS_MAX (((LAT_UNITS_MAX + 1) << LAT_UNIT_BITS) - 1)
#define LAT_BUCKETS ((32 - LAT_SUB_BITS + 1) * LAT_SUB)
#define LAT_CACHE 4
#define LAT_SLICE_MIN_NS INT64_C(1000000)
#define MM_BITS 40
#define MM_MASK ((UINT64_C(1) << MM_BITS) - 1)
#define MM_TAG_MASK 0xffffffu

typedef struct lat_slice {
    _Atomic uint64_t counts[LAT_BUCKETS]; /* tag32 | count32 */
    _Atomic uint64_t sum_lo, sum_hi;      /* tag32 | 32 bits of the sum of ns */
    _Atomic uint64_t min, max;            /* tag24 | ns40 */
} lat_slice;

typedef struct lat_cache {
    _Atomic uint64_t key; /* 0 free, else p x 1e6 + 1 */
    _Atomic int64_t value, at_ns;
    _Atomic uint64_t at_epoch;
    _Atomic int ready, busy;
} lat_cache;

struct sl_latency {
    sl_res_clock clock;
    int64_t t0_ns, slice_ns, refresh_ns;
    int32_t slices, nring; /* nring = slices + 1 */
    lat_cache cache[LAT_CACHE];
    lat_slice ring[];
};

/* One consistent-enough sum of the window: each word is read once. */
typedef struct lat_snap {
    uint64_t counts[LAT_BUCKETS];
    uint64_t total, sum_ns, min_ns, max_ns;
} lat_snap;

_Static_assert(LAT_BUCKETS == 896, "bucket layout");
_Static_assert(sizeof(lat_slice) == 7200, "slice size quoted in the header and the docs");

/* ---- buckets ---- */

static int bucket_of(uint64_t ns)
{
    uint64_t u = ns >> LAT_UNIT_BITS;
    if (u > LAT_UNITS_MAX) u = LAT_UNITS_MAX;
    if (u < LAT_SUB) return (int)u;
    int msb = 63 - __builtin_clzll(u);
    int shift = msb - LAT_SUB_BITS;
    int b = (shift + 1) * LAT_SUB + (int)((u >> shift) & (LAT_SUB - 1));
    SL_ASSERT(b >= LAT_SUB && b < LAT_BUCKETS);
    return b;
}

static uint64_t bucket_low_ns(int b)
{
    if (b < LAT_SUB) return (uint64_t)b << LAT_UNIT_BITS;
    int shift = b / LAT_SUB - 1;
    uint64_t u = ((uint64_t)LAT_SUB | (uint64_t)(b % LAT_SUB)) << shift;
    return u << LAT_UNIT_BITS;
}

static uint64_t bucket_top_ns(int b)
{
    return b + 1 < LAT_BUCKETS ? bucket_low_ns(b + 1) - 1 : LAT_NS_MAX;
}

/* ---- tagged words ---- */

/* The word's tag is a (slightly) later epoch than the writer's: the writer is late by a whole ring. A word
   older than the writer's epoch, by any amount below 2^32 - 2^16 slices, is never taken for a later one. */
#define LATE_MAX 65536u
static bool tag_after(uint32_t word_tag, uint32_t tag) { return word_tag - tag - 1u < LATE_MAX - 1u; }

static void count_add(_Atomic uint64_t *w, uint32_t tag)
{
    uint64_t old = atomic_load_explicit(w, memory_order_relaxed), nw;
    for (;;) {
        uint32_t wt = (uint32_t)(old >> 32), c = (uint32_t)old;
        if (wt == tag || tag_after(wt, tag)) {
            if (c < 0x80000000u) {
                atomic_fetch_add_explicit(w, 1, memory_order_relaxed);
                return;
            }
            if (c == UINT32_MAX) return; /* saturated: 4 billion in one bucket of one slice */
            nw = old + 1;
        } else {
            nw = ((uint64_t)tag << 32) | 1;
        }
        if (atomic_compare_exchange_weak_explicit(w, &old, nw, memory_order_relaxed, memory_order_relaxed)) return;
    }
}

/* Adds `add` to a tag32|part32 word; returns the carry out of the 32 bits. */
static uint64_t part_add(_Atomic uint64_t *w, uint32_t tag, uint64_t add)
{
    uint64_t old = atomic_load_explicit(w, memory_order_relaxed);
    for (;;) {
        uint32_t wt = (uint32_t)(old >> 32);
        bool same = wt == tag || tag_after(wt, tag);
        uint64_t total = (same ? (uint32_t)old : 0) + add;
        uint64_t nw = ((uint64_t)(same ? wt : tag) << 32) | (uint32_t)total;
        if (atomic_compare_exchange_weak_explicit(w, &old, nw, memory_order_relaxed, memory_order_relaxed))
            return total >> 32;
    }
}

static uint64_t part_get(_Atomic uint64_t *w, uint32_t tag)
{
    uint64_t v = atomic_load_explicit(w, memory_order_relaxed);
    return (uint32_t)(v >> 32) == tag ? (uint32_t)v : 0;
}

/* Min (want_max false) or max of a tag24|ns40 word. */
static void extreme_update(_Atomic uint64_t *w, uint32_t tag, uint64_t ns, bool want_max)
{
    uint32_t t24 = tag & MM_TAG_MASK;
    uint64_t old = atomic_load_explicit(w, memory_order_relaxed);
    for (;;) {
        uint32_t wt = (uint32_t)(old >> MM_BITS);
        if (wt == t24) {
            uint64_t cur = old & MM_MASK;
            if (want_max ? cur >= ns : cur <= ns) return;
        } else if (((wt - t24 - 1u) & MM_TAG_MASK) < LATE_MAX - 1u) {
            return; /* a newer epoch owns the word: a late writer leaves it */
        }
        uint64_t nw = ((uint64_t)t24 << MM_BITS) | ns;
        if (atomic_compare_exchange_weak_explicit(w, &old, nw, memory_order_relaxed, memory_order_relaxed)) return;
    }
}

static bool extreme_get(_Atomic uint64_t *w, uint32_t tag, uint64_t *ns)
{
    uint64_t v = atomic_load_explicit(w, memory_order_relaxed);
    if ((uint32_t)(v >> MM_BITS) != (tag & MM_TAG_MASK)) return false;
    *ns = v & MM_MASK;
    return true;
}

/* ---- life ---- */

void sl_latency_config_default(sl_latency_config *cfg)
{
    *cfg = (sl_latency_config){.window_ns = INT64_C(60000000000), .slices = 6, .refresh_ns = INT64_C(1000000)};
}

int sl_latency_new(const sl_latency_config *cfg, sl_latency **out, char *err, size_t err_len)
{
    *out = NULL;
    if (cfg->slices < 2 || cfg->slices > 64)
        return sl__res_invalid(err, err_len, "latency slices: %d is outside 2..64", cfg->slices);
    if (cfg->window_ns <= 0 || cfg->window_ns / cfg->slices < LAT_SLICE_MIN_NS)
        return sl__res_invalid(err, err_len, "latency window_ns: %lld ns is less than 1 ms per slice (%d slices)",
                               (long long)cfg->window_ns, cfg->slices);
    if (cfg->refresh_ns < 0)
        return sl__res_invalid(err, err_len, "latency refresh_ns: %lld is negative", (long long)cfg->refresh_ns);
    size_t nring = (size_t)cfg->slices + 1;
    sl_latency *lat = sl_calloc(1, sizeof *lat + nring * sizeof(lat_slice));
    sl__res_clock_resolve(&cfg->clock, &lat->clock);
    lat->slices = cfg->slices;
    lat->nring = (int32_t)nring;
    lat->slice_ns = cfg->window_ns / cfg->slices;
    lat->refresh_ns = cfg->refresh_ns;
    lat->t0_ns = sl__res_now(&lat->clock);
    for (size_t i = 0; i < nring; i++) {
        for (int b = 0; b < LAT_BUCKETS; b++) atomic_init(&lat->ring[i].counts[b], 0);
        atomic_init(&lat->ring[i].sum_lo, 0);
        atomic_init(&lat->ring[i].sum_hi, 0);
        /* Tagged one epoch before epoch 0, so that no epoch reads them before it writes them. */
        atomic_init(&lat->ring[i].min, (uint64_t)MM_TAG_MASK << MM_BITS);
        atomic_init(&lat->ring[i].max, (uint64_t)MM_TAG_MASK << MM_BITS);
    }
    for (int i = 0; i < LAT_CACHE; i++) {
        lat_cache *c = &lat->cache[i];
        atomic_init(&c->key, 0);
        atomic_init(&c->value, -1);
        atomic_init(&c->at_ns, 0);
        atomic_init(&c->at_epoch, 0);
        atomic_init(&c->ready, 0);
        atomic_init(&c->busy, 0);
    }
    *out = lat;
    return 0;
}

void sl_latency_free(sl_latency *lat) { sl_free(lat); }

static uint64_t epoch_at(const sl_latency *lat, int64_t now)
{
    return now <= lat->t0_ns ? 0 : (uint64_t)((now - lat->t0_ns) / lat->slice_ns);
}

void sl_latency_record(sl_latency *lat, int64_t ns)
{
    uint64_t v = ns < 0 ? 0 : (uint64_t)ns > LAT_NS_MAX ? LAT_NS_MAX : (uint64_t)ns;
    uint64_t e = epoch_at(lat, sl__res_now(&lat->clock));
    lat_slice *s = &lat->ring[e % (uint64_t)lat->nring];
    uint32_t tag = (uint32_t)e;
    count_add(&s->counts[bucket_of(v)], tag);
    uint64_t carry = part_add(&s->sum_lo, tag, v);
    if (carry) part_add(&s->sum_hi, tag, carry);
    extreme_update(&s->max, tag, v, true);
    extreme_update(&s->min, tag, v, false);
}

/* ---- reading the window ---- */

static uint64_t slice_add(lat_slice *s, uint32_t tag, lat_snap *snap)
{
    uint64_t n = 0;
    for (int b = 0; b < LAT_BUCKETS; b++) {
        uint64_t w = atomic_load_explicit(&s->counts[b], memory_order_relaxed);
        if ((uint32_t)(w >> 32) != tag) continue;
        snap->counts[b] += (uint32_t)w;
        n += (uint32_t)w;
    }
    if (n == 0) return 0;
    snap->sum_ns += part_get(&s->sum_lo, tag) + (part_get(&s->sum_hi, tag) << 32);
    uint64_t v;
    if (extreme_get(&s->min, tag, &v) && v < snap->min_ns) snap->min_ns = v;
    if (extreme_get(&s->max, tag, &v) && v > snap->max_ns) snap->max_ns = v;
    return n;
}

static void snapshot(sl_latency *lat, int64_t now, lat_snap *snap)
{
    memset(snap, 0, sizeof *snap);
    snap->min_ns = UINT64_MAX;
    uint64_t cur = epoch_at(lat, now);
    for (uint64_t j = 0; j < (uint64_t)lat->nring && j <= cur; j++) {
        uint64_t e = cur - j;
        snap->total += slice_add(&lat->ring[e % (uint64_t)lat->nring], (uint32_t)e, snap);
    }
    if (snap->total == 0) {
        snap->min_ns = snap->max_ns = 0;
        return;
    }
    /* Min and max are written after the count: a reader racing a writer (or a stale word) may miss them.
       Bound them by the extreme buckets, so they are always consistent with the counts. */
    int lo = 0, hi = LAT_BUCKETS - 1;
    while (snap->counts[lo] == 0) lo++;
    while (snap->counts[hi] == 0) hi--;
    snap->min_ns = SL_MAX(SL_MIN(snap->min_ns, bucket_top_ns(lo)), bucket_low_ns(lo));
    snap->max_ns = SL_MIN(SL_MAX(snap->max_ns, bucket_low_ns(hi)), bucket_top_ns(hi));
    SL_ASSERT(snap->min_ns <= snap->max_ns);
}

static int64_t snap_percentile(const lat_snap *snap, double p)
{
    if (snap->total == 0) return -1;
    if (!(p > 0)) return (int64_t)snap->min_ns;
    if (p >= 100) return (int64_t)snap->max_ns;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)snap->total + 0.5);
    if (rank < 1) rank = 1;
    if (rank > snap->total) rank = snap->total;
    uint64_t seen = 0;
    for (int b = 0; b < LAT_BUCKETS; b++) {
        seen += snap->counts[b];
        if (seen >= rank) return (int64_t)SL_MAX(SL_MIN(bucket_top_ns(b), snap->max_ns), snap->min_ns);
    }
    SL_UNREACHABLE();
}

static int64_t percentile_at(sl_latency *lat, int64_t now, double p)
{
    lat_snap snap;
    snapshot(lat, now, &snap);
    return snap_percentile(&snap, p);
}

int64_t sl_latency_percentile(sl_latency *lat, double p)
{
    return percentile_at(lat, sl__res_now(&lat->clock), p);
}

int64_t sl_latency_count(sl_latency *lat)
{
    uint64_t cur = epoch_at(lat, sl__res_now(&lat->clock)), n = 0;
    for (uint64_t j = 0; j < (uint64_t)lat->nring && j <= cur; j++) {
        uint64_t e = cur - j;
        lat_slice *s = &lat->ring[e % (uint64_t)lat->nring];
        for (int b = 0; b < LAT_BUCKETS; b++) {
            uint64_t w = atomic_load_explicit(&s->counts[b], memory_order_relaxed);
            if ((uint32_t)(w >> 32) == (uint32_t)e) n += (uint32_t)w;
        }
    }
    return (int64_t)n;
}

/* ---- the cache ---- */

static lat_cache *cache_slot(sl_latency *lat, uint64_t key)
{
    for (int i = 0; i < LAT_CACHE; i++)
        if (atomic_load_explicit(&lat->cache[i].key, memory_order_acquire) == key) return &lat->cache[i];
    for (int i = 0; i < LAT_CACHE; i++) {
        uint64_t expected = 0;
        if (atomic_compare_exchange_strong(&lat->cache[i].key, &expected, key) || expected == key)
            return &lat->cache[i];
    }
    return NULL;
}

int64_t sl_latency_percentile_cached(sl_latency *lat, double p)
{
    int64_t now = sl__res_now(&lat->clock);
    double clamped = p < 0 ? 0 : p > 100 ? 100 : p;
    lat_cache *c = cache_slot(lat, (uint64_t)llround(clamped * 1e6) + 1);
    if (!c) return percentile_at(lat, now, p);
    bool ready = atomic_load_explicit(&c->ready, memory_order_acquire) != 0;
    if (ready && atomic_load_explicit(&c->at_epoch, memory_order_relaxed) == epoch_at(lat, now) &&
        now - atomic_load_explicit(&c->at_ns, memory_order_relaxed) < lat->refresh_ns)
        return atomic_load_explicit(&c->value, memory_order_relaxed);
    if (atomic_exchange_explicit(&c->busy, 1, memory_order_acquire) != 0) {
        /* Another thread is refreshing it: its previous value is as good as a few ms old can be. */
        return ready ? atomic_load_explicit(&c->value, memory_order_relaxed) : percentile_at(lat, now, p);
    }
    int64_t v = percentile_at(lat, now, p);
    atomic_store_explicit(&c->value, v, memory_order_relaxed);
    atomic_store_explicit(&c->at_epoch, epoch_at(lat, now), memory_order_relaxed);
    atomic_store_explicit(&c->at_ns, now, memory_order_relaxed);
    atomic_store_explicit(&c->ready, 1, memory_order_release);
    atomic_store_explicit(&c->busy, 0, memory_order_release);
    return v;
}

/* ---- Prometheus text ---- */

/* The exported `le` bounds: 1-2-5 from 1 us to 100 s (25 of them), as Prometheus clients print them. */
static const struct {
    uint64_t ns;
    const char *text;
} prom_bounds[] = {
    {1000, "0.000001"},        {2000, "0.000002"},        {5000, "0.000005"},       {10000, "0.00001"},
    {20000, "0.00002"},        {50000, "0.00005"},        {100000, "0.0001"},       {200000, "0.0002"},
    {500000, "0.0005"},        {1000000, "0.001"},        {2000000, "0.002"},       {5000000, "0.005"},
    {10000000, "0.01"},        {20000000, "0.02"},        {50000000, "0.05"},       {100000000, "0.1"},
    {200000000, "0.2"},        {500000000, "0.5"},        {1000000000, "1"},        {2000000000, "2"},
    {5000000000, "5"},         {10000000000, "10"},       {20000000000, "20"},      {50000000000, "50"},
    {100000000000, "100"},
};

typedef struct prom_out {
    char *buf;
    size_t cap, len;
} prom_out;

static void emit(prom_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(prom_out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool room = o->len < o->cap;
    int n = vsnprintf(room ? o->buf + o->len : NULL, room ? o->cap - o->len : 0, fmt, ap);
    va_end(ap);
    SL_ASSERT(n >= 0);
    o->len += (size_t)n;
}

size_t sl_latency_prometheus(sl_latency *lat, const char *name, const char *labels, char *buf, size_t cap)
{
    SL_ASSERT(name && (buf || cap == 0));
    lat_snap snap;
    snapshot(lat, sl__res_now(&lat->clock), &snap);
    prom_out o = {buf, cap, 0};
    if (cap) buf[0] = 0;
    const char *l = labels ? labels : "", *comma = l[0] ? "," : "";
    emit(&o, "# TYPE %s histogram\n", name);
    /* A bucket counts under `le` once its top (the window's max, for the highest one) is <= le, so no
       value above a bound is ever counted under it; a value may show one bound late (3.1% resolution). */
    int b = 0;
    uint64_t cum = 0;
    for (size_t i = 0; i < SL_ARRAY_LEN(prom_bounds); i++) {
        while (b < LAT_BUCKETS && SL_MIN(bucket_top_ns(b), snap.max_ns) <= prom_bounds[i].ns) cum += snap.counts[b++];
        emit(&o, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, l, comma, prom_bounds[i].text, (unsigned long long)cum);
    }
    emit(&o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, l, comma, (unsigned long long)snap.total);
    const char *open = l[0] ? "{" : "", *close = l[0] ? "}" : "";
    emit(&o, "%s_sum%s%s%s %llu.%09llu\n", name, open, l, close, (unsigned long long)(snap.sum_ns / 1000000000),
         (unsigned long long)(snap.sum_ns % 1000000000));
    emit(&o, "%s_count%s%s%s %llu\n", name, open, l, close, (unsigned long long)snap.total);
    return o.len;
}
