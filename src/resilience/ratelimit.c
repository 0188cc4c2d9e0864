/*
 * ratelimit.c - rate limiters: a token bucket (as GCRA) and a sliding
 * window per key.
 *
 * Token bucket, as the Generic Cell Rate Algorithm: one atomic "theoretical
 * arrival time" (TAT). Each token costs T = 1 s / rate; n tokens are granted
 * at `now` when max(TAT, now) + n x T - now <= burst x T, and then TAT moves
 * to max(TAT, now) + n x T. That is exactly a bucket of `burst` tokens
 * refilled at `rate`, with no refill timer and no lock: a CAS loop. Time is
 * kept in 1/16 ns since the bucket's creation (int64: 18 years), so rates up
 * to 16e9/s keep an exact integer cost per token.
 *
 * Sliding window per key: each key has B+1 counters of width w = window / B
 * (a ring indexed by the absolute bucket number). A call at time t is
 * admitted when the calls counted in every bucket that overlaps [t - window,
 * t], plus this one, stay within the limit. For any interval of length
 * `window`, the last call admitted in it saw every earlier call of the
 * interval in those buckets, so no window ever holds more than the limit; the
 * price is that up to one bucket's worth fewer calls may be admitted than an
 * exact log would. Keys live in a table of max_keys slots allocated at _new
 * (open addressing, probes bounded by SL_SW_PROBE; a slot whose counters all
 * left the window is free for another key); keys up to SL_SW_KEY_MAX bytes
 * are kept whole, so two keys never share a window. One mutex guards the
 * table: a lookup is a few cache lines, uncontended it costs tens of ns.
 */
#include <pthread.h>
#include <string.h>
#include "resilience/res_int.h"
#include "common/alloc.h"

#define SL_TB_FP 16                  /* time units per ns */
#define SL_SW_KEY_MAX 128            /* bytes of a key (longer: SL_RES_E_INVALID) */
#define SL_SW_PROBE 32               /* slots looked at for one key */
#define SL_SW_BUCKETS_MAX 100

/* ---- token bucket ---- */

struct sl_token_bucket {
    _Atomic int64_t tat;  /* theoretical arrival time, in 1/16 ns since t0 */
    int64_t cost;         /* one token, same units */
    int64_t tolerance;    /* burst x cost */
    int32_t burst;
    int64_t t0;
    sl_res_clock clock;
};

int sl_token_bucket_new(double rate_per_s, int32_t burst, const sl_res_clock *clock, sl_token_bucket **out,
                        char *err, size_t err_len)
{
    *out = NULL;
    if (!(rate_per_s > 0) || rate_per_s > 16e9)
        return sl__res_invalid(err, err_len, "token bucket rate: %g per second is outside (0, 1.6e10]", rate_per_s);
    if (burst < 1) return sl__res_invalid(err, err_len, "token bucket burst: %d is below 1", burst);
    sl_token_bucket *tb = SL_NEW(sl_token_bucket);
    sl__res_clock_resolve(clock, &tb->clock);
    tb->cost = (int64_t)(1e9 * SL_TB_FP / rate_per_s + 0.5);
    if (tb->cost < 1) tb->cost = 1;
    tb->burst = burst;
    tb->tolerance = tb->cost * burst;
    tb->t0 = sl__res_now(&tb->clock);
    atomic_init(&tb->tat, 0);
    *out = tb;
    return 0;
}

void sl_token_bucket_free(sl_token_bucket *tb) { sl_free(tb); }

int sl_token_bucket_acquire(sl_token_bucket *tb, int32_t n, int64_t *retry_after_ns)
{
    if (retry_after_ns) *retry_after_ns = 0;
    if (n < 1 || n > tb->burst) return SL_RES_E_INVALID; /* could never be granted */
    int64_t now = (sl__res_now(&tb->clock) - tb->t0) * SL_TB_FP;
    int64_t tat = atomic_load_explicit(&tb->tat, memory_order_relaxed);
    for (;;) {
        int64_t from = tat > now ? tat : now, next = from + n * tb->cost;
        if (next - now > tb->tolerance) {
            if (retry_after_ns) *retry_after_ns = (next - now - tb->tolerance + SL_TB_FP - 1) / SL_TB_FP;
            return SL_RES_E_RATE;
        }
        if (atomic_compare_exchange_weak_explicit(&tb->tat, &tat, next, memory_order_relaxed, memory_order_relaxed))
            return 0;
    }
}

/* ---- sliding window per key ---- */

typedef struct sw_slot {
    int64_t newest;        /* absolute number of its newest bucket; -1: never used */
    uint32_t hash;
    uint16_t key_len;
    char key[SL_SW_KEY_MAX];
} sw_slot;

struct sl_sliding_window {
    pthread_mutex_t mu;
    int32_t limit, nbuckets, max_keys;
    int64_t width_ns, t0;
    sw_slot *slots;        /* max_keys + 1 (the last: the global window of key NULL) */
    int32_t *counts;       /* (nbuckets + 1) per slot */
    sl_res_clock clock;
};

void sl_sliding_window_config_default(sl_sliding_window_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->limit = 1000;
    cfg->window_ns = 1000000000LL;
    cfg->buckets = 10;
    cfg->max_keys = 4096;
}

int sl_sliding_window_new(const sl_sliding_window_config *cfg, sl_sliding_window **out, char *err, size_t err_len)
{
    *out = NULL;
    if (cfg->limit < 1) return sl__res_invalid(err, err_len, "sliding window limit: %d is below 1", cfg->limit);
    if (cfg->buckets < 1 || cfg->buckets > SL_SW_BUCKETS_MAX)
        return sl__res_invalid(err, err_len, "sliding window buckets: %d is outside 1..%d", cfg->buckets,
                               SL_SW_BUCKETS_MAX);
    if (cfg->window_ns < cfg->buckets)
        return sl__res_invalid(err, err_len, "sliding window window_ns: %lld is shorter than one ns per bucket",
                               (long long)cfg->window_ns);
    if (cfg->max_keys < 1 || cfg->max_keys > (1 << 24))
        return sl__res_invalid(err, err_len, "sliding window max_keys: %d is outside 1..16777216", cfg->max_keys);
    sl_sliding_window *sw = SL_NEW(sl_sliding_window);
    pthread_mutex_init(&sw->mu, NULL);
    sl__res_clock_resolve(&cfg->clock, &sw->clock);
    sw->limit = cfg->limit;
    sw->nbuckets = cfg->buckets;
    sw->max_keys = cfg->max_keys;
    sw->width_ns = cfg->window_ns / cfg->buckets;
    sw->t0 = sl__res_now(&sw->clock);
    sw->slots = sl_calloc((size_t)cfg->max_keys + 1, sizeof *sw->slots);
    sw->counts = sl_calloc(((size_t)cfg->max_keys + 1) * (size_t)(cfg->buckets + 1), sizeof *sw->counts);
    for (int32_t i = 0; i <= cfg->max_keys; i++) sw->slots[i].newest = -1;
    *out = sw;
    return 0;
}

void sl_sliding_window_free(sl_sliding_window *sw)
{
    if (!sw) return;
    pthread_mutex_destroy(&sw->mu);
    sl_free(sw->counts);
    sl_free(sw->slots);
    sl_free(sw);
}

static uint32_t hash_key(const char *k, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)k[i]) * 16777619u;
    return h;
}

/* A slot whose newest bucket left the window holds nothing that counts. */
static bool idle(const sl_sliding_window *sw, const sw_slot *s, int64_t cur)
{
    return s->newest < 0 || s->newest < cur - sw->nbuckets;
}

/* The key's slot, or a free one claimed for it; NULL when every probed slot is busy with other keys. */
static sw_slot *find_slot(sl_sliding_window *sw, const char *key, size_t len, int64_t cur)
{
    if (!key) return &sw->slots[sw->max_keys];
    uint32_t h = hash_key(key, len);
    sw_slot *free_slot = NULL;
    int probes = sw->max_keys < SL_SW_PROBE ? sw->max_keys : SL_SW_PROBE;
    for (int i = 0; i < probes; i++) {
        sw_slot *s = &sw->slots[(h + (uint32_t)i) % (uint32_t)sw->max_keys];
        if (s->newest >= 0 && s->hash == h && s->key_len == len && memcmp(s->key, key, len) == 0) return s;
        if (!free_slot && idle(sw, s, cur)) free_slot = s;
    }
    if (!free_slot) return NULL;
    free_slot->newest = -1; /* a new tenant starts empty */
    free_slot->hash = h;
    free_slot->key_len = (uint16_t)len;
    memcpy(free_slot->key, key, len);
    return free_slot;
}

/* Moves the slot's ring to bucket `cur`, clearing the buckets that left the window. */
static void advance(sl_sliding_window *sw, sw_slot *s, int32_t *c, int64_t cur)
{
    int32_t n = sw->nbuckets + 1;
    if (s->newest < 0 || cur - s->newest >= n) {
        memset(c, 0, sizeof *c * (size_t)n);
    } else {
        for (int64_t b = s->newest + 1; b <= cur; b++) c[b % n] = 0;
    }
    if (cur > s->newest) s->newest = cur;
}

int sl_sliding_window_acquire(sl_sliding_window *sw, const char *key, size_t key_len, int64_t *retry_after_ns)
{
    if (retry_after_ns) *retry_after_ns = 0;
    if (key && key_len > SL_SW_KEY_MAX) return SL_RES_E_INVALID;
    int64_t t = sl__res_now(&sw->clock) - sw->t0, cur = t / sw->width_ns;
    int32_t n = sw->nbuckets + 1;
    pthread_mutex_lock(&sw->mu);
    sw_slot *s = find_slot(sw, key, key_len, cur);
    if (!s) {
        pthread_mutex_unlock(&sw->mu);
        if (retry_after_ns) *retry_after_ns = sw->width_ns; /* a slot frees as buckets leave the window */
        return SL_RES_E_RATE;
    }
    int32_t *c = &sw->counts[(size_t)(s - sw->slots) * (size_t)n];
    advance(sw, s, c, cur);
    int64_t sum = 0, oldest = -1;
    for (int64_t b = cur - sw->nbuckets; b <= cur; b++) {
        if (b < 0) continue;
        sum += c[b % n];
        if (oldest < 0 && c[b % n] > 0) oldest = b;
    }
    int rc = 0;
    if (sum + 1 <= sw->limit) {
        c[cur % n]++;
    } else {
        rc = SL_RES_E_RATE;
        /* The oldest counted bucket stops overlapping the window at the start of bucket oldest + n. */
        if (retry_after_ns) *retry_after_ns = (oldest + n) * sw->width_ns - t;
    }
    pthread_mutex_unlock(&sw->mu);
    return rc;
}
