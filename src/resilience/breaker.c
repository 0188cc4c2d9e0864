/*
 * breaker.c - the circuit breaker (sl_cb_*).
 *
 *              failure rate or slow rate >= threshold, with >= min_calls
 *              (CONSECUTIVE: consecutive_failures failures in a row)
 *   +--------+ -----------------------------------------------------> +------+
 *   | CLOSED |                                                        | OPEN | <--+
 *   +--------+ <--+                                                   +------+    |
 *        ^        |  half_open_calls probes done, rates below                |      |
 *        |        |  the thresholds (CONSECUTIVE: every probe succeeded)     |      |
 *        |        |                                        open_ns passed    |      |
 *        |        |                                        (seen at the next |      |
 *        |        |                                         call or query)   v      |
 *        |        |                                              +-----------+      |
 *        |        +--------------------------------------------- | HALF_OPEN | -----+
 *        |                                                       +-----------+
 *        |  sl_cb_force(CLOSED)        the probes' rates reach a threshold (as soon as
 *        |  from any state             it is certain: failures >= rate x probes), or
 *        |                             half_open_max_ns passed (CONSECUTIVE: a failure)
 *   FORCED_OPEN | FORCED_CLOSED | DISABLED  <-- sl_cb_force from any state
 *
 * | state         | admits                   | counts          | leaves by                        |
 * |---------------|--------------------------|-----------------|----------------------------------|
 * | CLOSED        | every call               | window          | verdict -> OPEN; force           |
 * | OPEN          | nothing (retry_after)    | frozen: the     | open_ns -> HALF_OPEN; force      |
 * |               |                          | counts that     |                                  |
 * |               |                          | opened it       |                                  |
 * | HALF_OPEN     | half_open_calls probes   | the probes      | probes' verdict -> CLOSED/OPEN;  |
 * |               |                          |                 | half_open_max_ns -> OPEN; force  |
 * | FORCED_OPEN   | nothing                  | nothing         | force                            |
 * | FORCED_CLOSED | every call               | window, never   | force                            |
 * |               |                          | opens           |                                  |
 * | DISABLED      | every call               | nothing         | force                            |
 *
 * Every change goes through set_state(), which asserts the edge is one of
 * the above, starts a new generation (permits of an older one are ignored
 * when released), and queues the change for on_state, called after the
 * breaker's lock is released, by the thread that made the change. (Two
 * threads changing the state at nearly the same time may run their
 * callbacks in either order or at once; each tells its own from -> to.)
 *
 * Counting. SUCCESS and FAILURE calls are counted; a call whose duration is
 * above slow_ns is also slow. IGNORED calls take no place in any window
 * (they are counted in stats.ignored since the state began), and an ignored
 * probe gives its probe back. Rates are over the counted calls:
 *   failure rate = failures / (successes + failures)
 *   slow rate    = (slow + in-flight slow) / (successes + failures + in-flight slow)
 * and min_calls compares with successes + failures + in-flight slow: a
 * dependency where every call hangs opens the breaker without any call
 * returning. COUNT: a ring of the last `window` outcomes (one byte each),
 * running totals; min_calls is capped at `window` (as Resilience4j does).
 * TIME: `window` per-second buckets (the calls of the last window - 1 to
 * window seconds), running totals, slid at each call or query. CONSECUTIVE:
 * a run length; the counts since the state began, for stats only.
 *
 * In-flight calls. A table of max_in_flight slots, a free stack of their
 * indexes, and a list of the current generation's slots in start order.
 * A cursor walks the list as time passes: the slots before it have been
 * past slow_ns and are counted in in_flight_slow, so the rule costs O(1)
 * amortized per call, not a scan. (Starts taken on different threads may
 * reach the lock out of order: each slot's key is its start made monotone
 * along the list, which can only count a call slow a few ns late.) A call
 * beyond max_in_flight is admitted but untracked (slot -1).
 *
 * Threads: one lock (sl__res_lock: a spin lock that yields; the critical
 * sections are short and never call out). The closed-state success path is
 * a clock read and a short critical section on acquire and on release; the window,
 * the in-flight table and the state must change together (a transition
 * resets all three against one generation), and a single lock keeps every
 * rule exact: the COUNT window is exactly the last N calls in release
 * order, never transiently over-counted into a spurious opening, as
 * separately updated atomic counters would be. The lock is never held
 * while calling out. Measured costs: docs/internals/resilience.md.
 *
 * Memory, fixed at _new: the struct, max_in_flight x 36 bytes, plus the
 * COUNT ring (window bytes) or the TIME buckets (window x 12 bytes).
 */
#include <math.h>
#include <string.h>
#include "common/alloc.h"
#include "resilience/res_int.h"

#define CB_COUNT_WINDOW_MAX 1000000
#define CB_TIME_WINDOW_MAX 3600
#define CB_IN_FLIGHT_MAX (1 << 20)
#define CB_PROBES_MAX 1000000
#define CB_CHANGES_MAX 4
#define OUT_FAIL 1u
#define OUT_SLOW 2u
#define NS_PER_S INT64_C(1000000000)

typedef struct cb_flight {
    int64_t start_ns, key_ns; /* the permit's start; the same made monotone along the list */
    uint32_t gen;
    int32_t prev, next;       /* the current generation's list (-1 ends it) */
    bool used, listed, slow;  /* slow: before the cursor, counted in in_flight_slow */
} cb_flight;

typedef struct cb_counts {
    int64_t successes, failures, slow;
} cb_counts;

typedef struct cb_second {
    int32_t successes, failures, slow;
} cb_second;

typedef struct cb_changes {
    int n;
    sl_cb_state from[CB_CHANGES_MAX], to[CB_CHANGES_MAX];
} cb_changes;

struct sl_cb {
    sl__res_lock mu;
    sl_cb_config cfg;  /* clock resolved, min_calls capped */
    _Atomic int state; /* written under mu */
    uint32_t gen;
    int64_t t0_ns, open_since_ns, half_open_since_ns;
    /* What the verdict is over: the window's totals (CLOSED), the probes (HALF_OPEN), the counts since the
       state began (CONSECUTIVE); frozen in OPEN. */
    cb_counts cur;
    bool cur_is_window;     /* cur is a COUNT or TIME window (min_calls applies) */
    int64_t open_in_flight_slow; /* OPEN: the in-flight slow calls it was opened with (stats) */
    int64_t ignored, in_flight, rejected;
    int32_t consecutive, probes;
    uint8_t *ring;     /* COUNT */
    int32_t ring_pos, ring_len;
    cb_second *seconds; /* TIME */
    int64_t head_second;
    cb_flight *flights;
    int32_t *free_stack, nfree;
    int32_t list_head, list_tail, cursor;
    int64_t in_flight_slow;
};

static const char *const state_names[] = {"CLOSED", "OPEN", "HALF_OPEN", "FORCED_OPEN", "FORCED_CLOSED", "DISABLED"};

const char *sl_cb_state_name(sl_cb_state state)
{
    return (unsigned)state < SL_ARRAY_LEN(state_names) ? state_names[state] : "UNKNOWN";
}

void sl_cb_config_default(sl_cb_config *cfg)
{
    *cfg = (sl_cb_config){
        .mode = SL_CB_COUNT_WINDOW,
        .window = 100,
        .min_calls = 100,
        .failure_rate = 50,
        .slow_rate = 100,
        .slow_ns = 60 * NS_PER_S,
        .consecutive_failures = 5,
        .open_ns = 60 * NS_PER_S,
        .half_open_calls = 10,
        .half_open_max_ns = 0,
        .max_in_flight = 1024,
    };
}

static bool rate_ok(double r) { return r >= 0 && r <= 100; }

static int check_config(const sl_cb_config *c, char *err, size_t len)
{
    if (c->mode != SL_CB_COUNT_WINDOW && c->mode != SL_CB_TIME_WINDOW && c->mode != SL_CB_CONSECUTIVE)
        return sl__res_invalid(err, len, "breaker mode: %d is not COUNT, TIME or CONSECUTIVE", (int)c->mode);
    int32_t wmax = c->mode == SL_CB_TIME_WINDOW ? CB_TIME_WINDOW_MAX : CB_COUNT_WINDOW_MAX;
    if (c->mode != SL_CB_CONSECUTIVE && (c->window < 1 || c->window > wmax))
        return sl__res_invalid(err, len, "breaker window: %d is outside 1..%d", c->window, wmax);
    if (c->mode != SL_CB_CONSECUTIVE && c->min_calls < 1)
        return sl__res_invalid(err, len, "breaker min_calls: %d is below 1", c->min_calls);
    if (!rate_ok(c->failure_rate))
        return sl__res_invalid(err, len, "breaker failure_rate: %g is outside 0..100 percent", c->failure_rate);
    if (!rate_ok(c->slow_rate))
        return sl__res_invalid(err, len, "breaker slow_rate: %g is outside 0..100 percent", c->slow_rate);
    if (c->slow_ns <= 0) return sl__res_invalid(err, len, "breaker slow_ns: %lld is not positive", (long long)c->slow_ns);
    if (c->mode == SL_CB_CONSECUTIVE && c->consecutive_failures < 1)
        return sl__res_invalid(err, len, "breaker consecutive_failures: %d is below 1", c->consecutive_failures);
    if (c->open_ns <= 0) return sl__res_invalid(err, len, "breaker open_ns: %lld is not positive", (long long)c->open_ns);
    if (c->half_open_calls < 1 || c->half_open_calls > CB_PROBES_MAX)
        return sl__res_invalid(err, len, "breaker half_open_calls: %d is outside 1..%d", c->half_open_calls,
                               CB_PROBES_MAX);
    if (c->half_open_max_ns < 0)
        return sl__res_invalid(err, len, "breaker half_open_max_ns: %lld is negative", (long long)c->half_open_max_ns);
    if (c->max_in_flight < 0 || c->max_in_flight > CB_IN_FLIGHT_MAX)
        return sl__res_invalid(err, len, "breaker max_in_flight: %d is outside 0..%d", c->max_in_flight,
                               CB_IN_FLIGHT_MAX);
    return 0;
}

int sl_cb_new(const sl_cb_config *cfg, sl_cb **out, char *err, size_t err_len)
{
    *out = NULL;
    int rc = check_config(cfg, err, err_len);
    if (rc) return rc;
    sl_cb *cb = SL_NEW(sl_cb);
    cb->cfg = *cfg;
    sl__res_clock_resolve(&cfg->clock, &cb->cfg.clock);
    if (cfg->mode == SL_CB_COUNT_WINDOW) {
        cb->cfg.min_calls = SL_MIN(cfg->min_calls, cfg->window);
        cb->ring = sl_calloc((size_t)cfg->window, 1);
    } else if (cfg->mode == SL_CB_TIME_WINDOW) {
        cb->seconds = sl_calloc((size_t)cfg->window, sizeof *cb->seconds);
    }
    cb->flights = sl_calloc((size_t)cfg->max_in_flight + 1, sizeof *cb->flights);
    cb->free_stack = sl_calloc((size_t)cfg->max_in_flight + 1, sizeof *cb->free_stack);
    for (int32_t i = 0; i < cfg->max_in_flight; i++) cb->free_stack[i] = cfg->max_in_flight - 1 - i;
    cb->nfree = cfg->max_in_flight;
    cb->list_head = cb->list_tail = cb->cursor = -1;
    cb->cur_is_window = cfg->mode != SL_CB_CONSECUTIVE;
    sl__res_lock_init(&cb->mu);
    atomic_init(&cb->state, SL_CB_CLOSED);
    cb->t0_ns = sl__res_now(&cb->cfg.clock);
    *out = cb;
    return 0;
}

void sl_cb_free(sl_cb *cb)
{
    if (!cb) return;
    sl_free(cb->ring);
    sl_free(cb->seconds);
    sl_free(cb->flights);
    sl_free(cb->free_stack);
    sl_free(cb);
}

static sl_cb_state state_of(const sl_cb *cb)
{
    return (sl_cb_state)atomic_load_explicit(&((sl_cb *)cb)->state, memory_order_relaxed);
}

static bool counting(sl_cb_state s) { return s == SL_CB_CLOSED || s == SL_CB_FORCED_CLOSED || s == SL_CB_HALF_OPEN; }

/* ---- in-flight slots ---- */

static int32_t flight_take(sl_cb *cb, int64_t now)
{
    if (cb->nfree == 0) return -1;
    int32_t i = cb->free_stack[--cb->nfree];
    cb_flight *f = &cb->flights[i];
    SL_ASSERT(!f->used);
    int64_t tail_key = cb->list_tail >= 0 ? cb->flights[cb->list_tail].key_ns : INT64_MIN;
    *f = (cb_flight){.start_ns = now, .key_ns = SL_MAX(now, tail_key), .gen = cb->gen, .prev = cb->list_tail,
                     .next = -1, .used = true, .listed = true};
    if (cb->list_tail >= 0) cb->flights[cb->list_tail].next = i;
    else cb->list_head = i;
    cb->list_tail = i;
    if (cb->cursor < 0) cb->cursor = i;
    return i;
}

static void flight_unlink(sl_cb *cb, int32_t i)
{
    cb_flight *f = &cb->flights[i];
    if (f->slow) cb->in_flight_slow--;
    if (cb->cursor == i) cb->cursor = f->next;
    if (f->prev >= 0) cb->flights[f->prev].next = f->next;
    else cb->list_head = f->next;
    if (f->next >= 0) cb->flights[f->next].prev = f->prev;
    else cb->list_tail = f->prev;
    f->listed = false;
    SL_ASSERT(cb->in_flight_slow >= 0);
}

static void flight_free(sl_cb *cb, const sl_cb_permit *permit)
{
    SL_ASSERT(permit->slot < cb->cfg.max_in_flight);
    cb_flight *f = &cb->flights[permit->slot];
    /* A permit released twice, or one that was never handed out, is a bug in the caller. */
    SL_ASSERT(f->used && f->start_ns == permit->start_ns && f->gen == permit->epoch);
    if (f->listed) flight_unlink(cb, permit->slot);
    f->used = false;
    cb->free_stack[cb->nfree++] = permit->slot;
}

/* Moves the cursor past the calls now in flight for longer than slow_ns; true if it moved. */
static bool flights_mark_slow(sl_cb *cb, int64_t now)
{
    bool moved = false;
    while (cb->cursor >= 0 && now - cb->flights[cb->cursor].key_ns > cb->cfg.slow_ns) {
        cb_flight *f = &cb->flights[cb->cursor];
        f->slow = true;
        cb->in_flight_slow++;
        cb->cursor = f->next;
        moved = true;
    }
    return moved;
}

/* A new generation: the calls in flight stay in their slots until released, but no longer count. */
static void flights_detach(sl_cb *cb)
{
    for (int32_t i = cb->list_head; i >= 0; i = cb->flights[i].next) {
        cb->flights[i].listed = false;
        cb->flights[i].slow = false;
    }
    cb->list_head = cb->list_tail = cb->cursor = -1;
    cb->in_flight_slow = 0;
}

/* ---- windows ---- */

static int64_t second_of(const sl_cb *cb, int64_t now) { return now <= cb->t0_ns ? 0 : (now - cb->t0_ns) / NS_PER_S; }

static void counts_reset(sl_cb *cb, int64_t now)
{
    cb->cur = (cb_counts){0};
    cb->ignored = 0;
    cb->consecutive = 0;
    cb->ring_pos = cb->ring_len = 0;
    if (cb->seconds) memset(cb->seconds, 0, (size_t)cb->cfg.window * sizeof *cb->seconds);
    cb->head_second = second_of(cb, now);
}

static void counts_add(cb_counts *c, unsigned out, int64_t sign)
{
    if (out & OUT_FAIL) c->failures += sign;
    else c->successes += sign;
    if (out & OUT_SLOW) c->slow += sign;
}

/* TIME: drops the seconds that left the window; true if any call left with them. */
static bool window_slide(sl_cb *cb, int64_t now)
{
    int64_t s = second_of(cb, now), w = cb->cfg.window;
    if (s <= cb->head_second) return false;
    int64_t before = cb->cur.successes + cb->cur.failures;
    for (int64_t t = SL_MAX(cb->head_second + 1, s - w + 1); t <= s; t++) {
        cb_second *b = &cb->seconds[t % w];
        cb->cur.successes -= b->successes;
        cb->cur.failures -= b->failures;
        cb->cur.slow -= b->slow;
        *b = (cb_second){0};
    }
    cb->head_second = s;
    SL_ASSERT(cb->cur.successes >= 0 && cb->cur.failures >= 0 && cb->cur.slow >= 0);
    return cb->cur.successes + cb->cur.failures != before;
}

static void window_record(sl_cb *cb, unsigned out)
{
    if (cb->cfg.mode == SL_CB_COUNT_WINDOW) {
        if (cb->ring_len == cb->cfg.window) counts_add(&cb->cur, cb->ring[cb->ring_pos], -1);
        else cb->ring_len++;
        cb->ring[cb->ring_pos] = (uint8_t)out;
        if (++cb->ring_pos == cb->cfg.window) cb->ring_pos = 0; /* not %: a division costs more than the rest */
    } else {
        cb_second *b = &cb->seconds[cb->head_second % cb->cfg.window];
        if (out & OUT_FAIL) b->failures++;
        else b->successes++;
        if (out & OUT_SLOW) b->slow++;
    }
    counts_add(&cb->cur, out, 1);
}

/* ---- the state machine ---- */

static bool edge_ok(sl_cb_state from, sl_cb_state to, bool forced)
{
    if (forced) return to == SL_CB_FORCED_OPEN || to == SL_CB_FORCED_CLOSED || to == SL_CB_DISABLED || to == SL_CB_CLOSED;
    return (from == SL_CB_CLOSED && to == SL_CB_OPEN) || (from == SL_CB_OPEN && to == SL_CB_HALF_OPEN) ||
           (from == SL_CB_HALF_OPEN && (to == SL_CB_CLOSED || to == SL_CB_OPEN));
}

/* The one setter: every edge of the diagram, nothing else. OPEN keeps the counts that opened it (stats). */
static void set_state(sl_cb *cb, sl_cb_state to, bool forced, int64_t now, cb_changes *ch)
{
    sl_cb_state from = state_of(cb);
    SL_ASSERT(edge_ok(from, to, forced));
    atomic_store_explicit(&cb->state, (int)to, memory_order_relaxed);
    cb->gen++;
    cb->open_in_flight_slow = to == SL_CB_OPEN ? cb->in_flight_slow : 0;
    flights_detach(cb);
    cb->in_flight = 0;
    cb->probes = 0;
    cb->open_since_ns = to == SL_CB_OPEN || to == SL_CB_FORCED_OPEN ? now : 0;
    cb->half_open_since_ns = to == SL_CB_HALF_OPEN ? now : 0;
    if (to != SL_CB_OPEN) {
        counts_reset(cb, now);
        cb->cur_is_window = cb->cfg.mode != SL_CB_CONSECUTIVE && (to == SL_CB_CLOSED || to == SL_CB_FORCED_CLOSED);
    }
    if (from == to) return;
    SL_ASSERT(ch->n < CB_CHANGES_MAX);
    ch->from[ch->n] = from;
    ch->to[ch->n] = to;
    ch->n++;
}

static bool at_or_above(double count, double rate, double of) { return rate > 0 && count * 100.0 >= rate * of; }

static void verdict_closed(sl_cb *cb, int64_t now, cb_changes *ch)
{
    const sl_cb_config *c = &cb->cfg;
    if (c->mode == SL_CB_CONSECUTIVE) {
        if (cb->consecutive >= c->consecutive_failures) set_state(cb, SL_CB_OPEN, false, now, ch);
        return;
    }
    int64_t counted = cb->cur.successes + cb->cur.failures, n = counted + cb->in_flight_slow;
    if (n < c->min_calls) return;
    if ((counted > 0 && at_or_above((double)cb->cur.failures, c->failure_rate, (double)counted)) ||
        at_or_above((double)(cb->cur.slow + cb->in_flight_slow), c->slow_rate, (double)n))
        set_state(cb, SL_CB_OPEN, false, now, ch);
}

/* Decides as soon as the outcome is certain: against all half_open_calls probes, the finished ones and the
   ones still in flight past slow_ns. */
static void verdict_half_open(sl_cb *cb, int64_t now, cb_changes *ch)
{
    const sl_cb_config *c = &cb->cfg;
    double probes = (double)c->half_open_calls;
    int64_t done = cb->cur.successes + cb->cur.failures;
    bool fail;
    if (c->mode == SL_CB_CONSECUTIVE)
        fail = cb->cur.failures > 0;
    else
        fail = at_or_above((double)cb->cur.failures, c->failure_rate, probes) ||
               at_or_above((double)(cb->cur.slow + cb->in_flight_slow), c->slow_rate, probes);
    if (fail) set_state(cb, SL_CB_OPEN, false, now, ch);
    else if (done >= c->half_open_calls) set_state(cb, SL_CB_CLOSED, false, now, ch);
}

static void verdict(sl_cb *cb, int64_t now, cb_changes *ch)
{
    sl_cb_state s = state_of(cb);
    if (s == SL_CB_CLOSED) verdict_closed(cb, now, ch);
    else if (s == SL_CB_HALF_OPEN) verdict_half_open(cb, now, ch);
}

/* Time passes: OPEN's and HALF_OPEN's timers, the TIME window, the in-flight calls turning slow. */
static void advance(sl_cb *cb, int64_t now, cb_changes *ch)
{
    sl_cb_state s = state_of(cb);
    if (s == SL_CB_OPEN && now - cb->open_since_ns >= cb->cfg.open_ns) {
        set_state(cb, SL_CB_HALF_OPEN, false, now, ch);
        return;
    }
    if (s == SL_CB_HALF_OPEN && cb->cfg.half_open_max_ns > 0 &&
        now - cb->half_open_since_ns >= cb->cfg.half_open_max_ns) {
        set_state(cb, SL_CB_OPEN, false, now, ch);
        return;
    }
    if (!counting(s)) return;
    bool moved = flights_mark_slow(cb, now);
    if (cb->cfg.mode == SL_CB_TIME_WINDOW && s != SL_CB_HALF_OPEN) moved |= window_slide(cb, now);
    if (moved) verdict(cb, now, ch);
}

static void lock_advance(sl_cb *cb, int64_t now, cb_changes *ch)
{
    ch->n = 0;
    sl__res_lock_take(&cb->mu);
    advance(cb, now, ch);
}

/* Unlocks, then tells on_state about each change, outside the lock. */
static void unlock_notify(sl_cb *cb, const cb_changes *ch)
{
    sl__res_lock_give(&cb->mu);
    for (int i = 0; i < ch->n; i++)
        if (cb->cfg.on_state) cb->cfg.on_state(cb->cfg.on_state_arg, ch->from[i], ch->to[i]);
}

/* ---- calls ---- */

/* How long a refused call should wait: never 0, and no overflow when open_ns or half_open_max_ns is near
   INT64_MAX ("until forced"). OPEN: until HALF_OPEN. HALF_OPEN with no probe left: until half_open_max_ns
   ends it; without that limit the probes decide, and the round is given open_ns from its start -- once
   that has passed, open_ns again (how long a failing round would keep it open). */
static int64_t retry_after(const sl_cb *cb, sl_cb_state s, int64_t now)
{
    if (s == SL_CB_FORCED_OPEN) return INT64_MAX;
    int64_t since = s == SL_CB_OPEN ? cb->open_since_ns : cb->half_open_since_ns;
    int64_t limit = s == SL_CB_OPEN || cb->cfg.half_open_max_ns == 0 ? cb->cfg.open_ns : cb->cfg.half_open_max_ns;
    int64_t elapsed = SL_MAX(now - since, 0); /* < 0: this thread read the clock before the change */
    return elapsed < limit ? limit - elapsed : cb->cfg.open_ns;
}

int sl_cb_acquire(sl_cb *cb, sl_cb_permit *permit, int64_t *retry_after_ns)
{
    int64_t now = sl__res_now(&cb->cfg.clock);
    cb_changes ch;
    lock_advance(cb, now, &ch);
    sl_cb_state s = state_of(cb);
    int rc = 0;
    /* A refused permit carries the previous generation: released by mistake, it is ignored. */
    *permit = (sl_cb_permit){.start_ns = now, .epoch = cb->gen - 1, .slot = -1};
    if (s == SL_CB_OPEN || s == SL_CB_FORCED_OPEN || (s == SL_CB_HALF_OPEN && cb->probes >= cb->cfg.half_open_calls)) {
        cb->rejected++;
        if (retry_after_ns) *retry_after_ns = retry_after(cb, s, now);
        rc = SL_RES_E_OPEN;
    } else {
        permit->epoch = cb->gen;
        if (counting(s)) {
            cb->in_flight++;
            if (s == SL_CB_HALF_OPEN) cb->probes++;
            permit->slot = flight_take(cb, now);
        }
    }
    unlock_notify(cb, &ch);
    return rc;
}

static void record(sl_cb *cb, sl_cb_state s, unsigned out)
{
    if (cb->cfg.mode == SL_CB_CONSECUTIVE) {
        cb->consecutive = out & OUT_FAIL ? cb->consecutive + 1 : 0;
        counts_add(&cb->cur, out, 1);
    } else if (s == SL_CB_HALF_OPEN) {
        counts_add(&cb->cur, out, 1);
    } else {
        window_record(cb, out);
    }
}

void sl_cb_release(sl_cb *cb, const sl_cb_permit *permit, sl_res_outcome outcome)
{
    SL_ASSERT(outcome == SL_RES_SUCCESS || outcome == SL_RES_FAILURE || outcome == SL_RES_IGNORED);
    int64_t now = sl__res_now(&cb->cfg.clock);
    cb_changes ch;
    lock_advance(cb, now, &ch);
    if (permit->slot >= 0) flight_free(cb, permit);
    sl_cb_state s = state_of(cb);
    if (permit->epoch == cb->gen && counting(s)) {
        cb->in_flight--;
        SL_ASSERT(cb->in_flight >= 0);
        if (outcome == SL_RES_IGNORED) {
            cb->ignored++;
            if (s == SL_CB_HALF_OPEN) cb->probes--; /* gives its probe back */
        } else {
            unsigned out = (outcome == SL_RES_FAILURE ? OUT_FAIL : 0) | (now - permit->start_ns > cb->cfg.slow_ns ? OUT_SLOW : 0);
            record(cb, s, out);
            verdict(cb, now, &ch);
        }
    }
    unlock_notify(cb, &ch);
}

void sl_cb_force(sl_cb *cb, sl_cb_state state)
{
    SL_ASSERT(edge_ok(SL_CB_CLOSED, state, true));
    int64_t now = sl__res_now(&cb->cfg.clock);
    cb_changes ch;
    lock_advance(cb, now, &ch);
    set_state(cb, state, true, now, &ch);
    unlock_notify(cb, &ch);
}

sl_cb_state sl_cb_state_now(sl_cb *cb)
{
    cb_changes ch;
    lock_advance(cb, sl__res_now(&cb->cfg.clock), &ch);
    sl_cb_state s = state_of(cb);
    unlock_notify(cb, &ch);
    return s;
}

/* Rates as the verdict sees them; -1 when there is no verdict yet (below min_calls, or nothing counted). */
static void rates(const sl_cb *cb, sl_cb_state s, double *failure, double *slow)
{
    int64_t ifs = s == SL_CB_OPEN ? cb->open_in_flight_slow : cb->in_flight_slow;
    int64_t counted = cb->cur.successes + cb->cur.failures, n = counted + ifs;
    *failure = *slow = -1;
    if (n == 0 || (cb->cur_is_window && n < cb->cfg.min_calls)) return;
    *failure = counted ? 100.0 * (double)cb->cur.failures / (double)counted : 0;
    *slow = 100.0 * (double)(cb->cur.slow + ifs) / (double)n;
}

void sl_cb_stats_get(sl_cb *cb, sl_cb_stats *out)
{
    cb_changes ch;
    int64_t now = sl__res_now(&cb->cfg.clock);
    lock_advance(cb, now, &ch);
    sl_cb_state s = state_of(cb);
    *out = (sl_cb_stats){
        .state = s,
        .calls = cb->cur.successes + cb->cur.failures,
        .successes = cb->cur.successes,
        .failures = cb->cur.failures,
        .ignored = cb->ignored,
        .slow = cb->cur.slow,
        .rejected = cb->rejected,
        .in_flight = cb->in_flight,
        .in_flight_slow = cb->in_flight_slow,
        .not_permitted_since_ns = cb->open_since_ns,
    };
    rates(cb, s, &out->failure_rate, &out->slow_rate);
    unlock_notify(cb, &ch);
}
