/*
 * log_read.c - zero-copy reads and timestamp lookups.
 *
 * A read resolves `offset` to the start of the batch that holds it, then
 * picks the end of the slice, and returns the file range: the broker
 * sendfile()s it later. Cost:
 *   - start: a sequential consumer asks for the offset where its previous
 *     read ended; SL__READ_HINTS remembered (offset, position) pairs answer
 *     that without any I/O. Otherwise: binary search of the segment list,
 *     binary search of the segment's index, then a walk of at most one
 *     index interval of batch headers through an 8 KiB read-ahead buffer
 *     (usually one pread).
 *   - end: if everything up to the limit (HW, or the segment's end) fits
 *     max_bytes, the limit is the end and no header is read. Otherwise the
 *     first batch is always taken (KIP-74), the index gives the last
 *     indexed batch start <= start + max_bytes, and a walk of at most one
 *     interval finds the last whole batch that fits.
 */
#include <string.h>
#include "storage/log_int.h"
#include "storage/decompress.h"
#include "common/log.h"
#include "common/alloc.h"

#define READ_AHEAD          8192
#define TIME_SCAN_BATCH_MAX ((int64_t)64 << 20) /* larger batches answer with their base offset */

/* Where reads in seg must stop: `limit` (HW, or a point below it) if it falls inside seg, else its end. */
static int64_t seg_limit(const sl_log *log, const sl__segment *seg, sl__logpos limit)
{
    if (limit.offset >= seg->next_offset) return seg->size;
    int64_t pos;
    const sl__segment *h = sl__log_locate(log, limit, &pos);
    SL_ASSERT(h == seg);
    return pos;
}

static int corrupt(const sl_log *log, const sl__segment *seg, int64_t pos)
{
    SL_ERROR("storage", "log %s: segment %020lld.log has no valid batch at position %lld", log->dir,
             (long long)seg->base_offset, (long long)pos);
    return SL_ECORRUPT;
}

/* The hint slot whose end point is `offset`, or -1. */
static int hint_find(const sl_log *log, int64_t offset)
{
    for (int i = 0; i < SL__READ_HINTS; i++)
        if (log->hints[i].seg && log->hints[i].offset == offset) return i;
    return -1;
}

static void hint_start(sl_log *log, int slot, sl__segment **segp, int64_t *pos)
{
    const sl__read_hint *h = &log->hints[slot];
    SL_ASSERT(!h->seg->dead && h->pos <= h->seg->size);
    *segp = h->seg;
    *pos = h->pos;
    if (h->pos == h->seg->size) { /* the end of a sealed segment is the start of the next */
        *segp = log->segs[sl__log_find(log, h->offset)];
        *pos = 0;
        SL_ASSERT((*segp)->base_offset == h->offset);
    }
}

/* A consumer that continues from a hint keeps its slot; a new one takes the oldest. */
static void hint_put(sl_log *log, int slot, sl__segment *seg, int64_t offset, int64_t pos)
{
    if (slot < 0) {
        slot = log->next_hint;
        log->next_hint = (log->next_hint + 1) % SL__READ_HINTS;
    }
    log->hints[slot] = (sl__read_hint){seg, offset, pos};
}

/* Walks headers from (*pos, *off) until the batch holding `offset`. */
static int walk_to(const sl_log *log, sl__reader *r, int64_t offset, int64_t *pos, int64_t *off)
{
    for (;;) {
        const uint8_t *h;
        int rc = sl__reader_batch(r, *pos, *off, &h);
        if (rc < 0) return rc;
        if (rc == 0) return corrupt(log, r->seg, *pos);
        int64_t last = *off + (int32_t)sl_be32(h + SL_BATCH_OFF_LAST_OFFSET_DELTA);
        if (last >= offset) return 0;
        *pos += sl_batch_size(h);
        *off = last + 1;
    }
}

/* The batch holding `offset`: its segment, position and base offset. */
static int find_start(sl_log *log, int64_t offset, sl__segment **segp, int64_t *pos, int64_t *base)
{
    int i = sl__log_find(log, offset);
    SL_ASSERT(i >= 0 && offset < log->segs[i]->next_offset);
    sl__segment *seg = log->segs[i];
    int rc = sl__log_index(log, seg);
    if (rc) return rc;
    int64_t e = sl__index_floor_offset(&seg->idx, offset - seg->base_offset);
    int64_t p = e >= 0 ? seg->idx.e[e].position : 0;
    int64_t off = seg->base_offset + (e >= 0 ? seg->idx.e[e].rel_offset : 0);
    uint8_t buf[READ_AHEAD];
    sl__reader r;
    sl__reader_init(&r, seg, seg_limit(log, seg, log->hw), buf, sizeof buf);
    rc = walk_to(log, &r, offset, &p, &off);
    *segp = seg;
    *pos = p;
    *base = off;
    return rc;
}

/* The end of the slice starting at the batch at pos (see the file comment). */
static int find_end(sl_log *log, sl__segment *seg, int64_t pos, int64_t max_bytes, sl__logpos until, int64_t *end,
                    int64_t *end_off)
{
    int64_t limit = seg_limit(log, seg, until);
    SL_ASSERT(pos >= 0 && pos < limit);
    if (limit - pos <= max_bytes) {
        *end = limit;
        *end_off = limit == seg->size ? seg->next_offset : until.offset;
        return 0;
    }
    uint8_t buf[READ_AHEAD];
    sl__reader r;
    sl__reader_init(&r, seg, limit, buf, sizeof buf);
    const uint8_t *h;
    int rc = sl__reader_batch(&r, pos, -1, &h);
    if (rc <= 0) return rc < 0 ? rc : corrupt(log, seg, pos);
    int64_t p = pos + sl_batch_size(h);
    int64_t off = (int64_t)sl_be64(h) + (int32_t)sl_be32(h + SL_BATCH_OFF_LAST_OFFSET_DELTA) + 1;
    int64_t target = pos + SL_MAX(max_bytes, 0);
    if (p < target && sl__log_index(log, seg) == 0) {
        int64_t e = sl__index_floor_position(&seg->idx, target);
        if (e >= 0 && seg->idx.e[e].position > p) {
            p = seg->idx.e[e].position;
            off = seg->base_offset + seg->idx.e[e].rel_offset;
        }
    }
    while (p < target && p < limit) {
        rc = sl__reader_batch(&r, p, off, &h);
        if (rc <= 0) return rc < 0 ? rc : corrupt(log, seg, p);
        if (p + sl_batch_size(h) > target) break;
        p += sl_batch_size(h);
        off += (int32_t)sl_be32(h + SL_BATCH_OFF_LAST_OFFSET_DELTA) + 1;
    }
    SL_ASSERT(p > pos && p <= limit);
    *end = p;
    *end_off = off;
    return 0;
}

/* The point of `until` (a batch boundary below HW): where a read_committed read stops. */
static int locate_until(sl_log *log, int64_t until, sl__logpos *at)
{
    if (until >= log->hw.offset) {
        *at = log->hw;
        return 0;
    }
    sl__segment *seg;
    int64_t pos, base;
    int rc = find_start(log, until, &seg, &pos, &base);
    if (rc) return rc;
    SL_ASSERT(base == until); /* a caller's bug: a stop inside a batch */
    *at = (sl__logpos){until, seg->base_offset, pos};
    return 0;
}

int sl_log_read_until(sl_log *log, int64_t offset, int64_t max_bytes, int64_t until, sl_log_slice *out)
{
    SL_ASSERT(log && out && until <= log->hw.offset);
    *out = (sl_log_slice){-1, 0, 0, NULL, offset};
    if (offset < sl_log_start_offset(log) || offset > log->hw.offset) return SL_ERANGE;
    if (offset >= until) return 0;
    sl__segment *seg;
    sl__logpos limit;
    int64_t pos, end, end_off, base;
    int rc = locate_until(log, until, &limit), slot = hint_find(log, offset);
    if (rc) return rc;
    if (slot >= 0)
        hint_start(log, slot, &seg, &pos);
    else
        rc = find_start(log, offset, &seg, &pos, &base);
    if (rc == 0) rc = find_end(log, seg, pos, max_bytes, limit, &end, &end_off);
    if (rc) return rc;
    SL_ASSERT(end > pos && end <= seg->size && end_off > offset);
    hint_put(log, slot, seg, end_off, end);
    sl__segment_ref(seg);
    *out = (sl_log_slice){seg->fd, pos, end - pos, seg, end_off};
    return 0;
}

int sl_log_read(sl_log *log, int64_t offset, int64_t max_bytes, sl_log_slice *out)
{
    return sl_log_read_until(log, offset, max_bytes, log->hw.offset, out);
}

void sl_log_slice_release(void *ref)
{
    if (ref) sl__segment_unref((sl__segment *)ref);
}

/* The first record of an uncompressed batch with a timestamp >= ts; keeps *offset_out otherwise. */
static void scan_records(const uint8_t *batch, size_t size, int64_t ts, int64_t *offset_out, int64_t *ts_out)
{
    int64_t base = (int64_t)sl_be64(batch), base_ts = (int64_t)sl_be64(batch + SL_BATCH_OFF_BASE_TIMESTAMP);
    sl_batch_iter it;
    sl_record rec;
    if (sl_batch_iter_init(&it, batch, size) != 0) return;
    while (sl_batch_iter_next(&it, &rec) == 1) {
        if (base_ts + rec.timestamp_delta >= ts) {
            *offset_out = base + rec.offset_delta;
            *ts_out = base_ts + rec.timestamp_delta;
            return;
        }
    }
}

/*
 * The first record of the batch at pos with a timestamp >= ts: Kafka's
 * answer, which for a compressed batch means decompressing it (the only
 * read that does; batches are otherwise stored and served as sent).
 * LogAppendTime batches and oversized ones answer with the batch's base
 * offset and MaxTimestamp.
 */
static int record_for_time(sl_log *log, sl__segment *seg, int64_t pos, const uint8_t *hdr, int64_t ts,
                           int64_t *offset_out, int64_t *ts_out)
{
    int64_t size = sl_batch_size(hdr);
    uint16_t attrs = sl_be16(hdr + SL_BATCH_OFF_ATTRIBUTES);
    *offset_out = (int64_t)sl_be64(hdr);
    *ts_out = (int64_t)sl_be64(hdr + SL_BATCH_OFF_MAX_TIMESTAMP);
    if ((attrs & SL_BATCH_ATTR_LOG_APPEND_TIME) || size > TIME_SCAN_BATCH_MAX) return 0;
    uint8_t *batch = sl_malloc((size_t)size), *plain = NULL;
    size_t plain_len = 0;
    int rc = 0;
    if (log->io->pread(log->io, seg->fd, batch, (size_t)size, pos) != (ssize_t)size) {
        rc = corrupt(log, seg, pos);
    } else if (!(attrs & SL_BATCH_ATTR_COMPRESSION_MASK)) {
        scan_records(batch, (size_t)size, ts, offset_out, ts_out);
    } else if (sl_batch_decompress(batch, (size_t)size, TIME_SCAN_BATCH_MAX, &plain, &plain_len) == 0) {
        scan_records(plain, plain_len, ts, offset_out, ts_out);
        sl_free(plain);
    }
    sl_free(batch);
    return rc;
}

static int time_in_segment(sl_log *log, sl__segment *seg, int64_t ts, int64_t *offset_out, int64_t *ts_out)
{
    SL_ASSERT(seg->max_timestamp >= ts && seg->base_offset < log->hw.offset);
    int rc = sl__log_index(log, seg);
    if (rc) return rc;
    int64_t e = sl__index_floor_time(&seg->idx, ts);
    SL_ASSERT(e < 0 || seg->idx.e[e].ts_before < ts);
    int64_t p = e >= 0 ? seg->idx.e[e].position : 0;
    int64_t off = seg->base_offset + (e >= 0 ? seg->idx.e[e].rel_offset : 0);
    int64_t limit = seg_limit(log, seg, log->hw);
    uint8_t buf[READ_AHEAD];
    sl__reader r;
    sl__reader_init(&r, seg, limit, buf, sizeof buf);
    while (p < limit) {
        const uint8_t *h;
        rc = sl__reader_batch(&r, p, off, &h);
        if (rc <= 0) return rc < 0 ? rc : corrupt(log, seg, p);
        if ((int64_t)sl_be64(h + SL_BATCH_OFF_MAX_TIMESTAMP) >= ts) {
            uint8_t hdr[SL_BATCH_HEADER_SIZE];
            memcpy(hdr, h, sizeof hdr);
            return record_for_time(log, seg, p, hdr, ts, offset_out, ts_out);
        }
        p += sl_batch_size(h);
        off += (int32_t)sl_be32(h + SL_BATCH_OFF_LAST_OFFSET_DELTA) + 1;
    }
    return 0; /* the batches that reach ts are above HW */
}

int sl_log_offset_for_time(sl_log *log, int64_t ts_ms, int64_t *offset_out, int64_t *ts_out)
{
    SL_ASSERT(log && offset_out && ts_out);
    *offset_out = -1;
    *ts_out = -1;
    for (int i = 0; i < log->nsegs && log->segs[i]->base_offset < log->hw.offset; i++) {
        sl__segment *seg = log->segs[i];
        /* Segments are in offset order, so the first whose largest timestamp
         * reaches ts holds the first batch that does. */
        if (seg->max_timestamp >= ts_ms) return time_in_segment(log, seg, ts_ms, offset_out, ts_out);
    }
    return 0;
}

int sl_log_scan(sl_log *log, int64_t from, sl_log_scan_fn fn, void *arg)
{
    enum { CHUNK = 4 << 20 };
    int64_t off = SL_MAX(from, sl_log_start_offset(log)), hw = sl_log_high_watermark(log);
    uint8_t *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    while (off < hw && !rc) {
        sl_log_slice s;
        rc = sl_log_read(log, off, CHUNK, &s);
        if (rc || s.len == 0) break;
        if ((size_t)s.len > cap) {
            cap = (size_t)s.len;
            buf = sl_realloc(buf, cap);
        }
        for (int64_t done = 0; done < s.len && !rc;) {
            ssize_t n = log->io->pread(log->io, s.fd, buf + done, (size_t)(s.len - done), s.file_off + done);
            if (n <= 0) rc = SL_EIO;
            else done += n;
        }
        sl_log_slice_release(s.ref);
        int64_t next = off;
        for (const uint8_t *p = buf; !rc && buf + s.len - p >= SL_BATCH_HEADER_SIZE;) {
            int64_t size = sl_batch_size(p);
            if (size < SL_BATCH_HEADER_SIZE || size > buf + s.len - p) break;
            rc = fn(arg, p, (size_t)size);
            next = (int64_t)sl_be64(p) + (int32_t)sl_be32(p + SL_BATCH_OFF_LAST_OFFSET_DELTA) + 1;
            p += size;
        }
        if (!rc && next <= off) rc = SL_ECORRUPT;
        off = next;
    }
    sl_free(buf);
    return rc;
}
