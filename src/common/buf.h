/*
 * buf.h - a bounded, growable byte buffer (after curl's dynbuf).
 *
 * Every sl_buf has a maximum set at init; an append that would pass it
 * fails with SL_ETOOBIG and leaves the buffer unchanged, so no input can
 * make a buffer grow without bound. _init/_deinit embed; data is owned.
 */
#ifndef SL_COMMON_BUF_H
#define SL_COMMON_BUF_H

#include "common/base.h"

typedef struct sl_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max;
} sl_buf;

void sl_buf_init(sl_buf *buf, size_t max);
void sl_buf_deinit(sl_buf *buf);
/* Ensures room for `more` bytes past len; SL_ETOOBIG past max. */
int sl_buf_reserve(sl_buf *buf, size_t more);
int sl_buf_append(sl_buf *buf, const void *data, size_t len);
/* Reserves `len` bytes at the end, returns a pointer to them (NULL past max). */
uint8_t *sl_buf_extend(sl_buf *buf, size_t len);
/* Removes the first `n` bytes. */
void sl_buf_consume(sl_buf *buf, size_t n);
static inline void sl_buf_reset(sl_buf *buf) { buf->len = 0; }

#endif
