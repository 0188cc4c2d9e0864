/*
 * ratelimit.c - the token bucket (as GCRA) and the per-key sliding window.
 *
 * Token bucket = GCRA (the generic cell rate algorithm of ATM networks).
 * One token is emitted every T = 1e9 / rate_per_s ns (rounded up to a whole
 * ns, so the sustained rate never exceeds rate_per_s: exact for any rate
 * that divides 1e9, e.g. 1000/s; 3/s is 2.99999999/s). The whole state is
 * one atomic int64, the theoretical arrival time `tat`: the instant the
 * bucket would be full again. At `now` the bucket holds
 * burst - (max(tat, now) - now) / T tokens, so n tokens are there when
 *
 *     max(tat, now) + n*T - now <= burst*T        (tau = burst*T)
 *
 * and taking them sets tat = max(tat, now) + n*T. One CAS does it; a refusal
 * writes nothing, and its retry_after is the exact wait for that inequality
 * to hold: max(tat, now) + n*T - tau - now. Over any interval of length t,
 * at most burst + t/T <= burst + rate*t tokens are taken.
 *
 * Sliding window: per key, `buckets` counters of bucket_ns = window_ns /
 * buckets each (bucket j covers [j*bucket_ns, (j+1)*bucket_ns)). A call at
 * `now` is admitted when the counters of every bucket overlapping
 * (now - window_ns, now], plus it, stay within `limit`. Those buckets hold
 * every earlier call of any window of length window_ns that ends with this
 * call, so no window ever holds more than limit (the proof is in
 * docs/internals/resilience.md). A key keeps ceil(window/bucket) + 1
 * counters in a ring. A refusal's retry_after is when enough of the oldest
 * buckets will have left the window.
 *
 * The key table: max_keys nodes allocated at _new, each with its ring and
 * room for key_bytes_max bytes of key (keys are compared byte for byte,
 * never by hash alone). Chained hashing into a power of two of chain heads
 * (>= max_keys, a seeded hash), one mutex per stripe of heads (at most
 * 64 stripes) guarding those chains and their nodes. Unused nodes sit on a
 * free list (its own mutex). A key idle for a window (no call, admitted or
 * not, for window_ns) is forgotten: that is safe, since its calls can no
 * longer share a window with a new one. A new key takes a free node; when
 * there is none, the idle nodes of its own chain are freed, and failing
 * that a sweep frees every idle node of the table, one stripe at a time.
 * The sweep also records when the first busy node will be idle, and no
 * sweep runs before then: with every slot busy a new key is refused in
 * O(1), with retry_after = that instant - now (a lower bound).
 *
 * Lock order: a stripe, then the free list; the sweep lock, then a stripe.
 * A caller holding a stripe drops it before sweeping.
 *
 * Time per key is monotonic: a call is counted at max(now, the latest call
 * the key saw), so two threads' clock reads arriving out of order never
 * count a call into a bucket the ring has already left.
 */
#include <math.h>
#include <pthread.h>
#include <string.h>
#include "common/alloc.h"
#include "resilience/res_int.h"

/* ---------------------------------------------------------------- token bucket */

#define TB_TOLERANCE_MAX ((int64_t)1 << 62)

struct sl_token_bucket {
    _Atomic int64_t tat;  /* theoretical arrival time: when the bucket is full again */
    int64_t interval_ns;  /* T: one token */
    int64_t tolerance_ns; /* tau = burst x T */
    int32_t burst;
    sl_res_clock clock;
};

int sl_token_bucket_new(double rate_per_s, int32_t burst, const sl_res_clock *clock, sl_token_bucket **out, char *err,
                        size_t err_len)
{
    *out = NULL;
    if (!(rate_per_s > 0) || !(rate_per_s <= 1e9))
        return sl__res_invalid(err, err_len, "rate_per_s: %g is not in (0, 1e9]", rate_per_s);
    if (burst < 1) return sl__res_invalid(err, err_len, "burst: %d is below 1", burst);
    double interval = ceil(1e9 / rate_per_s);
    if (interval * burst > (double)TB_TOLERANCE_MAX)
        return sl__res_invalid(err, err_len, "burst: %d tokens at %g/s span more than 2^62 ns", burst, rate_per_s);
    sl_token_bucket *tb = SL_NEW(sl_token_bucket);
    atomic_init(&tb->tat, INT64_MIN); /* full: max(tat, now) is now */
    tb->interval_ns = (int64_t)interval;
    tb->tolerance_ns = tb->interval_ns * burst;
    tb->burst = burst;
    sl__res_clock_resolve(clock, &tb->clock);
    *out = tb;
    return 0;
}

void sl_token_bucket_free(sl_token_bucket *tb)
{
    sl_free(tb);
}

int sl_token_bucket_acquire(sl_token_bucket *tb, int32_t n, int64_t *retry_after_ns)
{
    if (SL_UNLIKELY(n < 1 || n > tb->burst)) return SL_RES_E_INVALID; /* could never be admitted */
    int64_t now = sl__res_now(&tb->clock);
    int64_t cost = n * tb->interval_ns;
    int64_t tat = atomic_load_explicit(&tb->tat, memory_order_relaxed);
    for (;;) {
        int64_t next = (tat > now ? tat : now) + cost;
        if (SL_UNLIKELY(next - now > tb->tolerance_ns)) {
            if (retry_after_ns) *retry_after_ns = next - tb->tolerance_ns - now;
            return SL_RES_E_RATE;
        }
        /* Relaxed is enough: tat is the only state, and a CAS is atomic whatever its ordering. */
        if (atomic_compare_exchange_weak_explicit(&tb->tat, &tat, next, memory_order_relaxed, memory_order_relaxed))
            return 0;
    }
}

/* ---------------------------------------------------------------- sliding window */

#define SW_KEYS_MAX      (1 << 24)
#define SW_KEY_BYTES_MAX 1024
#define SW_STRIPES_MAX   64
#define SW_NONE          (-1)

typedef struct sw_node {
    int64_t last_ns; /* the latest call the key saw (admitted or not): calls are counted at max(now, this) */
    int64_t newest;  /* the newest bucket index the ring holds, in counts[newest_slot] */
    int64_t total;   /* the sum of the ring */
    uint64_t hash;
    int32_t newest_slot;
    int32_t next; /* the chain (or the free list); SW_NONE ends it */
    int32_t key_len;
    int32_t counts[]; /* a ring of sw->ring counters, then key_bytes_max bytes of key */
} sw_node;

#define SW_LINE 64

/* A stripe's mutex on its own cache line, so threads on different stripes do not slow each other. */
typedef struct sw_stripe {
    _Alignas(SW_LINE) pthread_mutex_t mu;
} sw_stripe;

/* n bytes aligned to a cache line, from sl_calloc; *mem is what to sl_free. */
static void *calloc_lines(size_t n, void **mem)
{
    *mem = sl_calloc(1, n + SW_LINE);
    return (void *)(((uintptr_t)*mem + SW_LINE - 1) & ~(uintptr_t)(SW_LINE - 1));
}

struct sl_sliding_window {
    int32_t limit, ring, max_keys, key_bytes_max;
    int64_t window_ns, bucket_ns;
    int64_t window_whole, window_rest; /* window_ns = window_whole x bucket_ns + window_rest */
    sl_res_clock clock;
    uint64_t seed;
    size_t node_size; /* a multiple of the cache line: two keys' nodes never share one */
    uint8_t *nodes;   /* max_keys nodes of node_size bytes, line-aligned (nodes_mem is the allocation) */
    void *nodes_mem;
    int32_t *heads; /* head_mask + 1 chains */
    uint32_t head_mask, stripe_mask;
    sw_stripe *stripes; /* chain h is guarded by stripes[h & stripe_mask].mu */
    void *stripes_mem;
    pthread_mutex_t free_mu;
    int32_t free_head, free_count;
    pthread_mutex_t sweep_mu;
    _Atomic int64_t next_sweep_ns; /* no busy node goes idle before this */
    sw_node *global;               /* the NULL key's window, under global_mu */
    pthread_mutex_t global_mu;
};

static inline sw_node *node_at(const sl_sliding_window *sw, int32_t i)
{
    return (sw_node *)(sw->nodes + (size_t)i * sw->node_size);
}
static inline char *node_key(const sl_sliding_window *sw, sw_node *n)
{
    return (char *)(n->counts + sw->ring);
}
static inline int32_t node_index(const sl_sliding_window *sw, const sw_node *n)
{
    return (int32_t)(((const uint8_t *)n - sw->nodes) / sw->node_size);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}
static inline int32_t ring_next(const sl_sliding_window *sw, int32_t slot)
{
    return slot + 1 == sw->ring ? 0 : slot + 1;
}

static uint64_t key_hash(uint64_t seed, const char *key, size_t len)
{
    uint64_t h = seed ^ ((uint64_t)len * 0x9e3779b97f4a7c15ull), w;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, key + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, key + i, len - i);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

void sl_sliding_window_config_default(sl_sliding_window_config *cfg)
{
    *cfg = (sl_sliding_window_config){
        .limit = 1000, .window_ns = 1000000000, .buckets = 10, .max_keys = 4096, .key_bytes_max = 64};
}

static int check_config(const sl_sliding_window_config *cfg, char *err, size_t err_len)
{
    if (cfg->limit < 1) return sl__res_invalid(err, err_len, "limit: %d is below 1", cfg->limit);
    if (cfg->buckets < 1 || cfg->buckets > 100)
        return sl__res_invalid(err, err_len, "buckets: %d is not in 1..100", cfg->buckets);
    if (cfg->window_ns < cfg->buckets)
        return sl__res_invalid(err, err_len, "window_ns: %lld is shorter than 1 ns per bucket (%d buckets)",
                               (long long)cfg->window_ns, cfg->buckets);
    if (cfg->max_keys < 1 || cfg->max_keys > SW_KEYS_MAX)
        return sl__res_invalid(err, err_len, "max_keys: %d is not in 1..%d", cfg->max_keys, SW_KEYS_MAX);
    if (cfg->key_bytes_max < 1 || cfg->key_bytes_max > SW_KEY_BYTES_MAX)
        return sl__res_invalid(err, err_len, "key_bytes_max: %d is not in 1..%d", cfg->key_bytes_max, SW_KEY_BYTES_MAX);
    return 0;
}

static void ring_clear(const sl_sliding_window *sw, sw_node *n, int64_t k)
{
    memset(n->counts, 0, (size_t)sw->ring * sizeof n->counts[0]);
    n->total = 0;
    n->newest = k;
    n->newest_slot = (int32_t)(k - floor_div(k, sw->ring) * sw->ring);
}

static void node_reset(const sl_sliding_window *sw, sw_node *n, int64_t now)
{
    ring_clear(sw, n, floor_div(now, sw->bucket_ns));
    n->last_ns = now;
}

static void table_init(sl_sliding_window *sw)
{
    uint32_t heads = 1;
    while (heads < (uint32_t)sw->max_keys) heads <<= 1;
    sw->head_mask = heads - 1;
    sw->stripe_mask = SL_MIN(heads, SW_STRIPES_MAX) - 1;
    sw->heads = sl_malloc(heads * sizeof *sw->heads);
    for (uint32_t i = 0; i < heads; i++) sw->heads[i] = SW_NONE;
    sw->stripes = calloc_lines((sw->stripe_mask + 1) * sizeof *sw->stripes, &sw->stripes_mem);
    for (uint32_t i = 0; i <= sw->stripe_mask; i++) pthread_mutex_init(&sw->stripes[i].mu, NULL);
    sw->nodes = calloc_lines((size_t)sw->max_keys * sw->node_size, &sw->nodes_mem);
    for (int32_t i = 0; i < sw->max_keys; i++) node_at(sw, i)->next = i + 1 < sw->max_keys ? i + 1 : SW_NONE;
    sw->free_head = 0;
    sw->free_count = sw->max_keys;
}

int sl_sliding_window_new(const sl_sliding_window_config *cfg, sl_sliding_window **out, char *err, size_t err_len)
{
    *out = NULL;
    int rc = check_config(cfg, err, err_len);
    if (rc) return rc;
    sl_sliding_window *sw = SL_NEW(sl_sliding_window);
    sw->limit = cfg->limit;
    sw->window_ns = cfg->window_ns;
    sw->bucket_ns = cfg->window_ns / cfg->buckets;
    sw->window_whole = cfg->window_ns / sw->bucket_ns;
    sw->window_rest = cfg->window_ns % sw->bucket_ns;
    sw->ring = (int32_t)((cfg->window_ns + sw->bucket_ns - 1) / sw->bucket_ns) + 1;
    sw->max_keys = cfg->max_keys;
    sw->key_bytes_max = cfg->key_bytes_max;
    sl__res_clock_resolve(&cfg->clock, &sw->clock);
    int64_t now = sl__res_now(&sw->clock);
    _Atomic uint64_t seed = (uint64_t)now ^ (uint64_t)(uintptr_t)sw; /* ASLR makes it differ per process */
    sw->seed = sl__res_rand(&seed);
    size_t bytes = sizeof(sw_node) + (size_t)sw->ring * sizeof(int32_t) + (size_t)sw->key_bytes_max;
    sw->node_size = (bytes + SW_LINE - 1) & ~(size_t)(SW_LINE - 1);
    table_init(sw);
    pthread_mutex_init(&sw->free_mu, NULL);
    pthread_mutex_init(&sw->sweep_mu, NULL);
    atomic_init(&sw->next_sweep_ns, INT64_MIN);
    sw->global = sl_calloc(1, sw->node_size);
    node_reset(sw, sw->global, now);
    pthread_mutex_init(&sw->global_mu, NULL);
    *out = sw;
    return 0;
}

void sl_sliding_window_free(sl_sliding_window *sw)
{
    if (!sw) return;
    for (uint32_t i = 0; i <= sw->stripe_mask; i++) pthread_mutex_destroy(&sw->stripes[i].mu);
    pthread_mutex_destroy(&sw->free_mu);
    pthread_mutex_destroy(&sw->sweep_mu);
    pthread_mutex_destroy(&sw->global_mu);
    sl_free(sw->stripes_mem);
    sl_free(sw->heads);
    sl_free(sw->nodes_mem);
    sl_free(sw->global);
    sl_free(sw);
}

/* Moves the ring forward to bucket k, zeroing the buckets it enters. */
static void ring_advance(const sl_sliding_window *sw, sw_node *n, int64_t k)
{
    if (k <= n->newest) return;
    if (k - n->newest >= sw->ring) {
        ring_clear(sw, n, k);
        return;
    }
    for (; n->newest < k; n->newest++) {
        n->newest_slot = ring_next(sw, n->newest_slot);
        n->total -= n->counts[n->newest_slot];
        n->counts[n->newest_slot] = 0;
    }
    SL_ASSERT(n->total >= 0);
}

/* The admission rule (see the file comment), with the node's lock held. One division: bucket k of t, and
   the first bucket overlapping (t - window, t] from t's offset in it (t - window + 1 = (k - window_whole) x
   bucket_ns + x, with x in (-bucket_ns, bucket_ns]). The ring holds buckets k - ring + 1 .. k; the window
   starts at the oldest or the one after it, so its sum is the ring's total, less the oldest or not. */
static int window_admit(const sl_sliding_window *sw, sw_node *n, int64_t now, int64_t *retry_after_ns)
{
    int64_t t = now > n->last_ns ? now : n->last_ns;
    int64_t k = floor_div(t, sw->bucket_ns);
    int64_t x = t - k * sw->bucket_ns - sw->window_rest + 1;
    int64_t first = k - sw->window_whole + (x < 0 ? -1 : x >= sw->bucket_ns ? 1 : 0);
    ring_advance(sw, n, k);
    n->last_ns = t;
    int64_t skip = first - (k - sw->ring + 1); /* ring buckets older than the window: 0 or 1 */
    SL_ASSERT(skip == 0 || skip == 1);
    int32_t slot = ring_next(sw, n->newest_slot); /* the oldest */
    int64_t sum = n->total - (skip ? n->counts[slot] : 0);
    if (SL_LIKELY(sum + 1 <= sw->limit)) {
        n->counts[n->newest_slot]++;
        n->total++;
        return 0;
    }
    if (retry_after_ns) { /* when the oldest buckets holding sum + 1 - limit calls have left the window */
        if (skip) slot = ring_next(sw, slot);
        int64_t dropped = 0, b = first;
        for (; b < k && dropped + n->counts[slot] < sum + 1 - sw->limit; b++, slot = ring_next(sw, slot))
            dropped += n->counts[slot];
        *retry_after_ns = (b + 1) * sw->bucket_ns + sw->window_ns - 1 - now;
        SL_ASSERT(*retry_after_ns > 0);
    }
    return SL_RES_E_RATE;
}

static sw_node *chain_find(const sl_sliding_window *sw, uint32_t head, uint64_t hash, const char *key, size_t len)
{
    for (int32_t i = sw->heads[head]; i != SW_NONE;) {
        sw_node *n = node_at(sw, i);
        if (n->hash == hash && (size_t)n->key_len == len && memcmp(node_key(sw, n), key, len) == 0) return n;
        i = n->next;
    }
    return NULL;
}

static void free_push(sl_sliding_window *sw, sw_node *n)
{
    pthread_mutex_lock(&sw->free_mu);
    n->next = sw->free_head;
    sw->free_head = node_index(sw, n);
    sw->free_count++;
    SL_ASSERT(sw->free_count <= sw->max_keys);
    pthread_mutex_unlock(&sw->free_mu);
}

static sw_node *free_pop(sl_sliding_window *sw)
{
    pthread_mutex_lock(&sw->free_mu);
    sw_node *n = NULL;
    if (sw->free_head != SW_NONE) {
        n = node_at(sw, sw->free_head);
        sw->free_head = n->next;
        sw->free_count--;
        SL_ASSERT(sw->free_count >= 0);
    }
    pthread_mutex_unlock(&sw->free_mu);
    return n;
}

/* With chain `head`'s stripe held: frees its idle nodes; returns when the first busy one goes idle. */
static int64_t chain_evict(sl_sliding_window *sw, uint32_t head, int64_t now)
{
    int64_t earliest = INT64_MAX;
    for (int32_t *link = &sw->heads[head]; *link != SW_NONE;) {
        sw_node *n = node_at(sw, *link);
        if (now - n->last_ns >= sw->window_ns) {
            *link = n->next;
            free_push(sw, n);
        } else {
            earliest = SL_MIN(earliest, n->last_ns + sw->window_ns);
            link = &n->next;
        }
    }
    return earliest;
}

/* Frees every idle node of the table, one stripe at a time (no stripe held on entry). */
static void sweep(sl_sliding_window *sw, int64_t now)
{
    pthread_mutex_lock(&sw->sweep_mu);
    int64_t earliest = INT64_MAX;
    for (uint32_t s = 0; s <= sw->stripe_mask; s++) {
        pthread_mutex_lock(&sw->stripes[s].mu);
        for (uint32_t h = s; h <= sw->head_mask; h += sw->stripe_mask + 1)
            earliest = SL_MIN(earliest, chain_evict(sw, h, now));
        pthread_mutex_unlock(&sw->stripes[s].mu);
    }
    /* A node inserted behind the sweep's back goes idle at now + window_ns at the earliest. */
    atomic_store(&sw->next_sweep_ns, SL_MIN(earliest, now + sw->window_ns));
    pthread_mutex_unlock(&sw->sweep_mu);
}

/* Lowers next_sweep_ns to t: a node inserted now goes idle at now + window_ns at the earliest. */
static void next_sweep_lower(sl_sliding_window *sw, int64_t t)
{
    int64_t cur = atomic_load(&sw->next_sweep_ns);
    while (t < cur && !atomic_compare_exchange_weak(&sw->next_sweep_ns, &cur, t)) {
    }
}

/* With the stripe held (it may be dropped and taken again): the key's node, found or inserted, or NULL when
   every node is busy (*retry_after_ns set). */
static sw_node *find_or_insert(sl_sliding_window *sw, uint32_t head, uint64_t hash, const char *key, size_t len,
                               int64_t now, int64_t *retry_after_ns)
{
    pthread_mutex_t *stripe = &sw->stripes[head & sw->stripe_mask].mu;
    sw_node *n = chain_find(sw, head, hash, key, len);
    if (n) return n;
    chain_evict(sw, head, now);
    n = free_pop(sw);
    if (!n && now >= atomic_load(&sw->next_sweep_ns)) {
        pthread_mutex_unlock(stripe);
        sweep(sw, now);
        pthread_mutex_lock(stripe);
        if ((n = chain_find(sw, head, hash, key, len))) return n; /* another thread inserted it meanwhile */
        n = free_pop(sw);
    }
    if (!n) {
        if (retry_after_ns) *retry_after_ns = SL_MAX(1, atomic_load(&sw->next_sweep_ns) - now);
        return NULL;
    }
    node_reset(sw, n, now);
    n->hash = hash;
    n->key_len = (int32_t)len;
    memcpy(node_key(sw, n), key, len);
    n->next = sw->heads[head];
    sw->heads[head] = node_index(sw, n);
    next_sweep_lower(sw, now + sw->window_ns);
    return n;
}

int sl_sliding_window_acquire(sl_sliding_window *sw, const char *key, size_t key_len, int64_t *retry_after_ns)
{
    int64_t now = sl__res_now(&sw->clock);
    if (!key || key_len == 0) {
        pthread_mutex_lock(&sw->global_mu);
        int rc = window_admit(sw, sw->global, now, retry_after_ns);
        pthread_mutex_unlock(&sw->global_mu);
        return rc;
    }
    if (key_len > (size_t)sw->key_bytes_max) return SL_RES_E_INVALID;
    uint64_t hash = key_hash(sw->seed, key, key_len);
    uint32_t head = (uint32_t)hash & sw->head_mask;
    pthread_mutex_t *stripe = &sw->stripes[head & sw->stripe_mask].mu;
    pthread_mutex_lock(stripe);
    sw_node *n = find_or_insert(sw, head, hash, key, key_len, now, retry_after_ns);
    int rc = n ? window_admit(sw, n, now, retry_after_ns) : SL_RES_E_RATE;
    pthread_mutex_unlock(stripe);
    return rc;
}
