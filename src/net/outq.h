/*
 * outq.h - a connection's output: a FIFO of memory pieces and file ranges,
 * sent with writev and sendfile (zero-copy from the page cache for Fetch).
 *
 * A memory piece may carry `owned`, a pointer freed (sl_free) once that
 * piece is fully sent: a response buffer split around file ranges is
 * pushed as several pieces, the last of which owns the buffer. A file
 * range carries a reference released when it is sent or dropped, which
 * keeps the segment's fd open even if retention deletes the segment.
 */
#ifndef SL_NET_OUTQ_H
#define SL_NET_OUTQ_H

#include "common/base.h"

typedef void (*sl_release_fn)(void *ref);
typedef struct sl_outq_chunk sl_outq_chunk;

typedef struct sl_outq {
    sl_outq_chunk *head, *tail;
    int64_t bytes;   /* bytes queued and not yet sent */
} sl_outq;

void sl_outq_init(sl_outq *q);
void sl_outq_push_mem(sl_outq *q, const uint8_t *data, size_t len, void *owned);
void sl_outq_push_file(sl_outq *q, int fd, int64_t off, int64_t len, void *ref, sl_release_fn release);
/* Sends what the socket takes: 0 when the queue is empty, SL_EAGAIN when the
   socket is full (wait for writability), SL_ECLOSED/SL_EIO on a dead peer. */
int sl_outq_flush(sl_outq *q, int sock_fd);
/* Drops everything unsent (frees owned memory, releases file refs). */
void sl_outq_clear(sl_outq *q);
static inline bool sl_outq_empty(const sl_outq *q) { return q->head == NULL; }

#endif
