/*
 * flusher.c - group commit: rounds of fdatasync on sync threads.
 *
 *     loop thread                          sync threads
 *     -----------                          ------------
 *     append -> partition dirty
 *     end of turn: start_round()
 *       sl_log_sync_prepare per dirty  -->  sl_log_sync_run per job
 *       (round out; appends go on,          (fdatasync only; touches no
 *        marking partitions dirty again)     broker or log state)
 *     on_done() <------------------------  async wake-up
 *       sl_log_sync_finish per job
 *       answer produce waits, wake fetches
 *       start_round() if anything is dirty
 *
 * A round's partitions are synced by up to SL_SYNC_THREADS threads at once
 * (a round of one partition wakes one). Each fdatasync ends with a cache
 * flush of the device; issued together, the block layer merges the flushes
 * and the device writes the partitions' data side by side, where one
 * thread would pay write + flush per partition in turn.
 *
 * Every batch appended while a round is out is covered by the next round,
 * so under load one fdatasync acknowledges many produce requests (the
 * classic group commit), and at low load a produce waits for exactly one.
 * Only one round is out at a time; it holds sync jobs, which hold segment
 * references, so rolls and retention cannot close an fd under it. Removing
 * a topic first waits for the round (sl__flusher_quiesce).
 *
 * Modes: `always` starts a round at the end of every loop turn that
 * appended; `interval:MS` starts one every MS (acks do not wait); `os`
 * never syncs except on roll and close (the kernel flushes).
 */
#include <pthread.h>
#include <string.h>
#include "broker/broker_int.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/hist.h"
#include "common/log.h"

typedef struct sl_round_item {
    sl_partition *partition;
    sl_log_sync_job *job;
    int rc;
} sl_round_item;

#define SL_SYNC_THREADS 4

struct sl_flusher {
    sl_broker *broker;
    pthread_t threads[SL_SYNC_THREADS];
    int nthreads;              /* started */
    pthread_mutex_t mu;
    pthread_cond_t work;       /* sync threads wait for items of a round */
    pthread_cond_t cond;       /* quiesce waits for a round to have run */
    bool quit;
    /* shared under mu */
    sl_round_item *items;
    int nitems, capitems;
    int next_item;             /* the first item no thread has taken */
    int items_done;            /* items whose fdatasync returned */
    int64_t round_run_start_ns;
    bool round_out;            /* handed to the threads, not yet finished on the loop */
    bool round_ran;            /* every item of it was synced */
    /* loop thread only */
    sl_partition *dirty;
    sl_async *done_async;
    sl_defer start_defer;
    sl_timer interval_timer;
    int64_t rounds, syncs;
    int64_t round_start_ns;    /* loop thread: when the round out was started */
    sl_hist round_us;          /* loop thread: start_round -> finish_round, the wait an ack sees */
    sl_hist sync_us;           /* under mu: a round from hand-off to its last fdatasync's return */
};

/* Sync threads take the round's items one at a time; the one that finishes the last item ends the round. */
static void *sync_main(void *arg)
{
    sl_flusher *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->quit && !(f->round_out && f->next_item < f->nitems)) pthread_cond_wait(&f->work, &f->mu);
        if (f->quit) break;
        sl_round_item *it = &f->items[f->next_item++];
        pthread_mutex_unlock(&f->mu);
        it->rc = sl_log_sync_run(it->job);
        pthread_mutex_lock(&f->mu);
        if (++f->items_done == f->nitems) {
            int64_t t = sl_mono_ns(f->broker->cfg.clock);
            sl_hist_record(&f->sync_us, (uint64_t)(t - f->round_run_start_ns) / 1000);
            f->round_ran = true;
            pthread_cond_broadcast(&f->cond);
            sl_async_send(f->done_async);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static void start_round(sl_flusher *f)
{
    if (f->round_out || !f->dirty) return;
    int n = 0;
    while (f->dirty) {
        sl_partition *p = f->dirty;
        f->dirty = p->dirty_next;
        p->dirty = false;
        p->dirty_next = NULL;
        sl_log_sync_job *job = sl_log_sync_prepare(p->log);
        if (!job) continue;
        if (n == f->capitems) {
            f->capitems = f->capitems ? f->capitems * 2 : 64;
            f->items = sl_realloc(f->items, sizeof *f->items * (size_t)f->capitems);
        }
        f->items[n].partition = p;
        f->items[n].job = job;
        f->items[n].rc = 0;
        n++;
    }
    if (n == 0) return;
    pthread_mutex_lock(&f->mu);
    f->nitems = n;
    f->next_item = 0;
    f->items_done = 0;
    f->round_out = true;
    f->round_ran = false;
    f->round_run_start_ns = sl_mono_ns(f->broker->cfg.clock);
    for (int i = 0; i < n && i < f->nthreads; i++) pthread_cond_signal(&f->work);
    pthread_mutex_unlock(&f->mu);
    f->rounds++;
    f->syncs += n;
    f->round_start_ns = sl_mono_ns(f->broker->cfg.clock);
}

static void finish_round(sl_flusher *f)
{
    bool hw_moves = f->broker->cfg.flush_mode == SL_FLUSH_ALWAYS;
    for (int i = 0; i < f->nitems; i++) {
        sl_round_item *it = &f->items[i];
        sl_log_sync_finish(it->partition->log, it->job, it->rc);
        if (it->rc) {
            SL_ERROR("flusher", "fdatasync of %s-%d failed: %s; its unacknowledged appends were rolled back "
                     "and answered KAFKA_STORAGE_ERROR", it->partition->topic->name, it->partition->index,
                     sl_strerror(it->rc));
        }
        sl__produce_waits_advance(it->partition, it->rc ? SL_KERR_KAFKA_STORAGE_ERROR : 0);
        if (hw_moves) sl__partition_hw_advanced(it->partition);
    }
    f->nitems = 0;
    f->round_out = false;
    sl_hist_record(&f->round_us, (uint64_t)(sl_mono_ns(f->broker->cfg.clock) - f->round_start_ns) / 1000);
}

static void on_done(sl_loop *loop, void *arg)
{
    sl_flusher *f = arg;
    (void)loop;
    pthread_mutex_lock(&f->mu);
    bool ready = f->round_out && f->round_ran;
    pthread_mutex_unlock(&f->mu);
    if (!ready) return;
    finish_round(f);
    if (f->broker->cfg.flush_mode == SL_FLUSH_ALWAYS) start_round(f);
}

static void deferred_start(sl_loop *loop, void *arg)
{
    (void)loop;
    start_round(arg);
}

static void on_interval(sl_loop *loop, sl_timer *timer)
{
    sl_flusher *f = timer->arg;
    start_round(f);
    sl_timer_start(loop, timer, f->broker->cfg.flush_interval_ms);
}

void sl__flusher_dirty(sl_flusher *f, sl_partition *partition)
{
    if (!partition->dirty) {
        partition->dirty = true;
        partition->dirty_next = f->dirty;
        f->dirty = partition;
    }
    if (f->broker->cfg.flush_mode == SL_FLUSH_ALWAYS && !f->round_out)
        sl_loop_defer(f->broker->loop, &f->start_defer, deferred_start, f);
}

void sl__flusher_quiesce(sl_flusher *f)
{
    pthread_mutex_lock(&f->mu);
    while (f->round_out && !f->round_ran) pthread_cond_wait(&f->cond, &f->mu);
    bool ready = f->round_out;
    pthread_mutex_unlock(&f->mu);
    if (!ready) return;
    finish_round(f);
    if (f->broker->cfg.flush_mode == SL_FLUSH_ALWAYS && f->dirty)
        sl_loop_defer(f->broker->loop, &f->start_defer, deferred_start, f);
}

/* Removes a partition from the dirty list (its topic is going away). */
void sl__flusher_forget(sl_flusher *f, sl_partition *partition);
void sl__flusher_forget(sl_flusher *f, sl_partition *partition)
{
    for (sl_partition **pp = &f->dirty; *pp; pp = &(*pp)->dirty_next) {
        if (*pp == partition) {
            *pp = partition->dirty_next;
            break;
        }
    }
    partition->dirty = false;
    partition->dirty_next = NULL;
}

bool sl__flusher_idle(const sl_flusher *f) { return !f->round_out; }

int sl__flusher_new(sl_broker *broker, sl_flusher **out)
{
    sl_flusher *f = SL_NEW(sl_flusher);
    f->broker = broker;
    sl_hist_init(&f->round_us);
    sl_hist_init(&f->sync_us);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cond, NULL);
    pthread_cond_init(&f->work, NULL);
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
    sl_async_free(f->broker->loop, f->done_async);
    SL_INFO("flusher", "%lld sync rounds, %lld partition syncs; round us p50 %llu p99 %llu max %llu; "
            "fdatasyncs of a round us p50 %llu p99 %llu max %llu", (long long)f->rounds, (long long)f->syncs,
            (unsigned long long)sl_hist_percentile(&f->round_us, 50),
            (unsigned long long)sl_hist_percentile(&f->round_us, 99), (unsigned long long)f->round_us.max,
            (unsigned long long)sl_hist_percentile(&f->sync_us, 50),
            (unsigned long long)sl_hist_percentile(&f->sync_us, 99), (unsigned long long)f->sync_us.max);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cond);
    pthread_cond_destroy(&f->work);
    sl_free(f->items);
    sl_free(f);
}
