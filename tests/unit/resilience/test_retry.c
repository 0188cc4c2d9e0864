/*
 * test_retry.c - retry schedules (exact, and full jitter's bounds and
 * spread), the classifier, the budget running out and coming back as its
 * window slides, per-attempt timeouts, stats, and threads sharing a policy.
 */
#include <pthread.h>
#include <stdatomic.h>
#include "test.h"
#include "resilience/compose_int.h"

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

static sl_retry *make(int32_t attempts, bool jitter, double budget_ratio, int32_t budget_min)
{
    sl_retry_config cfg;
    sl_retry_config_default(&cfg);
    cfg.max_attempts = attempts;
    cfg.base_ns = 100 * MS;
    cfg.multiplier = 2;
    cfg.max_backoff_ns = 1 * S;
    cfg.full_jitter = jitter;
    cfg.budget_ratio = budget_ratio;
    cfg.budget_min_per_s = budget_min;
    cfg.seed = 7;
    cfg.clock = sim_clock;
    sl_retry *r;
    SL_CHECK_OK(sl_retry_new(&cfg, &r, NULL, 0));
    return r;
}

SL_TEST(schedule_without_jitter_is_exact_and_capped)
{
    sl_retry *r = make(7, false, 0, 0);
    sl_retry_call call;
    sl_retry_begin(r, &call);
    const int64_t want[] = {100 * MS, 200 * MS, 400 * MS, 800 * MS, 1 * S, 1 * S};
    for (int i = 0; i < 6; i++) {
        int64_t delay = -5;
        SL_CHECK_INT(sl_retry_next(r, &call, 503, &delay), 1);
        SL_CHECK_INT(delay, want[i]);
        SL_CHECK_INT(call.attempt, i + 1);
    }
    int64_t delay = 0;
    SL_CHECK_INT(sl_retry_next(r, &call, 503, &delay), SL_RES_E_ATTEMPTS);
    SL_CHECK_INT(delay, -1);
    SL_CHECK_INT(call.last_result, 503);
    sl_retry_stats st;
    sl_retry_stats_get(r, &st);
    SL_CHECK_INT(st.calls, 1);
    SL_CHECK_INT(st.retries, 6);
    SL_CHECK_INT(st.exhausted, 1);
    SL_CHECK_INT(st.succeeded_first + st.succeeded_after_retry + st.failed_fatal + st.budget_refused, 0);
    sl_retry_free(r);
}

SL_TEST(one_attempt_never_retries)
{
    sl_retry *r = make(1, true, 0, 0);
    sl_retry_call call;
    sl_retry_begin(r, &call);
    SL_CHECK_INT(sl_retry_next(r, &call, -5, NULL), SL_RES_E_ATTEMPTS);
    sl_retry_free(r);
}

/* Full jitter: every delay of retry n is in [0, min(cap, base x 2^n)], and the draws cover that range
   (the extremes reached, the mean near its middle) rather than sitting on one value. */
SL_TEST(full_jitter_stays_within_bounds_and_spreads)
{
    sl_retry *r = make(8, true, 0, 0);
    for (int n = 0; n < 7; n++) {
        int64_t ceiling = 100 * MS << n;
        if (ceiling > 1 * S) ceiling = 1 * S;
        int64_t lo = INT64_MAX, hi = -1;
        double sum = 0;
        const int runs = 20000;
        for (int k = 0; k < runs; k++) {
            sl_retry_call call;
            sl_retry_begin(r, &call);
            call.attempt = n;
            int64_t delay;
            SL_CHECK_INT(sl_retry_next(r, &call, 500, &delay), 1);
            SL_CHECK(delay >= 0 && delay <= ceiling);
            lo = delay < lo ? delay : lo;
            hi = delay > hi ? delay : hi;
            sum += (double)delay;
        }
        SL_CHECK(lo < ceiling / 100 && hi > ceiling - ceiling / 100);
        double mean = sum / runs;
        SL_CHECK(mean > 0.48 * (double)ceiling && mean < 0.52 * (double)ceiling);
    }
    sl_retry_free(r);
}

SL_TEST(jitter_follows_the_seed)
{
    int64_t a[16], b[16], c[16];
    for (int which = 0; which < 3; which++) {
        sl_retry_config cfg;
        sl_retry_config_default(&cfg);
        cfg.max_attempts = 2;
        cfg.budget_ratio = 0;
        cfg.seed = which == 2 ? 8 : 7;
        cfg.clock = sim_clock;
        sl_retry *r;
        SL_CHECK_OK(sl_retry_new(&cfg, &r, NULL, 0));
        int64_t *out = which == 0 ? a : which == 1 ? b : c;
        for (int i = 0; i < 16; i++) {
            sl_retry_call call;
            sl_retry_begin(r, &call);
            SL_CHECK_INT(sl_retry_next(r, &call, 1, &out[i]), 1);
        }
        sl_retry_free(r);
    }
    SL_CHECK_MEM(a, b, sizeof a);
    SL_CHECK(memcmp(a, c, sizeof a) != 0);
}

SL_TEST(http_classifier)
{
    const int fatal[] = {400, 401, 403, 404, 405, 409, 410, 422, 499};
    const int retryable[] = {408, 425, 429, 500, 502, 503, 504, 599, -104};
    const int ignore[] = {100, 200, 204, 301, 304, 399};
    for (size_t i = 0; i < SL_ARRAY_LEN(fatal); i++) SL_CHECK_INT(sl_retry_classify_http(NULL, fatal[i]), SL_RETRY_FATAL);
    for (size_t i = 0; i < SL_ARRAY_LEN(retryable); i++)
        SL_CHECK_INT(sl_retry_classify_http(NULL, retryable[i]), SL_RETRY_RETRYABLE);
    for (size_t i = 0; i < SL_ARRAY_LEN(ignore); i++)
        SL_CHECK_INT(sl_retry_classify_http(NULL, ignore[i]), SL_RETRY_IGNORE);
}

SL_TEST(classified_results_stop_or_retry)
{
    sl_retry_config cfg;
    sl_retry_config_default(&cfg);
    cfg.budget_ratio = 0;
    cfg.classify = sl_retry_classify_http;
    cfg.clock = sim_clock;
    sl_retry *r;
    SL_CHECK_OK(sl_retry_new(&cfg, &r, NULL, 0));
    const int fatal[] = {400, 401, 403, 404};
    for (size_t i = 0; i < SL_ARRAY_LEN(fatal); i++) {
        sl_retry_call call;
        sl_retry_begin(r, &call);
        int64_t delay = 0;
        SL_CHECK_INT(sl_retry_next(r, &call, fatal[i], &delay), fatal[i]);
        SL_CHECK_INT(delay, -1);
    }
    sl_retry_call call;
    sl_retry_begin(r, &call);
    SL_CHECK_INT(sl_retry_next(r, &call, 429, NULL), 1);
    SL_CHECK_INT(sl_retry_next(r, &call, 503, NULL), 1);
    SL_CHECK_INT(sl_retry_next(r, &call, 304, NULL), 0); /* ignored: done, the result stands */
    SL_CHECK_INT(call.last_result, 304);
    sl_retry_begin(r, &call);
    SL_CHECK_INT(sl_retry_next(r, &call, 0, NULL), 0);
    sl_retry_stats st;
    sl_retry_stats_get(r, &st);
    SL_CHECK_INT(st.calls, 6);
    SL_CHECK_INT(st.failed_fatal, 4);
    SL_CHECK_INT(st.succeeded_after_retry, 1);
    SL_CHECK_INT(st.succeeded_first, 1);
    SL_CHECK_INT(st.retries, 2);
    sl_retry_free(r);
}

/* A fatal code of 1 is not mistaken for "retry": the delay says stop. */
static sl_retry_class one_is_fatal(void *arg, int result)
{
    (void)arg;
    return result == 1 ? SL_RETRY_FATAL : SL_RETRY_RETRYABLE;
}

SL_TEST(a_fatal_result_of_one_reads_as_a_stop)
{
    sl_retry_config cfg;
    sl_retry_config_default(&cfg);
    cfg.classify = one_is_fatal;
    cfg.clock = sim_clock;
    sl_retry *r;
    SL_CHECK_OK(sl_retry_new(&cfg, &r, NULL, 0));
    sl_retry_call call;
    sl_retry_begin(r, &call);
    int64_t delay = 0;
    SL_CHECK_INT(sl_retry_next(r, &call, 1, &delay), 1);
    SL_CHECK_INT(delay, -1);
    SL_CHECK_INT(call.attempt, 0);
    sl_retry_free(r);
}

/* Begins n calls whose first attempt fails and asks for one retry each; returns how many were allowed. */
static int fail_calls(sl_retry *r, int n)
{
    int allowed = 0;
    for (int i = 0; i < n; i++) {
        sl_retry_call call;
        sl_retry_begin(r, &call);
        int rc = sl_retry_next(r, &call, 503, NULL);
        SL_CHECK(rc == 1 || rc == SL_RES_E_BUDGET);
        allowed += rc == 1;
    }
    return allowed;
}

/* Budget 10% over 10 s (buckets of 1 s), no reserve: the retries follow the calls of the last 10 s. */
SL_TEST(budget_runs_out_and_comes_back_as_the_window_slides)
{
    atomic_store(&sim_now, 0);
    sl_retry *r = make(3, false, 0.1, 0);
    SL_CHECK_INT(fail_calls(r, 100), 10); /* t = 0: 100 calls, 10% of them retried */
    sl_retry_stats st;
    sl_retry_stats_get(r, &st);
    SL_CHECK_INT(st.budget_refused, 90);
    SL_CHECK(st.budget_used > 0.999 && st.budget_used < 1.001);

    atomic_store(&sim_now, 5 * S); /* 50 more calls: 15 allowed in the window, 10 used */
    SL_CHECK_INT(fail_calls(r, 50), 5);
    atomic_store(&sim_now, 9 * S + 999 * MS); /* still inside the window of the first 100 */
    SL_CHECK_INT(sl_retry_next(r, &(sl_retry_call){0}, 503, NULL), SL_RES_E_BUDGET);

    atomic_store(&sim_now, 10 * S); /* the bucket of t = 0 left: 50 calls, 5 retries in the window */
    sl_retry_stats_get(r, &st);
    SL_CHECK(st.budget_used > 0.999 && st.budget_used < 1.001);
    sl_retry_call call;
    sl_retry_begin(r, &call); /* 51 calls: 5.1 -> still 5 */
    SL_CHECK_INT(sl_retry_next(r, &call, 503, NULL), SL_RES_E_BUDGET);
    for (int i = 0; i < 9; i++) sl_retry_begin(r, &call); /* 60 calls: 6 */
    SL_CHECK_INT(sl_retry_next(r, &call, 503, NULL), 1);

    atomic_store(&sim_now, 20 * S); /* everything left the window: a fresh start */
    sl_retry_stats_get(r, &st);
    SL_CHECK(st.budget_used == 0);
    SL_CHECK_INT(fail_calls(r, 30), 3);
    sl_retry_free(r);
}

SL_TEST(budget_reserve_allows_a_few_retries_per_second_whatever_the_ratio)
{
    atomic_store(&sim_now, 100 * S);
    sl_retry *r = make(3, false, 0.1, 2); /* reserve: 2/s over 10 s = 20 */
    SL_CHECK_INT(fail_calls(r, 30), 3 + 20); /* 3 from the ratio, 20 from the reserve */
    sl_retry_free(r);
    r = make(3, false, 0, 0); /* no budget: every retry allowed */
    SL_CHECK_INT(fail_calls(r, 1000), 1000);
    sl_retry_free(r);
}

SL_TEST(attempt_timeouts_grow)
{
    sl_retry_config cfg;
    sl_retry_config_default(&cfg);
    cfg.attempt_timeout_ns = 100 * MS;
    cfg.attempt_timeout_growth = 1.5;
    sl_retry *r;
    SL_CHECK_OK(sl_retry_new(&cfg, &r, NULL, 0));
    SL_CHECK_INT(sl_retry_attempt_timeout_ns(r, 0), 100 * MS);
    SL_CHECK_INT(sl_retry_attempt_timeout_ns(r, 1), 150 * MS);
    SL_CHECK_INT(sl_retry_attempt_timeout_ns(r, 2), 225 * MS);
    SL_CHECK_INT(sl_retry_attempt_timeout_ns(r, 3), 337500000);
    SL_CHECK_INT(sl_retry_attempt_timeout_ns(r, 1000), INT64_MAX / 4); /* saturates */
    sl_retry_free(r);
    cfg.attempt_timeout_ns = 0;
    SL_CHECK_OK(sl_retry_new(&cfg, &r, NULL, 0));
    SL_CHECK_INT(sl_retry_attempt_timeout_ns(r, 3), 0);
    sl_retry_free(r);
}

SL_TEST(bad_configs_are_named)
{
    sl_retry_config cfg;
    char err[96];
    sl_retry *r = (sl_retry *)1;
    sl_retry_config_default(&cfg);
    cfg.max_attempts = 0;
    SL_CHECK_INT(sl_retry_new(&cfg, &r, err, sizeof err), SL_RES_E_INVALID);
    SL_CHECK(r == NULL);
    SL_CHECK_STR(err, "max_attempts: 0 is not in 1..1000");
    sl_retry_config_default(&cfg);
    cfg.multiplier = 0.5;
    SL_CHECK_INT(sl_retry_new(&cfg, &r, err, sizeof err), SL_RES_E_INVALID);
    SL_CHECK_STR(err, "multiplier: 0.5 is not in 1..1000");
    sl_retry_config_default(&cfg);
    cfg.budget_ratio = -0.1;
    SL_CHECK_INT(sl_retry_new(&cfg, &r, err, sizeof err), SL_RES_E_INVALID);
    SL_CHECK_STR(err, "budget_ratio: -0.1 is not in 0..1000");
    sl_retry_config_default(&cfg);
    cfg.attempt_timeout_growth = 0.9;
    SL_CHECK_INT(sl_retry_new(&cfg, &r, err, sizeof err), SL_RES_E_INVALID);
    SL_CHECK_STR(err, "attempt_timeout_growth: 0.9 is not in 1..100");
    sl_retry_config_default(&cfg);
    cfg.base_ns = -1;
    SL_CHECK_INT(sl_retry_new(&cfg, &r, err, sizeof err), SL_RES_E_INVALID);
    SL_CHECK_STR(err, "base_ns: -1 is negative");
    sl_retry_config_default(&cfg);
    cfg.budget_window_ns = 5;
    SL_CHECK_INT(sl_retry_new(&cfg, &r, err, sizeof err), SL_RES_E_INVALID);
    SL_CHECK_STR(err, "budget_window_ns: 5 is below 10");
}

/* Threads share one policy and one instant: however they interleave, the retries admitted never pass
   10% of the calls, and every call ends in exactly one way. */
#define THREADS 4
#define CALLS   5000

static void *hammer(void *arg)
{
    sl_retry *r = arg;
    for (int i = 0; i < CALLS; i++) {
        sl_retry_call call;
        sl_retry_begin(r, &call);
        int rc;
        while ((rc = sl_retry_next(r, &call, i % 7 == 0 ? 0 : 503, NULL)) == 1) {
        }
        SL_CHECK(rc == 0 || rc == SL_RES_E_BUDGET || rc == SL_RES_E_ATTEMPTS);
    }
    return NULL;
}

SL_TEST(threads_never_overspend_the_budget)
{
    atomic_store(&sim_now, 3 * S);
    sl_retry *r = make(4, true, 0.1, 0);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, hammer, r);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    sl_retry_stats st;
    sl_retry_stats_get(r, &st);
    SL_CHECK_INT(st.calls, THREADS * CALLS);
    SL_CHECK(st.retries <= THREADS * CALLS / 10);
    SL_CHECK(st.retries >= THREADS * CALLS / 10 - 2 * THREADS); /* racing retries may both be refused */
    SL_CHECK_INT(st.succeeded_first + st.succeeded_after_retry + st.failed_fatal + st.exhausted + st.budget_refused,
                 st.calls);
    sl_retry_free(r);
}
