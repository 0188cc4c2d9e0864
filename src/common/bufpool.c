/*
 * bufpool.c - see bufpool.h for why large buffers are cached.
 */
#include "common/bufpool.h"
#include "common/alloc.h"

void sl_bufpool_init(sl_bufpool *pool, size_t cached_max)
{
    *pool = (sl_bufpool){.cached_max = cached_max};
}

void sl_bufpool_deinit(sl_bufpool *pool)
{
    for (int c = 0; c < SL_BUFPOOL_CLASSES; c++)
        while (pool->nfree[c] > 0) sl_free(pool->free[c][--pool->nfree[c]]);
    pool->cached = 0;
}

/* The class of a pooled capacity, or -1 when the size is not pooled. */
static int class_of(size_t size)
{
    if (size < SL_BUFPOOL_MIN || size > SL_BUFPOOL_MAX) return -1;
    int shift = SL_BUFPOOL_MIN_SHIFT;
    while (((size_t)1 << shift) < size) shift++;
    return shift - SL_BUFPOOL_MIN_SHIFT;
}

void *sl_bufpool_get(sl_bufpool *pool, size_t size, size_t *cap)
{
    SL_ASSERT(cap != NULL);
    int c = class_of(size);
    if (c < 0) {
        *cap = size;
        return sl_malloc(size ? size : 1);
    }
    *cap = SL_BUFPOOL_MIN << c;
    SL_ASSERT(*cap >= size);
    if (pool->nfree[c] > 0) {
        pool->hits++;
        pool->cached -= *cap;
        return pool->free[c][--pool->nfree[c]];
    }
    pool->misses++;
    return sl_malloc(*cap);
}

void sl_bufpool_put(sl_bufpool *pool, void *buf, size_t cap)
{
    if (!buf) return;
    int c = class_of(cap);
    if (c < 0 || (SL_BUFPOOL_MIN << c) != cap || pool->nfree[c] == SL_BUFPOOL_DEPTH ||
        pool->cached + cap > pool->cached_max) {
        sl_free(buf);
        return;
    }
    pool->free[c][pool->nfree[c]++] = buf;
    pool->cached += cap;
    SL_ASSERT(pool->cached <= pool->cached_max);
}
