/*
 * test_parse.c - pipeline descriptions: every example of the header and of
 * the grammar, canonical descriptions and their round trips, errors with
 * their byte positions, every prefix of a description (read within its
 * bounds), and pipelines that behave as they read.
 */
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

static const char header_example[] =
    "rate(1000/s, burst=100) | bulkhead(16, wait=10ms) | timeout(p99 x 2, min=100ms, max=10s)\n"
    "    | retry(3, base=50ms, cap=2s, budget=10%) | breaker(count=100, failure=50%, slow=80%@1s, open=30s,\n"
    "    probes=5)";

/* Parses desc (must succeed) and returns its description in buf. */
static const char *described(const char *desc, char *buf, size_t cap)
{
    sl_pipeline *p = NULL;
    char err[256];
    int rc = sl_pipeline_parse(desc, &sim_clock, &p, err, sizeof err);
    if (rc != 0) sl_test_fail(__FILE__, __LINE__, "parse of \"%s\": %s", desc, err);
    size_t n = sl_pipeline_describe(p, buf, cap);
    SL_CHECK(n < cap);
    SL_CHECK_INT(strlen(buf), n);
    sl_pipeline_free(p);
    return buf;
}

SL_TEST(header_example_parses_to_its_canonical_form)
{
    char buf[1024];
    SL_CHECK_STR(described(header_example, buf, sizeof buf),
                 "rate(1000/s, burst=100) | bulkhead(16, wait=10ms) | timeout(p99 x 2, min=100ms, max=10s) | "
                 "retry(3, base=50ms, cap=2s, mult=2, jitter=full, budget=10%, budget_window=10s, budget_min=10/s, "
                 "classify=all) | breaker(count=100, min_calls=100, failure=50%, slow=80%@1s, open=30s, probes=5)");
}

static const struct {
    const char *in, *canonical;
} forms[] = {
    {"timeout(fixed=2s)", "timeout(fixed=2s)"},
    {"timeout(2s)", "timeout(fixed=2s)"},
    {"timeout( 1.5s )", "timeout(fixed=1500ms)"},
    {"timeout(1.0000005ms)", "timeout(fixed=1000001ns)"}, /* rounded to the nearest ns, half up */
    {"timeout(0.25us)", "timeout(fixed=250ns)"},
    {"timeout(p99.9 x 1.5, min=250us, max=1min)", "timeout(p99.9 x 1.5, min=250us, max=1min)"},
    {"timeout(p95x3,min=1ms,max=2s)", "timeout(p95 x 3, min=1ms, max=2s)"},
    {"rate(100/s, per=key)", "rate(100/s, per=key, buckets=10, keys=4096)"},
    {"rate(50/100ms, per=key, buckets=5, keys=64)", "rate(50/100ms, per=key, buckets=5, keys=64)"},
    {"rate(60/min)", "rate(60/min, burst=1)"},
    {"rate(2.5/s)", "rate(2.5/s, burst=3)"},
    {"rate(10/s, per=key) | rate(1000/s, burst=50)", "rate(10/s, per=key, buckets=10, keys=4096) | rate(1000/s, burst=50)"},
    {"rate(1000/s, burst=50) | rate(10/s, per=key)", "rate(10/s, per=key, buckets=10, keys=4096) | rate(1000/s, burst=50)"},
    {"bulkhead(16)", "bulkhead(16, wait=0ns)"},
    {"limit(aimd, initial=10, min=2, max=50, priority=1, slow=500ms, backoff=0.8, queue=6, smoothing=0.3)",
     "limit(aimd, initial=10, min=2, max=50, priority=1, slow=500ms, backoff=0.8, smoothing=0.3, queue=6, "
     "tolerance=0.1, probe=30s)"},
    {"limit(gradient, tolerance=0.25, probe=0s)", "limit(gradient, initial=20, min=1, max=1000, priority=0, slow=1s, "
                                                 "backoff=0.9, smoothing=0.2, queue=4, tolerance=0.25, probe=0ns)"},
    {"retry(5, base=10ms, cap=1s, mult=1.5, jitter=none, budget=none, attempt_timeout=200ms, growth=2, "
     "classify=http, seed=42)",
     "retry(5, base=10ms, cap=1s, mult=1.5, jitter=none, budget=none, attempt_timeout=200ms, growth=2, "
     "classify=http, seed=42)"},
    {"retry(2, budget=20%, budget_window=30s, budget_min=5/s)",
     "retry(2, base=100ms, cap=10s, mult=2, jitter=full, budget=20%, budget_window=30s, budget_min=5/s, classify=all)"},
    {"breaker(time=60s, min_calls=20, failure=25%, slow=90%@2s, open=5s, probes=3, half_open_max=1min)",
     "breaker(time=1min, min_calls=20, failure=25%, slow=90%@2s, open=5s, probes=3, half_open_max=1min)"},
    {"breaker(count=10)", NULL}, /* min_calls follows the small window: checked below */
    {"breaker(consecutive=5)", NULL},
    {"hedge(2, delay=p95)", "hedge(2, delay=p95, min_delay=1ms, threads=4, queue=64)"},
    {"hedge(1, delay=10ms, min_delay=2ms, threads=2, queue=8)", "hedge(1, delay=10ms, min_delay=2ms, threads=2, queue=8)"},
    {"  retry(3)\t|\n\rbreaker(consecutive=2)  ", NULL},
};

SL_TEST(every_form_parses_to_its_canonical_form)
{
    char buf[1024];
    for (size_t i = 0; i < SL_ARRAY_LEN(forms); i++) {
        described(forms[i].in, buf, sizeof buf);
        if (forms[i].canonical) SL_CHECK_STR(buf, forms[i].canonical);
    }
    SL_CHECK(strstr(described("breaker(count=10)", buf, sizeof buf), "count=10, min_calls=10,") != NULL);
    SL_CHECK(strstr(described("breaker(count=10, min_calls=50)", buf, sizeof buf), "min_calls=50") != NULL);
    SL_CHECK(strncmp(described("breaker(consecutive=5)", buf, sizeof buf), "breaker(consecutive=5, ", 23) == 0);
}

/* describe(parse(x)) is a fixed point of describe(parse(.)), for every form; and a canonical text is its own
   description. */
SL_TEST(descriptions_round_trip)
{
    char a[1024], b[1024];
    for (size_t i = 0; i < SL_ARRAY_LEN(forms); i++) {
        described(forms[i].in, a, sizeof a);
        described(a, b, sizeof b);
        SL_CHECK_STR(b, a);
    }
    described(header_example, a, sizeof a);
    SL_CHECK_STR(described(a, b, sizeof b), a);
    const char *all = "rate(7/s, per=key, buckets=7, keys=7) | rate(0.1/s, burst=1) | bulkhead(3, wait=1us) | "
                      "limit(gradient, initial=20, min=1, max=1000, priority=3, slow=1s, backoff=0.9, smoothing=0.2, "
                      "queue=4, tolerance=0.1, probe=30s) | timeout(p50 x 0.5, min=1ns, max=1h) | retry(1000, base=0ns, cap=0ns, mult=1000, "
                      "jitter=none, budget=1000%, budget_window=10ns, budget_min=0/s, attempt_timeout=1ns, growth=100, "
                      "classify=http, seed=123456789012345678) | breaker(consecutive=1, min_calls=1, failure=0%, "
                      "slow=0%@1ns, open=1ns, probes=1) | hedge(8, delay=p100, min_delay=0ns, threads=64, queue=65536)";
    SL_CHECK_STR(described(all, a, sizeof a), all);
}

SL_TEST(describe_of_a_pipeline_built_in_code_is_empty_and_truncation_is_safe)
{
    sl_pipeline *p;
    SL_CHECK_OK(sl_pipeline_new(&p));
    char buf[8] = "xxxxxxx";
    SL_CHECK_INT(sl_pipeline_describe(p, buf, sizeof buf), 0);
    SL_CHECK_STR(buf, "");
    sl_pipeline_free(p);
    SL_CHECK_OK(sl_pipeline_parse("bulkhead(16, wait=10ms)", NULL, &p, NULL, 0));
    SL_CHECK_INT(sl_pipeline_describe(p, buf, sizeof buf), strlen("bulkhead(16, wait=10ms)"));
    SL_CHECK_STR(buf, "bulkhea");
    SL_CHECK_INT(sl_pipeline_describe(p, NULL, 0), strlen("bulkhead(16, wait=10ms)"));
    sl_pipeline_free(p);
}

static const struct {
    const char *in, *err;
} errors[] = {
    {"", "at byte 0: expected a stage (rate, bulkhead, limit, timeout, retry, breaker, hedge), found the end"},
    {"   ", "at byte 3: expected a stage (rate, bulkhead, limit, timeout, retry, breaker, hedge), found the end"},
    {"retry(3, base=50)", "at byte 16: retry: base: expected a unit (ns, us, ms, s, min, h), found ')'"},
    {"retry(3, base=50 ms)", "at byte 16: retry: base: expected a unit (ns, us, ms, s, min, h), found byte 0x20"},
    {"retry(3, base=50sec)", "at byte 16: retry: base: expected a unit (ns, us, ms, s, min, h), found 's'"},
    {"retry(3, bas=50ms)", "at byte 9: retry: unknown key 'bas' (expected base, cap, mult, jitter, budget, "
                           "budget_window, budget_min, attempt_timeout, growth, classify, seed)"},
    {"bulkhead(16) | retry(3) | timeout(2s)", "at byte 26: 'timeout' after 'retry': stages are written in the order "
                                              "they run (rate, bulkhead, limit, timeout, retry, breaker, hedge)"},
    {"retry(3) | retry(4)", "at byte 11: a second 'retry' stage"},
    {"rate(1/s) | rate(2/s)", "at byte 12: a second global 'rate' stage"},
    {"rate(1/s, per=key) | rate(2/s, per=key)", "at byte 21: a second per-key 'rate' stage"},
    {"rate(100)", "at byte 8: rate: expected '/' and a period (e.g. 100/s), found ')'"},
    {"rate(100/0s)", "at byte 5: rate: the period is 0"},
    {"rate(burst=5)", "at byte 0: rate: expected the rate first (e.g. rate(100/s))"},
    {"rate(5/s, per=key, burst=5)", "at byte 0: rate: burst= is for a global rate, not one per=key"},
    {"rate(1.5/s, per=key)", "at byte 0: rate: per=key needs a whole number of calls per period (e.g. 100/s)"},
    {"rate(5/s, per=customer)", "at byte 14: rate: per: expected 'key', found 'c'"},
    {"bulkhead(16", "at byte 11: bulkhead: expected ',' or ')', found the end"},
    {"bulkhead 16)", "at byte 9: expected '(' after the stage's name, found '1'"},
    {"bulkhead(16) retry(3)", "at byte 13: expected '|' between stages, or the end, found 'r'"},
    {"bulkhead(16) |", "at byte 14: expected a stage (rate, bulkhead, limit, timeout, retry, breaker, hedge), found the end"},
    {"bulkhead(wait=1s)", "at byte 0: bulkhead: expected the calls allowed at once first (e.g. bulkhead(16))"},
    {"bulkhead(\xff)", "at byte 9: bulkhead: expected the calls allowed at once (e.g. 16), found byte 0xff"},
    {"breaker(count=10, time=60s)", "at byte 0: breaker: one of count=, time= and consecutive=, not several"},
    {"breaker(time=1500ms)", "at byte 13: breaker: time: a time window is whole seconds, 1s..3600s"},
    {"breaker(slow=80%1s)", "at byte 16: breaker: slow: expected '@' and the duration of a slow call (e.g. 80%@1s), "
                            "found '1'"},
    {"breaker(3)", "at byte 8: breaker: expected key=value, found '3'"},
    {"timeout(p99 x 2, min=1s, max=100ms)", "at byte 0: timeout: min= is over max=, or max= is 0"},
    {"timeout(2s, max=3s)", "at byte 0: timeout: min= and max= are for an adaptive timeout (e.g. timeout(p99 x 2, max=10s))"},
    {"timeout(max=3s)", "at byte 0: timeout: expected a duration or a percentile first (e.g. timeout(2s), timeout(p99 x 2))"},
    {"timeout(p101)", "at byte 0: timeout: the percentile is not in (0, 100]"},
    {"timeout(p99 x)", "at byte 13: timeout: expected a multiplier after 'x' (e.g. p99 x 2), found ')'"},
    {"retry(3, budget=10)", "at byte 18: retry: budget: expected '%' after the percentage, found ')'"},
    {"retry(3, budget_min=2.5/s)", "at byte 20: retry: budget_min: 2.5 per second is not a whole number up to 2147483647"},
    {"retry(3, jitter=half)", "at byte 16: retry: jitter: expected full or none, found 'h'"},
    {"retry(3, 50ms)", "at byte 9: retry: expected key=value, found '5'"},
    {"retry(3, seed=1, seed=2)", "at byte 17: retry: a second 'seed'"},
    {"retry(1234567890123456789)", "at byte 6: retry: a number of more than 18 digits"},
    {"retry(99999999999)", "at byte 6: retry: 99999999999 is over 2147483647"},
    {"retry(3, base=9999999999h)", "at byte 14: retry: base: a duration over 2^62 ns"},
    {"hedge(1, delay=p)", "at byte 16: hedge: delay: expected the percentile's number (e.g. p99), found ')'"},
    {"hedge(1, threads=65)", "at byte 17: hedge: threads: 65 is over 64"},
    {"limit(fast)", "at byte 6: limit: expected aimd or gradient, found 'f'"},
    {"limit(aimd, priority=4)", "at byte 21: limit: priority: 4 is over 3"},
    {"foo(1)", "at byte 0: unknown stage 'foo' (expected one of rate, bulkhead, limit, timeout, retry, breaker, hedge)"},
    {"Retry(3)", "at byte 0: expected a stage (rate, bulkhead, limit, timeout, retry, breaker, hedge), found 'R'"},
    {"retry(3,)", "at byte 8: retry: expected key=value, found ')'"},
    /* values the policy itself refuses: at the stage, with the policy's sentence */
    {"bulkhead(0)", "at byte 0: bulkhead: max_concurrent: 0 is below 1"},
    {"retry(3) | hedge(9, delay=1ms)", "at byte 11: hedge: max_hedges: 9 is not in 0..8"},
    {"retry(0)", "at byte 0: retry: max_attempts: 0 is not in 1..1000"},
};

SL_TEST(errors_say_where_and_what_was_expected)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(errors); i++) {
        char err[256] = "untouched";
        sl_pipeline *p = (sl_pipeline *)1;
        int rc = sl_pipeline_parse(errors[i].in, &sim_clock, &p, err, sizeof err);
        if (rc != SL_RES_E_INVALID)
            sl_test_fail(__FILE__, __LINE__, "\"%s\" parsed (%d), expected: %s", errors[i].in, rc, errors[i].err);
        SL_CHECK(p == NULL);
        SL_CHECK_STR(err, errors[i].err);
    }
    sl_pipeline *p;
    SL_CHECK_INT(sl_pipeline_parse("retry(", NULL, &p, NULL, 0), SL_RES_E_INVALID); /* err may be NULL */
}

SL_TEST(a_long_description_is_refused_at_the_limit)
{
    char *desc = malloc(6001);
    memset(desc, ' ', 6000);
    memcpy(desc, "retry(3)", 8);
    desc[6000] = '\0';
    char err[128];
    sl_pipeline *p;
    SL_CHECK_INT(sl_pipeline_parse(desc, NULL, &p, err, sizeof err), SL_RES_E_INVALID);
    SL_CHECK_STR(err, "at byte 4096: the description is longer than 4096 bytes");
    desc[4096] = '\0'; /* exactly 4096: fine */
    SL_CHECK_OK(sl_pipeline_parse(desc, NULL, &p, err, sizeof err));
    sl_pipeline_free(p);
    free(desc);
}

/* Every prefix of a description, in a buffer of exactly its size: it parses or fails at a byte within it
   (ASan sees any read past the end). */
SL_TEST(every_prefix_is_read_within_its_bounds)
{
    const char *full = "rate(10/s, per=key, buckets=5) | rate(1000/s, burst=100) | bulkhead(16, wait=10ms) | "
                       "limit(aimd, max=50) | timeout(p99.5 x 2, min=100ms, max=10s) | retry(3, base=50ms, "
                       "cap=2s, budget=12.5%, budget_min=3/s) | breaker(count=100, failure=50%, slow=80%@1s, "
                       "open=30s, probes=5) | hedge(1, delay=p95)";
    size_t n = strlen(full);
    int parsed = 0;
    for (size_t len = 0; len <= n; len++) {
        char *copy = malloc(len + 1);
        memcpy(copy, full, len);
        copy[len] = '\0';
        char err[256] = "";
        sl_pipeline *p = NULL;
        int rc = sl_pipeline_parse(copy, &sim_clock, &p, err, sizeof err);
        if (rc == 0) {
            parsed++;
            sl_pipeline_free(p);
        } else {
            SL_CHECK_INT(rc, SL_RES_E_INVALID);
            SL_CHECK(strncmp(err, "at byte ", 8) == 0);
            unsigned long at = strtoul(err + 8, NULL, 10);
            SL_CHECK(at <= len);
        }
        free(copy);
    }
    SL_CHECK(parsed >= 8); /* each stage's ')' ends a valid description */
}

/* ---- parsed pipelines behave as they read ---- */

typedef struct counting {
    int calls, result;
    int64_t took;
} counting;

static int counted(void *arg, const sl_res_ctx *ctx)
{
    (void)ctx;
    counting *c = arg;
    c->calls++;
    atomic_fetch_add(&sim_now, c->took);
    return c->result;
}

SL_TEST(parsed_pipeline_retries_backs_off_and_rate_limits_as_written)
{
    atomic_store(&sim_now, 100 * S);
    sl_pipeline *p;
    char err[256];
    SL_CHECK_OK(sl_pipeline_parse("rate(2/s, burst=2) | bulkhead(1) | timeout(1s) | "
                                  "retry(3, base=10ms, jitter=none, budget=none) | breaker(consecutive=5)",
                                  &sim_clock, &p, err, sizeof err));
    counting c = {.result = 503, .took = MS};
    int64_t t0 = atomic_load(&sim_now);
    SL_CHECK_INT(sl_pipeline_run(p, counted, &c, NULL, 0), 503);
    SL_CHECK_INT(c.calls, 3);
    SL_CHECK_INT(atomic_load(&sim_now) - t0, 3 * MS + 10 * MS + 20 * MS);
    c.result = 0;
    SL_CHECK_OK(sl_pipeline_run(p, counted, &c, NULL, 0));
    SL_CHECK_INT(sl_pipeline_run(p, counted, &c, NULL, 0), SL_RES_E_RATE); /* 2 tokens, not refilled yet */
    c.result = 503;
    c.took = 2 * S; /* late: a timeout; the breaker counts it */
    atomic_fetch_add(&sim_now, S);
    SL_CHECK_INT(sl_pipeline_run(p, counted, &c, NULL, 0), SL_RES_E_TIMEOUT);
    sl_pipeline_stats st;
    sl_pipeline_stats_get(p, &st);
    SL_CHECK_INT(st.calls, 4);
    SL_CHECK_INT(st.successes, 1);
    SL_CHECK_INT(st.refused_rate, 1);
    SL_CHECK_INT(st.retries, 2);
    SL_CHECK_INT(st.timeouts, 2); /* the late attempt, then the whole call */
    sl_pipeline_free(p);
}

SL_TEST(parsed_breaker_opens_and_stops_calls)
{
    atomic_store(&sim_now, 100 * S);
    sl_pipeline *p;
    SL_CHECK_OK(sl_pipeline_parse("breaker(count=4, failure=50%, open=30s, probes=1)", &sim_clock, &p, NULL, 0));
    counting c = {.result = 500, .took = MS};
    for (int i = 0; i < 4; i++) SL_CHECK_INT(sl_pipeline_run(p, counted, &c, NULL, 0), 500);
    SL_CHECK_INT(sl_pipeline_run(p, counted, &c, NULL, 0), SL_RES_E_OPEN);
    SL_CHECK_INT(c.calls, 4);
    sl_pipeline_policies pol;
    sl_pipeline_policies_get(p, &pol); /* the parsed breaker, seen from outside */
    SL_CHECK(pol.breaker && !pol.rate && !pol.retry && !pol.latency);
    SL_CHECK_INT(sl_cb_state_now(pol.breaker), SL_CB_OPEN);
    atomic_fetch_add(&sim_now, 30 * S); /* half-open: one probe */
    c.result = 0;
    SL_CHECK_OK(sl_pipeline_run(p, counted, &c, NULL, 0));
    SL_CHECK_INT(c.calls, 5);
    SL_CHECK_INT(sl_cb_state_now(pol.breaker), SL_CB_CLOSED);
    sl_pipeline_free(p);
}

SL_TEST(parsed_policies_are_handed_out_stage_by_stage)
{
    sl_pipeline *p;
    SL_CHECK_OK(sl_pipeline_parse("rate(10/s) | bulkhead(4) | timeout(p99 x 2, min=1ms, max=1s) | retry(2)", &sim_clock,
                                  &p, NULL, 0));
    sl_pipeline_policies pol;
    sl_pipeline_policies_get(p, &pol);
    SL_CHECK(pol.rate && pol.bulkhead && pol.retry && pol.latency); /* the percentile made a tracker */
    SL_CHECK(!pol.rate_per_key && !pol.limit && !pol.breaker && !pol.hedge);
    sl_bulkhead_stats bs;
    sl_bulkhead_stats_get(pol.bulkhead, &bs);
    SL_CHECK_INT(bs.active, 0);
    sl_pipeline_free(p);
    sl_pipeline_new(&p); /* built in code: none */
    sl_pipeline_policies_get(p, &pol);
    SL_CHECK(!pol.rate && !pol.bulkhead && !pol.retry && !pol.latency && !pol.breaker);
    sl_pipeline_free(p);
}

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int slow_first(void *arg, const sl_res_ctx *ctx)
{
    _Atomic int *cancelled = arg;
    if (ctx->hedge > 0) return 0;
    for (int64_t until = real_ns() + 5 * S; real_ns() < until;) {
        if (sl_res_cancelled(ctx->cancel)) {
            atomic_fetch_add(cancelled, 1);
            return SL_RES_E_CANCELLED;
        }
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

SL_TEST(parsed_hedge_runs_on_its_own_pool)
{
    sl_pipeline *p;
    SL_CHECK_OK(sl_pipeline_parse("hedge(1, delay=2ms, threads=2)", NULL, &p, NULL, 0));
    _Atomic int cancelled = 0;
    int64_t t0 = real_ns();
    SL_CHECK_OK(sl_pipeline_run(p, slow_first, (void *)&cancelled, NULL, 0));
    SL_CHECK(real_ns() - t0 < 2 * S);
    SL_CHECK_INT(atomic_load(&cancelled), 1);
    sl_pipeline_stats st;
    sl_pipeline_stats_get(p, &st);
    SL_CHECK_INT(st.hedges, 1);
    sl_pipeline_free(p);
}
