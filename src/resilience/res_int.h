/*
 * res_int.h - what the files of src/resilience share (private).
 *
 * Files (one per policy): common.c (clock, errors, cancellation), clock.c (the system clock), latency.c,
 * timeout.c, breaker.c, bulkhead.c, pool.c, ratelimit.c, limit.c, retry.c,
 * hedge.c, pipeline.c, parse.c. Public API: include/sluice/resilience.h.
 *
 * Rules every policy keeps: thread-safe (a mutex, or atomics where the hot
 * path needs them); no allocation after _new; time only through its
 * sl_res_clock; every state machine drawn at the top of its file with one
 * setter that asserts the edge.
 */
#ifndef SL_RESILIENCE_RES_INT_H
#define SL_RESILIENCE_RES_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include "sluice/resilience.h"
#include "common/base.h"

/* CLOCK_MONOTONIC in ns, from the TSC where the kernel keeps time with it (clock.c); which of the two. */
int64_t sl__res_clock_system(void);
const char *sl__res_clock_source(void);

/* The clock to use: cfg's when set, else sl__res_clock_system + nanosleep. */
void sl__res_clock_resolve(const sl_res_clock *in, sl_res_clock *out);
static inline int64_t sl__res_now(const sl_res_clock *c) { return c->now_ns(c->arg); }
static inline void sl__res_sleep(const sl_res_clock *c, int64_t ns)
{
    if (ns > 0) c->sleep_ns(c->arg, ns);
}
/* Writes "what: why" into err (may be NULL) and returns SL_RES_E_INVALID. */
int sl__res_invalid(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A lock for critical sections of a few dozen instructions that never block or call out (the breaker's).
   Measured against a pthread mutex (bench/sl_res_bench.c, docs/internals/resilience.md): uncontended it
   saves one locked instruction and a call per lock/unlock pair (~10 ns of a ~100 ns pipeline), and with two
   threads contending it hands over without the futex sleep and wake a mutex pays. A holder preempted by
   the scheduler is waited for with sched_yield after a short spin, so an oversubscribed machine (more
   runnable threads than cores) does not burn its time slices spinning. */
typedef struct sl__res_lock {
    _Atomic bool held;
} sl__res_lock;
void sl__res_lock_slow(sl__res_lock *l);
static inline void sl__res_lock_init(sl__res_lock *l) { atomic_init(&l->held, false); }
static inline void sl__res_lock_take(sl__res_lock *l)
{
    if (SL_LIKELY(!atomic_exchange_explicit(&l->held, true, memory_order_acquire))) return;
    sl__res_lock_slow(l);
}
static inline void sl__res_lock_give(sl__res_lock *l) { atomic_store_explicit(&l->held, false, memory_order_release); }

/* A small fast PRNG (splitmix64) for jitter: state per policy, updated atomically. */
uint64_t sl__res_rand(_Atomic uint64_t *state);

#endif
