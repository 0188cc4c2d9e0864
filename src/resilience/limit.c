/*
 * limit.c - the adaptive concurrency limit: how many calls may be in flight
 * to a dependency, learnt from what its calls show.
 *
 *              AIMD: first drop (a dropped call, or one slower than aimd_slow_ns)
 *   SLOW_START ----------------------------------------------------------------> STEADY
 *       |      gradient without probes: a window with a drop or RTT >= 2 x min      ^  |
 *       |                                                                           |  | gradient:
 *       | gradient: a window with a drop, or median RTT >= 2 x min RTT;    32 calls |  | gradient_probe_ns
 *       | the estimate drops to the knee (see slow_start_close)            measured |  | since the last
 *       +-------------------------------------------------------------------> PROBE <--+ PROBE
 *                                      (the limit held at max(min_limit, gradient_queue): the queue
 *                                       drains, then min RTT is measured without it)
 *
 *   state       invariant
 *   SLOW_START  no drop, no queue seen yet; +1 per call that used the limit (doubles per round)
 *   STEADY      the algorithm's rule moves the estimate; probe_due_ns set
 *   PROBE       gradient only; the estimate is frozen; acquire compares with the probe limit
 *   always      min_limit <= estimate <= max_limit; the published limit is floor(estimate) or the
 *               probe limit
 *
 * AIMD, per release (TCP's congestion avoidance, Netflix's AIMDLimit):
 *   drop (dropped, or RTT > aimd_slow_ns):  estimate x= aimd_backoff, once per window: a drop of a call
 *                                           started before the last backoff is counted, not acted on
 *   success that used the limit:            estimate += 1 / estimate  (+1 per window of successes;
 *                                                                      +1 per success in slow start)
 * Backing off once per window is TCP's rule (one reduction per window of
 * data). Backing off per drop, as Netflix's AIMDLimit does, collapsed the
 * limit to the floor in test_limit.c's simulated dependency: when it slows
 * down, every call in flight comes back slow at once (0.9^75 = 0.0004).
 *
 * Gradient, once per window of calls (the rule of Envoy's adaptive
 * concurrency filter, TCP Vegas's idea):
 *   RTT      = the median RTT of the window's calls
 *   gradient = min(1, min RTT x (1 + gradient_tolerance) / RTT), at least 0.5 (0.5 if a call dropped)
 *   target   = estimate x gradient + gradient_queue
 *   estimate += gradient_smoothing x (target - estimate)
 * A window lasts at least the previous window's median RTT and holds at
 * least 8 calls (or lasts 4 RTTs); in slow start it is simply the last 8
 * calls (HyStart's rounds), so the exit test sees the latest ones. A call
 * started before the current phase began is old news and left out.
 *
 * With a dependency whose latency grows as in_flight / N past N calls (a
 * queue in front of N workers), the fixed point is
 *   estimate = N x (1 + gradient_tolerance) + gradient_queue   (59 for N = 50)
 * just above the dependency's real concurrency: a small queue keeps it
 * busy, and latency rises by about the tolerance.
 *
 * Why each piece (every one was needed in test_limit.c's simulations):
 *  - one update per window, not per call (Netflix's Gradient2): a change
 *    of the limit shows in latency one RTT later, and per-call updates act
 *    on the same stale news limit-many times: the limit swung between 8
 *    and 102 around N = 50.
 *  - min RTT against a long-term average (Gradient2) creeps up: at the
 *    fixed point the average is the queued RTT. min RTT does not drift, but
 *    must be measured again when the dependency gets slower for good, or
 *    the gradient stays at 0.5 and pins the limit near 2 x gradient_queue.
 *    Hence PROBE, Envoy's minRTT window: every gradient_probe_ns, and right
 *    after slow start (whose first-window measure is provisional: the first
 *    calls back are the fastest of the first burst), the limit drops, the
 *    queue drains, and the median of 32 calls is the new min RTT.
 *  - medians, not means, and not the single fastest call: the fastest call
 *    or the lowest of many window means is biased low by noise, and a low
 *    min RTT is a permanent gradient below 1: the limit then sits at
 *    gradient_queue / (1 - gradient) (about 15 with +-30% noise). A probe's
 *    32 calls are the first back, so a mean misses the tail a window holds;
 *    the median does not care.
 *  - the tolerance: what bias is left (a few percent) would still pin the
 *    limit at queue / bias; min RTT x 1.1 absorbs it (Envoy buffers min RTT
 *    by 25%, Gradient2 has a tolerance of 1.5).
 *  - slow start ends at the knee: the window's calls started with k in
 *    flight on average and took RTT, so the dependency served
 *    k x min RTT / RTT at once; the estimate drops to that plus the queue
 *    allowance instead of the doubled value it reached meanwhile.
 * RTT samples are clamped to at least 1 ns.
 *
 * "Used the limit": the call started with at least half the estimate in
 * flight (in_flight_at_start x 2 >= estimate). A limit nobody reaches has
 * shown nothing, and growing it would let a later burst through unchecked
 * (Netflix's rule; TCP's congestion window validation).
 *
 * Priorities: priority p is admitted while in_flight < limit x share[p].
 *
 * Threads: acquire is lock-free (a CAS on in_flight against the published
 * integer limit). release takes the mutex to update the estimator: floating
 * point and several fields, after the call, off the admission path.
 * Memory: the struct, with a 64-RTT reservoir for the window's median.
 */
#include <pthread.h>
#include "common/alloc.h"
#include "resilience/res_int.h"

#define PROBE_SAMPLES  32
#define WINDOW_SAMPLES 8  /* a window needs this many calls (or 4 RTTs), as HyStart's rounds do */
#define WINDOW_KEEP    64 /* RTTs kept per window for its median: a uniform sample (reservoir) beyond that */
#define LIMIT_MAX      1000000

struct sl_limit {
    _Atomic int32_t in_flight;
    _Atomic int32_t limit; /* what acquire compares with: floor(estimate), or the probe's limit */
    _Atomic int64_t admitted;
    _Atomic int64_t rejected[SL_LIMIT_PRIORITIES];
    sl_limit_config cfg;
    sl_res_clock clock;
    int32_t probe_limit;
    pthread_mutex_t mu; /* guards what follows */
    double estimate;
    sl_limit_phase phase;
    int64_t drops, min_rtt_ns, probe_due_ns;
    int64_t backoff_ns;     /* AIMD: the last backoff; older calls' drops do not back off again */
    int64_t phase_start_ns; /* gradient: calls started before it are old news */
    /* gradient: the window of calls being gathered (PROBE's too) */
    int64_t win_start_ns, win_len_ns, win_in_flight_sum;
    int32_t win_count, win_max_in_flight;
    bool win_dropped;
    int64_t win_rtt_ns[WINDOW_KEEP];
    _Atomic uint64_t rng; /* the reservoir's choices */
};

void sl_limit_config_default(sl_limit_config *cfg)
{
    *cfg = (sl_limit_config){.algo = SL_LIMIT_GRADIENT,
                             .initial = 20,
                             .min_limit = 1,
                             .max_limit = 1000,
                             .slow_start = true,
                             .aimd_slow_ns = 1000000000,
                             .aimd_backoff = 0.9,
                             .gradient_smoothing = 0.2,
                             .gradient_queue = 4,
                             .gradient_tolerance = 0.1,
                             .gradient_probe_ns = 30 * (int64_t)1000000000,
                             .share = {1, 0.9, 0.75, 0.5}};
}

static int check_config(const sl_limit_config *cfg, char *err, size_t err_len)
{
    if (cfg->algo != SL_LIMIT_AIMD && cfg->algo != SL_LIMIT_GRADIENT)
        return sl__res_invalid(err, err_len, "algo: %d is neither SL_LIMIT_AIMD nor SL_LIMIT_GRADIENT", (int)cfg->algo);
    if (cfg->min_limit < 1 || cfg->max_limit < cfg->min_limit || cfg->max_limit > LIMIT_MAX)
        return sl__res_invalid(err, err_len, "min_limit, max_limit: %d, %d are not 1 <= min <= max <= %d",
                               cfg->min_limit, cfg->max_limit, LIMIT_MAX);
    if (cfg->initial < cfg->min_limit || cfg->initial > cfg->max_limit)
        return sl__res_invalid(err, err_len, "initial: %d is not in min_limit..max_limit (%d..%d)", cfg->initial,
                               cfg->min_limit, cfg->max_limit);
    if (cfg->aimd_slow_ns <= 0)
        return sl__res_invalid(err, err_len, "aimd_slow_ns: %lld is not positive", (long long)cfg->aimd_slow_ns);
    if (!(cfg->aimd_backoff > 0 && cfg->aimd_backoff < 1))
        return sl__res_invalid(err, err_len, "aimd_backoff: %g is not in (0, 1)", cfg->aimd_backoff);
    if (!(cfg->gradient_smoothing > 0 && cfg->gradient_smoothing <= 1))
        return sl__res_invalid(err, err_len, "gradient_smoothing: %g is not in (0, 1]", cfg->gradient_smoothing);
    if (cfg->gradient_queue < 0 || cfg->gradient_queue > LIMIT_MAX)
        return sl__res_invalid(err, err_len, "gradient_queue: %d is not in 0..%d", cfg->gradient_queue, LIMIT_MAX);
    if (!(cfg->gradient_tolerance >= 0 && cfg->gradient_tolerance <= 10))
        return sl__res_invalid(err, err_len, "gradient_tolerance: %g is not in [0, 10]", cfg->gradient_tolerance);
    if (cfg->gradient_probe_ns < 0)
        return sl__res_invalid(err, err_len, "gradient_probe_ns: %lld is negative", (long long)cfg->gradient_probe_ns);
    for (int p = 0; p < SL_LIMIT_PRIORITIES; p++)
        if (!(cfg->share[p] > 0 && cfg->share[p] <= 1))
            return sl__res_invalid(err, err_len, "share[%d]: %g is not in (0, 1]", p, cfg->share[p]);
    return 0;
}

static void window_reset(sl_limit *l, int64_t now)
{
    l->win_start_ns = now;
    l->win_in_flight_sum = 0;
    l->win_count = l->win_max_in_flight = 0;
    l->win_dropped = false;
}

/* Keeps rtt in the window's sample: the first WINDOW_KEEP, then each with probability KEEP / count. */
static void window_keep(sl_limit *l, int64_t rtt)
{
    int32_t i = l->win_count;
    if (i >= WINDOW_KEEP) i = (int32_t)(sl__res_rand(&l->rng) % (uint64_t)(l->win_count + 1));
    if (i < WINDOW_KEEP) l->win_rtt_ns[i] = rtt;
    l->win_count++;
}

/* The median RTT of the window's sample (sorts it: the window is reset after). */
static int64_t window_median(sl_limit *l)
{
    int32_t n = SL_MIN(l->win_count, WINDOW_KEEP);
    SL_ASSERT(n > 0);
    for (int32_t i = 1; i < n; i++) {
        int64_t v = l->win_rtt_ns[i];
        int32_t j = i;
        for (; j > 0 && l->win_rtt_ns[j - 1] > v; j--) l->win_rtt_ns[j] = l->win_rtt_ns[j - 1];
        l->win_rtt_ns[j] = v;
    }
    return SL_MAX(1, l->win_rtt_ns[n / 2]);
}

/* The one setter of the phase: asserts the edge is in the diagram. */
static void set_phase(sl_limit *l, sl_limit_phase to, int64_t now)
{
    sl_limit_phase from = l->phase;
    SL_ASSERT((from == SL_LIMIT_SLOW_START && (to == SL_LIMIT_STEADY || to == SL_LIMIT_PROBE)) ||
              (from == SL_LIMIT_STEADY && to == SL_LIMIT_PROBE) || (from == SL_LIMIT_PROBE && to == SL_LIMIT_STEADY));
    SL_ASSERT(to != SL_LIMIT_PROBE || (l->cfg.algo == SL_LIMIT_GRADIENT && l->cfg.gradient_probe_ns > 0));
    l->phase = to;
    l->phase_start_ns = now;
    window_reset(l, now); /* a window never spans two phases */
    if (to == SL_LIMIT_STEADY) l->probe_due_ns = now + l->cfg.gradient_probe_ns;
}

/* With the mutex held: clamps the estimate and publishes the limit acquire compares with. */
static void publish(sl_limit *l)
{
    l->estimate = SL_MAX((double)l->cfg.min_limit, SL_MIN((double)l->cfg.max_limit, l->estimate));
    int32_t limit = l->phase == SL_LIMIT_PROBE ? l->probe_limit : (int32_t)l->estimate;
    SL_ASSERT(limit >= l->cfg.min_limit && limit <= l->cfg.max_limit);
    atomic_store_explicit(&l->limit, limit, memory_order_relaxed);
}

int sl_limit_new(const sl_limit_config *cfg, sl_limit **out, char *err, size_t err_len)
{
    *out = NULL;
    int rc = check_config(cfg, err, err_len);
    if (rc) return rc;
    sl_limit *l = SL_NEW(sl_limit);
    l->cfg = *cfg;
    sl__res_clock_resolve(&cfg->clock, &l->clock);
    atomic_init(&l->in_flight, 0);
    atomic_init(&l->admitted, 0);
    for (int p = 0; p < SL_LIMIT_PRIORITIES; p++) atomic_init(&l->rejected[p], 0);
    l->probe_limit = SL_MIN(cfg->max_limit, SL_MAX(cfg->min_limit, SL_MAX(1, cfg->gradient_queue)));
    pthread_mutex_init(&l->mu, NULL);
    l->estimate = cfg->initial;
    l->min_rtt_ns = INT64_MAX;
    l->phase = SL_LIMIT_SLOW_START;
    l->backoff_ns = INT64_MIN;
    l->win_start_ns = sl__res_now(&l->clock);
    atomic_init(&l->rng, (uint64_t)l->win_start_ns ^ 0x5851f42d4c957f2dull);
    if (!cfg->slow_start) set_phase(l, SL_LIMIT_STEADY, l->win_start_ns);
    atomic_init(&l->limit, 0);
    publish(l);
    *out = l;
    return 0;
}

void sl_limit_free(sl_limit *l)
{
    if (!l) return;
    pthread_mutex_destroy(&l->mu);
    sl_free(l);
}

int sl_limit_acquire(sl_limit *l, int priority, sl_limit_permit *permit)
{
    if (SL_UNLIKELY(priority < 0 || priority >= SL_LIMIT_PRIORITIES)) return SL_RES_E_INVALID;
    double share = l->cfg.share[priority];
    int32_t cur = atomic_load_explicit(&l->in_flight, memory_order_relaxed);
    do {
        int32_t limit = atomic_load_explicit(&l->limit, memory_order_relaxed);
        if ((double)cur >= limit * share) {
            atomic_fetch_add_explicit(&l->rejected[priority], 1, memory_order_relaxed);
            return SL_RES_E_LIMIT;
        }
    } while (!atomic_compare_exchange_weak_explicit(&l->in_flight, &cur, cur + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    atomic_fetch_add_explicit(&l->admitted, 1, memory_order_relaxed);
    permit->start_ns = sl__res_now(&l->clock);
    permit->in_flight_at_start = cur + 1;
    return 0;
}

static bool used_the_limit(const sl_limit *l, const sl_limit_permit *permit)
{
    return permit->in_flight_at_start * 2.0 >= l->estimate;
}

static void aimd_update(sl_limit *l, const sl_limit_permit *permit, int64_t rtt, bool dropped, int64_t now)
{
    if (dropped || rtt > l->cfg.aimd_slow_ns) {
        l->drops++;
        if (permit->start_ns < l->backoff_ns) return; /* admitted under the old limit: old news */
        l->estimate *= l->cfg.aimd_backoff;
        l->backoff_ns = now;
        if (l->phase == SL_LIMIT_SLOW_START) set_phase(l, SL_LIMIT_STEADY, now);
    } else if (used_the_limit(l, permit)) {
        l->estimate += l->phase == SL_LIMIT_SLOW_START ? 1.0 : 1.0 / l->estimate;
    }
}

/* PROBE: the median RTT of PROBE_SAMPLES calls started under the probe limit becomes min RTT. */
static void probe_sample(sl_limit *l, const sl_limit_permit *permit, int64_t rtt, bool dropped, int64_t now)
{
    if (dropped || permit->in_flight_at_start > l->probe_limit) return; /* queued behind older calls */
    window_keep(l, rtt);
    if (l->win_count < PROBE_SAMPLES) return;
    l->min_rtt_ns = window_median(l);
    set_phase(l, SL_LIMIT_STEADY, now);
}

/* SLOW_START at a window's close: it ends when the window's mean RTT reached 2 x min RTT, or a call was
   dropped. The window's calls started with k in flight on average and took RTT: the dependency served
   k x min RTT / RTT at once, so the estimate drops to that plus the queue allowance (the gradient's fixed
   point, taken at the knee); a drop halves it. Slow start doubles per RTT, so the estimate has overshot
   the knee by the time the news of the queue comes back. */
static void slow_start_close(sl_limit *l, int64_t rtt, double mean_in_flight, bool dropped, int64_t now)
{
    if (!dropped && rtt < 2 * l->min_rtt_ns) return;
    double knee =
        dropped ? l->estimate / 2 : mean_in_flight * ((double)l->min_rtt_ns / (double)rtt) + l->cfg.gradient_queue;
    l->estimate = SL_MIN(l->estimate, knee);
    set_phase(l, l->cfg.gradient_probe_ns > 0 ? SL_LIMIT_PROBE : SL_LIMIT_STEADY, now);
}

/* The end of a window: the first one gives a provisional min RTT (the first calls back are the fastest of
   the first burst: it runs low; PROBE measures it after slow start); then slow start's exit test, or the
   gradient rule of the file comment. */
static void window_close(sl_limit *l, int64_t now)
{
    SL_ASSERT(l->win_count > 0 && l->phase != SL_LIMIT_PROBE);
    int64_t rtt = window_median(l);
    double mean_in_flight = (double)l->win_in_flight_sum / l->win_count;
    bool dropped = l->win_dropped, used = l->win_max_in_flight * 2.0 >= l->estimate;
    window_reset(l, now);
    l->win_len_ns = rtt;
    if (l->min_rtt_ns == INT64_MAX && !dropped) l->min_rtt_ns = rtt; /* under the initial limit */
    if (l->phase == SL_LIMIT_SLOW_START) {
        slow_start_close(l, rtt, mean_in_flight, dropped, now);
        return;
    }
    if (!dropped && !used) return; /* nobody reached the limit: it has shown nothing */
    double tolerated = (double)l->min_rtt_ns * (1 + l->cfg.gradient_tolerance);
    double gradient = dropped ? 0.5 : SL_MAX(0.5, SL_MIN(1.0, tolerated / (double)rtt));
    double target = l->estimate * gradient + l->cfg.gradient_queue;
    l->estimate += l->cfg.gradient_smoothing * (target - l->estimate);
    if (l->cfg.gradient_probe_ns > 0 && now >= l->probe_due_ns) set_phase(l, SL_LIMIT_PROBE, now);
}

static void gradient_update(sl_limit *l, const sl_limit_permit *permit, int64_t rtt, bool dropped, int64_t now)
{
    if (dropped) l->drops++;
    if (l->phase == SL_LIMIT_PROBE) {
        probe_sample(l, permit, rtt, dropped, now);
        return;
    }
    if (permit->start_ns < l->phase_start_ns) return; /* admitted under another phase's limit: old news */
    if (l->phase == SL_LIMIT_SLOW_START && !dropped && used_the_limit(l, permit)) l->estimate += 1;
    l->win_in_flight_sum += permit->in_flight_at_start;
    window_keep(l, rtt);
    l->win_dropped |= dropped;
    l->win_max_in_flight = SL_MAX(l->win_max_in_flight, permit->in_flight_at_start);
    int64_t age = now - l->win_start_ns;
    bool full = l->phase == SL_LIMIT_SLOW_START
                    ? l->win_count >= WINDOW_SAMPLES /* the latest calls */
                    : age >= l->win_len_ns && (l->win_count >= WINDOW_SAMPLES || age >= 4 * l->win_len_ns);
    if (full) window_close(l, now);
}

void sl_limit_release(sl_limit *l, const sl_limit_permit *permit, bool dropped)
{
    int64_t now = sl__res_now(&l->clock);
    int64_t rtt = SL_MAX(1, now - permit->start_ns);
    int32_t was = atomic_fetch_sub_explicit(&l->in_flight, 1, memory_order_relaxed);
    SL_ASSERT(was >= 1); /* a release without its acquire */
    pthread_mutex_lock(&l->mu);
    if (l->cfg.algo == SL_LIMIT_AIMD) {
        if (!dropped) l->min_rtt_ns = SL_MIN(l->min_rtt_ns, rtt); /* for the stats */
        aimd_update(l, permit, rtt, dropped, now);
    } else {
        gradient_update(l, permit, rtt, dropped, now);
    }
    publish(l);
    pthread_mutex_unlock(&l->mu);
}

void sl_limit_stats_get(sl_limit *l, sl_limit_stats *out)
{
    pthread_mutex_lock(&l->mu);
    out->limit = atomic_load(&l->limit);
    out->drops = l->drops;
    out->min_rtt_ns = l->min_rtt_ns == INT64_MAX ? -1 : l->min_rtt_ns;
    out->phase = l->phase;
    pthread_mutex_unlock(&l->mu);
    out->in_flight = atomic_load(&l->in_flight);
    out->admitted = atomic_load(&l->admitted);
    for (int p = 0; p < SL_LIMIT_PRIORITIES; p++) out->rejected_by_priority[p] = atomic_load(&l->rejected[p]);
}
