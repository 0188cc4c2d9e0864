/* Tests for src/common/buf.c and arena.c: bounds are enforced. */
#include "test.h"
#include "common/buf.h"
#include "common/arena.h"
#include "common/error.h"

SL_TEST(buf_respects_max)
{
    sl_buf b;
    sl_buf_init(&b, 10);
    SL_CHECK_OK(sl_buf_append(&b, "hello", 5));
    SL_CHECK_OK(sl_buf_append(&b, "world", 5));
    SL_CHECK_INT(sl_buf_append(&b, "!", 1), SL_ETOOBIG);
    SL_CHECK_INT(b.len, 10);
    SL_CHECK_MEM(b.data, "helloworld", 10);
    sl_buf_consume(&b, 5);
    SL_CHECK_MEM(b.data, "world", 5);
    SL_CHECK(sl_buf_extend(&b, 6) == NULL);
    SL_CHECK(sl_buf_extend(&b, 5) != NULL);
    sl_buf_deinit(&b);
}

SL_TEST(arena_bounded_and_reset)
{
    sl_arena a;
    sl_arena_init(&a, 100000);
    void *p = sl_arena_alloc(&a, 40000);
    SL_CHECK(p != NULL);
    SL_CHECK(sl_arena_alloc(&a, 70000) == NULL);
    SL_CHECK(sl_arena_alloc(&a, (size_t)-1 / 2) == NULL);
    uint8_t *q = sl_arena_alloc(&a, 100);
    SL_CHECK(q && q[0] == 0 && q[99] == 0);
    sl_arena_reset(&a);
    SL_CHECK_INT(a.used, 0);
    SL_CHECK(sl_arena_alloc(&a, 90000) != NULL);
    sl_arena_deinit(&a);
}
