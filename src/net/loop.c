/*
 * loop.c - epoll + timer heap + eventfd asyncs (see loop.h).
 *
 * Each turn: compute the nearest timer deadline, epoll_wait up to it, run
 * the ready callbacks, then run expired timers. Callbacks may start and
 * stop any io or timer, including their own. The heap grows on demand;
 * it holds one entry per scheduled timer, and the broker bounds those
 * (one per parked fetch, a few global ones).
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "net/loop.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"

#define SL_LOOP_EVENTS 256

struct sl_loop {
    int epfd;
    bool stop;
    const sl_clock *clock;
    sl_timer **heap;
    int nheap, capheap;
    sl_defer *deferred;
};

struct sl_async {
    sl_io io;
    sl_async_cb cb;
    void *arg;
};

int sl_loop_new(const sl_clock *clock, sl_loop **out)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        SL_ERROR("loop", "epoll_create1: %s", strerror(errno));
        return SL_EIO;
    }
    sl_loop *loop = SL_NEW(sl_loop);
    loop->epfd = epfd;
    loop->clock = clock;
    *out = loop;
    return 0;
}

void sl_loop_free(sl_loop *loop)
{
    if (!loop) return;
    close(loop->epfd);
    sl_free(loop->heap);
    sl_free(loop);
}

const sl_clock *sl_loop_clock(const sl_loop *loop) { return loop->clock; }
void sl_loop_stop(sl_loop *loop) { loop->stop = true; }

static uint32_t to_epoll(unsigned events)
{
    return ((events & SL_IO_READ) ? EPOLLIN | EPOLLRDHUP : 0) | ((events & SL_IO_WRITE) ? EPOLLOUT : 0);
}

int sl_io_start(sl_loop *loop, sl_io *io, int fd, unsigned events, sl_io_cb cb, void *arg)
{
    io->fd = fd;
    io->events = events;
    io->cb = cb;
    io->arg = arg;
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = io};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        SL_ERROR("loop", "epoll_ctl add fd %d: %s", fd, strerror(errno));
        return SL_EIO;
    }
    return 0;
}

int sl_io_set(sl_loop *loop, sl_io *io, unsigned events)
{
    if (io->events == events) return 0;
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = io};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) != 0) {
        SL_ERROR("loop", "epoll_ctl mod fd %d: %s", io->fd, strerror(errno));
        return SL_EIO;
    }
    io->events = events;
    return 0;
}

void sl_io_stop(sl_loop *loop, sl_io *io)
{
    if (io->fd < 0) return;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->fd = -1;
}

/* ---- timers: a binary min-heap on due_ns ---- */

static void heap_swap(sl_loop *loop, int a, int b)
{
    sl_timer *t = loop->heap[a];
    loop->heap[a] = loop->heap[b];
    loop->heap[b] = t;
    loop->heap[a]->heap_index = a;
    loop->heap[b]->heap_index = b;
}

static void heap_up(sl_loop *loop, int i)
{
    while (i > 0) {
        int p = (i - 1) / 2;
        if (loop->heap[p]->due_ns <= loop->heap[i]->due_ns) break;
        heap_swap(loop, i, p);
        i = p;
    }
}

static void heap_down(sl_loop *loop, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < loop->nheap && loop->heap[l]->due_ns < loop->heap[m]->due_ns) m = l;
        if (r < loop->nheap && loop->heap[r]->due_ns < loop->heap[m]->due_ns) m = r;
        if (m == i) return;
        heap_swap(loop, i, m);
        i = m;
    }
}

void sl_timer_init(sl_timer *timer, sl_timer_cb cb, void *arg)
{
    timer->cb = cb;
    timer->arg = arg;
    timer->heap_index = -1;
    timer->due_ns = 0;
}

void sl_timer_start(sl_loop *loop, sl_timer *timer, int64_t delay_ms)
{
    sl_timer_stop(loop, timer);
    if (loop->nheap == loop->capheap) {
        loop->capheap = loop->capheap ? loop->capheap * 2 : 64;
        loop->heap = sl_realloc(loop->heap, (size_t)loop->capheap * sizeof *loop->heap);
    }
    timer->due_ns = sl_mono_ns(loop->clock) + SL_MAX(delay_ms, 0) * 1000000;
    timer->heap_index = loop->nheap;
    loop->heap[loop->nheap++] = timer;
    heap_up(loop, timer->heap_index);
}

void sl_timer_stop(sl_loop *loop, sl_timer *timer)
{
    int i = timer->heap_index;
    if (i < 0) return;
    SL_ASSERT(i < loop->nheap && loop->heap[i] == timer);
    loop->nheap--;
    if (i != loop->nheap) {
        loop->heap[i] = loop->heap[loop->nheap];
        loop->heap[i]->heap_index = i;
        heap_down(loop, i);
        heap_up(loop, i);
    }
    timer->heap_index = -1;
}

static void run_timers(sl_loop *loop)
{
    int64_t now = sl_mono_ns(loop->clock);
    while (loop->nheap > 0 && loop->heap[0]->due_ns <= now) {
        sl_timer *t = loop->heap[0];
        sl_timer_stop(loop, t);
        t->cb(loop, t);
    }
}

static int next_timeout_ms(sl_loop *loop)
{
    if (loop->nheap == 0) return -1;
    int64_t d = loop->heap[0]->due_ns - sl_mono_ns(loop->clock);
    if (d <= 0) return 0;
    return (int)SL_MIN((d + 999999) / 1000000, 60000);
}

void sl_loop_defer(sl_loop *loop, sl_defer *defer, void (*cb)(sl_loop *, void *), void *arg)
{
    if (defer->queued) return;
    defer->cb = cb;
    defer->arg = arg;
    defer->queued = true;
    defer->next = loop->deferred;
    loop->deferred = defer;
}

void sl_loop_undefer(sl_loop *loop, sl_defer *defer)
{
    if (!defer->queued) return;
    for (sl_defer **pp = &loop->deferred; *pp; pp = &(*pp)->next) {
        if (*pp == defer) {
            *pp = defer->next;
            break;
        }
    }
    defer->queued = false;
}

void sl_loop_run_deferred(sl_loop *loop)
{
    while (loop->deferred) {
        sl_defer *d = loop->deferred;
        loop->deferred = d->next;
        d->queued = false;
        d->cb(loop, d->arg);
    }
}

static int turn(sl_loop *loop, int timeout_ms)
{
    struct epoll_event events[SL_LOOP_EVENTS];
    int n = epoll_wait(loop->epfd, events, SL_LOOP_EVENTS, timeout_ms);
    if (n < 0) {
        if (errno == EINTR) return 0;
        SL_ERROR("loop", "epoll_wait: %s", strerror(errno));
        return SL_EIO;
    }
    for (int i = 0; i < n; i++) {
        sl_io *io = events[i].data.ptr;
        unsigned ev = 0;
        if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ev |= SL_IO_READ;
        if (events[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) ev |= SL_IO_WRITE;
        if (io->fd >= 0) io->cb(loop, io->arg, ev & (io->events | SL_IO_READ));
    }
    run_timers(loop);
    sl_loop_run_deferred(loop);
    return 0;
}

int sl_loop_run_once(sl_loop *loop, int timeout_ms)
{
    int next = next_timeout_ms(loop);
    return turn(loop, next >= 0 && next < timeout_ms ? next : timeout_ms);
}

int sl_loop_run(sl_loop *loop)
{
    loop->stop = false;
    while (!loop->stop) {
        int rc = turn(loop, next_timeout_ms(loop));
        if (rc) return rc;
    }
    return 0;
}

/* ---- asyncs ---- */

static void async_ready(sl_loop *loop, void *arg, unsigned events)
{
    sl_async *async = arg;
    uint64_t v;
    (void)events;
    if (read(async->io.fd, &v, sizeof v) == (ssize_t)sizeof v) async->cb(loop, async->arg);
}

int sl_async_new(sl_loop *loop, sl_async_cb cb, void *arg, sl_async **out)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) {
        SL_ERROR("loop", "eventfd: %s", strerror(errno));
        return SL_EIO;
    }
    sl_async *async = SL_NEW(sl_async);
    async->cb = cb;
    async->arg = arg;
    int rc = sl_io_start(loop, &async->io, fd, SL_IO_READ, async_ready, async);
    if (rc) {
        close(fd);
        sl_free(async);
        return rc;
    }
    *out = async;
    return 0;
}

void sl_async_send(sl_async *async)
{
    uint64_t one = 1;
    ssize_t w = write(async->io.fd, &one, sizeof one);
    (void)w; /* EAGAIN means the counter is already non-zero: the loop will wake anyway */
}

void sl_async_free(sl_loop *loop, sl_async *async)
{
    if (!async) return;
    int fd = async->io.fd;
    sl_io_stop(loop, &async->io);
    close(fd);
    sl_free(async);
}
