/*
 * loop.h - the event loop: epoll for sockets, a min-heap of timers, and
 * async handles that other threads use to wake the loop (an eventfd each).
 *
 * One loop runs on one thread; every function here except sl_async_send is
 * called from that thread only (@locality: loop thread).
 */
#ifndef SL_NET_LOOP_H
#define SL_NET_LOOP_H

#include "common/base.h"
#include "common/clock.h"

typedef struct sl_loop sl_loop;

enum { SL_IO_READ = 1, SL_IO_WRITE = 2 };

typedef void (*sl_io_cb)(sl_loop *loop, void *arg, unsigned events);

/* Registration of one fd; embed it in the owner (it must outlive the registration). */
typedef struct sl_io {
    int fd;
    unsigned events;   /* SL_IO_READ | SL_IO_WRITE currently watched */
    sl_io_cb cb;
    void *arg;
} sl_io;

typedef struct sl_timer sl_timer;
typedef void (*sl_timer_cb)(sl_loop *loop, sl_timer *timer);
struct sl_timer {
    int64_t due_ns;
    sl_timer_cb cb;
    void *arg;
    int heap_index;    /* -1 when not scheduled */
};

typedef struct sl_async sl_async;
typedef void (*sl_async_cb)(sl_loop *loop, void *arg);

int sl_loop_new(const sl_clock *clock, sl_loop **out);
void sl_loop_free(sl_loop *loop);
const sl_clock *sl_loop_clock(const sl_loop *loop);
/* Runs until sl_loop_stop. Returns 0, or SL_EIO if epoll itself failed. */
int sl_loop_run(sl_loop *loop);
void sl_loop_stop(sl_loop *loop);
/* One turn: waits up to timeout_ms for events (0 = poll), runs them, due timers and defers. */
int sl_loop_run_once(sl_loop *loop, int timeout_ms);

int sl_io_start(sl_loop *loop, sl_io *io, int fd, unsigned events, sl_io_cb cb, void *arg);
int sl_io_set(sl_loop *loop, sl_io *io, unsigned events);
void sl_io_stop(sl_loop *loop, sl_io *io);

void sl_timer_init(sl_timer *timer, sl_timer_cb cb, void *arg);
void sl_timer_start(sl_loop *loop, sl_timer *timer, int64_t delay_ms);
void sl_timer_stop(sl_loop *loop, sl_timer *timer);
static inline bool sl_timer_active(const sl_timer *timer) { return timer->heap_index >= 0; }

/*
 * Deferred work: cb runs after the current turn's callbacks, so an owner
 * can free itself (and its sl_io) without another event of this turn
 * pointing at freed memory. Embed the sl_defer; queue it at most once.
 */
typedef struct sl_defer sl_defer;
struct sl_defer {
    sl_defer *next;
    void (*cb)(sl_loop *loop, void *arg);
    void *arg;
    bool queued;
};
void sl_loop_defer(sl_loop *loop, sl_defer *defer, void (*cb)(sl_loop *, void *), void *arg);
/* Runs queued defers now (used after the loop stopped, while closing). */
void sl_loop_run_deferred(sl_loop *loop);
/* Takes a queued defer back (its owner is going away). */
void sl_loop_undefer(sl_loop *loop, sl_defer *defer);

/* An async handle: sl_async_send from any thread makes cb run once on the loop. */
int sl_async_new(sl_loop *loop, sl_async_cb cb, void *arg, sl_async **out);
void sl_async_send(sl_async *async);
void sl_async_free(sl_loop *loop, sl_async *async);

#endif
