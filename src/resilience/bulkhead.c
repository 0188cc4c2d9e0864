/*
 * bulkhead.c - the semaphore bulkhead: at most max_concurrent calls inside
 * at once; acquire may wait up to wait_ns for a slot.
 *
 * The calls inside are one atomic counter, `active`. Acquiring without a
 * wait is a CAS loop that never lets it pass max_concurrent; releasing is a
 * fetch_sub. That path takes no lock and touches one cache line (active and
 * the admitted counter share it: both are written by every acquire).
 *
 * Waiting, when the bulkhead is full and wait_ns > 0, depends on the clock:
 *
 *  - the system clock (a zeroed sl_res_clock): a mutex and a condvar on
 *    CLOCK_MONOTONIC. A releaser signals only when someone waits. No wakeup
 *    is lost: a waiter increments `waiting` (holding the mutex) before its
 *    last try, a releaser reads `waiting` after its decrement of `active`,
 *    both sequentially consistent. Either the releaser's read comes first,
 *    and then so does its decrement, which the waiter's try sees; or the
 *    releaser sees the waiter and signals under the mutex, which the waiter
 *    holds until it sleeps.
 *  - an injected clock (now_ns set): time may be simulated, so a condvar's
 *    real deadline means nothing. The waiter polls: it sleeps through
 *    clock.sleep_ns in steps of wait_ns / 16 (at least 1 us, at most 1 ms;
 *    the last step ends exactly at the deadline) and tries after each one.
 *    A test's simulated sleep may release a slot at a chosen instant, and
 *    the waiter is admitted at the first step boundary after it.
 *
 * A woken waiter may lose the freed slot to a caller on the fast path: the
 * bulkhead bounds concurrency, it does not queue fairly.
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include "common/alloc.h"
#include "resilience/res_int.h"

#define POLL_MIN_NS 1000
#define POLL_MAX_NS 1000000

struct sl_bulkhead {
    _Atomic int32_t active; /* calls inside: 0..max_concurrent */
    _Atomic int64_t admitted;
    _Atomic int64_t rejected;
    _Atomic int32_t waiting; /* callers inside a wait */
    int32_t max_concurrent;
    bool polled; /* injected clock: wait by polling through clock.sleep_ns */
    sl_res_clock clock;
    pthread_mutex_t mu; /* the condvar's, for the system clock's waits */
    pthread_cond_t freed;
};

int sl_bulkhead_new(int32_t max_concurrent, const sl_res_clock *clock, sl_bulkhead **out, char *err, size_t err_len)
{
    *out = NULL;
    if (max_concurrent < 1) return sl__res_invalid(err, err_len, "max_concurrent: %d is below 1", max_concurrent);
    sl_bulkhead *b = SL_NEW(sl_bulkhead);
    atomic_init(&b->active, 0);
    atomic_init(&b->admitted, 0);
    atomic_init(&b->rejected, 0);
    atomic_init(&b->waiting, 0);
    b->max_concurrent = max_concurrent;
    b->polled = clock && clock->now_ns;
    sl__res_clock_resolve(clock, &b->clock);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&b->freed, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&b->mu, NULL);
    *out = b;
    return 0;
}

void sl_bulkhead_free(sl_bulkhead *b)
{
    if (!b) return;
    SL_ASSERT(atomic_load(&b->waiting) == 0); /* freeing under a waiter's feet */
    pthread_cond_destroy(&b->freed);
    pthread_mutex_destroy(&b->mu);
    sl_free(b);
}

/* One lock-free attempt: true when a slot was taken. */
static bool try_take(sl_bulkhead *b)
{
    int32_t cur = atomic_load_explicit(&b->active, memory_order_relaxed);
    while (cur < b->max_concurrent) {
        if (atomic_compare_exchange_weak_explicit(&b->active, &cur, cur + 1, memory_order_acquire,
                                                  memory_order_relaxed)) {
            SL_ASSERT(cur + 1 <= b->max_concurrent);
            return true;
        }
    }
    return false;
}

static struct timespec deadline_after(int64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + ns;
    return (struct timespec){.tv_sec = t / 1000000000, .tv_nsec = t % 1000000000};
}

/* The system clock's wait: on the condvar until a slot is taken or the deadline passes. */
static bool wait_condvar(sl_bulkhead *b, int64_t wait_ns)
{
    struct timespec deadline = deadline_after(wait_ns);
    bool taken = false;
    pthread_mutex_lock(&b->mu);
    atomic_fetch_add(&b->waiting, 1); /* seq_cst: see the file comment */
    for (;;) {
        if ((taken = try_take(b))) break;
        if (pthread_cond_timedwait(&b->freed, &b->mu, &deadline) == ETIMEDOUT) {
            taken = try_take(b);
            break;
        }
    }
    atomic_fetch_sub(&b->waiting, 1);
    pthread_mutex_unlock(&b->mu);
    return taken;
}

/* An injected clock's wait: sleep a step, try, until the deadline (see the file comment). */
static bool wait_polled(sl_bulkhead *b, int64_t wait_ns)
{
    int64_t step = SL_MAX(POLL_MIN_NS, SL_MIN(POLL_MAX_NS, wait_ns / 16));
    int64_t deadline = sl__res_now(&b->clock) + wait_ns;
    bool taken = false;
    atomic_fetch_add(&b->waiting, 1);
    for (int64_t now = sl__res_now(&b->clock); now < deadline; now = sl__res_now(&b->clock)) {
        sl__res_sleep(&b->clock, SL_MIN(step, deadline - now));
        if ((taken = try_take(b))) break;
    }
    atomic_fetch_sub(&b->waiting, 1);
    return taken;
}

int sl_bulkhead_acquire(sl_bulkhead *b, int64_t wait_ns)
{
    bool taken = try_take(b);
    if (SL_UNLIKELY(!taken) && wait_ns > 0) taken = b->polled ? wait_polled(b, wait_ns) : wait_condvar(b, wait_ns);
    if (SL_UNLIKELY(!taken)) {
        atomic_fetch_add_explicit(&b->rejected, 1, memory_order_relaxed);
        return SL_RES_E_FULL;
    }
    atomic_fetch_add_explicit(&b->admitted, 1, memory_order_relaxed);
    return 0;
}

void sl_bulkhead_release(sl_bulkhead *b)
{
    int32_t was = atomic_fetch_sub(&b->active, 1); /* seq_cst: ordered before the read of waiting */
    SL_ASSERT(was >= 1);                           /* a release without its acquire */
    if (SL_LIKELY(atomic_load(&b->waiting) == 0) || b->polled) return;
    pthread_mutex_lock(&b->mu);
    pthread_cond_signal(&b->freed);
    pthread_mutex_unlock(&b->mu);
}

void sl_bulkhead_stats_get(sl_bulkhead *b, sl_bulkhead_stats *out)
{
    out->active = atomic_load_explicit(&b->active, memory_order_relaxed);
    out->waiting = atomic_load_explicit(&b->waiting, memory_order_relaxed);
    out->max_concurrent = b->max_concurrent;
    out->admitted = atomic_load_explicit(&b->admitted, memory_order_relaxed);
    out->rejected = atomic_load_explicit(&b->rejected, memory_order_relaxed);
    out->saturation = (double)out->active / b->max_concurrent;
}
