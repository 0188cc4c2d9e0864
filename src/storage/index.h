/*
 * index.h - the sparse offset + time index of one segment (private to
 * src/storage).
 *
 * An entry is taken at the first batch that starts at least
 * index_interval_bytes after the previous entry (never at position 0: a
 * lookup that finds no entry starts at the segment's beginning). It maps
 * the batch's offset to its file position and records the largest batch
 * MaxTimestamp seen *before* that batch in the segment, so the entries are
 * sorted by all three fields at once:
 *   - offset -> position: the last entry with rel_offset <= target;
 *   - timestamp -> position: the last entry whose ts_before < target
 *     (every batch before it has MaxTimestamp < target, so the first batch
 *     with MaxTimestamp >= target is at or after it, and before the next
 *     entry whose ts_before >= target).
 * Both lookups end with a scan of at most one interval of batch headers.
 *
 * File <base>.index (written when a segment is sealed or the log closed,
 * never synced: a missing, torn or stale file is detected and rebuilt):
 *
 *   header, 64 bytes, big-endian
 *     0  4  magic "SLIX"
 *     4  2  version (1)
 *     6  2  entry size (16)
 *     8  8  base offset (must match the file name)
 *    16  8  next offset (offset after the segment's last batch)
 *    24  8  log size: bytes of batches in the .log (must equal its size)
 *    32  8  max timestamp of the segment (INT64_MIN when empty)
 *    40  4  entry count
 *    44  4  CRC-32C of the entries
 *    48 12  zero
 *    60  4  CRC-32C of bytes 0..59
 *   entries, 16 bytes each, big-endian
 *     0  4  offset - base offset
 *     4  4  position of the batch in the .log
 *     8  8  largest MaxTimestamp of the batches before it (INT64_MIN if none)
 */
#ifndef SL_STORAGE_INDEX_H
#define SL_STORAGE_INDEX_H

#include "common/base.h"
#include "common/fileio.h"

#define SL__INDEX_HEADER_SIZE 64
#define SL__INDEX_ENTRY_SIZE  16
#define SL__TS_NONE           INT64_MIN

typedef struct sl__index_entry {
    uint32_t rel_offset;
    uint32_t position;
    int64_t ts_before;
} sl__index_entry;

typedef struct sl__index {
    sl__index_entry *e;
    uint32_t n, cap;
} sl__index;

typedef struct sl__index_meta {
    int64_t base_offset;
    int64_t next_offset;
    int64_t log_size;
    int64_t max_timestamp;
    uint32_t count;
    uint32_t entries_crc;
} sl__index_meta;

void sl__index_init(sl__index *idx);
void sl__index_deinit(sl__index *idx);
void sl__index_push(sl__index *idx, uint32_t rel_offset, uint32_t position, int64_t ts_before);
/* Drops the entries at positions >= pos. */
void sl__index_truncate(sl__index *idx, int64_t pos);
/* Index of the last entry matching, or -1 when none does. */
int64_t sl__index_floor_offset(const sl__index *idx, int64_t rel_offset);
int64_t sl__index_floor_position(const sl__index *idx, int64_t pos);
int64_t sl__index_floor_time(const sl__index *idx, int64_t ts);

/* Writes <path>.tmp and renames it over path (no sync, see above). */
int sl__index_write(sl_fileio *io, const char *path, const sl__index_meta *meta, const sl__index *idx);
/* Reads and checks the header: SL_ENOENT when absent, SL_ECORRUPT when bad. */
int sl__index_read_meta(sl_fileio *io, const char *path, sl__index_meta *meta);
/* Reads the entries described by meta into an empty idx; SL_ECORRUPT on a CRC mismatch. */
int sl__index_read(sl_fileio *io, const char *path, const sl__index_meta *meta, sl__index *idx);

#endif
