/*
 * test_pipeline.c - pipelines: the success path through every stage, each
 * stage's refusal reaching the caller with its code and the fallback, the
 * stage order (a rate-limited call never reaches the bulkhead, an open
 * breaker stops the retries), the timeout bounding retries and late calls,
 * attempt timeouts, the ctx a call sees, stats, hedging inside a pipeline,
 * threads sharing one pipeline, and no heap allocation per call.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include "test.h"
#include "resilience/res_int.h"

#define MS 1000000LL
#define S  1000000000LL

static _Atomic int64_t sim_now;
static int64_t sim_time(void *arg)
{
    (void)arg;
    return atomic_load(&sim_now);
}
static void sim_sleep(void *arg, int64_t ns)
{
    (void)arg;
    atomic_fetch_add(&sim_now, ns);
}
static const sl_res_clock sim_clock = {sim_time, sim_sleep, NULL};

/* A scripted dependency: call i takes took[i] of simulated time and returns res[i] (the last entry repeats);
   every ctx it was given is kept. */
#define SCRIPT_MAX 16
typedef struct script {
    int res[SCRIPT_MAX];
    int64_t took[SCRIPT_MAX];
    int n; /* entries in res/took */
    int calls;
    sl_res_ctx seen[SCRIPT_MAX];
    int64_t started[SCRIPT_MAX];
} script;

static int scripted(void *arg, const sl_res_ctx *ctx)
{
    script *sc = arg;
    int i = sc->calls < sc->n ? sc->calls : sc->n - 1;
    if (sc->calls < SCRIPT_MAX) {
        sc->seen[sc->calls] = *ctx;
        sc->started[sc->calls] = atomic_load(&sim_now);
    }
    sc->calls++;
    atomic_fetch_add(&sim_now, sc->took[i]);
    return sc->res[i];
}

typedef struct fallback_log {
    int calls, error, answer;
} fallback_log;

static int fallback(void *arg, int error, const sl_res_ctx *ctx)
{
    fallback_log *log = arg;
    SL_CHECK(ctx != NULL && ctx->cancel != NULL);
    log->calls++;
    log->error = error;
    return log->answer;
}

/* The policies of the 5-stage pipeline, in simulated time. */
typedef struct five {
    sl_pipeline *p;
    sl_token_bucket *tb;
    sl_bulkhead *bh;
    sl_retry *retry;
    sl_cb *cb;
    fallback_log fb;
} five;

static void five_init(five *f, int32_t attempts, sl_cb_mode mode, int32_t cb_n)
{
    memset(f, 0, sizeof *f);
    atomic_store(&sim_now, 1000 * S);
    SL_CHECK_OK(sl_pipeline_new(&f->p));
    sl_pipeline_clock(f->p, &sim_clock);
    SL_CHECK_OK(sl_token_bucket_new(1000, 100, &sim_clock, &f->tb, NULL, 0));
    SL_CHECK_OK(sl_bulkhead_new(4, &sim_clock, &f->bh, NULL, 0));
    sl_retry_config rc;
    sl_retry_config_default(&rc);
    rc.max_attempts = attempts;
    rc.base_ns = 10 * MS;
    rc.full_jitter = false;
    rc.budget_ratio = 0;
    rc.clock = sim_clock;
    SL_CHECK_OK(sl_retry_new(&rc, &f->retry, NULL, 0));
    sl_cb_config cc;
    sl_cb_config_default(&cc);
    cc.mode = mode;
    cc.window = cb_n;
    cc.min_calls = cb_n;
    cc.consecutive_failures = cb_n;
    cc.open_ns = 10 * S;
    cc.clock = sim_clock;
    SL_CHECK_OK(sl_cb_new(&cc, &f->cb, NULL, 0));
    sl_timeout_config tc;
    sl_timeout_config_default(&tc);
    tc.fixed_ns = 2 * S;
    sl_pipeline_rate(f->p, f->tb);
    sl_pipeline_bulkhead(f->p, f->bh, 0);
    sl_pipeline_timeout(f->p, &tc);
    sl_pipeline_retry(f->p, f->retry);
    sl_pipeline_breaker(f->p, f->cb);
    f->fb.answer = 777;
    sl_pipeline_fallback(f->p, fallback, &f->fb);
}

static void five_free(five *f)
{
    sl_pipeline_free(f->p);
    sl_cb_free(f->cb);
    sl_retry_free(f->retry);
    sl_bulkhead_free(f->bh);
    sl_token_bucket_free(f->tb);
}

SL_TEST(success_passes_every_stage_once)
{
    five f;
    five_init(&f, 3, SL_CB_CONSECUTIVE, 3);
    script sc = {.res = {0}, .took = {5 * MS}, .n = 1};
    SL_CHECK_OK(sl_pipeline_run(f.p, scripted, &sc, "k", 1));
    SL_CHECK_INT(sc.calls, 1);
    SL_CHECK_INT(f.fb.calls, 0);
    sl_pipeline_stats st;
    sl_pipeline_stats_get(f.p, &st);
    SL_CHECK_INT(st.calls, 1);
    SL_CHECK_INT(st.successes, 1);
    SL_CHECK_INT(st.refused_rate + st.refused_bulkhead + st.refused_breaker + st.timeouts + st.retries + st.fallbacks, 0);
    sl_bulkhead_stats bs;
    sl_bulkhead_stats_get(f.bh, &bs);
    SL_CHECK_INT(bs.admitted, 1);
    SL_CHECK_INT(bs.active, 0);
    sl_retry_stats rs;
    sl_retry_stats_get(f.retry, &rs);
    SL_CHECK_INT(rs.calls, 1);
    SL_CHECK_INT(rs.succeeded_first, 1);
    sl_cb_stats cs;
    sl_cb_stats_get(f.cb, &cs);
    SL_CHECK_INT(cs.successes, 1);
    SL_CHECK_INT(cs.in_flight, 0);
    five_free(&f);
}

/* The ctx: the whole call's deadline, tightened by each attempt's growing timeout; attempt numbers; the
   key; a token. */
SL_TEST(ctx_carries_deadlines_attempts_key_and_a_token)
{
    five f;
    five_init(&f, 4, SL_CB_CONSECUTIVE, 10);
    sl_pipeline_retry(f.p, NULL);
    sl_retry_free(f.retry);
    sl_retry_config rc;
    sl_retry_config_default(&rc);
    rc.max_attempts = 4;
    rc.base_ns = 10 * MS;
    rc.full_jitter = false;
    rc.budget_ratio = 0;
    rc.attempt_timeout_ns = 300 * MS;
    rc.attempt_timeout_growth = 2;
    rc.clock = sim_clock;
    SL_CHECK_OK(sl_retry_new(&rc, &f.retry, NULL, 0));
    sl_pipeline_retry(f.p, f.retry);
    script sc = {.res = {503, 503, 503, 0}, .took = {100 * MS, 100 * MS, 100 * MS, 100 * MS}, .n = 4};
    int64_t t0 = atomic_load(&sim_now);
    SL_CHECK_OK(sl_pipeline_run(f.p, scripted, &sc, "tenant-7", 8));
    SL_CHECK_INT(sc.calls, 4);
    const int64_t own[] = {300 * MS, 600 * MS, 1200 * MS, 2400 * MS};
    for (int i = 0; i < 4; i++) {
        SL_CHECK_INT(sc.seen[i].attempt, i);
        SL_CHECK_INT(sc.seen[i].hedge, 0);
        SL_CHECK(sc.seen[i].key_len == 8 && memcmp(sc.seen[i].key, "tenant-7", 8) == 0);
        SL_CHECK(sc.seen[i].cancel != NULL && !sl_res_cancelled(sc.seen[i].cancel));
        int64_t want = sc.started[i] + own[i];
        if (want > t0 + 2 * S) want = t0 + 2 * S; /* the whole call's 2 s */
        SL_CHECK_INT(sc.seen[i].deadline_ns, want);
    }
    SL_CHECK_INT(sc.started[1], t0 + 100 * MS + 10 * MS);
    SL_CHECK_INT(sc.started[2], sc.started[1] + 100 * MS + 20 * MS);
    sl_pipeline_stats st;
    sl_pipeline_stats_get(f.p, &st);
    SL_CHECK_INT(st.retries, 3);
    SL_CHECK_INT(st.successes, 1);
    five_free(&f);
}

/* Rate: the bucket holds 100; the 101st call at the same instant is refused and never reaches the bulkhead. */
SL_TEST(rate_refusal_reaches_the_caller_and_the_fallback_and_not_the_bulkhead)
{
    five f;
    five_init(&f, 3, SL_CB_CONSECUTIVE, 3);
    script sc = {.res = {0}, .took = {0}, .n = 1};
    for (int i = 0; i < 100; i++) SL_CHECK_OK(sl_pipeline_run(f.p, scripted, &sc, NULL, 0));
    sl_pipeline_fallback(f.p, NULL, NULL);
    SL_CHECK_INT(sl_pipeline_run(f.p, scripted, &sc, NULL, 0), SL_RES_E_RATE);
    sl_pipeline_fallback(f.p, fallback, &f.fb);
    SL_CHECK_INT(sl_pipeline_run(f.p, scripted, &sc, NULL, 0), 777);
    SL_CHECK_INT(f.fb.calls, 1);
    SL_CHECK_INT(f.fb.error, SL_RES_E_RATE);
    SL_CHECK_INT(sc.calls, 100);
    sl_bulkhead_stats bs;
    sl_bulkhead_stats_get(f.bh, &bs);
    SL_CHECK_INT(bs.admitted + bs.rejected, 100);
    sl_pipeline_stats st;
    sl_pipeline_stats_get(f.p, &st);
    SL_CHECK_INT(st.refused_rate, 2);
    SL_CHECK_INT(st.fallbacks, 1);
    SL_CHECK_INT(st.calls, 102);
    SL_CHECK_INT(st.successes, 100);
    five_free(&f);
}

SL_TEST(per_key_rate_refuses_one_key_only)
{
    atomic_store(&sim_now, 5 * S);
    sl_sliding_window_config wc;
    sl_sliding_window_config_default(&wc);
    wc.limit = 2;
    wc.window_ns = S;
    wc.clock = sim_clock;
    sl_sliding_window *sw;
    SL_CHECK_OK(sl_sliding_window_new(&wc, &sw, NULL, 0));
    sl_pipeline *p;
    SL_CHECK_OK(sl_pipeline_new(&p));
    sl_pipeline_clock(p, &sim_clock);
    sl_pipeline_rate_per_key(p, sw);
    script sc = {.res = {0}, .took = {0}, .n = 1};
    SL_CHECK_OK(sl_pipeline_run(p, scripted, &sc, "a", 1));
    SL_CHECK_OK(sl_pipeline_run(p, scripted, &sc, "a", 1));
    SL_CHECK_INT(sl_pipeline_run(p, scripted, &sc, "a", 1), SL_RES_E_RATE);
    SL_CHECK_OK(sl_pipeline_run(p, scripted, &sc, "b", 1));
    atomic_fetch_add(&sim_now, S + S / 10); /* past the window and the bucket the first calls were in */
    SL_CHECK_OK(sl_pipeline_run(p, scripted, &sc, "a", 1));
    sl_pipeline_stats st;
    sl_pipeline_stats_get(p, &st);
    SL_CHECK_INT(st.refused_rate, 1);
    sl_pipeline_free(p);
    sl_sliding_window_free(sw);
}

SL_TEST(bulkhead_refusal_reaches_the_caller_and_the_fallback)
{
    five f;
    five_init(&f, 3, SL_CB_CONSECUTIVE, 3);
    for (int i = 0; i < 4; i++) SL_CHECK_OK(sl_bulkhead_acquire(f.bh, 0)); /* someone else holds every slot */
    script sc = {.res = {0}, .took = {0}, .n = 1};
    SL_CHECK_INT(sl_pipeline_run(f.p, scripted, &sc, NULL, 0), 777);
    SL_CHECK_INT(f.fb.error, SL_RES_E_FULL);
    SL_CHECK_INT(sc.calls, 0);
    sl_pipeline_stats st;
    sl_pipeline_stats_get(f.p, &st);
    SL_CHECK_INT(st.refused_bulkhead, 1);
    sl_retry_stats rs;
    sl_retry_stats_get(f.retry, &rs);
    SL_CHECK_INT(rs.calls, 0); /* never reached the retry */
    for (int i = 0; i < 4; i++) sl_bulkhead_release(f.bh);
    SL_CHECK_OK(sl_pipeline_run(f.p, scripted, &sc, NULL, 0));
    five_free(&f);
}

/* The concurrency limit sits after the bulkhead: its refusal hands the bulkhead slot back. */
SL_TEST(limit_refusal_reaches_the_caller_and_frees_the_bulkhead_slot)
{
    five f;
    five_init(&f, 3, SL_CB_CONSECUTIVE, 3);
    sl_limit_config lc;
    sl_limit_config_default(&lc);
    lc.algo = SL_LIMIT_AIMD;
    lc.initial = lc.min_limit = lc.max_limit = 1;
    lc.slow_start = false;
    lc.clock = sim_clock;
    sl_limit *l;
    SL_CHECK_OK(sl_limit_new(&lc, &l, NULL, 0));
    sl_pipeline_limit(f.p, l, 0);
    sl_limit_permit held;
    SL_CHECK_OK(sl_limit_acquire(l, 0, &held));
    script sc = {.res = {0}, .took = {0}, .n = 1};
    SL_CHECK_INT(sl_pipeline_run(f.p, scripted, &sc, NULL, 0), 777);
    SL_CHECK_INT(f.fb.error, SL_RES_E_LIMIT);
    sl_bulkhead_stats bs;
    sl_bulkhead_stats_get(f.bh, &bs);
    SL_CHECK_INT(bs.active, 0);
    sl_pipeline_stats st;
    sl_pipeline_stats_get(f.p, &st);
    SL_CHECK_INT(st.refused_limit, 1);
    sl_limit_release(l, &held, false);
    SL_CHECK_OK(sl_pipeline_run(f.p, scripted, &sc, NULL, 0));
    sl_limit_stats ls;
    sl_limit_stats_get(l, &ls);
    SL_CHECK_INT(ls.in_flight, 0);
    sl_pipeline_free(f.p); /* before the limit it points to */
    f.p = NULL;
    sl_limit_free(l);
    five_free(&f);
}

/* The breaker is inside the retry: two failures open it (consecutive=2), the third attempt is refused and
   the retries stop there with SL_RES_E_OPEN. */
SL_TEST(open_breaker_stops_the_retries)
{
    five f;
    five_init(&f, 5, SL_CB_CONSECUTIVE, 2);
    script sc = {.res = {503}, .took = {1 * MS}, .n = 1};
    SL_CHECK_INT(sl_pipeline_run(f.p, scripted, &sc, NULL, 0), 777);
    SL_CHECK_INT(f.fb.error, SL_RES_E_OPEN);
    SL_CHECK_INT(sc.calls, 2);
    SL_CHECK_INT(sl_cb_state_now(f.cb), SL_CB_OPEN);
    sl_pipeline_stats st;
    sl_pipeline_stats_get(f.p, &st);
    SL_CHECK_INT(st.retries, 2);
    SL_CHECK_INT(st.refused_breaker, 1);
    /* the next call is refused at once: not one attempt */
    SL_CHECK_INT(sl_pipeline_run(f.p, scripted, &sc, NULL, 0), 777);
    SL_CHECK_INT(sc.calls, 2);
    sl_pipeline_stats_get(f.p, &st);
    SL_CHECK_INT(st.refused_breaker, 2);
    SL_CHECK_INT(st.retries, 2);
    five_free(&f);
}

/* Timeout 2 s; each attempt takes 600 ms and fails; backoff 10, 20, 40 ms. Attempts at 0, 610, 1230 ms; the
   backoff after the third would end at 1830 + 40 < 2 s, so a fourth starts at 1870 and ends at 2470:
   late, SL_RES_E_TIMEOUT; no fifth. */
SL_TEST(timeout_bounds_the_retries)
{
    five f;
    five_init(&f, 10, SL_CB_CONSECUTIVE, 100);
    script sc = {.res = {503}, .took = {600 * MS}, .n = 1};
    int64_t t0 = atomic_load(&sim_now);
    SL_CHECK_INT(sl_pipeline_run(f.p, scripted, &sc, NULL, 0), 777);
    SL_CHECK_INT(f.fb.error, SL_RES_E_TIMEOUT);
    SL_CHECK_INT(sc.calls, 4);
    SL_CHECK_INT(sc.started[3], t0 + 1870 * MS);
    SL_CHECK_INT(sc.seen[3].deadline_ns, t0 + 2 * S);
    SL_CHECK(atomic_load(&sim_now) - t0 < 2500 * MS);
    sl_pipeline_stats st;
    sl_pipeline_stats_get(f.p, &st);
    SL_CHECK_INT(st.timeouts, 2); /* the late fourth attempt, then the whole call */
    SL_CHECK_INT(st.retries, 3);
    five_free(&f);
}

/* A backoff that would end past the deadline is not slept. */
SL_TEST(backoff_past_the_deadline_is_not_slept)
{
    five f;
    five_init(&f, 10, SL_CB_CONSECUTIVE, 100);
    script sc = {.res = {503}, .took = {1995 * MS}, .n = 1};
    int64_t t0 = atomic_load(&sim_now);
    SL_CHECK_INT(sl_pipeline_run(f.p, scripted, &sc, NULL, 0), 777);
    SL_CHECK_INT(f.fb.error, SL_RES_E_TIMEOUT);
    SL_CHECK_INT(sc.calls, 1);
    SL_CHECK_INT(atomic_load(&sim_now) - t0, 1995 * MS);
    five_free(&f);
}

/* A call that returns after its deadline is a timeout even when it says 0, and a FAILURE for the breaker. */
SL_TEST(late_success_is_a_timeout)
{
    five f;
    five_init(&f, 1, SL_CB_CONSECUTIVE, 100);
    script sc = {.res = {0}, .took = {2 * S + 1}, .n = 1};
    SL_CHECK_INT(sl_pipeline_run(f.p, scripted, &sc, NULL, 0), 777);
    SL_CHECK_INT(f.fb.error, SL_RES_E_TIMEOUT);
    sl_cb_stats cs;
    sl_cb_stats_get(f.cb, &cs);
    SL_CHECK_INT(cs.failures, 1);
    SL_CHECK_INT(cs.successes, 0);
    script on_time = {.res = {0}, .took = {2 * S}, .n = 1}; /* exactly at the deadline: in time */
    SL_CHECK_OK(sl_pipeline_run(f.p, scripted, &on_time, NULL, 0));
    five_free(&f);
}

SL_TEST(retries_exhausted_return_the_last_cause)
{
    five f;
    five_init(&f, 3, SL_CB_CONSECUTIVE, 100);
    sl_pipeline_fallback(f.p, NULL, NULL);
    script sc = {.res = {500, 502, 503}, .took = {MS, MS, MS}, .n = 3};
    SL_CHECK_INT(sl_pipeline_run(f.p, scripted, &sc, NULL, 0), 503);
    SL_CHECK_INT(sc.calls, 3);
    sl_retry_stats rs;
    sl_retry_stats_get(f.retry, &rs);
    SL_CHECK_INT(rs.exhausted, 1);
    five_free(&f);
}

/* A fatal result (HTTP 404 with the http classifier) stops at once; `ignored` keeps it from the breaker. */
static bool ignore_4xx(void *arg, int result)
{
    (void)arg;
    return result >= 400 && result < 500;
}

SL_TEST(fatal_results_stop_and_ignored_ones_spare_the_breaker)
{
    five f;
    five_init(&f, 3, SL_CB_CONSECUTIVE, 1);
    sl_retry_free(f.retry);
    sl_retry_config rc;
    sl_retry_config_default(&rc);
    rc.classify = sl_retry_classify_http;
    rc.budget_ratio = 0;
    rc.clock = sim_clock;
    SL_CHECK_OK(sl_retry_new(&rc, &f.retry, NULL, 0));
    sl_pipeline_retry(f.p, f.retry);
    sl_pipeline_ignore(f.p, ignore_4xx, NULL);
    sl_pipeline_fallback(f.p, NULL, NULL);
    script sc = {.res = {404}, .took = {MS}, .n = 1};
    for (int i = 0; i < 3; i++) SL_CHECK_INT(sl_pipeline_run(f.p, scripted, &sc, NULL, 0), 404);
    SL_CHECK_INT(sc.calls, 3);
    SL_CHECK_INT(sl_cb_state_now(f.cb), SL_CB_CLOSED); /* consecutive=1 would have opened on a FAILURE */
    script bad = {.res = {500}, .took = {MS}, .n = 1};
    SL_CHECK_INT(sl_pipeline_run(f.p, scripted, &bad, NULL, 0), SL_RES_E_OPEN);
    SL_CHECK_INT(sl_cb_state_now(f.cb), SL_CB_OPEN);
    five_free(&f);
}

SL_TEST(budget_refusal_reaches_the_caller)
{
    five f;
    five_init(&f, 3, SL_CB_CONSECUTIVE, 100);
    sl_retry_free(f.retry);
    sl_retry_config rc;
    sl_retry_config_default(&rc);
    rc.budget_ratio = 0.1;
    rc.budget_min_per_s = 0;
    rc.full_jitter = false;
    rc.clock = sim_clock;
    SL_CHECK_OK(sl_retry_new(&rc, &f.retry, NULL, 0));
    sl_pipeline_retry(f.p, f.retry);
    script sc = {.res = {503}, .took = {MS}, .n = 1};
    SL_CHECK_INT(sl_pipeline_run(f.p, scripted, &sc, NULL, 0), 777); /* 1 call: 0.1 retries allowed */
    SL_CHECK_INT(f.fb.error, SL_RES_E_BUDGET);
    SL_CHECK_INT(sc.calls, 1);
    sl_pipeline_stats st;
    sl_pipeline_stats_get(f.p, &st);
    SL_CHECK_INT(st.refused_budget, 1);
    five_free(&f);
}

/* Every attempt's latency lands in the pipeline's tracker, and an adaptive timeout reads it. */
SL_TEST(latency_is_recorded_per_attempt_and_feeds_the_adaptive_timeout)
{
    five f;
    five_init(&f, 3, SL_CB_CONSECUTIVE, 100);
    sl_latency_config lc;
    sl_latency_config_default(&lc);
    lc.clock = sim_clock;
    sl_latency *lat;
    SL_CHECK_OK(sl_latency_new(&lc, &lat, NULL, 0));
    sl_pipeline_latency(f.p, lat);
    sl_timeout_config tc;
    sl_timeout_config_default(&tc);
    tc.fixed_ns = 0;
    tc.percentile = 99;
    tc.k = 2;
    tc.min_ns = 10 * MS;
    tc.max_ns = 10 * S;
    sl_pipeline_timeout(f.p, &tc);
    script sc = {.res = {503, 0}, .took = {100 * MS, 100 * MS}, .n = 2};
    SL_CHECK_OK(sl_pipeline_run(f.p, scripted, &sc, NULL, 0));
    SL_CHECK_INT(sl_latency_count(lat), 2);
    SL_CHECK_INT(sc.seen[0].deadline_ns, sc.started[0] + 10 * S); /* an empty window: max */
    script again = {.res = {0}, .took = {MS}, .n = 1};
    SL_CHECK_OK(sl_pipeline_run(f.p, scripted, &again, NULL, 0));
    int64_t t = again.seen[0].deadline_ns - again.started[0];
    SL_CHECK(t > 190 * MS && t < 210 * MS); /* 2 x p99 of two 100 ms calls, within the tracker's 3% */
    sl_pipeline_free(f.p);
    f.p = NULL;
    sl_latency_free(lat);
    five_free(&f);
}

/* ---- hedging inside a pipeline, on the system clock ---- */

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void nap(int64_t ns)
{
    struct timespec ts = {ns / S, ns % S};
    nanosleep(&ts, NULL);
}

/* The first of each attempt hangs until cancelled; its hedge answers `answer` after 1 ms. */
typedef struct hedged_dep {
    int answer;
    _Atomic int cancelled, calls;
} hedged_dep;

static int slow_first(void *arg, const sl_res_ctx *ctx)
{
    hedged_dep *d = arg;
    atomic_fetch_add(&d->calls, 1);
    if (ctx->hedge > 0) {
        nap(MS);
        return d->answer;
    }
    for (int64_t until = real_ns() + 5 * S; real_ns() < until; nap(100000))
        if (sl_res_cancelled(ctx->cancel)) {
            atomic_fetch_add(&d->cancelled, 1);
            return SL_RES_E_CANCELLED;
        }
    return 0;
}

SL_TEST(hedge_stage_wins_with_the_hedge_and_cancels_the_first)
{
    sl_pool_config pc;
    sl_pool_config_default(&pc);
    sl_pool *pool;
    SL_CHECK_OK(sl_pool_new(&pc, &pool, NULL, 0));
    sl_hedge_config hc;
    sl_hedge_config_default(&hc);
    hc.delay_ns = 5 * MS;
    sl_hedge *h;
    SL_CHECK_OK(sl_hedge_new(&hc, &h, NULL, 0));
    sl_latency_config lc;
    sl_latency_config_default(&lc);
    sl_latency *lat;
    SL_CHECK_OK(sl_latency_new(&lc, &lat, NULL, 0));
    sl_pipeline *p;
    SL_CHECK_OK(sl_pipeline_new(&p));
    sl_pipeline_hedge(p, h, pool);
    sl_pipeline_latency(p, lat);
    sl_pipeline_ignore(p, ignore_4xx, NULL);
    hedged_dep dep = {.answer = 0};
    int64_t t0 = real_ns();
    SL_CHECK_OK(sl_pipeline_run(p, slow_first, &dep, NULL, 0));
    SL_CHECK(real_ns() - t0 < 2 * S);
    SL_CHECK_INT(atomic_load(&dep.cancelled), 1);
    SL_CHECK_INT(sl_latency_count(lat), 1); /* the cancelled first is not a latency */
    dep.answer = 404; /* an ignored answer wins like a success, and is returned as it is */
    SL_CHECK_INT(sl_pipeline_run(p, slow_first, &dep, NULL, 0), 404);
    SL_CHECK_INT(atomic_load(&dep.cancelled), 2);
    sl_pipeline_stats st;
    sl_pipeline_stats_get(p, &st);
    SL_CHECK_INT(st.hedges, 2);
    SL_CHECK_INT(st.successes, 1);
    sl_pipeline_free(p);
    sl_latency_free(lat);
    sl_hedge_free(h);
    sl_pool_free(pool);
}

/* ---- threads sharing one pipeline, on the system clock ---- */

#define THREADS 4
#define CALLS   3000

typedef struct shared {
    sl_pipeline *p;
    _Atomic int inside, most_inside, calls;
} shared;

static int busy_call(void *arg, const sl_res_ctx *ctx)
{
    shared *sh = arg;
    int now = atomic_fetch_add(&sh->inside, 1) + 1;
    for (int most = atomic_load(&sh->most_inside); now > most;)
        if (atomic_compare_exchange_weak(&sh->most_inside, &most, now)) break;
    int n = atomic_fetch_add(&sh->calls, 1);
    atomic_fetch_sub(&sh->inside, 1);
    return (n + ctx->attempt) % 3 == 0 ? 503 : 0;
}

static int always_zero(void *arg, int error, const sl_res_ctx *ctx)
{
    (void)arg, (void)error, (void)ctx;
    return 0;
}

static void *hammer(void *arg)
{
    shared *sh = arg;
    for (int i = 0; i < CALLS; i++) SL_CHECK_OK(sl_pipeline_run(sh->p, busy_call, sh, "k", 1));
    return NULL;
}

SL_TEST(threads_share_a_pipeline)
{
    sl_token_bucket *tb;
    SL_CHECK_OK(sl_token_bucket_new(1e9, 1000000, NULL, &tb, NULL, 0));
    sl_bulkhead *bh;
    SL_CHECK_OK(sl_bulkhead_new(2, NULL, &bh, NULL, 0));
    sl_retry_config rc;
    sl_retry_config_default(&rc);
    rc.base_ns = 1000;
    rc.max_backoff_ns = 10000;
    sl_retry *r;
    SL_CHECK_OK(sl_retry_new(&rc, &r, NULL, 0));
    sl_cb_config cc;
    sl_cb_config_default(&cc);
    cc.failure_rate = 90;
    sl_cb *cb;
    SL_CHECK_OK(sl_cb_new(&cc, &cb, NULL, 0));
    shared sh = {0};
    SL_CHECK_OK(sl_pipeline_new(&sh.p));
    sl_pipeline_rate(sh.p, tb);
    sl_pipeline_bulkhead(sh.p, bh, 0);
    sl_pipeline_retry(sh.p, r);
    sl_pipeline_breaker(sh.p, cb);
    sl_pipeline_fallback(sh.p, always_zero, NULL);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, hammer, &sh);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    sl_pipeline_stats st;
    sl_pipeline_stats_get(sh.p, &st);
    SL_CHECK_INT(st.calls, THREADS * CALLS);
    SL_CHECK_INT(st.successes + st.fallbacks, st.calls);
    SL_CHECK(st.successes > 0);
    SL_CHECK(atomic_load(&sh.most_inside) <= 2);
    sl_retry_stats rs;
    sl_retry_stats_get(r, &rs);
    SL_CHECK_INT(rs.retries, st.retries);
    sl_bulkhead_stats bs;
    sl_bulkhead_stats_get(bh, &bs);
    SL_CHECK_INT(bs.active, 0);
    SL_CHECK_INT(bs.rejected, st.refused_bulkhead);
    sl_pipeline_free(sh.p);
    sl_cb_free(cb);
    sl_retry_free(r);
    sl_bulkhead_free(bh);
    sl_token_bucket_free(tb);
}

/* ---- no heap per call ---- */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

static int ok_call(void *arg, const sl_res_ctx *ctx)
{
    (void)arg, (void)ctx;
    return 0;
}

/* The heap in use is the same before and after 100,000 calls through the 5-stage pipeline (a sanitizer
   replaces malloc, and mallinfo2 then says nothing: there, the case only runs the calls). */
SL_TEST(success_path_allocates_nothing)
{
    five f;
    five_init(&f, 3, SL_CB_COUNT_WINDOW, 100);
    script sc = {.res = {0}, .took = {0}, .n = 1};
    SL_CHECK_OK(sl_pipeline_run(f.p, scripted, &sc, "k", 1)); /* first-call effects (the stripe) before */
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < 100000; i++) {
        atomic_fetch_add(&sim_now, 1 * MS); /* the bucket refills: 1000/s */
        SL_CHECK_OK(sl_pipeline_run(f.p, ok_call, NULL, "k", 1));
    }
    struct mallinfo2 after = mallinfo2();
#ifndef SANITIZED
    SL_CHECK_INT(after.uordblks, before.uordblks);
    SL_CHECK_INT(after.hblkhd, before.hblkhd);
#else
    (void)before, (void)after;
#endif
    five_free(&f);
}
