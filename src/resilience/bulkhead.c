/*
 * bulkhead.c - the semaphore bulkhead: at most max_concurrent calls at once.
 *
 * The count of active calls is one atomic: acquire is a CAS loop that never
 * takes a lock when a slot is free (the common case), release a decrement.
 * A caller that may wait (wait_ns > 0) and finds no slot:
 *   - real clock: sleeps on a condition variable with the deadline; release
 *     signals it only when someone waits (an atomic count of waiters, so an
 *     uncontended release stays lock-free);
 *   - simulated clock: polls, sleeping through clock.sleep_ns in steps of
 *     wait_ns / 16 (at least 1 us), so a test that advances time in sleep_ns
 *     sees deterministic timeouts.
 * Stats are counters; saturation is active / max_concurrent.
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include "resilience/res_int.h"
#include "common/alloc.h"

struct sl_bulkhead {
    _Atomic int32_t active;
    _Atomic int32_t waiting;
    _Atomic int64_t admitted, rejected;
    int32_t max_concurrent;
    bool real_clock;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    sl_res_clock clock;
};

int sl_bulkhead_new(int32_t max_concurrent, const sl_res_clock *clock, sl_bulkhead **out, char *err, size_t err_len)
{
    *out = NULL;
    if (max_concurrent < 1) return sl__res_invalid(err, err_len, "bulkhead max_concurrent: %d is below 1", max_concurrent);
    sl_bulkhead *b = SL_NEW(sl_bulkhead);
    b->max_concurrent = max_concurrent;
    b->real_clock = !clock || !clock->now_ns;
    sl__res_clock_resolve(clock, &b->clock);
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = b;
    return 0;
}

void sl_bulkhead_free(sl_bulkhead *b)
{
    if (!b) return;
    SL_ASSERT(atomic_load(&b->waiting) == 0);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->mu);
    sl_free(b);
}

static bool try_take(sl_bulkhead *b)
{
    int32_t n = atomic_load_explicit(&b->active, memory_order_relaxed);
    while (n < b->max_concurrent)
        if (atomic_compare_exchange_weak_explicit(&b->active, &n, n + 1, memory_order_acquire, memory_order_relaxed))
            return true;
    return false;
}

/* Real clock: wait on the condition variable until a release or the deadline. */
static bool wait_real(sl_bulkhead *b, int64_t wait_ns)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t end = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec + wait_ns;
    struct timespec dl = {end / 1000000000, end % 1000000000};
    bool got = false;
    pthread_mutex_lock(&b->mu);
    atomic_fetch_add(&b->waiting, 1);
    /* Pairs with release's: either it sees this waiter and signals, or this try_take sees its slot. */
    atomic_thread_fence(memory_order_seq_cst);
    while (!(got = try_take(b)))
        if (pthread_cond_timedwait(&b->cond, &b->mu, &dl) == ETIMEDOUT) {
            got = try_take(b);
            break;
        }
    atomic_fetch_sub(&b->waiting, 1);
    pthread_mutex_unlock(&b->mu);
    return got;
}

/* Simulated clock: poll, letting the clock's sleep move time. */
static bool wait_sim(sl_bulkhead *b, int64_t wait_ns)
{
    int64_t end = sl__res_now(&b->clock) + wait_ns, step = wait_ns / 16 > 1000 ? wait_ns / 16 : 1000;
    atomic_fetch_add(&b->waiting, 1);
    bool got = false;
    while (!(got = try_take(b)) && sl__res_now(&b->clock) < end) sl__res_sleep(&b->clock, step);
    atomic_fetch_sub(&b->waiting, 1);
    return got;
}

int sl_bulkhead_acquire(sl_bulkhead *b, int64_t wait_ns)
{
    bool got = try_take(b);
    if (!got && wait_ns > 0) got = b->real_clock ? wait_real(b, wait_ns) : wait_sim(b, wait_ns);
    atomic_fetch_add_explicit(got ? &b->admitted : &b->rejected, 1, memory_order_relaxed);
    return got ? 0 : SL_RES_E_FULL;
}

void sl_bulkhead_release(sl_bulkhead *b)
{
    int32_t was = atomic_fetch_sub_explicit(&b->active, 1, memory_order_seq_cst);
    SL_ASSERT(was > 0); /* a release without its acquire */
    if (b->real_clock && atomic_load_explicit(&b->waiting, memory_order_seq_cst) > 0) {
        pthread_mutex_lock(&b->mu);
        pthread_cond_signal(&b->cond);
        pthread_mutex_unlock(&b->mu);
    }
}

void sl_bulkhead_stats_get(sl_bulkhead *b, sl_bulkhead_stats *out)
{
    out->active = atomic_load(&b->active);
    out->waiting = atomic_load(&b->waiting);
    out->max_concurrent = b->max_concurrent;
    out->admitted = atomic_load(&b->admitted);
    out->rejected = atomic_load(&b->rejected);
    out->saturation = (double)out->active / b->max_concurrent;
}
