/*
 * resilience.h - resilience policies for calls to a dependency: circuit
 * breaker, bulkheads, retry, timeouts, hedged requests, rate limiters, an
 * adaptive concurrency limit, fallback, and a pipeline that composes them.
 *
 * Pure C, no I/O of its own. Every policy is thread-safe (one handle may be
 * shared by all threads), allocates only when it is created (nothing on the
 * path of a call), and reads time through an injectable clock, so tests run
 * in simulated time. Handles are opaque: _new allocates, _free releases.
 *
 * Two ways to use a policy:
 *   - directly: ask before the call (acquire: admitted, or refused with a
 *     reason and when to try again), tell after it (release with the
 *     outcome and, where it matters, the duration);
 *   - through an sl_pipeline, which runs a call through several policies
 *     in a fixed order (see "Pipelines" below).
 *
 * Errors: functions return 0 or a negative SL_RES_E* code; constructors
 * also fill `err` (may be NULL) with a sentence naming the bad field.
 */
#ifndef SLUICE_RESILIENCE_H
#define SLUICE_RESILIENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * Common
 * ====================================================================== */

/* Time in monotonic nanoseconds; `sleep` waits (used only by the blocking helpers: sl_pipeline_run,
   sl_hedge_run, sl_bulkhead_acquire with a wait). A zeroed clock means CLOCK_MONOTONIC and nanosleep. A
   simulated clock advances its time in `sleep` and never blocks. */
typedef struct sl_res_clock {
    int64_t (*now_ns)(void *arg);
    void (*sleep_ns)(void *arg, int64_t ns);
    void *arg;
} sl_res_clock;

/* What a finished call was, for the policies that count outcomes. */
typedef enum {
    SL_RES_SUCCESS = 0,
    SL_RES_FAILURE = 1,  /* the dependency failed (counts towards opening a breaker, is retried if retryable) */
    SL_RES_IGNORED = 2   /* neither: e.g. the caller's own fault (HTTP 404) or a cancelled hedge */
} sl_res_outcome;

/* Why a call was refused or ended without the dependency's answer. */
#define SL_RES_E_OPEN       (-2001) /* circuit breaker open, forced open, or half-open with no probe left */
#define SL_RES_E_FULL       (-2002) /* bulkhead full (after its wait), or a pool's queue full */
#define SL_RES_E_RATE       (-2003) /* rate limited */
#define SL_RES_E_LIMIT      (-2004) /* adaptive concurrency limit reached (or shed by priority) */
#define SL_RES_E_TIMEOUT    (-2005) /* the call (or every attempt) ran past its timeout */
#define SL_RES_E_CANCELLED  (-2006) /* cancelled through its token (a hedge that lost, a caller that gave up) */
#define SL_RES_E_BUDGET     (-2007) /* a retry was due but the retry budget is spent */
#define SL_RES_E_ATTEMPTS   (-2008) /* retries exhausted: the last attempt's error is in sl_res_result */
#define SL_RES_E_INVALID    (-2009) /* a configuration or argument is out of range */
#define SL_RES_E_NOMEM      (-2010)

const char *sl_res_strerror(int code);
/* A refusal the caller may retry later (OPEN, FULL, RATE, LIMIT, BUDGET): a different dependency or a
   fallback is the right answer now, and retry_after says when this one may admit again. */
bool sl_res_is_refusal(int code);

/* A cancellation token, embedded by the caller (no allocation). Calls observe it; cancelling is one atomic
   store, safe from any thread. */
typedef struct sl_res_cancel {
    _Atomic int cancelled;
} sl_res_cancel;
void sl_res_cancel_init(sl_res_cancel *c);
void sl_res_cancel_set(sl_res_cancel *c);
bool sl_res_cancelled(const sl_res_cancel *c);

/* ======================================================================
 * Latency tracker: a rolling histogram per dependency
 * ====================================================================== */

/* Log-linear buckets (HdrHistogram's scheme, 3% resolution, 32 ns .. 137 s) over a window made of `slices`
   sub-windows that rotate: a percentile covers the last window_ns (at most one slice more). Fixed memory
   (7.2 KiB per slice, slices + 1 of them), O(1) lock-free record. */
typedef struct sl_latency sl_latency;
typedef struct sl_latency_config {
    int64_t window_ns;   /* default 60 s; a slice (window_ns / slices) is at least 1 ms */
    int32_t slices;      /* default 6 (2..64) */
    int64_t refresh_ns;  /* how old sl_latency_percentile_cached's answer may be (default 1 ms; >= 0) */
    sl_res_clock clock;
} sl_latency_config;

void sl_latency_config_default(sl_latency_config *cfg);
int sl_latency_new(const sl_latency_config *cfg, sl_latency **out, char *err, size_t err_len);
void sl_latency_free(sl_latency *lat);
void sl_latency_record(sl_latency *lat, int64_t ns);
/* The value at percentile p (0..100) over the window; -1 when it holds nothing. */
int64_t sl_latency_percentile(sl_latency *lat, double p);
/* The same from a cache, for hot paths (adaptive timeouts, hedge delays): recomputed when older than
   refresh_ns or when the window has rotated since, else O(1). Up to 4 distinct p are cached at once; a
   fifth is computed at each call. */
int64_t sl_latency_percentile_cached(sl_latency *lat, double p);
int64_t sl_latency_count(sl_latency *lat);
/* Prometheus text exposition of the window as a histogram `name` with `labels` (e.g. `dep="payments"`, may
   be NULL), buckets in seconds. Returns the length it needs (as snprintf); writes at most cap bytes. */
size_t sl_latency_prometheus(sl_latency *lat, const char *name, const char *labels, char *buf, size_t cap);

/* ======================================================================
 * Timeouts: fixed, or adaptive = clamp(k x percentile, min, max)
 * ====================================================================== */

typedef struct sl_timeout_config {
    int64_t fixed_ns;       /* > 0: always this */
    sl_latency *latency;    /* adaptive (fixed_ns == 0): from this dependency's window */
    double percentile;      /* default 99 */
    double k;               /* default 2 */
    int64_t min_ns, max_ns; /* the clamp; also the answer while the window is empty: max_ns */
} sl_timeout_config;
void sl_timeout_config_default(sl_timeout_config *cfg);
/* The timeout to use now: one continuous rule for "2 s normally, 5 s when slow, 10 s when very slow". */
int64_t sl_timeout_ns(const sl_timeout_config *cfg);

/* ======================================================================
 * Circuit breaker
 *
 *   CLOSED --failure or slow rate >= threshold (after min_calls)--> OPEN
 *   OPEN --open_ns passed (checked at the next call or query)--> HALF_OPEN
 *   HALF_OPEN --half_open_calls probes: rates below the thresholds--> CLOSED
 *             --rates at or above them, or half_open_max_ns passed--> OPEN
 *   any --sl_cb_force--> FORCED_OPEN | FORCED_CLOSED | DISABLED | CLOSED (reset)
 * ====================================================================== */

typedef enum {
    SL_CB_CLOSED,
    SL_CB_OPEN,
    SL_CB_HALF_OPEN,
    SL_CB_FORCED_OPEN,   /* refuses everything until forced elsewhere */
    SL_CB_FORCED_CLOSED, /* admits everything, still counts */
    SL_CB_DISABLED       /* admits everything, counts nothing */
} sl_cb_state;

typedef enum {
    SL_CB_COUNT_WINDOW,  /* the last `window` calls */
    SL_CB_TIME_WINDOW,   /* the calls of the last `window` seconds */
    SL_CB_CONSECUTIVE    /* opens after `consecutive_failures` failures in a row (no rates) */
} sl_cb_mode;

typedef struct sl_cb_config {
    sl_cb_mode mode;            /* default SL_CB_COUNT_WINDOW */
    int32_t window;             /* calls or seconds (default 100) */
    int32_t min_calls;          /* no verdict before this many calls in the window (default 100) */
    double failure_rate;        /* percent; opens at or above it; 0 = not used (default 50) */
    double slow_rate;           /* percent of calls slower than slow_ns; 0 = not used (default 100) */
    int64_t slow_ns;            /* default 60 s; a call still in flight past it already counts as slow */
    int32_t consecutive_failures; /* SL_CB_CONSECUTIVE (default 5) */
    int64_t open_ns;            /* how long OPEN refuses before HALF_OPEN (default 60 s) */
    int32_t half_open_calls;    /* probes admitted in HALF_OPEN (default 10) */
    int64_t half_open_max_ns;   /* HALF_OPEN longer than this goes back to OPEN; 0 = no limit (default 0) */
    int32_t max_in_flight;      /* calls tracked for the in-flight slow rule (default 1024; more are admitted
                                   but not tracked while in flight) */
    /* Called on every state change, after it, outside the breaker's lock. */
    void (*on_state)(void *arg, sl_cb_state from, sl_cb_state to);
    void *on_state_arg;
    sl_res_clock clock;
} sl_cb_config;

/* What acquire hands out and release takes back: caller-owned, on its stack. */
typedef struct sl_cb_permit {
    int64_t start_ns;
    uint32_t epoch;   /* the window generation it was admitted in (a permit from before a reset is ignored) */
    int32_t slot;     /* its in-flight slot, -1 if untracked */
} sl_cb_permit;

typedef struct sl_cb sl_cb;
typedef struct sl_cb_stats {
    sl_cb_state state;
    double failure_rate, slow_rate;  /* percent over the current window; -1 below min_calls */
    int64_t calls, successes, failures, ignored, slow, rejected, in_flight; /* window counts, rejected total */
    int64_t in_flight_slow;          /* of in_flight, the calls already past slow_ns (in slow_rate) */
    int64_t not_permitted_since_ns;  /* when the current OPEN began (0 when not open) */
} sl_cb_stats;

void sl_cb_config_default(sl_cb_config *cfg);
int sl_cb_new(const sl_cb_config *cfg, sl_cb **out, char *err, size_t err_len);
void sl_cb_free(sl_cb *cb);
/* 0 (permit filled) or SL_RES_E_OPEN with *retry_after_ns (may be NULL), never 0: OPEN, the time until
   HALF_OPEN; HALF_OPEN with no probe left, the time until half_open_max_ns ends it, or without that limit
   until open_ns after it began (open_ns once that has passed); FORCED_OPEN, INT64_MAX. */
int sl_cb_acquire(sl_cb *cb, sl_cb_permit *permit, int64_t *retry_after_ns);
void sl_cb_release(sl_cb *cb, const sl_cb_permit *permit, sl_res_outcome outcome);
void sl_cb_force(sl_cb *cb, sl_cb_state state);
sl_cb_state sl_cb_state_now(sl_cb *cb);
void sl_cb_stats_get(sl_cb *cb, sl_cb_stats *out);
const char *sl_cb_state_name(sl_cb_state state);

/* ======================================================================
 * Bulkheads
 * ====================================================================== */

/* Semaphore bulkhead: at most max_concurrent calls at once; acquire may wait up to wait_ns for a slot. With
   the system clock (clock NULL or zeroed) a waiter sleeps on a condvar; with an injected clock it polls,
   sleeping through clock->sleep_ns in steps of wait_ns / 16 (1 us .. 1 ms, the last one ending at the
   deadline) and trying after each, so waits in simulated time are deterministic. */
typedef struct sl_bulkhead sl_bulkhead;
typedef struct sl_bulkhead_stats {
    int32_t active, waiting, max_concurrent;
    int64_t admitted, rejected;
    double saturation;  /* active / max_concurrent */
} sl_bulkhead_stats;
int sl_bulkhead_new(int32_t max_concurrent, const sl_res_clock *clock, sl_bulkhead **out, char *err, size_t err_len);
void sl_bulkhead_free(sl_bulkhead *b);
/* 0 or SL_RES_E_FULL. wait_ns 0 never blocks. */
int sl_bulkhead_acquire(sl_bulkhead *b, int64_t wait_ns);
/* Once per admitted acquire (a release without one is a bug: it asserts). */
void sl_bulkhead_release(sl_bulkhead *b);
void sl_bulkhead_stats_get(sl_bulkhead *b, sl_bulkhead_stats *out);

/* Thread-pool bulkhead: core threads kept, up to max while the bounded queue is full, idle extra threads
   leave after keep_alive_ns; when threads and queue are all busy, the full policy decides. */
typedef enum {
    SL_POOL_REJECT,      /* submit returns SL_RES_E_FULL */
    SL_POOL_CALLER_RUNS  /* the task runs in the submitting thread: back-pressure on the producer */
} sl_pool_full;
typedef struct sl_pool_config {
    int32_t core_threads, max_threads; /* defaults 4, 8 */
    int32_t queue_capacity;            /* default 64 */
    int64_t keep_alive_ns;             /* default 60 s */
    sl_pool_full when_full;            /* default SL_POOL_REJECT */
} sl_pool_config;
typedef struct sl_pool sl_pool;
typedef struct sl_pool_stats {
    int32_t threads, active, queued, queue_capacity;
    int64_t completed, rejected, ran_in_caller;
    double saturation;  /* (active + queued) / (max_threads + queue_capacity) */
} sl_pool_stats;
void sl_pool_config_default(sl_pool_config *cfg);
int sl_pool_new(const sl_pool_config *cfg, sl_pool **out, char *err, size_t err_len);
/* Runs what is queued, then joins the threads. */
void sl_pool_free(sl_pool *pool);
/* 0 (queued, started, or run in the caller) or SL_RES_E_FULL. */
int sl_pool_submit(sl_pool *pool, void (*fn)(void *arg), void *arg);
void sl_pool_stats_get(sl_pool *pool, sl_pool_stats *out);

/* ======================================================================
 * Retry
 * ====================================================================== */

typedef enum {
    SL_RETRY_RETRYABLE,  /* try again (after the backoff) */
    SL_RETRY_FATAL,      /* stop: it will not get better (HTTP 400, 401, 403, 404, 422 ...) */
    SL_RETRY_IGNORE      /* a success for the retry's purposes: stop, return it */
} sl_retry_class;

/* Classifies an attempt's result code (0 = success is never passed). */
typedef sl_retry_class (*sl_retry_classify_fn)(void *arg, int result);
/* For results that are HTTP statuses: 408, 425, 429, 5xx retryable; other 4xx fatal; 1xx-3xx ignore. */
sl_retry_class sl_retry_classify_http(void *arg, int status);

typedef struct sl_retry_config {
    int32_t max_attempts;         /* the first call included (default 3) */
    int64_t base_ns;              /* first backoff (default 100 ms) */
    double multiplier;            /* default 2 */
    int64_t max_backoff_ns;       /* cap (default 10 s) */
    bool full_jitter;             /* backoff uniform in [0, min(cap, base x mult^n)] (default true) */
    int64_t attempt_timeout_ns;   /* per-attempt timeout, 0 = none (default 0) */
    double attempt_timeout_growth;/* each retry's timeout x this (default 1) */
    double budget_ratio;          /* retries <= this x calls over budget_window_ns; 0 = no budget (default 0.1) */
    int64_t budget_window_ns;     /* default 10 s; rolls in tenths (the window is 90-100% of it) */
    int32_t budget_min_per_s;     /* retries always allowed per second, whatever the ratio (default 10) */
    sl_retry_classify_fn classify;/* NULL: every non-zero result is retryable */
    void *classify_arg;
    uint64_t seed;                /* jitter; 0 = from the clock */
    sl_res_clock clock;
} sl_retry_config;

/* One call's progress through its attempts: caller-owned. */
typedef struct sl_retry_call {
    int32_t attempt;     /* 0 for the first call */
    int64_t started_ns;
    int last_result;
} sl_retry_call;

typedef struct sl_retry sl_retry;
typedef struct sl_retry_stats {
    int64_t calls, retries, succeeded_first, succeeded_after_retry, failed_fatal, exhausted, budget_refused;
    double budget_used;  /* retries / what the budget allows (ratio x calls + budget_min_per_s x window) over
                            the window; 0 without a budget */
} sl_retry_stats;
void sl_retry_config_default(sl_retry_config *cfg);
int sl_retry_new(const sl_retry_config *cfg, sl_retry **out, char *err, size_t err_len);
void sl_retry_free(sl_retry *r);
/* Starts a call (counts it for the budget). */
void sl_retry_begin(sl_retry *r, sl_retry_call *call);
/* After an attempt returned `result` (0 = success), kept in call->last_result: 0 = done (success or ignored:
   the call's answer is call->last_result); 1 = retry after *delay_ns (>= 0), call->attempt counts it; or stop
   with SL_RES_E_ATTEMPTS, SL_RES_E_BUDGET, or `result` itself when it is fatal. Every stop sets *delay_ns to
   -1 (a caller whose own codes include 1 tells a retry by *delay_ns >= 0). delay_ns may be NULL. */
int sl_retry_next(sl_retry *r, sl_retry_call *call, int result, int64_t *delay_ns);
/* The timeout of attempt n (0-based), from attempt_timeout_ns and its growth; 0 = none. */
int64_t sl_retry_attempt_timeout_ns(const sl_retry *r, int32_t attempt);
void sl_retry_stats_get(sl_retry *r, sl_retry_stats *out);

/* ======================================================================
 * Hedged requests
 *
 *   attempt 0 starts --delay (fixed, or the live percentile)--> attempt 1 starts --delay--> ... up to
 *   1 + max_hedges attempts; the first success wins and the others are cancelled; all failed: one error
 *   with every attempt's cause. An attempt that fails while no other is in flight makes the next one due at
 *   once (waiting out the delay would only add latency: the delay exists to avoid a second load while the
 *   first may still answer).
 * ====================================================================== */

typedef struct sl_hedge_config {
    int32_t max_hedges;        /* extra attempts (default 1, 0..8) */
    int64_t delay_ns;          /* > 0: fixed delay between starts */
    sl_latency *latency;       /* delay_ns == 0: the delay is this dependency's live `percentile` */
    double percentile;         /* default 95 */
    int64_t min_delay_ns;      /* floor of the live delay (default 1 ms); also used while the window is empty */
    sl_res_clock clock;
} sl_hedge_config;

#define SL_HEDGE_MAX_ATTEMPTS 9
typedef enum {
    SL_HEDGE_RUNNING,  /* attempts in flight (begin starts attempt 0) */
    SL_HEDGE_PENDING,  /* none in flight after a failure: the next attempt is due now */
    SL_HEDGE_WON,      /* decided: `winner` succeeded; late losers may still finish */
    SL_HEDGE_FAILED    /* decided: every attempt failed (results[] has each cause) */
} sl_hedge_state;
/* One hedged call's state: caller-owned (no allocation); attempts observe their own cancel token. */
typedef struct sl_hedge_call {
    sl_hedge_state state;
    int32_t started, finished, winner;       /* winner -1 until one succeeds */
    int64_t start_ns, next_ns;               /* when the next attempt is due (INT64_MAX: none) */
    int64_t delay_ns;                        /* between starts: fixed at begin (the live percentile then) */
    int results[SL_HEDGE_MAX_ATTEMPTS];      /* each finished attempt's result */
    sl_res_cancel cancel[SL_HEDGE_MAX_ATTEMPTS];
} sl_hedge_call;

typedef struct sl_hedge sl_hedge;
typedef struct sl_hedge_stats {
    int64_t calls, hedges_started, won_by_hedge, won_by_first, all_failed;
} sl_hedge_stats;
void sl_hedge_config_default(sl_hedge_config *cfg);
int sl_hedge_new(const sl_hedge_config *cfg, sl_hedge **out, char *err, size_t err_len);
void sl_hedge_free(sl_hedge *h);
/* The state machine, for callers with their own threads or event loop (drawn in src/resilience/hedge.c):
   begin: attempt 0 is to start now (begin counts it: call->started is 1). due: how many attempts to start
   now; their indexes are call->started's value before the call, upwards (due adds them to it); call->next_ns
   says when to ask again. finish: attempt i ended with result (0 = success); returns 1 once, when the call is
   decided (a winner, with every other token cancelled, or all failed); a loser finishing later is recorded
   and returns 0. */
void sl_hedge_begin(sl_hedge *h, sl_hedge_call *call);
int sl_hedge_due(sl_hedge *h, sl_hedge_call *call);
int sl_hedge_finish(sl_hedge *h, sl_hedge_call *call, int32_t attempt, int result);
/* Blocking helper: runs each attempt fn(arg, attempt, cancel) on a `pool` thread (an attempt the pool
   refuses fails with SL_RES_E_FULL), waits for the winner, and returns its result (0), or the first attempt's
   error when all failed (every cause stays in call->results). Losers are cancelled through their token, and
   sl_hedge_run returns once they have returned too, so `arg` and `call` may live on the caller's stack:
   attempts must observe the token (the library cannot interrupt them). Waits: with the system clock, on a
   condvar (an attempt's end, or the next hedge's time); with an injected clock, by polling through
   clock.sleep_ns (up to the next hedge, 1 ms at most per step) and re-checking after each step, so a
   simulated clock that advances only while the attempts are waiting makes runs deterministic. */
int sl_hedge_run(sl_hedge *h, sl_pool *pool, int (*fn)(void *arg, int32_t attempt, const sl_res_cancel *cancel),
                 void *arg, sl_hedge_call *call);
void sl_hedge_stats_get(sl_hedge *h, sl_hedge_stats *out);

/* ======================================================================
 * Rate limiters
 * ====================================================================== */

/* Token bucket (as GCRA: one atomic timestamp, no lock): `rate_per_s` sustained, bursts up to `burst`.
   rate_per_s in (0, 1e9]: one token every ceil(1e9 / rate_per_s) ns, so never faster than asked. */
typedef struct sl_token_bucket sl_token_bucket;
int sl_token_bucket_new(double rate_per_s, int32_t burst, const sl_res_clock *clock, sl_token_bucket **out,
                        char *err, size_t err_len);
void sl_token_bucket_free(sl_token_bucket *tb);
/* 0, or SL_RES_E_RATE with *retry_after_ns (may be NULL) = when `n` tokens will be there (exactly, if nothing
   else takes any meanwhile), or SL_RES_E_INVALID when n is outside 1..burst (it could never be admitted). */
int sl_token_bucket_acquire(sl_token_bucket *tb, int32_t n, int64_t *retry_after_ns);

/* Sliding window per key (e.g. per customer): at most `limit` calls in any window_ns, for up to max_keys
   keys tracked at once (a table sized at creation; a key idle for a window frees its slot; with every slot
   busy a new key is refused, SL_RES_E_RATE). The window is split into `buckets` counters; a call is admitted
   when the calls in every bucket that overlaps the last window_ns, plus it, stay within the limit -- so no
   window of length window_ns ever holds more than `limit`, at the price of admitting up to one bucket's
   worth less than an exact log would. */
typedef struct sl_sliding_window sl_sliding_window;
typedef struct sl_sliding_window_config {
    int32_t limit;          /* default 1000 */
    int64_t window_ns;      /* default 1 s */
    int32_t buckets;        /* default 10 (1..100) */
    int32_t max_keys;       /* default 4096 */
    int32_t key_bytes_max;  /* default 64 (1..1024): keys are stored and compared whole; a longer one is refused */
    sl_res_clock clock;
} sl_sliding_window_config;
void sl_sliding_window_config_default(sl_sliding_window_config *cfg);
int sl_sliding_window_new(const sl_sliding_window_config *cfg, sl_sliding_window **out, char *err, size_t err_len);
void sl_sliding_window_free(sl_sliding_window *sw);
/* key may be NULL or empty (one global window, outside the table). 0, or SL_RES_E_RATE with *retry_after_ns
   (may be NULL) = when this key's call would be admitted; with every slot busy, when the first busy key goes
   idle. SL_RES_E_INVALID for a key longer than key_bytes_max. */
int sl_sliding_window_acquire(sl_sliding_window *sw, const char *key, size_t key_len, int64_t *retry_after_ns);

/* ======================================================================
 * Adaptive concurrency limit
 *
 * The limit moves with what the dependency shows: AIMD (+1 per window of successes below the latency
 * threshold, x backoff on a drop or a slow call) or gradient (Vegas-like: limit x (min RTT / current RTT)
 * + queue, smoothed), between a floor and a ceiling, starting with slow start (doubling until the first
 * drop). Priority partitions shed low-priority work first: priority p may use only share[p] of the limit.
 *
 *   SLOW_START --AIMD: first drop--> STEADY
 *   SLOW_START --gradient: a drop, or the median RTT of the last calls >= 2 x min RTT: the estimate drops
 *     to the knee--> PROBE (STEADY when gradient_probe_ns is 0)
 *   STEADY --gradient: gradient_probe_ns since the last PROBE--> PROBE
 *   PROBE: the limit held at max(min_limit, gradient_queue) until 32 calls started under it have measured
 *     min RTT (their median) --> STEADY
 * Gradient: once per window of calls (an RTT, 8 calls at least), gradient = min RTT x (1 + tolerance) /
 * median RTT, clamped to [0.5, 1]; the limit settles near N x (1 + tolerance) + queue for a dependency that
 * serves N calls at once. docs/internals/resilience.md has the reasons and the simulations.
 * ====================================================================== */

typedef enum { SL_LIMIT_AIMD, SL_LIMIT_GRADIENT } sl_limit_algo;
typedef enum { SL_LIMIT_SLOW_START, SL_LIMIT_STEADY, SL_LIMIT_PROBE } sl_limit_phase;
#define SL_LIMIT_PRIORITIES 4
typedef struct sl_limit_config {
    sl_limit_algo algo;          /* default SL_LIMIT_GRADIENT */
    int32_t initial, min_limit, max_limit; /* defaults 20, 1, 1000 */
    bool slow_start;             /* default true */
    int64_t aimd_slow_ns;        /* AIMD: a call slower than this counts as a drop (default 1 s) */
    double aimd_backoff;         /* AIMD: multiplier on a drop (default 0.9) */
    double gradient_smoothing;   /* gradient: weight of a new estimate (default 0.2) */
    int32_t gradient_queue;      /* gradient: the queue allowance added to the estimate (default 4) */
    double gradient_tolerance;   /* gradient: RTT rise taken as noise, not queue: the gradient is
                                    min RTT x (1 + this) / RTT, at most 1 (default 0.1) */
    int64_t gradient_probe_ns;   /* gradient: how often min RTT is measured again (default 30 s; 0 = never) */
    /* Share of the limit each priority may use, highest priority (0) first; default {1, 0.9, 0.75, 0.5}. */
    double share[SL_LIMIT_PRIORITIES];
    sl_res_clock clock;
} sl_limit_config;

typedef struct sl_limit_permit {
    int64_t start_ns;
    int32_t in_flight_at_start;  /* calls in flight when it was admitted, itself included */
} sl_limit_permit;
typedef struct sl_limit sl_limit;
typedef struct sl_limit_stats {
    int32_t limit, in_flight;
    int64_t admitted, rejected_by_priority[SL_LIMIT_PRIORITIES], drops;
    int64_t min_rtt_ns;          /* -1 before the first; gradient: measured (window, PROBE); AIMD: fastest call */
    sl_limit_phase phase;
} sl_limit_stats;
void sl_limit_config_default(sl_limit_config *cfg);
int sl_limit_new(const sl_limit_config *cfg, sl_limit **out, char *err, size_t err_len);
void sl_limit_free(sl_limit *l);
/* 0 (permit filled) or SL_RES_E_LIMIT; priority 0..SL_LIMIT_PRIORITIES-1, 0 highest (else SL_RES_E_INVALID).
   Admitted while in_flight < limit x share[priority]. */
int sl_limit_acquire(sl_limit *l, int priority, sl_limit_permit *permit);
/* dropped: the call failed in a way that says "overloaded" (a timeout, 429, 503). */
void sl_limit_release(sl_limit *l, const sl_limit_permit *permit, bool dropped);
void sl_limit_stats_get(sl_limit *l, sl_limit_stats *out);

/* ======================================================================
 * Pipelines: composition and fallback
 *
 * A pipeline runs a call through its stages in this fixed order, each stage optional:
 *
 *   rate limit -> bulkhead -> concurrency limit -> timeout -> retry -> circuit breaker -> hedge -> call
 *                                                                                   \-> fallback
 *
 * (the outermost stage refuses first and cheapest; the per-key rate limit is asked before the global one,
 * so a noisy key does not spend the global tokens; the bulkhead comes before the adaptive limit so that
 * the limit measures the dependency, not the wait in the bulkhead, and a bulkhead refusal never has to
 * give back a limit permit, which would feed the limit a meaningless round trip; the breaker sits inside
 * the retry so that every attempt is counted and an open breaker stops the retries; the timeout bounds the
 * whole call including retries and their backoff, each attempt has its own from the retry config.) The
 * fallback runs when the pipeline ends with an error -- any non-zero result, refusals included -- and its
 * result is the call's.
 *
 * Timeouts: the library does no I/O and cannot interrupt a call, so the call must observe ctx->deadline_ns
 * (and ctx->cancel); a call that returns after its deadline counts as SL_RES_E_TIMEOUT whatever it returned
 * (a FAILURE for the breaker, retryable unless the classifier says otherwise, a drop for the concurrency
 * limit). A retry whose backoff would end past the whole call's deadline is not made: SL_RES_E_TIMEOUT.
 *
 * Results: a refusal is the refusing stage's code (SL_RES_E_RATE, _FULL, _LIMIT, _OPEN -- an open breaker
 * also ends the retries -- or _BUDGET); retries exhausted return the last attempt's result (its cause, not
 * SL_RES_E_ATTEMPTS); a fatal result is returned as it is.
 *
 * A pipeline holds pointers to policies the caller created (and frees); one policy may serve several
 * pipelines. Building is not thread-safe; running is. The success path allocates nothing and takes no lock
 * of the pipeline's own (the policies' own costs are theirs).
 * ====================================================================== */

/* What a call sees: observe `cancel`, finish before `deadline_ns` (0 = none; the tighter of the call's and
   the attempt's timeouts); attempt is 0-based (the retry's), hedge is 0 for the first of a hedged attempt and
   1.. for its hedges. `cancel` is never NULL (without a hedge stage, a token nobody sets). The ctx lives for
   the duration of the call only. */
typedef struct sl_res_ctx {
    int64_t deadline_ns;
    int32_t attempt;
    int32_t hedge;
    const sl_res_cancel *cancel;
    const char *key;       /* the rate-limit key the run was given */
    size_t key_len;
} sl_res_ctx;
/* The call: returns 0 on success, else its own non-zero code (an HTTP status, an errno, ...), classified
   by the retry stage and counted as a FAILURE by the breaker unless `ignored` says otherwise. */
typedef int (*sl_res_call_fn)(void *arg, const sl_res_ctx *ctx);
/* The fallback: `error` is what the pipeline would have returned; ctx is the last attempt's (or, for a
   refusal before any attempt, one with attempt 0 and no deadline). */
typedef int (*sl_res_fallback_fn)(void *arg, int error, const sl_res_ctx *ctx);

typedef struct sl_pipeline sl_pipeline;
/* calls: runs that ended (successes: those that returned 0 without the fallback). */
typedef struct sl_pipeline_stats {
    int64_t refused_rate, refused_limit, refused_bulkhead, refused_breaker, refused_budget, timeouts, retries,
        hedges, fallbacks, calls, successes;
} sl_pipeline_stats;

int sl_pipeline_new(sl_pipeline **out);
void sl_pipeline_free(sl_pipeline *p);
void sl_pipeline_rate(sl_pipeline *p, sl_token_bucket *tb);
void sl_pipeline_rate_per_key(sl_pipeline *p, sl_sliding_window *sw);
void sl_pipeline_limit(sl_pipeline *p, sl_limit *l, int priority);
/* wait_ns as sl_bulkhead_acquire's: 0 never waits. */
void sl_pipeline_bulkhead(sl_pipeline *p, sl_bulkhead *b, int64_t wait_ns);
/* cfg is copied. Adaptive (fixed_ns 0) without cfg->latency: the pipeline's latency tracker; with neither,
   max_ns. */
void sl_pipeline_timeout(sl_pipeline *p, const sl_timeout_config *cfg);
void sl_pipeline_retry(sl_pipeline *p, sl_retry *r);
void sl_pipeline_breaker(sl_pipeline *p, sl_cb *cb);
/* Each attempt (each retry) is hedged on `pool` through sl_hedge_run: blocking, it waits for cancelled
   losers to return. A result `ignored` calls an answer wins like a success (and is returned as it is). */
void sl_pipeline_hedge(sl_pipeline *p, sl_hedge *h, sl_pool *pool);
/* Outcomes for the breaker: results for which `ignored` returns true count as IGNORED (default: none). */
void sl_pipeline_ignore(sl_pipeline *p, bool (*ignored)(void *arg, int result), void *arg);
void sl_pipeline_fallback(sl_pipeline *p, sl_res_fallback_fn fn, void *arg);
/* Every latency the call shows (each attempt; a cancelled hedge's is not) is recorded here: adaptive
   timeouts and hedges read it. */
void sl_pipeline_latency(sl_pipeline *p, sl_latency *lat);
/* The pipeline's own clock: deadlines, latencies and the retries' backoff sleeps (default: the system's). Set
   it before taking a stage clock. */
void sl_pipeline_clock(sl_pipeline *p, const sl_res_clock *clock);
/* A clock for the policies of this pipeline (rate limiters, concurrency limit, retry, breaker, latency tracker):
   inside a run it returns the time the pipeline read at the last stage boundary (so the success path reads
   the clock twice -- before admission and when the call ends -- instead of once per stage), and outside a run,
   or on another thread, the pipeline's clock. Not for a bulkhead that waits or a hedge: they sleep on their
   clock (give them the pipeline's). Valid while p lives. sl_pipeline_parse gives it to the policies it makes. */
void sl_pipeline_stage_clock(const sl_pipeline *p, sl_res_clock *out);
/* Runs fn through the stages: the call's result, an SL_RES_E* code, or the fallback's result. */
int sl_pipeline_run(sl_pipeline *p, sl_res_call_fn fn, void *arg, const char *key, size_t key_len);
void sl_pipeline_stats_get(sl_pipeline *p, sl_pipeline_stats *out);
/* The policies of a pipeline's stages (NULL where it has none), e.g. to read the breaker's state or export
   the latency tracker of a pipeline made by sl_pipeline_parse. They stay the pipeline's: valid while p lives,
   not to be freed; reading their stats or state is safe from any thread while calls run. */
typedef struct sl_pipeline_policies {
    sl_token_bucket *rate;
    sl_sliding_window *rate_per_key;
    sl_limit *limit;
    sl_bulkhead *bulkhead;
    sl_retry *retry;
    sl_cb *breaker;
    sl_hedge *hedge;
    sl_latency *latency;
} sl_pipeline_policies;
void sl_pipeline_policies_get(const sl_pipeline *p, sl_pipeline_policies *out);

/* A pipeline and its policies from a one-line description, e.g.
 *   "rate(1000/s, burst=100) | bulkhead(16, wait=10ms) | timeout(p99 x 2, min=100ms, max=10s)
 *    | retry(3, base=50ms, cap=2s, budget=10%) | breaker(count=100, failure=50%, slow=80%@1s, open=30s,
 *    probes=5)"
 * The policies it creates belong to the pipeline (freed with it). SL_RES_E_INVALID with the position (a
 * 0-based byte offset) and a sentence in err for what it cannot read: "at byte 17: retry: base: expected a
 * duration (e.g. 10ms), found 'x'". The grammar, its stages and keys are at the top of
 * src/resilience/parse.c (and docs/internals/resilience.md). */
int sl_pipeline_parse(const char *desc, const sl_res_clock *clock, sl_pipeline **out, char *err, size_t err_len);
/* The canonical description of a pipeline made by sl_pipeline_parse, every value explicit (a fixed point:
   parsing it and describing again gives the same text); "" for a pipeline built in code. Returns the length
   it needs (as snprintf); writes at most cap bytes, NUL included. */
size_t sl_pipeline_describe(const sl_pipeline *p, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
