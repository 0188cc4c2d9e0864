/*
 * wire.h - Kafka wire primitives: a bounds-checked reader over a request
 * body and a bounded writer that can splice file ranges into a response.
 *
 * Encodings (README of the protocol snapshot; all big-endian except varints):
 *
 *   int8/16/32/64, uint16/32, float64   fixed width
 *   bool                                1 byte; any non-zero reads as true
 *   uuid                                16 bytes
 *   uvarint                             LEB128, 7 bits a byte, low group first
 *                                       (<= 5 bytes: values fit in 32 bits)
 *   varint / varlong                    zig-zag, then uvarint (<= 5 / 10 bytes)
 *   string      classic: int16 N, N bytes   compact: uvarint N+1, N bytes
 *   bytes, records  classic: int32 N, N bytes   compact: uvarint N+1, N bytes
 *   array       classic: int32 count        compact: uvarint count+1
 *               (null: classic -1, compact 0; only where the schema says so)
 *   tagged fields  uvarint count, then per field: uvarint tag, uvarint size,
 *                  size bytes
 *
 * Reader. `sl_kreader` walks [p, end). Every read checks the bytes left; an
 * overrun or a bad length sets the sticky `err` to SL_EINVAL, moves p to end
 * and returns a zero value, so generated decoders read field after field
 * and test `err` once per struct instead of after every field. Strings and
 * bytes come back as views into the input (zero copy): they live as long as
 * the input buffer. Null where the schema forbids it is a decode error, so
 * a decoded message never holds a null in a non-nullable field.
 *
 * Writer. `sl_kwriter` appends to a bounded sl_buf. The hot writes are
 * inline: when the buffer has room a write is a store and a length bump;
 * growth is out of line. A `records` value marked `from_file` is not
 * copied: its length prefix goes into the buffer and a splice entry
 * {at = buffer length after the prefix, fd, off, len, ref} is appended to the
 * caller's array, so the sender transmits buf[0, at1), file range 1,
 * buf[at1, at2), ... Errors are sticky in `err`: SL_ETOOBIG when the buffer
 * maximum or the splice array is exceeded, SL_EINVAL when a value cannot be
 * represented (null in a non-nullable field, a string over 32767 bytes).
 */
#ifndef SL_KAFKA_WIRE_H
#define SL_KAFKA_WIRE_H

#include <string.h>
#include "common/base.h"
#include "common/buf.h"
#include "common/error.h"
#include "common/arena.h"

typedef struct sl_kstr { const char *ptr; int32_t len; } sl_kstr;          /* len -1 = null; not NUL-terminated */
typedef struct sl_kbytes { const uint8_t *ptr; int32_t len; } sl_kbytes;   /* len -1 = null */
typedef struct sl_krecords {          /* the `records` type */
    const uint8_t *ptr; int32_t len;  /* in-memory bytes; len -1 = null. Decode: a view into the input */
    bool from_file;                   /* encode only: splice [file_off, file_off+len) of fd instead of ptr */
    int fd; int64_t file_off; void *file_ref;
} sl_krecords;

#define SL_KSTR_NULL ((sl_kstr){NULL, -1})
#define SL_KSTR_EMPTY ((sl_kstr){"", 0})
/* A view of a C string literal or array (not of a pointer: sizeof is used). */
#define SL_KSTR_LIT(s) ((sl_kstr){(s), (int32_t)(sizeof(s) - 1)})
#define SL_KBYTES_NULL ((sl_kbytes){NULL, -1})
#define SL_KBYTES_EMPTY ((sl_kbytes){NULL, 0})
#define SL_KRECORDS_NULL ((sl_krecords){.ptr = NULL, .len = -1, .fd = -1})
/* Classic strings carry an int16 length; Kafka keeps that limit for compact ones too. */
#define SL_KSTR_LEN_MAX 32767

static inline sl_kstr sl_kstr_from(const char *s) { return (sl_kstr){s, (int32_t)strlen(s)}; }
static inline bool sl_kstr_eq(sl_kstr a, sl_kstr b)
{
    return a.len == b.len && (a.len <= 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0);
}

/* ---- reader ---------------------------------------------------------------- */

typedef struct sl_kreader { const uint8_t *p, *end; int err; } sl_kreader;

void sl_kreader_init(sl_kreader *r, const void *data, size_t len);
/* Out-of-line parts of the reader (multi-byte varints, the error path). */
void sl__kread_fail(sl_kreader *r);
uint32_t sl__kread_uvarint_slow(sl_kreader *r);
uint64_t sl_kread_uvarlong(sl_kreader *r);
/* Skips a whole tagged-field section (count, then tag/size/bytes each). */
void sl_kread_tagged_skip(sl_kreader *r);
/* Narrows `sub` to the next n bytes of r and advances r past them. */
void sl_kread_sub(sl_kreader *r, size_t n, sl_kreader *sub);
/*
 * Reads an array length (classic int32 or compact uvarint), checks it
 * against the bytes left (each element takes at least elem_min_bytes, >= 1)
 * and allocates count * elem_size zeroed bytes from the arena. *count is -1
 * for null (only if nullable), *items NULL when count <= 0. Returns 0,
 * SL_EINVAL (bad length; also sets r->err) or SL_ENOMEM (arena maximum).
 */
int sl_kread_array(sl_kreader *r, bool compact, bool nullable, size_t elem_min_bytes,
                   size_t elem_size, sl_arena *arena, void **items, int32_t *count);

static inline size_t sl_kread_left(const sl_kreader *r) { return (size_t)(r->end - r->p); }

static inline bool sl__kread_need(sl_kreader *r, size_t n)
{
    if (SL_LIKELY(sl_kread_left(r) >= n)) return true;
    sl__kread_fail(r);
    return false;
}

static inline int8_t sl_kread_int8(sl_kreader *r)
{
    if (!sl__kread_need(r, 1)) return 0;
    return (int8_t)*r->p++;
}

static inline bool sl_kread_bool(sl_kreader *r) { return sl_kread_int8(r) != 0; }

static inline uint16_t sl_kread_uint16(sl_kreader *r)
{
    if (!sl__kread_need(r, 2)) return 0;
    uint16_t v = sl_be16(r->p);
    r->p += 2;
    return v;
}

static inline int16_t sl_kread_int16(sl_kreader *r) { return (int16_t)sl_kread_uint16(r); }

static inline uint32_t sl_kread_uint32(sl_kreader *r)
{
    if (!sl__kread_need(r, 4)) return 0;
    uint32_t v = sl_be32(r->p);
    r->p += 4;
    return v;
}

static inline int32_t sl_kread_int32(sl_kreader *r) { return (int32_t)sl_kread_uint32(r); }

static inline int64_t sl_kread_int64(sl_kreader *r)
{
    if (!sl__kread_need(r, 8)) return 0;
    uint64_t v = sl_be64(r->p);
    r->p += 8;
    return (int64_t)v;
}

static inline double sl_kread_float64(sl_kreader *r)
{
    uint64_t bits = (uint64_t)sl_kread_int64(r);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static inline void sl_kread_uuid(sl_kreader *r, uint8_t out[16])
{
    if (!sl__kread_need(r, 16)) {
        memset(out, 0, 16);
        return;
    }
    memcpy(out, r->p, 16);
    r->p += 16;
}

static inline uint32_t sl_kread_uvarint(sl_kreader *r)
{
    if (SL_LIKELY(r->p < r->end && *r->p < 0x80)) return *r->p++;
    return sl__kread_uvarint_slow(r);
}

static inline int32_t sl_kread_varint(sl_kreader *r)
{
    uint32_t u = sl_kread_uvarint(r);
    return (int32_t)((u >> 1) ^ (0u - (u & 1)));
}

static inline int64_t sl_kread_varlong(sl_kreader *r)
{
    uint64_t u = sl_kread_uvarlong(r);
    return (int64_t)((u >> 1) ^ (0u - (u & 1)));
}

static inline void sl_kread_skip(sl_kreader *r, size_t n)
{
    if (sl__kread_need(r, n)) r->p += n;
}

/* A length prefix: compact uvarint N+1, or classic int16/int32. -1 = null. */
static inline int64_t sl__kread_len(sl_kreader *r, bool compact, bool wide)
{
    if (compact) return (int64_t)sl_kread_uvarint(r) - 1;
    return wide ? (int64_t)sl_kread_int32(r) : (int64_t)sl_kread_int16(r);
}

/* Checks a length prefix and takes a view of n bytes; NULL for null or error. */
static inline const uint8_t *sl__kread_view(sl_kreader *r, int64_t n, bool nullable, int64_t max)
{
    if (n < 0) {
        if (n != -1 || !nullable) sl__kread_fail(r);
        return NULL;
    }
    if (n > max || !sl__kread_need(r, (size_t)n)) {
        sl__kread_fail(r);
        return NULL;
    }
    const uint8_t *v = r->p;
    r->p += n;
    return v;
}

static inline sl_kstr sl_kread_str(sl_kreader *r, bool compact, bool nullable)
{
    int64_t n = sl__kread_len(r, compact, false);
    const uint8_t *v = sl__kread_view(r, n, nullable, SL_KSTR_LEN_MAX);
    if (!v) return SL_KSTR_NULL;
    return (sl_kstr){(const char *)v, (int32_t)n};
}

static inline sl_kbytes sl_kread_bytes(sl_kreader *r, bool compact, bool nullable)
{
    int64_t n = sl__kread_len(r, compact, true);
    const uint8_t *v = sl__kread_view(r, n, nullable, INT32_MAX);
    if (!v) return SL_KBYTES_NULL;
    return (sl_kbytes){v, (int32_t)n};
}

static inline void sl_kread_records(sl_kreader *r, bool compact, bool nullable, sl_krecords *out)
{
    int64_t n = sl__kread_len(r, compact, true);
    *out = SL_KRECORDS_NULL;
    const uint8_t *v = sl__kread_view(r, n, nullable, INT32_MAX);
    if (!v) return;
    out->ptr = v;
    out->len = (int32_t)n;
}

/* ---- writer ---------------------------------------------------------------- */

typedef struct sl_kwriter_splice { size_t at; int fd; int64_t off; int64_t len; void *ref; } sl_kwriter_splice;
typedef struct sl_kwriter {
    sl_buf *buf;                                              /* bounded output */
    sl_kwriter_splice *splices; int nsplices, max_splices;    /* caller-provided array */
    int64_t spliced_len;                                      /* sum of splice lengths (not in buf) */
    int err;                                                  /* sticky */
} sl_kwriter;

/* splices may be NULL when max_splices is 0 (then from_file records fail with SL_ETOOBIG). */
void sl_kwriter_init(sl_kwriter *w, sl_buf *buf, sl_kwriter_splice *splices, int max_splices);
uint8_t *sl__kwrite_grow(sl_kwriter *w, size_t n);
void sl_kwrite_raw(sl_kwriter *w, const void *data, size_t n);
void sl__kwrite_uvarint_slow(sl_kwriter *w, uint64_t v);
void sl_kwrite_records(sl_kwriter *w, bool compact, bool nullable, const sl_krecords *rec);
/* A tagged field: _begin writes the tag and returns where its value starts;
 * _end inserts the value's size before it (values are small: a memmove). */
size_t sl_kwrite_tag_begin(sl_kwriter *w, uint32_t tag);
void sl_kwrite_tag_end(sl_kwriter *w, size_t start);

static inline void sl__kwrite_set_err(sl_kwriter *w, int err)
{
    if (!w->err) w->err = err;
}

/* n bytes of room at the end of the buffer, or NULL once err is set. n > 0. */
static inline uint8_t *sl__kwrite_room(sl_kwriter *w, size_t n)
{
    sl_buf *b = w->buf;
    if (SL_LIKELY(!w->err && b->cap - b->len >= n)) {
        uint8_t *p = b->data + b->len;
        b->len += n;
        return p;
    }
    return sl__kwrite_grow(w, n);
}

static inline void sl_kwrite_int8(sl_kwriter *w, int8_t v)
{
    uint8_t *p = sl__kwrite_room(w, 1);
    if (p) *p = (uint8_t)v;
}

static inline void sl_kwrite_bool(sl_kwriter *w, bool v) { sl_kwrite_int8(w, v ? 1 : 0); }

static inline void sl_kwrite_uint16(sl_kwriter *w, uint16_t v)
{
    uint8_t *p = sl__kwrite_room(w, 2);
    if (p) sl_put_be16(p, v);
}

static inline void sl_kwrite_int16(sl_kwriter *w, int16_t v) { sl_kwrite_uint16(w, (uint16_t)v); }

static inline void sl_kwrite_uint32(sl_kwriter *w, uint32_t v)
{
    uint8_t *p = sl__kwrite_room(w, 4);
    if (p) sl_put_be32(p, v);
}

static inline void sl_kwrite_int32(sl_kwriter *w, int32_t v) { sl_kwrite_uint32(w, (uint32_t)v); }

static inline void sl_kwrite_int64(sl_kwriter *w, int64_t v)
{
    uint8_t *p = sl__kwrite_room(w, 8);
    if (p) sl_put_be64(p, (uint64_t)v);
}

static inline void sl_kwrite_float64(sl_kwriter *w, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    sl_kwrite_int64(w, (int64_t)bits);
}

static inline void sl_kwrite_uuid(sl_kwriter *w, const uint8_t v[16])
{
    uint8_t *p = sl__kwrite_room(w, 16);
    if (p) memcpy(p, v, 16);
}

static inline void sl_kwrite_uvarint(sl_kwriter *w, uint32_t v)
{
    if (SL_LIKELY(v < 0x80)) {
        uint8_t *p = sl__kwrite_room(w, 1);
        if (p) *p = (uint8_t)v;
        return;
    }
    sl__kwrite_uvarint_slow(w, v);
}

static inline void sl_kwrite_varint(sl_kwriter *w, int32_t v)
{
    uint32_t u = ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
    sl_kwrite_uvarint(w, u);
}

static inline void sl_kwrite_varlong(sl_kwriter *w, int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    sl__kwrite_uvarint_slow(w, u);
}

/* A length prefix for n bytes or elements; n == -1 writes null. */
static inline void sl__kwrite_len(sl_kwriter *w, bool compact, bool wide, int64_t n)
{
    if (compact)
        sl_kwrite_uvarint(w, (uint32_t)(n + 1));
    else if (wide)
        sl_kwrite_int32(w, (int32_t)n);
    else
        sl_kwrite_int16(w, (int16_t)n);
}

/* False (and err = SL_EINVAL) when n is not a length the field may carry. */
static inline bool sl__kwrite_len_ok(sl_kwriter *w, int64_t n, bool nullable, int64_t max)
{
    if ((n < 0 && (n != -1 || !nullable)) || n > max) {
        sl__kwrite_set_err(w, SL_EINVAL);
        return false;
    }
    return true;
}

static inline void sl_kwrite_str(sl_kwriter *w, bool compact, bool nullable, sl_kstr s)
{
    if (!sl__kwrite_len_ok(w, s.len, nullable, SL_KSTR_LEN_MAX)) return;
    sl__kwrite_len(w, compact, false, s.len);
    if (s.len > 0) sl_kwrite_raw(w, s.ptr, (size_t)s.len);
}

static inline void sl_kwrite_bytes(sl_kwriter *w, bool compact, bool nullable, sl_kbytes b)
{
    if (!sl__kwrite_len_ok(w, b.len, nullable, INT32_MAX - 1)) return;
    sl__kwrite_len(w, compact, true, b.len);
    if (b.len > 0) sl_kwrite_raw(w, b.ptr, (size_t)b.len);
}

/* An array's length; the caller writes the elements. */
static inline void sl_kwrite_array_len(sl_kwriter *w, bool compact, bool nullable, int32_t count)
{
    if (!sl__kwrite_len_ok(w, count, nullable, INT32_MAX - 1)) return;
    sl__kwrite_len(w, compact, true, count);
}

#endif
