/*
 * test_bufpool.c - large buffers are reused by class, within the byte cap.
 */
#include "common/bufpool.h"
#include "test.h"
#include <string.h>

SL_TEST(bufpool_small_sizes_bypass)
{
    sl_bufpool pool;
    sl_bufpool_init(&pool, 1 << 20);
    size_t cap;
    void *p = sl_bufpool_get(&pool, 100, &cap);
    SL_CHECK_INT(cap, 100);
    memset(p, 1, cap);
    sl_bufpool_put(&pool, p, cap);
    SL_CHECK_INT(pool.cached, 0);
    sl_bufpool_deinit(&pool);
}

SL_TEST(bufpool_reuses_by_power_of_two_class)
{
    sl_bufpool pool;
    sl_bufpool_init(&pool, 8 << 20);
    size_t cap;
    void *p = sl_bufpool_get(&pool, 100000, &cap);
    SL_CHECK_INT(cap, 131072);
    memset(p, 1, cap);
    sl_bufpool_put(&pool, p, cap);
    SL_CHECK_INT(pool.cached, 131072);
    size_t cap2;
    void *q = sl_bufpool_get(&pool, 70000, &cap2); /* same class */
    SL_CHECK(q == p);
    SL_CHECK_INT(cap2, 131072);
    SL_CHECK_INT(pool.cached, 0);
    SL_CHECK_INT(pool.hits, 1);
    void *r = sl_bufpool_get(&pool, 65536, &cap); /* exactly the smallest class */
    SL_CHECK_INT(cap, 65536);
    sl_bufpool_put(&pool, q, cap2);
    sl_bufpool_put(&pool, r, cap);
    SL_CHECK_INT(pool.cached, 131072 + 65536);
    sl_bufpool_deinit(&pool);
    SL_CHECK_INT(pool.cached, 0);
}

SL_TEST(bufpool_respects_byte_cap_and_depth)
{
    sl_bufpool pool;
    sl_bufpool_init(&pool, 3 << 20);
    void *bufs[4];
    size_t caps[4];
    for (int i = 0; i < 4; i++) bufs[i] = sl_bufpool_get(&pool, 1 << 20, &caps[i]);
    for (int i = 0; i < 4; i++) sl_bufpool_put(&pool, bufs[i], caps[i]);
    SL_CHECK_INT(pool.cached, 3 << 20); /* the fourth was freed */
    sl_bufpool_deinit(&pool);
    sl_bufpool_init(&pool, (size_t)1 << 30);
    void *many[SL_BUFPOOL_DEPTH + 2];
    size_t cap;
    for (int i = 0; i < SL_BUFPOOL_DEPTH + 2; i++) many[i] = sl_bufpool_get(&pool, SL_BUFPOOL_MIN, &cap);
    for (int i = 0; i < SL_BUFPOOL_DEPTH + 2; i++) sl_bufpool_put(&pool, many[i], cap);
    SL_CHECK_INT(pool.nfree[0], SL_BUFPOOL_DEPTH);
    SL_CHECK_INT(pool.cached, SL_BUFPOOL_DEPTH * SL_BUFPOOL_MIN);
    /* Beyond the largest class: plain malloc, never cached. */
    void *huge = sl_bufpool_get(&pool, SL_BUFPOOL_MAX + 1, &cap);
    SL_CHECK_INT(cap, SL_BUFPOOL_MAX + 1);
    sl_bufpool_put(&pool, huge, cap);
    SL_CHECK_INT(pool.cached, SL_BUFPOOL_DEPTH * SL_BUFPOOL_MIN);
    sl_bufpool_deinit(&pool);
}
