/*
 * pool.c - the thread-pool bulkhead: a dependency's calls run on its own
 * threads, so a slow dependency ties up those threads and no others.
 *
 * Submit, in the order java.util.concurrent.ThreadPoolExecutor uses:
 *
 *   queue not full                    -> queued (a waiting worker is signalled)
 *   queue full, threads < max_threads -> a new worker starts with this task
 *   queue full, threads = max_threads -> the full policy: REJECT (SL_RES_E_FULL)
 *                                        or CALLER_RUNS (runs now, in the submitter)
 *
 * core_threads start at sl_pool_new and stay. A worker that finds the queue
 * empty for keep_alive_ns while there are more than core_threads leaves.
 *
 * Memory: the ring of queue_capacity tasks and the table of max_threads
 * worker slots are allocated at _new; a submit allocates nothing (starting a
 * worker is pthread_create, whose stack glibc caches). A worker that left
 * stays unjoined in its slot until the slot is reused (joined then) or the
 * pool is freed, so no thread is ever detached and free joins them all.
 *
 * One mutex guards everything, with one condvar workers wait on. A task
 * runs outside the mutex. The pool has no injectable clock: its waits are
 * real threads blocking, and keep_alive_ns is CLOCK_MONOTONIC time.
 *
 * sl_pool_free stops new workers from starting, lets the workers run what
 * is queued, then joins them. Tasks may still submit while it drains (into
 * the queue, or by the full policy); a task must not free its own pool.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "common/alloc.h"
#include "resilience/res_int.h"

#define POOL_THREADS_MAX 4096
#define POOL_QUEUE_MAX   (1 << 24)

typedef struct pool_task {
    void (*fn)(void *arg);
    void *arg;
} pool_task;

typedef enum { SLOT_FREE, SLOT_RUNNING, SLOT_EXITED } slot_state;

typedef struct pool_worker {
    pthread_t tid;
    slot_state state;
    pool_task first; /* the task it was started for (fn NULL: none) */
    sl_pool *pool;
} pool_worker;

struct sl_pool {
    pthread_mutex_t mu;
    pthread_cond_t work; /* a task was queued, or the pool stops */
    sl_pool_config cfg;
    pool_task *ring; /* queue_capacity tasks; head is the oldest */
    int32_t head, queued;
    pool_worker *workers; /* max_threads slots */
    int32_t threads, active;
    bool stopping;
    int64_t completed, rejected, ran_in_caller;
};

void sl_pool_config_default(sl_pool_config *cfg)
{
    *cfg = (sl_pool_config){.core_threads = 4,
                            .max_threads = 8,
                            .queue_capacity = 64,
                            .keep_alive_ns = 60 * (int64_t)1000000000,
                            .when_full = SL_POOL_REJECT};
}

static int check_config(const sl_pool_config *cfg, char *err, size_t err_len)
{
    if (cfg->core_threads < 1 || cfg->core_threads > POOL_THREADS_MAX)
        return sl__res_invalid(err, err_len, "core_threads: %d is not in 1..%d", cfg->core_threads, POOL_THREADS_MAX);
    if (cfg->max_threads < cfg->core_threads || cfg->max_threads > POOL_THREADS_MAX)
        return sl__res_invalid(err, err_len, "max_threads: %d is not in core_threads (%d)..%d", cfg->max_threads,
                               cfg->core_threads, POOL_THREADS_MAX);
    if (cfg->queue_capacity < 1 || cfg->queue_capacity > POOL_QUEUE_MAX)
        return sl__res_invalid(err, err_len, "queue_capacity: %d is not in 1..%d", cfg->queue_capacity, POOL_QUEUE_MAX);
    if (cfg->keep_alive_ns < 0)
        return sl__res_invalid(err, err_len, "keep_alive_ns: %lld is negative", (long long)cfg->keep_alive_ns);
    if (cfg->when_full != SL_POOL_REJECT && cfg->when_full != SL_POOL_CALLER_RUNS)
        return sl__res_invalid(err, err_len, "when_full: %d is neither SL_POOL_REJECT nor SL_POOL_CALLER_RUNS",
                               (int)cfg->when_full);
    return 0;
}

/* Runs a task outside the mutex (held on entry and on return). */
static void run_task(sl_pool *pool, pool_task task)
{
    pool->active++;
    pthread_mutex_unlock(&pool->mu);
    task.fn(task.arg);
    pthread_mutex_lock(&pool->mu);
    pool->active--;
    pool->completed++;
    SL_ASSERT(pool->active >= 0);
}

static struct timespec deadline_after(int64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + ns;
    return (struct timespec){.tv_sec = t / 1000000000, .tv_nsec = t % 1000000000};
}

/* With the mutex held: the next task (true), or false when this worker is to leave: the pool stops and the
   queue is empty, or it was idle keep_alive_ns while there are more than core_threads. */
static bool next_task(sl_pool *pool, pool_task *task)
{
    struct timespec deadline = deadline_after(pool->cfg.keep_alive_ns);
    while (pool->queued == 0) {
        if (pool->stopping) return false;
        if (pool->threads <= pool->cfg.core_threads) {
            pthread_cond_wait(&pool->work, &pool->mu);
            deadline = deadline_after(pool->cfg.keep_alive_ns); /* idle time restarts when it became extra */
        } else if (pthread_cond_timedwait(&pool->work, &pool->mu, &deadline) == ETIMEDOUT && pool->queued == 0 &&
                   pool->threads > pool->cfg.core_threads) {
            return false;
        }
    }
    *task = pool->ring[pool->head];
    pool->head = (pool->head + 1) % pool->cfg.queue_capacity;
    pool->queued--;
    SL_ASSERT(task->fn && pool->queued >= 0);
    return true;
}

static void *worker_main(void *arg)
{
    pool_worker *w = arg;
    sl_pool *pool = w->pool;
    pthread_mutex_lock(&pool->mu);
    pool_task task = w->first;
    w->first.fn = NULL;
    if (task.fn) pool->active--; /* counted active from its submit, so stats see it at once */
    for (;;) {
        if (task.fn) run_task(pool, task);
        if (!next_task(pool, &task)) break;
    }
    SL_ASSERT(w->state == SLOT_RUNNING && pool->threads > 0);
    pool->threads--;
    w->state = SLOT_EXITED;
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

/* With the mutex held: starts a worker in a free slot, with `first` to run (fn may be NULL). 0, or
   pthread_create's error. */
static int start_worker(sl_pool *pool, pool_task first)
{
    SL_ASSERT(pool->threads < pool->cfg.max_threads && !pool->stopping);
    pool_worker *w = NULL;
    for (int32_t i = 0; i < pool->cfg.max_threads && !w; i++)
        if (pool->workers[i].state != SLOT_RUNNING) w = &pool->workers[i];
    SL_ASSERT(w);
    if (w->state == SLOT_EXITED) pthread_join(w->tid, NULL); /* it only has to return: it holds nothing */
    w->state = SLOT_RUNNING;
    w->first = first;
    w->pool = pool;
    int rc = pthread_create(&w->tid, NULL, worker_main, w);
    if (rc != 0) {
        w->state = SLOT_FREE;
        w->first.fn = NULL;
        return rc;
    }
    pool->threads++;
    if (first.fn) pool->active++;
    return 0;
}

static void pool_release(sl_pool *pool)
{
    pthread_cond_destroy(&pool->work);
    pthread_mutex_destroy(&pool->mu);
    sl_free(pool->ring);
    sl_free(pool->workers);
    sl_free(pool);
}

int sl_pool_new(const sl_pool_config *cfg, sl_pool **out, char *err, size_t err_len)
{
    *out = NULL;
    int rc = check_config(cfg, err, err_len);
    if (rc) return rc;
    sl_pool *pool = SL_NEW(sl_pool);
    pool->cfg = *cfg;
    pool->ring = sl_calloc((size_t)cfg->queue_capacity, sizeof *pool->ring);
    pool->workers = sl_calloc((size_t)cfg->max_threads, sizeof *pool->workers);
    pthread_mutex_init(&pool->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pool->work, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_lock(&pool->mu);
    for (int32_t i = 0; i < cfg->core_threads && rc == 0; i++) rc = start_worker(pool, (pool_task){NULL, NULL});
    pthread_mutex_unlock(&pool->mu);
    if (rc) {
        sl_pool_free(pool);
        if (err && err_len) snprintf(err, err_len, "core_threads: could not start a thread (%s)", strerror(rc));
        return SL_RES_E_NOMEM;
    }
    *out = pool;
    return 0;
}

void sl_pool_free(sl_pool *pool)
{
    if (!pool) return;
    pthread_mutex_lock(&pool->mu);
    pool->stopping = true; /* from here no worker starts, so the slots to join are fixed */
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->mu);
    for (int32_t i = 0; i < pool->cfg.max_threads; i++) {
        pthread_mutex_lock(&pool->mu);
        slot_state state = pool->workers[i].state;
        pthread_mutex_unlock(&pool->mu);
        if (state != SLOT_FREE) pthread_join(pool->workers[i].tid, NULL);
    }
    SL_ASSERT(pool->threads == 0 && pool->queued == 0);
    pool_release(pool);
}

int sl_pool_submit(sl_pool *pool, void (*fn)(void *arg), void *arg)
{
    SL_ASSERT(fn);
    pool_task task = {fn, arg};
    pthread_mutex_lock(&pool->mu);
    if (pool->queued < pool->cfg.queue_capacity) {
        pool->ring[(pool->head + pool->queued) % pool->cfg.queue_capacity] = task;
        pool->queued++;
        pthread_cond_signal(&pool->work);
        pthread_mutex_unlock(&pool->mu);
        return 0;
    }
    if (!pool->stopping && pool->threads < pool->cfg.max_threads && start_worker(pool, task) == 0) {
        pthread_mutex_unlock(&pool->mu);
        return 0;
    }
    if (pool->cfg.when_full == SL_POOL_CALLER_RUNS) {
        pool->ran_in_caller++;
        pthread_mutex_unlock(&pool->mu);
        fn(arg);
        return 0;
    }
    pool->rejected++;
    pthread_mutex_unlock(&pool->mu);
    return SL_RES_E_FULL;
}

void sl_pool_stats_get(sl_pool *pool, sl_pool_stats *out)
{
    pthread_mutex_lock(&pool->mu);
    *out = (sl_pool_stats){.threads = pool->threads,
                           .active = pool->active,
                           .queued = pool->queued,
                           .queue_capacity = pool->cfg.queue_capacity,
                           .completed = pool->completed,
                           .rejected = pool->rejected,
                           .ran_in_caller = pool->ran_in_caller};
    pthread_mutex_unlock(&pool->mu);
    out->saturation = (double)(out->active + out->queued) / (pool->cfg.max_threads + pool->cfg.queue_capacity);
}
