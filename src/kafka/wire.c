/*
 * wire.c - the out-of-line parts of the Kafka wire reader and writer (see
 * wire.h for the encodings and the error model): multi-byte varints, array
 * allocation with the hostile-count check, tagged-field sections, buffer
 * growth and record splicing.
 *
 * Array counts come from the peer, so before anything is allocated a count
 * is checked against the bytes left in the input: every element takes at
 * least elem_min_bytes (computed per element type by the generator), so a
 * 10-byte request cannot ask for 2^31 elements. What passes that check is
 * still bounded by the arena's maximum (SL_ENOMEM, never a crash).
 */
#include "kafka/wire.h"

void sl_kreader_init(sl_kreader *r, const void *data, size_t len)
{
    /* An empty sl_buf has data NULL; point at a real byte so p + 0 is defined. */
    static const uint8_t empty[1];
    SL_ASSERT(data != NULL || len == 0);
    r->p = data ? data : empty;
    r->end = r->p + len;
    r->err = 0;
}

void sl__kread_fail(sl_kreader *r)
{
    r->err = SL_EINVAL;
    r->p = r->end;
}

/* At most 5 bytes; the fifth may only carry the top 4 bits of a uint32. */
uint32_t sl__kread_uvarint_slow(sl_kreader *r)
{
    uint32_t v = 0;
    for (int shift = 0; shift < 35; shift += 7) {
        if (r->p >= r->end) break;
        uint8_t b = *r->p++;
        if (shift == 28 && b > 0x0f) break;
        v |= (uint32_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    sl__kread_fail(r);
    return 0;
}

/* At most 10 bytes; the tenth may only carry the top bit of a uint64. */
uint64_t sl_kread_uvarlong(sl_kreader *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) break;
        uint8_t b = *r->p++;
        if (shift == 63 && b > 0x01) break;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    sl__kread_fail(r);
    return 0;
}

void sl_kread_sub(sl_kreader *r, size_t n, sl_kreader *sub)
{
    sub->p = sub->end = r->p;
    sub->err = 0;
    if (!sl__kread_need(r, n)) {
        sub->err = SL_EINVAL;
        return;
    }
    sub->end = r->p + n;
    r->p += n;
    SL_ASSERT(sub->end <= r->end);
}

void sl_kread_tagged_skip(sl_kreader *r)
{
    uint32_t count = sl_kread_uvarint(r);
    /* Each field takes at least two bytes (tag, size), and r->err stops the loop. */
    for (uint32_t i = 0; i < count && !r->err; i++) {
        (void)sl_kread_uvarint(r);
        uint32_t size = sl_kread_uvarint(r);
        sl_kread_skip(r, size);
    }
}

int sl_kread_array(sl_kreader *r, bool compact, bool nullable, size_t elem_min_bytes,
                   size_t elem_size, sl_arena *arena, void **items, int32_t *count)
{
    SL_ASSERT(elem_min_bytes >= 1 && elem_size >= 1);
    *items = NULL;
    *count = 0;
    int64_t n = sl__kread_len(r, compact, true);
    if (r->err) return SL_EINVAL;
    if (n < 0) {
        if (n != -1 || !nullable) {
            sl__kread_fail(r);
            return SL_EINVAL;
        }
        *count = -1;
        return 0;
    }
    if ((uint64_t)n > sl_kread_left(r) / elem_min_bytes) {
        sl__kread_fail(r);
        return SL_EINVAL;
    }
    if (n == 0) return 0;
    *items = sl_arena_alloc(arena, (size_t)n * elem_size);
    if (!*items) return SL_ENOMEM;
    *count = (int32_t)n;
    SL_ASSERT(*count > 0);
    return 0;
}

void sl_kwriter_init(sl_kwriter *w, sl_buf *buf, sl_kwriter_splice *splices, int max_splices)
{
    SL_ASSERT(buf != NULL);
    SL_ASSERT(max_splices >= 0 && (splices != NULL || max_splices == 0));
    w->buf = buf;
    w->splices = splices;
    w->nsplices = 0;
    w->max_splices = max_splices;
    w->spliced_len = 0;
    w->err = 0;
}

uint8_t *sl__kwrite_grow(sl_kwriter *w, size_t n)
{
    SL_ASSERT(n > 0);
    if (w->err) return NULL;
    uint8_t *p = sl_buf_extend(w->buf, n);
    if (!p) w->err = SL_ETOOBIG;
    return p;
}

void sl_kwrite_raw(sl_kwriter *w, const void *data, size_t n)
{
    if (n == 0) return;
    SL_ASSERT(data != NULL);
    uint8_t *p = sl__kwrite_room(w, n);
    if (p) memcpy(p, data, n);
}

void sl__kwrite_uvarint_slow(sl_kwriter *w, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    SL_ASSERT(n <= sizeof tmp);
    sl_kwrite_raw(w, tmp, n);
}

static void splice_file(sl_kwriter *w, const sl_krecords *rec)
{
    if (w->err) return;
    if (w->nsplices == w->max_splices) {
        w->err = SL_ETOOBIG;
        return;
    }
    SL_ASSERT(rec->fd >= 0 && rec->file_off >= 0);
    sl_kwriter_splice *s = &w->splices[w->nsplices++];
    s->at = w->buf->len;
    s->fd = rec->fd;
    s->off = rec->file_off;
    s->len = rec->len;
    s->ref = rec->file_ref;
    w->spliced_len += rec->len;
}

void sl_kwrite_records(sl_kwriter *w, bool compact, bool nullable, const sl_krecords *rec)
{
    if (!sl__kwrite_len_ok(w, rec->len, nullable, INT32_MAX - 1)) return;
    sl__kwrite_len(w, compact, true, rec->len);
    if (rec->len <= 0) return;
    if (rec->from_file)
        splice_file(w, rec);
    else
        sl_kwrite_raw(w, rec->ptr, (size_t)rec->len);
}

size_t sl_kwrite_tag_begin(sl_kwriter *w, uint32_t tag)
{
    sl_kwrite_uvarint(w, tag);
    return w->buf->len;
}

void sl_kwrite_tag_end(sl_kwriter *w, size_t start)
{
    if (w->err) return;
    sl_buf *b = w->buf;
    SL_ASSERT(start <= b->len);
    /* A splice inside a tagged value would move; no schema puts records there. */
    SL_ASSERT(w->nsplices == 0 || w->splices[w->nsplices - 1].at <= start);
    size_t vlen = b->len - start;
    if (vlen > UINT32_MAX - 1) {
        w->err = SL_ETOOBIG;
        return;
    }
    uint8_t tmp[5];
    size_t n = 0;
    for (uint32_t v = (uint32_t)vlen; ; v >>= 7) {
        tmp[n++] = (uint8_t)(v >= 0x80 ? (v | 0x80) : v);
        if (v < 0x80) break;
    }
    if (!sl__kwrite_room(w, n)) return;
    memmove(b->data + start + n, b->data + start, vlen);
    memcpy(b->data + start, tmp, n);
}
