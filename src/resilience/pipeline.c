/*
 * pipeline.c - runs a call through the policies of a pipeline in a fixed
 * order, then the fallback:
 *
 *   per-key rate -> rate -> bulkhead -> concurrency limit      (admission: run once per call)
 *     -> timeout (the whole call's deadline)
 *       -> retry loop: [ breaker -> hedge -> call ] per attempt, backoff between
 *   -> fallback (any non-zero result)
 *
 * Why this order (include/sluice/resilience.h says it to callers): the
 * cheapest refusals first; a noisy key refused before it spends global
 * tokens; the bulkhead before the adaptive limit, so the limit's round trips
 * measure the dependency and not our own queue, and a bulkhead refusal
 * never has to hand back a limit permit (the limit has no way to take one
 * back without a sample); the breaker inside the retry loop, so each
 * attempt is an outcome for it and an open breaker ends the retries; the
 * hedge innermost, so each attempt is hedged and the breaker counts one
 * outcome per attempt, not per hedge.
 *
 * The success path (rate -> bulkhead -> timeout -> retry -> breaker -> call)
 * is: the policies' own admission calls, two reads of the pipeline's clock
 * (before admission: the rate limiters, the deadline and the breaker's
 * admission share it through the stage clock; when the call returns: the
 * late check, the latency, the breaker's release), the retry's begin/next, and one relaxed increment of this thread's stripe
 * of the counters (compose_int.h). No allocation (the run's state is a
 * frame on the caller's stack), no lock of the pipeline's own, and no
 * shared cache line written by the pipeline itself.
 *
 * Timeouts cannot interrupt a call (no I/O here): the call gets its deadline
 * in ctx and must honour it; one that returns after it is SL_RES_E_TIMEOUT.
 * Before each attempt and before each backoff, the whole call's deadline is
 * checked: a backoff that would end past it is not slept.
 */
#include "resilience/compose_int.h"

/* Runs that ended, counted where they end: calls = successes + failed. */
typedef struct pipe_stripe {
    _Alignas(SL__CACHE_LINE) _Atomic int64_t successes;
    _Atomic int64_t failed;
} pipe_stripe;

struct sl_pipeline {
    void *mem; /* the allocation this struct is aligned in */
    sl_res_clock clock;
    sl_sliding_window *window;
    sl_token_bucket *bucket;
    sl_bulkhead *bulkhead;
    int64_t bulkhead_wait_ns;
    sl_limit *limit;
    int limit_priority;
    bool has_timeout;
    sl_timeout_config timeout;
    sl_retry *retry;
    sl_cb *breaker;
    sl_hedge *hedge;
    sl_pool *pool;
    bool (*ignored)(void *arg, int result);
    void *ignored_arg;
    sl_res_fallback_fn fallback;
    void *fallback_arg;
    sl_latency *latency;
    void *owned;
    void (*owned_free)(void *owned);
    _Alignas(SL__CACHE_LINE) _Atomic int64_t refused_rate, refused_limit, refused_bulkhead, refused_breaker,
        refused_budget, timeouts, retries, hedges, fallbacks;
    pipe_stripe stripes[SL__STRIPES];
};

/* One run's state, on the caller's stack. */
typedef struct run_frame {
    sl_pipeline *p;
    sl_res_call_fn fn;
    void *arg;
    sl_res_ctx ctx;                         /* the current attempt's */
    int64_t deadline_ns;                    /* the whole call's, 0 = none */
    int hedge_answer[SL_HEDGE_MAX_ATTEMPTS]; /* a hedged attempt's real result, when its wrapper said 0 */
} run_frame;

static const sl_res_cancel never_cancelled;

/* ---- the time the stages share ----
 *
 * Reading the clock costs ~25 ns here (clock_gettime through the vDSO in a
 * VM): one read per stage would cost more than all the stages' work. So the
 * pipeline reads its clock at the stage boundaries -- before admission, then
 * when each attempt ends -- and keeps that reading in a thread-local; a
 * policy created with sl_pipeline_stage_clock reads it from there while it
 * is valid, and the real clock otherwise. The reading is dropped (made
 * invalid) before the call runs and before anything that may wait (a
 * bulkhead's wait, a backoff, a hedge), and when the run ends, so a policy
 * never sees a time older than the stage it is in. It is tagged with the
 * clock it came from: a policy on another clock never takes it.
 */
typedef struct time_cache {
    bool valid;
    int64_t now_ns;
    int64_t (*source)(void *arg);
    void *source_arg;
} time_cache;

static _Thread_local time_cache stage_time;

static int64_t pipe_now(const sl_pipeline *p)
{
    int64_t now = p->clock.now_ns(p->clock.arg);
    stage_time = (time_cache){true, now, p->clock.now_ns, p->clock.arg};
    return now;
}

static void time_forget(void) { stage_time.valid = false; }

static int64_t stage_now(void *arg)
{
    const sl_res_clock *clock = arg;
    if (stage_time.valid && stage_time.source == clock->now_ns && stage_time.source_arg == clock->arg)
        return stage_time.now_ns;
    return clock->now_ns(clock->arg);
}

void sl_pipeline_stage_clock(const sl_pipeline *p, sl_res_clock *out)
{
    *out = (sl_res_clock){stage_now, p->clock.sleep_ns, (void *)&p->clock};
}

int sl_pipeline_new(sl_pipeline **out)
{
    void *mem;
    sl_pipeline *p = sl__res_calloc_lines(sizeof *p, &mem);
    p->mem = mem;
    sl__res_clock_resolve(NULL, &p->clock);
    *out = p;
    return 0;
}

void sl_pipeline_free(sl_pipeline *p)
{
    if (!p) return;
    if (p->owned_free) p->owned_free(p->owned);
    sl_free(p->mem);
}

void sl__pipeline_own(sl_pipeline *p, void *owned, void (*free_fn)(void *owned))
{
    SL_ASSERT(!p->owned_free);
    p->owned = owned;
    p->owned_free = free_fn;
}

void *sl__pipeline_owned(const sl_pipeline *p) { return p->owned; }

void sl_pipeline_rate(sl_pipeline *p, sl_token_bucket *tb) { p->bucket = tb; }
void sl_pipeline_rate_per_key(sl_pipeline *p, sl_sliding_window *sw) { p->window = sw; }
void sl_pipeline_retry(sl_pipeline *p, sl_retry *r) { p->retry = r; }
void sl_pipeline_breaker(sl_pipeline *p, sl_cb *cb) { p->breaker = cb; }

void sl_pipeline_limit(sl_pipeline *p, sl_limit *l, int priority)
{
    SL_ASSERT(priority >= 0 && priority < SL_LIMIT_PRIORITIES);
    p->limit = l;
    p->limit_priority = priority;
}

void sl_pipeline_bulkhead(sl_pipeline *p, sl_bulkhead *b, int64_t wait_ns)
{
    SL_ASSERT(wait_ns >= 0);
    p->bulkhead = b;
    p->bulkhead_wait_ns = wait_ns;
}

void sl_pipeline_timeout(sl_pipeline *p, const sl_timeout_config *cfg)
{
    p->has_timeout = cfg != NULL;
    if (cfg) p->timeout = *cfg;
}

void sl_pipeline_hedge(sl_pipeline *p, sl_hedge *h, sl_pool *pool)
{
    SL_ASSERT(!h || pool);
    p->hedge = h;
    p->pool = pool;
}

void sl_pipeline_ignore(sl_pipeline *p, bool (*ignored)(void *arg, int result), void *arg)
{
    p->ignored = ignored;
    p->ignored_arg = arg;
}

void sl_pipeline_fallback(sl_pipeline *p, sl_res_fallback_fn fn, void *arg)
{
    p->fallback = fn;
    p->fallback_arg = arg;
}

void sl_pipeline_latency(sl_pipeline *p, sl_latency *lat) { p->latency = lat; }
void sl_pipeline_policies_get(const sl_pipeline *p, sl_pipeline_policies *out)
{
    *out = (sl_pipeline_policies){p->bucket, p->window, p->limit, p->bulkhead, p->retry, p->breaker, p->hedge,
                                  p->latency};
}

void sl_pipeline_clock(sl_pipeline *p, const sl_res_clock *clock) { sl__res_clock_resolve(clock, &p->clock); }

void sl_pipeline_stats_get(sl_pipeline *p, sl_pipeline_stats *out)
{
    *out = (sl_pipeline_stats){.refused_rate = sl__res_load(&p->refused_rate),
                               .refused_limit = sl__res_load(&p->refused_limit),
                               .refused_bulkhead = sl__res_load(&p->refused_bulkhead),
                               .refused_breaker = sl__res_load(&p->refused_breaker),
                               .refused_budget = sl__res_load(&p->refused_budget),
                               .timeouts = sl__res_load(&p->timeouts),
                               .retries = sl__res_load(&p->retries),
                               .hedges = sl__res_load(&p->hedges),
                               .fallbacks = sl__res_load(&p->fallbacks)};
    for (int s = 0; s < SL__STRIPES; s++) {
        out->successes += sl__res_load(&p->stripes[s].successes);
        out->calls += sl__res_load(&p->stripes[s].failed);
    }
    out->calls += out->successes;
}

/* ---- admission: rate limits, bulkhead, concurrency limit ---- */

static int refuse(_Atomic int64_t *counter, int rc)
{
    if (rc == SL_RES_E_RATE || rc == SL_RES_E_FULL || rc == SL_RES_E_LIMIT) sl__res_count(counter, 1);
    return rc;
}

/* With *now_ns the time read before; updates it when the bulkhead waited. */
static int admit(sl_pipeline *p, const run_frame *f, sl_limit_permit *permit, int64_t *now_ns)
{
    int rc;
    if (p->window && (rc = sl_sliding_window_acquire(p->window, f->ctx.key, f->ctx.key_len, NULL)) != 0)
        return refuse(&p->refused_rate, rc);
    if (p->bucket && (rc = sl_token_bucket_acquire(p->bucket, 1, NULL)) != 0) return refuse(&p->refused_rate, rc);
    if (p->bulkhead && p->bulkhead_wait_ns > 0) {
        time_forget();
        rc = sl_bulkhead_acquire(p->bulkhead, p->bulkhead_wait_ns);
        *now_ns = pipe_now(p);
        if (rc) return refuse(&p->refused_bulkhead, rc);
    } else if (p->bulkhead && (rc = sl_bulkhead_acquire(p->bulkhead, 0)) != 0) {
        return refuse(&p->refused_bulkhead, rc);
    }
    if (p->limit && (rc = sl_limit_acquire(p->limit, p->limit_priority, permit)) != 0) {
        if (p->bulkhead) sl_bulkhead_release(p->bulkhead);
        return refuse(&p->refused_limit, rc);
    }
    return 0;
}

static void leave(sl_pipeline *p, const sl_limit_permit *permit, int rc)
{
    if (p->limit) sl_limit_release(p->limit, permit, rc == SL_RES_E_TIMEOUT);
    if (p->bulkhead) sl_bulkhead_release(p->bulkhead);
}

/* ---- one attempt: breaker, hedge or call, latency, lateness ---- */

static sl_res_outcome outcome_of(const sl_pipeline *p, int rc)
{
    if (rc == 0) return SL_RES_SUCCESS;
    if (p->ignored && p->ignored(p->ignored_arg, rc)) return SL_RES_IGNORED;
    return SL_RES_FAILURE;
}

static bool late(int64_t end_ns, int64_t deadline_ns) { return deadline_ns != 0 && end_ns > deadline_ns; }

/* A hedge's attempt, on a pool thread: its own ctx (its token), its own latency and lateness. An answer
   the pipeline ignores wins like a success: the wrapper says 0 and keeps the real result. */
static int hedged_attempt(void *arg, int32_t hedge, const sl_res_cancel *cancel)
{
    run_frame *f = arg;
    sl_pipeline *p = f->p;
    sl_res_ctx ctx = f->ctx;
    ctx.hedge = hedge;
    ctx.cancel = cancel;
    int64_t start = sl__res_now(&p->clock);
    int rc = f->fn(f->arg, &ctx);
    int64_t end = sl__res_now(&p->clock);
    if (!sl_res_cancelled(cancel) && p->latency) sl_latency_record(p->latency, end - start);
    if (late(end, ctx.deadline_ns)) rc = SL_RES_E_TIMEOUT;
    f->hedge_answer[hedge] = rc;
    return rc == 0 || outcome_of(p, rc) == SL_RES_IGNORED ? 0 : rc;
}

static int call_hedged(sl_pipeline *p, run_frame *f)
{
    sl_hedge_call call;
    time_forget();
    int rc = sl_hedge_run(p->hedge, p->pool, hedged_attempt, f, &call);
    if (call.started > 1) sl__res_count(&p->hedges, call.started - 1);
    if (rc == 0) rc = f->hedge_answer[call.winner];
    return rc;
}

/* Runs attempt f->ctx.attempt, started at now_ns; *end_ns is when it ended. *refused: the breaker
   refused it (SL_RES_E_OPEN), which ends the call. */
static int attempt_once(sl_pipeline *p, run_frame *f, int64_t now_ns, int64_t *end_ns, bool *refused)
{
    sl_cb_permit permit;
    *end_ns = now_ns;
    *refused = p->breaker && sl_cb_acquire(p->breaker, &permit, NULL) != 0;
    if (*refused) {
        sl__res_count(&p->refused_breaker, 1);
        return SL_RES_E_OPEN;
    }
    int rc;
    if (p->hedge) {
        rc = call_hedged(p, f);
        *end_ns = pipe_now(p);
    } else {
        time_forget();
        rc = f->fn(f->arg, &f->ctx);
        *end_ns = pipe_now(p);
        if (p->latency) sl_latency_record(p->latency, *end_ns - now_ns);
        if (late(*end_ns, f->ctx.deadline_ns)) rc = SL_RES_E_TIMEOUT;
    }
    if (rc == SL_RES_E_TIMEOUT) sl__res_count(&p->timeouts, 1);
    if (p->breaker) sl_cb_release(p->breaker, &permit, outcome_of(p, rc));
    return rc;
}

/* The attempt's deadline: the whole call's, or the attempt's own timeout if that ends first. */
static int64_t attempt_deadline(const sl_pipeline *p, const run_frame *f, int64_t now_ns)
{
    int64_t own = p->retry ? sl_retry_attempt_timeout_ns(p->retry, f->ctx.attempt) : 0;
    if (own == 0) return f->deadline_ns;
    int64_t d = now_ns + own;
    return f->deadline_ns != 0 && f->deadline_ns < d ? f->deadline_ns : d;
}

static int timed_out(sl_pipeline *p)
{
    sl__res_count(&p->timeouts, 1);
    return SL_RES_E_TIMEOUT;
}

/* After an attempt that did not settle the call: retry (1, *delay_ns set) or the call's result. */
static int after_attempt(sl_pipeline *p, sl_retry_call *rcall, int rc, int64_t *delay_ns)
{
    int next = sl_retry_next(p->retry, rcall, rc, delay_ns);
    if (*delay_ns >= 0) return 1;
    if (next == 0 || next == SL_RES_E_ATTEMPTS) return rc; /* done, or the last attempt's cause */
    if (next == SL_RES_E_BUDGET) sl__res_count(&p->refused_budget, 1);
    return next;
}

static int64_t timeout_now(const sl_pipeline *p)
{
    const sl_timeout_config *t = &p->timeout;
    if (t->fixed_ns > 0) return t->fixed_ns;
    if (t->latency) return sl_timeout_ns(t);
    if (!p->latency) return t->max_ns;
    sl_timeout_config with = *t;
    with.latency = p->latency;
    return sl_timeout_ns(&with);
}

/* The timeout and retry stages around attempt_once. */
static int attempts(sl_pipeline *p, run_frame *f, int64_t now)
{
    f->deadline_ns = p->has_timeout ? now + timeout_now(p) : 0;
    sl_retry_call rcall;
    if (p->retry) sl__retry_begin_at(p->retry, &rcall, now);
    for (;;) {
        if (f->deadline_ns != 0 && now >= f->deadline_ns) return timed_out(p);
        f->ctx.deadline_ns = attempt_deadline(p, f, now);
        int64_t end;
        bool refused;
        int rc = attempt_once(p, f, now, &end, &refused);
        if (!p->retry || refused) return rc; /* an open breaker ends the retries */
        if (rc == 0) {
            sl_retry_next(p->retry, &rcall, 0, NULL);
            return 0;
        }
        int64_t delay;
        int next = after_attempt(p, &rcall, rc, &delay);
        if (next != 1) return next;
        if (f->deadline_ns != 0 && end + delay >= f->deadline_ns) return timed_out(p);
        sl__res_count(&p->retries, 1);
        time_forget();
        sl__res_sleep(&p->clock, delay);
        now = pipe_now(p);
        f->ctx.attempt = rcall.attempt;
    }
}

int sl_pipeline_run(sl_pipeline *p, sl_res_call_fn fn, void *arg, const char *key, size_t key_len)
{
    run_frame f;
    f.p = p;
    f.fn = fn;
    f.arg = arg;
    f.ctx = (sl_res_ctx){.cancel = &never_cancelled, .key = key, .key_len = key_len};
    f.deadline_ns = 0;
    sl_limit_permit permit;
    int64_t now = pipe_now(p);
    int rc = admit(p, &f, &permit, &now);
    if (rc == 0) {
        rc = attempts(p, &f, now);
        leave(p, &permit, rc);
    }
    time_forget();
    pipe_stripe *stripe = &p->stripes[sl__res_stripe()];
    if (SL_LIKELY(rc == 0)) {
        sl__res_count(&stripe->successes, 1);
        return 0;
    }
    sl__res_count(&stripe->failed, 1);
    if (!p->fallback) return rc;
    sl__res_count(&p->fallbacks, 1);
    return p->fallback(p->fallback_arg, rc, &f.ctx);
}
