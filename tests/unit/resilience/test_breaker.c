/*
 * test_breaker.c - the circuit breaker (src/resilience/breaker.c) in
 * simulated time: every edge of the state machine with each window type
 * (COUNT, TIME, CONSECUTIVE); thresholds at and just below their value;
 * min_calls; calls in flight past slow_ns; the TIME window sliding and its
 * edge; retry-after; probes; forced states; callbacks (in order, outside the
 * lock); permits of an older generation; stats; config errors; calls beyond
 * max_in_flight. Then a reference model run against random sequences, and
 * threads with forced transitions (also under ThreadSanitizer).
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>
#include "test.h"
#include "sluice/resilience.h"

#define MS INT64_C(1000000)
#define S INT64_C(1000000000)
#define T0 (1000 * S) /* the simulated time a breaker is made at (not 0: 0 means "not open" in the stats) */

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
static void tick(int64_t ns) { atomic_fetch_add(&sim_now, ns); }
static void set_time(int64_t t) { atomic_store(&sim_now, t); }
static int64_t now_ns(void) { return atomic_load(&sim_now); }

#define CHECK_RATE(got, want)                                                                        \
    do {                                                                                             \
        double g_ = (got), w_ = (want);                                                              \
        if (!(fabs(g_ - w_) < 1e-9)) sl_test_fail(__FILE__, __LINE__, "%s: %.12g, want %.12g", #got, g_, w_); \
    } while (0)

/* ---- every state change, in order (single-threaded tests) ---- */

#define CHANGES_MAX 64
static sl_cb_state ch_from[CHANGES_MAX], ch_to[CHANGES_MAX];
static int nchanges;

static void record_change(void *arg, sl_cb_state from, sl_cb_state to)
{
    (void)arg;
    if (nchanges == CHANGES_MAX) sl_test_fail(__FILE__, __LINE__, "more than %d state changes", CHANGES_MAX);
    ch_from[nchanges] = from;
    ch_to[nchanges] = to;
    nchanges++;
}

/* "CLOSED>OPEN,OPEN>HALF_OPEN" */
static const char *changes(void)
{
    static char buf[CHANGES_MAX * 32];
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < nchanges && len < sizeof buf; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s>%s", i ? "," : "", sl_cb_state_name(ch_from[i]),
                                sl_cb_state_name(ch_to[i]));
    return buf;
}

/* ---- making breakers and calls ---- */

/* The tests' usual breaker: a window of 10 (calls or seconds), min_calls 10, opens at 50% failures or when
   every call is slower than 1 s (CONSECUTIVE: 3 failures in a row), stays open 10 s, 3 probes. */
static void config(sl_cb_config *cfg, sl_cb_mode mode)
{
    sl_cb_config_default(cfg);
    cfg->mode = mode;
    cfg->window = 10;
    cfg->min_calls = 10;
    cfg->failure_rate = 50;
    cfg->slow_rate = 100;
    cfg->slow_ns = 1 * S;
    cfg->consecutive_failures = 3;
    cfg->open_ns = 10 * S;
    cfg->half_open_calls = 3;
    cfg->half_open_max_ns = 0;
    cfg->max_in_flight = 64;
    cfg->on_state = record_change;
    cfg->clock = sim_clock;
}

/* Resets the simulated time to T0 and the changes seen, then makes the breaker. */
static sl_cb *make(const sl_cb_config *cfg)
{
    set_time(T0);
    nchanges = 0;
    sl_cb *cb = NULL;
    char err[160] = "";
    int rc = sl_cb_new(cfg, &cb, err, sizeof err);
    if (rc) sl_test_fail(__FILE__, __LINE__, "sl_cb_new: %d: %s", rc, err);
    return cb;
}

static sl_cb *make_mode(sl_cb_mode mode)
{
    sl_cb_config cfg;
    config(&cfg, mode);
    return make(&cfg);
}

/* One call taking `dur` of simulated time: acquire's result (the call is made only when admitted). */
static int call(sl_cb *cb, sl_res_outcome out, int64_t dur)
{
    sl_cb_permit p;
    int rc = sl_cb_acquire(cb, &p, NULL);
    if (rc) return rc;
    tick(dur);
    sl_cb_release(cb, &p, out);
    return 0;
}

static void calls(sl_cb *cb, int n, sl_res_outcome out)
{
    for (int i = 0; i < n; i++)
        if (call(cb, out, MS) != 0) sl_test_fail(__FILE__, __LINE__, "call %d of %d refused", i + 1, n);
}

static sl_cb_stats stats(sl_cb *cb)
{
    sl_cb_stats st;
    memset(&st, 0xa5, sizeof st);
    sl_cb_stats_get(cb, &st);
    return st;
}

static void acquire_ok(sl_cb *cb, sl_cb_permit *p)
{
    int rc = sl_cb_acquire(cb, p, NULL);
    if (rc) sl_test_fail(__FILE__, __LINE__, "acquire refused (%d) in %s", rc, sl_cb_state_name(sl_cb_state_now(cb)));
}

/* Refused, with this retry-after. */
static void check_refused(sl_cb *cb, int64_t want_retry_after, int line)
{
    sl_cb_permit p;
    int64_t ra = -7;
    int rc = sl_cb_acquire(cb, &p, &ra);
    if (rc != SL_RES_E_OPEN) sl_test_fail(__FILE__, line, "acquire: %d, want SL_RES_E_OPEN", rc);
    if (ra != want_retry_after)
        sl_test_fail(__FILE__, line, "retry_after %lld, want %lld", (long long)ra, (long long)want_retry_after);
    if (p.slot != -1) sl_test_fail(__FILE__, line, "a refused permit has slot %d", p.slot);
}
#define CHECK_REFUSED(cb, ra) check_refused((cb), (ra), __LINE__)

/* From CLOSED to OPEN with failures: min_calls of them (capped at a COUNT window), or consecutive_failures. */
static void open_it(sl_cb *cb, const sl_cb_config *cfg)
{
    int n = cfg->mode == SL_CB_CONSECUTIVE ? cfg->consecutive_failures
            : cfg->mode == SL_CB_COUNT_WINDOW ? (cfg->min_calls < cfg->window ? cfg->min_calls : cfg->window)
                                                : cfg->min_calls;
    for (int i = 0; i < n; i++) {
        SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
        SL_CHECK_OK(call(cb, SL_RES_FAILURE, MS));
    }
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN);
}

static void to_half_open(sl_cb *cb, const sl_cb_config *cfg)
{
    tick(cfg->open_ns);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_HALF_OPEN);
}

/* ---- configuration ---- */

SL_TEST(cb_config_defaults_and_state_names)
{
    sl_cb_config cfg;
    sl_cb_config_default(&cfg);
    SL_CHECK_INT(cfg.mode, SL_CB_COUNT_WINDOW);
    SL_CHECK_INT(cfg.window, 100);
    SL_CHECK_INT(cfg.min_calls, 100);
    SL_CHECK(cfg.failure_rate == 50 && cfg.slow_rate == 100);
    SL_CHECK_INT(cfg.slow_ns, 60 * S);
    SL_CHECK_INT(cfg.consecutive_failures, 5);
    SL_CHECK_INT(cfg.open_ns, 60 * S);
    SL_CHECK_INT(cfg.half_open_calls, 10);
    SL_CHECK_INT(cfg.half_open_max_ns, 0);
    SL_CHECK_INT(cfg.max_in_flight, 1024);
    SL_CHECK(cfg.on_state == NULL && cfg.clock.now_ns == NULL);
    const char *names[] = {"CLOSED", "OPEN", "HALF_OPEN", "FORCED_OPEN", "FORCED_CLOSED", "DISABLED"};
    for (int i = 0; i < 6; i++) SL_CHECK_STR(sl_cb_state_name((sl_cb_state)i), names[i]);
    SL_CHECK_STR(sl_cb_state_name((sl_cb_state)6), "UNKNOWN");
    SL_CHECK_STR(sl_cb_state_name((sl_cb_state)-1), "UNKNOWN");
    /* The defaults make a breaker on the system clock. */
    sl_cb *cb = NULL;
    SL_CHECK_OK(sl_cb_new(&cfg, &cb, NULL, 0));
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    sl_cb_free(cb);
    sl_cb_free(NULL);
}

/* Sets bad value number i into a default config; returns the message it must give, NULL past the last. */
static const char *bad_config(int i, sl_cb_config *c)
{
    sl_cb_config_default(c);
    switch (i) {
    case 0: c->mode = (sl_cb_mode)7; return "breaker mode: 7 is not COUNT, TIME or CONSECUTIVE";
    case 1: c->window = 0; return "breaker window: 0 is outside 1..1000000";
    case 2: c->window = 1000001; return "breaker window: 1000001 is outside 1..1000000";
    case 3: c->mode = SL_CB_TIME_WINDOW; c->window = 3601; return "breaker window: 3601 is outside 1..3600";
    case 4: c->mode = SL_CB_TIME_WINDOW; c->window = -1; return "breaker window: -1 is outside 1..3600";
    case 5: c->min_calls = 0; return "breaker min_calls: 0 is below 1";
    case 6: c->mode = SL_CB_TIME_WINDOW; c->window = 60; c->min_calls = -3; return "breaker min_calls: -3 is below 1";
    case 7: c->failure_rate = -1; return "breaker failure_rate: -1 is outside 0..100 percent";
    case 8: c->failure_rate = 100.5; return "breaker failure_rate: 100.5 is outside 0..100 percent";
    case 9: c->failure_rate = NAN; return "breaker failure_rate: nan is outside 0..100 percent";
    case 10: c->slow_rate = 101; return "breaker slow_rate: 101 is outside 0..100 percent";
    case 11: c->slow_rate = -0.5; return "breaker slow_rate: -0.5 is outside 0..100 percent";
    case 12: c->slow_ns = 0; return "breaker slow_ns: 0 is not positive";
    case 13: c->slow_ns = -1; return "breaker slow_ns: -1 is not positive";
    case 14: c->mode = SL_CB_CONSECUTIVE; c->consecutive_failures = 0; return "breaker consecutive_failures: 0 is below 1";
    case 15: c->open_ns = 0; return "breaker open_ns: 0 is not positive";
    case 16: c->open_ns = -5; return "breaker open_ns: -5 is not positive";
    case 17: c->half_open_calls = 0; return "breaker half_open_calls: 0 is outside 1..1000000";
    case 18: c->half_open_calls = 1000001; return "breaker half_open_calls: 1000001 is outside 1..1000000";
    case 19: c->half_open_max_ns = -1; return "breaker half_open_max_ns: -1 is negative";
    case 20: c->max_in_flight = -1; return "breaker max_in_flight: -1 is outside 0..1048576";
    case 21: c->max_in_flight = (1 << 20) + 1; return "breaker max_in_flight: 1048577 is outside 0..1048576";
    default: return NULL;
    }
}

SL_TEST(cb_config_errors_name_the_field)
{
    sl_cb_config cfg;
    const char *want;
    int n = 0;
    for (int i = 0; (want = bad_config(i, &cfg)) != NULL; i++, n++) {
        sl_cb *cb = (sl_cb *)&cfg;
        char err[160] = "";
        int rc = sl_cb_new(&cfg, &cb, err, sizeof err);
        if (rc != SL_RES_E_INVALID) sl_test_fail(__FILE__, __LINE__, "bad config %d accepted (%d)", i, rc);
        if (cb != NULL) sl_test_fail(__FILE__, __LINE__, "bad config %d: *out not NULL", i);
        if (strcmp(err, want) != 0) sl_test_fail(__FILE__, __LINE__, "bad config %d: \"%s\", want \"%s\"", i, err, want);
        SL_CHECK_INT(sl_cb_new(&cfg, &cb, NULL, 0), SL_RES_E_INVALID); /* err may be NULL */
        char tiny[8];
        SL_CHECK_INT(sl_cb_new(&cfg, &cb, tiny, sizeof tiny), SL_RES_E_INVALID); /* and short: truncated */
        SL_CHECK_INT(strlen(tiny), sizeof tiny - 1);
    }
    SL_CHECK_INT(n, 22);
}

SL_TEST(cb_config_edge_values_are_accepted)
{
    sl_cb_config cfg;
    sl_cb *cb;
    for (int i = 0; i < 8; i++) {
        sl_cb_config_default(&cfg);
        switch (i) {
        case 0: cfg.window = 1; cfg.min_calls = 1; break;
        case 1: cfg.window = 1000000; break;
        case 2: cfg.mode = SL_CB_TIME_WINDOW; cfg.window = 3600; cfg.min_calls = 1000000; break;
        case 3: cfg.failure_rate = 0; cfg.slow_rate = 0; break;
        case 4: cfg.failure_rate = 100; cfg.slow_rate = 100; cfg.slow_ns = 1; cfg.open_ns = 1; break;
        case 5: cfg.max_in_flight = 0; cfg.half_open_calls = 1; cfg.half_open_max_ns = 0; break;
        /* CONSECUTIVE has no window nor min_calls; the others have no consecutive_failures. */
        case 6: cfg.mode = SL_CB_CONSECUTIVE; cfg.window = 0; cfg.min_calls = 0; break;
        case 7: cfg.consecutive_failures = 0; cfg.half_open_calls = 1000000; cfg.max_in_flight = 1 << 20; break;
        }
        char err[160] = "";
        int rc = sl_cb_new(&cfg, &cb, err, sizeof err);
        if (rc) sl_test_fail(__FILE__, __LINE__, "edge config %d refused: %s", i, err);
        sl_cb_free(cb);
    }
}

/* ---- CLOSED -> OPEN ---- */

SL_TEST(cb_count_opens_at_exactly_the_failure_rate)
{
    sl_cb *cb = make_mode(SL_CB_COUNT_WINDOW);
    calls(cb, 6, SL_RES_SUCCESS);
    for (int i = 0; i < 3; i++) {
        SL_CHECK_OK(call(cb, SL_RES_FAILURE, MS));
        sl_cb_stats st = stats(cb);
        SL_CHECK_INT(st.state, SL_CB_CLOSED);
        CHECK_RATE(st.failure_rate, -1); /* 7..9 calls: below min_calls, no verdict */
        CHECK_RATE(st.slow_rate, -1);
    }
    SL_CHECK_OK(call(cb, SL_RES_FAILURE, MS)); /* 4 of 10: 40% */
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_CLOSED);
    CHECK_RATE(st.failure_rate, 40);
    CHECK_RATE(st.slow_rate, 0);
    SL_CHECK_INT(st.calls, 10);
    /* The window is the last 10: this failure pushes out the first success, 5 of 10 = 50%, the threshold. */
    SL_CHECK_OK(call(cb, SL_RES_FAILURE, MS));
    st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_OPEN);
    CHECK_RATE(st.failure_rate, 50);
    SL_CHECK_INT(st.calls, 10);
    SL_CHECK_INT(st.failures, 5);
    SL_CHECK_INT(st.successes, 5);
    SL_CHECK_INT(st.not_permitted_since_ns, now_ns());
    SL_CHECK_STR(changes(), "CLOSED>OPEN");
    sl_cb_free(cb);

    /* A fractional threshold: 1 failure of 3 is 33.33..%, at or above 33.3, below 33.34. */
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    cfg.window = 3;
    cfg.failure_rate = 33.34;
    cb = make(&cfg);
    calls(cb, 2, SL_RES_SUCCESS);
    calls(cb, 1, SL_RES_FAILURE);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    sl_cb_free(cb);
    cfg.failure_rate = 33.3;
    cb = make(&cfg);
    calls(cb, 2, SL_RES_SUCCESS);
    calls(cb, 1, SL_RES_FAILURE);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN);
    sl_cb_free(cb);
}

SL_TEST(cb_min_calls_first_and_capped_at_a_count_window)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    cfg.min_calls = 4;
    sl_cb *cb = make(&cfg);
    calls(cb, 3, SL_RES_FAILURE); /* 100% failures, but 3 calls: no verdict */
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    CHECK_RATE(stats(cb).failure_rate, -1);
    calls(cb, 1, SL_RES_FAILURE);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN);
    sl_cb_free(cb);

    /* min_calls 50 with a window of 5: the window can never hold 50, so it counts as 5 (as Resilience4j). */
    cfg.window = 5;
    cfg.min_calls = 50;
    cb = make(&cfg);
    calls(cb, 4, SL_RES_FAILURE);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    CHECK_RATE(stats(cb).failure_rate, -1);
    calls(cb, 1, SL_RES_FAILURE);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN);
    CHECK_RATE(stats(cb).failure_rate, 100);
    sl_cb_free(cb);

    /* A TIME window's min_calls is not capped: 49 failures in its 10 s are no verdict, the 50th is. */
    config(&cfg, SL_CB_TIME_WINDOW);
    cfg.min_calls = 50;
    cb = make(&cfg);
    calls(cb, 49, SL_RES_FAILURE);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    CHECK_RATE(stats(cb).failure_rate, -1);
    calls(cb, 1, SL_RES_FAILURE);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN);
    sl_cb_free(cb);
}

SL_TEST(cb_opens_on_the_slow_rate)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    cfg.window = 5;
    cfg.min_calls = 5;
    cfg.failure_rate = 0; /* not used: only slowness opens it here */
    cfg.slow_rate = 60;
    sl_cb *cb = make(&cfg);
    SL_CHECK_OK(call(cb, SL_RES_SUCCESS, 2 * S)); /* slow */
    SL_CHECK_OK(call(cb, SL_RES_SUCCESS, 1 * S)); /* exactly slow_ns: not slow */
    SL_CHECK_OK(call(cb, SL_RES_SUCCESS, MS));
    SL_CHECK_OK(call(cb, SL_RES_FAILURE, 2 * S)); /* a slow failure is both */
    SL_CHECK_OK(call(cb, SL_RES_FAILURE, MS));
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_CLOSED);
    SL_CHECK_INT(st.slow, 2);
    SL_CHECK_INT(st.failures, 2);
    CHECK_RATE(st.slow_rate, 40);
    CHECK_RATE(st.failure_rate, 40);
    /* A slow call in, the first (slow) one out: still 2 of 5. */
    SL_CHECK_OK(call(cb, SL_RES_SUCCESS, S + 1));
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    CHECK_RATE(stats(cb).slow_rate, 40);
    /* A slow call in, the 1 s one out: 3 of 5 = 60%, the threshold. */
    SL_CHECK_OK(call(cb, SL_RES_SUCCESS, S + 1));
    st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_OPEN);
    CHECK_RATE(st.slow_rate, 60);
    SL_CHECK_STR(changes(), "CLOSED>OPEN");
    sl_cb_free(cb);

    /* failure_rate 0 is "not used": 100% failures never open it. */
    cfg.slow_rate = 100;
    cb = make(&cfg);
    calls(cb, 20, SL_RES_FAILURE);
    st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_CLOSED);
    CHECK_RATE(st.failure_rate, 100);
    sl_cb_free(cb);
}

/* A dependency where every call hangs opens the breaker, although no call returns. */
SL_TEST(cb_calls_in_flight_past_slow_ns_count_as_slow)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    cfg.window = 5;
    cfg.min_calls = 5;
    sl_cb *cb = make(&cfg);
    sl_cb_permit p[5];
    for (int i = 0; i < 5; i++) acquire_ok(cb, &p[i]);
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.in_flight, 5);
    SL_CHECK_INT(st.in_flight_slow, 0);
    CHECK_RATE(st.slow_rate, -1);
    tick(1 * S); /* exactly slow_ns: not yet */
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    SL_CHECK_INT(stats(cb).in_flight_slow, 0);
    tick(1);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN);
    SL_CHECK_STR(changes(), "CLOSED>OPEN");
    st = stats(cb);
    CHECK_RATE(st.slow_rate, 100); /* what opened it: 5 in-flight slow calls */
    CHECK_RATE(st.failure_rate, 0);
    SL_CHECK_INT(st.calls, 0);
    SL_CHECK_INT(st.in_flight, 0); /* they belong to the CLOSED generation */
    SL_CHECK_INT(st.in_flight_slow, 0);
    /* When they finally return, they are ignored: OPEN keeps the counts that opened it. */
    for (int i = 0; i < 5; i++) sl_cb_release(cb, &p[i], SL_RES_FAILURE);
    st = stats(cb);
    SL_CHECK_INT(st.calls, 0);
    SL_CHECK_INT(st.failures, 0);
    CHECK_RATE(st.slow_rate, 100);
    sl_cb_free(cb);

    /* Stats queries alone (no acquire, no release) see it too. */
    cb = make(&cfg);
    for (int i = 0; i < 5; i++) acquire_ok(cb, &p[i]);
    tick(S + 1);
    SL_CHECK_INT(stats(cb).state, SL_CB_OPEN);
    sl_cb_free(cb);
}

/* Calls started at different times turn slow one by one, released in any order (the cursor over the list). */
SL_TEST(cb_in_flight_slow_calls_turn_slow_in_start_order)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    cfg.window = 5;
    cfg.min_calls = 4;
    cfg.failure_rate = 0;
    sl_cb *cb = make(&cfg);
    int64_t t = now_ns();
    sl_cb_permit p[5];
    for (int i = 0; i < 4; i++) {
        set_time(t + i * 250 * MS);
        acquire_ok(cb, &p[i]);
    }
    set_time(t + S + 1);
    SL_CHECK_INT(stats(cb).in_flight_slow, 1);
    set_time(t + 1250 * MS + 1);
    SL_CHECK_INT(stats(cb).in_flight_slow, 2);
    sl_cb_release(cb, &p[1], SL_RES_SUCCESS); /* slow, behind the cursor: 1 s + 1 ns */
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.in_flight_slow, 1);
    SL_CHECK_INT(st.slow, 1);
    SL_CHECK_INT(st.in_flight, 3);
    CHECK_RATE(st.slow_rate, -1); /* 1 call + 1 in-flight slow < min_calls 4 */
    set_time(t + 1500 * MS + 1);
    SL_CHECK_INT(stats(cb).in_flight_slow, 2);
    sl_cb_release(cb, &p[3], SL_RES_SUCCESS); /* the cursor's own call, and the list's tail: 750 ms, not slow */
    st = stats(cb);
    SL_CHECK_INT(st.in_flight_slow, 2);
    SL_CHECK_INT(st.calls, 2);
    SL_CHECK_INT(st.slow, 1);
    CHECK_RATE(st.slow_rate, 75); /* (1 + 2) of (2 + 2) */
    acquire_ok(cb, &p[4]);        /* starts after the cursor ran off the end */
    set_time(t + 2500 * MS + 1);
    SL_CHECK_INT(stats(cb).in_flight_slow, 2);
    set_time(t + 2500 * MS + 2);
    st = stats(cb);
    SL_CHECK_INT(st.in_flight_slow, 3);
    CHECK_RATE(st.slow_rate, 80); /* (1 + 3) of (2 + 3) */
    SL_CHECK_INT(st.state, SL_CB_CLOSED);
    sl_cb_release(cb, &p[0], SL_RES_FAILURE);
    sl_cb_release(cb, &p[2], SL_RES_FAILURE);
    sl_cb_release(cb, &p[4], SL_RES_SUCCESS);
    st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_CLOSED);
    SL_CHECK_INT(st.in_flight, 0);
    SL_CHECK_INT(st.in_flight_slow, 0);
    SL_CHECK_INT(st.calls, 5);
    SL_CHECK_INT(st.slow, 4);
    SL_CHECK_INT(st.failures, 2);
    CHECK_RATE(st.slow_rate, 80);
    /* A slow call pushes out a slow one (80%), the next pushes out the fast one: the last 5 all slow. */
    SL_CHECK_OK(call(cb, SL_RES_SUCCESS, 2 * S));
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    SL_CHECK_OK(call(cb, SL_RES_SUCCESS, 2 * S));
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN);
    CHECK_RATE(stats(cb).slow_rate, 100);
    sl_cb_free(cb);
}

/* Threads read the clock before taking the lock, so starts can reach the list out of order (here: a clock
   that steps back). A later-listed call takes the earlier one's start as its key: it can turn slow a few ns
   late, never early, and the counts stay exact. */
SL_TEST(cb_out_of_order_starts_turn_slow_late_never_early)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    cfg.slow_rate = 0;
    sl_cb *cb = make(&cfg);
    sl_cb_permit p0, p1;
    set_time(T0 + 10);
    acquire_ok(cb, &p0);
    set_time(T0);
    acquire_ok(cb, &p1);
    set_time(T0 + S + 5);
    sl_cb_release(cb, &p0, SL_RES_SUCCESS); /* out for S - 5: not slow */
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.slow, 0);
    SL_CHECK_INT(st.in_flight_slow, 0); /* p1 is S + 5 old, but keyed at T0 + 10 */
    set_time(T0 + S + 10);
    SL_CHECK_INT(stats(cb).in_flight_slow, 0);
    set_time(T0 + S + 11);
    SL_CHECK_INT(stats(cb).in_flight_slow, 1);
    sl_cb_release(cb, &p1, SL_RES_SUCCESS); /* its own duration is from its real start */
    st = stats(cb);
    SL_CHECK_INT(st.in_flight_slow, 0);
    SL_CHECK_INT(st.slow, 1);
    SL_CHECK_INT(st.calls, 2);
    sl_cb_free(cb);
}

/* ---- TIME window ---- */

SL_TEST(cb_time_window_forgets_calls_after_window_seconds)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_TIME_WINDOW);
    cfg.min_calls = 4;
    /* 4 successes and 3 failures in second 0 of the breaker's clock (43%). One more failure while they are
       in the window opens it (4 of 8); once they have left, it is 1 call, no verdict. The window is the
       seconds [s - 9, s]: second 0 leaves when second 10 begins. */
    for (int at_edge = 0; at_edge < 2; at_edge++) {
        sl_cb *cb = make(&cfg);
        set_time(T0 + 500 * MS);
        calls(cb, 4, SL_RES_SUCCESS);
        calls(cb, 3, SL_RES_FAILURE);
        sl_cb_stats st = stats(cb);
        SL_CHECK_INT(st.state, SL_CB_CLOSED);
        CHECK_RATE(st.failure_rate, 300.0 / 7);
        set_time(T0 + 10 * S - (at_edge ? 0 : 2 * MS)); /* the call below takes 1 ms */
        st = stats(cb);
        SL_CHECK_INT(st.calls, at_edge ? 0 : 7);
        SL_CHECK_INT(st.failures, at_edge ? 0 : 3);
        calls(cb, 1, SL_RES_FAILURE);
        st = stats(cb);
        SL_CHECK_INT(st.state, at_edge ? SL_CB_CLOSED : SL_CB_OPEN);
        SL_CHECK_INT(st.calls, at_edge ? 1 : 8);
        CHECK_RATE(st.failure_rate, at_edge ? -1 : 50);
        SL_CHECK_STR(changes(), at_edge ? "" : "CLOSED>OPEN");
        sl_cb_free(cb);
    }

    /* A jump of many windows clears every bucket: nothing old shows up again in a reused one. */
    sl_cb *cb = make(&cfg);
    calls(cb, 3, SL_RES_SUCCESS);
    set_time(T0 + 3 * S);
    calls(cb, 2, SL_RES_SUCCESS);
    set_time(T0 + 100 * S + 200 * MS); /* bucket 100 % 10 = 0, where second 0 was */
    SL_CHECK_INT(stats(cb).calls, 0);
    calls(cb, 1, SL_RES_FAILURE);
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.calls, 1);
    SL_CHECK_INT(st.successes, 0);
    set_time(T0 + 103 * S);
    SL_CHECK_INT(stats(cb).calls, 1);
    sl_cb_free(cb);
}

/* Successes leaving the window raise the failure rate: the breaker opens at a query, with no call. */
SL_TEST(cb_time_window_sliding_alone_can_open)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_TIME_WINDOW);
    cfg.min_calls = 3;
    sl_cb *cb = make(&cfg);
    calls(cb, 4, SL_RES_SUCCESS);
    set_time(T0 + 5 * S);
    calls(cb, 3, SL_RES_FAILURE); /* 3 of 7 */
    set_time(T0 + 10 * S - 1);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    CHECK_RATE(stats(cb).failure_rate, 300.0 / 7);
    set_time(T0 + 10 * S);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN);
    SL_CHECK_STR(changes(), "CLOSED>OPEN");
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.calls, 3);
    CHECK_RATE(st.failure_rate, 100);
    SL_CHECK_INT(st.not_permitted_since_ns, T0 + 10 * S);
    sl_cb_free(cb);
}

/* ---- OPEN: refusals, retry-after, HALF_OPEN at the next call or query ---- */

SL_TEST(cb_open_refuses_with_retry_after_until_open_ns)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    cfg.window = 4;
    cfg.min_calls = 4;
    sl_cb *cb = make(&cfg);
    open_it(cb, &cfg);
    int64_t opened = now_ns();
    CHECK_REFUSED(cb, 10 * S);
    tick(3 * S);
    CHECK_REFUSED(cb, 7 * S);
    sl_cb_permit p;
    SL_CHECK_INT(sl_cb_acquire(cb, &p, NULL), SL_RES_E_OPEN); /* retry_after may be NULL */
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_OPEN);
    SL_CHECK_INT(st.rejected, 3);
    SL_CHECK_INT(st.not_permitted_since_ns, opened);
    SL_CHECK_INT(st.calls, 4);
    SL_CHECK_INT(st.in_flight, 0);
    set_time(opened + 10 * S - 1);
    CHECK_REFUSED(cb, 1);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN);
    tick(1); /* open_ns passed: HALF_OPEN, seen at this query */
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_HALF_OPEN);
    SL_CHECK_STR(changes(), "CLOSED>OPEN,OPEN>HALF_OPEN");
    st = stats(cb);
    SL_CHECK_INT(st.not_permitted_since_ns, 0);
    SL_CHECK_INT(st.calls, 0);
    SL_CHECK_INT(st.rejected, 4); /* a total, kept across states */
    CHECK_RATE(st.failure_rate, -1);
    sl_cb_free(cb);

    /* Seen at the next acquire, however late: that acquire is the first probe. */
    cb = make(&cfg);
    open_it(cb, &cfg);
    tick(25 * S);
    acquire_ok(cb, &p);
    SL_CHECK_STR(changes(), "CLOSED>OPEN,OPEN>HALF_OPEN");
    SL_CHECK(p.slot >= 0);
    SL_CHECK_INT(stats(cb).in_flight, 1);
    sl_cb_release(cb, &p, SL_RES_SUCCESS);
    SL_CHECK_INT(stats(cb).successes, 1);
    sl_cb_free(cb);
}

/* An open_ns or half_open_max_ns near INT64_MAX ("until forced") must not overflow into "retry now". */
SL_TEST(cb_retry_after_with_a_huge_open_ns)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    cfg.open_ns = INT64_MAX;
    sl_cb *cb = make(&cfg);
    open_it(cb, &cfg);
    tick(3 * S);
    CHECK_REFUSED(cb, INT64_MAX - 3 * S);
    tick(1000000 * S);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN);
    sl_cb_free(cb);

    cfg.open_ns = 10 * S;
    cfg.half_open_max_ns = INT64_MAX;
    cfg.half_open_calls = 1;
    cfg.slow_rate = 0; /* the probe stays out 2 s */
    cb = make(&cfg);
    open_it(cb, &cfg);
    to_half_open(cb, &cfg);
    sl_cb_permit p;
    acquire_ok(cb, &p);
    tick(2 * S);
    CHECK_REFUSED(cb, INT64_MAX - 2 * S);
    sl_cb_free(cb);
}

/* ---- HALF_OPEN ---- */

SL_TEST(cb_half_open_admits_exactly_its_probes_then_closes)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    sl_cb *cb = make(&cfg);
    open_it(cb, &cfg);
    to_half_open(cb, &cfg);
    sl_cb_permit p[3];
    for (int i = 0; i < 3; i++) acquire_ok(cb, &p[i]);
    CHECK_REFUSED(cb, 10 * S); /* the 4th: refused; a probe round is given open_ns */
    tick(500 * MS);
    CHECK_REFUSED(cb, 9500 * MS);
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_HALF_OPEN);
    SL_CHECK_INT(st.in_flight, 3);
    SL_CHECK_INT(st.rejected, 2);
    SL_CHECK_INT(st.not_permitted_since_ns, 0);
    sl_cb_release(cb, &p[0], SL_RES_SUCCESS);
    st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_HALF_OPEN);
    SL_CHECK_INT(st.calls, 1);
    CHECK_RATE(st.failure_rate, 0); /* over the probes: no min_calls */
    CHECK_RATE(st.slow_rate, 0);
    sl_cb_release(cb, &p[1], SL_RES_SUCCESS);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_HALF_OPEN);
    CHECK_REFUSED(cb, 9500 * MS); /* two probes done, none given back */
    sl_cb_release(cb, &p[2], SL_RES_SUCCESS);
    st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_CLOSED);
    SL_CHECK_INT(st.calls, 0);
    SL_CHECK_INT(st.in_flight, 0);
    CHECK_RATE(st.failure_rate, -1);
    SL_CHECK_STR(changes(), "CLOSED>OPEN,OPEN>HALF_OPEN,HALF_OPEN>CLOSED");
    /* A fresh window: min_calls again before any verdict. */
    calls(cb, 9, SL_RES_FAILURE);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    calls(cb, 1, SL_RES_FAILURE);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN);
    sl_cb_free(cb);
}

/* Probes that hang, with no half_open_max_ns: the refusal's retry-after never says "now". */
SL_TEST(cb_half_open_refusal_never_says_retry_now)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    cfg.slow_rate = 0; /* hanging probes never decide */
    sl_cb *cb = make(&cfg);
    open_it(cb, &cfg);
    to_half_open(cb, &cfg);
    sl_cb_permit p[3];
    for (int i = 0; i < 3; i++) acquire_ok(cb, &p[i]);
    tick(9 * S);
    CHECK_REFUSED(cb, 1 * S);
    tick(1 * S);
    CHECK_REFUSED(cb, 10 * S); /* the round's open_ns is over: another open_ns */
    tick(123 * S);
    CHECK_REFUSED(cb, 10 * S);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_HALF_OPEN);
    for (int i = 0; i < 3; i++) sl_cb_release(cb, &p[i], SL_RES_SUCCESS);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    sl_cb_free(cb);
}

SL_TEST(cb_half_open_failing_probes_reopen_as_soon_as_certain)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    cfg.half_open_calls = 4;
    sl_cb *cb = make(&cfg);
    open_it(cb, &cfg);
    to_half_open(cb, &cfg);
    sl_cb_permit p[4];
    for (int i = 0; i < 4; i++) acquire_ok(cb, &p[i]);
    sl_cb_release(cb, &p[0], SL_RES_FAILURE); /* 1 of 4: 25% at most so far */
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_HALF_OPEN);
    sl_cb_release(cb, &p[1], SL_RES_SUCCESS);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_HALF_OPEN);
    sl_cb_release(cb, &p[2], SL_RES_FAILURE); /* 2 of 4 whatever the last one does: 50% */
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_OPEN);
    SL_CHECK_INT(st.calls, 3);
    SL_CHECK_INT(st.failures, 2);
    CHECK_RATE(st.failure_rate, 200.0 / 3);
    SL_CHECK_INT(st.not_permitted_since_ns, now_ns());
    SL_CHECK_STR(changes(), "CLOSED>OPEN,OPEN>HALF_OPEN,HALF_OPEN>OPEN");
    CHECK_REFUSED(cb, 10 * S);
    sl_cb_release(cb, &p[3], SL_RES_FAILURE); /* the last probe: an older generation, ignored */
    SL_CHECK_INT(stats(cb).calls, 3);
    sl_cb_free(cb);

    /* 3 probes at 50%: 1.5 failures, so 1 failure closes, 2 reopen. */
    cfg.half_open_calls = 3;
    cb = make(&cfg);
    open_it(cb, &cfg);
    to_half_open(cb, &cfg);
    calls(cb, 1, SL_RES_FAILURE);
    calls(cb, 2, SL_RES_SUCCESS);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    sl_cb_free(cb);
    cb = make(&cfg);
    open_it(cb, &cfg);
    to_half_open(cb, &cfg);
    calls(cb, 2, SL_RES_FAILURE);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN);
    sl_cb_free(cb);

    /* Slow probes: at 50% of 2 probes, one slow probe reopens. */
    cfg.half_open_calls = 2;
    cfg.slow_rate = 50;
    cb = make(&cfg);
    open_it(cb, &cfg);
    to_half_open(cb, &cfg);
    SL_CHECK_OK(call(cb, SL_RES_SUCCESS, 2 * S));
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN);
    sl_cb_free(cb);

    /* Hanging probes reopen it without returning. */
    cfg.slow_rate = 100;
    cb = make(&cfg);
    open_it(cb, &cfg);
    to_half_open(cb, &cfg);
    for (int i = 0; i < 2; i++) acquire_ok(cb, &p[i]);
    tick(S);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_HALF_OPEN);
    tick(1);
    st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_OPEN);
    CHECK_RATE(st.slow_rate, 100);
    SL_CHECK_INT(st.calls, 0);
    SL_CHECK_STR(changes(), "CLOSED>OPEN,OPEN>HALF_OPEN,HALF_OPEN>OPEN");
    sl_cb_free(cb);
}

SL_TEST(cb_half_open_max_time_reopens)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    cfg.half_open_max_ns = 5 * S;
    cfg.slow_rate = 0;
    sl_cb *cb = make(&cfg);
    open_it(cb, &cfg);
    tick(12 * S);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_HALF_OPEN);
    int64_t half_open_at = now_ns(); /* HALF_OPEN began when it was seen, 2 s late: its limit counts from here */
    sl_cb_permit p[3];
    for (int i = 0; i < 3; i++) acquire_ok(cb, &p[i]);
    CHECK_REFUSED(cb, 5 * S); /* HALF_OPEN ends (to OPEN) in 5 s */
    tick(5 * S - 1);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_HALF_OPEN);
    CHECK_REFUSED(cb, 1);
    tick(1);
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_OPEN);
    SL_CHECK_INT(st.not_permitted_since_ns, half_open_at + 5 * S);
    SL_CHECK_INT(st.calls, 0);
    CHECK_RATE(st.failure_rate, 0); /* over the 3 probes, in flight past slow_ns: counted, none failed */
    CHECK_RATE(st.slow_rate, 100);  /* though slow_rate 0 does not decide */
    SL_CHECK_STR(changes(), "CLOSED>OPEN,OPEN>HALF_OPEN,HALF_OPEN>OPEN");
    for (int i = 0; i < 3; i++) sl_cb_release(cb, &p[i], SL_RES_SUCCESS); /* too late: ignored */
    SL_CHECK_INT(stats(cb).calls, 0);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN);
    tick(10 * S);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_HALF_OPEN);
    calls(cb, 3, SL_RES_SUCCESS);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    sl_cb_free(cb);
}

SL_TEST(cb_ignored_calls_take_no_place)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    cfg.half_open_calls = 2;
    sl_cb *cb = make(&cfg);
    calls(cb, 20, SL_RES_IGNORED);
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.calls, 0);
    SL_CHECK_INT(st.ignored, 20);
    CHECK_RATE(st.failure_rate, -1);
    open_it(cb, &cfg); /* 10 failures, the ignored calls took none of the 10 places */
    to_half_open(cb, &cfg);
    SL_CHECK_INT(stats(cb).ignored, 0); /* since the state began */
    sl_cb_permit p[3];
    acquire_ok(cb, &p[0]);
    acquire_ok(cb, &p[1]);
    CHECK_REFUSED(cb, 10 * S);
    sl_cb_release(cb, &p[0], SL_RES_IGNORED); /* gives its probe back */
    st = stats(cb);
    SL_CHECK_INT(st.ignored, 1);
    SL_CHECK_INT(st.in_flight, 1);
    SL_CHECK_INT(st.calls, 0);
    acquire_ok(cb, &p[2]);
    CHECK_REFUSED(cb, 10 * S);
    sl_cb_release(cb, &p[1], SL_RES_SUCCESS);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_HALF_OPEN);
    sl_cb_release(cb, &p[2], SL_RES_SUCCESS);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    sl_cb_free(cb);
}

/* ---- CONSECUTIVE ---- */

SL_TEST(cb_consecutive_failures_open_and_a_success_resets_the_run)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_CONSECUTIVE);
    sl_cb *cb = make(&cfg);
    calls(cb, 2, SL_RES_FAILURE);
    calls(cb, 1, SL_RES_SUCCESS);
    calls(cb, 2, SL_RES_FAILURE);
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_CLOSED);
    SL_CHECK_INT(st.calls, 5);
    SL_CHECK_INT(st.failures, 4);
    CHECK_RATE(st.failure_rate, 80); /* for the stats only; no min_calls in this mode */
    calls(cb, 1, SL_RES_IGNORED);    /* neither breaks nor extends the run */
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    calls(cb, 1, SL_RES_FAILURE);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN);
    /* HALF_OPEN: one failing probe reopens, although two probes are left. */
    to_half_open(cb, &cfg);
    calls(cb, 1, SL_RES_SUCCESS);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_HALF_OPEN);
    calls(cb, 1, SL_RES_FAILURE);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN);
    to_half_open(cb, &cfg);
    calls(cb, 3, SL_RES_SUCCESS);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    SL_CHECK_STR(changes(), "CLOSED>OPEN,OPEN>HALF_OPEN,HALF_OPEN>OPEN,OPEN>HALF_OPEN,HALF_OPEN>CLOSED");
    /* The run starts again from zero after closing. */
    calls(cb, 2, SL_RES_FAILURE);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    sl_cb_free(cb);

    /* Slowness and rates play no part: slow calls and hanging calls never open it. */
    cfg.consecutive_failures = 1;
    cb = make(&cfg);
    for (int i = 0; i < 20; i++) SL_CHECK_OK(call(cb, SL_RES_SUCCESS, 2 * S));
    sl_cb_permit p[4];
    for (int i = 0; i < 4; i++) acquire_ok(cb, &p[i]);
    tick(10 * S);
    st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_CLOSED);
    SL_CHECK_INT(st.in_flight_slow, 4);
    SL_CHECK_INT(st.slow, 20);
    sl_cb_release(cb, &p[0], SL_RES_FAILURE); /* one failure is the run of 1 */
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN);
    sl_cb_free(cb);
}

/* ---- every edge with each window type ---- */

static void full_cycle(sl_cb_mode mode)
{
    sl_cb_config cfg;
    config(&cfg, mode);
    cfg.half_open_max_ns = 30 * S;
    sl_cb *cb = make(&cfg);
    open_it(cb, &cfg);       /* CLOSED>OPEN */
    to_half_open(cb, &cfg);  /* OPEN>HALF_OPEN */
    SL_CHECK_OK(call(cb, SL_RES_FAILURE, MS));
    if (mode != SL_CB_CONSECUTIVE) { /* 50% of 3 probes: the second failure */
        SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_HALF_OPEN);
        SL_CHECK_OK(call(cb, SL_RES_FAILURE, MS));
    }
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN); /* HALF_OPEN>OPEN: the probes */
    to_half_open(cb, &cfg);
    sl_cb_permit p;
    acquire_ok(cb, &p);
    tick(30 * S);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN); /* HALF_OPEN>OPEN: half_open_max_ns */
    sl_cb_release(cb, &p, SL_RES_SUCCESS);
    to_half_open(cb, &cfg);
    calls(cb, 3, SL_RES_SUCCESS);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED); /* HALF_OPEN>CLOSED */
    sl_cb_force(cb, SL_CB_FORCED_OPEN);
    sl_cb_force(cb, SL_CB_FORCED_CLOSED);
    sl_cb_force(cb, SL_CB_DISABLED);
    sl_cb_force(cb, SL_CB_CLOSED);
    open_it(cb, &cfg); /* the rules hold again after forcing */
    sl_cb_force(cb, SL_CB_CLOSED);
    SL_CHECK_STR(changes(), "CLOSED>OPEN,OPEN>HALF_OPEN,HALF_OPEN>OPEN,OPEN>HALF_OPEN,HALF_OPEN>OPEN,"
                            "OPEN>HALF_OPEN,HALF_OPEN>CLOSED,CLOSED>FORCED_OPEN,FORCED_OPEN>FORCED_CLOSED,"
                            "FORCED_CLOSED>DISABLED,DISABLED>CLOSED,CLOSED>OPEN,OPEN>CLOSED");
    sl_cb_free(cb);
}

SL_TEST(cb_every_edge_with_a_count_window) { full_cycle(SL_CB_COUNT_WINDOW); }
SL_TEST(cb_every_edge_with_a_time_window) { full_cycle(SL_CB_TIME_WINDOW); }
SL_TEST(cb_every_edge_with_consecutive_failures) { full_cycle(SL_CB_CONSECUTIVE); }

/* ---- forced states ---- */

SL_TEST(cb_forced_open_refuses_everything_until_forced_back)
{
    sl_cb *cb = make_mode(SL_CB_COUNT_WINDOW);
    calls(cb, 4, SL_RES_FAILURE);
    sl_cb_force(cb, SL_CB_FORCED_OPEN);
    int64_t forced = now_ns();
    CHECK_REFUSED(cb, INT64_MAX);
    tick(3600 * S); /* no timer leaves FORCED_OPEN */
    CHECK_REFUSED(cb, INT64_MAX);
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_FORCED_OPEN);
    SL_CHECK_INT(st.rejected, 2);
    SL_CHECK_INT(st.not_permitted_since_ns, forced);
    SL_CHECK_INT(st.calls, 0); /* counts nothing */
    CHECK_RATE(st.failure_rate, -1);
    sl_cb_force(cb, SL_CB_FORCED_OPEN); /* the same state again: no change to report */
    sl_cb_force(cb, SL_CB_CLOSED);
    st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_CLOSED);
    SL_CHECK_INT(st.calls, 0); /* the 4 failures before forcing are gone */
    SL_CHECK_INT(st.not_permitted_since_ns, 0);
    SL_CHECK_STR(changes(), "CLOSED>FORCED_OPEN,FORCED_OPEN>CLOSED");
    sl_cb_free(cb);
}

SL_TEST(cb_forced_closed_counts_but_never_opens)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    sl_cb *cb = make(&cfg);
    open_it(cb, &cfg);
    sl_cb_force(cb, SL_CB_FORCED_CLOSED);
    calls(cb, 100, SL_RES_FAILURE);
    sl_cb_permit p[10];
    for (int i = 0; i < 10; i++) acquire_ok(cb, &p[i]);
    tick(5 * S);
    tick(cfg.open_ns);
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_FORCED_CLOSED);
    SL_CHECK_INT(st.calls, 10);
    SL_CHECK_INT(st.failures, 10);
    CHECK_RATE(st.failure_rate, 100);
    SL_CHECK_INT(st.in_flight, 10);
    SL_CHECK_INT(st.in_flight_slow, 10);
    CHECK_RATE(st.slow_rate, 50); /* 10 in-flight slow of 20 */
    for (int i = 0; i < 10; i++) sl_cb_release(cb, &p[i], SL_RES_FAILURE);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_FORCED_CLOSED);
    CHECK_RATE(stats(cb).slow_rate, 100);
    /* Forced back to CLOSED: a fresh window, the rules apply again. */
    sl_cb_force(cb, SL_CB_CLOSED);
    SL_CHECK_INT(stats(cb).calls, 0);
    open_it(cb, &cfg);
    SL_CHECK_STR(changes(), "CLOSED>OPEN,OPEN>FORCED_CLOSED,FORCED_CLOSED>CLOSED,CLOSED>OPEN");
    sl_cb_free(cb);

    /* With a TIME window, FORCED_CLOSED still slides. */
    config(&cfg, SL_CB_TIME_WINDOW);
    cb = make(&cfg);
    sl_cb_force(cb, SL_CB_FORCED_CLOSED);
    calls(cb, 5, SL_RES_FAILURE);
    SL_CHECK_INT(stats(cb).calls, 5);
    set_time(T0 + 10 * S);
    SL_CHECK_INT(stats(cb).calls, 0);
    sl_cb_free(cb);
}

SL_TEST(cb_disabled_admits_and_counts_nothing)
{
    sl_cb *cb = make_mode(SL_CB_COUNT_WINDOW);
    calls(cb, 3, SL_RES_FAILURE);
    sl_cb_force(cb, SL_CB_DISABLED);
    calls(cb, 50, SL_RES_FAILURE);
    calls(cb, 5, SL_RES_IGNORED);
    sl_cb_permit p[3];
    for (int i = 0; i < 3; i++) acquire_ok(cb, &p[i]);
    for (int i = 0; i < 3; i++) SL_CHECK_INT(p[i].slot, -1);
    tick(3600 * S);
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_DISABLED);
    SL_CHECK_INT(st.calls + st.successes + st.failures + st.ignored + st.slow, 0);
    SL_CHECK_INT(st.in_flight, 0);
    SL_CHECK_INT(st.in_flight_slow, 0);
    SL_CHECK_INT(st.rejected, 0);
    CHECK_RATE(st.failure_rate, -1);
    CHECK_RATE(st.slow_rate, -1);
    sl_cb_force(cb, SL_CB_CLOSED);
    for (int i = 0; i < 3; i++) sl_cb_release(cb, &p[i], SL_RES_FAILURE); /* from DISABLED: ignored */
    st = stats(cb);
    SL_CHECK_INT(st.calls, 0);
    SL_CHECK_INT(st.in_flight, 0);
    SL_CHECK_STR(changes(), "CLOSED>DISABLED,DISABLED>CLOSED");
    sl_cb_free(cb);
}

SL_TEST(cb_force_from_every_state_and_expired_timers_first)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    sl_cb *cb = make(&cfg);
    calls(cb, 4, SL_RES_FAILURE);
    sl_cb_force(cb, SL_CB_CLOSED); /* CLOSED to CLOSED: a reset, nothing to report */
    SL_CHECK_INT(stats(cb).calls, 0);
    SL_CHECK_STR(changes(), "");
    open_it(cb, &cfg);
    sl_cb_force(cb, SL_CB_FORCED_CLOSED); /* from OPEN */
    sl_cb_force(cb, SL_CB_CLOSED);
    open_it(cb, &cfg);
    to_half_open(cb, &cfg);
    sl_cb_force(cb, SL_CB_DISABLED); /* from HALF_OPEN */
    sl_cb_force(cb, SL_CB_FORCED_OPEN);
    sl_cb_force(cb, SL_CB_DISABLED);
    sl_cb_force(cb, SL_CB_CLOSED);
    SL_CHECK_STR(changes(), "CLOSED>OPEN,OPEN>FORCED_CLOSED,FORCED_CLOSED>CLOSED,CLOSED>OPEN,OPEN>HALF_OPEN,"
                            "HALF_OPEN>DISABLED,DISABLED>FORCED_OPEN,FORCED_OPEN>DISABLED,DISABLED>CLOSED");
    /* Forcing when OPEN's time is up: the call sees OPEN>HALF_OPEN first, then the forced change. */
    nchanges = 0;
    open_it(cb, &cfg);
    tick(cfg.open_ns);
    sl_cb_force(cb, SL_CB_FORCED_OPEN);
    SL_CHECK_STR(changes(), "CLOSED>OPEN,OPEN>HALF_OPEN,HALF_OPEN>FORCED_OPEN");
    sl_cb_free(cb);
}

/* ---- callbacks ---- */

typedef struct cb_probe {
    sl_cb *cb;
    int n;
    sl_cb_state from[16], to[16], seen[16];
    sl_cb_stats st[16];
} cb_probe;

/* Calls back into the breaker: with the lock held this would deadlock (and the alarm below would end the
   test), so it also proves the callback runs outside the lock. */
static void probing_change(void *arg, sl_cb_state from, sl_cb_state to)
{
    cb_probe *pr = arg;
    if (pr->n == 16) sl_test_fail(__FILE__, __LINE__, "too many changes");
    pr->from[pr->n] = from;
    pr->to[pr->n] = to;
    pr->seen[pr->n] = sl_cb_state_now(pr->cb);
    sl_cb_stats_get(pr->cb, &pr->st[pr->n]);
    pr->n++;
}

SL_TEST(cb_state_callbacks_run_in_order_outside_the_lock)
{
    alarm(20);
    cb_probe pr = {0};
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    cfg.on_state = probing_change;
    cfg.on_state_arg = &pr;
    cfg.half_open_calls = 1;
    sl_cb *cb = make(&cfg);
    pr.cb = cb;
    open_it(cb, &cfg);
    to_half_open(cb, &cfg);
    calls(cb, 1, SL_RES_FAILURE);
    to_half_open(cb, &cfg);
    calls(cb, 1, SL_RES_SUCCESS);
    sl_cb_force(cb, SL_CB_FORCED_OPEN);
    sl_cb_force(cb, SL_CB_FORCED_CLOSED);
    sl_cb_force(cb, SL_CB_DISABLED);
    sl_cb_force(cb, SL_CB_CLOSED);
    const sl_cb_state want[][2] = {
        {SL_CB_CLOSED, SL_CB_OPEN},          {SL_CB_OPEN, SL_CB_HALF_OPEN},          {SL_CB_HALF_OPEN, SL_CB_OPEN},
        {SL_CB_OPEN, SL_CB_HALF_OPEN},       {SL_CB_HALF_OPEN, SL_CB_CLOSED},        {SL_CB_CLOSED, SL_CB_FORCED_OPEN},
        {SL_CB_FORCED_OPEN, SL_CB_FORCED_CLOSED}, {SL_CB_FORCED_CLOSED, SL_CB_DISABLED}, {SL_CB_DISABLED, SL_CB_CLOSED},
    };
    SL_CHECK_INT(pr.n, 9);
    for (int i = 0; i < 9; i++) {
        SL_CHECK_INT(pr.from[i], want[i][0]);
        SL_CHECK_INT(pr.to[i], want[i][1]);
        SL_CHECK_INT(pr.seen[i], want[i][1]); /* called after the change */
        SL_CHECK_INT(pr.st[i].state, want[i][1]);
    }
    SL_CHECK_INT(pr.st[0].failures, 10); /* the counts that opened it */
    /* Two changes in one call (an expired OPEN, then forced): both reported, in order, after both are done. */
    pr.n = 0;
    open_it(cb, &cfg);
    tick(cfg.open_ns);
    sl_cb_force(cb, SL_CB_FORCED_OPEN);
    SL_CHECK_INT(pr.n, 3);
    SL_CHECK_INT(pr.from[1], SL_CB_OPEN);
    SL_CHECK_INT(pr.to[1], SL_CB_HALF_OPEN);
    SL_CHECK_INT(pr.from[2], SL_CB_HALF_OPEN);
    SL_CHECK_INT(pr.to[2], SL_CB_FORCED_OPEN);
    SL_CHECK_INT(pr.seen[1], SL_CB_FORCED_OPEN);
    sl_cb_free(cb);
    alarm(0);
}

/* ---- generations ---- */

SL_TEST(cb_permits_of_an_older_generation_are_ignored)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    cfg.window = 4;
    cfg.min_calls = 4;
    cfg.max_in_flight = 2;
    sl_cb *cb = make(&cfg);
    sl_cb_permit a, b, c;
    acquire_ok(cb, &a);
    acquire_ok(cb, &b);
    acquire_ok(cb, &c);
    SL_CHECK(a.slot >= 0 && b.slot >= 0 && a.slot != b.slot);
    SL_CHECK_INT(c.slot, -1); /* beyond max_in_flight */
    open_it(cb, &cfg);
    sl_cb_stats before = stats(cb);
    sl_cb_release(cb, &a, SL_RES_FAILURE);
    sl_cb_release(cb, &b, SL_RES_SUCCESS);
    sl_cb_release(cb, &c, SL_RES_IGNORED);
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.calls, before.calls);
    SL_CHECK_INT(st.failures, before.failures);
    SL_CHECK_INT(st.ignored, before.ignored);
    SL_CHECK_INT(st.in_flight, 0);
    /* Their slots were freed all the same: two probes are tracked again (and turn slow in flight). */
    to_half_open(cb, &cfg);
    sl_cb_permit q[3];
    for (int i = 0; i < 3; i++) acquire_ok(cb, &q[i]);
    SL_CHECK(q[0].slot >= 0 && q[1].slot >= 0);
    SL_CHECK_INT(q[2].slot, -1);
    tick(S + 1);
    st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_HALF_OPEN); /* 2 of 3 probes slow: below 100% */
    SL_CHECK_INT(st.in_flight, 3);
    SL_CHECK_INT(st.in_flight_slow, 2);
    /* A permit from before a forced reset: ignored by the new CLOSED window. */
    sl_cb_force(cb, SL_CB_CLOSED);
    for (int i = 0; i < 3; i++) sl_cb_release(cb, &q[i], SL_RES_FAILURE);
    st = stats(cb);
    SL_CHECK_INT(st.calls, 0);
    SL_CHECK_INT(st.in_flight, 0);
    /* A refused permit released by mistake: ignored too. */
    open_it(cb, &cfg);
    sl_cb_permit r;
    SL_CHECK_INT(sl_cb_acquire(cb, &r, NULL), SL_RES_E_OPEN);
    to_half_open(cb, &cfg);
    sl_cb_release(cb, &r, SL_RES_FAILURE);
    st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_HALF_OPEN);
    SL_CHECK_INT(st.calls, 0);
    SL_CHECK_INT(st.in_flight, 0);
    /* A permit from the previous HALF_OPEN released in the next one: not one of its probes. */
    acquire_ok(cb, &r);
    calls(cb, 1, SL_RES_FAILURE);
    calls(cb, 1, SL_RES_FAILURE); /* 2 of 3: OPEN */
    to_half_open(cb, &cfg);
    sl_cb_release(cb, &r, SL_RES_SUCCESS);
    st = stats(cb);
    SL_CHECK_INT(st.calls, 0);
    for (int i = 0; i < 3; i++) acquire_ok(cb, &q[i]); /* all 3 probes still there */
    sl_cb_free(cb);
}

/* ---- stats ---- */

SL_TEST(cb_stats_report_every_field)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    cfg.min_calls = 4;
    sl_cb *cb = make(&cfg);
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_CLOSED);
    SL_CHECK_INT(st.calls + st.successes + st.failures + st.ignored + st.slow + st.rejected, 0);
    SL_CHECK_INT(st.in_flight + st.in_flight_slow + st.not_permitted_since_ns, 0);
    CHECK_RATE(st.failure_rate, -1);
    CHECK_RATE(st.slow_rate, -1);
    sl_cb_permit h[3];
    acquire_ok(cb, &h[0]);
    acquire_ok(cb, &h[1]);
    SL_CHECK_OK(call(cb, SL_RES_SUCCESS, 2 * S)); /* slow */
    SL_CHECK_OK(call(cb, SL_RES_SUCCESS, MS));
    SL_CHECK_OK(call(cb, SL_RES_FAILURE, MS));
    SL_CHECK_OK(call(cb, SL_RES_IGNORED, MS));
    acquire_ok(cb, &h[2]);
    st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_CLOSED);
    SL_CHECK_INT(st.calls, 3);
    SL_CHECK_INT(st.successes, 2);
    SL_CHECK_INT(st.failures, 1);
    SL_CHECK_INT(st.ignored, 1);
    SL_CHECK_INT(st.slow, 1);
    SL_CHECK_INT(st.rejected, 0);
    SL_CHECK_INT(st.in_flight, 3);
    SL_CHECK_INT(st.in_flight_slow, 2); /* h[0] and h[1], out for 2 s */
    SL_CHECK_INT(st.not_permitted_since_ns, 0);
    CHECK_RATE(st.failure_rate, 100.0 / 3); /* over the calls that returned */
    CHECK_RATE(st.slow_rate, 60);           /* (1 + 2) of (3 + 2) */
    for (int i = 0; i < 3; i++) sl_cb_release(cb, &h[i], SL_RES_SUCCESS);
    st = stats(cb);
    SL_CHECK_INT(st.calls, 6);
    SL_CHECK_INT(st.slow, 3);
    SL_CHECK_INT(st.in_flight, 0);
    SL_CHECK_INT(st.in_flight_slow, 0);
    CHECK_RATE(st.slow_rate, 50);
    sl_cb_free(cb);
}

/* ---- max_in_flight ---- */

SL_TEST(cb_calls_beyond_max_in_flight_are_admitted_untracked)
{
    sl_cb_config cfg;
    config(&cfg, SL_CB_COUNT_WINDOW);
    cfg.window = 5;
    cfg.min_calls = 5;
    cfg.failure_rate = 0;
    cfg.max_in_flight = 2;
    sl_cb *cb = make(&cfg);
    sl_cb_permit p[5];
    for (int i = 0; i < 5; i++) acquire_ok(cb, &p[i]);
    SL_CHECK(p[0].slot >= 0 && p[1].slot >= 0);
    for (int i = 2; i < 5; i++) SL_CHECK_INT(p[i].slot, -1);
    tick(S + 1);
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.in_flight, 5);
    SL_CHECK_INT(st.in_flight_slow, 2); /* only the tracked ones can be seen hanging */
    CHECK_RATE(st.slow_rate, -1);       /* 2 < min_calls */
    /* Untracked calls still count when they return: 1, 2, 3 slow + 2 in flight = 5 of 5 slow. */
    sl_cb_release(cb, &p[2], SL_RES_SUCCESS);
    sl_cb_release(cb, &p[3], SL_RES_SUCCESS);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    st = stats(cb);
    SL_CHECK_INT(st.calls, 2);
    SL_CHECK_INT(st.in_flight, 3);
    sl_cb_release(cb, &p[4], SL_RES_SUCCESS);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_OPEN);
    sl_cb_release(cb, &p[0], SL_RES_SUCCESS);
    sl_cb_release(cb, &p[1], SL_RES_SUCCESS);
    to_half_open(cb, &cfg);
    for (int i = 0; i < 3; i++) acquire_ok(cb, &p[i]);
    SL_CHECK(p[0].slot >= 0 && p[1].slot >= 0); /* their slots came back */
    SL_CHECK_INT(p[2].slot, -1);
    sl_cb_free(cb);

    /* max_in_flight 0: nothing is tracked, everything is counted. */
    cfg.max_in_flight = 0;
    cfg.failure_rate = 50;
    cb = make(&cfg);
    for (int i = 0; i < 5; i++) acquire_ok(cb, &p[i]);
    tick(10 * S);
    st = stats(cb);
    SL_CHECK_INT(st.in_flight, 5);
    SL_CHECK_INT(st.in_flight_slow, 0);
    for (int i = 0; i < 4; i++) sl_cb_release(cb, &p[i], i % 2 ? SL_RES_FAILURE : SL_RES_SUCCESS);
    SL_CHECK_INT(sl_cb_state_now(cb), SL_CB_CLOSED);
    sl_cb_release(cb, &p[4], SL_RES_SUCCESS);
    st = stats(cb);
    SL_CHECK_INT(st.state, SL_CB_OPEN); /* 5 of 5 slow (2 failures of 5: below 50%) */
    CHECK_RATE(st.slow_rate, 100);
    CHECK_RATE(st.failure_rate, 40);
    sl_cb_free(cb);
}

/* ---- a reference model, against random sequences ----
 *
 * The model keeps everything the plain way: the COUNT window as a ring of outcomes summed when asked, the
 * TIME window as a list of (second, outcome) records, every call in flight in a small table scanned at each
 * step (no cursor, no slots: a call is slow once now - start > slow_ns), and it asks for a verdict at every
 * step rather than only when something moved. After each random step (acquire, release with an outcome,
 * time passing, a forced state, a refused permit released by mistake) the breaker's result, retry-after,
 * slot, state changes and every field of its stats must be what the model says. */

#define M_CALLS 6
#define M_RECS 4096
#define M_STEPS 20000

typedef struct m_counts {
    int64_t s, f, slow;
} m_counts;

typedef struct m_call {
    sl_cb_permit p;
    int64_t start;
    uint32_t gen;
    bool live, tracked, marked;
} m_call;

typedef struct model {
    sl_cb_config cfg;
    int32_t min_calls; /* capped at a COUNT window */
    sl_cb_state state;
    uint32_t gen;
    int64_t t0, open_since, ho_since;
    unsigned ring[16];
    int ring_len;
    int64_t rec_sec[M_RECS];
    unsigned rec_out[M_RECS];
    int rec_lo, rec_hi;
    m_counts cur, frozen; /* cur: HALF_OPEN's probes, CONSECUTIVE's counts; frozen: what opened it */
    int64_t frozen_ifs, ifs, ignored, in_flight, probes, rejected, consecutive;
    bool is_window;
    m_call calls[M_CALLS];
    int nchanges;
    sl_cb_state from[8], to[8];
} model;

enum { M_FAIL = 1, M_SLOW = 2 };

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static bool m_counting(sl_cb_state s) { return s == SL_CB_CLOSED || s == SL_CB_FORCED_CLOSED || s == SL_CB_HALF_OPEN; }
static int64_t m_second(const model *m, int64_t now) { return now <= m->t0 ? 0 : (now - m->t0) / S; }

static void m_add(m_counts *c, unsigned out)
{
    if (out & M_FAIL) c->f++;
    else c->s++;
    if (out & M_SLOW) c->slow++;
}

static m_counts m_now(const model *m, int64_t now)
{
    if (m->state == SL_CB_OPEN) return m->frozen;
    if (!m->is_window) return m->cur;
    m_counts c = {0, 0, 0};
    if (m->cfg.mode == SL_CB_COUNT_WINDOW) {
        for (int i = 0; i < m->ring_len; i++) m_add(&c, m->ring[i]);
    } else {
        for (int i = m->rec_lo; i < m->rec_hi; i++)
            if (m->rec_sec[i % M_RECS] > m_second(m, now) - m->cfg.window) m_add(&c, m->rec_out[i % M_RECS]);
    }
    return c;
}

static void m_set(model *m, sl_cb_state to, int64_t now)
{
    sl_cb_state from = m->state;
    if (to == SL_CB_OPEN) {
        m->frozen = m_now(m, now);
        m->frozen_ifs = m->ifs;
    }
    m->state = to;
    m->gen++;
    m->ifs = m->in_flight = m->probes = 0;
    for (int i = 0; i < M_CALLS; i++) m->calls[i].marked = false;
    m->open_since = to == SL_CB_OPEN || to == SL_CB_FORCED_OPEN ? now : 0;
    m->ho_since = to == SL_CB_HALF_OPEN ? now : 0;
    if (to != SL_CB_OPEN) {
        m->cur = (m_counts){0, 0, 0};
        m->ignored = m->consecutive = 0;
        m->ring_len = 0;
        m->rec_lo = m->rec_hi;
        m->is_window = m->cfg.mode != SL_CB_CONSECUTIVE && (to == SL_CB_CLOSED || to == SL_CB_FORCED_CLOSED);
    }
    if (from == to) return;
    if (m->nchanges == 8) sl_test_fail(__FILE__, __LINE__, "model: too many changes in a step");
    m->from[m->nchanges] = from;
    m->to[m->nchanges] = to;
    m->nchanges++;
}

static bool m_at_or_above(double count, double rate, double of) { return rate > 0 && count * 100.0 >= rate * of; }

static void m_verdict(model *m, int64_t now)
{
    const sl_cb_config *c = &m->cfg;
    m_counts k = m_now(m, now);
    if (m->state == SL_CB_CLOSED) {
        bool open;
        if (c->mode == SL_CB_CONSECUTIVE) {
            open = m->consecutive >= c->consecutive_failures;
        } else {
            int64_t counted = k.s + k.f, n = counted + m->ifs;
            open = n >= m->min_calls &&
                   ((counted > 0 && m_at_or_above((double)k.f, c->failure_rate, (double)counted)) ||
                    m_at_or_above((double)(k.slow + m->ifs), c->slow_rate, (double)n));
        }
        if (open) m_set(m, SL_CB_OPEN, now);
    } else if (m->state == SL_CB_HALF_OPEN) {
        double probes = c->half_open_calls;
        bool fail = c->mode == SL_CB_CONSECUTIVE ? k.f > 0
                                                 : m_at_or_above((double)k.f, c->failure_rate, probes) ||
                                                       m_at_or_above((double)(k.slow + m->ifs), c->slow_rate, probes);
        if (fail) m_set(m, SL_CB_OPEN, now);
        else if (k.s + k.f >= c->half_open_calls) m_set(m, SL_CB_CLOSED, now);
    }
}

static void m_advance(model *m, int64_t now)
{
    if (m->state == SL_CB_OPEN && now - m->open_since >= m->cfg.open_ns) {
        m_set(m, SL_CB_HALF_OPEN, now);
        return;
    }
    if (m->state == SL_CB_HALF_OPEN && m->cfg.half_open_max_ns > 0 && now - m->ho_since >= m->cfg.half_open_max_ns) {
        m_set(m, SL_CB_OPEN, now);
        return;
    }
    if (!m_counting(m->state)) return;
    for (int i = 0; i < M_CALLS; i++) {
        m_call *c = &m->calls[i];
        if (c->live && c->tracked && c->gen == m->gen && !c->marked && now - c->start > m->cfg.slow_ns) {
            c->marked = true;
            m->ifs++;
        }
    }
    while (m->rec_lo < m->rec_hi && m->rec_sec[m->rec_lo % M_RECS] <= m_second(m, now) - m->cfg.window) m->rec_lo++;
    m_verdict(m, now);
}

static void m_record(model *m, unsigned out, int64_t now)
{
    if (m->cfg.mode == SL_CB_CONSECUTIVE) {
        m->consecutive = out & M_FAIL ? m->consecutive + 1 : 0;
        m_add(&m->cur, out);
    } else if (m->state == SL_CB_HALF_OPEN) {
        m_add(&m->cur, out);
    } else if (m->cfg.mode == SL_CB_COUNT_WINDOW) {
        if (m->ring_len == m->cfg.window) { /* the oldest leaves */
            m->ring_len--;
            memmove(m->ring, m->ring + 1, (size_t)m->ring_len * sizeof m->ring[0]);
        }
        m->ring[m->ring_len++] = out;
    } else {
        if (m->rec_hi - m->rec_lo == M_RECS) sl_test_fail(__FILE__, __LINE__, "model: TIME record list full");
        m->rec_sec[m->rec_hi % M_RECS] = m_second(m, now);
        m->rec_out[m->rec_hi % M_RECS] = out;
        m->rec_hi++;
    }
}

static int64_t m_retry_after(const model *m, int64_t now)
{
    if (m->state == SL_CB_FORCED_OPEN) return INT64_MAX;
    if (m->state == SL_CB_OPEN) return m->cfg.open_ns - (now - m->open_since);
    if (m->cfg.half_open_max_ns > 0) return m->cfg.half_open_max_ns - (now - m->ho_since);
    int64_t left = m->cfg.open_ns - (now - m->ho_since);
    return left > 0 ? left : m->cfg.open_ns;
}

/* The context of a failing check: seed, step, what the step was. */
static uint64_t m_seed;
static int m_stepno;
static const char *m_op;
#define M_CHECK_INT(got, want)                                                                                 \
    do {                                                                                                       \
        long long g_ = (long long)(got), w_ = (long long)(want);                                               \
        if (g_ != w_)                                                                                          \
            sl_test_fail(__FILE__, __LINE__, "seed %llu step %d (%s): %s = %lld, model %lld",                  \
                         (unsigned long long)m_seed, m_stepno, m_op, #got, g_, w_);                            \
    } while (0)
#define M_CHECK_RATE(got, want)                                                                                \
    do {                                                                                                       \
        double g_ = (got), w_ = (want);                                                                        \
        if (g_ != w_)                                                                                          \
            sl_test_fail(__FILE__, __LINE__, "seed %llu step %d (%s): %s = %.17g, model %.17g",                \
                         (unsigned long long)m_seed, m_stepno, m_op, #got, g_, w_);                            \
    } while (0)

static void m_check(model *m, sl_cb *cb)
{
    int64_t now = now_ns();
    sl_cb_stats st = stats(cb);
    m_advance(m, now); /* stats_get advances too (a no-op right after the step, at the same time) */
    m_counts k = m_now(m, now);
    M_CHECK_INT(st.state, m->state);
    M_CHECK_INT(st.calls, k.s + k.f);
    M_CHECK_INT(st.successes, k.s);
    M_CHECK_INT(st.failures, k.f);
    M_CHECK_INT(st.slow, k.slow);
    M_CHECK_INT(st.ignored, m->ignored);
    M_CHECK_INT(st.rejected, m->rejected);
    M_CHECK_INT(st.in_flight, m->in_flight);
    M_CHECK_INT(st.in_flight_slow, m->ifs);
    M_CHECK_INT(st.not_permitted_since_ns, m->open_since);
    int64_t ifs = m->state == SL_CB_OPEN ? m->frozen_ifs : m->ifs;
    int64_t counted = k.s + k.f, n = counted + ifs;
    double fr = -1, sr = -1;
    if (n > 0 && !(m->is_window && n < m->min_calls)) {
        fr = counted ? 100.0 * (double)k.f / (double)counted : 0;
        sr = 100.0 * (double)(k.slow + ifs) / (double)n;
    }
    M_CHECK_RATE(st.failure_rate, fr);
    M_CHECK_RATE(st.slow_rate, sr);
    M_CHECK_INT(nchanges, m->nchanges);
    for (int i = 0; i < m->nchanges; i++) {
        M_CHECK_INT(ch_from[i], m->from[i]);
        M_CHECK_INT(ch_to[i], m->to[i]);
    }
}

static void m_acquire(model *m, sl_cb *cb, sl_cb_permit *refused, bool *have_refused)
{
    m_call *c = NULL;
    int used = 0;
    for (int i = 0; i < M_CALLS; i++) {
        if (!m->calls[i].live && !c) c = &m->calls[i];
        if (m->calls[i].live && m->calls[i].tracked) used++;
    }
    sl_cb_permit p;
    int64_t ra = -7;
    int rc = sl_cb_acquire(cb, &p, &ra);
    int64_t now = now_ns();
    m_advance(m, now);
    if (m->state == SL_CB_OPEN || m->state == SL_CB_FORCED_OPEN ||
        (m->state == SL_CB_HALF_OPEN && m->probes >= m->cfg.half_open_calls)) {
        m->rejected++;
        M_CHECK_INT(rc, SL_RES_E_OPEN);
        M_CHECK_INT(ra, m_retry_after(m, now));
        M_CHECK_INT(p.slot, -1);
        *refused = p;
        *have_refused = true;
        return;
    }
    M_CHECK_INT(rc, 0);
    M_CHECK_INT(ra, -7);
    *c = (m_call){.p = p, .start = now, .gen = m->gen, .live = true};
    if (m_counting(m->state)) {
        m->in_flight++;
        if (m->state == SL_CB_HALF_OPEN) m->probes++;
        c->tracked = used < m->cfg.max_in_flight;
    }
    M_CHECK_INT(p.slot >= 0, c->tracked);
}

static void m_release(model *m, sl_cb *cb, m_call *c, sl_res_outcome outcome)
{
    sl_cb_release(cb, &c->p, outcome);
    int64_t now = now_ns();
    m_advance(m, now);
    if (c->marked) m->ifs--;
    c->live = false;
    if (c->gen != m->gen || !m_counting(m->state)) return;
    m->in_flight--;
    if (outcome == SL_RES_IGNORED) {
        m->ignored++;
        if (m->state == SL_CB_HALF_OPEN) m->probes--;
        return;
    }
    m_record(m, (outcome == SL_RES_FAILURE ? M_FAIL : 0) | (now - c->start > m->cfg.slow_ns ? M_SLOW : 0), now);
    m_verdict(m, now);
}

static void m_time_step(model *m, uint64_t r)
{
    int64_t into = (now_ns() - m->t0) % S;
    const int64_t steps[] = {1, MS, 100 * MS, 400 * MS, m->cfg.slow_ns, m->cfg.slow_ns + 1, m->cfg.open_ns - 1,
                             m->cfg.open_ns, 2 * S, S - into, S - into - 1};
    int64_t dt = steps[r % (sizeof steps / sizeof steps[0])];
    tick(dt > 0 ? dt : 1);
}

static void m_step(model *m, sl_cb *cb, uint64_t *rng, sl_cb_permit *refused, bool *have_refused)
{
    uint64_t r = rnd(rng);
    int live = 0;
    for (int i = 0; i < M_CALLS; i++) live += m->calls[i].live;
    unsigned what = (unsigned)(r % 100);
    r >>= 8;
    sl_res_outcome outcome = r % 20 < 10 ? SL_RES_SUCCESS : r % 20 < 17 ? SL_RES_FAILURE : SL_RES_IGNORED;
    r >>= 8;
    if (what < 38 && live < M_CALLS) {
        m_op = "acquire";
        m_acquire(m, cb, refused, have_refused);
    } else if (what < 76 && live > 0) {
        m_op = "release";
        int k = (int)(r % (uint64_t)live);
        for (int i = 0; i < M_CALLS; i++)
            if (m->calls[i].live && k-- == 0) m_release(m, cb, &m->calls[i], outcome);
    } else if (what < 95) {
        m_op = "time";
        m_time_step(m, r);
    } else if (what < 98) {
        m_op = "force";
        bool forced = m->state == SL_CB_FORCED_OPEN || m->state == SL_CB_FORCED_CLOSED || m->state == SL_CB_DISABLED;
        const sl_cb_state targets[] = {SL_CB_CLOSED, SL_CB_FORCED_OPEN, SL_CB_FORCED_CLOSED, SL_CB_DISABLED};
        sl_cb_state to = forced ? SL_CB_CLOSED : targets[r % 4];
        sl_cb_force(cb, to);
        m_advance(m, now_ns());
        m_set(m, to, now_ns());
    } else if (*have_refused) {
        m_op = "release a refused permit";
        sl_cb_release(cb, refused, outcome);
        m_advance(m, now_ns());
    } else {
        m_op = "nothing";
    }
}

static void m_configure(model *m, sl_cb_mode mode, uint64_t *rng)
{
    static const double rates[] = {0, 20, 50, 66.7, 100};
    memset(m, 0, sizeof *m);
    sl_cb_config *c = &m->cfg;
    config(c, mode);
    c->window = 1 + (int32_t)(rnd(rng) % (c->mode == SL_CB_TIME_WINDOW ? 5 : 8));
    c->min_calls = 1 + (int32_t)(rnd(rng) % 10);
    c->failure_rate = rates[rnd(rng) % 5];
    c->slow_rate = rates[rnd(rng) % 5];
    c->consecutive_failures = 1 + (int32_t)(rnd(rng) % 4);
    c->half_open_calls = 1 + (int32_t)(rnd(rng) % 4);
    c->half_open_max_ns = rnd(rng) % 2 ? 2 * S : 0;
    c->open_ns = 3 * S;
    c->max_in_flight = (int32_t[]){0, 2, 64}[rnd(rng) % 3];
    m->min_calls = c->mode == SL_CB_COUNT_WINDOW && c->min_calls > c->window ? c->window : c->min_calls;
    m->state = SL_CB_CLOSED;
    m->t0 = T0;
    m->is_window = c->mode != SL_CB_CONSECUTIVE;
}

/* edges[from][to]: the changes the model (and so the breaker) went through, over all seeds of a mode. */
static void run_model(sl_cb_mode mode, uint64_t seed, int64_t edges[6][6])
{
    model m;
    uint64_t rng = seed;
    m_configure(&m, mode, &rng);
    sl_cb *cb = make(&m.cfg);
    m_seed = seed;
    sl_cb_permit refused;
    bool have_refused = false;
    for (m_stepno = 0; m_stepno < M_STEPS; m_stepno++) {
        nchanges = 0;
        m.nchanges = 0;
        m_step(&m, cb, &rng, &refused, &have_refused);
        m_check(&m, cb);
        for (int i = 0; i < m.nchanges; i++) edges[m.from[i]][m.to[i]]++;
    }
    sl_cb_free(cb);
}

static void run_models(sl_cb_mode mode)
{
    int64_t edges[6][6] = {{0}};
    for (uint64_t seed = 1; seed <= 10; seed++) run_model(mode, seed * 1000 + (uint64_t)mode, edges);
    /* Not a vacuous agreement: the sequences went through every edge that is not forced, many times. */
    SL_CHECK(edges[SL_CB_CLOSED][SL_CB_OPEN] >= 50);
    SL_CHECK(edges[SL_CB_OPEN][SL_CB_HALF_OPEN] >= 50);
    SL_CHECK(edges[SL_CB_HALF_OPEN][SL_CB_OPEN] >= 20);
    SL_CHECK(edges[SL_CB_HALF_OPEN][SL_CB_CLOSED] >= 20);
}

SL_TEST(cb_count_window_agrees_with_a_reference_model) { run_models(SL_CB_COUNT_WINDOW); }
SL_TEST(cb_time_window_agrees_with_a_reference_model) { run_models(SL_CB_TIME_WINDOW); }
SL_TEST(cb_consecutive_agrees_with_a_reference_model) { run_models(SL_CB_CONSECUTIVE); }

/* ---- threads ---- */

#define TH_WORKERS 4
#define TH_HELD 4

static _Atomic int64_t th_ops; /* every worker's operations so far */

typedef struct th_worker {
    sl_cb *cb;
    uint64_t seed;
    int ops;              /* at least; and on while *until is 0 (when given) */
    _Atomic int *until;
    bool tick;            /* advance the shared simulated clock */
    int64_t outcomes[3];  /* released, by outcome */
    int64_t refused;
} th_worker;

/* Holds up to TH_HELD permits at once and releases them in random order with random outcomes. */
static void *th_work(void *arg)
{
    th_worker *w = arg;
    sl_cb_permit held[TH_HELD];
    int nheld = 0;
    uint64_t rng = w->seed;
    for (int op = 0; op < w->ops || (w->until && !atomic_load(w->until)); op++) {
        uint64_t r = rnd(&rng);
        atomic_fetch_add_explicit(&th_ops, 1, memory_order_relaxed);
        if (w->tick && r % 4 == 0) tick((int64_t)((r >> 40) % (2 * (uint64_t)MS)));
        if (nheld < TH_HELD && (nheld == 0 || (r & 16))) {
            int rc = sl_cb_acquire(w->cb, &held[nheld], NULL);
            if (rc == 0) nheld++;
            else if (rc == SL_RES_E_OPEN) w->refused++;
            else sl_test_fail(__FILE__, __LINE__, "acquire: %d", rc);
        } else {
            int k = (int)((r >> 8) % (uint64_t)nheld);
            unsigned o = (unsigned)((r >> 20) % 20);
            sl_res_outcome out = o < 9 ? SL_RES_SUCCESS : o < 18 ? SL_RES_FAILURE : SL_RES_IGNORED;
            sl_cb_release(w->cb, &held[k], out);
            w->outcomes[out]++;
            held[k] = held[--nheld];
        }
    }
    while (nheld > 0) {
        sl_cb_release(w->cb, &held[--nheld], SL_RES_SUCCESS);
        w->outcomes[SL_RES_SUCCESS]++;
    }
    return NULL;
}

static void th_run(th_worker *w, sl_cb *cb, int ops, bool tick_clock, _Atomic int *until)
{
    pthread_t t[TH_WORKERS];
    for (int i = 0; i < TH_WORKERS; i++) {
        w[i] = (th_worker){.cb = cb, .seed = 77 + (uint64_t)i * 1000003, .ops = ops, .until = until,
                           .tick = tick_clock};
        SL_CHECK_OK(pthread_create(&t[i], NULL, th_work, &w[i]));
    }
    for (int i = 0; i < TH_WORKERS; i++) SL_CHECK_OK(pthread_join(t[i], NULL));
}

/* FORCED_CLOSED never resets: every outcome from every thread is in the counts, exactly. */
SL_TEST(cb_threads_count_exactly)
{
    const sl_cb_mode modes[] = {SL_CB_COUNT_WINDOW, SL_CB_TIME_WINDOW, SL_CB_CONSECUTIVE};
    for (int m = 0; m < 3; m++) {
        sl_cb_config cfg;
        config(&cfg, modes[m]);
        cfg.window = modes[m] == SL_CB_TIME_WINDOW ? 3600 : 1000000;
        cfg.slow_ns = 3600 * S;
        cfg.max_in_flight = 8; /* fewer than the permits held at once: some calls untracked */
        cfg.clock = (sl_res_clock){0};
        cfg.on_state = NULL;
        sl_cb *cb = make(&cfg);
        sl_cb_force(cb, SL_CB_FORCED_CLOSED);
        th_worker w[TH_WORKERS];
        th_run(w, cb, 100000, false, NULL);
        int64_t sum[3] = {0, 0, 0};
        for (int i = 0; i < TH_WORKERS; i++) {
            for (int o = 0; o < 3; o++) sum[o] += w[i].outcomes[o];
            SL_CHECK_INT(w[i].refused, 0);
        }
        sl_cb_stats st = stats(cb);
        SL_CHECK_INT(st.state, SL_CB_FORCED_CLOSED);
        SL_CHECK_INT(st.successes, sum[SL_RES_SUCCESS]);
        SL_CHECK_INT(st.failures, sum[SL_RES_FAILURE]);
        SL_CHECK_INT(st.ignored, sum[SL_RES_IGNORED]);
        SL_CHECK_INT(st.calls, sum[SL_RES_SUCCESS] + sum[SL_RES_FAILURE]);
        SL_CHECK_INT(st.slow, 0);
        SL_CHECK_INT(st.in_flight, 0);
        SL_CHECK_INT(st.in_flight_slow, 0);
        SL_CHECK_INT(st.rejected, 0);
        SL_CHECK(sum[SL_RES_SUCCESS] > 10000 && sum[SL_RES_FAILURE] > 10000 && sum[SL_RES_IGNORED] > 1000);
        sl_cb_free(cb);
    }
}

typedef struct th_chaos {
    sl_cb *cb;
    _Atomic int64_t edges[6][6];
    _Atomic int bad_edge, done;
    int64_t forced;
    sl_cb_config cfg;
} th_chaos;

static bool natural_edge(sl_cb_state from, sl_cb_state to)
{
    return (from == SL_CB_CLOSED && to == SL_CB_OPEN) || (from == SL_CB_OPEN && to == SL_CB_HALF_OPEN) ||
           (from == SL_CB_HALF_OPEN && (to == SL_CB_CLOSED || to == SL_CB_OPEN));
}

static void check_stats_sane(sl_cb *cb, const sl_cb_config *cfg)
{
    sl_cb_stats st;
    sl_cb_stats_get(cb, &st);
    if (st.in_flight < 0 || st.in_flight_slow < 0 || st.in_flight_slow > st.in_flight ||
        (cfg->mode == SL_CB_COUNT_WINDOW && st.calls > cfg->window) || st.calls != st.successes + st.failures ||
        st.slow > st.calls || st.failure_rate < -1 || st.failure_rate > 100 || st.slow_rate < -1 || st.slow_rate > 100)
        sl_test_fail(__FILE__, __LINE__, "stats out of bounds: in_flight %lld/%lld calls %lld slow %lld rates %g/%g",
                     (long long)st.in_flight, (long long)st.in_flight_slow, (long long)st.calls, (long long)st.slow,
                     st.failure_rate, st.slow_rate);
}

static void chaos_change(void *arg, sl_cb_state from, sl_cb_state to)
{
    th_chaos *c = arg;
    if ((unsigned)from > SL_CB_DISABLED || (unsigned)to > SL_CB_DISABLED || from == to ||
        !(natural_edge(from, to) || to == SL_CB_CLOSED || to == SL_CB_FORCED_OPEN || to == SL_CB_FORCED_CLOSED ||
          to == SL_CB_DISABLED)) {
        atomic_store(&c->bad_edge, 1);
        return;
    }
    atomic_fetch_add(&c->edges[from][to], 1);
    sl_cb_stats st;
    sl_cb_stats_get(c->cb, &st); /* calling back in, from any thread */
}

/* 200 forced changes while the workers run, each followed by a pause; back to CLOSED soon after a forced
   state, so that the breaker also opens and closes by itself in between. */
static void *th_force(void *arg)
{
    th_chaos *c = arg;
    uint64_t rng = 5;
    const sl_cb_state targets[] = {SL_CB_CLOSED, SL_CB_FORCED_OPEN, SL_CB_FORCED_CLOSED, SL_CB_DISABLED};
    for (int i = 0; i < 200; i++) {
        uint64_t r = rnd(&rng);
        sl_cb_state to = sl_cb_state_now(c->cb) == SL_CB_CLOSED ? targets[r % 4] : SL_CB_CLOSED;
        sl_cb_force(c->cb, to);
        c->forced++;
        /* Let the workers make some progress under this state (the stats check takes the lock meanwhile). */
        int64_t until = atomic_load(&th_ops) + 300;
        while (atomic_load(&th_ops) < until) {
            check_stats_sane(c->cb, &c->cfg);
            sched_yield();
        }
    }
    atomic_store(&c->done, 1);
    return NULL;
}

static void chaos(sl_cb_mode mode)
{
    static th_chaos c; /* big: 36 counters */
    memset(&c, 0, sizeof c);
    sl_cb_config cfg;
    config(&cfg, mode);
    cfg.window = mode == SL_CB_TIME_WINDOW ? 1 : 20;
    cfg.min_calls = 5;
    cfg.slow_rate = 80;
    cfg.slow_ns = 3 * MS;
    cfg.open_ns = 10 * MS;
    cfg.half_open_max_ns = 20 * MS;
    cfg.max_in_flight = 6;
    cfg.on_state = chaos_change;
    cfg.on_state_arg = &c;
    sl_cb *cb = make(&cfg);
    c.cb = cb;
    c.cfg = cfg;
    pthread_t forcer;
    SL_CHECK_OK(pthread_create(&forcer, NULL, th_force, &c));
    th_worker w[TH_WORKERS];
    th_run(w, cb, 20000, true, &c.done);
    SL_CHECK_OK(pthread_join(forcer, NULL));
    check_stats_sane(cb, &cfg);
    sl_cb_state final = sl_cb_state_now(cb);
    SL_CHECK_INT(atomic_load(&c.bad_edge), 0);
    /* The changes, in whatever order their callbacks ran, make one path from CLOSED to the final state. */
    for (int x = 0; x < 6; x++) {
        int64_t in = 0, out = 0;
        for (int y = 0; y < 6; y++) {
            in += atomic_load(&c.edges[y][x]);
            out += atomic_load(&c.edges[x][y]);
        }
        SL_CHECK_INT(in - out, (x == (int)final) - (x == SL_CB_CLOSED));
    }
    SL_CHECK(atomic_load(&c.edges[SL_CB_CLOSED][SL_CB_OPEN]) > 0);
    SL_CHECK(atomic_load(&c.edges[SL_CB_OPEN][SL_CB_HALF_OPEN]) > 0);
    SL_CHECK_INT(c.forced, 200);
    sl_cb_stats st = stats(cb);
    SL_CHECK_INT(st.in_flight, 0); /* every permit was released */
    SL_CHECK_INT(st.in_flight_slow, 0);
    int64_t refused = 0;
    for (int i = 0; i < TH_WORKERS; i++) refused += w[i].refused;
    SL_CHECK_INT(st.rejected, refused);
    SL_CHECK(refused > 0);
    sl_cb_free(cb);
}

SL_TEST(cb_threads_with_forced_transitions_count_window) { chaos(SL_CB_COUNT_WINDOW); }
SL_TEST(cb_threads_with_forced_transitions_time_window) { chaos(SL_CB_TIME_WINDOW); }
SL_TEST(cb_threads_with_forced_transitions_consecutive) { chaos(SL_CB_CONSECUTIVE); }
