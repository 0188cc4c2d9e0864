/*
 * test_bulkhead.c - the semaphore bulkhead: the bound, waits that time out
 * in simulated time, a wait that a release ends (real clock), figures, and
 * threads that never exceed the bound.
 */
#include <pthread.h>
#include "test.h"
#include "resilience/res_int.h"

static int64_t sim_now;
static int64_t sim_time(void *arg)
{
    (void)arg;
    return sim_now;
}
static void sim_sleep(void *arg, int64_t ns)
{
    (void)arg;
    sim_now += ns;
}
static const sl_res_clock sim = {sim_time, sim_sleep, NULL};

SL_TEST(bulkhead_bounds_calls_and_times_out_waits)
{
    sim_now = 0;
    sl_bulkhead *b;
    SL_CHECK_OK(sl_bulkhead_new(2, &sim, &b, NULL, 0));
    SL_CHECK_OK(sl_bulkhead_acquire(b, 0));
    SL_CHECK_OK(sl_bulkhead_acquire(b, 0));
    SL_CHECK_INT(sl_bulkhead_acquire(b, 0), SL_RES_E_FULL);
    int64_t t0 = sim_now;
    SL_CHECK_INT(sl_bulkhead_acquire(b, 50000000), SL_RES_E_FULL); /* waited its 50 ms, in simulated time */
    SL_CHECK(sim_now - t0 >= 50000000 && sim_now - t0 < 60000000);
    sl_bulkhead_stats st;
    sl_bulkhead_stats_get(b, &st);
    SL_CHECK_INT(st.active, 2);
    SL_CHECK_INT(st.admitted, 2);
    SL_CHECK_INT(st.rejected, 2);
    SL_CHECK(st.saturation == 1.0);
    sl_bulkhead_release(b);
    SL_CHECK_OK(sl_bulkhead_acquire(b, 0));
    sl_bulkhead_release(b);
    sl_bulkhead_release(b);
    sl_bulkhead_stats_get(b, &st);
    SL_CHECK_INT(st.active, 0);
    sl_bulkhead_free(b);
    char err[96];
    SL_CHECK_INT(sl_bulkhead_new(0, &sim, &b, err, sizeof err), SL_RES_E_INVALID);
    SL_CHECK(strstr(err, "max_concurrent") != NULL);
}

static void *release_later(void *arg)
{
    struct timespec ts = {0, 30000000};
    nanosleep(&ts, NULL);
    sl_bulkhead_release(arg);
    return NULL;
}

SL_TEST(a_release_ends_a_wait_on_the_real_clock)
{
    sl_bulkhead *b;
    SL_CHECK_OK(sl_bulkhead_new(1, NULL, &b, NULL, 0));
    SL_CHECK_OK(sl_bulkhead_acquire(b, 0));
    pthread_t th;
    pthread_create(&th, NULL, release_later, b);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    SL_CHECK_OK(sl_bulkhead_acquire(b, 5000000000LL)); /* woken by the release after ~30 ms, not 5 s */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(th, NULL);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    SL_CHECK(ms >= 20 && ms < 2000);
    sl_bulkhead_release(b);
    sl_bulkhead_free(b);
}

typedef struct load {
    sl_bulkhead *b;
    _Atomic int inside, most;
    _Atomic long ok, full;
} load;

static void *load_main(void *arg)
{
    load *l = arg;
    for (int i = 0; i < 20000; i++) {
        if (sl_bulkhead_acquire(l->b, i % 4 == 0 ? 100000 : 0) != 0) {
            atomic_fetch_add(&l->full, 1);
            continue;
        }
        int n = atomic_fetch_add(&l->inside, 1) + 1, m = atomic_load(&l->most);
        while (n > m && !atomic_compare_exchange_weak(&l->most, &m, n)) {
        }
        atomic_fetch_sub(&l->inside, 1);
        atomic_fetch_add(&l->ok, 1);
        sl_bulkhead_release(l->b);
    }
    return NULL;
}

SL_TEST(threads_never_exceed_the_bound)
{
    load l = {0};
    SL_CHECK_OK(sl_bulkhead_new(3, NULL, &l.b, NULL, 0));
    pthread_t th[6];
    for (int i = 0; i < 6; i++) pthread_create(&th[i], NULL, load_main, &l);
    for (int i = 0; i < 6; i++) pthread_join(th[i], NULL);
    SL_CHECK(atomic_load(&l.most) <= 3);
    sl_bulkhead_stats st;
    sl_bulkhead_stats_get(l.b, &st);
    SL_CHECK_INT(st.active, 0);
    SL_CHECK_INT(st.admitted, atomic_load(&l.ok));
    SL_CHECK_INT(st.rejected, atomic_load(&l.full));
    SL_CHECK_INT(st.admitted + st.rejected, 6 * 20000);
    sl_bulkhead_free(l.b);
}
