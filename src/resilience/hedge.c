/*
 * hedge.c - hedged requests: when an attempt is slow, start another one and
 * take whichever answers first ("The Tail at Scale", Dean & Barroso 2013).
 *
 * One hedged call is a small state machine kept in the caller's
 * sl_hedge_call (no allocation, no lock: one thread drives it, the attempts
 * only read their cancellation tokens):
 *
 *            begin (attempt 0 started)
 *                    |
 *                    v        due: next_ns passed, started < max
 *   +-----------> RUNNING <----------------------------------+
 *   |             |  |  |                                    |
 *   |  finish(ok) |  |  | finish(fail), none in flight,      |
 *   |             |  |  | started < max: next_ns = now       |
 *   |             v  |  v                                    |
 *   |           WON  |  PENDING ------- due (at once) -------+
 *   |                |
 *   |                | finish(fail), none in flight, started = max
 *   |                v
 *   |             FAILED
 *   +-- finish(fail) with attempts still in flight: stays RUNNING
 *
 *   state    | in flight | next_ns                  | invariant
 *   RUNNING  | >= 1      | next start, or INT64_MAX | winner = -1, finished < started
 *   PENDING  | 0         | <= now: due at once      | winner = -1, finished = started < max
 *   WON      | any       | INT64_MAX                | winner >= 0, every other token cancelled
 *   FAILED   | 0         | INT64_MAX                | finished = started = max, results[] are the causes
 *
 * Attempts start at start_ns + k x delay (k = 1..max_hedges) while nothing
 * succeeded; a caller that asks late gets every attempt whose time passed.
 * A failure with nothing else in flight starts the next attempt at once:
 * the delay exists so that a slow first answer is not doubled needlessly,
 * and with nothing in flight there is nothing to wait for. The delay is
 * fixed per call at begin: the configured one, or the dependency's live
 * percentile (floored at min_delay_ns) read once, not at every due.
 *
 * sl_hedge_run drives the machine with a pool: each attempt is a pool task
 * that calls fn and then reports its result under the run's mutex. The run's
 * state (mutex, condvar, the attempts' results) lives on the runner's stack,
 * so the runner returns only once every started attempt has returned --
 * losers are cancelled and are expected to notice (the library cannot stop
 * a thread); that is also what lets `arg` and `call` live on the caller's
 * stack. Waiting: on the system clock, a condvar with a deadline at next_ns;
 * on an injected clock, polling through clock.sleep_ns in steps of at most
 * POLL_NS that end at next_ns, checking the reports after each step (the
 * bulkhead's convention), so that a simulated clock advancing only while the
 * attempts wait gives the same run every time (test_hedge.c has one).
 */
#include <pthread.h>
#include <time.h>
#include "resilience/compose_int.h"

#define MAX_HEDGES (SL_HEDGE_MAX_ATTEMPTS - 1)
#define POLL_NS    1000000

struct sl_hedge {
    sl_hedge_config cfg; /* clock resolved */
    bool polled;         /* an injected clock: wait by polling through clock.sleep_ns */
    _Atomic int64_t calls, hedges_started, won_by_hedge, won_by_first, all_failed;
};

void sl_hedge_config_default(sl_hedge_config *cfg)
{
    *cfg = (sl_hedge_config){.max_hedges = 1, .delay_ns = 0, .latency = NULL, .percentile = 95,
                             .min_delay_ns = 1000000};
}

int sl_hedge_new(const sl_hedge_config *cfg, sl_hedge **out, char *err, size_t err_len)
{
    *out = NULL;
    if (cfg->max_hedges < 0 || cfg->max_hedges > MAX_HEDGES)
        return sl__res_invalid(err, err_len, "max_hedges: %d is not in 0..%d", cfg->max_hedges, MAX_HEDGES);
    if (cfg->delay_ns < 0)
        return sl__res_invalid(err, err_len, "delay_ns: %lld is negative", (long long)cfg->delay_ns);
    if (cfg->delay_ns == 0 && !cfg->latency)
        return sl__res_invalid(err, err_len, "delay_ns: 0 needs a latency tracker for the live delay");
    if (!(cfg->percentile > 0 && cfg->percentile <= 100))
        return sl__res_invalid(err, err_len, "percentile: %g is not in (0, 100]", cfg->percentile);
    if (cfg->min_delay_ns < 0)
        return sl__res_invalid(err, err_len, "min_delay_ns: %lld is negative", (long long)cfg->min_delay_ns);
    sl_hedge *h = SL_NEW(sl_hedge);
    h->cfg = *cfg;
    h->polled = cfg->clock.now_ns != NULL;
    sl__res_clock_resolve(&cfg->clock, &h->cfg.clock);
    *out = h;
    return 0;
}

void sl_hedge_free(sl_hedge *h) { sl_free(h); }

static int32_t max_attempts(const sl_hedge *h) { return 1 + h->cfg.max_hedges; }

static bool decided(const sl_hedge_call *call) { return call->state == SL_HEDGE_WON || call->state == SL_HEDGE_FAILED; }

/* The one setter: asserts the edge is one of the diagram's. */
static void set_state(sl_hedge_call *call, sl_hedge_state to)
{
    static const bool edges[4][4] = {
        [SL_HEDGE_RUNNING] = {[SL_HEDGE_PENDING] = true, [SL_HEDGE_WON] = true, [SL_HEDGE_FAILED] = true},
        [SL_HEDGE_PENDING] = {[SL_HEDGE_RUNNING] = true},
    };
    SL_ASSERT(call->state <= SL_HEDGE_FAILED && to <= SL_HEDGE_FAILED && edges[call->state][to]);
    call->state = to;
}

static int64_t delay_now(const sl_hedge *h)
{
    if (h->cfg.delay_ns > 0) return h->cfg.delay_ns;
    int64_t p = sl_latency_percentile(h->cfg.latency, h->cfg.percentile);
    return p > h->cfg.min_delay_ns ? p : h->cfg.min_delay_ns;
}

void sl_hedge_begin(sl_hedge *h, sl_hedge_call *call)
{
    int64_t now = sl__res_now(&h->cfg.clock);
    call->state = SL_HEDGE_RUNNING;
    call->started = 1;
    call->finished = 0;
    call->winner = -1;
    call->start_ns = now;
    call->delay_ns = delay_now(h);
    call->next_ns = max_attempts(h) > 1 ? now + call->delay_ns : INT64_MAX;
    for (int i = 0; i < SL_HEDGE_MAX_ATTEMPTS; i++) {
        call->results[i] = 0;
        sl_res_cancel_init(&call->cancel[i]);
    }
    sl__res_count(&h->calls, 1);
}

int sl_hedge_due(sl_hedge *h, sl_hedge_call *call)
{
    if (decided(call) || call->next_ns == INT64_MAX) return 0;
    int64_t now = sl__res_now(&h->cfg.clock);
    int32_t max = max_attempts(h), n = 0;
    while (call->started + n < max && call->next_ns <= now) {
        n++;
        call->next_ns = call->started + n < max ? call->next_ns + call->delay_ns : INT64_MAX;
    }
    if (n == 0) return 0;
    call->started += n;
    SL_ASSERT(call->started <= max);
    if (call->state == SL_HEDGE_PENDING) set_state(call, SL_HEDGE_RUNNING);
    sl__res_count(&h->hedges_started, n);
    return n;
}

static void won(sl_hedge *h, sl_hedge_call *call, int32_t attempt)
{
    call->winner = attempt;
    call->next_ns = INT64_MAX;
    for (int i = 0; i < SL_HEDGE_MAX_ATTEMPTS; i++)
        if (i != attempt) sl_res_cancel_set(&call->cancel[i]);
    set_state(call, SL_HEDGE_WON);
    sl__res_count(attempt == 0 ? &h->won_by_first : &h->won_by_hedge, 1);
}

int sl_hedge_finish(sl_hedge *h, sl_hedge_call *call, int32_t attempt, int result)
{
    SL_ASSERT(attempt >= 0 && attempt < call->started);
    call->results[attempt] = result;
    call->finished++;
    SL_ASSERT(call->finished <= call->started);
    if (call->state == SL_HEDGE_WON) return 0; /* a loser, late */
    SL_ASSERT(call->state == SL_HEDGE_RUNNING);
    if (result == 0) {
        won(h, call, attempt);
        return 1;
    }
    if (call->finished < call->started) return 0;
    if (call->started < max_attempts(h)) {
        call->next_ns = sl__res_now(&h->cfg.clock);
        set_state(call, SL_HEDGE_PENDING);
        return 0;
    }
    call->next_ns = INT64_MAX;
    set_state(call, SL_HEDGE_FAILED);
    sl__res_count(&h->all_failed, 1);
    return 1;
}

void sl_hedge_stats_get(sl_hedge *h, sl_hedge_stats *out)
{
    *out = (sl_hedge_stats){.calls = sl__res_load(&h->calls),
                            .hedges_started = sl__res_load(&h->hedges_started),
                            .won_by_hedge = sl__res_load(&h->won_by_hedge),
                            .won_by_first = sl__res_load(&h->won_by_first),
                            .all_failed = sl__res_load(&h->all_failed)};
}

/* ---- sl_hedge_run: the machine driven with a pool ---- */

typedef struct hedge_run hedge_run;
typedef struct hedge_task {
    hedge_run *run;
    int32_t attempt;
} hedge_task;

struct hedge_run {
    pthread_mutex_t mu;
    pthread_cond_t cond; /* an attempt reported */
    int (*fn)(void *arg, int32_t attempt, const sl_res_cancel *cancel);
    void *arg;
    sl_hedge_call *call;
    int32_t running;    /* submitted, not yet reported */
    uint32_t reported;  /* attempts reported and not yet handed to the machine */
    int results[SL_HEDGE_MAX_ATTEMPTS];
    hedge_task tasks[SL_HEDGE_MAX_ATTEMPTS];
};

/* A pool task. After its unlock the runner may return: it touches nothing of the run after that. */
static void attempt_task(void *arg)
{
    hedge_task *task = arg;
    hedge_run *run = task->run;
    int32_t i = task->attempt;
    int result = run->fn(run->arg, i, &run->call->cancel[i]);
    pthread_mutex_lock(&run->mu);
    run->results[i] = result;
    run->reported |= 1u << i;
    run->running--;
    pthread_cond_signal(&run->cond);
    pthread_mutex_unlock(&run->mu);
}

/* Hands the reported attempts to the machine (mutex held). */
static void take_reports(sl_hedge *h, hedge_run *run)
{
    while (run->reported) {
        int32_t i = __builtin_ctz(run->reported);
        run->reported &= run->reported - 1;
        sl_hedge_finish(h, run->call, i, run->results[i]);
    }
}

/* Submits attempts [from, to) (mutex held; released around the submit, which may run the task here). */
static void submit(sl_hedge *h, hedge_run *run, sl_pool *pool, int32_t from, int32_t to)
{
    for (int32_t i = from; i < to; i++) {
        run->tasks[i] = (hedge_task){run, i};
        run->running++;
        pthread_mutex_unlock(&run->mu);
        int rc = sl_pool_submit(pool, attempt_task, &run->tasks[i]);
        pthread_mutex_lock(&run->mu);
        if (rc == 0) continue;
        run->running--;
        sl_hedge_finish(h, run->call, i, rc);
    }
}

/* Waits for a report or until `until` (mutex held). */
static void wait_until(sl_hedge *h, hedge_run *run, int64_t until)
{
    if (h->polled) {
        int64_t step = until == INT64_MAX ? POLL_NS : until - sl__res_now(&h->cfg.clock);
        step = step < 1 ? 1 : step > POLL_NS ? POLL_NS : step;
        pthread_mutex_unlock(&run->mu);
        sl__res_sleep(&h->cfg.clock, step);
        pthread_mutex_lock(&run->mu);
        return;
    }
    if (until == INT64_MAX) {
        pthread_cond_wait(&run->cond, &run->mu);
        return;
    }
    struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
    pthread_cond_timedwait(&run->cond, &run->mu, &ts);
}

static void run_init(hedge_run *run, int (*fn)(void *, int32_t, const sl_res_cancel *), void *arg,
                     sl_hedge_call *call)
{
    *run = (hedge_run){.fn = fn, .arg = arg, .call = call};
    pthread_mutex_init(&run->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&run->cond, &attr);
    pthread_condattr_destroy(&attr);
}

int sl_hedge_run(sl_hedge *h, sl_pool *pool, int (*fn)(void *arg, int32_t attempt, const sl_res_cancel *cancel),
                 void *arg, sl_hedge_call *call)
{
    SL_ASSERT(pool && fn && call);
    hedge_run run;
    run_init(&run, fn, arg, call);
    pthread_mutex_lock(&run.mu);
    sl_hedge_begin(h, call);
    submit(h, &run, pool, 0, 1);
    for (;;) {
        take_reports(h, &run);
        if (decided(call)) break;
        int32_t first = call->started;
        int n = sl_hedge_due(h, call);
        if (n > 0) {
            submit(h, &run, pool, first, first + n);
            continue;
        }
        if (run.reported == 0) wait_until(h, &run, call->next_ns);
    }
    while (run.running > 0) wait_until(h, &run, INT64_MAX); /* the losers, cancelled */
    take_reports(h, &run);
    SL_ASSERT(call->finished == call->started);
    pthread_mutex_unlock(&run.mu);
    pthread_cond_destroy(&run.cond);
    pthread_mutex_destroy(&run.mu);
    return call->state == SL_HEDGE_WON ? 0 : call->results[0];
}
