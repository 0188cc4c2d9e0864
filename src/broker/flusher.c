/*
 * flusher.c - group commit, per partition, on a few sync threads.
 *
 *     loop thread                              sync threads (SL_SYNC_THREADS)
 *     -----------                              ------------------------------
 *     append -> partition dirty, listed
 *     end of turn: start_jobs()
 *       per listed partition without a job:
 *       sl_log_sync_prepare -> queue  ------>  pop, sl_log_sync_run (fdatasync
 *       (appends go on, marking it             only; touches no broker or log
 *        dirty again)                          state) -> done list
 *     on_done() <----------------------------  async wake-up
 *       sl_log_sync_finish per done job
 *       answer produce waits, wake fetches
 *       dirty again? list it, start_jobs at the end of the turn
 *
 * A partition has at most one job out (storage allows one), so every batch
 * appended while its job is out is covered by its next job. Under load one
 * fdatasync acknowledges many produce requests (the classic group commit),
 * and at low load a produce waits for exactly one. Partitions do not wait
 * for each other: librdkafka sends one partition per ProduceRequest, so
 * with rounds over all partitions (the first design) a round mostly held
 * one partition and the others queued behind it. Now up to SL_SYNC_THREADS
 * partitions sync at once; each fdatasync ends with a device cache flush,
 * and issued together the block layer merges those flushes.
 *
 * Lifetimes: a queued or running job holds segment references, so rolls
 * and retention cannot close an fd under it; its partition stays allocated
 * until the loop finished the job. Removing a topic first waits for every
 * job out (sl__flusher_quiesce), and completions handled there only list
 * partitions, never start jobs, so the topic's partitions can then go.
 *
 * Modes: `always` starts jobs at the end of every loop turn that appended;
 * `interval:MS` every MS (acks do not wait); `os` never (storage still
 * syncs on roll and close; the kernel flushes the rest).
 */
#include <pthread.h>
#include <string.h>
#include "broker/broker_int.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/hist.h"
#include "common/log.h"

#define SL_SYNC_THREADS 4
#define SL_SLOW_SYNC_US 4000 /* a device stall, not a sync: counted apart */

struct sl_flusher {
    sl_broker *broker;
    pthread_t threads[SL_SYNC_THREADS];
    int nthreads;           /* started */
    pthread_mutex_t mu;
    pthread_cond_t work;    /* sync threads wait for a queued job */
    pthread_cond_t idle;    /* quiesce waits for nothing queued or running */
    bool quit;
    /* shared under mu */
    sl_partition *queue_head, *queue_tail; /* jobs for the sync threads */
    sl_partition *done_head, *done_tail;   /* synced, for the loop to finish */
    int running;            /* jobs a sync thread took and has not put on done */
    sl_hist sync_us;        /* one job's fdatasyncs */
    int64_t slow_syncs;     /* jobs whose fdatasyncs took over SL_SLOW_SYNC_US */
    /* loop thread only */
    sl_partition *listed;   /* dirty partitions waiting for start_jobs */
    int out;                /* jobs prepared and not finished */
    sl_async *done_async;
    sl_defer start_defer;
    sl_timer interval_timer;
    int64_t jobs;
    sl_hist job_us;         /* prepare -> finish on the loop: what an acknowledgement waits */
};

static void *sync_main(void *arg)
{
    sl_flusher *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->quit && !f->queue_head) pthread_cond_wait(&f->work, &f->mu);
        if (f->quit) break;
        sl_partition *p = f->queue_head;
        f->queue_head = p->sync_next;
        if (!f->queue_head) f->queue_tail = NULL;
        f->running++;
        pthread_mutex_unlock(&f->mu);
        int64_t t0 = sl_mono_ns(f->broker->cfg.clock);
        int rc = sl_log_sync_run(p->sync_job);
        int64_t t1 = sl_mono_ns(f->broker->cfg.clock);
        pthread_mutex_lock(&f->mu);
        sl_hist_record(&f->sync_us, (uint64_t)(t1 - t0) / 1000);
        if ((t1 - t0) / 1000 > SL_SLOW_SYNC_US) f->slow_syncs++;
        p->sync_rc = rc;
        p->sync_next = NULL;
        if (f->done_tail) f->done_tail->sync_next = p;
        else f->done_head = p;
        f->done_tail = p;
        f->running--;
        if (!f->queue_head && f->running == 0) pthread_cond_broadcast(&f->idle);
        sl_async_send(f->done_async);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static void list_partition(sl_flusher *f, sl_partition *p)
{
    if (p->listed) return;
    p->listed = true;
    p->dirty_next = f->listed;
    f->listed = p;
}

/* Prepares a job for every listed partition that has none out and queues them in one go. */
static void start_jobs(sl_flusher *f)
{
    sl_partition *head = NULL, *tail = NULL;
    int n = 0;
    while (f->listed) {
        sl_partition *p = f->listed;
        f->listed = p->dirty_next;
        p->dirty_next = NULL;
        p->listed = false;
        if (p->sync_job) continue; /* still dirty: listed again when its job finishes */
        p->dirty = false;
        p->sync_job = sl_log_sync_prepare(p->log);
        if (!p->sync_job) continue;
        p->sync_t0_ns = sl_mono_ns(f->broker->cfg.clock);
        p->sync_next = NULL;
        if (tail) tail->sync_next = p;
        else head = p;
        tail = p;
        n++;
    }
    if (n == 0) return;
    f->out += n;
    f->jobs += n;
    pthread_mutex_lock(&f->mu);
    if (f->queue_tail) f->queue_tail->sync_next = head;
    else f->queue_head = head;
    f->queue_tail = tail;
    for (int i = 0; i < n && i < f->nthreads; i++) pthread_cond_signal(&f->work);
    pthread_mutex_unlock(&f->mu);
}

static void deferred_start(sl_loop *loop, void *arg)
{
    (void)loop;
    start_jobs(arg);
}

static void finish_job(sl_flusher *f, sl_partition *p)
{
    SL_ASSERT(p->sync_job != NULL && f->out > 0);
    int rc = p->sync_rc;
    sl_log_sync_finish(p->log, p->sync_job, rc);
    p->sync_job = NULL;
    f->out--;
    sl_hist_record(&f->job_us, (uint64_t)(sl_mono_ns(f->broker->cfg.clock) - p->sync_t0_ns) / 1000);
    if (rc) {
        SL_ERROR("flusher", "fdatasync of %s-%d failed: %s; its unacknowledged appends were rolled back "
                 "and answered KAFKA_STORAGE_ERROR", p->topic->name, p->index, sl_strerror(rc));
    }
    if (rc) sl__producers_rebuild(f->broker, p);
    sl__produce_waits_advance(p, rc ? SL_KERR_KAFKA_STORAGE_ERROR : 0);
    if (f->broker->cfg.flush_mode == SL_FLUSH_ALWAYS) {
        sl__partition_hw_advanced(p);
        if (p->dirty) {
            list_partition(f, p);
            sl_loop_defer(f->broker->loop, &f->start_defer, deferred_start, f);
        }
    } else if (p->dirty) {
        list_partition(f, p); /* the next interval tick syncs it */
    }
}

/* Finishes every job the sync threads are done with. Starts none itself (see quiesce). */
static void finish_done(sl_flusher *f)
{
    pthread_mutex_lock(&f->mu);
    sl_partition *p = f->done_head;
    f->done_head = f->done_tail = NULL;
    pthread_mutex_unlock(&f->mu);
    while (p) {
        sl_partition *next = p->sync_next;
        p->sync_next = NULL;
        finish_job(f, p);
        p = next;
    }
}

static void on_done(sl_loop *loop, void *arg)
{
    (void)loop;
    finish_done(arg);
}

static void on_interval(sl_loop *loop, sl_timer *timer)
{
    sl_flusher *f = timer->arg;
    start_jobs(f);
    sl_timer_start(loop, timer, f->broker->cfg.flush_interval_ms);
}

void sl__flusher_dirty(sl_flusher *f, sl_partition *partition)
{
    partition->dirty = true;
    list_partition(f, partition);
    if (f->broker->cfg.flush_mode == SL_FLUSH_ALWAYS && !partition->sync_job)
        sl_loop_defer(f->broker->loop, &f->start_defer, deferred_start, f);
}

void sl__flusher_quiesce(sl_flusher *f)
{
    pthread_mutex_lock(&f->mu);
    while (f->queue_head || f->running > 0) pthread_cond_wait(&f->idle, &f->mu);
    pthread_mutex_unlock(&f->mu);
    finish_done(f);
    SL_ASSERT(f->out == 0);
}

/* Removes a partition from the list (its topic is going away); no job of it may be out. */
void sl__flusher_forget(sl_flusher *f, sl_partition *partition);
void sl__flusher_forget(sl_flusher *f, sl_partition *partition)
{
    SL_ASSERT(partition->sync_job == NULL);
    for (sl_partition **pp = &f->listed; *pp; pp = &(*pp)->dirty_next) {
        if (*pp == partition) {
            *pp = partition->dirty_next;
            break;
        }
    }
    partition->listed = false;
    partition->dirty = false;
    partition->dirty_next = NULL;
}

bool sl__flusher_idle(const sl_flusher *f) { return f->out == 0; }

int sl__flusher_new(sl_broker *broker, sl_flusher **out)
{
    sl_flusher *f = SL_NEW(sl_flusher);
    f->broker = broker;
    sl_hist_init(&f->job_us);
    sl_hist_init(&f->sync_us);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->work, NULL);
    pthread_cond_init(&f->idle, NULL);
    int rc = sl_async_new(broker->loop, on_done, f, &f->done_async);
    if (rc) goto fail;
    for (; f->nthreads < SL_SYNC_THREADS; f->nthreads++) {
        if (pthread_create(&f->threads[f->nthreads], NULL, sync_main, f) != 0) {
            SL_ERROR("flusher", "cannot start a sync thread");
            rc = SL_EIO;
            goto fail;
        }
    }
    sl_timer_init(&f->interval_timer, on_interval, f);
    if (broker->cfg.flush_mode == SL_FLUSH_INTERVAL)
        sl_timer_start(broker->loop, &f->interval_timer, broker->cfg.flush_interval_ms);
    *out = f;
    return 0;
fail:
    sl__flusher_free(f);
    return rc;
}

void sl__flusher_free(sl_flusher *f)
{
    if (!f) return;
    if (f->nthreads > 0) {
        sl__flusher_quiesce(f);
        pthread_mutex_lock(&f->mu);
        f->quit = true;
        pthread_cond_broadcast(&f->work);
        pthread_mutex_unlock(&f->mu);
        for (int i = 0; i < f->nthreads; i++) pthread_join(f->threads[i], NULL);
    }
    sl_timer_stop(f->broker->loop, &f->interval_timer);
    sl_loop_undefer(f->broker->loop, &f->start_defer);
    sl_async_free(f->broker->loop, f->done_async);
    SL_INFO("flusher", "%lld sync jobs; acknowledgement wait us p50 %llu p99 %llu max %llu; "
            "fdatasync us p50 %llu p99 %llu max %llu, %lld over %d ms", (long long)f->jobs,
            (unsigned long long)sl_hist_percentile(&f->job_us, 50),
            (unsigned long long)sl_hist_percentile(&f->job_us, 99), (unsigned long long)f->job_us.max,
            (unsigned long long)sl_hist_percentile(&f->sync_us, 50),
            (unsigned long long)sl_hist_percentile(&f->sync_us, 99), (unsigned long long)f->sync_us.max,
            (long long)f->slow_syncs, SL_SLOW_SYNC_US / 1000);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->work);
    pthread_cond_destroy(&f->idle);
    sl_free(f);
}
