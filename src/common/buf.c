/*
 * buf.c - bounded growable buffer. Growth doubles (amortised O(1) appends)
 * but never past buf->max.
 */
#include <string.h>
#include "common/buf.h"
#include "common/alloc.h"
#include "common/error.h"

void sl_buf_init(sl_buf *buf, size_t max)
{
    SL_ASSERT(max > 0);
    buf->data = NULL;
    buf->len = buf->cap = 0;
    buf->max = max;
}

void sl_buf_deinit(sl_buf *buf)
{
    sl_free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}

int sl_buf_reserve(sl_buf *buf, size_t more)
{
    if (more > buf->max || buf->len > buf->max - more) return SL_ETOOBIG;
    size_t need = buf->len + more;
    if (need <= buf->cap) return 0;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < need) cap *= 2;
    if (cap > buf->max) cap = buf->max;
    buf->data = sl_realloc(buf->data, cap);
    buf->cap = cap;
    SL_ASSERT(buf->cap >= need);
    return 0;
}

int sl_buf_append(sl_buf *buf, const void *data, size_t len)
{
    int rc = sl_buf_reserve(buf, len);
    if (rc) return rc;
    if (len) memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    return 0;
}

uint8_t *sl_buf_extend(sl_buf *buf, size_t len)
{
    if (sl_buf_reserve(buf, len)) return NULL;
    uint8_t *p = buf->data + buf->len;
    buf->len += len;
    return p;
}

void sl_buf_consume(sl_buf *buf, size_t n)
{
    SL_ASSERT(n <= buf->len);
    if (n < buf->len) memmove(buf->data, buf->data + n, buf->len - n);
    buf->len -= n;
}
