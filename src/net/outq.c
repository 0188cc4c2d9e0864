/*
 * outq.c - gathered writes of memory pieces, sendfile of file ranges.
 *
 * Consecutive memory pieces go out in one writev (up to SL_OUTQ_IOV of
 * them), so pipelined small responses cost one syscall per loop turn, not
 * one each. A file range goes out with sendfile until done or EAGAIN.
 */
#include <errno.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include "net/outq.h"
#include "common/alloc.h"
#include "common/error.h"

#define SL_OUTQ_IOV 64

struct sl_outq_chunk {
    sl_outq_chunk *next;
    bool is_file;
    const uint8_t *mem;
    void *owned;
    int fd;
    int64_t off;         /* file: next byte to send; mem: bytes already sent */
    int64_t len;         /* bytes left to send */
    void *ref;
    sl_release_fn release;
};

void sl_outq_init(sl_outq *q)
{
    q->head = q->tail = NULL;
    q->bytes = 0;
}

static void push(sl_outq *q, sl_outq_chunk *c)
{
    if (q->tail) q->tail->next = c;
    else q->head = c;
    q->tail = c;
    q->bytes += c->len;
}

void sl_outq_push_mem(sl_outq *q, const uint8_t *data, size_t len, void *owned)
{
    sl_outq_chunk *c = SL_NEW(sl_outq_chunk);
    c->mem = data;
    c->len = (int64_t)len;
    c->owned = owned;
    push(q, c);
}

void sl_outq_push_file(sl_outq *q, int fd, int64_t off, int64_t len, void *ref, sl_release_fn release)
{
    SL_ASSERT(fd >= 0 && len >= 0);
    sl_outq_chunk *c = SL_NEW(sl_outq_chunk);
    c->is_file = true;
    c->fd = fd;
    c->off = off;
    c->len = len;
    c->ref = ref;
    c->release = release;
    push(q, c);
}

static void pop(sl_outq *q)
{
    sl_outq_chunk *c = q->head;
    q->head = c->next;
    if (!q->head) q->tail = NULL;
    q->bytes -= c->len;
    if (c->owned) sl_free(c->owned);
    if (c->release) c->release(c->ref);
    sl_free(c);
}

static int io_error(void)
{
    if (errno == EAGAIN || errno == EINTR) return SL_EAGAIN;
    if (errno == EPIPE || errno == ECONNRESET) return SL_ECLOSED;
    return SL_EIO;
}

static int flush_mem(sl_outq *q, int sock_fd)
{
    struct iovec iov[SL_OUTQ_IOV];
    int n = 0;
    for (sl_outq_chunk *c = q->head; c && !c->is_file && n < SL_OUTQ_IOV; c = c->next) {
        iov[n].iov_base = (void *)(c->mem + c->off);
        iov[n].iov_len = (size_t)c->len;
        n++;
    }
    ssize_t w = writev(sock_fd, iov, n);
    if (w < 0) return io_error();
    while (w > 0 || (q->head && !q->head->is_file && q->head->len == 0)) {
        sl_outq_chunk *c = q->head;
        if (w < c->len) {
            c->off += w;
            c->len -= w;
            q->bytes -= w;
            return SL_EAGAIN;
        }
        w -= c->len;
        pop(q);
        if (!q->head || q->head->is_file) break;
    }
    return 0;
}

static int flush_file(sl_outq *q, int sock_fd)
{
    sl_outq_chunk *c = q->head;
    while (c->len > 0) {
        off_t off = (off_t)c->off;
        ssize_t w = sendfile(sock_fd, c->fd, &off, (size_t)SL_MIN(c->len, (int64_t)1 << 30));
        if (w < 0) return io_error();
        if (w == 0) return SL_EIO; /* the file is shorter than promised: a bug or truncation */
        c->off += w;
        c->len -= w;
        q->bytes -= w;
    }
    pop(q);
    return 0;
}

int sl_outq_flush(sl_outq *q, int sock_fd)
{
    while (q->head) {
        int rc = q->head->is_file ? flush_file(q, sock_fd) : flush_mem(q, sock_fd);
        if (rc) return rc;
    }
    SL_ASSERT(q->bytes == 0);
    return 0;
}

void sl_outq_clear(sl_outq *q)
{
    while (q->head) pop(q);
    SL_ASSERT(q->bytes == 0 && q->tail == NULL);
}
