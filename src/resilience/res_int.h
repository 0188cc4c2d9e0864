/*
 * res_int.h - what the files of src/resilience share (private).
 *
 * Files (one per policy): common.c (clock, errors, cancellation), latency.c,
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
#include "sluice/resilience.h"
#include "common/base.h"

/* The clock to use: cfg's when set, else CLOCK_MONOTONIC + nanosleep. */
void sl__res_clock_resolve(const sl_res_clock *in, sl_res_clock *out);
static inline int64_t sl__res_now(const sl_res_clock *c) { return c->now_ns(c->arg); }
static inline void sl__res_sleep(const sl_res_clock *c, int64_t ns)
{
    if (ns > 0) c->sleep_ns(c->arg, ns);
}
/* Writes "what: why" into err (may be NULL) and returns SL_RES_E_INVALID. */
int sl__res_invalid(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A small fast PRNG (splitmix64) for jitter: state per policy, updated atomically. */
uint64_t sl__res_rand(_Atomic uint64_t *state);

#endif
