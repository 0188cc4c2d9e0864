/*
 * test_pool.c - the thread-pool bulkhead: queueing, extra threads while the
 * queue is full, the full policies (reject, caller runs), idle extras
 * leaving after keep_alive_ns, free draining the queue, and floods from
 * several threads with exact counts.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include "test.h"
#include "resilience/res_int.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* A gate tasks wait on until the test opens it. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static _Atomic int ran;
static pthread_t caller_thread;
static _Atomic int ran_on_caller;

static void gated_task(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gate_mu);
    while (!gate_open) pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
    atomic_fetch_add(&ran, 1);
}

static void counting_task(void *arg)
{
    (void)arg;
    if (pthread_equal(pthread_self(), caller_thread)) atomic_fetch_add(&ran_on_caller, 1);
    atomic_fetch_add(&ran, 1);
}

static void gate_set(bool open)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = open;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

static sl_pool_stats stats_of(sl_pool *pool)
{
    sl_pool_stats st;
    sl_pool_stats_get(pool, &st);
    return st;
}

/* Polls until fn(stats) holds (up to 10 s). */
static bool wait_for(sl_pool *pool, bool (*fn)(const sl_pool_stats *st, int64_t arg), int64_t arg)
{
    for (int i = 0; i < 10000; i++) {
        sl_pool_stats st = stats_of(pool);
        if (fn(&st, arg)) return true;
        sleep_ms(1);
    }
    return false;
}
static bool active_is(const sl_pool_stats *st, int64_t n)
{
    return st->active == n;
}
static bool threads_is(const sl_pool_stats *st, int64_t n)
{
    return st->threads == n;
}
static bool done_is(const sl_pool_stats *st, int64_t n)
{
    return st->completed + st->ran_in_caller == n;
}

SL_TEST(pool_config_defaults_and_errors)
{
    sl_pool_config cfg;
    sl_pool_config_default(&cfg);
    SL_CHECK_INT(cfg.core_threads, 4);
    SL_CHECK_INT(cfg.max_threads, 8);
    SL_CHECK_INT(cfg.queue_capacity, 64);
    SL_CHECK_INT(cfg.keep_alive_ns, 60 * (int64_t)1000000000);
    SL_CHECK_INT(cfg.when_full, SL_POOL_REJECT);
    sl_pool *pool = (sl_pool *)1;
    char err[128];
    cfg.max_threads = 2;
    SL_CHECK_INT(sl_pool_new(&cfg, &pool, err, sizeof err), SL_RES_E_INVALID);
    SL_CHECK(pool == NULL);
    SL_CHECK_STR(err, "max_threads: 2 is not in core_threads (4)..4096");
    sl_pool_config_default(&cfg);
    cfg.core_threads = 0;
    SL_CHECK_INT(sl_pool_new(&cfg, &pool, err, sizeof err), SL_RES_E_INVALID);
    SL_CHECK_STR(err, "core_threads: 0 is not in 1..4096");
    sl_pool_config_default(&cfg);
    cfg.queue_capacity = 0;
    SL_CHECK_INT(sl_pool_new(&cfg, &pool, err, sizeof err), SL_RES_E_INVALID);
    sl_pool_config_default(&cfg);
    cfg.keep_alive_ns = -1;
    SL_CHECK_INT(sl_pool_new(&cfg, &pool, err, sizeof err), SL_RES_E_INVALID);
    sl_pool_config_default(&cfg);
    cfg.when_full = (sl_pool_full)7;
    SL_CHECK_INT(sl_pool_new(&cfg, &pool, err, sizeof err), SL_RES_E_INVALID);
}

SL_TEST(pool_runs_what_it_is_given_on_its_core_threads)
{
    sl_pool_config cfg;
    sl_pool_config_default(&cfg);
    cfg.core_threads = 2;
    cfg.max_threads = 2;
    cfg.queue_capacity = 128;
    sl_pool *pool;
    SL_CHECK_OK(sl_pool_new(&cfg, &pool, NULL, 0));
    SL_CHECK_INT(stats_of(pool).threads, 2);
    atomic_store(&ran, 0);
    caller_thread = pthread_self();
    atomic_store(&ran_on_caller, 0);
    for (int i = 0; i < 100; i++) SL_CHECK_OK(sl_pool_submit(pool, counting_task, NULL));
    SL_CHECK(wait_for(pool, done_is, 100));
    sl_pool_stats st = stats_of(pool);
    SL_CHECK_INT(st.completed, 100);
    SL_CHECK_INT(st.rejected, 0);
    SL_CHECK_INT(st.ran_in_caller, 0);
    SL_CHECK_INT(st.queued, 0);
    SL_CHECK_INT(st.active, 0);
    SL_CHECK_INT(st.queue_capacity, 128);
    SL_CHECK_INT(atomic_load(&ran), 100);
    SL_CHECK_INT(atomic_load(&ran_on_caller), 0);
    sl_pool_free(pool);
}

/* core 1, max 2, queue 2, every thread busy on the gate: what the 5th submit meets. */
static sl_pool *fill_pool(sl_pool_full when_full, int64_t keep_alive_ns)
{
    sl_pool_config cfg = {.core_threads = 1,
                          .max_threads = 2,
                          .queue_capacity = 2,
                          .keep_alive_ns = keep_alive_ns,
                          .when_full = when_full};
    sl_pool *pool;
    SL_CHECK_OK(sl_pool_new(&cfg, &pool, NULL, 0));
    gate_set(false);
    atomic_store(&ran, 0);
    atomic_store(&ran_on_caller, 0);
    caller_thread = pthread_self();
    SL_CHECK_OK(sl_pool_submit(pool, gated_task, NULL));
    SL_CHECK(wait_for(pool, active_is, 1)); /* the core thread took it: the queue is empty again */
    SL_CHECK_OK(sl_pool_submit(pool, gated_task, NULL));
    SL_CHECK_OK(sl_pool_submit(pool, gated_task, NULL));
    sl_pool_stats st = stats_of(pool);
    SL_CHECK_INT(st.queued, 2);
    SL_CHECK_INT(st.threads, 1);
    SL_CHECK_OK(sl_pool_submit(pool, gated_task, NULL)); /* queue full: an extra thread starts with it */
    st = stats_of(pool);
    SL_CHECK_INT(st.threads, 2);
    SL_CHECK_INT(st.active, 2);
    SL_CHECK_INT(st.queued, 2);
    SL_CHECK(st.saturation == 1.0); /* (2 active + 2 queued) / (2 threads + 2 slots) */
    return pool;
}

SL_TEST(pool_rejects_when_threads_and_queue_are_full)
{
    sl_pool *pool = fill_pool(SL_POOL_REJECT, 60 * (int64_t)1000000000);
    SL_CHECK_INT(sl_pool_submit(pool, counting_task, NULL), SL_RES_E_FULL);
    SL_CHECK_INT(sl_pool_submit(pool, counting_task, NULL), SL_RES_E_FULL);
    SL_CHECK_INT(stats_of(pool).rejected, 2);
    gate_set(true);
    SL_CHECK(wait_for(pool, done_is, 4));
    sl_pool_stats st = stats_of(pool);
    SL_CHECK_INT(st.completed, 4);
    SL_CHECK_INT(st.rejected, 2);
    SL_CHECK_INT(st.threads, 2); /* the extra stays for keep_alive_ns (60 s) */
    SL_CHECK_INT(atomic_load(&ran), 4);
    sl_pool_free(pool);
}

SL_TEST(pool_caller_runs_when_threads_and_queue_are_full)
{
    sl_pool *pool = fill_pool(SL_POOL_CALLER_RUNS, 60 * (int64_t)1000000000);
    SL_CHECK_OK(sl_pool_submit(pool, counting_task, NULL));
    /* It ran before submit returned, on this thread: back-pressure on the producer. */
    SL_CHECK_INT(atomic_load(&ran), 1);
    SL_CHECK_INT(atomic_load(&ran_on_caller), 1);
    sl_pool_stats st = stats_of(pool);
    SL_CHECK_INT(st.ran_in_caller, 1);
    SL_CHECK_INT(st.rejected, 0);
    gate_set(true);
    SL_CHECK(wait_for(pool, done_is, 5));
    SL_CHECK_INT(stats_of(pool).completed, 4);
    sl_pool_free(pool);
}

SL_TEST(pool_idle_extra_threads_leave_after_keep_alive)
{
    sl_pool *pool = fill_pool(SL_POOL_REJECT, 300000000); /* 300 ms */
    gate_set(true);
    SL_CHECK(wait_for(pool, done_is, 4));
    SL_CHECK_INT(stats_of(pool).threads, 2); /* not yet: idle for less than 300 ms */
    SL_CHECK(wait_for(pool, threads_is, 1)); /* then the extra leaves; the core thread stays */
    sleep_ms(400);
    SL_CHECK_INT(stats_of(pool).threads, 1);
    /* Its slot is reused (the old thread joined) when the queue fills again. */
    gate_set(false);
    SL_CHECK_OK(sl_pool_submit(pool, gated_task, NULL));
    SL_CHECK(wait_for(pool, active_is, 1));
    for (int i = 0; i < 3; i++) SL_CHECK_OK(sl_pool_submit(pool, gated_task, NULL));
    SL_CHECK_INT(stats_of(pool).threads, 2);
    SL_CHECK_INT(sl_pool_submit(pool, gated_task, NULL), SL_RES_E_FULL);
    gate_set(true);
    SL_CHECK(wait_for(pool, done_is, 8));
    sl_pool_free(pool);
}

static void slow_task(void *arg)
{
    (void)arg;
    sleep_ms(30);
    atomic_fetch_add(&ran, 1);
}

SL_TEST(pool_free_runs_what_is_queued_then_joins)
{
    sl_pool_config cfg = {
        .core_threads = 1, .max_threads = 1, .queue_capacity = 16, .keep_alive_ns = 0, .when_full = SL_POOL_REJECT};
    sl_pool *pool;
    SL_CHECK_OK(sl_pool_new(&cfg, &pool, NULL, 0));
    atomic_store(&ran, 0);
    caller_thread = pthread_self();
    SL_CHECK_OK(sl_pool_submit(pool, slow_task, NULL));
    SL_CHECK(wait_for(pool, active_is, 1));
    for (int i = 0; i < 16; i++) SL_CHECK_OK(sl_pool_submit(pool, counting_task, NULL));
    SL_CHECK_INT(sl_pool_submit(pool, counting_task, NULL), SL_RES_E_FULL);
    SL_CHECK_INT(stats_of(pool).queued, 16);
    sl_pool_free(pool); /* the slow task is still running, 16 wait behind it */
    SL_CHECK_INT(atomic_load(&ran), 17);
}

/* Floods: producers submit from several threads; every accepted task runs exactly once. */
#define FLOOD_PRODUCERS 4
#define FLOOD_TASKS     3000
static struct {
    sl_pool *pool;
    _Atomic int64_t accepted, refused, executed;
} flood;

static void flood_task(void *arg)
{
    (void)arg;
    volatile int spin = 0;
    for (int i = 0; i < 2000; i++) spin = spin + i;
    SL_CHECK(spin == 1999 * 1000);
    atomic_fetch_add(&flood.executed, 1);
}

static void *flood_producer(void *arg)
{
    (void)arg;
    for (int i = 0; i < FLOOD_TASKS; i++) {
        if (sl_pool_submit(flood.pool, flood_task, NULL) == 0)
            atomic_fetch_add(&flood.accepted, 1);
        else
            atomic_fetch_add(&flood.refused, 1);
    }
    return NULL;
}

static sl_pool_stats flood_run(sl_pool_full when_full)
{
    sl_pool_config cfg = {
        .core_threads = 1, .max_threads = 2, .queue_capacity = 4, .keep_alive_ns = 1000000, .when_full = when_full};
    SL_CHECK_OK(sl_pool_new(&cfg, &flood.pool, NULL, 0));
    atomic_store(&flood.accepted, 0);
    atomic_store(&flood.refused, 0);
    atomic_store(&flood.executed, 0);
    pthread_t t[FLOOD_PRODUCERS];
    for (int i = 0; i < FLOOD_PRODUCERS; i++) pthread_create(&t[i], NULL, flood_producer, NULL);
    for (int i = 0; i < FLOOD_PRODUCERS; i++) pthread_join(t[i], NULL);
    SL_CHECK(wait_for(flood.pool, done_is, atomic_load(&flood.accepted)));
    sl_pool_stats st = stats_of(flood.pool);
    sl_pool_free(flood.pool);
    printf("%s: %lld accepted (%lld ran in the producers), %lld refused, %d threads at the end\n",
           when_full == SL_POOL_REJECT ? "reject" : "caller runs", (long long)atomic_load(&flood.accepted),
           (long long)st.ran_in_caller, (long long)st.rejected, st.threads);
    SL_CHECK_INT(atomic_load(&flood.executed), atomic_load(&flood.accepted));
    SL_CHECK_INT(atomic_load(&flood.accepted) + atomic_load(&flood.refused), FLOOD_PRODUCERS * FLOOD_TASKS);
    SL_CHECK_INT(st.rejected, atomic_load(&flood.refused));
    SL_CHECK_INT(st.queued, 0);
    return st;
}

SL_TEST(pool_caller_runs_under_a_flood_loses_nothing)
{
    sl_pool_stats st = flood_run(SL_POOL_CALLER_RUNS);
    SL_CHECK_INT(atomic_load(&flood.refused), 0);
    SL_CHECK_INT(st.completed + st.ran_in_caller, FLOOD_PRODUCERS * FLOOD_TASKS);
    SL_CHECK(st.ran_in_caller > 0); /* 4 producers against 2 threads and 4 slots: the producers ran some */
}

SL_TEST(pool_reject_under_a_flood_counts_exactly)
{
    sl_pool_stats st = flood_run(SL_POOL_REJECT);
    SL_CHECK_INT(st.ran_in_caller, 0);
    SL_CHECK_INT(st.completed, atomic_load(&flood.accepted));
    SL_CHECK(st.rejected > 0);
}

/* A task that submits more work while the pool is being freed: it is run, not lost. */
static sl_pool *chain_pool;
static void chained_task(void *arg)
{
    intptr_t left = (intptr_t)arg;
    atomic_fetch_add(&ran, 1);
    if (left > 0) SL_CHECK_OK(sl_pool_submit(chain_pool, chained_task, (void *)(left - 1)));
}

SL_TEST(pool_free_runs_work_submitted_while_draining)
{
    sl_pool_config cfg = {
        .core_threads = 2, .max_threads = 4, .queue_capacity = 8, .keep_alive_ns = 0, .when_full = SL_POOL_CALLER_RUNS};
    SL_CHECK_OK(sl_pool_new(&cfg, &chain_pool, NULL, 0));
    atomic_store(&ran, 0);
    caller_thread = pthread_self();
    SL_CHECK_OK(sl_pool_submit(chain_pool, slow_task, NULL));
    for (int i = 0; i < 4; i++) SL_CHECK_OK(sl_pool_submit(chain_pool, chained_task, (void *)(intptr_t)50));
    sl_pool_free(chain_pool);
    SL_CHECK_INT(atomic_load(&ran), 1 + 4 * 51);
}
