/*
 * test_hedge.c - hedged requests: the state machine step by step (begin,
 * due, finish; late callers, failures with nothing in flight, losers
 * finishing after the winner), then sl_hedge_run on a real pool, first in
 * simulated time with a scheduler that makes runs deterministic, then on
 * the system clock and from several threads at once.
 *
 * The scheduler clock: attempts "take" a simulated duration by parking
 * until the simulated time reaches their end; time moves only inside the
 * runner's sleep_ns, and only once every started attempt is parked or has
 * returned through the pool (a cancelled attempt still parked is waited for:
 * it is about to notice). It then jumps to the earliest end among the parked
 * ones (or the runner's step, if sooner). So what happens depends only on
 * the simulated durations, never on how the threads are scheduled.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include "test.h"
#include "resilience/res_int.h"

#define MS 1000000LL
#define S  1000000000LL

typedef struct sched {
    pthread_mutex_t mu;
    pthread_cond_t moved;
    int64_t now;
    bool parked[SL_HEDGE_MAX_ATTEMPTS];
    int64_t wake[SL_HEDGE_MAX_ATTEMPTS];
    const sl_hedge_call *call; /* the runner's: read only from the runner's thread (in sleep_ns) */
    sl_pool *pool;
    int64_t completed_before; /* the pool's completed count when the run began */
    int sleeps;
} sched;

static sched sim = {.mu = PTHREAD_MUTEX_INITIALIZER, .moved = PTHREAD_COND_INITIALIZER};

static int64_t sched_now(void *arg)
{
    sched *s = arg;
    pthread_mutex_lock(&s->mu);
    int64_t t = s->now;
    pthread_mutex_unlock(&s->mu);
    return t;
}

static int64_t pool_completed(sl_pool *pool)
{
    sl_pool_stats st;
    sl_pool_stats_get(pool, &st);
    return st.completed;
}

static void nap(void)
{
    struct timespec ts = {0, 20000};
    nanosleep(&ts, NULL);
}

/* Every started attempt parked (and not cancelled) or returned through the pool. Mutex held. */
static bool quiescent(sched *s)
{
    int32_t waiting = 0;
    for (int i = 0; i < s->call->started; i++)
        if (s->parked[i]) {
            if (sl_res_cancelled(&s->call->cancel[i])) return false;
            waiting++;
        }
    return waiting + (pool_completed(s->pool) - s->completed_before) == s->call->started;
}

static void wait_quiescent(sched *s)
{
    while (!quiescent(s)) {
        pthread_mutex_unlock(&s->mu);
        nap();
        pthread_mutex_lock(&s->mu);
    }
}

static void sched_sleep(void *arg, int64_t ns)
{
    sched *s = arg;
    pthread_mutex_lock(&s->mu);
    s->sleeps++;
    wait_quiescent(s);
    int64_t to = s->now + ns;
    for (int i = 0; i < SL_HEDGE_MAX_ATTEMPTS; i++)
        if (s->parked[i] && s->wake[i] < to) to = s->wake[i];
    s->now = to;
    for (int i = 0; i < SL_HEDGE_MAX_ATTEMPTS; i++)
        if (s->parked[i] && s->wake[i] <= to) s->parked[i] = false;
    pthread_cond_broadcast(&s->moved);
    wait_quiescent(s); /* the woken ones return or park again before the runner looks */
    pthread_mutex_unlock(&s->mu);
}

static const sl_res_clock sched_clock = {sched_now, sched_sleep, &sim};

/* An attempt taking `ns` of simulated time: false when cancelled first. */
static bool sched_take(sched *s, int32_t attempt, int64_t ns, const sl_res_cancel *cancel)
{
    pthread_mutex_lock(&s->mu);
    s->wake[attempt] = s->now + ns;
    s->parked[attempt] = true;
    while (s->parked[attempt] && !sl_res_cancelled(cancel)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&s->moved, &s->mu, &ts);
    }
    bool finished = !s->parked[attempt];
    s->parked[attempt] = false;
    pthread_mutex_unlock(&s->mu);
    return finished;
}

/* What each attempt does: takes lat[i] of simulated time, then returns res[i]. */
typedef struct script {
    int64_t lat[SL_HEDGE_MAX_ATTEMPTS];
    int res[SL_HEDGE_MAX_ATTEMPTS];
    _Atomic int saw_cancel[SL_HEDGE_MAX_ATTEMPTS];
    _Atomic int ran[SL_HEDGE_MAX_ATTEMPTS];
    int64_t ended_at[SL_HEDGE_MAX_ATTEMPTS];
} script;

static int scripted(void *arg, int32_t attempt, const sl_res_cancel *cancel)
{
    script *sc = arg;
    atomic_fetch_add(&sc->ran[attempt], 1);
    if (!sched_take(&sim, attempt, sc->lat[attempt], cancel)) {
        atomic_store(&sc->saw_cancel[attempt], 1);
        return SL_RES_E_CANCELLED;
    }
    sc->ended_at[attempt] = sched_now(&sim);
    return sc->res[attempt];
}

static sl_pool *make_pool(int threads)
{
    sl_pool_config pc;
    sl_pool_config_default(&pc);
    pc.core_threads = pc.max_threads = threads;
    sl_pool *pool;
    SL_CHECK_OK(sl_pool_new(&pc, &pool, NULL, 0));
    return pool;
}

static sl_hedge *make_hedge(int32_t hedges, int64_t delay_ns, const sl_res_clock *clock)
{
    sl_hedge_config cfg;
    sl_hedge_config_default(&cfg);
    cfg.max_hedges = hedges;
    cfg.delay_ns = delay_ns;
    if (clock) cfg.clock = *clock;
    sl_hedge *h;
    SL_CHECK_OK(sl_hedge_new(&cfg, &h, NULL, 0));
    return h;
}

/* Runs a script in simulated time from t = 0; returns sl_hedge_run's result. */
static int sim_run(sl_hedge *h, sl_pool *pool, script *sc, sl_hedge_call *call)
{
    pthread_mutex_lock(&sim.mu);
    sim.now = 0;
    sim.sleeps = 0;
    memset(sim.parked, 0, sizeof sim.parked);
    sim.call = call;
    sim.pool = pool;
    sim.completed_before = pool_completed(pool);
    pthread_mutex_unlock(&sim.mu);
    return sl_hedge_run(h, pool, scripted, sc, call);
}

/* ---- the state machine, driven by hand ---- */

static int64_t man_now;
static int64_t man_time(void *arg)
{
    (void)arg;
    return man_now;
}
static const sl_res_clock man_clock = {man_time, NULL, NULL};

SL_TEST(machine_starts_hedges_on_schedule_and_the_first_success_wins)
{
    man_now = 1000;
    sl_hedge *h = make_hedge(2, 10 * MS, &man_clock);
    sl_hedge_call call;
    sl_hedge_begin(h, &call);
    SL_CHECK_INT(call.state, SL_HEDGE_RUNNING);
    SL_CHECK_INT(call.started, 1);
    SL_CHECK_INT(call.next_ns, 1000 + 10 * MS);
    SL_CHECK_INT(sl_hedge_due(h, &call), 0);
    man_now += 10 * MS - 1;
    SL_CHECK_INT(sl_hedge_due(h, &call), 0);
    man_now += 1;
    SL_CHECK_INT(sl_hedge_due(h, &call), 1); /* attempt 1 */
    SL_CHECK_INT(call.started, 2);
    SL_CHECK_INT(call.next_ns, 1000 + 20 * MS);
    SL_CHECK_INT(sl_hedge_finish(h, &call, 0, 503), 0); /* attempt 1 still in flight */
    SL_CHECK_INT(call.state, SL_HEDGE_RUNNING);
    SL_CHECK_INT(sl_hedge_finish(h, &call, 1, 0), 1);
    SL_CHECK_INT(call.state, SL_HEDGE_WON);
    SL_CHECK_INT(call.winner, 1);
    SL_CHECK(sl_res_cancelled(&call.cancel[0]) && !sl_res_cancelled(&call.cancel[1]));
    SL_CHECK(sl_res_cancelled(&call.cancel[2])); /* never started, never will */
    man_now += 50 * MS;
    SL_CHECK_INT(sl_hedge_due(h, &call), 0);
    SL_CHECK_INT(call.next_ns, INT64_MAX);
    sl_hedge_stats st;
    sl_hedge_stats_get(h, &st);
    SL_CHECK_INT(st.calls, 1);
    SL_CHECK_INT(st.hedges_started, 1);
    SL_CHECK_INT(st.won_by_hedge, 1);
    SL_CHECK_INT(st.won_by_first + st.all_failed, 0);
    sl_hedge_free(h);
}

SL_TEST(machine_late_caller_gets_every_due_attempt_and_losers_report_after)
{
    man_now = 0;
    sl_hedge *h = make_hedge(3, 10 * MS, &man_clock);
    sl_hedge_call call;
    sl_hedge_begin(h, &call);
    man_now = 25 * MS; /* attempts 1 (10 ms) and 2 (20 ms) are both due */
    SL_CHECK_INT(sl_hedge_due(h, &call), 2);
    SL_CHECK_INT(call.started, 3);
    SL_CHECK_INT(call.next_ns, 30 * MS);
    SL_CHECK_INT(sl_hedge_finish(h, &call, 0, 0), 1); /* the first answers after all */
    SL_CHECK_INT(call.winner, 0);
    SL_CHECK(sl_res_cancelled(&call.cancel[1]) && sl_res_cancelled(&call.cancel[2]));
    SL_CHECK_INT(sl_hedge_finish(h, &call, 2, SL_RES_E_CANCELLED), 0);
    SL_CHECK_INT(sl_hedge_finish(h, &call, 1, 0), 0); /* a second success decides nothing */
    SL_CHECK_INT(call.winner, 0);
    SL_CHECK_INT(call.finished, 3);
    SL_CHECK_INT(call.results[2], SL_RES_E_CANCELLED);
    sl_hedge_stats st;
    sl_hedge_stats_get(h, &st);
    SL_CHECK_INT(st.won_by_first, 1);
    SL_CHECK_INT(st.hedges_started, 2);
    sl_hedge_free(h);
}

SL_TEST(machine_failure_with_nothing_in_flight_starts_the_next_at_once_and_all_fail)
{
    man_now = 0;
    sl_hedge *h = make_hedge(2, 50 * MS, &man_clock);
    sl_hedge_call call;
    sl_hedge_begin(h, &call);
    man_now = 5 * MS;
    SL_CHECK_INT(sl_hedge_finish(h, &call, 0, 500), 0);
    SL_CHECK_INT(call.state, SL_HEDGE_PENDING);
    SL_CHECK_INT(call.next_ns, 5 * MS);
    SL_CHECK_INT(sl_hedge_due(h, &call), 1);
    SL_CHECK_INT(call.state, SL_HEDGE_RUNNING);
    SL_CHECK_INT(call.next_ns, 55 * MS); /* the schedule restarts from the early start */
    man_now = 55 * MS;
    SL_CHECK_INT(sl_hedge_due(h, &call), 1);
    SL_CHECK_INT(call.next_ns, INT64_MAX);
    SL_CHECK_INT(sl_hedge_finish(h, &call, 2, 504), 0);
    SL_CHECK_INT(sl_hedge_finish(h, &call, 1, 502), 1);
    SL_CHECK_INT(call.state, SL_HEDGE_FAILED);
    SL_CHECK_INT(call.winner, -1);
    SL_CHECK_INT(call.results[0], 500);
    SL_CHECK_INT(call.results[1], 502);
    SL_CHECK_INT(call.results[2], 504);
    sl_hedge_stats st;
    sl_hedge_stats_get(h, &st);
    SL_CHECK_INT(st.all_failed, 1);
    sl_hedge_free(h);
}

SL_TEST(machine_without_hedges_is_one_attempt)
{
    man_now = 0;
    sl_hedge *h = make_hedge(0, 10 * MS, &man_clock);
    sl_hedge_call call;
    sl_hedge_begin(h, &call);
    SL_CHECK_INT(call.next_ns, INT64_MAX);
    man_now = S;
    SL_CHECK_INT(sl_hedge_due(h, &call), 0);
    SL_CHECK_INT(sl_hedge_finish(h, &call, 0, 7), 1);
    SL_CHECK_INT(call.state, SL_HEDGE_FAILED);
    sl_hedge_free(h);
}

SL_TEST(bad_configs_are_named)
{
    sl_hedge_config cfg;
    sl_hedge_config_default(&cfg);
    cfg.delay_ns = MS;
    cfg.max_hedges = 9;
    char err[96];
    sl_hedge *h = (sl_hedge *)1;
    SL_CHECK_INT(sl_hedge_new(&cfg, &h, err, sizeof err), SL_RES_E_INVALID);
    SL_CHECK(h == NULL);
    SL_CHECK_STR(err, "max_hedges: 9 is not in 0..8");
    cfg.max_hedges = 1;
    cfg.delay_ns = 0;
    SL_CHECK_INT(sl_hedge_new(&cfg, &h, err, sizeof err), SL_RES_E_INVALID);
    SL_CHECK_STR(err, "delay_ns: 0 needs a latency tracker for the live delay");
}

/* ---- sl_hedge_run in simulated time ---- */

SL_TEST(run_first_attempt_wins_before_the_delay)
{
    sl_pool *pool = make_pool(4);
    sl_hedge *h = make_hedge(2, 50 * MS, &sched_clock);
    script sc = {.lat = {30 * MS, 1 * MS, 1 * MS}, .res = {0, 0, 0}};
    sl_hedge_call call;
    SL_CHECK_OK(sim_run(h, pool, &sc, &call));
    SL_CHECK_INT(call.winner, 0);
    SL_CHECK_INT(call.started, 1);
    SL_CHECK_INT(sc.ended_at[0], 30 * MS);
    SL_CHECK_INT(atomic_load(&sc.ran[1]), 0);
    SL_CHECK_INT(sched_now(&sim), 30 * MS);
    sl_hedge_free(h);
    sl_pool_free(pool);
}

/* Attempt 0 takes 200 ms; the hedge starts at 50 ms and answers at 70 ms; attempt 0 is cancelled and
   notices; the second hedge (due at 100 ms) never starts. */
SL_TEST(run_hedge_wins_and_the_slow_first_is_cancelled)
{
    sl_pool *pool = make_pool(4);
    sl_hedge *h = make_hedge(2, 50 * MS, &sched_clock);
    script sc = {.lat = {200 * MS, 20 * MS, 1 * MS}, .res = {0, 0, 0}};
    for (int round = 0; round < 20; round++) { /* the same every time */
        memset((void *)sc.saw_cancel, 0, sizeof sc.saw_cancel);
        memset((void *)sc.ran, 0, sizeof sc.ran);
        sl_hedge_call call;
        SL_CHECK_OK(sim_run(h, pool, &sc, &call));
        SL_CHECK_INT(call.winner, 1);
        SL_CHECK_INT(call.started, 2);
        SL_CHECK_INT(call.finished, 2);
        SL_CHECK_INT(sc.ended_at[1], 70 * MS);
        SL_CHECK_INT(atomic_load(&sc.saw_cancel[0]), 1);
        SL_CHECK_INT(call.results[0], SL_RES_E_CANCELLED);
        SL_CHECK_INT(atomic_load(&sc.ran[2]), 0);
        SL_CHECK(sched_now(&sim) < 100 * MS);
    }
    sl_hedge_stats st;
    sl_hedge_stats_get(h, &st);
    SL_CHECK_INT(st.won_by_hedge, 20);
    SL_CHECK_INT(st.hedges_started, 20);
    sl_hedge_free(h);
    sl_pool_free(pool);
}

/* Attempt 0 fails at 10 ms with nothing else in flight: attempt 1 starts at once (not at 50 ms), fails at
   15 ms; attempt 2 likewise; the run returns attempt 0's error and keeps every cause. */
SL_TEST(run_all_failed_keeps_every_cause)
{
    sl_pool *pool = make_pool(4);
    sl_hedge *h = make_hedge(2, 50 * MS, &sched_clock);
    script sc = {.lat = {10 * MS, 5 * MS, 5 * MS}, .res = {500, 502, 503}};
    sl_hedge_call call;
    SL_CHECK_INT(sim_run(h, pool, &sc, &call), 500);
    SL_CHECK_INT(call.state, SL_HEDGE_FAILED);
    SL_CHECK_INT(call.results[0], 500);
    SL_CHECK_INT(call.results[1], 502);
    SL_CHECK_INT(call.results[2], 503);
    SL_CHECK_INT(sc.ended_at[1], 15 * MS);
    SL_CHECK_INT(sc.ended_at[2], 20 * MS);
    sl_hedge_stats st;
    sl_hedge_stats_get(h, &st);
    SL_CHECK_INT(st.all_failed, 1);
    sl_hedge_free(h);
    sl_pool_free(pool);
}

/* Attempts overlap: 0 (300 ms); 1 starts at 40 ms and fails at 70 ms while 0 is in flight (no early
   start: the schedule holds); 2 starts at 80 ms (would answer at 170 ms); 3 starts at 120 ms and answers at
   125 ms: it wins, 0 and 2 are cancelled. */
SL_TEST(run_overlapping_hedges_failures_do_not_decide)
{
    sl_pool *pool = make_pool(4);
    sl_hedge *h = make_hedge(3, 40 * MS, &sched_clock);
    script sc = {.lat = {300 * MS, 30 * MS, 90 * MS, 5 * MS}, .res = {0, 503, 0, 0}};
    sl_hedge_call call;
    SL_CHECK_OK(sim_run(h, pool, &sc, &call));
    SL_CHECK_INT(call.winner, 3);
    SL_CHECK_INT(sc.ended_at[1], 70 * MS);
    SL_CHECK_INT(sc.ended_at[3], 125 * MS);
    SL_CHECK_INT(call.results[1], 503);
    SL_CHECK_INT(atomic_load(&sc.saw_cancel[0]), 1);
    SL_CHECK_INT(atomic_load(&sc.saw_cancel[1]), 0);
    SL_CHECK_INT(atomic_load(&sc.saw_cancel[2]), 1);
    SL_CHECK_INT(call.finished, 4);
    sl_hedge_free(h);
    sl_pool_free(pool);
}

/* A pool that refuses: the attempt fails with SL_RES_E_FULL as its cause, and the next starts at once. */
static _Atomic int gate;
static void hold(void *arg)
{
    (void)arg;
    while (!atomic_load(&gate)) nap();
}

SL_TEST(run_attempt_refused_by_the_pool_fails_with_full)
{
    sl_pool_config pc;
    sl_pool_config_default(&pc);
    pc.core_threads = pc.max_threads = 1;
    pc.queue_capacity = 1;
    sl_pool *pool;
    SL_CHECK_OK(sl_pool_new(&pc, &pool, NULL, 0));
    atomic_store(&gate, 0);
    SL_CHECK_OK(sl_pool_submit(pool, hold, NULL)); /* the thread */
    for (sl_pool_stats st = {0}; st.active == 0; nap()) sl_pool_stats_get(pool, &st);
    SL_CHECK_OK(sl_pool_submit(pool, hold, NULL)); /* the queue */
    sl_hedge *h = make_hedge(1, 50 * MS, &man_clock);
    sl_hedge_call call;
    SL_CHECK_INT(sl_hedge_run(h, pool, scripted, &(script){0}, &call), SL_RES_E_FULL);
    SL_CHECK_INT(call.results[0], SL_RES_E_FULL);
    SL_CHECK_INT(call.results[1], SL_RES_E_FULL);
    SL_CHECK_INT(call.started, 2);
    atomic_store(&gate, 1);
    sl_hedge_free(h);
    sl_pool_free(pool);
}

/* ---- on the system clock ---- */

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Attempt 0 hangs until cancelled (5 s at most), the others answer after 1 ms. */
static int hang_first(void *arg, int32_t attempt, const sl_res_cancel *cancel)
{
    _Atomic int *cancelled_seen = arg;
    int64_t until = real_ns() + (attempt == 0 ? 5 * S : 1 * MS);
    while (real_ns() < until) {
        if (sl_res_cancelled(cancel)) {
            atomic_fetch_add(cancelled_seen, 1);
            return SL_RES_E_CANCELLED;
        }
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

SL_TEST(run_on_the_system_clock_returns_with_the_hedge)
{
    sl_pool *pool = make_pool(2);
    sl_hedge *h = make_hedge(1, 20 * MS, NULL);
    _Atomic int seen = 0;
    sl_hedge_call call;
    int64_t t0 = real_ns();
    SL_CHECK_OK(sl_hedge_run(h, pool, hang_first, (void *)&seen, &call));
    int64_t took = real_ns() - t0;
    SL_CHECK_INT(call.winner, 1);
    SL_CHECK_INT(atomic_load(&seen), 1);
    SL_CHECK(took >= 20 * MS && took < 2 * S);
    sl_hedge_free(h);
    sl_pool_free(pool);
}

typedef struct shared_run {
    sl_hedge *h;
    sl_pool *pool;
    _Atomic int seen;
    _Atomic int won;
} shared_run;

static void *runner(void *arg)
{
    shared_run *sr = arg;
    for (int i = 0; i < 10; i++) {
        sl_hedge_call call;
        if (sl_hedge_run(sr->h, sr->pool, hang_first, (void *)&sr->seen, &call) == 0 && call.winner == 1)
            atomic_fetch_add(&sr->won, 1);
    }
    return NULL;
}

SL_TEST(runs_from_several_threads_share_a_hedge_and_a_pool)
{
    shared_run sr = {.h = make_hedge(1, 2 * MS, NULL), .pool = make_pool(8)};
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, runner, &sr);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    SL_CHECK_INT(atomic_load(&sr.won), 30);
    SL_CHECK_INT(atomic_load(&sr.seen), 30);
    sl_hedge_stats st;
    sl_hedge_stats_get(sr.h, &st);
    SL_CHECK_INT(st.calls, 30);
    SL_CHECK_INT(st.won_by_hedge, 30);
    sl_hedge_free(sr.h);
    sl_pool_free(sr.pool);
}
