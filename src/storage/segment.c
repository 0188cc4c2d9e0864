/*
 * segment.c - segment files: create/open/delete, pre-allocation, the
 * in-memory index of batches appended or scanned, and buffered header walks.
 *
 * Pre-allocation writes zeros (it does not use fallocate): fallocate leaves
 * "unwritten" extents, and the first write into one makes the next
 * fdatasync journal an extent conversion, while overwriting blocks that
 * already hold zeros needs no metadata at all. docs/internals/storage.md
 * has the measurements. The zeros come from one static 64 KiB block
 * gathered by pwritev, so a 16 MiB extension is one syscall.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include "storage/segment.h"
#include "storage/batch.h"
#include "common/log.h"
#include "common/alloc.h"

#define ZERO_BLOCK 65536
#define ZERO_IOV   256
static const uint8_t zero_block[ZERO_BLOCK];

void sl__segment_path(char *buf, size_t size, const char *dir, int64_t base, const char *ext)
{
    SL_ASSERT(base >= 0);
    int n = snprintf(buf, size, "%s/%020lld%s", dir, (long long)base, ext);
    SL_ASSERT(n > 0 && (size_t)n < size);
}

bool sl__segment_parse_name(const char *name, const char *ext, int64_t *base)
{
    size_t len = strlen(name), elen = strlen(ext);
    if (len != SL__SEGMENT_NAME_DIGITS + elen || strcmp(name + SL__SEGMENT_NAME_DIGITS, ext) != 0) return false;
    int64_t v = 0;
    for (int i = 0; i < SL__SEGMENT_NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9') return false;
        int d = name[i] - '0';
        if (v > (INT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *base = v;
    return true;
}

static sl__segment *segment_new(sl_fileio *io, int64_t base, int fd)
{
    sl__segment *seg = SL_NEW(sl__segment);
    seg->base_offset = base;
    seg->next_offset = base;
    seg->max_timestamp = SL__TS_NONE;
    seg->fd = fd;
    seg->refs = 1;
    seg->io = io;
    sl__index_init(&seg->idx);
    return seg;
}

int sl__segment_create(sl_fileio *io, const char *dir, int64_t base, sl__segment **out)
{
    char path[SL__PATH_MAX];
    sl__segment_path(path, sizeof path, dir, base, ".log");
    int fd = io->open(io, path, O_CREAT | O_TRUNC | O_RDWR, 0644);
    if (fd < 0) {
        int err = errno;
        SL_ERROR("storage", "cannot create segment %s: %s", path, strerror(err));
        return sl__io_err(err);
    }
    sl__segment *seg = segment_new(io, base, fd);
    seg->index_loaded = true;
    *out = seg;
    return 0;
}

int sl__segment_open(sl_fileio *io, const char *dir, int64_t base, sl__segment **out)
{
    char path[SL__PATH_MAX];
    SL_ASSERT(io && out);
    sl__segment_path(path, sizeof path, dir, base, ".log");
    int fd = io->open(io, path, O_RDWR, 0);
    int64_t size = fd >= 0 ? io->size(io, fd) : -1;
    if (size < 0) {
        int err = errno;
        SL_ERROR("storage", "cannot open segment %s: %s", path, strerror(err));
        if (fd >= 0) io->close(io, fd);
        return SL_EIO;
    }
    sl__segment *seg = segment_new(io, base, fd);
    seg->file_size = size;
    *out = seg;
    return 0;
}

void sl__segment_ref(sl__segment *seg)
{
    SL_ASSERT(seg->refs > 0);
    seg->refs++;
}

void sl__segment_unref(sl__segment *seg)
{
    SL_ASSERT(seg->refs > 0);
    if (--seg->refs > 0) return;
    seg->io->close(seg->io, seg->fd);
    sl__index_deinit(&seg->idx);
    sl_free(seg);
}

int sl__segment_delete(sl__segment *seg, const char *dir)
{
    SL_ASSERT(!seg->dead);
    char path[SL__PATH_MAX];
    sl__segment_path(path, sizeof path, dir, seg->base_offset, ".index");
    if (seg->io->unlink(seg->io, path) != 0 && errno != ENOENT)
        SL_WARN("storage", "cannot delete %s: %s", path, strerror(errno));
    sl__segment_path(path, sizeof path, dir, seg->base_offset, ".log");
    if (seg->io->unlink(seg->io, path) != 0 && errno != ENOENT) {
        SL_ERROR("storage", "cannot delete segment %s: %s", path, strerror(errno));
        return SL_EIO;
    }
    seg->dead = true;
    return 0;
}

void sl__segment_note_batch(sl__segment *seg, const uint8_t *hdr, int64_t pos, int32_t index_interval_bytes)
{
    SL_ASSERT(seg->index_loaded && pos == seg->size);
    int64_t base = (int64_t)sl_be64(hdr + SL_BATCH_OFF_BASE_OFFSET);
    SL_ASSERT(base == seg->next_offset);
    if (pos > 0 && pos - seg->last_entry_pos >= index_interval_bytes) {
        SL_ASSERT(base - seg->base_offset <= UINT32_MAX && pos <= UINT32_MAX);
        sl__index_push(&seg->idx, (uint32_t)(base - seg->base_offset), (uint32_t)pos, seg->max_timestamp);
        seg->last_entry_pos = pos;
    }
    seg->size = pos + sl_batch_size(hdr);
    seg->next_offset = base + (int32_t)sl_be32(hdr + SL_BATCH_OFF_LAST_OFFSET_DELTA) + 1;
    seg->max_timestamp = SL_MAX(seg->max_timestamp, (int64_t)sl_be64(hdr + SL_BATCH_OFF_MAX_TIMESTAMP));
    if (seg->file_size < seg->size) seg->file_size = seg->size;
}

/* Re-notes the batches from size up to pos, reading their headers. */
static int walk_forward(sl__segment *seg, int64_t pos, int64_t next_offset, int32_t index_interval_bytes)
{
    uint8_t buf[16384];
    sl__reader r;
    sl__reader_init(&r, seg, pos, buf, sizeof buf);
    while (seg->size < pos) {
        const uint8_t *hdr;
        int rc = sl__reader_batch(&r, seg->size, seg->next_offset, &hdr);
        if (rc <= 0) return rc < 0 ? rc : SL_ECORRUPT;
        sl__segment_note_batch(seg, hdr, seg->size, index_interval_bytes);
    }
    SL_ASSERT(seg->size == pos);
    seg->index_on_disk = false;
    /* Offsets that disagree with what the log recorded mean the bytes changed under us. */
    return seg->next_offset == next_offset ? 0 : SL_ECORRUPT;
}

int sl__segment_truncate(sl__segment *seg, int64_t pos, int64_t next_offset, int32_t index_interval_bytes)
{
    SL_ASSERT(seg->index_loaded && pos <= seg->size);
    /* Restart from the last kept index entry: everything before it is unchanged. */
    sl__index_truncate(&seg->idx, pos);
    int64_t from = 0, off = seg->base_offset, ts = SL__TS_NONE;
    if (seg->idx.n > 0) {
        const sl__index_entry *e = &seg->idx.e[seg->idx.n - 1];
        from = e->position;
        off = seg->base_offset + e->rel_offset;
        ts = e->ts_before;
        seg->idx.n--; /* note_batch puts it back */
    }
    seg->size = from;
    seg->next_offset = off;
    seg->max_timestamp = ts;
    seg->last_entry_pos = seg->idx.n ? seg->idx.e[seg->idx.n - 1].position : 0;
    return walk_forward(seg, pos, next_offset, index_interval_bytes);
}

int sl__segment_prealloc(sl__segment *seg, int64_t end)
{
    SL_ASSERT(seg->file_size >= seg->size);
    struct iovec iov[ZERO_IOV];
    while (seg->file_size < end) {
        int64_t want = SL_MIN(end - seg->file_size, (int64_t)ZERO_BLOCK * ZERO_IOV);
        int cnt = 0;
        for (int64_t left = want; left > 0; left -= ZERO_BLOCK, cnt++) {
            iov[cnt].iov_base = (void *)zero_block;
            iov[cnt].iov_len = (size_t)SL_MIN(left, (int64_t)ZERO_BLOCK);
        }
        ssize_t n = seg->io->pwritev(seg->io, seg->fd, iov, cnt, seg->file_size);
        if (n <= 0) return sl__io_err(n < 0 ? errno : ENOSPC);
        seg->file_size += n;
    }
    return 0;
}

int sl__segment_trim(sl__segment *seg)
{
    SL_ASSERT(seg->file_size >= seg->size);
    if (seg->file_size == seg->size) return 0;
    if (seg->io->ftruncate(seg->io, seg->fd, seg->size) != 0) return sl__io_err(errno);
    seg->file_size = seg->size;
    return 0;
}

int sl__segment_write_index(sl__segment *seg, const char *dir)
{
    SL_ASSERT(seg->index_loaded && !seg->dead);
    char path[SL__PATH_MAX];
    sl__segment_path(path, sizeof path, dir, seg->base_offset, ".index");
    sl__index_meta meta = {seg->base_offset, seg->next_offset, seg->size, seg->max_timestamp, seg->idx.n, 0};
    int rc = sl__index_write(seg->io, path, &meta, &seg->idx);
    seg->index_on_disk = rc == 0;
    return rc;
}

/* Rebuilds the index of [0, size) from the batch headers. */
static int rebuild_index(sl__segment *seg, int32_t index_interval_bytes)
{
    int64_t size = seg->size, next = seg->next_offset;
    sl__index_deinit(&seg->idx);
    seg->index_loaded = true;
    seg->size = 0;
    seg->next_offset = seg->base_offset;
    seg->max_timestamp = SL__TS_NONE;
    seg->last_entry_pos = 0;
    return walk_forward(seg, size, next, index_interval_bytes);
}

int sl__segment_load_index(sl__segment *seg, const char *dir, int32_t index_interval_bytes)
{
    if (seg->index_loaded) return 0;
    SL_ASSERT(!seg->dead && seg->idx.n == 0);
    char path[SL__PATH_MAX];
    sl__segment_path(path, sizeof path, dir, seg->base_offset, ".index");
    sl__index_meta meta;
    int rc = sl__index_read_meta(seg->io, path, &meta);
    if (rc == 0 &&
        (meta.base_offset != seg->base_offset || meta.next_offset != seg->next_offset || meta.log_size != seg->size))
        rc = SL_ECORRUPT;
    if (rc == 0) rc = sl__index_read(seg->io, path, &meta, &seg->idx);
    if (rc == 0) {
        seg->index_loaded = true;
        seg->last_entry_pos = seg->idx.n ? seg->idx.e[seg->idx.n - 1].position : 0;
        return 0;
    }
    SL_WARN("storage", "index %s is missing or stale (%s): rebuilding it from the segment", path, sl_strerror(rc));
    rc = rebuild_index(seg, index_interval_bytes);
    if (rc) {
        SL_ERROR("storage", "segment %020lld.log in %s is corrupt below its recovered end: %s",
                 (long long)seg->base_offset, dir, sl_strerror(rc));
        sl__index_deinit(&seg->idx);
        seg->index_loaded = false;
        return rc;
    }
    sl__segment_write_index(seg, dir);
    return 0;
}

void sl__segment_drop_index(sl__segment *seg)
{
    SL_ASSERT(seg->index_loaded);
    sl__index_deinit(&seg->idx);
    seg->index_loaded = false;
}

void sl__reader_init(sl__reader *r, sl__segment *seg, int64_t limit, uint8_t *buf, size_t cap)
{
    SL_ASSERT(cap >= SL_BATCH_HEADER_SIZE);
    *r = (sl__reader){seg, limit, buf, cap, 0, 0, false};
}

int sl__reader_get(sl__reader *r, int64_t pos, size_t len, const uint8_t **p)
{
    SL_ASSERT(len <= r->cap && pos >= 0);
    if (pos + (int64_t)len > r->limit) return SL_ERANGE;
    if (pos < r->buf_pos || pos + (int64_t)len > r->buf_pos + (int64_t)r->buf_len) {
        size_t want = (size_t)SL_MIN((int64_t)r->cap, r->limit - pos);
        ssize_t n = r->seg->io->pread(r->seg->io, r->seg->fd, r->buf, want, pos);
        if (n < (ssize_t)len) {
            SL_ERROR("storage", "cannot read segment %020lld.log at %lld: %s", (long long)r->seg->base_offset,
                     (long long)pos, n < 0 ? strerror(errno) : "file shorter than expected");
            r->buf_len = 0;
            return SL_EIO;
        }
        r->buf_pos = pos;
        r->buf_len = (size_t)n;
        /* While this buffer is checked, the device reads the next one (recovery: 1.0 -> 1.x GB/s cold). */
        int64_t next = pos + n;
        if (r->ahead && next < r->limit)
            r->seg->io->readahead(r->seg->io, r->seg->fd, next, SL_MIN((int64_t)r->cap, r->limit - next));
    }
    *p = r->buf + (pos - r->buf_pos);
    return 0;
}

int sl__reader_batch(sl__reader *r, int64_t pos, int64_t expect_offset, const uint8_t **hdr)
{
    int rc = sl__reader_get(r, pos, SL_BATCH_HEADER_SIZE, hdr);
    if (rc == SL_ERANGE) return 0;
    if (rc) return rc;
    const uint8_t *h = *hdr;
    int64_t size = sl_batch_size(h);
    int32_t lod = (int32_t)sl_be32(h + SL_BATCH_OFF_LAST_OFFSET_DELTA);
    if (h[SL_BATCH_OFF_MAGIC] != SL_BATCH_MAGIC || size < SL_BATCH_HEADER_SIZE || pos + size > r->limit) return 0;
    if (lod < 0 || (int32_t)sl_be32(h + SL_BATCH_OFF_RECORDS_COUNT) < 0) return 0;
    if (expect_offset >= 0 && (int64_t)sl_be64(h + SL_BATCH_OFF_BASE_OFFSET) != expect_offset) return 0;
    return 1;
}
