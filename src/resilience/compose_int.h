/*
 * compose_int.h - what retry.c, hedge.c, pipeline.c and parse.c share
 * (private to src/resilience; the layer-wide pieces are in res_int.h).
 *
 * Striped counters: a counter every call bumps (a pipeline's calls and
 * successes, a retry policy's calls) is split into SL__STRIPES copies on
 * their own cache lines, and each thread bumps the copy of its stripe, so
 * two threads sharing one policy do not bounce one line between their cores
 * on every call. Readers (the stats getters, the retry budget) add the
 * copies. A thread's stripe is fixed at its first call, round robin.
 */
#ifndef SL_RESILIENCE_COMPOSE_INT_H
#define SL_RESILIENCE_COMPOSE_INT_H

#include "common/alloc.h"
#include "resilience/res_int.h"

#define SL__STRIPES 8
#define SL__CACHE_LINE 64

extern _Atomic uint32_t sl__res_stripe_next;
extern _Thread_local uint32_t sl__res_stripe_id; /* 1 + the stripe, 0 before the thread's first call */

static inline uint32_t sl__res_stripe(void)
{
    uint32_t id = sl__res_stripe_id;
    if (SL_UNLIKELY(id == 0)) {
        id = 1 + atomic_fetch_add_explicit(&sl__res_stripe_next, 1, memory_order_relaxed) % SL__STRIPES;
        sl__res_stripe_id = id;
    }
    return id - 1;
}

static inline void sl__res_count(_Atomic int64_t *counter, int64_t n)
{
    atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

static inline int64_t sl__res_load(const _Atomic int64_t *counter)
{
    return atomic_load_explicit((_Atomic int64_t *)counter, memory_order_relaxed);
}

/* n zeroed bytes starting on a cache line (a struct with _Alignas(SL__CACHE_LINE) members needs it);
   *mem is what to sl_free. */
static inline void *sl__res_calloc_lines(size_t n, void **mem)
{
    *mem = sl_calloc(1, n + SL__CACHE_LINE);
    uintptr_t at = ((uintptr_t)*mem + SL__CACHE_LINE - 1) & ~(uintptr_t)(SL__CACHE_LINE - 1);
    return (void *)at;
}

/* retry.c: sl_retry_begin with the time the caller already read (the pipeline reads the clock once). */
void sl__retry_begin_at(sl_retry *r, sl_retry_call *call, int64_t now_ns);
/* retry.c: the classification the pipeline applies to a result (RETRYABLE when no retry policy). */
sl_retry_class sl__retry_classify(const sl_retry *r, int result);

/* pipeline.c: a parsed pipeline owns `owned` (its policies and description), released by free_fn at
   sl_pipeline_free; parse.c reads it back to describe the pipeline. */
void sl__pipeline_own(sl_pipeline *p, void *owned, void (*free_fn)(void *owned));
void *sl__pipeline_owned(const sl_pipeline *p);

#endif
