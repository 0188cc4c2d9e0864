/*
 * retry.c - retries with capped exponential backoff and full jitter, a
 * classifier of results, a retry budget, and per-attempt timeouts.
 *
 * A call's progress (its attempt number, its last result) lives in the
 * caller's sl_retry_call; the policy holds its configuration, a PRNG state
 * and counters, so one policy serves any number of concurrent calls with no
 * lock. After attempt n (0-based) returned `result`, sl_retry_next decides:
 *
 *   result 0                         -> done: 0
 *   classify(result) = IGNORE        -> done: 0 (the result stands; it is not an error to retry)
 *   classify(result) = FATAL         -> stop: `result`
 *   RETRYABLE and n + 1 = max        -> stop: SL_RES_E_ATTEMPTS
 *   RETRYABLE and the budget spent   -> stop: SL_RES_E_BUDGET
 *   RETRYABLE                        -> retry: 1, after backoff(n)
 *
 * backoff(n) = min(max_backoff_ns, base_ns x multiplier^n); with full jitter
 * (AWS's "full jitter": it spreads a herd of clients best) a uniform draw in
 * [0, backoff(n)], from a splitmix64 state the policy's calls share with one
 * atomic add each. Every stop sets *delay_ns to -1, so a caller whose own
 * fatal codes include 1 still tells "retry" apart.
 *
 * The budget (Finagle's RetryBudget): over a rolling window, retries <=
 * budget_ratio x calls + budget_min_per_s x window. The window is ten
 * buckets of budget_window_ns / 10; a bucket's counter is one 64-bit word,
 * the bucket's index (low 32 bits) above its count, so a stale word (an
 * older index) is restarted at 1 by the same CAS that counts, and readers
 * add only the words whose index is among the last ten: the window is the
 * current bucket and the nine before it, 90-100% of budget_window_ns. A
 * retry first counts itself, then checks, and takes itself back when over:
 * racing retries near the limit may both be refused, never both admitted
 * past it. Calls are counted per stripe (compose_int.h), so sl_retry_begin
 * on the success path touches only its thread's cache line.
 */
#include <math.h>
#include "resilience/compose_int.h"

#define BUDGET_BUCKETS    10
#define MAX_ATTEMPTS      1000
#define TIMEOUT_MAX_NS    (INT64_MAX / 4) /* far enough, and now + it never overflows */
#define SECOND_NS         1000000000.0

typedef struct retry_stripe {
    _Alignas(SL__CACHE_LINE) _Atomic int64_t calls;
    _Atomic int64_t succeeded_first;
    _Atomic uint64_t call_buckets[BUDGET_BUCKETS];
} retry_stripe;

struct sl_retry {
    sl_retry_config cfg; /* clock resolved */
    void *mem;           /* the allocation this struct is aligned in */
    int64_t bucket_ns;   /* budget_window_ns / BUDGET_BUCKETS */
    double reserve;      /* budget_min_per_s x the window, in retries */
    _Alignas(SL__CACHE_LINE) _Atomic uint64_t rng;
    _Atomic uint64_t retry_buckets[BUDGET_BUCKETS];
    _Atomic int64_t retries, succeeded_after_retry, failed_fatal, exhausted, budget_refused;
    retry_stripe stripes[SL__STRIPES];
};

_Atomic uint32_t sl__res_stripe_next;
_Thread_local uint32_t sl__res_stripe_id;

sl_retry_class sl_retry_classify_http(void *arg, int status)
{
    (void)arg;
    if (status == 408 || status == 425 || status == 429 || (status >= 500 && status <= 599)) return SL_RETRY_RETRYABLE;
    if (status >= 400 && status <= 499) return SL_RETRY_FATAL;
    if (status >= 100 && status <= 399) return SL_RETRY_IGNORE;
    return SL_RETRY_RETRYABLE; /* not an HTTP status: a transport error, worth another try */
}

void sl_retry_config_default(sl_retry_config *cfg)
{
    *cfg = (sl_retry_config){.max_attempts = 3,
                             .base_ns = 100000000,
                             .multiplier = 2,
                             .max_backoff_ns = 10 * (int64_t)1000000000,
                             .full_jitter = true,
                             .attempt_timeout_ns = 0,
                             .attempt_timeout_growth = 1,
                             .budget_ratio = 0.1,
                             .budget_window_ns = 10 * (int64_t)1000000000,
                             .budget_min_per_s = 10};
}

static int check_config(const sl_retry_config *cfg, char *err, size_t err_len)
{
    if (cfg->max_attempts < 1 || cfg->max_attempts > MAX_ATTEMPTS)
        return sl__res_invalid(err, err_len, "max_attempts: %d is not in 1..%d", cfg->max_attempts, MAX_ATTEMPTS);
    if (cfg->base_ns < 0) return sl__res_invalid(err, err_len, "base_ns: %lld is negative", (long long)cfg->base_ns);
    if (!(cfg->multiplier >= 1 && cfg->multiplier <= 1000))
        return sl__res_invalid(err, err_len, "multiplier: %g is not in 1..1000", cfg->multiplier);
    if (cfg->max_backoff_ns < 0)
        return sl__res_invalid(err, err_len, "max_backoff_ns: %lld is negative", (long long)cfg->max_backoff_ns);
    if (cfg->attempt_timeout_ns < 0)
        return sl__res_invalid(err, err_len, "attempt_timeout_ns: %lld is negative", (long long)cfg->attempt_timeout_ns);
    if (!(cfg->attempt_timeout_growth >= 1 && cfg->attempt_timeout_growth <= 100))
        return sl__res_invalid(err, err_len, "attempt_timeout_growth: %g is not in 1..100", cfg->attempt_timeout_growth);
    if (!(cfg->budget_ratio >= 0 && cfg->budget_ratio <= 1000))
        return sl__res_invalid(err, err_len, "budget_ratio: %g is not in 0..1000", cfg->budget_ratio);
    if (cfg->budget_ratio > 0 && cfg->budget_window_ns < BUDGET_BUCKETS)
        return sl__res_invalid(err, err_len, "budget_window_ns: %lld is below %d", (long long)cfg->budget_window_ns,
                               BUDGET_BUCKETS);
    if (cfg->budget_min_per_s < 0)
        return sl__res_invalid(err, err_len, "budget_min_per_s: %d is negative", cfg->budget_min_per_s);
    return 0;
}

int sl_retry_new(const sl_retry_config *cfg, sl_retry **out, char *err, size_t err_len)
{
    *out = NULL;
    int rc = check_config(cfg, err, err_len);
    if (rc) return rc;
    void *mem;
    sl_retry *r = sl__res_calloc_lines(sizeof *r, &mem);
    r->mem = mem;
    r->cfg = *cfg;
    sl__res_clock_resolve(&cfg->clock, &r->cfg.clock);
    uint64_t seed = cfg->seed ? cfg->seed : (uint64_t)sl__res_now(&r->cfg.clock) ^ (uint64_t)(uintptr_t)r;
    atomic_init(&r->rng, seed);
    r->bucket_ns = cfg->budget_window_ns / BUDGET_BUCKETS;
    r->reserve = (double)cfg->budget_min_per_s * ((double)cfg->budget_window_ns / SECOND_NS);
    *out = r;
    return 0;
}

void sl_retry_free(sl_retry *r)
{
    if (r) sl_free(r->mem);
}

/* ---- the budget's bucket words: index << 32 | count ---- */

static int64_t bucket_index(const sl_retry *r, int64_t now_ns)
{
    int64_t i = now_ns / r->bucket_ns;
    return (now_ns < 0 && i * r->bucket_ns != now_ns) ? i - 1 : i; /* floor, for a clock before 0 */
}

/* Counts one in the word of bucket `index`; false when the word already belongs to a later bucket (a
   thread that read the clock long ago: its event is outside the window anyway). */
static bool bucket_add(_Atomic uint64_t *word, int64_t index)
{
    uint32_t tag = (uint32_t)index;
    uint64_t old = atomic_load_explicit(word, memory_order_relaxed);
    for (;;) {
        uint32_t old_tag = (uint32_t)(old >> 32);
        uint64_t next;
        if (old_tag == tag)
            next = (uint32_t)old == UINT32_MAX ? old : old + 1;
        else if ((int32_t)(tag - old_tag) > 0)
            next = (uint64_t)tag << 32 | 1;
        else
            return false;
        if (atomic_compare_exchange_weak_explicit(word, &old, next, memory_order_relaxed, memory_order_relaxed))
            return true;
    }
}

/* Takes back one counted by bucket_add, if its bucket has not been restarted since. */
static void bucket_undo(_Atomic uint64_t *word, int64_t index)
{
    uint64_t old = atomic_load_explicit(word, memory_order_relaxed);
    while ((uint32_t)(old >> 32) == (uint32_t)index && (uint32_t)old > 0) {
        if (atomic_compare_exchange_weak_explicit(word, &old, old - 1, memory_order_relaxed, memory_order_relaxed))
            return;
    }
}

/* The counts of the words whose bucket is `index` or one of the nine before it. */
static int64_t bucket_sum(const _Atomic uint64_t *words, int64_t index)
{
    int64_t sum = 0;
    for (int i = 0; i < BUDGET_BUCKETS; i++) {
        uint64_t w = atomic_load_explicit((_Atomic uint64_t *)&words[i], memory_order_relaxed);
        if ((uint32_t)((uint32_t)index - (uint32_t)(w >> 32)) < BUDGET_BUCKETS) sum += (uint32_t)w;
    }
    return sum;
}

static _Atomic uint64_t *bucket_of(_Atomic uint64_t *words, int64_t index)
{
    return &words[(uint64_t)index % BUDGET_BUCKETS];
}

static int64_t window_calls(const sl_retry *r, int64_t index)
{
    int64_t calls = 0;
    for (int s = 0; s < SL__STRIPES; s++) calls += bucket_sum(r->stripes[s].call_buckets, index);
    return calls;
}

static double budget_allowed(const sl_retry *r, int64_t calls)
{
    /* The epsilon keeps 0.1 x 100 from flooring to 9 through rounding. */
    return floor(r->cfg.budget_ratio * (double)calls + 1e-9) + r->reserve;
}

/* Takes a retry from the budget: true when it fits. */
static bool budget_take(sl_retry *r, int64_t now_ns)
{
    if (r->cfg.budget_ratio <= 0) return true;
    int64_t index = bucket_index(r, now_ns);
    _Atomic uint64_t *word = bucket_of(r->retry_buckets, index);
    if (!bucket_add(word, index)) return true; /* a stale clock reading: outside the window, not counted */
    int64_t retries = bucket_sum(r->retry_buckets, index);
    SL_ASSERT(retries >= 1);
    if ((double)retries <= budget_allowed(r, window_calls(r, index))) return true;
    bucket_undo(word, index);
    return false;
}

/* ---- calls ---- */

void sl__retry_begin_at(sl_retry *r, sl_retry_call *call, int64_t now_ns)
{
    retry_stripe *stripe = &r->stripes[sl__res_stripe()];
    sl__res_count(&stripe->calls, 1);
    if (r->cfg.budget_ratio > 0) {
        int64_t index = bucket_index(r, now_ns);
        bucket_add(bucket_of(stripe->call_buckets, index), index);
    }
    *call = (sl_retry_call){.attempt = 0, .started_ns = now_ns, .last_result = 0};
}

void sl_retry_begin(sl_retry *r, sl_retry_call *call)
{
    sl__retry_begin_at(r, call, sl__res_now(&r->cfg.clock));
}

sl_retry_class sl__retry_classify(const sl_retry *r, int result)
{
    SL_ASSERT(result != 0);
    if (!r || !r->cfg.classify) return SL_RETRY_RETRYABLE;
    return r->cfg.classify(r->cfg.classify_arg, result);
}

static int64_t backoff_ns(sl_retry *r, int32_t retry)
{
    double d = (double)r->cfg.base_ns * pow(r->cfg.multiplier, retry);
    int64_t cap = r->cfg.max_backoff_ns;
    int64_t ceiling = d >= (double)cap ? cap : (int64_t)llround(d);
    if (!r->cfg.full_jitter || ceiling == 0) return ceiling;
    /* Uniform in [0, ceiling]: the high half of a 64 x 64-bit product (Lemire), no modulo bias to speak of. */
    unsigned __int128 m = (unsigned __int128)sl__res_rand(&r->rng) * ((uint64_t)ceiling + 1);
    int64_t delay = (int64_t)(uint64_t)(m >> 64);
    SL_ASSERT(delay >= 0 && delay <= ceiling);
    return delay;
}

static int stop(int code, int64_t *delay_ns)
{
    if (delay_ns) *delay_ns = -1;
    return code;
}

int sl_retry_next(sl_retry *r, sl_retry_call *call, int result, int64_t *delay_ns)
{
    SL_ASSERT(call->attempt >= 0 && call->attempt < r->cfg.max_attempts);
    call->last_result = result;
    sl_retry_class cls = result == 0 ? SL_RETRY_IGNORE : sl__retry_classify(r, result);
    if (cls == SL_RETRY_IGNORE) {
        if (call->attempt == 0)
            sl__res_count(&r->stripes[sl__res_stripe()].succeeded_first, 1);
        else
            sl__res_count(&r->succeeded_after_retry, 1);
        return stop(0, delay_ns);
    }
    if (cls == SL_RETRY_FATAL) {
        sl__res_count(&r->failed_fatal, 1);
        return stop(result, delay_ns);
    }
    if (call->attempt + 1 >= r->cfg.max_attempts) {
        sl__res_count(&r->exhausted, 1);
        return stop(SL_RES_E_ATTEMPTS, delay_ns);
    }
    if (!budget_take(r, sl__res_now(&r->cfg.clock))) {
        sl__res_count(&r->budget_refused, 1);
        return stop(SL_RES_E_BUDGET, delay_ns);
    }
    int64_t delay = backoff_ns(r, call->attempt);
    call->attempt++;
    sl__res_count(&r->retries, 1);
    if (delay_ns) *delay_ns = delay;
    return 1;
}

int64_t sl_retry_attempt_timeout_ns(const sl_retry *r, int32_t attempt)
{
    SL_ASSERT(attempt >= 0);
    if (r->cfg.attempt_timeout_ns == 0) return 0;
    double t = (double)r->cfg.attempt_timeout_ns * pow(r->cfg.attempt_timeout_growth, attempt);
    return t >= (double)TIMEOUT_MAX_NS ? TIMEOUT_MAX_NS : (int64_t)llround(t);
}

void sl_retry_stats_get(sl_retry *r, sl_retry_stats *out)
{
    *out = (sl_retry_stats){0};
    for (int s = 0; s < SL__STRIPES; s++) {
        out->calls += sl__res_load(&r->stripes[s].calls);
        out->succeeded_first += sl__res_load(&r->stripes[s].succeeded_first);
    }
    out->retries = sl__res_load(&r->retries);
    out->succeeded_after_retry = sl__res_load(&r->succeeded_after_retry);
    out->failed_fatal = sl__res_load(&r->failed_fatal);
    out->exhausted = sl__res_load(&r->exhausted);
    out->budget_refused = sl__res_load(&r->budget_refused);
    if (r->cfg.budget_ratio > 0) {
        int64_t index = bucket_index(r, sl__res_now(&r->cfg.clock));
        double allowed = budget_allowed(r, window_calls(r, index));
        out->budget_used = allowed > 0 ? (double)bucket_sum(r->retry_buckets, index) / allowed : 0;
    }
}
