/*
 * timeout.c - the timeout to give a call: fixed, or adaptive.
 *
 * Adaptive: clamp(k x pXX, min_ns, max_ns) over the dependency's rolling
 * latency window, and max_ns while the window is empty (nothing is known,
 * so the most patient answer). With the defaults (p99, k = 2, 2 s .. 10 s)
 * this is the design notes' "2 s normally, 5 s when slow, 10 s when very
 * slow" as one continuous rule: p99 up to 1 s gives 2 s, p99 = 2.5 s gives
 * 5 s, p99 from 5 s on gives 10 s.
 *
 * The hot path: sl_timeout_ns runs once per call of a pipeline, so it reads
 * the percentile from sl_latency_percentile_cached (O(1): a clock read and a
 * few atomic loads), recomputed by the tracker at most every refresh_ns
 * (1 ms by default) or at a slice rotation. A config with min_ns > max_ns
 * answers max_ns whatever the window. Nothing here has state: the
 * config is the caller's and may be shared by any number of threads.
 */
#include "resilience/res_int.h"

void sl_timeout_config_default(sl_timeout_config *cfg)
{
    *cfg = (sl_timeout_config){
        .fixed_ns = 0,
        .latency = NULL,
        .percentile = 99,
        .k = 2,
        .min_ns = INT64_C(2000000000),
        .max_ns = INT64_C(10000000000),
    };
}

int64_t sl_timeout_ns(const sl_timeout_config *cfg)
{
    if (cfg->fixed_ns > 0) return cfg->fixed_ns;
    if (!cfg->latency) return cfg->max_ns;
    int64_t p = sl_latency_percentile_cached(cfg->latency, cfg->percentile);
    if (p < 0) return cfg->max_ns;
    double t = cfg->k * (double)p;
    int64_t lo = SL_MIN(cfg->min_ns, cfg->max_ns);
    if (t >= (double)cfg->max_ns) return cfg->max_ns;
    if (!(t > (double)lo)) return lo; /* also a NaN k */
    return (int64_t)t;
}
