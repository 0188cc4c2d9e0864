/*
 * test_timeout.c - the timeout policy (src/resilience/timeout.c): fixed,
 * and adaptive = clamp(k x pXX, min_ns, max_ns) over a latency tracker on a
 * simulated clock fed known latencies (all equal, so the tracker's
 * percentile is exact: its buckets are clamped to the window's min and
 * max); the empty window; min above max; the cached percentile refreshing
 * after refresh_ns or at a slice rotation.
 */
#include <math.h>
#include "test.h"
#include "sluice/resilience.h"

#define MS INT64_C(1000000)
#define S INT64_C(1000000000)
#define T0 (1000 * S)

static int64_t sim_now;
static int64_t sim_time(void *arg)
{
    (void)arg;
    return sim_now;
}

/* A 60 s window of 6 slices (10 s each) on the simulated clock, made at T0. */
static sl_latency *tracker(int64_t refresh_ns)
{
    sim_now = T0;
    sl_latency_config cfg;
    sl_latency_config_default(&cfg);
    cfg.refresh_ns = refresh_ns;
    cfg.clock = (sl_res_clock){sim_time, NULL, NULL};
    sl_latency *lat = NULL;
    SL_CHECK_OK(sl_latency_new(&cfg, &lat, NULL, 0));
    return lat;
}

static void feed(sl_latency *lat, int n, int64_t ns)
{
    for (int i = 0; i < n; i++) sl_latency_record(lat, ns);
}

static sl_timeout_config adaptive(sl_latency *lat)
{
    sl_timeout_config cfg;
    sl_timeout_config_default(&cfg);
    cfg.latency = lat;
    return cfg;
}

/* The timeout for a fresh window holding n calls of `latency` each. */
static int64_t timeout_for(sl_timeout_config cfg, int n, int64_t latency)
{
    sl_latency *lat = tracker(MS);
    feed(lat, n, latency);
    cfg.latency = lat;
    int64_t t = sl_timeout_ns(&cfg);
    sl_latency_free(lat);
    return t;
}

SL_TEST(timeout_config_defaults)
{
    sl_timeout_config cfg;
    sl_timeout_config_default(&cfg);
    SL_CHECK_INT(cfg.fixed_ns, 0);
    SL_CHECK(cfg.latency == NULL);
    SL_CHECK(cfg.percentile == 99);
    SL_CHECK(cfg.k == 2);
    SL_CHECK_INT(cfg.min_ns, 2 * S);
    SL_CHECK_INT(cfg.max_ns, 10 * S);
}

SL_TEST(timeout_fixed_is_always_the_fixed_value)
{
    sl_latency *lat = tracker(MS);
    feed(lat, 1000, 8 * S);
    sl_timeout_config cfg = adaptive(lat);
    SL_CHECK_INT(sl_timeout_ns(&cfg), 10 * S);
    cfg.fixed_ns = 3 * S; /* wins over the window, and over the clamp */
    SL_CHECK_INT(sl_timeout_ns(&cfg), 3 * S);
    cfg.fixed_ns = 1;
    SL_CHECK_INT(sl_timeout_ns(&cfg), 1);
    cfg.fixed_ns = 30 * S;
    SL_CHECK_INT(sl_timeout_ns(&cfg), 30 * S);
    cfg.latency = NULL;
    SL_CHECK_INT(sl_timeout_ns(&cfg), 30 * S);
    sl_latency_free(lat);
}

SL_TEST(timeout_without_a_tracker_or_with_an_empty_window_is_max)
{
    sl_timeout_config cfg;
    sl_timeout_config_default(&cfg);
    SL_CHECK_INT(sl_timeout_ns(&cfg), 10 * S); /* no tracker: nothing is known */
    sl_latency *lat = tracker(MS);
    cfg.latency = lat;
    SL_CHECK_INT(sl_timeout_ns(&cfg), 10 * S); /* empty window */
    cfg.max_ns = 7 * S;
    SL_CHECK_INT(sl_timeout_ns(&cfg), 7 * S);
    cfg.max_ns = 10 * S;
    feed(lat, 100, 100 * MS);
    sim_now += MS;
    SL_CHECK_INT(sl_timeout_ns(&cfg), 2 * S);
    /* The window covers 60..70 s: the calls of epoch 0 are in it until 70 s, then it is empty again. */
    sim_now = T0 + 70 * S - 1;
    SL_CHECK_INT(sl_timeout_ns(&cfg), 2 * S);
    sim_now = T0 + 70 * S;
    SL_CHECK_INT(sl_timeout_ns(&cfg), 10 * S);
    sl_latency_free(lat);
}

SL_TEST(timeout_p99_of_1s_gives_2s)
{
    sl_timeout_config cfg;
    sl_timeout_config_default(&cfg);
    SL_CHECK_INT(timeout_for(cfg, 1000, 1 * S), 2 * S);
    SL_CHECK_INT(timeout_for(cfg, 1000, 900 * MS), 2 * S); /* 1.8 s, up to min */
    SL_CHECK_INT(timeout_for(cfg, 1000, 100 * MS), 2 * S);
    SL_CHECK_INT(timeout_for(cfg, 1, 1 * MS), 2 * S);
}

SL_TEST(timeout_p99_of_2_5s_gives_5s)
{
    sl_timeout_config cfg;
    sl_timeout_config_default(&cfg);
    SL_CHECK_INT(timeout_for(cfg, 1000, 2500 * MS), 5 * S);
}

SL_TEST(timeout_p99_from_5s_gives_10s)
{
    sl_timeout_config cfg;
    sl_timeout_config_default(&cfg);
    SL_CHECK_INT(timeout_for(cfg, 1000, 5 * S), 10 * S);
    SL_CHECK_INT(timeout_for(cfg, 1000, 5 * S - 1), 10 * S - 2);
    SL_CHECK_INT(timeout_for(cfg, 1000, 7 * S), 10 * S);
    SL_CHECK_INT(timeout_for(cfg, 1000, 300 * S), 10 * S); /* beyond the tracker's top (137 s) */
}

/* Between the bounds it is exactly k x p99: one continuous rule. */
SL_TEST(timeout_is_k_times_the_percentile_between_min_and_max)
{
    sl_timeout_config cfg;
    sl_timeout_config_default(&cfg);
    for (int64_t v = 250 * MS; v <= 6 * S; v += 250 * MS) {
        int64_t want = 2 * v < 2 * S ? 2 * S : 2 * v > 10 * S ? 10 * S : 2 * v;
        int64_t got = timeout_for(cfg, 200, v);
        if (got != want)
            sl_test_fail(__FILE__, __LINE__, "p99 %lld ns: timeout %lld, want %lld", (long long)v, (long long)got,
                         (long long)want);
    }
    SL_CHECK_INT(timeout_for(cfg, 1000, 1500 * MS), 3 * S);
    SL_CHECK_INT(timeout_for(cfg, 1000, 4 * S), 8 * S);
    cfg.k = 3;
    cfg.min_ns = 0;
    cfg.max_ns = 60 * S;
    SL_CHECK_INT(timeout_for(cfg, 1000, 7 * S), 21 * S);
    cfg.k = 1.5;
    SL_CHECK_INT(timeout_for(cfg, 1000, 2 * S), 3 * S);
}

SL_TEST(timeout_follows_the_99th_percentile_not_the_median)
{
    sl_latency *lat = tracker(MS);
    feed(lat, 980, 100 * MS);
    feed(lat, 20, 3 * S); /* the slowest 2%: p99 is one of them */
    sl_timeout_config cfg = adaptive(lat);
    SL_CHECK_INT(sl_timeout_ns(&cfg), 6 * S);
    sl_latency_free(lat);

    lat = tracker(MS);
    feed(lat, 995, 100 * MS);
    feed(lat, 5, 3 * S); /* the slowest 0.5%: p99 is 100 ms (to the tracker's 3%), x 2 is below min */
    cfg = adaptive(lat);
    SL_CHECK_INT(sl_timeout_ns(&cfg), 2 * S);
    /* The median with k = 3 and no floor: 3 x 100 ms, within the tracker's resolution (+3.1%). */
    cfg.percentile = 50;
    cfg.k = 3;
    cfg.min_ns = 0;
    int64_t t = sl_timeout_ns(&cfg);
    SL_CHECK(t >= 300 * MS && t <= 300 * MS * 1032 / 1000);
    sl_latency_free(lat);
}

SL_TEST(timeout_min_above_max_answers_max)
{
    sl_timeout_config cfg;
    sl_timeout_config_default(&cfg);
    cfg.min_ns = 10 * S;
    cfg.max_ns = 2 * S;
    SL_CHECK_INT(sl_timeout_ns(&cfg), 2 * S);
    SL_CHECK_INT(timeout_for(cfg, 100, 1 * MS), 2 * S);
    SL_CHECK_INT(timeout_for(cfg, 100, 3 * S), 2 * S);
    SL_CHECK_INT(timeout_for(cfg, 100, 100 * S), 2 * S);
    SL_CHECK_INT(timeout_for(cfg, 0, 0), 2 * S);
}

/* k x p not a positive number (k NaN, 0 or negative) gives the floor, never NaN cast to an integer. */
SL_TEST(timeout_a_k_that_is_not_positive_gives_min)
{
    sl_timeout_config cfg;
    sl_timeout_config_default(&cfg);
    const double ks[] = {NAN, 0, -1};
    for (int i = 0; i < 3; i++) {
        cfg.k = ks[i];
        SL_CHECK_INT(timeout_for(cfg, 100, 3 * S), 2 * S);
    }
}

SL_TEST(timeout_cached_percentile_refreshes_after_refresh_ns)
{
    sl_latency *lat = tracker(MS);
    sl_timeout_config cfg = adaptive(lat);
    sim_now += 5 * MS;
    feed(lat, 100, 1 * S);
    SL_CHECK_INT(sl_timeout_ns(&cfg), 2 * S); /* computed now, then cached */
    feed(lat, 1000, 4 * S);                   /* p99 is 4 s from here on */
    SL_CHECK_INT(sl_timeout_ns(&cfg), 2 * S);
    sim_now += MS - 1;
    SL_CHECK_INT(sl_timeout_ns(&cfg), 2 * S);
    SL_CHECK_INT(sl_latency_percentile(lat, 99), 4 * S); /* the uncached answer already knows */
    sim_now += 1;                                        /* refresh_ns old: recomputed */
    SL_CHECK_INT(sl_timeout_ns(&cfg), 8 * S);
    sl_latency_free(lat);

    /* refresh_ns 0: every call sees the window as it is. */
    lat = tracker(0);
    cfg = adaptive(lat);
    feed(lat, 100, 1 * S);
    SL_CHECK_INT(sl_timeout_ns(&cfg), 2 * S);
    feed(lat, 1000, 4 * S);
    SL_CHECK_INT(sl_timeout_ns(&cfg), 8 * S);
    sl_latency_free(lat);

    /* A refresh_ns of an hour: a slice rotation (every 10 s) still refreshes it. */
    lat = tracker(3600 * S);
    cfg = adaptive(lat);
    feed(lat, 100, 1 * S);
    SL_CHECK_INT(sl_timeout_ns(&cfg), 2 * S);
    feed(lat, 1000, 4 * S);
    sim_now = T0 + 10 * S - 1;
    SL_CHECK_INT(sl_timeout_ns(&cfg), 2 * S);
    sim_now = T0 + 10 * S;
    SL_CHECK_INT(sl_timeout_ns(&cfg), 8 * S);
    sl_latency_free(lat);
}
