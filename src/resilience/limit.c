/*
 * limit.c - the adaptive concurrency limit: how many calls may be in flight
 * to a dependency, learnt from what its calls show.
 *
 *                 first drop (AIMD: a dropped or slow call;
 *                 gradient: a dropped call, or an RTT >= 2 x min RTT)
 *   SLOW_START ---------------------------------------------------> STEADY
 *   (+1 per call that used the limit:                                | ^
 *    doubles per window)             gradient_probe_ns since min RTT | | 16 calls started under
 *                                    was measured (gradient only)    v | the probe limit finished
 *                                                                   PROBE
 *                                  (the limit held at max(min_limit, gradient_queue): the queue
 *                                   drains and min RTT is measured again without it)
 *
 *   state       invariant
 *   SLOW_START  no drop seen yet; min_limit <= estimate <= max_limit
 *   STEADY      the algorithm's rule moves the estimate; probe_due_ns set
 *   PROBE       the estimate is frozen; acquire compares with the probe limit
 *
 * AIMD, per release (TCP's congestion avoidance, Netflix's AIMDLimit):
 *   drop (dropped, or RTT > aimd_slow_ns):  estimate x= aimd_backoff, once per window: a drop of a call
 *                                           started before the last backoff is counted, not acted on
 *   success that used the limit:            estimate += 1 / estimate  (+1 per window of successes;
 *                                                                      +1 per success in slow start)
 * Backing off once per window is TCP's rule (one reduction per window of
 * data). Backing off per drop, as Netflix's AIMDLimit does, collapses the
 * limit to the floor: when the dependency slows down, every call in flight
 * comes back slow at once (75 of them: 0.9^75 = 0.0004).
 *
 * Gradient, once per window of samples (the rule of Envoy's adaptive
 * concurrency filter and Netflix's GradientLimit, TCP Vegas's idea):
 *   RTT      = the mean RTT of the window's calls; a window lasts as long
 *              as the previous window's mean RTT (at least one sample)
 *   gradient = clamp(min RTT / RTT, 0.5, 1)      (0.5 if a call was dropped)
 *   target   = estimate x gradient + gradient_queue
 *   estimate += gradient_smoothing x (target - estimate)
 * One update per RTT, as Vegas does: a change of the limit shows in the
 * latency one RTT later, and updating on every sample (Gradient2) acts on
 * the same stale news limit-many times: in the simulated dependency of
 * test_limit.c that swung the limit between 8 and 102 around a capacity of
 * 50. Slow start still adds 1 per call that used the limit; it ends at the
 * close of a window with a drop or a mean RTT >= 2 x min RTT.
 * With a dependency whose latency grows as in_flight / N past N calls in
 * flight (a queue in front of N workers), the fixed point is
 * estimate = N + gradient_queue: the limit settles just above the
 * dependency's real concurrency, with a small queue to keep it busy.
 * min RTT against a long-term average (Netflix's Gradient2) was the other
 * choice: at the fixed point the average is the queued RTT, so the limit
 * creeps up; min RTT has no drift but must be measured again when the
 * dependency gets slower for good (a smaller min would make the gradient
 * 0.5 for ever and pin the limit near 2 x gradient_queue). That is PROBE:
 * every gradient_probe_ns the limit drops so the queue drains, and the
 * smallest RTT of 16 calls started under it is the new min RTT (Envoy's
 * minRTT window). RTT samples are clamped to at least 1 ns.
 *
 * "Used the limit": the call started with at least half the estimate in
 * flight (in_flight_at_start x 2 >= estimate). A limit nobody reaches has
 * shown nothing, and growing it would let a later burst through unchecked
 * (Netflix's rule; TCP's congestion window validation).
 *
 * Priorities: priority p is admitted while in_flight < limit x share[p].
 *
 * Threads: acquire is lock-free (a CAS on in_flight against the published
 * integer limit, which stays within its bounds). release takes the mutex to
 * update the estimator: floating point and several fields, and only after
 * the call, off the admission path.
 */
#include <pthread.h>
#include "common/alloc.h"
#include "resilience/res_int.h"

#define PROBE_SAMPLES 16
#define LIMIT_MAX     1000000

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
    int64_t drops, min_rtt_ns, probe_due_ns, probe_min_ns;
    int32_t probe_samples;
    int64_t backoff_ns; /* AIMD: the last backoff; older calls' drops do not back off again */
    /* gradient: the window of samples being gathered */
    int64_t win_start_ns, win_len_ns, win_rtt_sum_ns;
    int32_t win_count, win_max_in_flight;
    bool win_dropped;
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
    if (cfg->gradient_probe_ns < 0)
        return sl__res_invalid(err, err_len, "gradient_probe_ns: %lld is negative", (long long)cfg->gradient_probe_ns);
    for (int p = 0; p < SL_LIMIT_PRIORITIES; p++)
        if (!(cfg->share[p] > 0 && cfg->share[p] <= 1))
            return sl__res_invalid(err, err_len, "share[%d]: %g is not in (0, 1]", p, cfg->share[p]);
    return 0;
}

/* The one setter of the phase: asserts the edge is in the diagram. */
static void set_phase(sl_limit *l, sl_limit_phase to, int64_t now)
{
    sl_limit_phase from = l->phase;
    SL_ASSERT((from == SL_LIMIT_SLOW_START && to == SL_LIMIT_STEADY) ||
              (from == SL_LIMIT_STEADY && to == SL_LIMIT_PROBE) || (from == SL_LIMIT_PROBE && to == SL_LIMIT_STEADY));
    SL_ASSERT(to != SL_LIMIT_PROBE || l->cfg.algo == SL_LIMIT_GRADIENT);
    l->phase = to;
    l->win_start_ns = now; /* a window never spans two phases */
    l->win_rtt_sum_ns = 0;
    l->win_count = l->win_max_in_flight = 0;
    l->win_dropped = false;
    if (to == SL_LIMIT_STEADY) l->probe_due_ns = now + l->cfg.gradient_probe_ns;
    if (to == SL_LIMIT_PROBE) {
        l->probe_samples = 0;
        l->probe_min_ns = INT64_MAX;
    }
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

/* PROBE: the smallest RTT of PROBE_SAMPLES calls started under the probe limit becomes min RTT. */
static void probe_sample(sl_limit *l, const sl_limit_permit *permit, int64_t rtt, bool dropped, int64_t now)
{
    if (dropped || permit->in_flight_at_start > l->probe_limit) return; /* queued behind older calls */
    l->probe_min_ns = SL_MIN(l->probe_min_ns, rtt);
    if (++l->probe_samples < PROBE_SAMPLES) return;
    l->min_rtt_ns = l->probe_min_ns;
    set_phase(l, SL_LIMIT_STEADY, now);
}

/* The end of a gradient window: the rule of the file comment, on the window's mean RTT. */
static void window_close(sl_limit *l, int64_t now)
{
    SL_ASSERT(l->win_count > 0);
    int64_t rtt = SL_MAX(1, l->win_rtt_sum_ns / l->win_count);
    bool dropped = l->win_dropped, used = l->win_max_in_flight * 2.0 >= l->estimate;
    l->win_start_ns = now;
    l->win_len_ns = rtt;
    l->win_rtt_sum_ns = 0;
    l->win_count = l->win_max_in_flight = 0;
    l->win_dropped = false;
    if (l->phase == SL_LIMIT_SLOW_START) {
        if (!dropped && rtt < 2 * l->min_rtt_ns) return;
        set_phase(l, SL_LIMIT_STEADY, now);
    }
    if (!dropped && !used) return; /* nobody reached the limit: it has shown nothing */
    double gradient = dropped ? 0.5 : SL_MAX(0.5, SL_MIN(1.0, (double)l->min_rtt_ns / (double)rtt));
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
    if (!dropped) l->min_rtt_ns = SL_MIN(l->min_rtt_ns, rtt);
    if (l->phase == SL_LIMIT_SLOW_START && !dropped && used_the_limit(l, permit)) l->estimate += 1;
    l->win_rtt_sum_ns += rtt;
    l->win_count++;
    l->win_dropped |= dropped;
    l->win_max_in_flight = SL_MAX(l->win_max_in_flight, permit->in_flight_at_start);
    if (now - l->win_start_ns >= l->win_len_ns) window_close(l, now);
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
