/*
 * bufpool.h - a bounded cache of large buffers, by power-of-two class.
 *
 * Why: a large request frame (a Produce of ~1 MiB) freed back to malloc
 * is, for allocations this size, returned to the kernel (munmap or heap
 * trim), and the next frame faults every page in again, zeroed: measured,
 * a fifth of the broker's CPU went to those faults at 2M msgs/s. Keeping
 * a few freed buffers mapped avoids that.
 *
 * Buffers below SL_BUFPOOL_MIN come from malloc as usual (malloc keeps
 * those itself). Above it, a request is rounded up to a power of two and
 * served from that class's stack of free buffers, or malloc'ed. A freed
 * buffer goes back on its stack unless the stack is full or the pool
 * already holds cached_max bytes, in which case it is freed. Buffers above
 * SL_BUFPOOL_MAX bypass the pool. Not thread-safe: one pool per thread.
 */
#ifndef SL_COMMON_BUFPOOL_H
#define SL_COMMON_BUFPOOL_H

#include "common/base.h"

#define SL_BUFPOOL_MIN_SHIFT 16 /* 64 KiB */
#define SL_BUFPOOL_MAX_SHIFT 27 /* 128 MiB */
#define SL_BUFPOOL_MIN ((size_t)1 << SL_BUFPOOL_MIN_SHIFT)
#define SL_BUFPOOL_MAX ((size_t)1 << SL_BUFPOOL_MAX_SHIFT)
#define SL_BUFPOOL_CLASSES (SL_BUFPOOL_MAX_SHIFT - SL_BUFPOOL_MIN_SHIFT + 1)
#define SL_BUFPOOL_DEPTH 8 /* free buffers kept per class at most */

typedef struct sl_bufpool {
    void *free[SL_BUFPOOL_CLASSES][SL_BUFPOOL_DEPTH];
    int nfree[SL_BUFPOOL_CLASSES];
    size_t cached;     /* bytes held in the free stacks */
    size_t cached_max; /* never more than this */
    uint64_t hits, misses;
} sl_bufpool;

void sl_bufpool_init(sl_bufpool *pool, size_t cached_max);
/* Frees every cached buffer. Buffers handed out stay the caller's to sl_bufpool_put or never return. */
void sl_bufpool_deinit(sl_bufpool *pool);
/* A buffer of at least size bytes; *cap is its real size, to be passed back to sl_bufpool_put. */
void *sl_bufpool_get(sl_bufpool *pool, size_t size, size_t *cap);
/* Returns a buffer from sl_bufpool_get (NULL is ignored). */
void sl_bufpool_put(sl_bufpool *pool, void *buf, size_t cap);

#endif
