/*
 * index.c - in-memory sparse index of a segment and its file (format and
 * lookup rules in index.h).
 *
 * The active segment's index lives only in memory and is appended to on
 * every index_interval_bytes of appends: no syscall on the produce path.
 * It is written to disk when the segment is sealed (roll) or the log is
 * closed. Sealed segments load it back on demand (see segment.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include "storage/index.h"
#include "common/log.h"
#include "common/alloc.h"
#include "common/crc32c.h"
#include "common/error.h"

static const uint8_t index_magic[4] = {'S', 'L', 'I', 'X'};

void sl__index_init(sl__index *idx)
{
    memset(idx, 0, sizeof *idx);
}

void sl__index_deinit(sl__index *idx)
{
    sl_free(idx->e);
    memset(idx, 0, sizeof *idx);
}

void sl__index_push(sl__index *idx, uint32_t rel_offset, uint32_t position, int64_t ts_before)
{
    if (idx->n > 0) {
        /* Entries are appended in log order: all three fields are monotonic. */
        const sl__index_entry *last = &idx->e[idx->n - 1];
        SL_ASSERT(rel_offset > last->rel_offset && position > last->position);
        SL_ASSERT(ts_before >= last->ts_before);
    }
    if (idx->n == idx->cap) {
        idx->cap = idx->cap ? idx->cap * 2 : 64;
        idx->e = sl_realloc(idx->e, (size_t)idx->cap * sizeof *idx->e);
    }
    idx->e[idx->n++] = (sl__index_entry){rel_offset, position, ts_before};
}

void sl__index_truncate(sl__index *idx, int64_t pos)
{
    int64_t keep = sl__index_floor_position(idx, pos - 1) + 1;
    SL_ASSERT(keep >= 0 && keep <= (int64_t)idx->n);
    idx->n = (uint32_t)keep;
}

/* Generic "last entry for which below(entry) holds", below being monotone. */
#define INDEX_FLOOR(idx, below)                                                                                        \
    do {                                                                                                               \
        int64_t lo = 0, hi = (int64_t)(idx)->n; /* answer in [lo-1, hi) */                                             \
        while (lo < hi) {                                                                                              \
            int64_t mid = lo + (hi - lo) / 2;                                                                          \
            const sl__index_entry *e = &(idx)->e[mid];                                                                 \
            if (below)                                                                                                 \
                lo = mid + 1;                                                                                          \
            else                                                                                                       \
                hi = mid;                                                                                              \
        }                                                                                                              \
        return lo - 1;                                                                                                 \
    } while (0)

int64_t sl__index_floor_offset(const sl__index *idx, int64_t rel_offset)
{
    INDEX_FLOOR(idx, (int64_t)e->rel_offset <= rel_offset);
}

int64_t sl__index_floor_position(const sl__index *idx, int64_t pos)
{
    INDEX_FLOOR(idx, (int64_t)e->position <= pos);
}

int64_t sl__index_floor_time(const sl__index *idx, int64_t ts)
{
    INDEX_FLOOR(idx, e->ts_before < ts);
}

static void header_encode(uint8_t *h, const sl__index_meta *meta)
{
    memset(h, 0, SL__INDEX_HEADER_SIZE);
    memcpy(h, index_magic, 4);
    sl_put_be16(h + 4, 1);
    sl_put_be16(h + 6, SL__INDEX_ENTRY_SIZE);
    sl_put_be64(h + 8, (uint64_t)meta->base_offset);
    sl_put_be64(h + 16, (uint64_t)meta->next_offset);
    sl_put_be64(h + 24, (uint64_t)meta->log_size);
    sl_put_be64(h + 32, (uint64_t)meta->max_timestamp);
    sl_put_be32(h + 40, meta->count);
    sl_put_be32(h + 44, meta->entries_crc);
    sl_put_be32(h + 60, sl_crc32c(0, h, 60));
}

static int header_decode(const uint8_t *h, sl__index_meta *meta)
{
    if (memcmp(h, index_magic, 4) != 0 || sl_be16(h + 4) != 1 || sl_be16(h + 6) != SL__INDEX_ENTRY_SIZE)
        return SL_ECORRUPT;
    if (sl_be32(h + 60) != sl_crc32c(0, h, 60)) return SL_ECORRUPT;
    meta->base_offset = (int64_t)sl_be64(h + 8);
    meta->next_offset = (int64_t)sl_be64(h + 16);
    meta->log_size = (int64_t)sl_be64(h + 24);
    meta->max_timestamp = (int64_t)sl_be64(h + 32);
    meta->count = sl_be32(h + 40);
    meta->entries_crc = sl_be32(h + 44);
    if (meta->next_offset < meta->base_offset || meta->log_size < 0) return SL_ECORRUPT;
    return 0;
}

static int write_all(sl_fileio *io, int fd, const uint8_t *p, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = io->pwrite(io, fd, p + done, len - done, (int64_t)done);
        if (n <= 0) return -1;
        done += (size_t)n;
    }
    return 0;
}

int sl__index_write(sl_fileio *io, const char *path, const sl__index_meta *meta, const sl__index *idx)
{
    SL_ASSERT(meta->count == idx->n && meta->next_offset >= meta->base_offset);
    size_t len = SL__INDEX_HEADER_SIZE + (size_t)idx->n * SL__INDEX_ENTRY_SIZE;
    uint8_t *buf = sl_malloc(len);
    uint8_t *p = buf + SL__INDEX_HEADER_SIZE;
    for (uint32_t i = 0; i < idx->n; i++, p += SL__INDEX_ENTRY_SIZE) {
        sl_put_be32(p, idx->e[i].rel_offset);
        sl_put_be32(p + 4, idx->e[i].position);
        sl_put_be64(p + 8, (uint64_t)idx->e[i].ts_before);
    }
    sl__index_meta m = *meta;
    m.entries_crc = sl_crc32c(0, buf + SL__INDEX_HEADER_SIZE, len - SL__INDEX_HEADER_SIZE);
    header_encode(buf, &m);
    char tmp[4096];
    int rc = SL_EIO;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = io->open(io, tmp, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd < 0) goto out;
    int wrc = write_all(io, fd, buf, len);
    int err = errno;
    io->close(io, fd);
    if (wrc != 0 || io->rename(io, tmp, path) != 0) {
        if (wrc != 0) errno = err;
        goto out;
    }
    rc = 0;
out:
    if (rc) {
        SL_WARN("storage", "cannot write index %s: %s (it will be rebuilt from the segment when needed)", path,
                strerror(errno));
        io->unlink(io, tmp);
    }
    sl_free(buf);
    return rc;
}

int sl__index_read_meta(sl_fileio *io, const char *path, sl__index_meta *meta)
{
    int fd = io->open(io, path, O_RDONLY, 0);
    if (fd < 0) return errno == ENOENT ? SL_ENOENT : SL_EIO;
    uint8_t h[SL__INDEX_HEADER_SIZE];
    ssize_t n = io->pread(io, fd, h, sizeof h, 0);
    int64_t size = io->size(io, fd);
    io->close(io, fd);
    if (n != (ssize_t)sizeof h) return SL_ECORRUPT;
    int rc = header_decode(h, meta);
    if (rc) return rc;
    if (size != SL__INDEX_HEADER_SIZE + (int64_t)meta->count * SL__INDEX_ENTRY_SIZE) return SL_ECORRUPT;
    return 0;
}

static int entries_decode(const uint8_t *p, uint32_t count, sl__index *idx)
{
    for (uint32_t i = 0; i < count; i++, p += SL__INDEX_ENTRY_SIZE) {
        sl__index_entry e = {sl_be32(p), sl_be32(p + 4), (int64_t)sl_be64(p + 8)};
        if (idx->n > 0) {
            const sl__index_entry *last = &idx->e[idx->n - 1];
            if (e.rel_offset <= last->rel_offset || e.position <= last->position || e.ts_before < last->ts_before)
                return SL_ECORRUPT;
        }
        sl__index_push(idx, e.rel_offset, e.position, e.ts_before);
    }
    return 0;
}

int sl__index_read(sl_fileio *io, const char *path, const sl__index_meta *meta, sl__index *idx)
{
    SL_ASSERT(idx->n == 0);
    size_t len = (size_t)meta->count * SL__INDEX_ENTRY_SIZE;
    int fd = io->open(io, path, O_RDONLY, 0);
    if (fd < 0) return errno == ENOENT ? SL_ENOENT : SL_EIO;
    uint8_t *buf = sl_malloc(len ? len : 1);
    ssize_t n = io->pread(io, fd, buf, len, SL__INDEX_HEADER_SIZE);
    io->close(io, fd);
    int rc = SL_ECORRUPT;
    if (n == (ssize_t)len && sl_crc32c(0, buf, len) == meta->entries_crc) rc = entries_decode(buf, meta->count, idx);
    if (rc) sl__index_deinit(idx);
    sl_free(buf);
    return rc;
}
