/* Tests for src/net/loop.c: timer order, stop/restart, defer, undefer, asyncs from another thread. */
#include <pthread.h>
#include <unistd.h>
#include "test.h"
#include "net/loop.h"
#include "common/alloc.h"

static int order[16], norder;

static void record(sl_loop *loop, sl_timer *t)
{
    order[norder++] = (int)(intptr_t)t->arg;
    if (norder == 4) sl_loop_stop(loop);
}

SL_TEST(timers_fire_in_deadline_order)
{
    sl_loop *loop;
    SL_CHECK_OK(sl_loop_new(sl_clock_system(), &loop));
    sl_timer t[5];
    int delays[5] = {40, 10, 30, 20, 5};
    for (int i = 0; i < 5; i++) {
        sl_timer_init(&t[i], record, (void *)(intptr_t)i);
        sl_timer_start(loop, &t[i], delays[i]);
    }
    sl_timer_stop(loop, &t[4]); /* stopped timers never fire */
    SL_CHECK(!sl_timer_active(&t[4]));
    SL_CHECK_OK(sl_loop_run(loop));
    SL_CHECK_INT(norder, 4);
    SL_CHECK_INT(order[0], 1);
    SL_CHECK_INT(order[1], 3);
    SL_CHECK_INT(order[2], 2);
    SL_CHECK_INT(order[3], 0);
    sl_loop_free(loop);
}

SL_TEST(timer_heap_survives_many_random_ops)
{
    sl_clock clock;
    sl_clock_sim_init(&clock, 1000);
    sl_loop *loop;
    SL_CHECK_OK(sl_loop_new(&clock, &loop));
    enum { N = 500 };
    sl_timer *t = sl_calloc(N, sizeof *t);
    unsigned seed = 42;
    for (int i = 0; i < N; i++) {
        sl_timer_init(&t[i], record, NULL);
        sl_timer_start(loop, &t[i], rand_r(&seed) % 1000);
    }
    for (int i = 0; i < N; i += 3) sl_timer_stop(loop, &t[i]);
    for (int i = 0; i < N; i += 7) sl_timer_start(loop, &t[i], rand_r(&seed) % 1000);
    int active = 0;
    for (int i = 0; i < N; i++) active += sl_timer_active(&t[i]);
    for (int i = 0; i < N; i++) sl_timer_stop(loop, &t[i]);
    SL_CHECK(active > N / 2);
    sl_free(t);
    sl_loop_free(loop);
}

static int deferred_ran;
static void on_defer(sl_loop *loop, void *arg)
{
    deferred_ran += (int)(intptr_t)arg;
    sl_loop_stop(loop);
}

static void on_kick(sl_loop *loop, sl_timer *t)
{
    sl_defer *d = t->arg;
    sl_loop_defer(loop, &d[0], on_defer, (void *)1);
    sl_loop_defer(loop, &d[0], on_defer, (void *)1); /* queued once only */
    sl_loop_defer(loop, &d[1], on_defer, (void *)100);
    sl_loop_undefer(loop, &d[1]);
}

SL_TEST(defer_runs_once_after_the_turn_and_undefer_cancels)
{
    sl_loop *loop;
    SL_CHECK_OK(sl_loop_new(sl_clock_system(), &loop));
    sl_defer d[2] = {{0}};
    sl_timer t;
    sl_timer_init(&t, on_kick, d);
    sl_timer_start(loop, &t, 1);
    SL_CHECK_OK(sl_loop_run(loop));
    SL_CHECK_INT(deferred_ran, 1);
    sl_loop_free(loop);
}

static int async_hits;
static void on_async(sl_loop *loop, void *arg)
{
    (void)arg;
    if (++async_hits >= 1) sl_loop_stop(loop);
}

static void *poke(void *arg)
{
    usleep(20000);
    sl_async_send(arg);
    sl_async_send(arg);
    return NULL;
}

SL_TEST(async_wakes_the_loop_from_another_thread)
{
    sl_loop *loop;
    SL_CHECK_OK(sl_loop_new(sl_clock_system(), &loop));
    sl_async *a;
    SL_CHECK_OK(sl_async_new(loop, on_async, NULL, &a));
    pthread_t th;
    pthread_create(&th, NULL, poke, a);
    SL_CHECK_OK(sl_loop_run(loop));
    pthread_join(th, NULL);
    SL_CHECK(async_hits >= 1);
    sl_async_free(loop, a);
    sl_loop_free(loop);
}
